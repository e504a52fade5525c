package elem

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

type bcase struct{ out, a, b []int }

var broadcastCases = []bcase{
	{[]int{7}, []int{7}, []int{7}},
	{nil, nil, nil},
	{[]int{5, 6}, []int{5, 6}, nil},
	{[]int{5, 6}, nil, []int{5, 6}},
	{[]int{5, 6}, []int{5, 6}, []int{1, 6}},
	{[]int{5, 6}, []int{1, 6}, []int{5, 6}},
	{[]int{5, 6}, []int{5, 6}, []int{5, 1}},
	{[]int{5, 6}, []int{5, 1}, []int{1, 6}},
	{[]int{3, 4, 5}, []int{3, 1, 5}, []int{3, 4, 5}},
	{[]int{3, 4, 5}, []int{3, 4, 5}, []int{1, 1, 1}},
	{[]int{2, 3, 4, 5}, []int{2, 1, 4, 1}, []int{1, 3, 1, 5}},
	{[]int{2, 3, 4, 5}, []int{2, 3, 4, 5}, []int{2, 1, 1, 5}},
	{[]int{2, 1, 4, 5}, []int{2, 1, 4, 5}, []int{1, 1, 4, 1}},
	{[]int{300, 257}, []int{300, 257}, []int{1, 257}}, // parallel paths
	{[]int{300, 257}, []int{300, 1}, []int{300, 257}},
	{[]int{70000}, []int{70000}, []int{70000}},
	{[]int{70000}, []int{70000}, nil},
	{[]int{0, 3}, []int{0, 3}, []int{1, 3}},
}

func randVals[T Number](n int, rng *rand.Rand, ints bool) []T {
	x := make([]T, n)
	var z T
	for i := range x {
		switch any(z).(type) {
		case float32, float64:
			if ints {
				x[i] = T(rng.IntN(9) - 4)
			} else {
				x[i] = T(rng.NormFloat64() * 3)
			}
		default:
			x[i] = T(rng.Uint64())
			if rng.IntN(3) == 0 {
				x[i] = T(rng.IntN(10))
			}
		}
	}
	return x
}

func refBinaryInt[T Integer](op BinaryOp, x, y T) T {
	w := uint64(bitWidth[T]())
	switch op {
	case Add:
		return x + y
	case Sub:
		return x - y
	case Mul:
		return x * y
	case Div:
		if y == 0 {
			return ^T(0)
		}
		return x / y
	case Rem:
		if y == 0 {
			return x
		}
		return x % y
	case Pow:
		r := T(1)
		if y < 0 {
			if x == 1 || (x < 0 && x == ^T(0)) {
				if y%2 == 0 {
					return 1
				}
				return x
			}
			return 0
		}
		for range uint64(y) % 200 { // test values keep exponents small
			r *= x
		}
		return r
	case Max:
		return max(x, y)
	case Min:
		return min(x, y)
	case BitwiseAnd:
		return x & y
	case BitwiseOr:
		return x | y
	case BitwiseXor:
		return x ^ y
	case ShiftLeft:
		if uint64(y) >= w {
			return 0
		}
		return x << uint64(y)
	case ShiftRightLogical:
		if uint64(y) >= w {
			return 0
		}
		u := uint64(x) & (math.MaxUint64 >> (64 - w))
		return T(u >> uint64(y))
	case ShiftRightArithmetic:
		s := int64(uint64(x)<<(64-w)) >> (64 - w)
		if uint64(y) >= w {
			if s < 0 {
				return ^T(0)
			}
			return 0
		}
		return T(s >> uint64(y))
	}
	panic("bad op")
}

