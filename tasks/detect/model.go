package detect

import (
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/backbones/conv"
	"github.com/peco-dev/peco/core"
)

// Store scopes of the detector; the backbone's is where a MIM or
// classification run's /backbone weights go.
const (
	BackboneScope = "backbone"
	NeckScope     = "neck"
	HeadScope     = "head"
	ProtoScope    = "protonet"
)

// Network is the detector: a ViT, ViTDet's simple feature pyramid built
// from its last feature map (one level per stride: x2 upsamplings for
// strides finer than the patch, the map itself at the patch stride, x2
// max-pools for coarser ones), an FCOS head shared by all levels
// (classification tower -> per-class logits; box tower -> ltrb distances,
// centerness and YOLACT mask coefficients) and a YOLACT prototype net on
// the finest level.
type Network struct {
	Backbone   core.PatchBackbone
	PatchSize  int
	Strides    []int
	Channels   int
	Groups     int
	NumClasses int
	// TowerDepth is the number of 3x3 conv + GroupNorm + ReLU layers of
	// each head tower.
	TowerDepth int
	// Prototypes is the number of prototype masks (YOLACT's k).
	Prototypes int
	// Prior is the initial foreground probability of the classifier
	// (FCOS: 0.01), so the focal loss starts small.
	Prior float64
}

// Outputs are the detector's predictions for a batch, locations of all
// levels concatenated (levels in order, each row-major: N in total).
type Outputs struct {
	// ClassLogits [B, N, K].
	ClassLogits *Node
	// LTRB [B, N, 4] are the predicted distances in input pixels (> 0).
	LTRB *Node
	// CenternessLogits [B, N].
	CenternessLogits *Node
	// Coeffs [B, N, P] are the mask coefficients (tanh).
	Coeffs *Node
	// Protos [B, Hp, Wp, P] are the prototype masks, at half the finest
	// level's stride.
	Protos *Node
}

// ProtoStride is the prototypes' cell size in input pixels.
func (n *Network) ProtoStride() int { return n.Strides[0] / 2 }

// Forward runs the detector on images [B, S, S, C].
func (n *Network) Forward(scope *model.Scope, images *Node, training bool) Outputs {
	f := n.Backbone.Forward(scope.In(BackboneScope), images, core.ForwardOptions{Training: training})
	b := images.Shape().Dim(0)
	x := f.Tokens
	if f.HasCLS {
		x = Slice(x, AxisRange(), AxisRange(1), AxisRange())
	}
	x = Reshape(x, b, f.GridH, f.GridW, x.Shape().Dim(-1))

	levels := n.pyramid(scope.In(NeckScope), x)
	protos := n.protonet(scope.In(ProtoScope), levels[0])

	hs := scope.In(HeadScope)
	var cls, ltrb, ctr, coeffs []*Node
	for i, p := range levels {
		c, l, t, m := n.head(hs, p, i)
		cls, ltrb, ctr, coeffs = append(cls, c), append(ltrb, l), append(ctr, t), append(coeffs, m)
	}
	return Outputs{
		ClassLogits:      Concatenate(cls, 1),
		LTRB:             Concatenate(ltrb, 1),
		CenternessLogits: Concatenate(ctr, 1),
		Coeffs:           Concatenate(coeffs, 1),
		Protos:           protos,
	}
}

// pyramid is ViTDet's simple feature pyramid on the last map x [B, h, w,
// D] (stride PatchSize): a 1x1 projection to Channels with GroupNorm, then
// per stride x2 nearest upsamplings each followed by a 3x3 conv (GroupNorm
// and GELU between them) or x2 max-pools, and a 3x3 output conv with
// GroupNorm.
func (n *Network) pyramid(scope *model.Scope, x *Node) []*Node {
	base := conv.GroupNorm(scope.In("proj_norm"), conv.Conv2D(scope.In("proj"), x, n.Channels, 1, 1, 0), n.Groups)
	var out []*Node
	for i, s := range n.Strides {
		ls := scope.In("level%d", i)
		y := base
		switch {
		case s < n.PatchSize:
			steps := log2(n.PatchSize / s)
			for j := range steps {
				y = conv.Conv2D(ls.In("up%d", j), conv.Upsample2x(y), n.Channels, 3, 1, 1)
				y = activation.Gelu(conv.GroupNorm(ls.In("up_norm%d", j), y, n.Groups))
			}
		case s > n.PatchSize:
			for range log2(s / n.PatchSize) {
				y = conv.MaxPool2x(y)
			}
		}
		y = conv.GroupNorm(ls.In("out_norm"), conv.Conv2D(ls.In("out"), y, n.Channels, 3, 1, 1), n.Groups)
		out = append(out, y)
	}
	return out
}

// protonet is YOLACT's prototype branch on the finest level: two 3x3
// convs, a x2 upsampling and a 3x3 conv (ReLU after each), a 1x1 conv to
// the prototypes and a ReLU.
func (n *Network) protonet(scope *model.Scope, x *Node) *Node {
	for i := range 2 {
		x = conv.ReLU(conv.Conv2D(scope.In("conv%d", i), x, n.Channels, 3, 1, 1))
	}
	x = conv.ReLU(conv.Conv2D(scope.In("up"), conv.Upsample2x(x), n.Channels, 3, 1, 1))
	return conv.ReLU(conv.Conv2D(scope.In("out"), x, n.Prototypes, 1, 1, 0))
}

// head is the FCOS head on level i [B, h, w, C] (its variables shared by
// all levels, through shared sub-scopes, but a learned scale per level): class logits [B, hw, K]; ltrb
// [B, hw, 4] = exp(scale_i * x) * stride_i; centerness logits [B, hw] and
// mask coefficients [B, hw, P] from the box tower.
func (n *Network) head(scope *model.Scope, x *Node, i int) (cls, ltrb, ctr, coeffs *Node) {
	b, h, w := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2)
	sub := func(format string, args ...any) *model.Scope { // level 0 creates the shared variables
		if i == 0 {
			return scope.In(format, args...)
		}
		return scope.Shared(format, args...)
	}
	tower := func(name string) *Node {
		y := x
		for j := range n.TowerDepth {
			y = conv.ReLU(conv.GroupNorm(sub("%s_norm%d", name, j), conv.Conv2D(sub("%s%d", name, j), y, n.Channels, 3, 1, 1), n.Groups))
		}
		return y
	}
	ct, bt := tower("cls_tower"), tower("box_tower")
	prior := -math.Log((1 - n.Prior) / n.Prior)
	cls = AddScalar(conv.Conv2D(sub("cls_logits"), ct, n.NumClasses, 3, 1, 1), prior)
	g := x.Graph()
	scale := scope.In("scale%d", i).VariableWithValue("scale", float32(1)).NodeValue(g)
	reg := Mul(conv.Conv2D(sub("bbox_pred"), bt, 4, 3, 1, 1), scale)
	ltrb = MulScalar(Exp(MinScalar(reg, 10)), float64(n.Strides[i]))
	ctr = conv.Conv2D(sub("centerness"), bt, 1, 3, 1, 1)
	coeffs = Tanh(conv.Conv2D(sub("coeffs"), bt, n.Prototypes, 3, 1, 1))
	return Reshape(cls, b, h*w, n.NumClasses), Reshape(ltrb, b, h*w, 4), Reshape(ctr, b, h*w), Reshape(coeffs, b, h*w, n.Prototypes)
}

// log2 is the base-2 logarithm of a power of two.
func log2(v int) int {
	k := 0
	for ; v > 1; v >>= 1 {
		k++
	}
	return k
}
