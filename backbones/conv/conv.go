// Package conv holds the convolutional building blocks of the visual
// tokenizers: convolutions written as im2col + one matmul (the pure-Go
// backend's Convolve is about 100x slower than its matmul; on peco's cpu
// backend they are one ConvGeneral, see NativeConv), GroupNorm, swish,
// VQGAN-style residual and single-head attention blocks, and the encoder and
// decoder built from them. Tensors are NHWC.
package conv

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/peco-dev/peco/core"
)

// Config configures a VQGAN-style encoder or decoder.
type Config struct {
	Width     int   `mapstructure:"width" doc:"base channel width (channels of the first level)"`
	Mults     []int `mapstructure:"mults" doc:"channel multiplier per level; each level ends with one stride-2 downsample, so the downsampling factor is 2^len(mults) (f4: 2 levels, f16: 4)"`
	Blocks    int   `mapstructure:"blocks" doc:"residual blocks per level"`
	Attention bool  `mapstructure:"attention" doc:"add a single-head self-attention block at the lowest resolution"`
	Groups    int   `mapstructure:"groups" doc:"GroupNorm groups (VQGAN: 32), reduced to a divisor of the channel count where needed"`
}

// DefaultConfig is a small f4 network: width 64, mults [1, 2], one block per
// level, no attention, 32 groups.
func DefaultConfig() Config {
	return Config{Width: 64, Mults: []int{1, 2}, Blocks: 1, Groups: 32}
}

// Validate checks the ranges.
func (c *Config) Validate() error {
	if c.Width <= 0 || len(c.Mults) == 0 || c.Blocks < 0 || c.Groups <= 0 {
		return fmt.Errorf("conv: width and groups must be > 0, mults non-empty, blocks >= 0 (got width %d, mults %v, blocks %d, groups %d)",
			c.Width, c.Mults, c.Blocks, c.Groups)
	}
	for _, m := range c.Mults {
		if m <= 0 {
			return fmt.Errorf("conv: mults must be > 0, got %v", c.Mults)
		}
	}
	return nil
}

// Factor is the downsampling factor 2^len(Mults).
func (c Config) Factor() int { return 1 << len(c.Mults) }

// Conv2D is a k x k convolution with the given stride and symmetric zero
// padding of pad pixels, as im2col + one matmul: x [B, H, W, Cin] is padded,
// the k*k shifted (and strided) slices are concatenated on the channel axis
// into [B, Ho, Wo, k*k*Cin], and multiplied by the weight [k*k*Cin, Cout]
// (row order: ky, kx, cin). A 1x1 convolution is a plain matmul. The weight
// and bias variables ("weight", "bias") live in scope; the weight starts as
// He-uniform (PyTorch's default conv init scale), the bias at zero.
func Conv2D(scope *model.Scope, x *Node, cout, k, stride, pad int) *Node {
	cin := x.Shape().Dim(-1)
	fanIn := k * k * cin
	bound := 1 / math.Sqrt(float64(fanIn))
	g := x.Graph()
	w := scope.WithInitializer(uniformInit(scope, bound)).
		VariableWithShape("weight", shapes.Make(dtypes.Float32, fanIn, cout)).NodeValue(g)
	b := scope.WithInitializer(initializer.Zero).
		VariableWithShape("bias", shapes.Make(dtypes.Float32, cout)).NodeValue(g)
	return Add(ConvWithWeight(x, w, k, stride, pad), ExpandLeftToRank(b, 4))
}

// NativeConv reports whether convolutions on g's backend are emitted as
// GoMLX's Convolve (one ConvGeneral op) rather than im2col: when the
// backend says it prefers them (core.ConvolutionAdvisor), as peco's cpu
// backend does, whose ConvGeneral is a blocked implicit im2col over the
// packed matmul. Other backends (the pure-Go one's Convolve is about 100x
// slower than its matmul) keep the explicit im2col.
func NativeConv(g *Graph) bool {
	a, ok := g.Backend().(core.ConvolutionAdvisor)
	return ok && a.PrefersNativeConvolution()
}