func testBinaryInt[T Integer](t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ops := []BinaryOp{Add, Sub, Mul, Div, Rem, Pow, Max, Min, BitwiseAnd, BitwiseOr, BitwiseXor, ShiftLeft, ShiftRightArithmetic, ShiftRightLogical}
	for _, bc := range broadcastCases[:13] {
		for _, op := range ops {
			a, b := randVals[T](size(bc.a), rng, false), randVals[T](size(bc.b), rng, false)
			if op == Pow {
				for i := range b {
					b[i] = T(rng.IntN(7))
					if var0 := T(0); ^var0 < 0 {
						b[i] -= 2
					}
				}
			}
			if op == ShiftLeft || op == ShiftRightLogical || op == ShiftRightArithmetic {
				for i := range b {
					b[i] = T(rng.IntN(80))
				}
			}
			out := make([]T, size(bc.out))
			if err := Binary(op, out, bc.out, a, bc.a, b, bc.b); err != nil {
				t.Fatal(err)
			}
			for i := range out {
				x, y := a[bcastIndex(i, bc.out, bc.a)], b[bcastIndex(i, bc.out, bc.b)]
				if want := refBinaryInt(op, x, y); out[i] != want {
					t.Fatalf("%s %T(%v, %v) = %v, want %v (case %v)", op, x, x, y, out[i], want, bc)
				}
			}
		}
	}
	// Special values.
	var z T
	if ^z < 0 {
		minV := T(1) << (bitWidth[T]() - 1)
		cases := [][3]T{{minV, ^T(0), minV}, {5, 0, ^T(0)}}
		for _, c := range cases {
			out := []T{0}
			_ = Binary(Div, out, nil, []T{c[0]}, nil, []T{c[1]}, nil)
			if out[0] != c[2] {
				t.Errorf("Div(%v, %v) = %v, want %v", c[0], c[1], out[0], c[2])
			}
		}
		out := []T{1}
		_ = Binary(Rem, out, nil, []T{minV}, nil, []T{^T(0)}, nil)
		if out[0] != 0 {
			t.Errorf("Rem(min, -1) = %v", out[0])
		}
		_ = Binary(ShiftRightArithmetic, out, nil, []T{^T(0) - 7}, nil, []T{2}, nil)
		if out[0] != ^T(0)-1 {
			t.Errorf("ShiftRightArithmetic(-8, 2) = %v", out[0])
		}
	}
	if err := Binary(Atan2, []T{0}, nil, []T{1}, nil, []T{1}, nil); err == nil {
		t.Errorf("Atan2 on %T: expected error", z)
	}
	if err := Binary(LogicalAnd, []T{0}, nil, []T{1}, nil, []T{1}, nil); err == nil || !strings.Contains(err.Error(), "LogicalAnd") {
		t.Errorf("LogicalAnd on %T: expected error, got %v", z, err)
	}
}

func TestBinaryInt(t *testing.T) {
	t.Run("int8", testBinaryInt[int8])
	t.Run("int16", testBinaryInt[int16])
	t.Run("int32", testBinaryInt[int32])
	t.Run("int64", testBinaryInt[int64])
	t.Run("uint8", testBinaryInt[uint8])
	t.Run("uint16", testBinaryInt[uint16])
	t.Run("uint32", testBinaryInt[uint32])
	t.Run("uint64", testBinaryInt[uint64])
}

func refBinaryFloat(op BinaryOp, x, y float64) float64 {
	switch op {
	case Add:
		return x + y
	case Sub:
		return x - y
	case Mul:
		return x * y
	case Div:
		return x / y
	case Rem:
		return math.Mod(x, y)
	case Pow:
		return math.Pow(x, y)
	case Max:
		if math.IsNaN(x) || math.IsNaN(y) {
			return math.NaN()
		}
		return math.Max(x, y)
	case Min:
		if math.IsNaN(x) || math.IsNaN(y) {
			return math.NaN()
		}
		return math.Min(x, y)
	case Atan2:
		return math.Atan2(x, y)
	}
	panic("bad op")
}

