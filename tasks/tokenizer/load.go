package tokenizer

import (
	"fmt"
	"path/filepath"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
	"github.com/peco-dev/peco/tokenizers"
)

// Trained is a tokenizer loaded from a tokenizer run.
type Trained struct {
	// Tokenizer is the built tokenizer.
	Tokenizer core.Tokenizer
	// Spec is its spec, as in the run's config (task.tokenizer).
	Spec registry.Spec[core.Tokenizer]
	// Store holds its variables under /tokenizer (and whatever else the
	// checkpoint holds, loaded on use).
	Store *model.Store
	// ImageSize is the run's task.data.augment.size (0 when absent).
	ImageSize int
	// Checkpoint is the checkpoint file read.
	Checkpoint string
}

// LoadTrained loads the tokenizer of a tokenizer run. ref is a checkpoint
// file, a run directory or a folder of runs (see core.ResolveCheckpoint). The spec at
// task.tokenizer of config.yaml is decoded strictly with the registry.
func LoadTrained(ref string) (*Trained, error) {
	ckpt, runDir, err := core.ResolveCheckpoint(ref)
	if err != nil {
		return nil, fmt.Errorf("tokenizer checkpoint: %w", err)
	}
	cfgPath := filepath.Join(runDir, "config.yaml")
	tree, err := registry.LoadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("reading the tokenizer run's config: %w", err)
	}
	spec, err := registry.DecodeSpecAt[core.Tokenizer](tree, "task.tokenizer")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	tok, err := spec.Build()
	if err != nil {
		return nil, fmt.Errorf("%s: task.tokenizer: %w", cfgPath, err)
	}
	size := 0
	if v, ok := tree.At("task.data.augment.size"); ok {
		switch n := v.(type) {
		case int:
			size = n
		case int64:
			size = int(n)
		case float64:
			size = int(n)
		}
	}
	ck, err := core.LoadCheckpoint(ckpt)
	if err != nil {
		return nil, err
	}
	store := model.NewStore()
	if err := ck.Restore(store); err != nil {
		return nil, err
	}
	return &Trained{Tokenizer: tok, Spec: spec, Store: store, ImageSize: size, Checkpoint: ckpt}, nil
}

// Tokenize encodes images (n x size x size x channels float32 in [-1, 1],
// HWC) to tokens [n, h, w] and decodes them back, with the tokenizer's
// Encode and Decode.
func (t *Trained) Tokenize(backend compute.Backend, pix []float32, n, size, channels int) (tokens []int32, h, w int, rec []float32, err error) {
	exec, err := model.NewExec(backend, t.Store, func(scope *model.Scope, images *Node) []*Node {
		ids := ConvertDType(t.Tokenizer.Encode(scope.In(Scope), images), dtypes.Int32)
		return []*Node{ids, t.Tokenizer.Decode(scope.Store().Scope("/"+Scope), ids)}
	})
	if err != nil {
		return nil, 0, 0, nil, err
	}
	outs, err := exec.Exec(tensors.FromFlatDataAndDimensions(pix, n, size, size, channels))
	if err != nil {
		return nil, 0, 0, nil, fmt.Errorf("tokenizing: %w", err)
	}
	d := outs[0].Shape().Dimensions
	return tensors.MustCopyFlatData[int32](outs[0]), d[1], d[2], tensors.MustCopyFlatData[float32](outs[1]), nil
}

// check that the built-in tokenizers are trainable.
var (
	_ tokenizers.Trainable = (*tokenizers.VQVAE)(nil)
	_ tokenizers.Trainable = (*tokenizers.DVAE)(nil)
)
