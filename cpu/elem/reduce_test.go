package elem

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// refReduce reduces in over axes with f in float64 / generic arithmetic.
func refReduce[T any](in []T, dims, axes []int, init T, f func(a, b T) T) []T {
	red := make([]bool, len(dims))
	for _, a := range axes {
		red[a] = true
	}
	var outDims []int
	for i, d := range dims {
		if !red[i] {
			outDims = append(outDims, d)
		}
	}
	out := make([]T, size(outDims))
	for i := range out {
		out[i] = init
	}
	coords := make([]int, len(dims))
	for flat := range in {
		r := flat
		for ax := len(dims) - 1; ax >= 0; ax-- {
			coords[ax] = r % dims[ax]
			r /= dims[ax]
		}
		o := 0
		for ax, d := range dims {
			if !red[ax] {
				o = o*d + coords[ax]
			}
		}
		out[o] = f(out[o], in[flat])
	}
	return out
}

func subsets(rank int) [][]int {
	var res [][]int
	for m := range 1 << rank {
		var s []int
		for i := range rank {
			if m&(1<<i) != 0 {
				s = append(s, i)
			}
		}
		res = append(res, s)
	}
	return res
}

func TestReduceAxes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, dims := range [][]int{{3, 4, 5}, {2, 3, 1, 5}, {4, 1, 3, 70}, {2, 3, 4, 5}, {64, 3, 700}, {3, 0, 2}} {
		n := size(dims)
		xf := randVals[float64](n, rng, false)
		xi := randVals[int32](n, rng, false)
		xu := randVals[uint8](n, rng, false)
		xb := make([]bool, n)
		for i := range xb {
			xb[i] = rng.IntN(4) != 0
		}
		for _, axes := range subsets(len(dims)) {
			name := fmt.Sprintf("dims=%v axes=%v", dims, axes)
			outN := refReduce(xf, dims, axes, 0, func(a, b float64) float64 { return 0 })
			for _, op := range []ReduceOp{ReduceSum, ReduceProduct, ReduceMax, ReduceMin} {
				got := make([]float64, len(outN))
				if err := Reduce(op, got, xf, dims, axes); err != nil {
					t.Fatal(err)
				}
				var want []float64
				switch op {
				case ReduceSum:
					want = refReduce(xf, dims, axes, 0, func(a, b float64) float64 { return a + b })
				case ReduceProduct:
					want = refReduce(xf, dims, axes, 1, func(a, b float64) float64 { return a * b })
				case ReduceMax:
					want = refReduce(xf, dims, axes, math.Inf(-1), math.Max)
				case ReduceMin:
					want = refReduce(xf, dims, axes, math.Inf(1), math.Min)
				}
				for i := range want {
					if !sameFloat(got[i], want[i], 1e-12, 1e-12) {
						t.Fatalf("%s float64 %s: got[%d]=%v want %v", op, name, i, got[i], want[i])
					}
				}
				// float32 sum/max against the float64 reference.
				x32 := make([]float32, n)
				for i, v := range xf {
					x32[i] = float32(v)
				}
				got32 := make([]float32, len(outN))
				if err := Reduce(op, got32, x32, dims, axes); err != nil {
					t.Fatal(err)
				}
				if op == ReduceSum || op == ReduceMax {
					for i := range want {
						tol := 1e-5 * (1 + math.Abs(want[i]))
						if op == ReduceSum {
							tol = 1e-5 * float64(n/max(len(want), 1)+1)
						}
						if math.Abs(float64(got32[i])-want[i]) > tol {
							t.Fatalf("%s float32 %s: got[%d]=%v want %v", op, name, i, got32[i], want[i])
						}
					}
				}
			}
			for _, c := range []struct {
				op   ReduceOp
				init int32
				f    func(a, b int32) int32
			}{
				{ReduceSum, 0, func(a, b int32) int32 { return a + b }},
				{ReduceProduct, 1, func(a, b int32) int32 { return a * b }},
				{ReduceMax, math.MinInt32, func(a, b int32) int32 { return max(a, b) }},
				{ReduceMin, math.MaxInt32, func(a, b int32) int32 { return min(a, b) }},
				{ReduceBitwiseAnd, -1, func(a, b int32) int32 { return a & b }},
				{ReduceBitwiseOr, 0, func(a, b int32) int32 { return a | b }},
				{ReduceBitwiseXor, 0, func(a, b int32) int32 { return a ^ b }},
			} {
				got := make([]int32, len(outN))
				if err := Reduce(c.op, got, xi, dims, axes); err != nil {
					t.Fatal(err)
				}
				if want := refReduce(xi, dims, axes, c.init, c.f); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s int32 %s: got %v want %v", c.op, name, got, want)
				}
			}
			gotU := make([]uint8, len(outN))
			_ = Reduce(ReduceMin, gotU, xu, dims, axes)
			if want := refReduce(xu, dims, axes, 255, func(a, b uint8) uint8 { return min(a, b) }); fmt.Sprint(gotU) != fmt.Sprint(want) {
				t.Fatalf("Min uint8 %s: got %v want %v", name, gotU, want)
			}
			for _, c := range []struct {
				op   ReduceOp
				init bool
				f    func(a, b bool) bool
			}{
				{ReduceLogicalAnd, true, func(a, b bool) bool { return a && b }},
				{ReduceLogicalOr, false, func(a, b bool) bool { return a || b }},
				{ReduceLogicalXor, false, func(a, b bool) bool { return a != b }},
			} {
				got := make([]bool, len(outN))
				if err := Reduce(c.op, got, xb, dims, axes); err != nil {
					t.Fatal(err)
				}
				if want := refReduce(xb, dims, axes, c.init, c.f); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s bool %s: got %v want %v", c.op, name, got, want)
				}
			}
		}
	}
}

func TestReduceSumAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n = 1 << 20
	x := make([]float32, n)
	var want float64
	for i := range x {
		x[i] = float32(rng.Float64() + 0.5)
		want += float64(x[i])
	}
	out := []float32{0}
	if err := Reduce(ReduceSum, out, x, []int{n}, []int{0}); err != nil {
		t.Fatal(err)
	}
	rel := math.Abs(float64(out[0])-want) / want
	t.Logf("1M-element float32 sum: rel error %.3g", rel)
	if rel > 1e-6 {
		t.Errorf("sum = %v, want %v (rel err %g)", out[0], want, rel)
	}
	// Leading axis: [4096, 16] -> [16].
	rows, cols := 1<<16, 16
	x = x[:rows*cols]
	outC := make([]float32, cols)
	if err := Reduce(ReduceSum, outC, x, []int{rows, cols}, []int{0}); err != nil {
		t.Fatal(err)
	}
	for c := range cols {
		var w float64
		for r := range rows {
			w += float64(x[r*cols+c])
		}
		if rel := math.Abs(float64(outC[c])-w) / w; rel > 1e-6 {
			t.Errorf("column %d sum rel error %g", c, rel)
		}
	}
}

func TestReduceNaNAndErrors(t *testing.T) {
	nan := float32(math.NaN())
	out := make([]float32, 2)
	_ = Reduce(ReduceMax, out, []float32{1, nan, 3, 4, 5, 6}, []int{2, 3}, []int{1})
	if !math.IsNaN(float64(out[0])) || out[1] != 6 {
		t.Errorf("Max with NaN: %v", out)
	}
	_ = Reduce(ReduceMin, out, []float32{1, nan, 3, 4, 5, 6}, []int{3, 2}, []int{0})
	if out[0] != 1 || !math.IsNaN(float64(out[1])) {
		t.Errorf("Min with NaN: %v", out)
	}
	// Empty axes: copy.
	cp := make([]int64, 3)
	if err := Reduce(ReduceSum, cp, []int64{1, 2, 3}, []int{3}, nil); err != nil || fmt.Sprint(cp) != "[1 2 3]" {
		t.Errorf("copy: %v %v", cp, err)
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{Reduce(ReduceBitwiseAnd, out, []float32{1, 2}, []int{2}, nil), "float32"},
		{Reduce(ReduceLogicalAnd, []int32{0}, []int32{1}, nil, nil), "int32"},
		{Reduce(ReduceSum, []bool{false}, []bool{true}, []int{1}, []int{0}), "bool"},
		{Reduce(ReduceSum, out[:1], []float32{1, 2}, []int{2}, []int{1}), "axis"},
		{Reduce(ReduceSum, out[:1], []float32{1, 2}, []int{2}, []int{0, 0}), "axis"},
		{Reduce(ReduceSum, out, []float32{1, 2}, []int{2}, []int{0}), "output"},
		{Reduce(ReduceSum, out, []float64{1, 2}, []int{2}, nil), "dtype"},
		{Reduce(ReduceSum, out, []float32{1, 2, 3}, []int{2}, nil), "input"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("got error %v, want one containing %q", c.err, c.want)
		}
	}
}

