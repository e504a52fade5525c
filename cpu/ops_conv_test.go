package cpu_test

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.
	timage "github.com/gomlx/gomlx/core/tensors/images"

	"github.com/peco-dev/peco/cpu"
)

// TestConvMatchesGoBackend checks ConvGeneral, and the convolutions GoMLX's
// gradient builds from it (input dilation, swapped axes, batch groups),
// against the pure-Go backend: the forward output and the gradients with
// respect to the input and the kernel of a weighted sum of the output.
func TestConvMatchesGoBackend(t *testing.T) {
	ref, ours := backends(t)
	r := rand.New(rand.NewPCG(5, 6))
	type conf func(c *ConvolutionBuilder) *ConvolutionBuilder
	cases := []struct {
		name      string
		x, kernel []int
		first     bool // channels first (NCHW, OIHW)
		conf      conf
		grad      bool
	}{
		{"nhwc 3x3 same", []int{2, 6, 7, 5}, []int{3, 3, 5, 4}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c.PadSame() }, true},
		{"nhwc 3x3 stride2 pad1", []int{3, 8, 8, 4}, []int{3, 3, 4, 6}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.Strides(2).PaddingPerDim([][2]int{{1, 1}, {1, 1}})
		}, true},
		{"nhwc 3x3 stride2 odd", []int{2, 7, 9, 3}, []int{3, 3, 3, 5}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.StridePerAxis(2, 3).PaddingPerDim([][2]int{{1, 0}, {0, 2}})
		}, true},
		{"nhwc 1x1", []int{2, 5, 5, 8}, []int{1, 1, 8, 3}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c }, true},
		{"nhwc 4x4 stride2 valid", []int{2, 10, 8, 3}, []int{4, 4, 3, 4}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c.Strides(2) }, true},
		{"nhwc dilation2", []int{2, 9, 9, 3}, []int{3, 3, 3, 4}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.Dilations(2).PadSame()
		}, true},
		{"nhwc 5x5 asym pad", []int{1, 8, 6, 2}, []int{5, 5, 2, 3}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.PaddingPerDim([][2]int{{2, 1}, {1, 3}})
		}, true},
		{"nchw 3x3 same", []int{2, 4, 6, 6}, []int{5, 4, 3, 3}, true, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c.PadSame() }, true},
		{"nchw 3x3 stride2", []int{2, 3, 9, 8}, []int{4, 3, 3, 3}, true, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.Strides(2).PaddingPerDim([][2]int{{1, 1}, {1, 1}})
		}, true},
		{"nchw 1x1", []int{2, 6, 4, 5}, []int{3, 6, 1, 1}, true, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c }, true},
		{"nhwc channel groups", []int{2, 6, 6, 6}, []int{3, 3, 2, 9}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.ChannelGroupCount(3).PadSame()
		}, true},
		{"nhwc depthwise stride2", []int{2, 8, 8, 4}, []int{3, 3, 1, 8}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.ChannelGroupCount(4).Strides(2).PaddingPerDim([][2]int{{1, 1}, {1, 1}})
		}, true},
		{"nchw channel groups", []int{2, 4, 6, 5}, []int{6, 2, 3, 3}, true, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.ChannelGroupCount(2).PadSame()
		}, true},
		{"nhwc batch groups", []int{6, 5, 6, 3}, []int{2, 3, 3, 4}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.BatchGroupCount(2)
		}, false},
		{"nhwc input dilation", []int{2, 5, 4, 3}, []int{3, 3, 3, 2}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.InputDilationPerAxis(2, 3).PaddingPerDim([][2]int{{2, 1}, {1, 2}})
		}, false},
		{"1d", []int{3, 11, 4}, []int{3, 4, 5}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c.Strides(2).PadSame() }, true},
		{"3d", []int{2, 4, 5, 4, 3}, []int{2, 3, 2, 3, 4}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c.PadSame() }, true},
		{"tokenizer-like", []int{4, 16, 16, 64}, []int{3, 3, 64, 32}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c.PadSame() }, true},
		// The kernel gradients of channels-last convolutions take the
		// no-transpose path (conv.KernelGradFloat32); these vary its
		// geometry.
		{"nhwc 3x3 stride2 same odd", []int{2, 9, 7, 5}, []int{3, 3, 5, 6}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.Strides(2).PadSame()
		}, true},
		{"nhwc 3x3 valid", []int{3, 7, 6, 4}, []int{3, 3, 4, 5}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c.NoPadding() }, true},
		{"nhwc 5x5 same", []int{2, 9, 8, 3}, []int{5, 5, 3, 4}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c.PadSame() }, true},
		{"nhwc 5x5 stride2 same", []int{2, 11, 10, 3}, []int{5, 5, 3, 4}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.Strides(2).PadSame()
		}, true},
		{"nhwc 1x1 stride2", []int{2, 7, 6, 5}, []int{1, 1, 5, 3}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c.Strides(2) }, true},
		{"nhwc dilation2 valid", []int{2, 10, 9, 3}, []int{3, 3, 3, 4}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder { return c.Dilations(2) }, true},
		{"nhwc dilation per axis", []int{2, 11, 10, 3}, []int{3, 2, 3, 4}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.DilationPerAxis(3, 2).PaddingPerDim([][2]int{{2, 2}, {1, 0}})
		}, true},
		{"nhwc kernel OHWI", []int{2, 6, 5, 3}, []int{4, 3, 3, 3}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			// The kernel gradient's output is transposed from [kh, kw, I, O].
			return c.AxesConfig(ConvolveAxesConfig{InputBatch: 0, InputSpatial: []int{1, 2}, InputChannels: 3,
				KernelOutputChannels: 0, KernelSpatial: []int{1, 2}, KernelInputChannels: 3,
				OutputBatch: 0, OutputSpatial: []int{1, 2}, OutputChannels: 3}).PadSame()
		}, true},
		{"forward in kernel-gradient layout", []int{3, 7, 6, 4}, []int{3, 3, 3, 5}, false, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			// Input [C, H, W, N], kernel [I, kh, kw, O], output [O, H, W, N]
			// (GoMLX's input gradient wants the input's layout): the forward
			// convolution itself takes the no-transpose path.
			return c.AxesConfig(ConvolveAxesConfig{InputBatch: 3, InputSpatial: []int{1, 2}, InputChannels: 0,
				KernelInputChannels: 0, KernelSpatial: []int{1, 2}, KernelOutputChannels: 3,
				OutputBatch: 3, OutputSpatial: []int{1, 2}, OutputChannels: 0}).PadSame()
		}, true},
		{"nchw 5x5 stride2 valid odd", []int{2, 3, 11, 9}, []int{4, 3, 5, 5}, true, func(c *ConvolutionBuilder) *ConvolutionBuilder {
			return c.Strides(2)
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fn := func(x, k, w *Node) []*Node {
				b := Convolve(x, k)
				if c.first {
					b = b.ChannelsAxis(timage.ChannelsFirst)
				}
				y := c.conf(b).Done()
				if !c.grad {
					return []*Node{y}
				}
				loss := ReduceAllSum(Mul(y, w))
				g := Gradient(loss, x, k)
				return []*Node{y, g[0], g[1]}
			}
			// The output's shape (for the loss weights) from a graph on the reference backend.
			probe := MustNewExec(ref, func(x, k *Node) *Node {
				b := Convolve(x, k)
				if c.first {
					b = b.ChannelsAxis(timage.ChannelsFirst)
				}
				return c.conf(b).Done()
			})
			xT, kT := randFloats(r, c.x...), randFloats(r, c.kernel...)
			y := probe.MustExec(must(xT.LocalClone()), must(kT.LocalClone()))[0]
			wT := randFloats(r, y.Shape().Dimensions...)
			inputs := func() []any {
				return []any{must(xT.LocalClone()), must(kT.LocalClone()), must(wT.LocalClone())}
			}
			want, err := MustNewExec(ref, fn).Exec(inputs()...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := MustNewExec(ours, fn).Exec(inputs()...)
			if err != nil {
				t.Fatal(err)
			}
			compareOutputs(t, want, got, 1e-4)
		})
	}
}