func testBinaryFloat[T Float](t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, bc := range broadcastCases {
		for _, op := range []BinaryOp{Add, Sub, Mul, Div, Rem, Pow, Max, Min, Atan2} {
			a, b := randVals[T](size(bc.a), rng, false), randVals[T](size(bc.b), rng, op == Pow)
			if len(a) > 3 && len(b) > 3 {
				a[1], b[2], a[3], b[3] = T(math.NaN()), T(math.Inf(1)), 0, 0
			}
			out := make([]T, size(bc.out))
			if err := Binary(op, out, bc.out, a, bc.a, b, bc.b); err != nil {
				t.Fatal(err)
			}
			for i := range out {
				x, y := a[bcastIndex(i, bc.out, bc.a)], b[bcastIndex(i, bc.out, bc.b)]
				want := T(refBinaryFloat(op, float64(x), float64(y)))
				if !sameFloat(float64(out[i]), float64(want), 0, 0) {
					t.Fatalf("%s %T(%v, %v) = %v, want %v (case %v)", op, x, x, y, out[i], want, bc)
				}
			}
		}
	}
	for _, op := range []BinaryOp{BitwiseAnd, ShiftLeft, LogicalOr} {
		err := Binary(op, []T{0}, nil, []T{1}, nil, []T{1}, nil)
		if err == nil || !strings.Contains(err.Error(), op.String()) || !strings.Contains(err.Error(), "float") {
			t.Errorf("%s on float: got %v", op, err)
		}
	}
}

func TestBinaryFloat(t *testing.T) {
	t.Run("float32", testBinaryFloat[float32])
	t.Run("float64", testBinaryFloat[float64])
}

func TestBinaryBool(t *testing.T) {
	a := []bool{true, true, false, false}
	b := []bool{true, false, true, false}
	for op, want := range map[BinaryOp][]bool{
		LogicalAnd: {true, false, false, false},
		LogicalOr:  {true, true, true, false},
		LogicalXor: {false, true, true, false},
	} {
		out := make([]bool, 4)
		if err := Binary(op, out, []int{2, 2}, a, []int{2, 2}, b, []int{2, 2}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(out) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", op, out, want)
		}
	}
	// Scalar broadcast.
	out := make([]bool, 4)
	_ = Binary(LogicalAnd, out, []int{4}, a, []int{4}, []bool{false}, nil)
	if fmt.Sprint(out) != "[false false false false]" {
		t.Errorf("LogicalAnd scalar: %v", out)
	}
	if err := Binary(Add, out, []int{4}, a, []int{4}, b, []int{4}); err == nil || !strings.Contains(err.Error(), "bool") {
		t.Errorf("Add on bool: %v", err)
	}
}

func TestBinaryErrors(t *testing.T) {
	f := make([]float32, 6)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"dtype mismatch", Binary(Add, f, []int{6}, f, []int{6}, make([]float64, 6), []int{6}), "dtypes differ"},
		{"bad broadcast", Binary(Add, f, []int{2, 3}, f, []int{2, 3}, f[:2], []int{2, 1, 1}), "broadcast"},
		{"bad dim", Binary(Add, f, []int{2, 3}, f, []int{2, 3}, f[:2], []int{1, 2}), "broadcast"},
		{"out size", Binary(Add, f[:5], []int{2, 3}, f, []int{2, 3}, f, []int{2, 3}), "output"},
		{"operand size", Binary(Add, f, []int{2, 3}, f[:5], []int{2, 3}, f, []int{2, 3}), "operands"},
		{"unsupported", Binary(Add, []string{""}, nil, []string{""}, nil, []string{""}, nil), "unsupported"},
		{"negative dim", Binary(Add, f, []int{-1}, f, []int{6}, f, []int{6}), "negative"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: got %v, want error containing %q", c.name, c.err, c.want)
		}
	}
}