func TestArgMinMax(t *testing.T) {
	nan := float32(math.NaN())
	x := []float32{
		3, 1, 1, 5, 5, // ties: min -> 1, max -> 3
		2, nan, 0, nan, 9, // NaN -> 1 for both
		7, 7, 7, 7, 7,
	}
	for _, c := range []struct {
		isMin bool
		want  string
	}{{true, "[1 1 0]"}, {false, "[3 1 0]"}} {
		out := make([]int32, 3)
		if err := ArgMinMax(out, x, []int{3, 5}, 1, c.isMin); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(out) != c.want {
			t.Errorf("ArgMinMax isMin=%v axis 1: %v, want %v", c.isMin, out, c.want)
		}
		// Same data transposed to [5, 3], reduce axis 0.
		xt := make([]float32, 15)
		for i := range 3 {
			for j := range 5 {
				xt[j*3+i] = x[i*5+j]
			}
		}
		out64 := make([]int64, 3)
		if err := ArgMinMax(out64, xt, []int{5, 3}, 0, c.isMin); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(out64) != c.want {
			t.Errorf("ArgMinMax isMin=%v axis 0: %v, want %v", c.isMin, out64, c.want)
		}
	}
	// Integers, rank 3, middle axis.
	rng := rand.New(rand.NewPCG(13, 14))
	dims := []int{4, 6, 5}
	xi := make([]int16, size(dims))
	for i := range xi {
		xi[i] = int16(rng.IntN(5))
	}
	out := make([]uint8, 20)
	if err := ArgMinMax(out, xi, dims, 1, false); err != nil {
		t.Fatal(err)
	}
	for a := range 4 {
		for b := range 5 {
			bi := 0
			for r := 1; r < 6; r++ {
				if xi[(a*6+r)*5+b] > xi[(a*6+bi)*5+b] {
					bi = r
				}
			}
			if int(out[a*5+b]) != bi {
				t.Errorf("int16 argmax[%d,%d] = %d, want %d", a, b, out[a*5+b], bi)
			}
		}
	}
	if err := ArgMinMax(make([]float32, 3), x, []int{3, 5}, 1, true); err == nil || !strings.Contains(err.Error(), "float32") {
		t.Errorf("float output: %v", err)
	}
	if err := ArgMinMax(make([]int32, 3), x, []int{3, 5}, 2, true); err == nil || !strings.Contains(err.Error(), "axis") {
		t.Errorf("bad axis: %v", err)
	}
	if err := ArgMinMax(make([]int32, 3), []bool{true}, []int{1}, 0, true); err == nil || !strings.Contains(err.Error(), "bool") {
		t.Errorf("bool input: %v", err)
	}
}

