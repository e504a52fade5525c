package cpu

import (
	"math"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

// rematGraph builds, on backend config, a graph in which b (x*x, x*x + x or
// exp(x) + x for chain 1, 2 or 0; x*x read late through an early reshape for
// 3) is read once early (a sum) and once late,
// after a chain of 80 large element-wise ops on another value, as a forward
// value is read by a backward pass. It returns the executable and its
// outputs for input v.
func rematGraph(t *testing.T, config string, chain int, v []float32) (*Executable, [][]float32) {
	t.Helper()
	b, err := New(config)
	if err != nil {
		t.Fatal(err)
	}
	bld := b.Builder("remat")
	f := bld.Main().(*Function)
	n := len(v)
	x := mustV(f.Parameter("x", shapes.Make(dtypes.Float32, n), nil))
	var bv, bAlias compute.Value
	switch chain {
	case 0:
		bv = mustV(f.Add(mustV(f.Exp(x)), x))
	case 1:
		bv = mustV(f.Mul(x, x))
	case 3:
		// Read late through a reshape made early, as the backward pass
		// reads a forward value by the forward's reshape of it.
		bv = mustV(f.Mul(x, x))
		bAlias = mustV(f.Reshape(bv, n/2, 2))
	default:
		bv = mustV(f.Add(mustV(f.Mul(x, x)), x))
	}
	early := mustV(f.ReduceSum(bv, 0))
	c := mustV(f.Neg(x))
	for range 80 {
		c = mustV(f.Sqrt(mustV(f.Abs(c))))
	}
	var late compute.Value
	if bAlias != nil {
		late = mustV(f.Reshape(mustV(f.Mul(bAlias, mustV(f.Reshape(c, n/2, 2)))), n))
	} else {
		late = mustV(f.Mul(bv, c))
	}
	// c is read twice, so fusion materializes it instead of folding the
	// filler into the late reader's kernel.
	cSum := mustV(f.ReduceSum(c, 0))
	if err := f.Return([]compute.Value{late, early, cSum}, nil); err != nil {
		t.Fatal(err)
	}
	exe, err := bld.Compile()
	if err != nil {
		t.Fatal(err)
	}
	outs, err := exe.Execute([]compute.Buffer{buf(t, b, v, n)}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return exe.(*Executable), [][]float32{flat(t, outs[0]), flat(t, outs[1])}
}

// TestRematerialize: a large arithmetic value read early and late is
// recomputed before its late reader (its chain back to the parameter
// cloned), so it no longer occupies the arena in between; results are
// bitwise those without recomputation and match a direct computation. A
// value whose chain starts at a transcendental op that is not alive late is
// kept as before.
func TestRematerialize(t *testing.T) {
	const n = rematMinSize
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%97)/97 - 0.5
	}
	for _, tc := range []struct {
		name  string
		chain int
		fuse  string
		// want is the arena with recomputation, in values of n floats,
		// and without.
		want, wantKeep int
	}{
		// Op by op: b, and two links of the filler chain alive together;
		// recomputed, b is gone during the filler, and b' (from x) and
		// the filler's last value are alive at the end.
		{"one op", 1, "nofuse", 2, 3},
		// Fused: the filler is one kernel, its result c alive with b
		// until the late reader; recomputed, b' is fused into the late
		// reader and b dies before c exists, so they share.
		{"one op", 1, "", 1, 2},
		{"two ops", 2, "", 1, 2},
		// Through a reshape, recomputed as op by op; fused, b' is read by
		// the late kernel through a reshape and so materialized beside
		// c: no saving here, but the same results.
		{"through a reshape", 3, "nofuse", 2, 3},
		{"through a reshape", 3, "", 2, 2},
		{"behind a transcendental op", 0, "", 2, 2},
		{"behind a transcendental op", 0, "nofuse", 3, 3},
	} {
		t.Run(tc.name+"/"+tc.fuse, func(t *testing.T) {
			keepCfg := "noremat"
			if tc.fuse != "" {
				keepCfg = tc.fuse + ",noremat"
			}
			remat, got := rematGraph(t, tc.fuse, tc.chain, v)
			keep, want := rematGraph(t, keepCfg, tc.chain, v)
			for o := range got {
				for i := range got[o] {
					if math.Float32bits(got[o][i]) != math.Float32bits(want[o][i]) {
						t.Fatalf("output %d [%d] = %v with recomputation, %v without", o, i, got[o][i], want[o][i])
					}
				}
			}
			for i, xv := range v {
				x := float64(xv)
				c := -x
				for range 80 {
					c = math.Sqrt(math.Abs(c))
				}
				bv := [4]float64{math.Exp(x) + x, x * x, x*x + x, x * x}[tc.chain]
				if w := bv * c; math.Abs(float64(got[0][i])-w) > 1e-5*(1+math.Abs(w)) {
					t.Fatalf("late[%d] = %v, want %v", i, got[0][i], w)
				}
			}
			if got, want := remat.SlotBytes(), int64(tc.want*n*4); got != want {
				t.Errorf("arena %d bytes with recomputation, want %d", got, want)
			}
			if got, want := keep.SlotBytes(), int64(tc.wantKeep*n*4); got != want {
				t.Errorf("arena %d bytes without recomputation, want %d", got, want)
			}
		})
	}
}

// TestFusedInPlace: a fused kernel that is the last reader of a full-size
// intermediate writes its result over it (one arena slot for both), and the
// result is right.
func TestFusedInPlace(t *testing.T) {
	b, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	const n = 1 << 14
	bld := b.Builder("inplace")
	f := bld.Main().(*Function)
	x := mustV(f.Parameter("x", shapes.Make(dtypes.Float32, n), nil))
	a := mustV(f.Exp(x)) // read twice: not folded into a consumer
	s0 := mustV(f.ReduceSum(a, 0))
	one := mustV(f.Constant([]float32{1}))
	fused := mustV(f.Add(mustV(f.Mul(a, a)), one)) // one kernel, last reader of a
	s1 := mustV(f.ReduceSum(fused, 0))
	if err := f.Return([]compute.Value{s0, s1}, nil); err != nil {
		t.Fatal(err)
	}
	exe, err := bld.Compile()
	if err != nil {
		t.Fatal(err)
	}
	e := exe.(*Executable)
	if got, want := e.SlotBytes(), int64(n*4); got != want {
		t.Errorf("arena %d bytes, want %d (the fused result over its input)", got, want)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%31)/31 - 0.5
	}
	outs, err := exe.Execute([]compute.Buffer{buf(t, b, v, n)}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var w0, w1 float64
	for _, xv := range v {
		ev := math.Exp(float64(xv))
		w0 += ev
		w1 += ev*ev + 1
	}
	if got := float64(flat(t, outs[0])[0]); math.Abs(got-w0) > 1e-4*w0 {
		t.Errorf("sum exp = %v, want %v", got, w0)
	}
	if got := float64(flat(t, outs[1])[0]); math.Abs(got-w1) > 1e-4*w1 {
		t.Errorf("sum exp^2+1 = %v, want %v", got, w1)
	}
}
