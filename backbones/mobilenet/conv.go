package mobilenet

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/peco-dev/peco/backbones/conv"
	"github.com/peco-dev/peco/backbones/tflite"
)

// The convolutions here avoid the pure-Go backend's Convolve (about 100x
// slower than its matmul): a k x k convolution is im2col (k*k strided
// slices concatenated on the channel axis) plus one DotGeneral, a 1x1
// convolution is a plain DotGeneral, and a depthwise convolution is a sum of
// k*k strided slices, each times its per-channel weights. On peco's cpu
// backend (conv.NativeConv) a k x k convolution is one ConvGeneral instead.

// Padding returns the output size and the padding before and after of one
// spatial axis, as TFLite computes them: with tflite.Same, out = ceil(in /
// stride), total = max((out-1)*stride + (k-1)*dilation+1 - in, 0), before =
// total/2 (the extra pixel of an odd total goes after); with tflite.Valid,
// out = (in - effective k)/stride + 1 and no padding.
func Padding(p tflite.Padding, in, k, stride, dilation int) (out, before, after int) {
	eff := (k-1)*dilation + 1
	if p == tflite.Valid {
		return (in-eff)/stride + 1, 0, 0
	}
	out = (in + stride - 1) / stride
	total := max((out-1)*stride+eff-in, 0)
	return out, total / 2, total - total/2
}

// Conv2DParams are a convolution's stride, dilation and padding.
type Conv2DParams struct {
	StrideH, StrideW     int
	DilationH, DilationW int
	Padding              tflite.Padding
}

func (p Conv2DParams) norm() Conv2DParams {
	p.StrideH, p.StrideW = max(p.StrideH, 1), max(p.StrideW, 1)
	p.DilationH, p.DilationW = max(p.DilationH, 1), max(p.DilationW, 1)
	return p
}

// taps pads x [B, H, W, C] for a kh x kw window and returns, for each
// window offset (ky, kx) in row-major order, the strided slice of x whose
// element (b, oy, ox, c) is the input under that tap for output (oy, ox):
// each [B, Ho, Wo, C]. Padded positions are zero.
func taps(x *Node, kh, kw int, p Conv2DParams) (slices []*Node, ho, wo int) {
	p = p.norm()
	h, w := x.Shape().Dim(1), x.Shape().Dim(2)
	ho, pt, pb := Padding(p.Padding, h, kh, p.StrideH, p.DilationH)
	wo, pl, pr := Padding(p.Padding, w, kw, p.StrideW, p.DilationW)
	if ho <= 0 || wo <= 0 {
		exceptions.Panicf("mobilenet: %dx%d window does not fit a %dx%d input with %s padding", kh, kw, h, w, p.Padding)
	}
	if pt+pb+pl+pr > 0 {
		x = conv.ZeroPad2DAsym(x, pt, pb, pl, pr) // GoMLX's Pad has no gradient
	}
	for ky := range kh {
		for kx := range kw {
			y0, x0 := ky*p.DilationH, kx*p.DilationW
			s := Slice(x, AxisRange(),
				AxisRange(y0, y0+(ho-1)*p.StrideH+1).Stride(p.StrideH),
				AxisRange(x0, x0+(wo-1)*p.StrideW+1).Stride(p.StrideW),
				AxisRange())
			slices = append(slices, s)
		}
	}
	return slices, ho, wo
}