func TestConvert(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	f := []float64{1.9, -1.9, 0.5, -0.5, 300, -300, 3e9, -3e9, 1e20, -1e20, nan, inf, -inf, 0}
	check := func(name string, got any, want string) {
		t.Helper()
		if s := fmt.Sprint(got); s != want {
			t.Errorf("%s: got %s, want %s", name, s, want)
		}
	}
	i8 := make([]int8, len(f))
	_ = Convert(i8, f)
	check("float64->int8", i8, "[1 -1 0 0 127 -128 127 -128 127 -128 0 127 -128 0]")
	u8 := make([]uint8, len(f))
	_ = Convert(u8, f)
	check("float64->uint8", u8, "[1 0 0 0 255 0 255 0 255 0 0 255 0 0]")
	i32 := make([]int32, len(f))
	_ = Convert(i32, f)
	check("float64->int32", i32, "[1 -1 0 0 300 -300 2147483647 -2147483648 2147483647 -2147483648 0 2147483647 -2147483648 0]")
	i64 := make([]int64, 3)
	_ = Convert(i64, []float32{float32(math.Ldexp(1, 63)), float32(-math.Ldexp(1, 63)), 12345.9})
	check("float32->int64", i64, "[9223372036854775807 -9223372036854775808 12345]")
	u64 := make([]uint64, 2)
	_ = Convert(u64, []float64{math.Ldexp(1, 64), 1.8e19})
	check("float64->uint64", u64, "[18446744073709551615 18000000000000000000]")
	b := make([]bool, len(f))
	_ = Convert(b, f)
	check("float64->bool", b, "[true true true true true true true true true true true true true false]")
	f32 := make([]float32, 3)
	_ = Convert(f32, []bool{true, false, true})
	check("bool->float32", f32, "[1 0 1]")
	_ = Convert(f32, []int32{-7, 16777217, 3})
	check("int32->float32", f32, "[-7 1.6777216e+07 3]")
	_ = Convert(f32, []float64{1e300, 1.0000000001, -1e-300})
	check("float64->float32", f32, "[+Inf 1 -0]")
	i8b := make([]int8, 3)
	_ = Convert(i8b, []int32{200, -129, 5})
	check("int32->int8 (wrap)", i8b, "[-56 127 5]")
	u16 := make([]uint16, 2)
	_ = Convert(u16, []int8{-1, 3})
	check("int8->uint16", u16, "[65535 3]")
	bb := make([]bool, 3)
	_ = Convert(bb, []uint8{0, 2, 255})
	check("uint8->bool", bb, "[false true true]")
	i16 := make([]int16, 2)
	_ = Convert(i16, []bool{true, false})
	check("bool->int16", i16, "[1 0]")
	_ = Convert(bb[:2], []bool{false, true})
	check("bool->bool", bb, "[false true true]")
	big := make([]float32, 100_000)
	for i := range big {
		big[i] = float32(i) + 0.75
	}
	bigI := make([]int32, len(big))
	_ = Convert(bigI, big)
	for i, v := range bigI {
		if v != int32(i) {
			t.Fatalf("big convert at %d: %d", i, v)
		}
	}
	if err := Convert(make([]int32, 2), []float32{1}); err == nil || !strings.Contains(err.Error(), "elements") {
		t.Errorf("size mismatch: %v", err)
	}
	if err := Convert(make([]string, 1), []float32{1}); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Errorf("unsupported: %v", err)
	}
}

// TestRowReducerFloat32MatchesReduce: reducing each row with the function
// RowReducerFloat32 returns gives Reduce's results bit for bit, for rows of
// MinRowReduce elements and more, one trailing axis or several.
func TestRowReducerFloat32MatchesReduce(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, op := range []ReduceOp{ReduceSum, ReduceMax, ReduceMin} {
		row, err := RowReducerFloat32(op)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ dims, axes []int }{
			{[]int{2, MinRowReduce}, []int{1}},
			{[]int{7, 17}, []int{1}},
			{[]int{300, 192}, []int{1}},
			{[]int{3, 4, 65}, []int{2}},
			{[]int{64, 2048}, []int{1}},
			{[]int{5, 5000}, []int{1}},
			{[]int{6, 8, 24}, []int{1, 2}},
			{[]int{9, 1, 40}, []int{1, 2}},
		} {
			in := make([]float32, size(c.dims))
			for i := range in {
				in[i] = float32(r.NormFloat64() * 100)
			}
			want := make([]float32, size(c.dims[:len(c.dims)-len(c.axes)]))
			if err := ReduceOf(op, want, in, c.dims, c.axes); err != nil {
				t.Fatal(err)
			}
			n := len(in) / len(want)
			for a, w := range want {
				if got := row(in[a*n : (a+1)*n]); math.Float32bits(got) != math.Float32bits(w) {
					t.Errorf("%s %v over %v: row %d: %v, Reduce gives %v", op, c.dims, c.axes, a, got, w)
					break
				}
			}
		}
	}
	if _, err := RowReducerFloat32(ReduceProduct); err == nil {
		t.Error("RowReducerFloat32(ReduceProduct): no error")
	}
}
