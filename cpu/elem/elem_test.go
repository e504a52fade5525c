package elem

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
)

// bcastIndex maps a flat output index to the flat index of an operand with
// dims d (scalar if its size is 1) broadcast to outDims.
func bcastIndex(flat int, outDims, d []int) int {
	sz := 1
	for _, v := range d {
		sz *= v
	}
	if sz == 1 {
		return 0
	}
	idx, mul := 0, 1
	for ax := len(outDims) - 1; ax >= 0; ax-- {
		c := flat % outDims[ax]
		flat /= outDims[ax]
		if d[ax] != 1 {
			idx += c * mul
		}
		mul *= d[ax]
	}
	return idx
}

func size(d []int) int {
	n := 1
	for _, v := range d {
		n *= v
	}
	return n
}

func sameFloat(got, want, relTol, absTol float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	if math.IsInf(want, 0) || got == want {
		return got == want
	}
	return math.Abs(got-want) <= absTol+relTol*math.Abs(want)
}

var specials = []float64{0, math.Copysign(0, -1), 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 3, 1e-3, -7.25, 10, 40, -40, 88, -88,
	100, -100, 1e-30, 3.4e38, math.Inf(1), math.Inf(-1), math.NaN(), 0.3, -0.7, 2, 1e6, -1e-6, 4.5, 20, -0.4999}

func floatInputs(n int, rng *rand.Rand) []float64 {
	x := append([]float64{}, specials...)
	for len(x) < n {
		switch rng.IntN(3) {
		case 0:
			x = append(x, rng.NormFloat64())
		case 1:
			x = append(x, (rng.Float64()-0.5)*20)
		default:
			x = append(x, math.Exp(rng.Float64()*40-20)*float64(1-2*rng.IntN(2)))
		}
	}
	return x
}

func refUnary(op UnaryOp, x float64) float64 {
	switch op {
	case Neg:
		return -x
	case Abs:
		return math.Abs(x)
	case Sign:
		if x > 0 {
			return 1
		} else if x < 0 {
			return -1
		}
		return x
	case Exp:
		return math.Exp(x)
	case Expm1:
		return math.Expm1(x)
	case Log:
		return math.Log(x)
	case Log1p:
		return math.Log1p(x)
	case Sqrt:
		return math.Sqrt(x)
	case Rsqrt:
		return 1 / math.Sqrt(x)
	case Erf:
		return math.Erf(x)
	case Tanh:
		return math.Tanh(x)
	case Logistic:
		if x < 0 {
			e := math.Exp(x)
			return e / (1 + e)
		}
		return 1 / (1 + math.Exp(-x))
	case Sin:
		return math.Sin(x)
	case Cos:
		return math.Cos(x)
	case Floor:
		return math.Floor(x)
	case Ceil:
		return math.Ceil(x)
	case Round:
		return math.RoundToEven(x)
	}
	panic("bad op")
}

var floatUnaryOps = []UnaryOp{Neg, Abs, Sign, Exp, Expm1, Log, Log1p, Sqrt, Rsqrt, Erf, Tanh, Logistic, Sin, Cos, Floor, Ceil, Round}

func TestUnaryFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{37, 100_000} { // 100_000 exercises the parallel path.
		xs := floatInputs(n, rng)
		for _, op := range floatUnaryOps {
			x32 := make([]float32, len(xs))
			for i, v := range xs {
				x32[i] = float32(v)
			}
			out32 := make([]float32, len(xs))
			if err := Unary(op, out32, x32); err != nil {
				t.Fatal(err)
			}
			out64 := make([]float64, len(xs))
			if err := Unary(op, out64, xs); err != nil {
				t.Fatal(err)
			}
			for i := range xs {
				want32 := float64(float32(refUnary(op, float64(x32[i]))))
				rel, abs := 3e-7, 0.0
				switch op {
				case Erf:
					abs = 2e-7
				case Logistic, Tanh, Sin, Cos, Expm1, Log1p:
					abs = 1e-30
				}
				if math.Abs(float64(x32[i])) > 1e5 && (op == Sin || op == Cos) {
					rel, abs = 1e-6, 1e-6
				}
				if !sameFloat(float64(out32[i]), want32, rel, abs) {
					t.Errorf("float32 %s(%g) = %g, want %g", op, x32[i], out32[i], want32)
				}
				want64 := refUnary(op, xs[i])
				if !sameFloat(out64[i], want64, 1e-15, 0) {
					t.Errorf("float64 %s(%g) = %g, want %g", op, xs[i], out64[i], want64)
				}
			}
		}
	}
	// Round ties to even, Sign keeps -0.
	out := make([]float32, 4)
	_ = Unary(Round, out, []float32{0.5, 1.5, 2.5, -0.5})
	if out[0] != 0 || out[1] != 2 || out[2] != 2 || out[3] != 0 || !math.Signbit(float64(out[3])) {
		t.Errorf("Round: %v", out)
	}
	_ = Unary(Sign, out[:1], []float32{float32(math.Copysign(0, -1))})
	if !math.Signbit(float64(out[0])) {
		t.Errorf("Sign(-0) = %v", out[0])
	}
}

func TestIsFiniteIsNaN(t *testing.T) {
	x := []float32{1, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0, -3e38}
	fin, nan := make([]bool, len(x)), make([]bool, len(x))
	if err := Unary(IsFinite, fin, x); err != nil {
		t.Fatal(err)
	}
	if err := Unary(IsNaN, nan, x); err != nil {
		t.Fatal(err)
	}
	for i, v := range x {
		f := float64(v)
		if fin[i] != (!math.IsNaN(f) && !math.IsInf(f, 0)) || nan[i] != math.IsNaN(f) {
			t.Errorf("IsFinite/IsNaN(%v) = %v, %v", v, fin[i], nan[i])
		}
	}
	nb := []bool{true, false}
	if err := Unary(LogicalNot, nb, nb); err != nil || nb[0] || !nb[1] {
		t.Errorf("LogicalNot: %v %v", nb, err)
	}
}

// measureMaxErr returns the max absolute and relative error of the float32
// function f against ref over [lo, hi] with the given number of points.
func measureMaxErr(op UnaryOp, lo, hi float64, n int) (maxAbs, maxRel float64, at float32) {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*float64(i)/float64(n-1))
	}
	out := make([]float32, n)
	if err := Unary(op, out, x); err != nil {
		panic(err)
	}
	for i, v := range x {
		want := refUnary(op, float64(v))
		d := math.Abs(float64(out[i]) - want)
		if d > maxAbs {
			maxAbs, at = d, v
		}
		if want != 0 {
			maxRel = max(maxRel, d/math.Abs(want))
		}
	}
	return
}

func TestErfAccuracy(t *testing.T) {
	maxAbs, _, at := measureMaxErr(Erf, -6, 6, 2_000_001)
	t.Logf("Erf float32: max abs error %.3g (at x=%g)", maxAbs, at)
	if maxAbs >= 2e-7 {
		t.Errorf("Erf max abs error %g >= 2e-7", maxAbs)
	}
	// Relative accuracy near zero.
	_, maxRel, _ := measureMaxErr(Erf, -0.01, 0.01, 100_001)
	if maxRel > 2e-7 {
		t.Errorf("Erf max rel error near 0: %g", maxRel)
	}
}

