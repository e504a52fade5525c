package elem

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Broadcast patterns whose contiguous inner runs are short, so that the
// plans iterate over blocks (with gathered operands), plus a few with long
// runs for comparison. Operands of size 1 are scalars.
var shortRunCases = []struct{ out, a, b []int }{
	{[]int{3, 50, 6, 2}, []int{3, 50, 6, 2}, []int{3, 1, 6, 1}},
	{[]int{3, 50, 6, 2}, []int{3, 1, 6, 1}, []int{3, 50, 6, 2}},
	{[]int{4, 33, 5, 3}, []int{4, 33, 5, 3}, []int{4, 1, 5, 3}},
	{[]int{4, 33, 5, 3}, []int{1, 33, 1, 3}, []int{4, 33, 5, 3}},
	{[]int{4, 33, 5, 3}, []int{1, 33, 1, 3}, []int{4, 1, 5, 1}},
	{[]int{4, 33, 5, 3}, []int{4, 1, 5, 1}, []int{1, 33, 1, 3}},
	{[]int{2, 7, 3, 5, 2}, []int{2, 7, 3, 5, 2}, []int{2, 1, 3, 1, 2}},
	{[]int{2, 7, 3, 5, 2}, []int{1, 7, 1, 5, 1}, []int{2, 1, 3, 1, 2}},
	{[]int{2, 7, 3, 5, 2}, []int{2, 7, 1, 5, 1}, nil},
	{[]int{5, 97, 3}, []int{5, 97, 3}, []int{5, 1, 3}},     // prime axis: no split
	{[]int{2, 4096, 2}, []int{2, 4096, 2}, []int{1, 1, 2}}, // split axis
	{[]int{2, 4096, 2}, []int{2, 1, 2}, []int{2, 4096, 1}},
	{[]int{4, 8, 4, 8}, []int{4, 1, 4, 1}, []int{1, 8, 1, 8}},
	{[]int{6, 40, 7}, []int{6, 1, 1}, []int{6, 1, 1}}, // both constant per block
	{[]int{16, 64, 32, 2}, []int{16, 64, 32, 2}, []int{16, 1, 32, 1}},
	{[]int{8, 64, 32, 4}, []int{8, 64, 32, 4}, []int{8, 1, 32, 1}},
	{[]int{64, 300}, []int{64, 300}, []int{1, 300}}, // long runs
	{[]int{3, 200, 5, 2}, []int{3, 200, 5, 2}, []int{3, 1, 5, 1}},
}

// bigShortRunCase exceeds ParallelThreshold, so blocks run on goroutines.
var bigShortRunCase = struct{ out, a, b []int }{[]int{8, 512, 32, 2}, []int{8, 512, 32, 2}, []int{8, 1, 32, 1}}

