package cpu_test

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/cpu"
)

// BenchmarkMatMulBackends times x[m,k] @ w[k,n] through a GoMLX graph on
// GoMLX's pure-Go backend and on this backend (the ViT-Tiny/4 MIM step's
// shapes at batch 32), reporting GFLOP/s. Input transfer is included (a few
// percent at these sizes).
func BenchmarkMatMulBackends(b *testing.B) {
	ours, err := cpu.New("")
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range [][3]int{{2080, 192, 768}, {2080, 768, 192}, {2080, 192, 576}, {768, 2080, 192}} {
		m, k, n := s[0], s[1], s[2]
		for _, be := range []struct {
			name string
			b    any
		}{{"go", gobackend.GetBackend()}, {"cpu", ours}} {
			b.Run(fmt.Sprintf("%s/%dx%dx%d", be.name, m, k, n), func(b *testing.B) {
				backend := gobackend.GetBackend()
				if be.name == "cpu" {
					backend = ours
				}
				exec := MustNewExec(backend, func(x, w *Node) *Node { return MatMul(x, w) })
				x := tensors.FromShape(shapes.Make(dtypes.Float32, m, k))
				w := tensors.FromShape(shapes.Make(dtypes.Float32, k, n))
				exec.MustExec(x, w)[0].FinalizeAll()
				for b.Loop() {
					exec.MustExec(x, w)[0].FinalizeAll()
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
