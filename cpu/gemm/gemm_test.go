package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// at returns op(X)[i][j] for a matrix stored row-major as rows x cols, or
// transposed (cols x rows) when trans.
func at[T Numeric](x []T, trans bool, rows, cols, i, j int) T {
	if trans {
		return x[j*rows+i]
	}
	return x[i*cols+j]
}

// Numeric mirrors the MatMul constraint for test helpers.
type Numeric interface {
	float32 | float64 | int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64
}

// refFloat32 computes the reference product in float64 and, for the
// tolerance, the sum of absolute products of each C element.
func refFloat32(batch, m, n, k int, a []float32, transA bool, b []float32, transB bool) (want, scale []float64) {
	want = make([]float64, batch*m*n)
	scale = make([]float64, batch*m*n)
	for bi := range batch {
		ab, bb := a[bi*m*k:(bi+1)*m*k], b[bi*k*n:(bi+1)*k*n]
		for i := range m {
			for j := range n {
				var s, abs float64
				for p := range k {
					v := float64(at(ab, transA, m, k, i, p)) * float64(at(bb, transB, k, n, p, j))
					s += v
					abs += math.Abs(v)
				}
				want[bi*m*n+i*n+j] = s
				scale[bi*m*n+i*n+j] = abs
			}
		}
	}
	return want, scale
}

func randFloat32(rng *rand.Rand, size int) []float32 {
	x := make([]float32, size)
	for i := range x {
		x[i] = rng.Float32()*2 - 1
	}
	return x
}

type shape struct{ batch, m, n, k int }

func testShapes() []shape {
	var shapes []shape
	sizes := []int{0, 1, 2, 3, 5, 6, 7, 11, 13, 16, 17, 23, 31, 37}
	for _, m := range sizes {
		for _, n := range sizes {
			for _, k := range []int{0, 1, 3, 8, 17, 37} {
				shapes = append(shapes, shape{1, m, n, k})
			}
		}
	}
	for i := 1; i <= 37; i++ {
		shapes = append(shapes, shape{1, i, i, i}, shape{2, i, 37 - i + 1, i + 3})
	}
	shapes = append(shapes,
		shape{1, 65, 65, 65}, shape{3, 65, 64, 65}, shape{5, 65, 65, 64},
		shape{1, 100, 100, 100}, shape{2, 257, 31, 257}, shape{1, 31, 257, 300},
		shape{4, 97, 89, 83}, shape{1, 151, 211, 521}, shape{1, 1, 1031, 513},
		shape{1, 1031, 1, 513}, shape{2, 5, 1100, 19}, shape{1, 300, 1100, 7},
		shape{1, 6, 16, 256}, shape{1, 12, 32, 257}, shape{1, 145, 17, 1000},
		shape{5, 13, 7, 5}, shape{4, 40, 40, 40},
		shape{1, 64, 256, 256}, shape{1, 100, 300, 200}, // shared packed B when parallel
		shape{1, 13, 37, 4100}, shape{2, 7, 20, 8200}, shape{1, 1, 1, 4096}, // split k
	)
	return shapes
}

func checkMatMulFloat32(t *testing.T, rng *rand.Rand, s shape, transA, transB bool) {
	t.Helper()
	a := randFloat32(rng, s.batch*s.m*s.k)
	b := randFloat32(rng, s.batch*s.k*s.n)
	c := randFloat32(rng, s.batch*s.m*s.n) // garbage: must be overwritten
	MatMulFloat32(s.batch, s.m, s.n, s.k, a, transA, b, transB, c)
	want, scale := refFloat32(s.batch, s.m, s.n, s.k, a, transA, b, transB)
	tol := 1e-5 * math.Sqrt(float64(max(s.k, 1)))
	for i, w := range want {
		if d := math.Abs(float64(c[i]) - w); d > tol*max(scale[i], 1e-30) && d != 0 {
			t.Fatalf("shape %+v transA=%v transB=%v: c[%d] = %g, want %g (diff %g, tol %g)",
				s, transA, transB, i, c[i], w, d, tol*scale[i])
		}
	}
}

func testMatMulFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range testShapes() {
		for _, transA := range []bool{false, true} {
			for _, transB := range []bool{false, true} {
				checkMatMulFloat32(t, rng, s, transA, transB)
			}
		}
	}
}