func TestShortRunBroadcastBinary(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	cases := append(shortRunCases[:len(shortRunCases):len(shortRunCases)], bigShortRunCase)
	for _, c := range cases {
		name := fmt.Sprintf("%v=%v,%v", c.out, c.a, c.b)
		// float32 and float64: every float op.
		for _, op := range []BinaryOp{Add, Sub, Mul, Div, Rem, Pow, Max, Min, Atan2} {
			a32, b32 := randVals[float32](size(c.a), rng, false), randVals[float32](size(c.b), rng, op == Pow)
			o32 := make([]float32, size(c.out))
			if err := Binary(op, o32, c.out, a32, c.a, b32, c.b); err != nil {
				t.Fatal(err)
			}
			a64, b64 := randVals[float64](size(c.a), rng, false), randVals[float64](size(c.b), rng, op == Pow)
			o64 := make([]float64, size(c.out))
			if err := Binary(op, o64, c.out, a64, c.a, b64, c.b); err != nil {
				t.Fatal(err)
			}
			for i := range o32 {
				x, y := a32[bcastIndex(i, c.out, c.a)], b32[bcastIndex(i, c.out, c.b)]
				want := float32(refBinaryFloat(op, float64(x), float64(y)))
				if !sameFloat(float64(o32[i]), float64(want), 0, 0) {
					t.Fatalf("%s float32 %s at %d: %v %v -> %v, want %v", op, name, i, x, y, o32[i], want)
				}
				x64, y64 := a64[bcastIndex(i, c.out, c.a)], b64[bcastIndex(i, c.out, c.b)]
				if want := refBinaryFloat(op, x64, y64); !sameFloat(o64[i], want, 0, 0) {
					t.Fatalf("%s float64 %s at %d: %v %v -> %v, want %v", op, name, i, x64, y64, o64[i], want)
				}
			}
		}
		// int32 and uint8: every integer op.
		for _, op := range []BinaryOp{Add, Sub, Mul, Div, Rem, Pow, Max, Min, BitwiseAnd, BitwiseOr, BitwiseXor,
			ShiftLeft, ShiftRightArithmetic, ShiftRightLogical} {
			ai, bi := randVals[int32](size(c.a), rng, false), randVals[int32](size(c.b), rng, false)
			au, bu := randVals[uint8](size(c.a), rng, false), randVals[uint8](size(c.b), rng, false)
			switch op {
			case Pow: // small exponents, as the reference loops
				for i := range bi {
					bi[i] = int32(rng.IntN(7) - 2)
				}
				for i := range bu {
					bu[i] = uint8(rng.IntN(7))
				}
			case ShiftLeft, ShiftRightArithmetic, ShiftRightLogical:
				for i := range bi {
					bi[i] = int32(rng.IntN(80))
				}
				for i := range bu {
					bu[i] = uint8(rng.IntN(80))
				}
			}
			oi := make([]int32, size(c.out))
			if err := Binary(op, oi, c.out, ai, c.a, bi, c.b); err != nil {
				t.Fatal(err)
			}
			ou := make([]uint8, size(c.out))
			if err := Binary(op, ou, c.out, au, c.a, bu, c.b); err != nil {
				t.Fatal(err)
			}
			for i := range oi {
				x, y := ai[bcastIndex(i, c.out, c.a)], bi[bcastIndex(i, c.out, c.b)]
				if want := refBinaryInt(op, x, y); oi[i] != want {
					t.Fatalf("%s int32 %s at %d: %v %v -> %v, want %v", op, name, i, x, y, oi[i], want)
				}
				xu, yu := au[bcastIndex(i, c.out, c.a)], bu[bcastIndex(i, c.out, c.b)]
				if want := refBinaryInt(op, xu, yu); ou[i] != want {
					t.Fatalf("%s uint8 %s at %d: %v %v -> %v, want %v", op, name, i, xu, yu, ou[i], want)
				}
			}
		}
		// bool logical ops.
		ab, bb := randBools(size(c.a), rng), randBools(size(c.b), rng)
		for _, op := range []BinaryOp{LogicalAnd, LogicalOr, LogicalXor} {
			ob := make([]bool, size(c.out))
			if err := Binary(op, ob, c.out, ab, c.a, bb, c.b); err != nil {
				t.Fatal(err)
			}
			for i := range ob {
				x, y := ab[bcastIndex(i, c.out, c.a)], bb[bcastIndex(i, c.out, c.b)]
				want := map[BinaryOp]bool{LogicalAnd: x && y, LogicalOr: x || y, LogicalXor: x != y}[op]
				if ob[i] != want {
					t.Fatalf("%s bool %s at %d: %v %v -> %v", op, name, i, x, y, ob[i])
				}
			}
		}
		// Comparisons on float32 (with NaN and ties) and int16.
		af, bf := randVals[float32](size(c.a), rng, true), randVals[float32](size(c.b), rng, true)
		af[0] = float32(math.NaN())
		ai, bi := randVals[int16](size(c.a), rng, false), randVals[int16](size(c.b), rng, false)
		for op := Equal; op < numCompareOps; op++ {
			of, oi := make([]bool, size(c.out)), make([]bool, size(c.out))
			if err := Compare(op, of, c.out, af, c.a, bf, c.b); err != nil {
				t.Fatal(err)
			}
			if err := Compare(op, oi, c.out, ai, c.a, bi, c.b); err != nil {
				t.Fatal(err)
			}
			for i := range of {
				x, y := af[bcastIndex(i, c.out, c.a)], bf[bcastIndex(i, c.out, c.b)]
				if want := refCompare(op, x, y, totalKey32); of[i] != want {
					t.Fatalf("%s float32 %s at %d: %v %v -> %v", op, name, i, x, y, of[i])
				}
				xi, yi := ai[bcastIndex(i, c.out, c.a)], bi[bcastIndex(i, c.out, c.b)]
				if want := refCompare(op, xi, yi, func(v int16) int64 { return int64(v) }); oi[i] != want {
					t.Fatalf("%s int16 %s at %d: %v %v -> %v", op, name, i, xi, yi, oi[i])
				}
			}
		}
	}
}

