package cpu_test

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.
	timage "github.com/gomlx/gomlx/core/tensors/images"
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
