package cpu

import (
	"math"
	"testing"

	g "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// BenchmarkGELUChain times the exact-erf GELU forward on [2080, 768] with and
// without element-wise fusion.
func BenchmarkGELUChain(b *testing.B) {
	x := make([]float32, 2080*768)
	for i := range x {
		x[i] = float32(i%97)/50 - 1
	}
	for _, fused := range []bool{false, true} {
		name := map[bool]string{false: "op-by-op", true: "fused"}[fused]
		b.Run(name, func(b *testing.B) {
			be, _ := New(map[bool]string{false: "nofuse", true: ""}[fused])
			exec := g.MustNewExec(be, func(a *g.Node) *g.Node {
				return g.Mul(a, g.MulScalar(g.AddScalar(g.Erf(g.MulScalar(a, 1/math.Sqrt2)), 1), 0.5))
			})
			in := tensors.FromFlatDataAndDimensions(x, 2080, 768)
			for b.Loop() {
				exec.MustExec(in)[0].FinalizeAll()
			}
		})
	}
}
