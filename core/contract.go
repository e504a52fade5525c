package core

import (
	"context"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// This file holds the capabilities a task may need from a component beyond
// its kind's interface. A task asks for one with a type assertion to the
// interface declared here, and says in its error which interface is missing;
// components implement them without importing any task.

// PatchBackbone is a Backbone of fixed input geometry whose Features.Tokens
// hold one token per patch of a grid (after an optional [CLS]): what masked
// image modeling needs to mask patches and score them.
type PatchBackbone interface {
	Backbone
	// InputShape is the (height, width, channels) of the images it takes.
	InputShape() (h, w, c int)
	// PatchGrid is the patch grid (rows, columns) of Features.Tokens.
	PatchGrid() (rows, cols int)
}

// LayeredBackbone is a Backbone made of a stack of blocks, for layer-wise
// learning-rate decay (BEiT fine-tuning).
type LayeredBackbone interface {
	Backbone
	// NumLayers is the number of blocks.
	NumLayers() int
	// LayerID maps a variable path to its decay group: 0 for the embeddings,
	// i+1 for block i, NumLayers()+1 for everything after the blocks.
	LayerID(variablePath string) int
}

// TokenizerOutput is one training (or evaluation) forward pass of a
// TrainableTokenizer.
type TokenizerOutput struct {
	// Reconstruction is the decoded image [B, H, W, C] in [-1, 1] (roughly:
	// a VQ-VAE's decoder output is not clipped).
	Reconstruction *Node
	// Tokens holds the token ids [B, h, w] int32.
	Tokens *Node
	// Terms are the named inputs of the tokenizer's loss terms, e.g. "z",
	// "z_q" (vqvae) or "logits", "mu", "log_b", "kl_ramp" (dvae). The
	// tokenizer task adds "input" (the images) and "reconstruction".
	Terms map[string]*Node
}

// TrainableTokenizer is a Tokenizer the tokenizer task can train.
type TrainableTokenizer interface {
	Tokenizer
	// Forward runs encoder, quantisation and decoder on images
	// [B, H, W, C]. With training, stochastic parts (Gumbel noise) and
	// in-graph state updates (EMA codebook, dead-code restarts) are on.
	Forward(scope *model.Scope, images *Node, training bool) TokenizerOutput
	// Grid is the token grid of a square imageSize x imageSize image.
	Grid(imageSize int) (h, w int)
	// Prepare sets the host-computed, step-dependent scalars (e.g. the
	// Gumbel temperature) in the tokenizer's scope before a training step
	// of total; it returns them for logging (nil when there are none).
	Prepare(scope *model.Scope, step, total int) (map[string]float64, error)
}

// BatchInitializer is implemented by tokenizers that initialise state from
// the first training batch (a VQ-VAE's codebook). The tokenizer task builds
// and runs InitFromBatch once, before the first step of a fresh run.
type BatchInitializer interface {
	InitFromBatch(scope *model.Scope, images *Node)
}

// Restorer is implemented by components that carry trained weights from an
// earlier run (a tokens target naming a tokenizer run, say). The task calls
// Restore once on a fresh store, before any graph is built: it puts the
// weights under scope and marks them non-trainable.
type Restorer interface {
	Restore(store *model.Store, scope string) error
}

// LabelSmoother is implemented by classification losses that smooth integer
// labels; a task that builds soft targets itself (Mixup/CutMix) applies the
// same smoothing.
type LabelSmoother interface {
	LabelSmoothing() float64
}

// WeightCarrier is implemented by components that bring their own trained
// weights (a MobileNet imported from a TFLite file): HasWeights reports
// whether this one has them. A component without it starts from random
// weights unless a config loads some (`from:`).
type WeightCarrier interface {
	HasWeights() bool
}

// ConvolutionAdvisor is implemented by compute backends that say whether
// their ConvGeneral beats an explicit im2col matmul (peco's cpu backend
// does). Graph builders (backbones/conv) ask it rather than the backend's
// name; a backend without it gets im2col.
type ConvolutionAdvisor interface {
	PrefersNativeConvolution() bool
}

// ExternalLoss is a Loss computed outside the graph, by an out-of-process
// plugin say. Its Compute returns an error naming what supports it; a task
// that does runs its model forward to the loss's inputs, calls Evaluate
// with their values, and trains on the surrogate
//
//	sum(stop_grad(g) * x) + stop_grad(L - sum(g * x))
//
// whose value is L and whose gradient with respect to each input x is the
// returned g, so the model gets exact gradients.
type ExternalLoss interface {
	Loss
	// Evaluate returns the unweighted loss and d loss / d input for each
	// name of gradFor, shaped as that input. step is the optimizer step
	// (evaluation calls pass training false).
	Evaluate(ctx context.Context, step int64, inputs map[string]*tensors.Tensor, gradFor []string, training bool) (float64, map[string]*tensors.Tensor, error)
}

// ExternalTokenizer is a Tokenizer that runs outside the graph (a plugin):
// a MIM target built on it computes its tokens on the host, per batch or
// into the precomputed-token cache, instead of in the step's graph.
type ExternalTokenizer interface {
	Tokenizer
	// EncodeImages maps images [B, H, W, C] (float32, TokenizerNorm) to
	// token ids [B, h, w] (int32).
	EncodeImages(ctx context.Context, images *tensors.Tensor) (*tensors.Tensor, error)
	// Grid returns the token grid of images of the given size.
	Grid(height, width, channels int) (gh, gw int, err error)
}

// Stateful is implemented by components that keep state outside the
// model's store (a plugin's own state): the training loop saves it into
// each checkpoint under StateKey and loads it when the run resumes.
type Stateful interface {
	StateKey() string
	SaveState(step int64) ([]byte, error)
	LoadState(state []byte) error
}

// StatefulOf returns the components that are Stateful.
func StatefulOf(components ...any) []Stateful {
	var out []Stateful
	for _, c := range components {
		if s, ok := c.(Stateful); ok {
			out = append(out, s)
		}
	}
	return out
}

// PluginUse describes an out-of-process plugin a run uses, for meta.json.
type PluginUse struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
}

// PluginConfig is implemented by the config of a component provided by a
// plugin: the run records what it says in meta.json.
type PluginConfig interface {
	PluginUse() PluginUse
}

// Process is implemented by components that run in a process of their own
// (plugins). A task starts them with StartProcesses before it builds its
// graphs and stops them when it ends.
type Process interface {
	// StartProcess starts the process for the run of env: its seed, and
	// its directory, where the process's stderr goes (PluginLogFile).
	StartProcess(env *Env) error
	// Close ends the process; it may be called more than once.
	Close() error
}

// StartProcesses starts every component that is a Process; stop closes
// them all. On an error the ones started are closed.
func StartProcesses(env *Env, components ...any) (stop func(), err error) {
	var started []Process
	stop = func() {
		for _, p := range started {
			_ = p.Close()
		}
	}
	for _, c := range components {
		if p, ok := c.(Process); ok {
			if err := p.StartProcess(env); err != nil {
				stop()
				return func() {}, err
			}
			started = append(started, p)
		}
	}
	return stop, nil
}

// PositionAdapter is implemented by backbones whose position parameters
// depend on the input size (a ViT's pos_embed and relative position bias):
// a task loading weights trained at another resolution asks it to resize
// them to its own.
type PositionAdapter interface {
	// AdaptPosition returns variable name's value t resized to this
	// backbone's geometry, ok false when it needs no change.
	AdaptPosition(name string, t *tensors.Tensor) (out *tensors.Tensor, ok bool, err error)
}