// BenchmarkConvKernelGrad times, through a graph on this backend, the
// convolution GoMLX builds for the kernel gradient of a 3x3, stride 1, SAME
// channels-last convolution [64, 32, 32, 128] -> 128 (the VQ-VAE
// tokenizer's largest layer): from x [64, 32, 32, 128] and dy
// [64, 32, 32, 128] to dW [3, 3, 128, 128].
func BenchmarkConvKernelGrad(b *testing.B) {
	ours, err := cpu.New("")
	if err != nil {
		b.Fatal(err)
	}
	const n, h, w, c, co = 64, 32, 32, 128, 128
	axes := ConvolveAxesConfig{InputBatch: 3, InputChannels: 0, InputSpatial: []int{1, 2},
		KernelInputChannels: 0, KernelOutputChannels: 3, KernelSpatial: []int{1, 2},
		OutputBatch: 2, OutputChannels: 3, OutputSpatial: []int{0, 1}}
	exec := MustNewExec(ours, func(x, dy *Node) *Node {
		return ConvGeneral(x, dy, axes, nil, [][2]int{{1, 1}, {1, 1}}, nil, nil, 1, 1)
	})
	r := rand.New(rand.NewPCG(1, 2))
	x, dy := randFloats(r, n, h, w, c), randFloats(r, n, h, w, co)
	exec.MustExec(x, dy)[0].FinalizeAll()
	for b.Loop() {
		exec.MustExec(x, dy)[0].FinalizeAll()
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/op")
	b.ReportMetric(2*9*c*co*n*h*w*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
