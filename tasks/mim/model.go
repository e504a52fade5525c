package mim

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
)

// Store scopes of the MIM model's parts. The backbone's scope is what the
// classification task loads from a pre-training checkpoint.
const (
	BackboneScope  = "backbone"
	TokenizerScope = "tokenizer"
	HeadScope      = "lm_head"
)

// Network is BEiT's masked-image-modeling model: the backbone sees the image
// with masked patches replaced by its [MASK] token, a linear head maps the
// output features of the masked patches (or of all patches, with
// PredictAll) to the target's space, and the loss scores the predictions
// against the target of those patches.
type Network struct {
	Backbone core.Backbone
	Target   core.Target
	Loss     core.Loss
	// Dim is the head's width (the target's Dim for the target view).
	Dim          int
	GridH, GridW int
	// NumMasked is the fixed number of masked patches per image.
	NumMasked int
	// PredictAll scores every patch instead of the masked ones (BEiT's
	// "predict all tokens" ablation); accuracy still counts masked patches.
	PredictAll bool
}

// Objective builds the training (or evaluation) objective of one batch:
//
//	images  [B, H, W, C]  the model's view
//	view    [B, h, w, C]  the target view of the same crop, or, for
//	                      precomputed targets, their token ids [B, N] int32
//	mask    [B, N]        1 (or true) for masked patches
//	index   [B*NumMasked] int32 flat indices b*N + patch of the masked
//	                      patches, per image in increasing order
//
// It returns the scalar loss (weighted by the loss's weight) and the
// number of masked patches whose token is predicted right (0 for
// continuous targets). The target runs under scope "tokenizer" (its
// variables frozen), the backbone under "backbone", the head under
// "lm_head". Graph-building errors panic, as GoMLX's own do.
func (n *Network) Objective(scope *model.Scope, images, view, mask, index *Node, training bool) (loss, correct *Node) {
	pred, targets, rowMask := n.Predict(scope, images, view, mask, index, training)
	l, err := n.Loss.Compute(scope, n.LossInputs(pred, targets))
	if err != nil {
		kind := "continuous targets: the loss gets \"reconstruction\" (the prediction) and \"input\" (the target), e.g. l2"
		if n.Target.Discrete() {
			kind = "token targets: the loss gets \"logits\" and \"labels\", e.g. cross_entropy"
		}
		exceptions.Panicf("mim: loss: %v (%s)", err, kind)
	}
	return MulScalar(l, n.Loss.Weight()), n.Correct(pred, targets, rowMask)
}

// Predict runs the backbone and the head on the scored rows (see Rows): the
// predictions [R, Dim], their targets and, with PredictAll, the row mask.
func (n *Network) Predict(scope *model.Scope, images, view, mask, index *Node, training bool) (pred, targets, rowMask *Node) {
	feats, targets, rowMask := n.Rows(scope, images, view, mask, index, training)
	return n.Head(scope.In(HeadScope), feats), targets, rowMask
}

// LossInputNames are the names the loss reads the predictions and the
// targets under: "logits" and "labels" for token targets, "reconstruction"
// and "input" for continuous ones. The prediction is the input a loss
// computed outside the graph returns the gradient of.
func (n *Network) LossInputNames() (pred, target string) {
	if n.Target.Discrete() {
		return "logits", "labels"
	}
	return "reconstruction", "input"
}

// LossInputs names the predictions and targets as the loss reads them.
func (n *Network) LossInputs(pred, targets *Node) map[string]*Node {
	p, t := n.LossInputNames()
	return map[string]*Node{p: pred, t: targets}
}

// Correct counts the masked patches whose token is predicted right (0 for
// continuous targets).
func (n *Network) Correct(pred, targets, rowMask *Node) *Node {
	if !n.Target.Discrete() {
		return ScalarZero(pred.Graph(), dtypes.Float32)
	}
	hit := ConvertDType(Equal(ArgMax(pred, -1, dtypes.Int32), ConvertDType(targets, dtypes.Int32)), dtypes.Float32)
	if rowMask != nil {
		hit = Mul(hit, rowMask)
	}
	return ReduceAllSum(hit)
}

// Rows computes the backbone features [R, D] and the targets of the scored
// rows (R = B*NumMasked, or B*N with PredictAll), plus, with PredictAll, the
// [R] 0/1 mask of the masked rows (nil otherwise). A view of rank 2 holds
// precomputed token ids.
func (n *Network) Rows(scope *model.Scope, images, view, mask, index *Node, training bool) (feats, targets, rowMask *Node) {
	if view.Rank() == 2 {
		targets = StopGradient(ConvertDType(view, dtypes.Int32))
	} else {
		tokScope := scope.In(TokenizerScope)
		var err error
		if targets, err = n.Target.Compute(tokScope, view, n.GridH, n.GridW); err != nil {
			exceptions.Panicf("mim: %v", err)
		}
		ckpt.FreezeScope(scope.Store(), tokScope.Scope())
	}

	f := n.Backbone.Forward(scope.In(BackboneScope), images, core.ForwardOptions{Mask: mask, Training: training})
	x := f.Tokens
	if f.HasCLS {
		x = Slice(x, AxisRange(), AxisRange(1), AxisRange())
	}
	b, np, d := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2)
	if np != n.GridH*n.GridW {
		exceptions.Panicf("mim: backbone gives %d patch tokens, want %dx%d", np, n.GridH, n.GridW)
	}
	x = Reshape(x, b*np, d)
	flatTargets := Reshape(targets, append([]int{b * np}, targets.Shape().Dimensions[2:]...)...)
	if n.PredictAll {
		return x, flatTargets, Reshape(ConvertDType(mask, dtypes.Float32), b*np)
	}
	if index.Shape().Size() != b*n.NumMasked {
		exceptions.Panicf("mim: index has %d entries, want batch %d x %d masked", index.Shape().Size(), b, n.NumMasked)
	}
	idx := Reshape(ConvertDType(index, dtypes.Int32), b*n.NumMasked, 1)
	return Gather(x, idx, true), Gather(flatTargets, idx, true), nil
}

// Head is BEiT's lm_head: a linear layer on the features (weights
// truncated-normal-like std 0.02, zero bias) to the target's Dim.
func (n *Network) Head(scope *model.Scope, x *Node) *Node {
	g := x.Graph()
	d, k := x.Shape().Dim(-1), n.Dim
	w := scope.WithInitializer(initializer.RandomNormalFn(scope, 0.02)).
		VariableWithShape("weight", shapes.Make(dtypes.Float32, d, k)).NodeValue(g)
	bias := scope.WithInitializer(initializer.Zero).VariableWithShape("bias", shapes.Make(dtypes.Float32, k)).NodeValue(g)
	return Add(MatMul(x, w), ExpandLeftToRank(bias, 2))
}
