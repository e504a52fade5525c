package tokenizer

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/registry"
)

// Trained is a tokenizer loaded from a tokenizer run.
type Trained struct {
	// Tokenizer is the built tokenizer.
	Tokenizer core.Tokenizer
	// Spec is its spec, as in the run's config (task.tokenizer).
	Spec registry.Spec[core.Tokenizer]
	// Store holds its variables under /tokenizer, frozen.
	Store *model.Store
	// ImageSize is the run's task.data.augment.size (0 when absent).
	ImageSize int
	// Channels is the image channels the tokenizer takes, its
	// task.tokenizer.in_channels (0 when the config has no such key, as
	// plugin tokenizers).
	Channels int
	// Checkpoint is the checkpoint file read.
	Checkpoint string
}

// LoadTrained loads the tokenizer of a tokenizer run. ref is a checkpoint
// file, a run directory or a folder of runs (see ckpt.Resolve). The spec at
// task.tokenizer of config.yaml is decoded strictly with the registry.
func LoadTrained(ref string) (*Trained, error) {
	r, err := ckpt.OpenRun(ref)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	spec, err := ckpt.Spec[core.Tokenizer](r, "task.tokenizer")
	if err != nil {
		return nil, err
	}
	tok, err := spec.Build()
	if err != nil {
		return nil, fmt.Errorf("run %s: task.tokenizer: %w", ref, err)
	}
	size, _ := r.Int("task.data.augment.size")
	channels, _ := r.Int("task.tokenizer.in_channels")
	store := model.NewStore()
	if err := r.Load(store, ckpt.TokenizerScope, ckpt.TokenizerScope, true); err != nil {
		return nil, fmt.Errorf("tokenizer: %w (is it a tokenizer run?)", err)
	}
	return &Trained{Tokenizer: tok, Spec: spec, Store: store, ImageSize: size, Channels: channels, Checkpoint: r.Checkpoint}, nil
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
