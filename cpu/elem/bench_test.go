package elem

import (
	"math/rand/v2"
	"testing"
)

func benchData(n int) []float32 {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// report sets the bytes processed per op (for GB/s) and ns/elem.
func report(b *testing.B, elems, bytes int) {
	b.SetBytes(int64(bytes))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(elems), "ns/elem")
}

const benchN, benchD = 2080, 768 // 1.6M elements: ViT-B activations.

func BenchmarkAddSameShape(b *testing.B) {
	n := benchN * benchD
	x, y, o := benchData(n), benchData(n), make([]float32, n)
	dims := []int{benchN, benchD}
	for b.Loop() {
		_ = Binary(Add, o, dims, x, dims, y, dims)
	}
	report(b, n, 12*n)
}

func BenchmarkAddRowBroadcast(b *testing.B) {
	n := benchN * benchD
	x, y, o := benchData(n), benchData(benchD), make([]float32, n)
	dims := []int{benchN, benchD}
	for b.Loop() {
		_ = Binary(Add, o, dims, x, dims, y, []int{1, benchD})
	}
	report(b, n, 8*n)
}

func BenchmarkMulColBroadcast(b *testing.B) {
	n := benchN * benchD
	x, y, o := benchData(n), benchData(benchN), make([]float32, n)
	dims := []int{benchN, benchD}
	for b.Loop() {
		_ = Binary(Mul, o, dims, x, dims, y, []int{benchN, 1})
	}
	report(b, n, 8*n)
}

func BenchmarkMulScalar(b *testing.B) {
	n := benchN * benchD
	x, o := benchData(n), make([]float32, n)
	dims := []int{benchN, benchD}
	for b.Loop() {
		_ = Binary(Mul, o, dims, x, dims, []float32{0.5}, nil)
	}
	report(b, n, 8*n)
}

func benchUnary(b *testing.B, op UnaryOp) {
	n := benchN * benchD
	x, o := benchData(n), make([]float32, n)
	for b.Loop() {
		_ = Unary(op, o, x)
	}
	report(b, n, 8*n)
}

func BenchmarkErf(b *testing.B)   { benchUnary(b, Erf) }
func BenchmarkExp(b *testing.B)   { benchUnary(b, Exp) }
func BenchmarkTanh(b *testing.B)  { benchUnary(b, Tanh) }
func BenchmarkLog(b *testing.B)   { benchUnary(b, Log) }
func BenchmarkRsqrt(b *testing.B) { benchUnary(b, Rsqrt) }

func benchReduce(b *testing.B, op ReduceOp, axis int) {
	n := benchN * benchD
	x := benchData(n)
	outN := benchN
	if axis == 0 {
		outN = benchD
	}
	o := make([]float32, outN)
	for b.Loop() {
		_ = Reduce(op, o, x, []int{benchN, benchD}, []int{axis})
	}
	report(b, n, 4*n)
}

func BenchmarkReduceSumLastAxis(b *testing.B)    { benchReduce(b, ReduceSum, 1) }
func BenchmarkReduceMaxLastAxis(b *testing.B)    { benchReduce(b, ReduceMax, 1) }
func BenchmarkReduceSumLeadingAxis(b *testing.B) { benchReduce(b, ReduceSum, 0) }

func BenchmarkCompareWhere(b *testing.B) {
	n := benchN * benchD
	x, o, c := benchData(n), make([]float32, n), make([]bool, n)
	dims := []int{benchN, benchD}
	for b.Loop() {
		_ = Compare(GreaterThan, c, dims, x, dims, []float32{0}, nil)
		_ = Where(o, dims, c, dims, x, dims, []float32{0}, nil)
	}
	report(b, n, 14*n)
}

func BenchmarkConvertF32ToF64(b *testing.B) {
	n := benchN * benchD
	x, o := benchData(n), make([]float64, n)
	for b.Loop() {
		_ = Convert(o, x)
	}
	report(b, n, 12*n)
}