func TestMatMulFloat32(t *testing.T) {
	// "asm" is the fastest kernels this CPU has (AVX-512 when present),
	// "avx2" the AVX2 kernels only, "go" the pure-Go kernel; "-packed"
	// always packs A and never splits k.
	for _, kernel := range []string{"asm", "asm-packed", "avx2", "avx2-packed", "go"} {
		t.Run(kernel, func(t *testing.T) {
			if kernel != "go" && !useAVX2 {
				t.Skip("AVX2+FMA microkernel not available")
			}
			if strings.HasSuffix(kernel, "-packed") {
				savedA, savedK := directAEnabled, splitKEnabled
				directAEnabled, splitKEnabled = false, false
				defer func() { directAEnabled, splitKEnabled = savedA, savedK }()
			}
			if strings.HasPrefix(kernel, "avx2") || kernel == "go" {
				saved := useAVX512
				useAVX512 = false
				defer func() { useAVX512 = saved }()
			}
			if kernel == "go" {
				saved := useAVX2
				useAVX2 = false
				defer func() { useAVX2 = saved }()
			}
			for _, procs := range []int{1, 2, 3} {
				t.Run(fmt.Sprintf("procs=%d", procs), func(t *testing.T) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
					testMatMulFloat32(t)
				})
			}
		})
	}
}

