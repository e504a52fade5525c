package cpu

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

// build compiles a graph with f32 parameters of the given dims; body returns
// the outputs.
func build(t *testing.T, params [][]int, body func(f *Function, ps []compute.Value) []compute.Value) (*Backend, compute.Executable) {
	t.Helper()
	b, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	bld := b.Builder("test")
	f := bld.Main().(*Function)
	var ps []compute.Value
	for i, d := range params {
		p, err := f.Parameter(string(rune('a'+i)), shapes.Make(dtypes.Float32, d...), nil)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	if err := f.Return(body(f, ps), nil); err != nil {
		t.Fatal(err)
	}
	exe, err := bld.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return b, exe
}

func buf(t *testing.T, b *Backend, v []float32, dims ...int) compute.Buffer {
	t.Helper()
	x, err := b.BufferFromFlatData(0, v, shapes.Make(dtypes.Float32, dims...))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func flat(t *testing.T, x compute.Buffer) []float32 {
	t.Helper()
	d, err := x.Data()
	if err != nil {
		t.Fatal(err)
	}
	return d.([]float32)
}

// mustV returns v, panicking on err (graph building in tests).
func mustV(v compute.Value, err error) compute.Value {
	if err != nil {
		panic(err)
	}
	return v
}

// Outputs that are inputs, constants, or the same value twice come back as
// separate buffers; inputs not donated stay valid, donated ones are consumed.
func TestExecuteOutputsAndDonation(t *testing.T) {
	b, exe := build(t, [][]int{{3}, {3}}, func(f *Function, ps []compute.Value) []compute.Value {
		sum := mustV(f.Add(ps[0], ps[1]))
		c := mustV(f.Constant([]float32{7, 8, 9}, 3))
		r := mustV(f.Reshape(sum, 1, 3))
		return []compute.Value{sum, ps[0], c, r, sum}
	})
	x, y := buf(t, b, []float32{1, 2, 3}, 3), buf(t, b, []float32{10, 20, 30}, 3)
	for run := range 2 { // the second run reuses pooled buffers
		outs, err := exe.Execute([]compute.Buffer{x, y}, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := [][]float32{{11, 22, 33}, {1, 2, 3}, {7, 8, 9}, {11, 22, 33}, {11, 22, 33}}
		for i, o := range outs {
			if got := flat(t, o); !equal(got, want[i]) {
				t.Fatalf("run %d output %d = %v, want %v", run, i, got, want[i])
			}
		}
		flat(t, outs[0])[0] = -1 // outputs must not share storage
		if flat(t, outs[4])[0] != 11 || flat(t, outs[3])[0] != 11 || flat(t, x)[0] != 1 {
			t.Fatalf("outputs share storage with each other or with an input")
		}
	}
	// Donating x hands its storage over: x is finalized.
	outs, err := exe.Execute([]compute.Buffer{x, y}, []bool{true, false}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := flat(t, outs[1]); !equal(got, []float32{1, 2, 3}) {
		t.Fatalf("donated input returned as output: %v", got)
	}
	if _, err := x.Data(); err == nil {
		t.Errorf("donated input still usable")
	}
	if _, err := y.Data(); err != nil {
		t.Errorf("input not donated was consumed: %v", err)
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestExecuteErrors(t *testing.T) {
	b, exe := build(t, [][]int{{2}}, func(f *Function, ps []compute.Value) []compute.Value {
		return []compute.Value{mustV(f.Exp(ps[0]))}
	})
	if _, err := exe.Execute(nil, nil, 0); err == nil || !strings.Contains(err.Error(), "takes 1 inputs") {
		t.Errorf("missing input: %v", err)
	}
	if _, err := exe.Execute([]compute.Buffer{buf(t, b, []float32{1, 2, 3}, 3)}, nil, 0); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("wrong shape: %v", err)
	}
	// An op the backend lacks is refused when the graph is built, naming it.
	f := b.Builder("g").Main()
	x := mustV(f.Parameter("x", shapes.Make(dtypes.Float32, 1, 4, 4, 1), nil))
	_, err := f.Conj(x)
	if err == nil || !errors.Is(err, compute.ErrNotImplemented) || !strings.Contains(err.Error(), "Conj") {
		t.Errorf("unimplemented op: %v", err)
	}
	if _, err := New("fast"); err == nil || !strings.Contains(err.Error(), "fast") {
		t.Errorf("bad option: %v", err)
	}
}

// TestSlotsShareMemory: intermediates alive at different times share a
// slot whatever their sizes, ones alive together never do, and repeated
// executions (on slots holding stale values) give the right results.
func TestSlotsShareMemory(t *testing.T) {
	b, err := New("nofuse")
	if err != nil {
		t.Fatal(err)
	}
	bld := b.Builder("slots")
	f := bld.Main().(*Function)
	x := mustV(f.Parameter("x", shapes.Make(dtypes.Float32, 1024), nil))
	// Placed largest first: a at 0; e at 1024 (a is alive while e is
	// computed); d at 0 (a and e are dead by then); c, one float (16 with
	// the alignment), after both e and d, with which it is alive: 2064
	// elements for four values.
	a := mustV(f.Neg(x))
	e := mustV(f.Exp(a))
	c := mustV(f.ReduceSum(e, 0))
	d := mustV(f.Mul(x, x))
	out0 := mustV(f.Add(d, x)) // an output: not in a slot
	out1 := mustV(f.Sqrt(c))   // an output
	if err := f.Return([]compute.Value{out0, out1}, nil); err != nil {
		t.Fatal(err)
	}
	exe, err := bld.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := exe.(*Executable).SlotBytes(), int64((2*1024+16)*4); got != want {
		t.Errorf("the arena holds %d bytes, want %d", got, want)
	}
	for run := range 3 {
		v := make([]float32, 1024)
		for i := range v {
			v[i] = float32((i+run*7)%13) / 13
		}
		outs, err := exe.Execute([]compute.Buffer{buf(t, b, v, 1024)}, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, xv := range v {
			sum += math.Exp(-float64(xv))
		}
		got0, got1 := flat(t, outs[0]), flat(t, outs[1])
		for i, xv := range v {
			if want := xv*xv + xv; got0[i] != want {
				t.Fatalf("run %d: out0[%d] = %v, want %v", run, i, got0[i], want)
			}
		}
		if want := math.Sqrt(sum); math.Abs(float64(got1[0])-want) > 1e-4*want {
			t.Fatalf("run %d: out1 = %v, want %v", run, got1[0], want)
		}
	}
}
