package layout

import (
	"slices"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// TestAgainstGoMLX runs a few ops through GoMLX's pure-Go backend (via the
// graph package, as the training code does) and compares with this package.
func TestAgainstGoMLX(t *testing.T) {
	backend, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Finalize()
	run := func(fn any, args ...any) []float32 {
		t.Helper()
		out, err := graph.CallOnce(backend, fn.(func([]*graph.Node) *graph.Node), args...)
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float32](out)
	}
	type nodes = func([]*graph.Node) *graph.Node

	// TransposeAllAxes.
	dims := []int{2, 5, 3, 4, 6}
	perm := []int{2, 0, 3, 1, 4}
	x := seq(prod(dims))
	xt := tensors.FromFlatDataAndDimensions(x, dims...)
	want := run(nodes(func(in []*graph.Node) *graph.Node { return graph.TransposeAllAxes(in[0], perm...) }), xt)
	got := make([]float32, len(x))
	if err := Transpose(got, x, dims, perm); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "gomlx Transpose", got, want)

	// Pad with start/end/interior (GoMLX's backend does not crop).
	m := seq(12)
	mt := tensors.FromFlatDataAndDimensions(m, 3, 4)
	pads := []compute.PadAxis{{Start: 1, End: 2, Interior: 1}, {Start: 0, End: 3, Interior: 2}}
	want = run(nodes(func(in []*graph.Node) *graph.Node {
		return graph.Pad(in[0], graph.Const(in[0].Graph(), float32(-1)), pads...)
	}), mt)
	got = make([]float32, len(want))
	if err := Pad(got, m, []int{3, 4}, -1, pads); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "gomlx Pad", got, want)

	// Strided Slice and Reverse.
	want = run(nodes(func(in []*graph.Node) *graph.Node {
		return graph.Slice(in[0], graph.AxisRange(), graph.AxisRange(1, 5).Stride(3), graph.AxisRange(),
			graph.AxisRange(0, 4).Stride(2), graph.AxisRange(1, 6).Stride(4))
	}), xt)
	got = make([]float32, len(want))
	if err := Slice(got, x, dims, []int{0, 1, 0, 0, 1}, []int{2, 5, 3, 4, 6}, []int{1, 3, 1, 2, 4}); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "gomlx Slice", got, want)
	want = run(nodes(func(in []*graph.Node) *graph.Node { return graph.Reverse(in[0], 1, 4) }), xt)
	got = make([]float32, len(x))
	if err := Reverse(got, x, dims, []int{1, 4}); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "gomlx Reverse", got, want)

	// graph.Gather of rows and graph.GatherSlices.
	table := seq(10 * 4)
	tt := tensors.FromFlatDataAndDimensions(table, 10, 4)
	idx := []int32{3, 0, 9, 3, 7, 1}
	it := tensors.FromFlatDataAndDimensions(idx, 3, 2, 1)
	want = run(nodes(func(in []*graph.Node) *graph.Node { return graph.Gather(in[0], in[1]) }), tt, it)
	got = make([]float32, len(want))
	if err := Gather(got, table, []int{10, 4}, idx, []int{3, 2, 1}, 2, []int{2}, []int{0}, []int{0}, []int{1, 4}); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "gomlx Gather", got, want)

	cube := seq(3 * 10 * 10)
	ct := tensors.FromFlatDataAndDimensions(cube, 3, 10, 10)
	starts := []int32{0, 3, 1, 9, 8, 2}
	st := tensors.FromFlatDataAndDimensions(starts, 3, 2)
	want = run(nodes(func(in []*graph.Node) *graph.Node {
		return graph.GatherSlices(in[0], []int{1, 2}, in[1], []int{2, 3}, false)
	}), ct, st)
	got = make([]float32, len(want))
	if err := Gather(got, cube, []int{3, 10, 10}, starts, []int{3, 2}, 1, []int{1, 2, 3}, nil, []int{1, 2}, []int{3, 2, 3}); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "gomlx GatherSlices", got, want)

	// graph.ScatterSum / ScatterMax with duplicate indices.
	upd := make([]float32, 6*4)
	for i := range upd {
		upd[i] = float32((i*37)%23) - 5
	}
	ut := tensors.FromFlatDataAndDimensions(upd, 3, 2, 4)
	for _, c := range []struct {
		op ScatterOp
		fn func(a, b, c *graph.Node, sorted, unique bool) *graph.Node
	}{{ScatterSum, graph.ScatterSum}, {ScatterMax, graph.ScatterMax}, {ScatterMin, graph.ScatterMin}} {
		want = run(nodes(func(in []*graph.Node) *graph.Node { return c.fn(in[0], in[1], in[2], false, false) }), tt, it, ut)
		got = slices.Clone(table)
		if err := Scatter(c.op, got, []int{10, 4}, idx, []int{3, 2, 1}, upd, []int{3, 2, 4}, 2, []int{2}, []int{0}, []int{0}); err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "gomlx "+c.op.String(), got, want)
	}
}
