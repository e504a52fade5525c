// Package core is the contract between peco's parts: the interfaces every
// component of a PeCo/BEiT experiment implements (Backbone, Tokenizer, Loss,
// Target, Task), the optional capabilities a task may ask of a component
// (contract.go), the small value types they share (Features, Env, the run
// directory's layout) and their registries. It holds no component and no
// run machinery: those live in the packages that plug into it (core/run
// runs a task, core/ckpt reads and writes checkpoints and earlier runs;
// backbones/, tokenizers/, targets/, losses/, tasks/ hold the components).
package core

import (
	"context"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/registry"
)

// Features is what a Backbone produces for a batch of images.
type Features struct {
	// Tokens holds the final per-token features, [batch, tokens, dim]. When
	// HasCLS is true, token 0 is the [CLS] token and the rest are patches in
	// row-major grid order.
	Tokens *graph.Node
	// Layers holds the output of each block (same layout as Tokens), for dense
	// heads and linear probes on intermediate layers.
	Layers []*graph.Node
	// HasCLS reports whether token 0 is a [CLS] token.
	HasCLS bool
	// GridH, GridW are the patch grid's size.
	GridH, GridW int
}

// ForwardOptions controls one forward pass of a Backbone.
type ForwardOptions struct {
	// Mask is an optional [batch, GridH*GridW] boolean node: true marks a
	// patch whose embedding is replaced by the learned [MASK] token.
	Mask *graph.Node
	// Training enables stochastic parts (drop path, dropout).
	Training bool
}

// Backbone maps a batch of images [batch, height, width, channels] (float32,
// normalised as the backbone's config says) to features per token.
type Backbone interface {
	Forward(scope *model.Scope, images *graph.Node, opts ForwardOptions) Features
	// Dim is the feature width of Features.Tokens.
	Dim() int
}

// TokenizerNorm is the normalisation (the data package's preset name) of
// the images every Tokenizer takes and returns: [-1, 1].
const TokenizerNorm = "half"

// Tokenizer maps images (normalised as TokenizerNorm) to discrete tokens on
// a grid and back.
type Tokenizer interface {
	// VocabSize is the number of distinct tokens.
	VocabSize() int
	// Encode maps images [batch, H, W, C] to token ids [batch, h, w] (int32).
	Encode(scope *model.Scope, images *graph.Node) *graph.Node
	// Decode maps token ids [batch, h, w] back to images [batch, H, W, C].
	Decode(scope *model.Scope, tokens *graph.Node) *graph.Node
}

// Loss builds a scalar loss term from named graph inputs, e.g. "logits" and
// "labels", or "input" and "reconstruction". Which names a loss reads is part
// of its documentation; a missing input is reported by the loss as an error.
type Loss interface {
	// Compute returns the unweighted scalar loss.
	Compute(scope *model.Scope, inputs map[string]*graph.Node) (*graph.Node, error)
	// Weight is the term's weight in a composite loss.
	Weight() float64
}

// Task is everything that is trained or evaluated: it reads its data, builds
// its model from its components and writes metrics, checkpoints and images
// into the run directory held by env.
type Task interface {
	Run(ctx context.Context, env *Env) error
}

// The registries of the component kinds. Other packages register factories
// into them in their init functions.
var (
	Backbones  = registry.NewRegistry[Backbone]("backbone", "networks mapping images to per-token features")
	Tokenizers = registry.NewRegistry[Tokenizer]("tokenizer", "visual tokenizers mapping images to discrete tokens and back")
	Losses     = registry.NewRegistry[Loss]("loss", "loss terms, each with a weight")
	Targets    = registry.NewRegistry[Target]("target", "what masked image modeling predicts per patch: tokens of a frozen tokenizer, or pixels")
	Tasks      = registry.NewRegistry[Task]("task", "what a run trains or evaluates")
)
