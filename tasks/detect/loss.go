package detect

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified

	"github.com/peco-dev/peco/backbones/conv"
)

// BCEWithLogits is the elementwise binary cross-entropy of logits x
// against targets y in [0, 1], max(x, 0) - x*y + log(1 + exp(-|x|)).
func BCEWithLogits(x, y *Node) *Node {
	return Add(Sub(conv.ReLU(x), Mul(x, y)), Log1p(Exp(Neg(Abs(x)))))
}

// FocalLoss is the sigmoid focal loss (Lin et al.) of logits x against
// binary targets y, elementwise: alpha_t (1 - p_t)^gamma BCE(x, y) with
// p_t = p y + (1-p)(1-y), alpha_t = alpha y + (1-alpha)(1-y).
func FocalLoss(x, y *Node, alpha, gamma float64) *Node {
	p := Sigmoid(x)
	pt := Add(Mul(p, y), Mul(OneMinus(p), OneMinus(y)))
	at := AddScalar(MulScalar(y, 2*alpha-1), 1-alpha)
	return Mul(Mul(at, PowScalar(OneMinus(pt), gamma)), BCEWithLogits(x, y))
}

// GIoULoss is 1 - GIoU of predicted and target boxes given as distances
// [..., 4] (left, top, right, bottom) from the same point, elementwise
// over the leading axes.
func GIoULoss(pred, target *Node) *Node {
	side := func(x *Node, i int) *Node {
		spec := make([]SliceAxisSpec, x.Rank())
		for a := range spec {
			spec[a] = AxisRange()
		}
		spec[len(spec)-1] = AxisElem(i)
		return Squeeze(Slice(x, spec...), -1)
	}
	pl, pt, pr, pb := side(pred, 0), side(pred, 1), side(pred, 2), side(pred, 3)
	tl, tt, tr, tb := side(target, 0), side(target, 1), side(target, 2), side(target, 3)
	pArea := Mul(Add(pl, pr), Add(pt, pb))
	tArea := Mul(Add(tl, tr), Add(tt, tb))
	iw := Add(Min(pl, tl), Min(pr, tr))
	ih := Add(Min(pt, tt), Min(pb, tb))
	inter := Mul(conv.ReLU(iw), conv.ReLU(ih))
	union := Sub(Add(pArea, tArea), inter)
	cw := Add(Max(pl, tl), Max(pr, tr))
	ch := Add(Max(pt, tt), Max(pb, tb))
	enclose := Mul(cw, ch)
	eps := 1e-7
	iou := Div(inter, AddScalar(union, eps))
	giou := Sub(iou, Div(Sub(enclose, union), AddScalar(enclose, eps)))
	return OneMinus(giou)
}

// LossWeights scales the four loss terms.
type LossWeights struct {
	Class      float64 `mapstructure:"class" doc:"weight of the focal classification loss"`
	Box        float64 `mapstructure:"box" doc:"weight of the GIoU box loss"`
	Centerness float64 `mapstructure:"centerness" doc:"weight of the centerness BCE"`
	Mask       float64 `mapstructure:"mask" doc:"weight of the prototype mask BCE"`
	// FocalAlpha and FocalGamma are the focal loss's parameters.
	FocalAlpha float64 `mapstructure:"focal_alpha" doc:"focal loss alpha (RetinaNet/FCOS: 0.25)"`
	FocalGamma float64 `mapstructure:"focal_gamma" doc:"focal loss gamma (RetinaNet/FCOS: 2)"`
}

// Batch holds the training targets of a batch as graph inputs (B images,
// N locations, P sampled mask positives, Hp x Wp prototype cells).
type Batch struct {
	Class      *Node // [B, N] int32, -1 background
	Weight     *Node // [B, N] classification weight (0: ignored)
	LTRB       *Node // [B, N, 4]
	Centerness *Node // [B, N]
	MaskLoc    *Node // [B, P] int32 locations of the sampled positives
	MaskWeight *Node // [B, P] 1, or 0 for padding
	MaskTarget *Node // [B, P, Hp, Wp] the GT instance mask at prototype resolution
	MaskCrop   *Node // [B, P, Hp, Wp] 1 inside the GT box
}

// Losses are FCOS's three terms and the mask term.
type Losses struct {
	Total, Class, Box, Centerness, Mask *Node
}

// Loss computes the detector's training loss: the focal loss over every
// location and class (ignored locations weighted 0) divided by the number
// of positives; GIoU over the positives weighted by their centerness
// targets and divided by the targets' sum; centerness BCE over the
// positives divided by their number; and the mask BCE of the sampled
// positives, each averaged inside its GT box and then over the samples.
func Loss(o Outputs, t Batch, w LossWeights) Losses {
	g := o.ClassLogits.Graph()
	dt := o.ClassLogits.DType()
	k := o.ClassLogits.Shape().Dim(-1)
	zero := ScalarZero(g, t.Class.DType())
	pos := ConvertDType(GreaterOrEqual(t.Class, zero), dt) // [B, N]
	one := ScalarOne(g, dt)
	numPos := Max(ReduceAllSum(pos), one)

	onehot := Mul(OneHot(Max(t.Class, zero), k, dt), ExpandAxes(pos, -1))
	focal := FocalLoss(o.ClassLogits, onehot, w.FocalAlpha, w.FocalGamma)
	clsLoss := Div(ReduceAllSum(Mul(focal, ExpandAxes(t.Weight, -1))), numPos)

	ctrW := Mul(t.Centerness, pos)
	safeT := Add(t.LTRB, ExpandAxes(OneMinus(pos), -1)) // non-positives get a unit box: finite, weighted 0
	giou := GIoULoss(o.LTRB, safeT)
	boxLoss := Div(ReduceAllSum(Mul(giou, ctrW)), Max(ReduceAllSum(ctrW), ScalarOne(g, dt)))

	ctrLoss := Div(ReduceAllSum(Mul(BCEWithLogits(o.CenternessLogits, t.Centerness), pos)), numPos)

	n := o.Coeffs.Shape().Dim(1)
	sel := OneHot(t.MaskLoc, n, dt)                      // [B, P, N]
	coeffs := Einsum("bpn,bnk->bpk", sel, o.Coeffs)      // [B, P, K]
	logits := Einsum("bpk,bhwk->bphw", coeffs, o.Protos) // [B, P, Hp, Wp]
	bce := Mul(BCEWithLogits(logits, t.MaskTarget), t.MaskCrop)
	perInst := Div(ReduceSum(bce, 2, 3), Max(ReduceSum(t.MaskCrop, 2, 3), one))
	maskLoss := Div(ReduceAllSum(Mul(perInst, t.MaskWeight)), Max(ReduceAllSum(t.MaskWeight), one))

	total := Add(Add(MulScalar(clsLoss, w.Class), MulScalar(boxLoss, w.Box)),
		Add(MulScalar(ctrLoss, w.Centerness), MulScalar(maskLoss, w.Mask)))
	return Losses{Total: total, Class: clsLoss, Box: boxLoss, Centerness: ctrLoss, Mask: maskLoss}
}