// ConvWithWeight is Im2ColConv (same arguments, weight layout and result),
// emitted as one ConvGeneral op where NativeConv says so. A 1x1 stride-1
// convolution stays a plain matmul, and an even k stays im2col: GoMLX
// v0.28.2's gradient of Convolve with respect to the input is wrong for even
// kernel sizes (on every backend).
func ConvWithWeight(x, weight *Node, k, stride, pad int) *Node {
	if !NativeConv(x.Graph()) || k%2 == 0 || (k == 1 && stride == 1 && pad == 0) {
		return Im2ColConv(x, weight, k, stride, pad)
	}
	return DirectConv(x, weight, k, stride, pad)
}

// DirectConv is Im2ColConv as GoMLX's Convolve: the weight [k*k*Cin, Cout]
// is reshaped to the HWIO kernel [k, k, Cin, Cout] (the same row order).
func DirectConv(x, weight *Node, k, stride, pad int) *Node {
	cin := x.Shape().Dim(-1)
	if weight.Shape().Dim(0) != k*k*cin {
		panic(fmt.Sprintf("conv: weight %s does not match k=%d, cin=%d", weight.Shape(), k, cin))
	}
	kernel := Reshape(weight, k, k, cin, weight.Shape().Dim(1))
	return Convolve(x, kernel).Strides(stride).PaddingPerDim([][2]int{{pad, pad}, {pad, pad}}).Done()
}

// Im2ColConv convolves x [B, H, W, Cin] with weight [k*k*Cin, Cout] (rows in
// ky, kx, cin order) with the given stride and symmetric zero padding,
// returning [B, Ho, Wo, Cout] with Ho = (H + 2*pad - k)/stride + 1.
func Im2ColConv(x, weight *Node, k, stride, pad int) *Node {
	dims := x.Shape().Dimensions
	b, h, w, cin := dims[0], dims[1], dims[2], dims[3]
	cout := weight.Shape().Dim(1)
	if weight.Shape().Dim(0) != k*k*cin {
		panic(fmt.Sprintf("conv: weight %s does not match k=%d, cin=%d", weight.Shape(), k, cin))
	}
	ho := (h+2*pad-k)/stride + 1
	wo := (w+2*pad-k)/stride + 1
	if pad > 0 {
		x = ZeroPad2D(x, pad)
	}
	var cols *Node
	if k == 1 && stride == 1 {
		cols = x
	} else {
		parts := make([]*Node, 0, k*k)
		for ky := range k {
			for kx := range k {
				parts = append(parts, Slice(x, AxisRange(),
					AxisRange(ky, ky+(ho-1)*stride+1).Stride(stride),
					AxisRange(kx, kx+(wo-1)*stride+1).Stride(stride),
					AxisRange()))
			}
		}
		if len(parts) == 1 {
			cols = parts[0]
		} else {
			cols = Concatenate(parts, -1)
		}
	}
	flat := Reshape(cols, b*ho*wo, k*k*cin)
	return Reshape(MatMul(flat, weight), b, ho, wo, cout)
}

// ZeroPad2D pads the H and W axes of x [B, H, W, C] with pad zeros on each
// side. It is built from Concatenate (GoMLX's Pad has no gradient).
func ZeroPad2D(x *Node, pad int) *Node { return ZeroPad2DAsym(x, pad, pad, pad, pad) }

// ZeroPad2DAsym pads the H axis of x [B, H, W, C] with top and bottom zero
// rows and the W axis with left and right zero columns (e.g. TensorFlow's
// SAME padding, which puts the odd pixel after), with Concatenate so that
// gradients flow.
func ZeroPad2DAsym(x *Node, top, bottom, left, right int) *Node {
	dims := x.Shape().Dimensions
	b, h, w, c := dims[0], dims[1], dims[2], dims[3]
	g := x.Graph()
	parts := []*Node{x}
	if top > 0 {
		parts = append([]*Node{Zeros(g, shapes.Make(x.DType(), b, top, w, c))}, parts...)
	}
	if bottom > 0 {
		parts = append(parts, Zeros(g, shapes.Make(x.DType(), b, bottom, w, c)))
	}
	if len(parts) > 1 {
		x = Concatenate(parts, 1)
	}
	h += top + bottom
	parts = []*Node{x}
	if left > 0 {
		parts = append([]*Node{Zeros(g, shapes.Make(x.DType(), b, h, left, c))}, parts...)
	}
	if right > 0 {
		parts = append(parts, Zeros(g, shapes.Make(x.DType(), b, h, right, c)))
	}
	if len(parts) > 1 {
		x = Concatenate(parts, 2)
	}
	return x
}

