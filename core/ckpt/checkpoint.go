// Package ckpt reads and writes peco's checkpoint files and resolves the
// earlier runs a config names with a `from:` key (OpenRun): the one place
// where a trained tokenizer, backbone or classifier is loaded from.
package ckpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
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
// data, anything a task needs to continue). Layout: the magic line (it holds
// the format version), an 8-byte little-endian header length, the JSON
// header, the variables' raw bytes, then (version 2) the SHA-256 of
// everything before it, which Load checks: a truncated file or one with a
// single byte changed is reported (ErrDamaged), never loaded. Version 1 files
// (no checksum) still load. Files are written to a temporary name and
// renamed, so a killed run never leaves a half-written checkpoint.
const (
	checkpointMagic   = "PECO-CHECKPOINT-2\n"
	checkpointMagicV1 = "PECO-CHECKPOINT-1\n"
)

// ErrDamaged is wrapped by Load's error for a file that is not a whole,
// intact checkpoint (truncated, corrupt, checksum mismatch).
var ErrDamaged = errors.New("damaged checkpoint")

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
	// NotTrainable records a variable saved as not trainable (the RNG
	// state, optimizer moments, frozen weights); absent in older files.
	NotTrainable bool `json:"not_trainable,omitempty"`
}

// Checkpoint is a loaded checkpoint: its step, the task's state and the
// variables' values by full path.
type Checkpoint struct {
	Path      string
	Step      int64
	State     json.RawMessage
	Variables map[string]*tensors.Tensor
	// NotTrainable holds the paths of the variables saved as not
	// trainable. Files written before peco recorded it mark none; the RNG
	// state is never trainable whatever the file says.
	NotTrainable map[string]bool
}

// Save writes every variable of store and the given task state
// (JSON-encoded) to path atomically.
func Save(path string, store *model.Store, step int64, state any) error {
	b, err := encode(path, store, step, state)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b)
}

// encode makes the bytes of a checkpoint file (path is for messages).
func encode(path string, store *model.Store, step int64, state any) ([]byte, error) {
	var hdr checkpointHeader
	hdr.Step = step
	if state != nil {
		b, err := json.Marshal(state)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: encoding state: %w", path, err)
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
			return nil, fmt.Errorf("checkpoint %s: reading variable %s: %w", path, v.Path(), err)
		}
		off := int64(data.Len())
		if err := t.ConstBytes(func(b []byte) { data.Write(b) }); err != nil {
			return nil, fmt.Errorf("checkpoint %s: reading variable %s: %w", path, v.Path(), err)
		}
		s := t.Shape()
		hdr.Variables = append(hdr.Variables, checkpointVar{
			Path: v.Path(), DType: s.DType.String(), Dims: append([]int{}, s.Dimensions...),
			Offset: off, Length: int64(data.Len()) - off, NotTrainable: !v.Trainable,
		})
	}
	hb, err := json.Marshal(&hdr)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: encoding header: %w", path, err)
	}
	var out bytes.Buffer
	out.Grow(len(checkpointMagic) + 8 + len(hb) + data.Len() + sha256.Size)
	out.WriteString(checkpointMagic)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hb)))
	out.Write(n[:])
	out.Write(hb)
	out.Write(data.Bytes())
	sum := sha256.Sum256(out.Bytes())
	out.Write(sum[:])
	return out.Bytes(), nil
}

