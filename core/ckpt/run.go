package ckpt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// Scopes under which the built-in tasks keep the parts other runs load: a
// tokenizer run's tokenizer, a MIM or classification run's backbone.
const (
	TokenizerScope = "/tokenizer"
	BackboneScope  = "/backbone"
)

// Run is an earlier run named by a config's `from:` key: its directory,
// the checkpoint its weights come from and its resolved config. Every part
// of peco that uses a trained artifact (the MIM task's tokens target, the
// classification task's backbone, the perceptual loss's network, the
// codebook probes) loads it through a Run.
type Run struct {
	// Ref is the reference as the config wrote it.
	Ref string
	// Dir is the run directory.
	Dir string
	// Checkpoint is the checkpoint file the weights come from.
	Checkpoint string
	// Config is the run's config.yaml.
	Config *registry.Tree

	weights *Checkpoint
}

// OpenRun resolves ref (see Resolve) and reads the run's config.yaml.
func OpenRun(ref string) (*Run, error) {
	path, dir, err := Resolve(ref)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, core.ConfigFile)
	tree, err := registry.LoadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", ref, err)
	}
	return &Run{Ref: ref, Dir: dir, Checkpoint: path, Config: tree}, nil
}

// TaskType is the run's task.type ("" when absent).
func (r *Run) TaskType() string {
	if v, ok := r.Config.At("task.type"); ok {
		if s, ok := v.(string); ok {
			return s
		}
	}
	return ""
}

// Int reads an integer setting of the run's config (e.g.
// "task.data.augment.size"); ok is false when absent or not an integer.
func (r *Run) Int(key string) (n int, ok bool) {
	v, found := r.Config.At(key)
	if !found {
		return 0, false
	}
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case float64:
		return int(x), x == float64(int(x))
	}
	return 0, false
}

// Spec decodes, strictly, the component spec at key (e.g. "task.tokenizer")
// of the run's config.
func Spec[T any](r *Run, key string) (registry.Spec[T], error) {
	spec, err := registry.DecodeSpecAt[T](r.Config, key)
	if err != nil {
		return spec, fmt.Errorf("run %s: %s: %w", r.Ref, filepath.Join(r.Dir, core.ConfigFile), err)
	}
	return spec, nil
}

// Build decodes the component spec at key of the run's config and builds it.
func Build[T any](r *Run, key string) (T, error) {
	var zero T
	spec, err := Spec[T](r, key)
	if err != nil {
		return zero, err
	}
	c, err := spec.Build()
	if err != nil {
		return zero, fmt.Errorf("run %s: %s: %w", r.Ref, key, err)
	}
	return c, nil
}

// Weights loads the run's checkpoint (once).
func (r *Run) Weights() (*Checkpoint, error) {
	if r.weights == nil {
		ck, err := Load(r.Checkpoint)
		if err != nil {
			return nil, err
		}
		r.weights = ck
	}
	return r.weights, nil
}

// Load puts the checkpoint's variables under scope from into store under
// scope to (e.g. "/tokenizer" -> "/tokenizer", "/backbone" ->
// "/perceptual"). Frozen variables are created now, marked non-trainable;
// trainable ones are handed to the model as it creates them (variables the
// model never creates stay out of the store). It fails when the checkpoint
// holds nothing under from, and names the run's task in that case.
func (r *Run) Load(store *model.Store, from, to string, frozen bool) error {
	ck, err := r.Weights()
	if err != nil {
		return err
	}
	if !frozen {
		_, err := r.LoadAdapted(store, from, to, nil)
		return err
	}
	if err := r.hasScope(ck, from); err != nil {
		return err
	}
	src := strings.TrimSuffix(from, "/")
	dst := strings.TrimSuffix(to, "/")
	for path, t := range ck.Variables {
		if !strings.HasPrefix(path, src+"/") {
			continue
		}
		p := dst + strings.TrimPrefix(path, src)
		// Each variable gets its own copy: the checkpoint may be loaded again.
		tc, err := t.Clone()
		if err != nil {
			return fmt.Errorf("checkpoint %s: copying %s: %w", r.Checkpoint, path, err)
		}
		v := store.GetVariable(p)
		if v == nil {
			if v, err = store.CreateVariable(p, tc); err != nil {
				return fmt.Errorf("checkpoint %s: creating %s: %w", r.Checkpoint, p, err)
			}
		} else {
			if !v.Shape().Equal(t.Shape()) {
				return fmt.Errorf("checkpoint %s: variable %s has shape %s, the model's %s is %s",
					r.Checkpoint, path, t.Shape(), p, v.Shape())
			}
			if err := v.SetValue(tc); err != nil {
				return fmt.Errorf("checkpoint %s: setting %s: %w", r.Checkpoint, p, err)
			}
		}
		v.SetTrainable(false)
	}
	return nil
}