// uniformInit draws from U(-bound, bound) with the store's RNG.
func uniformInit(scope *model.Scope, bound float64) model.VariableInitializer {
	store := scope.Store()
	return func(g *Graph, shape shapes.Shape) *Node {
		u := store.RandomUniform(g, shape)
		return MulScalar(AddScalar(u, -0.5), 2*bound)
	}
}

// groupsFor returns the largest divisor of channels that is <= groups.
func groupsFor(channels, groups int) int {
	g := min(groups, channels)
	for channels%g != 0 {
		g--
	}
	return g
}

// GroupNorm normalises x [B, H, W, C] over groups of channels and the
// spatial axes (mean and variance per sample and group, eps 1e-6), then
// applies a learned per-channel scale ("scale", init 1) and offset
// ("offset", init 0). groups is reduced to a divisor of C when needed.
func GroupNorm(scope *model.Scope, x *Node, groups int) *Node {
	dims := x.Shape().Dimensions
	b, h, w, c := dims[0], dims[1], dims[2], dims[3]
	gr := groupsFor(c, groups)
	xg := Reshape(x, b, h*w, gr, c/gr)
	mean := ReduceAndKeep(xg, ReduceMean, 1, 3)
	xc := Sub(xg, mean)
	variance := ReduceAndKeep(Square(xc), ReduceMean, 1, 3)
	xn := Reshape(Div(xc, Sqrt(AddScalar(variance, 1e-6))), b, h, w, c)
	g := x.Graph()
	gamma := scope.WithInitializer(initializer.One).VariableWithShape("scale", shapes.Make(x.DType(), c)).NodeValue(g)
	beta := scope.WithInitializer(initializer.Zero).VariableWithShape("offset", shapes.Make(x.DType(), c)).NodeValue(g)
	return Add(Mul(xn, ExpandLeftToRank(gamma, 4)), ExpandLeftToRank(beta, 4))
}

// Swish is x * sigmoid(x) (SiLU).
func Swish(x *Node) *Node { return Mul(x, Sigmoid(x)) }

// ResBlock is VQGAN's residual block: norm, swish, 3x3 conv, norm, swish,
// 3x3 conv, plus the input (through a 1x1 conv when the width changes).
func ResBlock(scope *model.Scope, x *Node, cout, groups int) *Node {
	h := Conv2D(scope.In("conv1"), Swish(GroupNorm(scope.In("norm1"), x, groups)), cout, 3, 1, 1)
	h = Conv2D(scope.In("conv2"), Swish(GroupNorm(scope.In("norm2"), h, groups)), cout, 3, 1, 1)
	if x.Shape().Dim(-1) != cout {
		x = Conv2D(scope.In("shortcut"), x, cout, 1, 1, 0)
	}
	return Add(x, h)
}

// AttnBlock is VQGAN's single-head self-attention over the H*W positions,
// with a residual connection.
func AttnBlock(scope *model.Scope, x *Node, groups int) *Node {
	dims := x.Shape().Dimensions
	b, h, w, c := dims[0], dims[1], dims[2], dims[3]
	n := GroupNorm(scope.In("norm"), x, groups)
	qkv := Conv2D(scope.In("qkv"), n, 3*c, 1, 1, 0)
	qkv = Reshape(qkv, b, h*w, 3, c)
	q := Squeeze(Slice(qkv, AxisRange(), AxisRange(), AxisElem(0), AxisRange()), 2)
	k := Squeeze(Slice(qkv, AxisRange(), AxisRange(), AxisElem(1), AxisRange()), 2)
	v := Squeeze(Slice(qkv, AxisRange(), AxisRange(), AxisElem(2), AxisRange()), 2)
	att := Softmax(MulScalar(Einsum("bqc,bkc->bqk", q, k), 1/math.Sqrt(float64(c))), -1)
	o := Reshape(Einsum("bqk,bkc->bqc", att, v), b, h, w, c)
	return Add(x, Conv2D(scope.In("proj"), o, c, 1, 1, 0))
}

