package core

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/registry"
)

// ResolveCheckpoint finds the checkpoint file a config refers to, and the run
// directory it belongs to. ref is one of:
//   - a checkpoint file (<run>/checkpoints/NAME.ckpt): the run directory is
//     two levels up;
//   - a run directory: its checkpoints/last.ckpt, else its newest
//     checkpoints/step-*.ckpt;
//   - a folder of runs (runs/<name>, holding one run directory per start):
//     the newest run (by name, i.e. start time) that has a checkpoint.
//
// Errors name the path and what was looked for.
func ResolveCheckpoint(ref string) (ckptPath, runDir string, err error) {
	if ref == "" {
		return "", "", errors.New("no checkpoint given")
	}
	fi, err := os.Stat(ref)
	if err != nil {
		return "", "", fmt.Errorf("checkpoint %s: %w", ref, err)
	}
	if !fi.IsDir() {
		if filepath.Ext(ref) != CheckpointExt {
			return "", "", fmt.Errorf("checkpoint %s: not a %s file nor a run directory", ref, CheckpointExt)
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
	if _, err := os.Stat(filepath.Join(ref, ConfigFile)); err == nil {
		return "", "", fmt.Errorf("run %s has no checkpoint (looked for %s and step-*%s)",
			ref, filepath.Join(ref, CheckpointsDir, "last"+CheckpointExt), CheckpointExt)
	}
	// A folder of runs: the newest one with a checkpoint.
	entries, err := os.ReadDir(ref)
	if err != nil {
		return "", "", fmt.Errorf("checkpoint %s: %w", ref, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() > entries[j].Name() })
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(ref, e.Name())
		if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err != nil {
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
	return "", "", fmt.Errorf("checkpoint %s: neither a run directory with a checkpoint (%s/last%s) nor a folder of such runs",
		ref, CheckpointsDir, CheckpointExt)
}

// runCheckpoint returns a run directory's last.ckpt, else its newest step
// checkpoint, else "".
func runCheckpoint(dir string) (string, error) {
	last := filepath.Join(dir, CheckpointsDir, "last"+CheckpointExt)
	if _, err := os.Stat(last); err == nil {
		return last, nil
	}
	return LatestCheckpoint(filepath.Join(dir, CheckpointsDir))
}

// PretrainedTokenizerConfig configures the "pretrained" tokenizer: a
// tokenizer trained by an earlier run, rebuilt from that run's resolved
// config and restored from its checkpoint.
type PretrainedTokenizerConfig struct {
	Checkpoint string `mapstructure:"checkpoint" doc:"the tokenizer run: a .ckpt file, a run directory (checkpoints/last.ckpt, else the newest step) or a folder of runs (the newest)"`
	Key        string `mapstructure:"key" doc:"dotted key of the tokenizer's spec in the run's config.yaml"`
	Scope      string `mapstructure:"scope" doc:"scope of the tokenizer's variables in the checkpoint"`
}

// Validate checks the keys.
func (c *PretrainedTokenizerConfig) Validate() error {
	if c.Checkpoint == "" {
		return errors.New("checkpoint must name the tokenizer run (a run directory or a .ckpt file)")
	}
	if c.Key == "" || !strings.HasPrefix(c.Scope, "/") {
		return fmt.Errorf("key must be set and scope must start with /, got key %q, scope %q", c.Key, c.Scope)
	}
	return nil
}

// DefaultPretrainedTokenizer reads the tokenizer task's layout: the spec at
// task.tokenizer, the variables under /tokenizer.
func DefaultPretrainedTokenizer() PretrainedTokenizerConfig {
	return PretrainedTokenizerConfig{Key: "task.tokenizer", Scope: "/tokenizer"}
}

// PretrainedTokenizer is a tokenizer trained by an earlier run. It delegates
// VocabSize, Encode and Decode to the tokenizer that run configured; Restore
// loads its trained weights. Tasks that use it build its graph under the
// scope they pass to Restore.
type PretrainedTokenizer struct {
	// Tokenizer is the rebuilt tokenizer.
	Tokenizer
	// CheckpointPath is the checkpoint the weights come from.
	CheckpointPath string
	// RunDir is the run that trained it.
	RunDir string
	// Scope is the scope of its variables in the checkpoint.
	Scope string
}

// NewPretrainedTokenizer resolves the checkpoint, reads the run's config.yaml
// and builds the tokenizer specified at c.Key. Weights are loaded by Restore.
func NewPretrainedTokenizer(c PretrainedTokenizerConfig) (*PretrainedTokenizer, error) {
	ckpt, runDir, err := ResolveCheckpoint(c.Checkpoint)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(runDir, ConfigFile)
	tree, err := registry.LoadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("pretrained tokenizer %s: %w", c.Checkpoint, err)
	}
	spec, err := registry.DecodeSpecAt[Tokenizer](tree, c.Key)
	if err != nil {
		return nil, fmt.Errorf("pretrained tokenizer: the run's config %s: %w", cfgPath, err)
	}
	inner, err := spec.Build()
	if err != nil {
		return nil, fmt.Errorf("pretrained tokenizer from %s: %w", cfgPath, err)
	}
	return &PretrainedTokenizer{Tokenizer: inner, CheckpointPath: ckpt, RunDir: runDir, Scope: c.Scope}, nil
}

// Restore loads the tokenizer's variables (those under p.Scope in the
// checkpoint) into store under scope (e.g. "/tokenizer") and marks them
// non-trainable, so the tokenizer stays frozen. Existing variables must have
// the checkpoint's shapes. It is an error when the checkpoint holds nothing
// under p.Scope.
func (p *PretrainedTokenizer) Restore(store *model.Store, scope string) error {
	ck, err := LoadCheckpoint(p.CheckpointPath)
	if err != nil {
		return err
	}
	from := strings.TrimSuffix(p.Scope, "/")
	to := strings.TrimSuffix(scope, "/")
	n := 0
	for path, t := range ck.Variables {
		if !strings.HasPrefix(path, from+"/") {
			continue
		}
		dst := to + strings.TrimPrefix(path, from)
		v := store.GetVariable(dst)
		if v == nil {
			if v, err = store.CreateVariable(dst, t); err != nil {
				return fmt.Errorf("checkpoint %s: creating %s: %w", p.CheckpointPath, dst, err)
			}
		} else {
			if !v.Shape().Equal(t.Shape()) {
				return fmt.Errorf("checkpoint %s: variable %s has shape %s, the model's %s is %s",
					p.CheckpointPath, path, t.Shape(), dst, v.Shape())
			}
			if err := v.SetValue(t); err != nil {
				return fmt.Errorf("checkpoint %s: setting %s: %w", p.CheckpointPath, dst, err)
			}
		}
		v.SetTrainable(false)
		n++
	}
	if n == 0 {
		return fmt.Errorf("checkpoint %s: no variables under %s (is it a tokenizer run?)", p.CheckpointPath, p.Scope)
	}
	return nil
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

func init() {
	registry.Register(Tokenizers, "pretrained",
		"a tokenizer trained by an earlier run: rebuilt from its config.yaml, weights from its checkpoint, frozen",
		DefaultPretrainedTokenizer, func(c PretrainedTokenizerConfig) (Tokenizer, error) { return NewPretrainedTokenizer(c) })
}
