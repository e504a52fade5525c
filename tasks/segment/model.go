package segment

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/peco-dev/peco/backbones/conv"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/data"
)

// Store scopes of the segmentation model; the backbone's is where a MIM or
// classification run's /backbone weights go.
const (
	BackboneScope = "backbone"
	DecoderScope  = "decode_head"
)

// Network is BEiT's semantic segmentation model: a ViT whose block outputs
// at four depths become a feature pyramid (strides 4, 8, 16, 32 for patch
// 16: upsampled x4 and x2, as is, downsampled x2), fused by an FPN decoder
// (UperNet's top-down path without the pyramid pooling module) and a
// per-pixel classifier, upsampled to the input size.
type Network struct {
	Backbone core.PatchBackbone
	// Layers are the four block indices whose outputs feed the pyramid.
	Layers     [4]int
	Channels   int
	NumClasses int
	Groups     int
}

// Logits maps images [B, S, S, C] to per-pixel logits [B, S, S, K].
func (n *Network) Logits(scope *model.Scope, images *Node, training bool) *Node {
	f := n.Backbone.Forward(scope.In(BackboneScope), images, core.ForwardOptions{Training: training})
	gh, gw := f.GridH, f.GridW
	if len(f.Layers) <= max(n.Layers[0], n.Layers[1], n.Layers[2], n.Layers[3]) {
		exceptions.Panicf("segmentation: the backbone gives %d block outputs, decoder layers %v", len(f.Layers), n.Layers)
	}
	b := images.Shape().Dim(0)
	grid := func(x *Node) *Node { // [B, T, D] -> [B, gh, gw, D], dropping [CLS]
		if f.HasCLS {
			x = Slice(x, AxisRange(), AxisRange(1), AxisRange())
		}
		return Reshape(x, b, gh, gw, x.Shape().Dim(-1))
	}
	ds := scope.In(DecoderScope)
	// The pyramid (BEiT: fpn1 = 2 transposed convs, fpn2 = 1, fpn3 = identity,
	// fpn4 = max-pool; here each x2 is a nearest upsample and a 3x3 conv).
	up := func(s *model.Scope, x *Node, times int) *Node {
		for i := range times {
			x = conv.Upsample2x(x)
			x = conv.Conv2D(s.In("up%d", i), x, x.Shape().Dim(-1), 3, 1, 1)
			if i < times-1 {
				x = activation.Gelu(conv.GroupNorm(s.In("norm%d", i), x, n.Groups))
			}
		}
		return x
	}
	feats := []*Node{
		up(ds.In("fpn1"), grid(f.Layers[n.Layers[0]]), 2),
		up(ds.In("fpn2"), grid(f.Layers[n.Layers[1]]), 1),
		grid(f.Layers[n.Layers[2]]),
		conv.MaxPool2x(grid(f.Layers[n.Layers[3]])),
	}
	// FPN: lateral 1x1 convs, top-down sums, 3x3 output convs, fused at the
	// finest level.
	lat := make([]*Node, 4)
	for i, x := range feats {
		lat[i] = conv.ReLU(conv.Conv2D(ds.In("lateral%d", i), x, n.Channels, 1, 1, 0))
	}
	for i := 2; i >= 0; i-- {
		lat[i] = Add(lat[i], resizeTo(lat[i+1], lat[i].Shape().Dim(1), lat[i].Shape().Dim(2)))
	}
	h, w := lat[0].Shape().Dim(1), lat[0].Shape().Dim(2)
	var outs []*Node
	for i, x := range lat {
		o := conv.ReLU(conv.GroupNorm(ds.In("fpn_norm%d", i), conv.Conv2D(ds.In("fpn_conv%d", i), x, n.Channels, 3, 1, 1), n.Groups))
		outs = append(outs, resizeTo(o, h, w))
	}
	fused := conv.ReLU(conv.GroupNorm(ds.In("fuse_norm"), conv.Conv2D(ds.In("fuse"), Concatenate(outs, -1), n.Channels, 3, 1, 1), n.Groups))
	logits := conv.Conv2D(ds.In("cls"), fused, n.NumClasses, 1, 1, 0)
	s := images.Shape().Dim(1)
	return resizeTo(logits, s, images.Shape().Dim(2))
}

// resizeTo resizes [B, H, W, C] bilinearly to [B, h, w, C] with half-pixel
// centres (align_corners=False, as mmseg), as two products with constant
// interpolation matrices: differentiable, and cheap at these sizes.
func resizeTo(x *Node, h, w int) *Node {
	if x.Shape().Dim(1) == h && x.Shape().Dim(2) == w {
		return x
	}
	g := x.Graph()
	mh := Const(g, tensors.FromFlatDataAndDimensions(interpMatrix(h, x.Shape().Dim(1)), h, x.Shape().Dim(1)))
	mw := Const(g, tensors.FromFlatDataAndDimensions(interpMatrix(w, x.Shape().Dim(2)), w, x.Shape().Dim(2)))
	x = Einsum("oh,bhwc->bowc", ConvertDType(mh, x.DType()), x)
	return Einsum("pw,bowc->bopc", ConvertDType(mw, x.DType()), x)
}

// interpMatrix is the [out, in] matrix of 1-D bilinear interpolation with
// half-pixel centres: data.ResizeGrid (the host-side resize of the
// evaluation) applied to the identity, so the graph and the host resize alike.
func interpMatrix(out, in int) []float32 {
	id := make([]float32, in*in)
	for i := range in {
		id[i*in+i] = 1
	}
	return data.ResizeGrid(id, in, 1, in, out, 1)
}

// PixelLoss is the mean cross-entropy over the pixels whose label is not
// ignored: logits [B, S, S, K], labels [B, S, S] int32 with -1 for ignore.
func PixelLoss(logits, labels *Node) *Node {
	k := logits.Shape().Dim(-1)
	valid := ConvertDType(GreaterOrEqual(labels, ScalarZero(labels.Graph(), labels.DType())), logits.DType())
	safe := Max(labels, ScalarZero(labels.Graph(), labels.DType()))
	logp := LogSoftmax(logits, -1)
	nll := Neg(ReduceSum(Mul(OneHot(safe, k, logits.DType()), logp), -1))
	return Div(ReduceAllSum(Mul(nll, valid)), Max(ReduceAllSum(valid), ScalarOne(logits.Graph(), logits.DType())))
}