// Upsample2x repeats every pixel of x [B, H, W, C] into a 2x2 block (nearest
// neighbour), written as a broadcast so that its gradient is a plain sum.
func Upsample2x(x *Node) *Node {
	dims := x.Shape().Dimensions
	b, h, w, c := dims[0], dims[1], dims[2], dims[3]
	y := Reshape(x, b, h, 1, w, 1, c)
	y = BroadcastToDims(y, b, h, 2, w, 2, c)
	return Reshape(y, b, 2*h, 2*w, c)
}

// ReLU is max(x, 0).
func ReLU(x *Node) *Node { return Max(x, ScalarZero(x.Graph(), x.DType())) }

// MaxPool2x is a 2x2 max-pool with stride 2 of x [B, H, W, C]; H and W must
// be even (it panics otherwise, naming the map's size).
func MaxPool2x(x *Node) *Node {
	b, h, w, c := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
	if h%2 != 0 || w%2 != 0 {
		exceptions.Panicf("conv: MaxPool2x of a %dx%d map: height and width must be even", h, w)
	}
	return ReduceMax(Reshape(x, b, h/2, 2, w/2, 2, c), 2, 4)
}

// Encoder maps images [B, H, W, Cin] to [B, H/f, W/f, outChannels] with
// f = cfg.Factor(): a 3x3 input conv, then per level cfg.Blocks residual
// blocks at width*mult followed by a stride-2 3x3 conv, then a middle
// (residual, optional attention, residual) at the lowest resolution,
// GroupNorm, swish and a 1x1 output conv.
func Encoder(scope *model.Scope, x *Node, cfg Config, outChannels int) *Node {
	h := Conv2D(scope.In("conv_in"), x, cfg.Width, 3, 1, 1)
	for i, m := range cfg.Mults {
		ls := scope.In("down%d", i)
		for j := range cfg.Blocks {
			h = ResBlock(ls.In("block%d", j), h, cfg.Width*m, cfg.Groups)
		}
		h = Conv2D(ls.In("downsample"), h, h.Shape().Dim(-1), 3, 2, 1)
	}
	h = middle(scope.In("mid"), h, cfg)
	h = Swish(GroupNorm(scope.In("norm_out"), h, cfg.Groups))
	return Conv2D(scope.In("conv_out"), h, outChannels, 1, 1, 0)
}

// Decoder mirrors Encoder: [B, h, w, Cin] -> [B, h*f, w*f, outChannels]. A
// 3x3 input conv to width*mults[last], the middle, then per level from the
// deepest: nearest 2x upsampling + 3x3 conv (transposed convolution has no
// gradient in GoMLX) and cfg.Blocks residual blocks at width*mult; then
// GroupNorm, swish and a 3x3 output conv.
func Decoder(scope *model.Scope, z *Node, cfg Config, outChannels int) *Node {
	last := len(cfg.Mults) - 1
	h := Conv2D(scope.In("conv_in"), z, cfg.Width*cfg.Mults[last], 3, 1, 1)
	h = middle(scope.In("mid"), h, cfg)
	for i := last; i >= 0; i-- {
		ls := scope.In("up%d", i)
		h = Conv2D(ls.In("upsample"), Upsample2x(h), h.Shape().Dim(-1), 3, 1, 1)
		for j := range cfg.Blocks {
			h = ResBlock(ls.In("block%d", j), h, cfg.Width*cfg.Mults[i], cfg.Groups)
		}
	}
	h = Swish(GroupNorm(scope.In("norm_out"), h, cfg.Groups))
	return Conv2D(scope.In("conv_out"), h, outChannels, 3, 1, 1)
}

// middle is the residual (+ attention) + residual block at the lowest
// resolution.
func middle(scope *model.Scope, h *Node, cfg Config) *Node {
	c := h.Shape().Dim(-1)
	h = ResBlock(scope.In("block1"), h, c, cfg.Groups)
	if cfg.Attention {
		h = AttnBlock(scope.In("attn"), h, cfg.Groups)
	}
	return ResBlock(scope.In("block2"), h, c, cfg.Groups)
}