// Conv2D convolves x [B, H, W, Cin] with kernel [kh, kw, Cin, Cout] (HWIO),
// returning [B, Ho, Wo, Cout], as im2col and one matmul (a 1x1 stride-1
// kernel is a matmul on x directly).
func Conv2D(x, kernel *Node, p Conv2DParams) *Node {
	if x.Rank() != 4 || kernel.Rank() != 4 || kernel.Shape().Dim(2) != x.Shape().Dim(3) {
		exceptions.Panicf("mobilenet: Conv2D of %s with kernel %s: want x [B, H, W, C] and kernel [kh, kw, C, Cout]", x.Shape(), kernel.Shape())
	}
	kh, kw, cin, cout := kernel.Shape().Dim(0), kernel.Shape().Dim(1), kernel.Shape().Dim(2), kernel.Shape().Dim(3)
	p = p.norm()
	if kh == 1 && kw == 1 && p.StrideH == 1 && p.StrideW == 1 {
		return DotGeneral(x, []int{3}, nil, Reshape(kernel, cin, cout), []int{0}, nil)
	}
	if conv.NativeConv(x.Graph()) && kh%2 == 1 && kw%2 == 1 && (p.StrideH*p.StrideW == 1 || p.DilationH*p.DilationW == 1) {
		// One ConvGeneral on peco's cpu backend (odd kernels only: GoMLX's
		// input gradient is wrong for even ones; Convolve refuses strides
		// with dilations).
		_, pt, pb := Padding(p.Padding, x.Shape().Dim(1), kh, p.StrideH, p.DilationH)
		_, pl, pr := Padding(p.Padding, x.Shape().Dim(2), kw, p.StrideW, p.DilationW)
		return Convolve(x, kernel).StridePerAxis(p.StrideH, p.StrideW).DilationPerAxis(p.DilationH, p.DilationW).
			PaddingPerDim([][2]int{{pt, pb}, {pl, pr}}).Done()
	}
	cols, _, _ := taps(x, kh, kw, p)
	patches := cols[0]
	if len(cols) > 1 {
		patches = Concatenate(cols, 3) // [B, Ho, Wo, kh*kw*Cin], ordered (ky, kx, c)
	}
	return DotGeneral(patches, []int{3}, nil, Reshape(kernel, kh*kw*cin, cout), []int{0}, nil)
}

// DepthwiseConv2D convolves each channel of x [B, H, W, C] with its own
// kh x kw filter from kernel [kh, kw, C], returning [B, Ho, Wo, C]: the sum
// over the taps of the strided input slice times the tap's weights.
func DepthwiseConv2D(x, kernel *Node, p Conv2DParams) *Node {
	if x.Rank() != 4 || kernel.Rank() != 3 || kernel.Shape().Dim(2) != x.Shape().Dim(3) {
		exceptions.Panicf("mobilenet: DepthwiseConv2D of %s with kernel %s: want x [B, H, W, C] and kernel [kh, kw, C]", x.Shape(), kernel.Shape())
	}
	kh, kw, c := kernel.Shape().Dim(0), kernel.Shape().Dim(1), kernel.Shape().Dim(2)
	cols, _, _ := taps(x, kh, kw, p)
	var sum *Node
	for i, s := range cols {
		w := Reshape(Slice(kernel, AxisElem(i/kw), AxisElem(i%kw), AxisRange()), 1, 1, 1, c)
		term := Mul(s, w)
		if sum == nil {
			sum = term
		} else {
			sum = Add(sum, term)
		}
	}
	return sum
}

// AveragePool2D averages x [B, H, W, C] over kh x kw windows; with SAME
// padding only the window's pixels inside the image count (as TFLite).
func AveragePool2D(x *Node, kh, kw int, p Conv2DParams) *Node {
	p = p.norm()
	h, w := x.Shape().Dim(1), x.Shape().Dim(2)
	if p.Padding == tflite.Valid && kh == h && kw == w {
		return ReduceAndKeep(x, ReduceMean, 1, 2)
	}
	cols, ho, wo := taps(x, kh, kw, p)
	sum := cols[0]
	for _, s := range cols[1:] {
		sum = Add(sum, s)
	}
	// Count the in-image pixels of each window on the host.
	_, pt, _ := Padding(p.Padding, h, kh, p.StrideH, 1)
	_, pl, _ := Padding(p.Padding, w, kw, p.StrideW, 1)
	inv := make([]float32, ho*wo)
	for oy := range ho {
		for ox := range wo {
			n := 0
			for ky := range kh {
				for kx := range kw {
					iy, ix := oy*p.StrideH-pt+ky, ox*p.StrideW-pl+kx
					if iy >= 0 && iy < h && ix >= 0 && ix < w {
						n++
					}
				}
			}
			inv[oy*wo+ox] = 1 / float32(n)
		}
	}
	return Mul(sum, ConvertDType(Reshape(Const(x.Graph(), inv), 1, ho, wo, 1), x.DType()))
}
