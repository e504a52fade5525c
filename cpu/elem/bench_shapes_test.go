package elem

import (
	"fmt"
	"testing"
)

// Benchmarks for the shapes of the VQ-VAE tokenizer's GroupNorm and Swish:
// broadcasts that leave short contiguous runs and reductions over
// non-adjacent axes.

func benchBroadcast(b *testing.B, op BinaryOp, outDims, bDims []int) {
	n, m := size(outDims), size(bDims)
	x, y, o := benchData(n), benchData(m), make([]float32, n)
	for i := range y {
		y[i] = 1 + y[i]*y[i] // positive divisors
	}
	for b.Loop() {
		if err := Binary(op, o, outDims, x, outDims, y, bDims); err != nil {
			b.Fatal(err)
		}
	}
	report(b, n, 8*n)
}

func BenchmarkGroupNormBroadcast(b *testing.B) {
	for _, c := range []struct {
		out, b []int
	}{
		{[]int{64, 1024, 32, 2}, []int{64, 1, 32, 1}},
		{[]int{64, 1024, 32, 4}, []int{64, 1, 32, 1}},
		{[]int{64, 64, 32, 4}, []int{64, 1, 32, 1}},
	} {
		for _, op := range []BinaryOp{Sub, Div} {
			b.Run(fmt.Sprintf("%s/%v_%v", op, c.out, c.b), func(b *testing.B) { benchBroadcast(b, op, c.out, c.b) })
		}
	}
}

func BenchmarkReduceSumNonAdjacent(b *testing.B) {
	for _, dims := range [][]int{{64, 1024, 32, 2}, {64, 256, 32, 4}} {
		b.Run(fmt.Sprint(dims), func(b *testing.B) {
			n := size(dims)
			x, o := benchData(n), make([]float32, dims[0]*dims[2])
			for b.Loop() {
				if err := Reduce(ReduceSum, o, x, dims, []int{1, 3}); err != nil {
					b.Fatal(err)
				}
			}
			report(b, n, 4*n)
		})
	}
}

func BenchmarkLogistic(b *testing.B) { benchUnary(b, Logistic) }

func BenchmarkReduceMaxLeadingAxis(b *testing.B) { benchReduce(b, ReduceMax, 0) }

func BenchmarkWhereBroadcast(b *testing.B) {
	dims := []int{64, 1024, 32, 2}
	n := size(dims)
	x, o, c := benchData(n), make([]float32, n), make([]bool, n)
	for i := range c {
		c[i] = x[i] > 0
	}
	y := benchData(64 * 32)
	for b.Loop() {
		if err := Where(o, dims, c, dims, x, dims, y, []int{64, 1, 32, 1}); err != nil {
			b.Fatal(err)
		}
	}
	report(b, n, 9*n)
}