func TestCompare(t *testing.T) {
	nan := float32(math.NaN())
	negNaN := float32(math.Copysign(math.NaN(), -1))
	negZero := float32(math.Copysign(0, -1))
	inf := float32(math.Inf(1))
	vals := []float32{nan, negNaN, -inf, -1, negZero, 0, 1, inf}
	// total order rank of vals
	rank := []int{7, 0, 1, 2, 3, 4, 5, 6}
	n := len(vals)
	a, b := make([]float32, n*n), make([]float32, n*n)
	for i := range n {
		for j := range n {
			a[i*n+j], b[i*n+j] = vals[i], vals[j]
		}
	}
	for op := Equal; op < numCompareOps; op++ {
		out := make([]bool, n*n)
		if err := Compare(op, out, []int{n, n}, a, []int{n, n}, b, []int{n, n}); err != nil {
			t.Fatal(err)
		}
		// Broadcast form must agree: a as [n,1] column, b as [1,n] row.
		out2 := make([]bool, n*n)
		if err := Compare(op, out2, []int{n, n}, vals, []int{n, 1}, vals, []int{1, n}); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			for j := range n {
				x, y := float64(vals[i]), float64(vals[j])
				ri, rj := rank[i], rank[j]
				var want bool
				switch op {
				case Equal:
					want = x == y
				case NotEqual:
					want = x != y
				case LessThan:
					want = x < y
				case LessOrEqual:
					want = x <= y
				case GreaterThan:
					want = x > y
				case GreaterOrEqual:
					want = x >= y
				case EqualTotalOrder:
					want = ri == rj
				case NotEqualTotalOrder:
					want = ri != rj
				case LessThanTotalOrder:
					want = ri < rj
				case LessOrEqualTotalOrder:
					want = ri <= rj
				case GreaterThanTotalOrder:
					want = ri > rj
				case GreaterOrEqualTotalOrder:
					want = ri >= rj
				}
				if out[i*n+j] != want || out2[i*n+j] != want {
					t.Errorf("%s(%v, %v) = %v/%v, want %v", op, x, y, out[i*n+j], out2[i*n+j], want)
				}
			}
		}
	}
	// Integers, scalar operands, float64 and bool.
	for op, want := range map[CompareOp]string{
		LessThan: "[true false false]", GreaterOrEqual: "[false true true]", NotEqual: "[true false true]",
		GreaterThan: "[false false true]", LessOrEqual: "[true true false]", Equal: "[false true false]",
	} {
		out := make([]bool, 3)
		if err := Compare(op, out, []int{3}, []int32{1, 2, 3}, []int{3}, []int32{2}, nil); err != nil {
			t.Fatal(err)
		}
		out64 := make([]bool, 3)
		_ = Compare(op, out64, []int{3}, []float64{2}, nil, []float64{3, 2, 1}, []int{3})
		outU := make([]bool, 3)
		_ = Compare(op+EqualTotalOrder, outU, []int{3}, []uint64{1, 2, 3}, []int{3}, []uint64{2}, []int{1})
		if fmt.Sprint(out) != want || fmt.Sprint(out64) != want || fmt.Sprint(outU) != want {
			t.Errorf("%s: %v %v %v, want %v", op, out, out64, outU, want)
		}
	}
	out := make([]bool, 4)
	_ = Compare(LessThan, out, []int{4}, []bool{false, false, true, true}, []int{4}, []bool{false, true, false, true}, []int{4})
	if fmt.Sprint(out) != "[false true false false]" {
		t.Errorf("bool LessThan: %v", out)
	}
	if err := Compare(Equal, out, []int{4}, []float32{1}, nil, []float64{1}, nil); err == nil {
		t.Errorf("expected dtype mismatch error")
	}
	// Large, parallel.
	big := make([]float32, 100_000)
	for i := range big {
		big[i] = float32(i % 7)
	}
	outBig := make([]bool, len(big))
	_ = Compare(GreaterThan, outBig, []int{len(big)}, big, []int{len(big)}, []float32{3}, nil)
	for i, v := range big {
		if outBig[i] != (v > 3) {
			t.Fatalf("big GreaterThan at %d", i)
		}
	}
}