func TestTranscendentalAccuracy(t *testing.T) {
	for _, c := range []struct {
		op     UnaryOp
		lo, hi float64
	}{{Exp, -87, 88}, {Tanh, -10, 10}, {Log, 1e-30, 1e5}, {Log, 0.5, 2}, {Logistic, -30, 30}} {
		_, maxRel, at := measureMaxErr(c.op, c.lo, c.hi, 1_000_001)
		t.Logf("%s float32 on [%g, %g]: max rel error %.3g (at %g)", c.op, c.lo, c.hi, maxRel, at)
		if maxRel > 1.5e-7 {
			t.Errorf("%s max rel error %g", c.op, maxRel)
		}
	}
	// Exp overflow/underflow and specials.
	x := []float32{89, -104, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), -100}
	out := make([]float32, len(x))
	_ = Unary(Exp, out, x)
	for i, v := range x {
		want := float32(math.Exp(float64(v)))
		if !sameFloat(float64(out[i]), float64(want), 1e-6, 0) {
			t.Errorf("Exp(%g) = %g want %g", v, out[i], want)
		}
	}
}

func testUnaryInt[T Integer](t *testing.T, vals []T) {
	w := bitWidth[T]()
	for _, op := range []UnaryOp{Neg, Abs, Sign, BitwiseNot, BitCount, Clz} {
		out := make([]T, len(vals))
		if err := Unary(op, out, vals); err != nil {
			t.Fatal(err)
		}
		for i, x := range vals {
			var want T
			u := uint64(x) & (math.MaxUint64 >> (64 - w))
			switch op {
			case Neg:
				want = -x
			case Abs:
				want = x
				if x < 0 {
					want = -x
				}
			case Sign:
				if x > 0 {
					want = 1
				} else if x < 0 {
					want = ^T(0)
				}
			case BitwiseNot:
				want = ^x
			case BitCount:
				want = T(bits.OnesCount64(u))
			case Clz:
				want = T(bits.LeadingZeros64(u) - (64 - w))
			}
			if out[i] != want {
				t.Errorf("%s %T(%v) = %v, want %v", op, x, x, out[i], want)
			}
		}
	}
	if err := Unary(Exp, make([]T, len(vals)), vals); err == nil || !strings.Contains(err.Error(), "Exp") {
		t.Errorf("Exp on %T: want error, got %v", vals, err)
	}
}

func TestUnaryInt(t *testing.T) {
	testUnaryInt(t, []int8{0, 1, -1, 127, -128, 5, -37})
	testUnaryInt(t, []int16{0, 1, -1, 32767, -32768, 300})
	testUnaryInt(t, []int32{0, 1, -1, math.MaxInt32, math.MinInt32, 12345})
	testUnaryInt(t, []int64{0, 1, -1, math.MaxInt64, math.MinInt64, 1 << 40})
	testUnaryInt(t, []uint8{0, 1, 255, 128, 7})
	testUnaryInt(t, []uint16{0, 1, 65535, 256})
	testUnaryInt(t, []uint32{0, 1, math.MaxUint32, 1 << 31})
	testUnaryInt(t, []uint64{0, 1, math.MaxUint64, 1 << 63})
}

func TestUnaryErrors(t *testing.T) {
	cases := []struct {
		op      UnaryOp
		out, in any
		want    string
	}{
		{Exp, make([]int32, 2), []int32{1, 2}, "int32"},
		{Floor, make([]int64, 1), []int64{1}, "Floor"},
		{BitCount, make([]float32, 1), []float32{1}, "float32"},
		{LogicalNot, make([]float32, 1), []float32{1}, "LogicalNot"},
		{Neg, make([]bool, 1), []bool{true}, "bool"},
		{Exp, make([]float32, 3), []float32{1, 2}, "elements"},
		{Exp, make([]float64, 2), []float32{1, 2}, "float64"},
		{IsNaN, make([]float32, 2), []float32{1, 2}, "bool"},
		{IsNaN, make([]bool, 2), []int32{1, 2}, "int32"},
		{Exp, []string{"a"}, []string{"b"}, "unsupported"},
	}
	for _, c := range cases {
		err := Unary(c.op, c.out, c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Unary(%s, %T, %T): got error %v, want one containing %q", c.op, c.out, c.in, err, c.want)
		}
	}
}