func randBools(n int, rng *rand.Rand) []bool {
	x := make([]bool, n)
	for i := range x {
		x[i] = rng.IntN(2) == 0
	}
	return x
}

// refCompare evaluates a comparison; the TotalOrder ops use key.
func refCompare[T Number](op CompareOp, x, y T, key func(T) int64) bool {
	switch op {
	case Equal:
		return x == y
	case NotEqual:
		return x != y
	case LessThan:
		return x < y
	case LessOrEqual:
		return x <= y
	case GreaterThan:
		return x > y
	case GreaterOrEqual:
		return x >= y
	}
	kx, ky := key(x), key(y)
	switch op {
	case EqualTotalOrder:
		return kx == ky
	case NotEqualTotalOrder:
		return kx != ky
	case LessThanTotalOrder:
		return kx < ky
	case LessOrEqualTotalOrder:
		return kx <= ky
	case GreaterThanTotalOrder:
		return kx > ky
	}
	return kx >= ky
}

func TestShortRunBroadcastWhereClamp(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	cases := append(shortRunCases[:len(shortRunCases):len(shortRunCases)], bigShortRunCase)
	for _, c := range cases {
		// Where: try cond, onTrue and onFalse in every role of out, a and b.
		shapes := [][]int{c.out, c.a, c.b}
		for _, perm := range [][3]int{{0, 1, 2}, {1, 0, 2}, {2, 1, 0}, {1, 2, 0}, {0, 2, 1}, {2, 2, 1}} {
			cd, td, fd := shapes[perm[0]], shapes[perm[1]], shapes[perm[2]]
			cond := randBools(size(cd), rng)
			tv, fv := randVals[float32](size(td), rng, false), randVals[float32](size(fd), rng, false)
			out := make([]float32, size(c.out))
			if err := Where(out, c.out, cond, cd, tv, td, fv, fd); err != nil {
				t.Fatal(err)
			}
			tb, fb := randBools(size(td), rng), randBools(size(fd), rng)
			outB := make([]bool, size(c.out))
			if err := Where(outB, c.out, cond, cd, tb, td, fb, fd); err != nil {
				t.Fatal(err)
			}
			for i := range out {
				ci, ti, fi := bcastIndex(i, c.out, cd), bcastIndex(i, c.out, td), bcastIndex(i, c.out, fd)
				want, wantB := fv[fi], fb[fi]
				if cond[ci] {
					want, wantB = tv[ti], tb[ti]
				}
				if out[i] != want || outB[i] != wantB {
					t.Fatalf("Where out %v cond %v t %v f %v at %d: %v/%v want %v/%v", c.out, cd, td, fd, i, out[i], outB[i], want, wantB)
				}
			}
		}
		// Clamp with broadcast bounds.
		lo, hi := randVals[float32](size(c.a), rng, false), randVals[float32](size(c.b), rng, false)
		x := randVals[float32](size(c.out), rng, false)
		out := make([]float32, size(c.out))
		if err := Clamp(out, c.out, lo, c.a, x, hi, c.b); err != nil {
			t.Fatal(err)
		}
		for i := range out {
			want := min(max(x[i], lo[bcastIndex(i, c.out, c.a)]), hi[bcastIndex(i, c.out, c.b)])
			if out[i] != want {
				t.Fatalf("Clamp %v lo %v hi %v at %d: %v want %v", c.out, c.a, c.b, i, out[i], want)
			}
		}
	}
}

// TestBlocking checks that the short-run cases do take the block path.
func TestBlocking(t *testing.T) {
	for _, c := range shortRunCases {
		p, err := newPlan("test", c.out, c.a, c.b)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v %v %v: inner %d, blocked %v", c.out, c.a, c.b, p.inner, p.blk != nil)
		if p.inner < shortRun && p.blk == nil && c.out[1] != 97 {
			t.Errorf("%v %v %v: short inner run %d without blocks", c.out, c.a, c.b, p.inner)
		}
	}
}