// Resolve finds the checkpoint file a `from:` reference names, and the run
// directory it belongs to. ref is one of:
//   - a checkpoint file (<run>/checkpoints/NAME.ckpt): the run directory is
//     two levels up;
//   - a run directory: its checkpoints/last.ckpt, else its newest
//     checkpoints/step-*.ckpt;
//   - a folder of runs (runs/<name>, holding one run directory per start):
//     the newest run (by name, i.e. start time) that has a checkpoint.
//
// Errors name the path and what was looked for.
func Resolve(ref string) (ckptPath, runDir string, err error) {
	if ref == "" {
		return "", "", errors.New("no run given")
	}
	fi, err := os.Stat(ref)
	if err != nil {
		return "", "", fmt.Errorf("run %s: %w", ref, err)
	}
	if !fi.IsDir() {
		if filepath.Ext(ref) != Ext {
			return "", "", fmt.Errorf("run %s: not a %s file nor a run directory", ref, Ext)
		}
		return ref, filepath.Dir(filepath.Dir(ref)), nil
	}
	p, err := runCheckpoint(ref)
	if err != nil {
		return "", "", err
	}
	if p != "" {
		return p, ref, nil
	}
	if _, err := os.Stat(filepath.Join(ref, core.ConfigFile)); err == nil {
		return "", "", fmt.Errorf("run %s has no checkpoint (looked for %s and step-*%s)",
			ref, filepath.Join(ref, core.CheckpointsDir, "last"+Ext), Ext)
	}
	// A folder of runs: the newest one with a checkpoint.
	entries, err := os.ReadDir(ref)
	if err != nil {
		return "", "", fmt.Errorf("run %s: %w", ref, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() > entries[j].Name() })
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(ref, e.Name())
		if _, err := os.Stat(filepath.Join(dir, core.ConfigFile)); err != nil {
			continue
		}
		p, err := runCheckpoint(dir)
		if err != nil {
			return "", "", err
		}
		if p != "" {
			return p, dir, nil
		}
	}
	return "", "", fmt.Errorf("run %s: neither a run directory with a checkpoint (%s/last%s) nor a folder of such runs",
		ref, core.CheckpointsDir, Ext)
}

// runCheckpoint returns a run directory's last.ckpt, else its newest step
// checkpoint, else "".
func runCheckpoint(dir string) (string, error) {
	last := filepath.Join(dir, core.CheckpointsDir, "last"+Ext)
	if _, err := os.Stat(last); err == nil {
		return last, nil
	}
	return Latest(filepath.Join(dir, core.CheckpointsDir))
}

// FreezeScope marks every variable of store under scope non-trainable and
// returns how many it marked.
func FreezeScope(store *model.Store, scope string) int {
	prefix := strings.TrimSuffix(scope, "/") + "/"
	n := 0
	for v := range store.IterVariables() {
		if strings.HasPrefix(v.Path(), prefix) {
			v.SetTrainable(false)
			n++
		}
	}
	return n
}

// LoadAdapted is Load (not frozen) for a backbone that may differ in input
// size from the one the run trained: variables the adapter resizes (a ViT's
// position embedding and relative position bias, core.PositionAdapter) go
// in resized; it returns the paths it resized.
func (r *Run) LoadAdapted(store *model.Store, from, to string, adapter core.PositionAdapter) ([]string, error) {
	ck, err := r.Weights()
	if err != nil {
		return nil, err
	}
	if err := r.hasScope(ck, from); err != nil {
		return nil, err
	}
	if adapter == nil {
		return nil, ck.RestoreInto(store, from, to)
	}
	adapted := *ck
	adapted.Variables = make(map[string]*tensors.Tensor, len(ck.Variables))
	var resized []string
	src := strings.TrimSuffix(from, "/") + "/"
	for p, t := range ck.Variables {
		adapted.Variables[p] = t
		if !strings.HasPrefix(p, src) {
			continue
		}
		nt, ok, err := adapter.AdaptPosition(p, t)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", r.Checkpoint, err)
		}
		if ok {
			adapted.Variables[p] = nt
			resized = append(resized, fmt.Sprintf("%s %v -> %v", p, t.Shape().Dimensions, nt.Shape().Dimensions))
		}
	}
	sort.Strings(resized)
	return resized, adapted.RestoreInto(store, from, to)
}

// hasScope fails when the run's checkpoint holds nothing under scope,
// naming the run's task.
func (r *Run) hasScope(ck *Checkpoint, scope string) error {
	if ck.HasScope(scope) {
		return nil
	}
	var held []string
	seen := map[string]bool{}
	for p := range ck.Variables {
		top := "/" + strings.SplitN(strings.TrimPrefix(p, "/"), "/", 2)[0]
		if !seen[top] && !strings.HasPrefix(top, "/#") {
			seen[top] = true
			held = append(held, top)
		}
	}
	sort.Strings(held)
	want := ""
	switch scope {
	case BackboneScope:
		want = ": it is not a run that trains a backbone (name a mim, classification or segmentation run)"
	case TokenizerScope:
		want = ": it is not a tokenizer run"
	}
	return fmt.Errorf("run %s (task %q): checkpoint %s holds no variables under %s (it holds %s)%s",
		r.Ref, r.TaskType(), r.Checkpoint, scope, strings.Join(held, ", "), want)
}