// TestAVX512MatchesAVX2 checks that the AVX-512 kernels give the AVX2
// kernels' results bit for bit (each element is the same chain of fused
// multiply-adds), with A packed and read in place, overwriting and
// accumulating over k blocks, on full and edge tiles.
func TestAVX512MatchesAVX2(t *testing.T) {
	if !useAVX512 {
		t.Skip("AVX-512F kernels not available on this CPU")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	shapes := []shape{{1, 6, 32, 1}, {1, 6, 32, 7}, {1, 12, 64, 256}, {1, 5, 48, 33}, {2, 13, 80, 300},
		{1, 50, 192, 192}, {1, 64, 576, 192}, {1, 100, 300, 200}, {3, 31, 257, 777}, {1, 7, 1100, 19}}
	for _, s := range shapes {
		for _, packed := range []bool{false, true} {
			for _, transA := range []bool{false, true} {
				for _, transB := range []bool{false, true} {
					a := randFloat32(rng, s.batch*s.m*s.k)
					b := randFloat32(rng, s.batch*s.k*s.n)
					run := func(wide bool) []float32 {
						savedW, savedA := useAVX512, directAEnabled
						useAVX512, directAEnabled = wide, !packed
						defer func() { useAVX512, directAEnabled = savedW, savedA }()
						c := make([]float32, s.batch*s.m*s.n)
						MatMulFloat32(s.batch, s.m, s.n, s.k, a, transA, b, transB, c)
						return c
					}
					got, want := run(true), run(false)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("shape %+v packed=%v transA=%v transB=%v: c[%d] = %g with AVX-512, %g with AVX2",
								s, packed, transA, transB, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// TestMatMulFloat32Large covers shapes large enough to use k, m and n
// blocking and the parallel split (a subset of the benchmark shapes).
func TestMatMulFloat32Large(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	shapes := []shape{{1, 150, 1100, 530}, {1, 200, 192, 2080}, {2, 7, 2100, 65}, {1, 30, 1100, 2100}, {3, 97, 131, 1500},
		{1, 10, 260, 17000}, {1, 200, 40, 4200}, // split k, also over columns and rows
		{1, 5, 20, 65536},                       // huge k
		{1, 100, 70, 1700}, {1, 300, 100, 1000}, // A read in place (several k blocks; shared B)
	}
	for _, procs := range []int{2, 3} {
		t.Run(fmt.Sprintf("procs=%d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			for _, s := range shapes {
				for _, transA := range []bool{false, true} {
					for _, transB := range []bool{false, true} {
						checkMatMulFloat32(t, rng, s, transA, transB)
					}
				}
			}
		})
	}
}

// TestSplitKDeterministic checks that a split-k product does not depend on
// the number of goroutines, bit for bit.
func TestSplitKDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	s := shape{1, 37, 70, 16500}
	if !useSplitK(s.m, s.n, s.k) {
		t.Fatalf("shape %+v does not use split k", s)
	}
	a := randFloat32(rng, s.m*s.k)
	b := randFloat32(rng, s.k*s.n)
	var first []float32
	for _, procs := range []int{1, 2, 3, 5} {
		func() {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			c := make([]float32, s.m*s.n)
			MatMulFloat32(1, s.m, s.n, s.k, a, true, b, false, c)
			if first == nil {
				first = c
				return
			}
			for i := range c {
				if math.Float32bits(c[i]) != math.Float32bits(first[i]) {
					t.Fatalf("procs=%d: c[%d] = %g, with 1 goroutine %g", procs, i, c[i], first[i])
				}
			}
		}()
	}
}

func TestMatMulFloat32Panics(t *testing.T) {
	for name, f := range map[string]func(){
		"negative": func() { MatMulFloat32(1, -1, 1, 1, nil, false, nil, false, nil) },
		"short a": func() {
			MatMulFloat32(1, 2, 2, 2, make([]float32, 3), false, make([]float32, 4), false, make([]float32, 4))
		},
		"short c": func() { MatMul(1, 2, 2, 2, make([]int32, 4), false, make([]int32, 4), false, make([]int32, 3)) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			f()
		})
	}
}

// refExact computes the reference product in T itself (exact for integers,
// modulo wrap-around, which the tests avoid).
func refExact[T Numeric](batch, m, n, k int, a []T, transA bool, b []T, transB bool) []T {
	c := make([]T, batch*m*n)
	for bi := range batch {
		ab, bb := a[bi*m*k:(bi+1)*m*k], b[bi*k*n:(bi+1)*k*n]
		for i := range m {
			for j := range n {
				var s T
				for p := range k {
					s += at(ab, transA, m, k, i, p) * at(bb, transB, k, n, p, j)
				}
				c[bi*m*n+i*n+j] = s
			}
		}
	}
	return c
}

func TestMatMulInt32(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range testShapes() {
		a := make([]int32, s.batch*s.m*s.k)
		b := make([]int32, s.batch*s.k*s.n)
		for i := range a {
			a[i] = rng.Int32N(201) - 100
		}
		for i := range b {
			b[i] = rng.Int32N(201) - 100
		}
		for _, transA := range []bool{false, true} {
			for _, transB := range []bool{false, true} {
				c := make([]int32, s.batch*s.m*s.n)
				for i := range c {
					c[i] = 12345 // must be overwritten
				}
				MatMul(s.batch, s.m, s.n, s.k, a, transA, b, transB, c)
				want := refExact(s.batch, s.m, s.n, s.k, a, transA, b, transB)
				for i := range want {
					if c[i] != want[i] {
						t.Fatalf("shape %+v transA=%v transB=%v: c[%d] = %d, want %d", s, transA, transB, i, c[i], want[i])
					}
				}
			}
		}
	}
}

func TestMatMulFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range testShapes() {
		a32 := randFloat32(rng, s.batch*s.m*s.k)
		b32 := randFloat32(rng, s.batch*s.k*s.n)
		a, b := make([]float64, len(a32)), make([]float64, len(b32))
		for i, v := range a32 {
			a[i] = float64(v)
		}
		for i, v := range b32 {
			b[i] = float64(v)
		}
		for _, transA := range []bool{false, true} {
			for _, transB := range []bool{false, true} {
				c := make([]float64, s.batch*s.m*s.n)
				for i := range c {
					c[i] = math.NaN() // must be overwritten
				}
				MatMul(s.batch, s.m, s.n, s.k, a, transA, b, transB, c)
				want, scale := refFloat32(s.batch, s.m, s.n, s.k, a32, transA, b32, transB)
				for i, w := range want {
					if d := math.Abs(c[i] - w); !(d <= 1e-12*math.Sqrt(float64(max(s.k, 1)))*scale[i]) && d != 0 {
						t.Fatalf("shape %+v transA=%v transB=%v: c[%d] = %g, want %g", s, transA, transB, i, c[i], w)
					}
				}
			}
		}
	}
}

// TestMatMulGenericMatchesFloat32 checks MatMul[float32] against
// MatMulFloat32 on one shape (both must agree to float32 rounding).
func TestMatMulGenericMatchesFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	s := shape{3, 29, 41, 53}
	a := randFloat32(rng, s.batch*s.m*s.k)
	b := randFloat32(rng, s.batch*s.k*s.n)
	c1 := make([]float32, s.batch*s.m*s.n)
	c2 := make([]float32, s.batch*s.m*s.n)
	MatMul(s.batch, s.m, s.n, s.k, a, true, b, false, c1)
	MatMulFloat32(s.batch, s.m, s.n, s.k, a, true, b, false, c2)
	for i := range c1 {
		if math.Abs(float64(c1[i]-c2[i])) > 1e-4 {
			t.Fatalf("c[%d]: MatMul %g, MatMulFloat32 %g", i, c1[i], c2[i])
		}
	}
}

// TestNoAllocs checks that a warm call does not allocate beyond the
// goroutine start-up of the parallel path.
func TestNoAllocs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	a, b, c := make([]float32, 64*64), make([]float32, 64*64), make([]float32, 64*64)
	allocs := testing.AllocsPerRun(20, func() {
		MatMulFloat32(1, 64, 64, 64, a, false, b, true, c)
	})
	if allocs > 0 {
		t.Errorf("MatMulFloat32 allocates %v times per call", allocs)
	}
}

// benchShapes are the ViT training shapes (patch tokens x width, MLP, QKV, the
// weight gradient) and the batched attention products.
var benchShapes = []shape{
	{1, 2080, 768, 192},
	{1, 2080, 192, 768},
	{1, 2080, 576, 192},
	{1, 768, 192, 2080},
	{96, 65, 65, 64},
	{96, 65, 64, 65},
}

func BenchmarkMatMulFloat32(bm *testing.B) {
	for _, s := range benchShapes {
		for _, trans := range []struct{ a, b bool }{{false, false}, {false, true}, {true, false}, {true, true}} {
			name := fmt.Sprintf("b%d_m%d_k%d_n%d_tA%v_tB%v", s.batch, s.m, s.k, s.n, trans.a, trans.b)
			bm.Run(name, func(bm *testing.B) {
				a := make([]float32, s.batch*s.m*s.k)
				b := make([]float32, s.batch*s.k*s.n)
				c := make([]float32, s.batch*s.m*s.n)
				for i := range a {
					a[i] = float32(i%7) - 3
				}
				for i := range b {
					b[i] = float32(i%5) - 2
				}
				for bm.Loop() {
					MatMulFloat32(s.batch, s.m, s.n, s.k, a, trans.a, b, trans.b, c)
				}
				flops := 2 * float64(s.batch*s.m*s.n*s.k) * float64(bm.N)
				bm.ReportMetric(flops/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// convBenchShapes are the conv tokenizer's im2col products: weight gradients
// (A is the im2col matrix stored [k][m], so transA, with a huge k and a small
// C) and the forward and input-gradient products (small n).
var convBenchShapes = []struct {
	shape
	transA, transB bool
}{
	{shape{1, 128, 1152, 65536}, true, false},
	{shape{1, 64, 576, 65536}, true, false},
	{shape{1, 64, 1152, 65536}, true, false},
	{shape{1, 128, 1152, 16384}, true, false},
	{shape{1, 128, 1152, 4096}, true, false},
	{shape{1, 65536, 64, 576}, false, false},
	{shape{1, 65536, 64, 576}, false, true},
	{shape{1, 16384, 128, 1152}, false, false},
	{shape{1, 16384, 128, 1152}, false, true},
	{shape{1, 4096, 128, 1152}, false, false},
	{shape{1, 4096, 128, 1152}, false, true},
	{shape{1, 65536, 128, 1152}, false, false},
	{shape{1, 65536, 128, 1152}, false, true},
}

func BenchmarkMatMulFloat32Conv(bm *testing.B) {
	for _, cs := range convBenchShapes {
		s := cs.shape
		name := fmt.Sprintf("b%d_m%d_k%d_n%d_tA%v_tB%v", s.batch, s.m, s.k, s.n, cs.transA, cs.transB)
		bm.Run(name, func(bm *testing.B) {
			a := make([]float32, s.batch*s.m*s.k)
			b := make([]float32, s.batch*s.k*s.n)
			c := make([]float32, s.batch*s.m*s.n)
			for i := range a {
				a[i] = float32(i%7) - 3
			}
			for i := range b {
				b[i] = float32(i%5) - 2
			}
			for bm.Loop() {
				MatMulFloat32(s.batch, s.m, s.n, s.k, a, cs.transA, b, cs.transB, c)
			}
			flops := 2 * float64(s.batch*s.m*s.n*s.k) * float64(bm.N)
			bm.ReportMetric(flops/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func TestKernel(t *testing.T) {
	saved512, saved2 := useAVX512, useAVX2
	defer func() { useAVX512, useAVX2 = saved512, saved2 }()
	for _, c := range []struct {
		avx512, avx2 bool
		want         string
	}{{true, true, "AVX-512F"}, {false, true, "AVX2+FMA"}, {false, false, "pure Go"}} {
		useAVX512, useAVX2 = c.avx512, c.avx2
		if got := Kernel(); got != c.want {
			t.Errorf("Kernel() with avx512=%v avx2=%v = %q, want %q", c.avx512, c.avx2, got, c.want)
		}
	}
}
