package mim

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/losses"
)

// Target kinds.
const (
	// TargetTokens classifies each masked patch's token among VocabSize.
	TargetTokens = "tokens"
	// TargetPixels regresses each masked patch's pixels.
	TargetPixels = "pixels"
)

// Target is what masked image modeling predicts per patch and how it is
// scored: the seam between the task and its `tokenizer:` component. Any
// core.Tokenizer gives a "tokens" target; a tokenizer with a PatchTargets
// method (tokenizers.Pixels) gives a "pixels" target.
type Target interface {
	// Kind is TargetTokens or TargetPixels.
	Kind() string
	// Dim is the width of the prediction head: the vocabulary size, or the
	// values per patch.
	Dim() int
	// Compute maps the tokenizer view [B, H, W, C] to per-patch targets
	// without gradient: [B, N] int32 token ids, or [B, N, Dim] float32.
	Compute(scope *model.Scope, view *Node, gridH, gridW int) *Node
	// Loss scores predictions [R, Dim] against the targets of the same R
	// rows ([R] or [R, Dim]); weights [R] (nil: all rows count) select the
	// rows averaged. It returns the scalar loss and the weighted count of
	// rows predicted right (top-1 token; always 0 for pixels).
	Loss(pred, target, weights *Node) (loss, correct *Node)
}

// PatchTargeter is implemented by tokenizers whose targets are continuous
// per-patch vectors (tokenizers.Pixels).
type PatchTargeter interface {
	// PatchDim is the width of one patch's target for an h x w x c view on a
	// gridH x gridW patch grid.
	PatchDim(h, w, c, gridH, gridW int) (int, error)
	// PatchTargets maps images [B, H, W, C] to [B, gridH*gridW, PatchDim].
	PatchTargets(images *Node, gridH, gridW int) *Node
}

// NewTarget makes the target of a tokenizer for a view of viewSize pixels
// square with the given channels, on a gridH x gridW patch grid.
func NewTarget(tok core.Tokenizer, viewSize, channels, gridH, gridW int) (Target, error) {
	if pt, ok := tok.(PatchTargeter); ok {
		d, err := pt.PatchDim(viewSize, viewSize, channels, gridH, gridW)
		if err != nil {
			return nil, err
		}
		return &pixelTarget{pt: pt, dim: d}, nil
	}
	if k := tok.VocabSize(); k < 2 {
		return nil, fmt.Errorf("tokenizer has a vocabulary of %d tokens, need at least 2", k)
	}
	return &tokenTarget{tok: tok}, nil
}

type tokenTarget struct{ tok core.Tokenizer }

func (t *tokenTarget) Kind() string { return TargetTokens }
func (t *tokenTarget) Dim() int     { return t.tok.VocabSize() }

func (t *tokenTarget) Compute(scope *model.Scope, view *Node, gridH, gridW int) *Node {
	ids := t.tok.Encode(scope, view)
	b := view.Shape().Dim(0)
	if ids.Rank() != 3 || ids.Shape().Dim(0) != b || ids.Shape().Dim(1) != gridH || ids.Shape().Dim(2) != gridW {
		exceptions.Panicf("mim: the tokenizer maps the %s view to tokens %s, the backbone's patch grid is %dx%d: "+
			"set data.augment.second_size so that the tokenizer's grid matches", view.Shape(), ids.Shape(), gridH, gridW)
	}
	return StopGradient(ConvertDType(Reshape(ids, b, gridH*gridW), dtypes.Int32))
}

func (t *tokenTarget) Loss(pred, target, weights *Node) (*Node, *Node) {
	in := map[string]*Node{"logits": pred, "labels": target}
	if weights != nil {
		in["weights"] = weights
	}
	loss, err := losses.CrossEntropy{Config: losses.CrossEntropyConfig{Weight: 1}}.Compute(nil, in)
	if err != nil {
		exceptions.Panicf("mim: %v", err)
	}
	hit := ConvertDType(Equal(ArgMax(pred, -1, dtypes.Int32), ConvertDType(target, dtypes.Int32)), dtypes.Float32)
	if weights != nil {
		hit = Mul(hit, ConvertDType(weights, dtypes.Float32))
	}
	return loss, ReduceAllSum(hit)
}

type pixelTarget struct {
	pt  PatchTargeter
	dim int
}

func (t *pixelTarget) Kind() string { return TargetPixels }
func (t *pixelTarget) Dim() int     { return t.dim }

func (t *pixelTarget) Compute(_ *model.Scope, view *Node, gridH, gridW int) *Node {
	return StopGradient(t.pt.PatchTargets(view, gridH, gridW))
}

// Loss is the mean squared error per row, averaged over the weighted rows.
func (t *pixelTarget) Loss(pred, target, weights *Node) (*Node, *Node) {
	perRow := ReduceMean(Square(Sub(pred, target)), -1)
	zero := ScalarZero(pred.Graph(), dtypes.Float32)
	if weights == nil {
		return ReduceAllMean(perRow), zero
	}
	w := ConvertDType(weights, perRow.DType())
	return Div(ReduceAllSum(Mul(perRow, w)), Max(ReduceAllSum(w), ScalarOne(w.Graph(), w.DType()))), zero
}
