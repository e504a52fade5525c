package elem

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestReduceEveryAxisSubset reduces rank 4 and 5 tensors with odd sizes
// (and some larger ones that take the parallel and pairwise paths) over
// every subset of axes, against straightforward references.
func TestReduceEveryAxisSubset(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, dims := range [][]int{
		{3, 5, 7, 3}, {5, 1, 3, 7}, {7, 3, 1, 1}, {2, 3, 5, 3, 2}, {3, 1, 7, 5, 3}, {1, 5, 3, 1, 7},
		{5, 131, 9, 3}, {3, 67, 5, 33, 2}, {2, 300, 5, 70}, {17, 3, 1025},
	} {
		n := size(dims)
		x64 := randVals[float64](n, rng, false)
		x32 := make([]float32, n)
		for i, v := range x64 {
			x32[i] = float32(v)
		}
		xi := randVals[int64](n, rng, false)
		for i := range xi {
			xi[i] %= 1000
		}
		x32[n/3] = float32(math.NaN()) // NaN propagates through Max and Min
		for _, axes := range subsets(len(dims)) {
			name := fmt.Sprintf("dims=%v axes=%v", dims, axes)
			outN := len(refReduce(x64, dims, axes, 0, func(a, b float64) float64 { return 0 }))
			red := n / max(outN, 1)
			// float32 sum against a float64 reference of the float32 inputs.
			xs := make([]float64, n)
			for i, v := range x32 {
				xs[i] = float64(v)
			}
			xs[n/3] = 0
			x32[n/3] = 0
			got := make([]float32, outN)
			if err := Reduce(ReduceSum, got, x32, dims, axes); err != nil {
				t.Fatal(err)
			}
			want := refReduce(xs, dims, axes, 0, func(a, b float64) float64 { return a + b })
			for i := range want {
				if tol := 2e-6 * 3 * math.Sqrt(float64(red)) * (1 + math.Log2(float64(red))); math.Abs(float64(got[i])-want[i]) > tol {
					t.Fatalf("Sum float32 %s: got[%d]=%v want %v", name, i, got[i], want[i])
				}
			}
			x32[n/3] = float32(math.NaN())
			xs[n/3] = math.NaN()
			for _, op := range []ReduceOp{ReduceMax, ReduceMin} {
				if err := Reduce(op, got, x32, dims, axes); err != nil {
					t.Fatal(err)
				}
				f, init := func(a, b float64) float64 {
					if math.IsNaN(a) || math.IsNaN(b) {
						return math.NaN()
					}
					return math.Max(a, b)
				}, math.Inf(-1)
				if op == ReduceMin {
					f, init = func(a, b float64) float64 {
						if math.IsNaN(a) || math.IsNaN(b) {
							return math.NaN()
						}
						return math.Min(a, b)
					}, math.Inf(1)
				}
				want := refReduce(xs, dims, axes, init, f)
				for i := range want {
					if !sameFloat(float64(got[i]), want[i], 0, 0) {
						t.Fatalf("%s float32 %s: got[%d]=%v want %v", op, name, i, got[i], want[i])
					}
				}
			}
			// float64 sum and int64 ops exactly (small integers).
			gotI := make([]int64, outN)
			for _, c := range []struct {
				op   ReduceOp
				init int64
				f    func(a, b int64) int64
			}{
				{ReduceSum, 0, func(a, b int64) int64 { return a + b }},
				{ReduceMax, math.MinInt64, func(a, b int64) int64 { return max(a, b) }},
				{ReduceMin, math.MaxInt64, func(a, b int64) int64 { return min(a, b) }},
				{ReduceBitwiseXor, 0, func(a, b int64) int64 { return a ^ b }},
			} {
				if err := Reduce(c.op, gotI, xi, dims, axes); err != nil {
					t.Fatal(err)
				}
				if want := refReduce(xi, dims, axes, c.init, c.f); fmt.Sprint(gotI) != fmt.Sprint(want) {
					t.Fatalf("%s int64 %s: got %v want %v", c.op, name, gotI, want)
				}
			}
			got64 := make([]float64, outN)
			if err := Reduce(ReduceSum, got64, x64, dims, axes); err != nil {
				t.Fatal(err)
			}
			want64 := refReduce(x64, dims, axes, 0, func(a, b float64) float64 { return a + b })
			for i := range want64 {
				if !sameFloat(got64[i], want64[i], 1e-12, 1e-12*float64(red)) {
					t.Fatalf("Sum float64 %s: got[%d]=%v want %v", name, i, got64[i], want64[i])
				}
			}
		}
	}
}
