package core

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"
)

// Target is what masked image modeling predicts for each masked patch of the
// target view (the tokenizer's view: same crop and flip as the model's):
// token ids of a frozen tokenizer (discrete targets, BEiT/PeCo) or one
// vector per patch such as its normalised pixels (continuous targets, the
// pixel ablation). The MIM loss is a separate component (`loss:`); the MIM
// task hands it "logits" and "labels" for discrete targets, "reconstruction"
// (the prediction) and "input" (the target) for continuous ones, and
// "weights" when only some rows count.
type Target interface {
	// Discrete reports whether the targets are token ids.
	Discrete() bool
	// Dim is the width of the prediction head for a view of h x w pixels
	// and c channels on a gridH x gridW patch grid: the vocabulary size, or
	// the values per patch. It fails when the geometry does not fit.
	Dim(h, w, c, gridH, gridW int) (int, error)
	// Compute maps the target view [B, H, W, C] to per-patch targets,
	// without gradient: [B, gridH*gridW] int32 token ids, or
	// [B, gridH*gridW, Dim] float32. Variables it uses (a tokenizer's)
	// live under scope and are not trained.
	Compute(scope *model.Scope, view *Node, gridH, gridW int) (*Node, error)
}

// TokenSource is implemented by discrete targets that come from a
// tokenizer. The MIM task uses it to compute the tokens of a dataset once,
// before training, and cache them on disk, when PrecomputedViews is > 0.
type TokenSource interface {
	Target
	// Tokenizer is the frozen tokenizer whose tokens are the targets.
	Tokenizer() Tokenizer
	// PrecomputedViews is the number of augmented views per training image
	// whose tokens are computed ahead (epoch e trains on view e mod
	// PrecomputedViews); 0 computes the tokens in the training step.
	PrecomputedViews() int
	// CacheKey identifies the tokenizer's weights (its checkpoint file,
	// size and modification time), so that cached tokens are only reused
	// for the same tokenizer.
	CacheKey() string
	// CacheDir is the folder where the tokens of this tokenizer are cached
	// (inside the tokenizer's run directory).
	CacheDir() string
}
