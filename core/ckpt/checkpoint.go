// Package ckpt reads and writes peco's checkpoint files and resolves the
// earlier runs a config names with a `from:` key (OpenRun): the one place
// where a trained tokenizer, backbone or classifier is loaded from.
package ckpt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// A checkpoint file holds every variable of a model.Store (weights, optimizer
// moments, the global step) and a small JSON state (epoch, position in the
// data, anything a task needs to continue). Layout: the magic line, an 8-byte
// little-endian header length, the JSON header, then the variables' raw bytes.
// Files are written to a temporary name and renamed, so a killed run never
// leaves a half-written checkpoint.
const checkpointMagic = "PECO-CHECKPOINT-1\n"

// Ext is the extension of checkpoint files.
const Ext = ".ckpt"

type checkpointHeader struct {
	Step      int64            `json:"step"`
	State     json.RawMessage  `json:"state,omitempty"`
	Variables []checkpointVar  `json:"variables"`
	Extra     map[string]int64 `json:"extra,omitempty"`
}

type checkpointVar struct {
	Path   string `json:"path"`
	DType  string `json:"dtype"`
	Dims   []int  `json:"dims"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
}

// Checkpoint is a loaded checkpoint: its step, the task's state and the
// variables' values by full path.
type Checkpoint struct {
	Path      string
	Step      int64
	State     json.RawMessage
	Variables map[string]*tensors.Tensor
}

// Save writes every variable of store and the given task state
// (JSON-encoded) to path atomically.
func Save(path string, store *model.Store, step int64, state any) error {
	var hdr checkpointHeader
	hdr.Step = step
	if state != nil {
		b, err := json.Marshal(state)
		if err != nil {
			return fmt.Errorf("checkpoint %s: encoding state: %w", path, err)
		}
		hdr.State = b
	}
	var data bytes.Buffer
	var vars []*model.Variable
	for v := range store.IterVariables() {
		vars = append(vars, v)
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].Path() < vars[j].Path() })
	for _, v := range vars {
		if !v.HasValue() {
			continue
		}
		t, err := v.Value()
		if err != nil {
			return fmt.Errorf("checkpoint %s: reading variable %s: %w", path, v.Path(), err)
		}
		off := int64(data.Len())
		if err := t.ConstBytes(func(b []byte) { data.Write(b) }); err != nil {
			return fmt.Errorf("checkpoint %s: reading variable %s: %w", path, v.Path(), err)
		}
		s := t.Shape()
		hdr.Variables = append(hdr.Variables, checkpointVar{
			Path: v.Path(), DType: s.DType.String(), Dims: append([]int{}, s.Dimensions...),
			Offset: off, Length: int64(data.Len()) - off,
		})
	}
	hb, err := json.Marshal(&hdr)
	if err != nil {
		return fmt.Errorf("checkpoint %s: encoding header: %w", path, err)
	}
	var out bytes.Buffer
	out.Grow(len(checkpointMagic) + 8 + len(hb) + data.Len())
	out.WriteString(checkpointMagic)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hb)))
	out.Write(n[:])
	out.Write(hb)
	out.Write(data.Bytes())
	return WriteFileAtomic(path, out.Bytes())
}

// Load reads a checkpoint file. Errors name the file and, for a
// damaged file, what is wrong with it.
func Load(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	if !bytes.HasPrefix(b, []byte(checkpointMagic)) {
		return nil, fmt.Errorf("checkpoint %s: not a peco checkpoint (bad magic)", path)
	}
	b = b[len(checkpointMagic):]
	if len(b) < 8 {
		return nil, fmt.Errorf("checkpoint %s: truncated header", path)
	}
	hl := binary.LittleEndian.Uint64(b[:8])
	b = b[8:]
	if uint64(len(b)) < hl {
		return nil, fmt.Errorf("checkpoint %s: truncated header", path)
	}
	var hdr checkpointHeader
	if err := json.Unmarshal(b[:hl], &hdr); err != nil {
		return nil, fmt.Errorf("checkpoint %s: bad header: %w", path, err)
	}
	data := b[hl:]
	ck := &Checkpoint{Path: path, Step: hdr.Step, State: hdr.State, Variables: map[string]*tensors.Tensor{}}
	for _, v := range hdr.Variables {
		dt, err := dtypes.DTypeString(v.DType)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: variable %s: unknown dtype %q", path, v.Path, v.DType)
		}
		shape := shapes.Make(dt, v.Dims...)
		if v.Offset < 0 || v.Offset+v.Length > int64(len(data)) || int64(shape.ByteSize()) != v.Length {
			return nil, fmt.Errorf("checkpoint %s: variable %s: data out of range or size mismatch (file truncated?)", path, v.Path)
		}
		t := tensors.FromShape(shape)
		if err := t.MutableBytes(func(dst []byte) { copy(dst, data[v.Offset:v.Offset+v.Length]) }); err != nil {
			return nil, fmt.Errorf("checkpoint %s: variable %s: %w", path, v.Path, err)
		}
		ck.Variables[v.Path] = t
	}
	return ck, nil
}

// DecodeState decodes the checkpoint's task state into out.
func (c *Checkpoint) DecodeState(out any) error {
	if len(c.State) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.State, out); err != nil {
		return fmt.Errorf("checkpoint %s: decoding state: %w", c.Path, err)
	}
	return nil
}

// Restore puts the checkpoint's variables into store: variables that exist
// get their values now (shapes must match); the others are handed over when
// the model creates them (the store's Loader), so the optimizer's moments and
// step counter continue where they were.
func (c *Checkpoint) Restore(store *model.Store) error {
	return c.RestoreInto(store, "", "")
}

// RestoreInto is Restore with the variables under the checkpoint scope
// fromScope placed under toScope (e.g. "/backbone" -> "/model/backbone"), for
// loading a pre-trained part into a new model. Empty scopes mean everything.
func (c *Checkpoint) RestoreInto(store *model.Store, fromScope, toScope string) error {
	pending := map[string]*tensors.Tensor{}
	if _, ok := c.Variables["/"+model.RNGStateVariableName]; ok && fromScope == "" && store.GetVariable("/"+model.RNGStateVariableName) == nil {
		// Create the RNG state as the store does (not trainable) before
		// setting it: handed over lazily by the loader it would become a
		// trainable variable, which the optimizer would try to update.
		if err := store.ResetRNGState(); err != nil {
			return fmt.Errorf("checkpoint %s: %w", c.Path, err)
		}
	}
	for p, t := range c.Variables {
		if fromScope != "" {
			if p != fromScope && !strings.HasPrefix(p, strings.TrimSuffix(fromScope, "/")+"/") {
				continue
			}
			p = toScope + strings.TrimPrefix(p, strings.TrimSuffix(fromScope, "/"))
		}
		if v := store.GetVariable(p); v != nil {
			if !v.Shape().Equal(t.Shape()) {
				return fmt.Errorf("checkpoint %s: variable %s has shape %s, the model's is %s", c.Path, p, t.Shape(), v.Shape())
			}
			// Each variable gets its own copy: SetValue frees the value it
			// replaces, which may be this very tensor after an earlier restore.
			tc, err := t.Clone()
			if err != nil {
				return fmt.Errorf("checkpoint %s: copying %s: %w", c.Path, p, err)
			}
			if err := v.SetValue(tc); err != nil {
				return fmt.Errorf("checkpoint %s: setting %s: %w", c.Path, p, err)
			}
			continue
		}
		pending[p] = t
	}
	store.SetLoader(&checkpointLoader{path: c.Path, values: pending, prev: store.Loader()})
	return nil
}

// checkpointLoader hands checkpoint values to variables as they are created.
type checkpointLoader struct {
	path   string
	values map[string]*tensors.Tensor
	prev   model.Loader
}

func (l *checkpointLoader) LoadVariable(store *model.Store, fullPath string) (*tensors.Tensor, bool) {
	if t, ok := l.values[fullPath]; ok {
		delete(l.values, fullPath)
		if tc, err := t.Clone(); err == nil {
			return tc, true
		}
		return nil, false
	}
	if l.prev != nil {
		return l.prev.LoadVariable(store, fullPath)
	}
	return nil, false
}

func (l *checkpointLoader) DeleteVariable(store *model.Store, fullPath string) error {
	delete(l.values, fullPath)
	if l.prev != nil {
		return l.prev.DeleteVariable(store, fullPath)
	}
	return nil
}

// CheckpointPath is the file name of the checkpoint of a step in dir.
func StepPath(dir string, step int64) string {
	return filepath.Join(dir, fmt.Sprintf("step-%09d%s", step, Ext))
}

// List lists the checkpoint files in dir, oldest step first.
func List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing checkpoints: %w", err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), "step-") && strings.HasSuffix(e.Name(), Ext) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Latest returns the newest checkpoint in dir, or "" if none.
func Latest(dir string) (string, error) {
	l, err := List(dir)
	if err != nil || len(l) == 0 {
		return "", err
	}
	return l[len(l)-1], nil
}

// Prune removes all but the newest keep step checkpoints in dir
// (named files such as best.ckpt are kept).
func Prune(dir string, keep int) error {
	l, err := List(dir)
	if err != nil {
		return err
	}
	for i := 0; i < len(l)-keep; i++ {
		if err := os.Remove(l[i]); err != nil {
			return fmt.Errorf("pruning checkpoints: %w", err)
		}
	}
	return nil
}

// CopyFileAtomic copies src to dst atomically (used for best.ckpt / last.ckpt).
func CopyFileAtomic(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return WriteFileAtomic(dst, b)
}

// HasScope reports whether the checkpoint holds variables under scope.
func (c *Checkpoint) HasScope(scope string) bool {
	prefix := strings.TrimSuffix(scope, "/") + "/"
	for p := range c.Variables {
		if p == scope || strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}