// Load reads a checkpoint file, checking its checksum. Errors name the file
// and, for a damaged file (wrapping ErrDamaged), what is wrong with it.
func Load(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("checkpoint %s: %w: %s", path, ErrDamaged, fmt.Sprintf(format, args...))
	}
	switch {
	case bytes.HasPrefix(b, []byte(checkpointMagic)):
		if len(b) < len(checkpointMagic)+8+sha256.Size {
			return nil, damaged("truncated (%d bytes)", len(b))
		}
		body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
		if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
			return nil, damaged("checksum mismatch (truncated or corrupt file)")
		}
		b = body[len(checkpointMagic):]
	case bytes.HasPrefix(b, []byte(checkpointMagicV1)):
		b = b[len(checkpointMagicV1):] // version 1: no checksum
	case len(b) < len(checkpointMagic) && bytes.HasPrefix([]byte(checkpointMagic), b):
		return nil, damaged("truncated (%d bytes)", len(b))
	default:
		return nil, fmt.Errorf("checkpoint %s: %w: not a peco checkpoint (bad magic)", path, ErrDamaged)
	}
	if len(b) < 8 {
		return nil, damaged("truncated header")
	}
	hl := binary.LittleEndian.Uint64(b[:8])
	b = b[8:]
	if uint64(len(b)) < hl {
		return nil, damaged("truncated header")
	}
	var hdr checkpointHeader
	if err := json.Unmarshal(b[:hl], &hdr); err != nil {
		return nil, damaged("bad header: %v", err)
	}
	data := b[hl:]
	ck := &Checkpoint{Path: path, Step: hdr.Step, State: hdr.State, Variables: map[string]*tensors.Tensor{}, NotTrainable: map[string]bool{}}
	for _, v := range hdr.Variables {
		dt, err := dtypes.DTypeString(v.DType)
		if err != nil {
			return nil, damaged("variable %s: unknown dtype %q", v.Path, v.DType)
		}
		shape := shapes.Make(dt, v.Dims...)
		if v.Offset < 0 || v.Offset+v.Length > int64(len(data)) || int64(shape.ByteSize()) != v.Length {
			return nil, damaged("variable %s: data out of range or size mismatch (file truncated?)", v.Path)
		}
		t := tensors.FromShape(shape)
		if err := t.MutableBytes(func(dst []byte) { copy(dst, data[v.Offset:v.Offset+v.Length]) }); err != nil {
			return nil, fmt.Errorf("checkpoint %s: variable %s: %w", path, v.Path, err)
		}
		ck.Variables[v.Path] = t
		if v.NotTrainable || v.Path == rngStatePath {
			ck.NotTrainable[v.Path] = true
		}
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

// Restore puts the checkpoint's variables into store, to continue the run
// that saved it: variables that exist get their values now (shapes must
// match); those saved as not trainable (the RNG state, the optimizer's
// moments and step, frozen weights) are created now, not trainable; the
// others are handed over when the model creates them (the store's Loader),
// so the weights, the optimizer's moments and the step counter continue
// where they were.
//
// Variables must not reach the store through the Loader when they are not
// trainable: GoMLX makes every variable a Loader hands over trainable, and
// the optimizer would then update the RNG state (the --resume crash of
// drop-path configs: "BinaryOp Add must match, got (Uint64)[3] and
// (Float32)[3]").
func (c *Checkpoint) Restore(store *model.Store) error {
	return c.restore(store, "", "", true)
}

// RestoreInto puts the variables under the checkpoint scope fromScope under
// toScope (e.g. "/backbone" -> "/model/backbone"), for loading a pre-trained
// part into a new model: they are handed over as the model creates them and
// the model decides what it trains. Empty scopes mean everything, as
// Restore.
func (c *Checkpoint) RestoreInto(store *model.Store, fromScope, toScope string) error {
	if fromScope == "" && toScope == "" {
		return c.Restore(store)
	}
	return c.restore(store, fromScope, toScope, false)
}

// rngStatePath is the store's RNG state variable.
const rngStatePath = "/" + model.RNGStateVariableName

// restore implements Restore (keepTrainable: the saved trainability is
// restored) and RestoreInto.
func (c *Checkpoint) restore(store *model.Store, fromScope, toScope string, keepTrainable bool) error {
	pending := map[string]*tensors.Tensor{}
	paths := make([]string, 0, len(c.Variables))
	for p := range c.Variables {
		paths = append(paths, p)
	}
	sort.Strings(paths) // variables created now are created in a fixed order
	for _, src := range paths {
		t, p := c.Variables[src], src
		if fromScope != "" {
			if p != fromScope && !strings.HasPrefix(p, strings.TrimSuffix(fromScope, "/")+"/") {
				continue
			}
			p = toScope + strings.TrimPrefix(p, strings.TrimSuffix(fromScope, "/"))
		}
		frozen := keepTrainable && c.NotTrainable[src]
		v := store.GetVariable(p)
		if v == nil && !frozen {
			pending[p] = t
			continue
		}
		// Each variable gets its own copy: SetValue frees the value it
		// replaces, which may be this very tensor after an earlier restore.
		tc, err := t.Clone()
		if err != nil {
			return fmt.Errorf("checkpoint %s: copying %s: %w", c.Path, p, err)
		}
		if v == nil {
			if v, err = store.CreateVariable(p, tc); err != nil {
				return fmt.Errorf("checkpoint %s: creating %s: %w", c.Path, p, err)
			}
		} else {
			if !v.Shape().Equal(t.Shape()) {
				return fmt.Errorf("checkpoint %s: variable %s has shape %s, the model's is %s", c.Path, p, t.Shape(), v.Shape())
			}
			if err := v.SetValue(tc); err != nil {
				return fmt.Errorf("checkpoint %s: setting %s: %w", c.Path, p, err)
			}
		}
		if frozen {
			v.SetTrainable(false)
		}
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