func TestWhere(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	type wcase struct{ out, c, t, f []int }
	for _, wc := range []wcase{
		{[]int{4, 5}, []int{4, 5}, []int{4, 5}, []int{4, 5}},
		{[]int{4, 5}, nil, []int{4, 5}, []int{4, 5}},
		{[]int{4, 5}, []int{4, 5}, nil, []int{4, 5}},
		{[]int{4, 5}, []int{4, 5}, []int{4, 5}, nil},
		{[]int{4, 5}, []int{4, 1}, []int{1, 5}, nil},
		{[]int{2, 3, 4, 5}, []int{2, 3, 4, 5}, []int{2, 1, 4, 1}, []int{1, 3, 1, 5}},
		{[]int{300, 300}, []int{300, 300}, []int{300, 300}, nil},
		{[]int{300, 300}, nil, []int{300, 300}, nil},
		{[]int{300, 300}, []int{1, 1}, []int{1, 1}, []int{300, 300}},
	} {
		cond := make([]bool, size(wc.c))
		for i := range cond {
			cond[i] = rng.IntN(2) == 0
		}
		tv, fv := randVals[float32](size(wc.t), rng, false), randVals[float32](size(wc.f), rng, false)
		out := make([]float32, size(wc.out))
		if err := Where(out, wc.out, cond, wc.c, tv, wc.t, fv, wc.f); err != nil {
			t.Fatal(err)
		}
		for i := range out {
			want := fv[bcastIndex(i, wc.out, wc.f)]
			if cond[bcastIndex(i, wc.out, wc.c)] {
				want = tv[bcastIndex(i, wc.out, wc.t)]
			}
			if out[i] != want {
				t.Fatalf("Where case %v at %d: %v want %v", wc, i, out[i], want)
			}
		}
	}
	outI := make([]int64, 3)
	if err := Where(outI, []int{3}, []bool{true, false, true}, []int{3}, []int64{1, 2, 3}, []int{3}, []int64{-1}, nil); err != nil || fmt.Sprint(outI) != "[1 -1 3]" {
		t.Errorf("Where int64: %v %v", outI, err)
	}
	outB := make([]bool, 2)
	if err := Where(outB, []int{2}, []bool{true, false}, []int{2}, []bool{true}, nil, []bool{true, false}, []int{2}); err != nil || fmt.Sprint(outB) != "[true false]" {
		t.Errorf("Where bool: %v %v", outB, err)
	}
	if err := Where(outI, []int{3}, []bool{true, false}, []int{2}, []int64{1}, nil, []int64{-1}, nil); err == nil {
		t.Errorf("Where: expected error for bad cond dims")
	}
	if err := Where(outI, []int{3}, []bool{true}, nil, []int32{1}, nil, []int64{-1}, nil); err == nil {
		t.Errorf("Where: expected error for dtype mismatch")
	}
}

func TestClamp(t *testing.T) {
	nan := float32(math.NaN())
	x := []float32{-5, -1, 0, 0.5, 1, 7, nan}
	out := make([]float32, len(x))
	if err := Clamp(out, []int{7}, []float32{-1}, nil, x, []float32{1}, nil); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != "[-1 -1 0 0.5 1 1 NaN]" {
		t.Errorf("Clamp scalar: %v", out)
	}
	lo := []float32{0, 0, 0, 0, 0, 0, 0}
	hi := []float32{1, 2, 3, 4, 5, 6, 7}
	if err := Clamp(out, []int{7}, lo, []int{7}, x, hi, []int{7}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != "[0 0 0 0.5 1 6 NaN]" {
		t.Errorf("Clamp array: %v", out)
	}
	oi := make([]int32, 3)
	if err := Clamp(oi, []int{3}, []int32{0}, nil, []int32{-3, 3, 30}, []int32{10, 10, 10}, []int{3}); err != nil || fmt.Sprint(oi) != "[0 3 10]" {
		t.Errorf("Clamp int32: %v %v", oi, err)
	}
	if err := Clamp(oi, []int{3}, []int32{0, 1}, []int{2}, []int32{-3, 3, 30}, []int32{10}, nil); err == nil {
		t.Errorf("Clamp: expected error")
	}
	if err := Clamp([]bool{true}, nil, []bool{true}, nil, []bool{true}, []bool{true}, nil); err == nil || !strings.Contains(err.Error(), "bool") {
		t.Errorf("Clamp bool: %v", err)
	}
}
