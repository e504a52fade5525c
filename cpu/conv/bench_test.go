package conv

import (
	"testing"

	"github.com/peco-dev/peco/cpu/gemm"
)

// BenchmarkKernelGrad times the kernel gradient of a 3x3, stride 1, SAME
// convolution [64, 32, 32, 128] -> 128 (the VQ-VAE tokenizer's largest
// layer): KernelGradFloat32 from x and dy as stored; the im2col
// convolution GoMLX's gradient maps to (Float32 on x transposed to
// [C, H, W, N] and dy to [H, W, N, Co], the transposes not timed); and a
// plain matmul of the same flops for reference.
func BenchmarkKernelGrad(b *testing.B) {
	const n, h, w, c, co = 64, 32, 32, 128, 128
	x := make([]float32, n*h*w*c)
	dy := make([]float32, n*h*w*co)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	for i := range dy {
		dy[i] = float32(i%5) - 2
	}
	flops := 2.0 * 9 * c * co * n * h * w
	report := func(b *testing.B) {
		b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/op")
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	}
	b.Run("kernelgrad", func(b *testing.B) {
		p := &Params{Batch: n, Channels: c, InSpatial: []int{h, w}, KernelSpatial: []int{3, 3}, OutChannels: co,
			OutSpatial: []int{h, w}, PadLow: []int{1, 1}}
		out := make([]float32, 9*c*co)
		for b.Loop() {
			if err := KernelGradFloat32(out, x, dy, p); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("im2col", func(b *testing.B) {
		// The same values laid out as GoMLX's gradient convolution's
		// canonical operands (contents do not matter for the timing).
		p := &Params{Batch: c, Channels: n, InSpatial: []int{h, w}, KernelSpatial: []int{h, w}, OutChannels: co,
			OutSpatial: []int{3, 3}, PadLow: []int{1, 1}}
		out := make([]float32, c*9*co)
		for b.Loop() {
			if err := Float32(out, x, dy, p); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("matmul", func(b *testing.B) {
		// [9*C, N*H*W] x [N*H*W, Co] from a row-major [N*H*W, 9*C] matrix.
		a := make([]float32, 9*len(x))
		out := make([]float32, 9*c*co)
		for b.Loop() {
			gemm.MatMulFloat32(1, 9*c, co, n*h*w, a, true, dy, false, out)
		}
		report(b)
	})
}
