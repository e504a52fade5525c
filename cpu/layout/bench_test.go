package layout

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute"
)

// reportGBs reports the bytes read plus written per second.
func reportGBs(b *testing.B, bytes int) {
	b.SetBytes(int64(bytes))
}

func BenchmarkTranspose(b *testing.B) {
	for _, c := range []struct {
		name       string
		dims, perm []int
	}{
		{"qkv_BT3Hd_to_3BHTd", []int{64, 65, 3, 3, 64}, []int{2, 0, 3, 1, 4}},
		{"qkv_back_3BHTd_to_BT3Hd", []int{3, 64, 3, 65, 64}, []int{1, 3, 0, 2, 4}},
		{"NTd_to_NdT", []int{192, 65, 64}, []int{0, 2, 1}},
		{"NdT_to_NTd", []int{192, 64, 65}, []int{0, 2, 1}},
		{"2080x768", []int{2080, 768}, []int{1, 0}},
		{"768x2080", []int{768, 2080}, []int{1, 0}},
		{"BHTd_to_BTHd", []int{64, 3, 65, 64}, []int{0, 2, 1, 3}},
	} {
		b.Run(c.name, func(b *testing.B) {
			in := seq(prod(c.dims))
			out := make([]float32, len(in))
			reportGBs(b, 2*4*len(in))
			for b.Loop() {
				if err := Transpose(out, in, c.dims, c.perm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBroadcastInDim(b *testing.B) {
	const n, d = 4160, 768
	out := make([]float32, n*d)
	for _, c := range []struct {
		name         string
		inDims, axes []int
	}{{"D_to_ND", []int{d}, []int{1}}, {"N_to_ND", []int{n}, []int{0}}} {
		b.Run(c.name, func(b *testing.B) {
			in := seq(prod(c.inDims))
			reportGBs(b, 4*len(out))
			for b.Loop() {
				if err := BroadcastInDim(out, []int{n, d}, in, c.inDims, c.axes); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSliceConcatPad(b *testing.B) {
	const B, T, D = 64, 65, 768
	full := seq(B * T * D)
	part := make([]float32, B*(T-1)*D)
	cls := make([]float32, B*D)
	b.Run("Slice_axis1", func(b *testing.B) {
		reportGBs(b, 2*4*len(part))
		for b.Loop() {
			if err := Slice(part, full, []int{B, T, D}, []int{0, 1, 0}, []int{B, T, D}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Concat_axis1", func(b *testing.B) {
		reportGBs(b, 2*4*len(full))
		for b.Loop() {
			if err := Concatenate(full, [][]float32{cls, part}, [][]int{{B, 1, D}, {B, T - 1, D}}, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Pad_axis1", func(b *testing.B) {
		reportGBs(b, 4*len(full)+4*len(part))
		for b.Loop() {
			if err := Pad(full, part, []int{B, T - 1, D}, 0, []compute.PadAxis{{}, {Start: 1}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGatherScatterRows(b *testing.B) {
	const n, d = 4160, 768
	for _, r := range []int{64, 4160} {
		operand := seq(n * d)
		idx := seqIdx(r, n)
		rows := make([]float32, r*d)
		b.Run(fmt.Sprintf("Gather_R%d", r), func(b *testing.B) {
			reportGBs(b, 2*4*len(rows))
			for b.Loop() {
				if err := Gather(rows, operand, []int{n, d}, idx, []int{r, 1}, 1, []int{1}, []int{0}, []int{0}, []int{1, d}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("ScatterSum_R%d", r), func(b *testing.B) {
			reportGBs(b, 3*4*len(rows))
			for b.Loop() {
				if err := Scatter(ScatterSum, operand, []int{n, d}, idx, []int{r, 1}, rows, []int{r, d}, 1, []int{1}, []int{0}, []int{0}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBroadcastGroupNorm: GroupNorm's statistics [64,1,32,1] broadcast
// to [64,1024,32,2] (a 32x32x64 activation, batch 64), by replication (what
// BroadcastInDim does) and by the generic strided move (the odometer).
func BenchmarkBroadcastGroupNorm(b *testing.B) {
	inDims, outDims := []int{64, 1, 32, 1}, []int{64, 1024, 32, 2}
	in := seq(prod(inDims))
	out := make([]float32, prod(outDims))
	is := []int{32, 0, 1, 0}
	p := newPlan(outDims, rowMajorStrides(outDims), is)
	b.Run("replicate", func(b *testing.B) {
		reportGBs(b, 4*len(out))
		for b.Loop() {
			replicate(p, out, in, 0)
		}
	})
	b.Run("strided", func(b *testing.B) {
		reportGBs(b, 4*len(out))
		for b.Loop() {
			run(p, out, 0, in, 0)
		}
	})
}
