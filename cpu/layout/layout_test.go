package layout

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapeinference"
	"github.com/gomlx/compute/shapes"
)

// --- reference helpers: explicit multi-index loops ---

func prod(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

func unravel(flat int, dims []int) []int {
	idx := make([]int, len(dims))
	for a := len(dims) - 1; a >= 0; a-- {
		idx[a] = flat % dims[a]
		flat /= dims[a]
	}
	return idx
}

func ravel(idx, dims []int) int {
	f := 0
	for a, d := range dims {
		f = f*d + idx[a]
	}
	return f
}

// forEach calls fn with every multi-index of dims, in row-major order.
func forEach(dims []int, fn func(idx []int)) {
	n := prod(dims)
	for f := range n {
		fn(unravel(f, dims))
	}
}

// seq returns 1, 2, ..., n as float32 (distinct, non-zero values).
func seq(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(i + 1)
	}
	return s
}

func f32Shape(dims []int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }

// dimsOf returns the dims of a shapeinference result (panicking on error:
// test cases are valid by construction).
func dimsOf(s shapes.Shape, err error) []int {
	if err != nil {
		panic(err)
	}
	return s.Dimensions
}

func assertEqual[T comparable](t *testing.T, name string, got, want []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", name, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: element %d = %v, want %v", name, i, got[i], want[i])
		}
	}
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var res [][]int
	for _, p := range permutations(n - 1) {
		for pos := 0; pos <= len(p); pos++ {
			q := slices.Insert(slices.Clone(p), pos, n-1)
			res = append(res, q)
		}
	}
	return res
}

// --- Transpose ---

func refTranspose[T any](in []T, inDims, perm []int) []T {
	outDims := make([]int, len(perm))
	for i, a := range perm {
		outDims[i] = inDims[a]
	}
	out := make([]T, len(in))
	forEach(outDims, func(o []int) {
		x := make([]int, len(perm))
		for i, a := range perm {
			x[a] = o[i]
		}
		out[ravel(o, outDims)] = in[ravel(x, inDims)]
	})
	return out
}

func TestTranspose(t *testing.T) {
	type tc struct{ dims, perm []int }
	cases := []tc{
		{[]int{}, []int{}},
		{[]int{7}, []int{0}},
		{[]int{3, 5}, []int{1, 0}},
		{[]int{1, 5}, []int{1, 0}},
		{[]int{33, 47}, []int{1, 0}},
		{[]int{2080, 768}, []int{1, 0}}, // parallel path
		{[]int{768, 2080}, []int{1, 0}},
		{[]int{192, 65, 64}, []int{0, 2, 1}},
		{[]int{4, 65, 3, 3, 64}, []int{2, 0, 3, 1, 4}},
		{[]int{64, 65, 3, 3, 64}, []int{2, 0, 3, 1, 4}}, // parallel path
		{[]int{2, 3, 1, 4, 5}, []int{4, 2, 0, 3, 1}},
		{[]int{3, 0, 2}, []int{2, 0, 1}},
	}
	for _, dims := range [][]int{{2, 3, 4}, {1, 5, 3}, {17, 1, 19}, {5, 6, 1}, {20, 18, 17}} {
		for _, p := range permutations(3) {
			cases = append(cases, tc{dims, p})
		}
	}
	for _, dims := range [][]int{{2, 3, 4, 5}, {1, 7, 1, 9}, {6, 19, 18, 1}} {
		for _, p := range permutations(4) {
			cases = append(cases, tc{dims, p})
		}
	}
	for _, c := range cases {
		outDims := dimsOf(shapeinference.Transpose(f32Shape(c.dims), c.perm))
		in := seq(prod(c.dims))
		out := make([]float32, prod(outDims))
		if err := Transpose(out, in, c.dims, c.perm); err != nil {
			t.Fatalf("%v %v: %v", c.dims, c.perm, err)
		}
		assertEqual(t, fmt.Sprintf("Transpose(%v, %v)", c.dims, c.perm), out, refTranspose(in, c.dims, c.perm))
	}
	// Other element types.
	inB := []bool{true, false, false, true, true, false}
	outB := make([]bool, 6)
	if err := Transpose(outB, inB, []int{2, 3}, []int{1, 0}); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "bool", outB, refTranspose(inB, []int{2, 3}, []int{1, 0}))
	inU := []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	outU := make([]uint64, 8)
	if err := Transpose(outU, inU, []int{2, 2, 2}, []int{2, 1, 0}); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "uint64", outU, refTranspose(inU, []int{2, 2, 2}, []int{2, 1, 0}))
}

// --- BroadcastInDim ---

func refBroadcast[T any](in []T, inDims, outDims, axes []int) []T {
	out := make([]T, prod(outDims))
	forEach(outDims, func(o []int) {
		x := make([]int, len(inDims))
		for i, a := range axes {
			if inDims[i] != 1 {
				x[i] = o[a]
			}
		}
		out[ravel(o, outDims)] = in[ravel(x, inDims)]
	})
	return out
}

// broadcastCases are the broadcasts TestBroadcastInDim and TestReadBroadcast run.
var broadcastCases = []struct{ in, out, axes []int }{
	{[]int{}, []int{}, []int{}},
	{[]int{}, []int{3, 4}, []int{}},
	{[]int{768}, []int{130, 768}, []int{1}},
	{[]int{130}, []int{130, 768}, []int{0}},
	{[]int{1}, []int{5}, []int{0}},
	{[]int{1, 3}, []int{4, 3}, []int{0, 1}},
	{[]int{2, 3}, []int{2, 5, 3}, []int{0, 2}},
	{[]int{3, 2}, []int{2, 4, 3}, []int{2, 0}}, // unsorted axes
	{[]int{2, 1, 3}, []int{2, 4, 3, 2}, []int{0, 1, 2}},
	{[]int{768}, []int{4160, 768}, []int{1}}, // parallel
	{[]int{4160}, []int{4160, 768}, []int{0}},
	{[]int{0}, []int{3, 0}, []int{1}},
	// GroupNorm's statistics [B,1,G,1] over [B,HW,G,C/G]: short runs
	// inside broadcast axes (replication), serial and parallel.
	{[]int{4, 1, 32, 1}, []int{4, 9, 32, 2}, []int{0, 1, 2, 3}},
	{[]int{64, 1, 32, 1}, []int{64, 1024, 32, 2}, []int{0, 1, 2, 3}},
	{[]int{64, 32}, []int{64, 256, 32, 4}, []int{0, 2}},
	{[]int{3, 5}, []int{3, 7, 5, 3, 2}, []int{0, 2}}, // two broadcast axes inside
	{[]int{5, 3}, []int{7, 3, 4, 5}, []int{3, 1}},    // transposed and broadcast
	{[]int{5, 3}, []int{6, 3, 5}, []int{2, 1}},       // strided last axis under a broadcast
	{[]int{2, 1}, []int{2, 3, 1}, []int{0, 2}},
}

func TestBroadcastInDim(t *testing.T) {
	for _, c := range broadcastCases {
		if err := shapeinference.BroadcastInDim(f32Shape(c.in), f32Shape(c.out), c.axes, nil); err != nil {
			t.Fatalf("shapeinference %v: %v", c, err)
		}
		in := seq(prod(c.in))
		out := make([]float32, prod(c.out))
		if err := BroadcastInDim(out, c.out, in, c.in, c.axes); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		assertEqual(t, fmt.Sprintf("BroadcastInDim(%v)", c), out, refBroadcast(in, c.in, c.out, c.axes))
	}
}

// TestReadBroadcast: reading a broadcast block by block, blocks of every
// size from one element to the whole output and starting anywhere, gives
// the materialized broadcast's elements.
func TestReadBroadcast(t *testing.T) {
	for _, c := range broadcastCases {
		b, err := NewBroadcastBlocks(c.out, c.in, c.axes)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		in := seq(prod(c.in))
		want := refBroadcast(in, c.in, c.out, c.axes)
		for _, block := range []int{1, 3, 7, 64, 2048, len(want)} {
			if block == 0 {
				continue
			}
			got := make([]float32, len(want))
			for lo := 0; lo < len(want); lo += block {
				ReadBroadcast(b, got[lo:min(lo+block, len(want))], in, lo)
			}
			assertEqual(t, fmt.Sprintf("ReadBroadcast(%v) by %d", c, block), got, want)
		}
		if len(want) > 5 { // a block that starts and ends inside runs
			got := make([]float32, len(want)-4)
			ReadBroadcast(b, got, in, 2)
			assertEqual(t, fmt.Sprintf("ReadBroadcast(%v) from 2", c), got, want[2:len(want)-2])
		}
	}
	for _, c := range []struct{ in, out, axes []int }{
		{[]int{3}, []int{2, 4}, []int{1}},
		{[]int{3}, []int{2, 3}, []int{2}},
		{[]int{-1}, []int{2, 3}, []int{1}},
	} {
		if _, err := NewBroadcastBlocks(c.out, c.in, c.axes); err == nil {
			t.Errorf("NewBroadcastBlocks(%v): no error", c)
		}
	}
}

// --- Slice ---

func refSlice[T any](in []T, inDims, starts, strides, outDims []int) []T {
	out := make([]T, prod(outDims))
	forEach(outDims, func(o []int) {
		x := make([]int, len(o))
		for a := range o {
			x[a] = starts[a] + o[a]*strides[a]
		}
		out[ravel(o, outDims)] = in[ravel(x, inDims)]
	})
	return out
}

func TestSlice(t *testing.T) {
	cases := []struct{ dims, starts, limits, strides []int }{
		{[]int{}, []int{}, []int{}, []int{}},
		{[]int{5}, []int{2}, []int{4}, []int{1}},
		{[]int{5}, []int{2}, []int{5}, []int{2}},
		{[]int{5}, []int{5}, []int{5}, []int{1}},
		{[]int{130, 768}, []int{0, 0}, []int{65, 768}, []int{1, 1}},
		{[]int{130, 768}, []int{65, 0}, []int{130, 768}, []int{1, 1}},
		{[]int{64, 65, 768}, []int{0, 1, 0}, []int{64, 65, 768}, []int{1, 1, 1}}, // parallel
		{[]int{64, 65, 768}, []int{0, 0, 0}, []int{64, 1, 768}, []int{1, 1, 1}},
		{[]int{6, 7, 8}, []int{1, 2, 3}, []int{6, 7, 8}, []int{2, 3, 2}},
		{[]int{2, 3, 4, 5, 6}, []int{0, 1, 0, 2, 1}, []int{2, 3, 4, 5, 6}, []int{1, 1, 3, 1, 4}},
		{[]int{4, 1, 9}, []int{1, 0, 0}, []int{3, 1, 9}, []int{1, 1, 4}},
	}
	for _, c := range cases {
		outDims := dimsOf(shapeinference.Slice(f32Shape(c.dims), c.starts, c.limits, c.strides))
		in := seq(prod(c.dims))
		out := make([]float32, prod(outDims))
		if err := Slice(out, in, c.dims, c.starts, c.limits, c.strides); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		assertEqual(t, fmt.Sprintf("Slice(%v)", c), out, refSlice(in, c.dims, c.starts, c.strides, outDims))
	}
}

// --- Concatenate ---

func refConcat[T any](ins [][]T, inDims [][]int, axis int, outDims []int) []T {
	out := make([]T, prod(outDims))
	forEach(outDims, func(o []int) {
		x := slices.Clone(o)
		k := 0
		for x[axis] >= inDims[k][axis] {
			x[axis] -= inDims[k][axis]
			k++
		}
		out[ravel(o, outDims)] = ins[k][ravel(x, inDims[k])]
	})
	return out
}

func TestConcatenate(t *testing.T) {
	cases := []struct {
		dims [][]int
		axis int
	}{
		{[][]int{{3}}, 0},
		{[][]int{{3}, {4}}, 0},
		{[][]int{{64, 1, 768}, {64, 64, 768}}, 1}, // parallel
		{[][]int{{65, 768}, {65, 768}}, 0},
		{[][]int{{2, 3, 4}, {2, 1, 4}, {2, 0, 4}, {2, 5, 4}}, 1},
		{[][]int{{2, 3, 4}, {2, 3, 1}}, 2},
		{[][]int{{1, 2, 3, 2, 1}, {2, 2, 3, 2, 1}}, 0},
	}
	for _, c := range cases {
		var shps []shapes.Shape
		var ins [][]float32
		base := 0
		for _, d := range c.dims {
			shps = append(shps, f32Shape(d))
			in := seq(prod(d))
			for i := range in {
				in[i] += float32(base)
			}
			base += len(in)
			ins = append(ins, in)
		}
		outDims := dimsOf(shapeinference.Concatenate(shps, c.axis))
		out := make([]float32, prod(outDims))
		if err := Concatenate(out, ins, c.dims, c.axis); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		assertEqual(t, fmt.Sprintf("Concatenate(%v)", c), out, refConcat(ins, c.dims, c.axis, outDims))
	}
}

// --- Pad ---

func refPad[T any](in []T, inDims []int, fill T, axes []compute.PadAxis, outDims []int) []T {
	out := make([]T, prod(outDims))
	for i := range out {
		out[i] = fill
	}
	forEach(inDims, func(x []int) {
		o := make([]int, len(x))
		for a := range x {
			var pa compute.PadAxis
			if a < len(axes) {
				pa = axes[a]
			}
			o[a] = pa.Start + x[a]*(pa.Interior+1)
			if o[a] < 0 || o[a] >= outDims[a] {
				return
			}
		}
		out[ravel(o, outDims)] = in[ravel(x, inDims)]
	})
	return out
}

func TestPad(t *testing.T) {
	P := func(s, e, i int) compute.PadAxis { return compute.PadAxis{Start: s, End: e, Interior: i} }
	cases := []struct {
		dims []int
		axes []compute.PadAxis
	}{
		{[]int{}, nil},
		{[]int{5}, nil},
		{[]int{5}, []compute.PadAxis{P(2, 3, 0)}},
		{[]int{5}, []compute.PadAxis{P(-2, -1, 0)}},
		{[]int{5}, []compute.PadAxis{P(-2, 1, 2)}},
		{[]int{5}, []compute.PadAxis{P(-3, -4, 1)}},
		{[]int{5}, []compute.PadAxis{P(-5, 0, 0)}},
		{[]int{4}, []compute.PadAxis{P(-9, 0, 2)}},
		{[]int{0}, []compute.PadAxis{P(2, 1, 3)}},
		{[]int{3, 4}, []compute.PadAxis{P(1, 0, 0)}},
		{[]int{3, 4}, []compute.PadAxis{P(-3, 1, 0), P(1, 1, 0)}},
		{[]int{2, 4}, []compute.PadAxis{P(0, 0, 0), P(6, -8, 0)}},
		{[]int{2, 4}, []compute.PadAxis{P(-6, 5, 0), P(1, 0, 0)}},
		{[]int{2, 3, 4}, []compute.PadAxis{P(0, 1, 0), P(5, -6, 0), P(1, 0, 0)}},
		{[]int{1, 1, 5}, []compute.PadAxis{P(0, 0, 0), P(0, 0, 0), P(2, -1, 0)}},
		{[]int{1, 3, 4}, []compute.PadAxis{P(0, 0, 0), P(-1, 2, 0), P(0, -2, 0)}},
		{[]int{2, 3, 4}, []compute.PadAxis{P(1, 1, 0), P(0, 0, 0), P(-1, 1, 0)}},
		{[]int{3, 4}, []compute.PadAxis{P(0, 0, 0), P(1, 2, 1)}},
		{[]int{3, 4}, []compute.PadAxis{P(-1, 2, 1), P(2, -3, 2)}},
		{[]int{64, 64, 768}, []compute.PadAxis{P(0, 0, 0), P(1, 0, 0)}}, // parallel, slice grad
		{[]int{2, 3, 4, 1, 2}, []compute.PadAxis{P(1, 0, 1), P(0, -1, 0), P(-1, -1, 1), P(2, 2, 2), P(0, 1, 0)}},
	}
	for _, c := range cases {
		outDims := dimsOf(shapeinference.Pad(f32Shape(c.dims), c.axes...))
		in := seq(prod(c.dims))
		out := make([]float32, prod(outDims))
		for i := range out {
			out[i] = -7 // must be overwritten
		}
		if err := Pad(out, in, c.dims, -1, c.axes); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		assertEqual(t, fmt.Sprintf("Pad(%v)", c), out, refPad(in, c.dims, -1, c.axes, outDims))
	}
}

// --- Reverse, Iota ---

func TestReverse(t *testing.T) {
	cases := []struct{ dims, axes []int }{
		{[]int{}, nil},
		{[]int{5}, []int{0}},
		{[]int{5}, nil},
		{[]int{3, 4}, []int{1}},
		{[]int{3, 4}, []int{0}},
		{[]int{3, 4, 5}, []int{0, 2}},
		{[]int{2, 1, 3, 4, 2}, []int{4, 1, 2}},
		{[]int{600, 600}, []int{1}}, // parallel
	}
	for _, c := range cases {
		in := seq(prod(c.dims))
		out := make([]float32, len(in))
		if err := Reverse(out, in, c.dims, c.axes); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		want := make([]float32, len(in))
		forEach(c.dims, func(o []int) {
			x := slices.Clone(o)
			for _, a := range c.axes {
				x[a] = c.dims[a] - 1 - o[a]
			}
			want[ravel(o, c.dims)] = in[ravel(x, c.dims)]
		})
		assertEqual(t, fmt.Sprintf("Reverse(%v)", c), out, want)
	}
}

func TestIota(t *testing.T) {
	for _, c := range []struct {
		dims []int
		axis int
	}{{[]int{5}, 0}, {[]int{3, 4}, 0}, {[]int{3, 4}, 1}, {[]int{2, 3, 4}, 1}, {[]int{2, 0, 4}, 2}} {
		out := make([]int32, prod(c.dims))
		if err := Iota(out, c.dims, c.axis); err != nil {
			t.Fatal(err)
		}
		want := make([]int32, len(out))
		forEach(c.dims, func(o []int) { want[ravel(o, c.dims)] = int32(o[c.axis]) })
		assertEqual(t, fmt.Sprintf("Iota(%v)", c), out, want)
		outF := make([]float64, prod(c.dims))
		if err := Iota(outF, c.dims, c.axis); err != nil {
			t.Fatal(err)
		}
		for i := range outF {
			if outF[i] != float64(want[i]) {
				t.Fatalf("Iota float64 %v: %v", c, outF)
			}
		}
	}
}

// --- DynamicSlice / DynamicUpdateSlice ---

func clampStart(s, dim, size int) int { return min(max(s, 0), dim-size) }

func TestDynamicSlice(t *testing.T) {
	cases := []struct{ dims, starts, sizes []int }{
		{[]int{}, []int{}, []int{}},
		{[]int{5}, []int{1}, []int{3}},
		{[]int{5}, []int{4}, []int{3}},  // clamped to 2
		{[]int{5}, []int{-3}, []int{3}}, // clamped to 0
		{[]int{4, 6, 5}, []int{1, 2, 0}, []int{2, 3, 5}},
		{[]int{4, 6, 5}, []int{9, -1, 2}, []int{4, 0, 2}},
		{[]int{64, 65, 768}, []int{0, 1, 0}, []int{64, 64, 768}},
	}
	for _, c := range cases {
		outDims := dimsOf(shapeinference.DynamicSlice(f32Shape(c.dims), c.sizes))
		in := seq(prod(c.dims))
		out := make([]float32, prod(outDims))
		if err := DynamicSlice(out, in, c.dims, c.starts, c.sizes); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		st := make([]int, len(c.dims))
		ones := make([]int, len(c.dims))
		for a := range st {
			st[a] = clampStart(c.starts[a], c.dims[a], c.sizes[a])
			ones[a] = 1
		}
		assertEqual(t, fmt.Sprintf("DynamicSlice(%v)", c), out, refSlice(in, c.dims, st, ones, outDims))

		// DynamicUpdateSlice writes the same box back into a zero operand.
		upd := seq(prod(c.sizes))
		got := make([]float32, len(in))
		if err := DynamicUpdateSlice(got, c.dims, upd, c.sizes, c.starts); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		want := make([]float32, len(in))
		forEach(c.sizes, func(u []int) {
			x := make([]int, len(u))
			for a := range u {
				x[a] = st[a] + u[a]
			}
			want[ravel(x, c.dims)] = upd[ravel(u, c.sizes)]
		})
		assertEqual(t, fmt.Sprintf("DynamicUpdateSlice(%v)", c), got, want)
	}
}

// --- Gather ---

type gatherCase struct {
	name                                                      string
	opDims, idxDims                                           []int
	idx                                                       []int32
	iva                                                       int
	offsetAxes, collapsed, startIndexMap, sliceSizes, outDims []int
}

func refGather[T any](operand []T, g gatherCase, outDims []int) []T {
	out := make([]T, prod(outDims))
	isOffset := make([]bool, len(outDims))
	for _, a := range g.offsetAxes {
		isOffset[a] = true
	}
	collapsed := make([]bool, len(g.opDims))
	for _, a := range g.collapsed {
		collapsed[a] = true
	}
	forEach(outDims, func(o []int) {
		var batch, offs []int
		for a := range o {
			if isOffset[a] {
				offs = append(offs, o[a])
			} else {
				batch = append(batch, o[a])
			}
		}
		// Index vector position in the indices.
		pos := make([]int, 0, len(g.idxDims))
		pos = append(pos, batch[:min(g.iva, len(batch))]...)
		if g.iva < len(g.idxDims) {
			pos = append(pos, 0)
		}
		pos = append(pos, batch[min(g.iva, len(batch)):]...)
		start := make([]int, len(g.opDims))
		for k, a := range g.startIndexMap {
			if g.iva < len(g.idxDims) {
				pos[g.iva] = k
			}
			v := int(g.idx[ravel(pos, g.idxDims)])
			start[a] = clampStart(v, g.opDims[a], g.sliceSizes[a])
		}
		x := slices.Clone(start)
		j := 0
		for a := range x {
			if !collapsed[a] {
				x[a] += offs[j]
				j++
			}
		}
		out[ravel(o, outDims)] = operand[ravel(x, g.opDims)]
	})
	return out
}

func gatherCases() []gatherCase {
	return []gatherCase{
		// graph.Gather of rows: [N,D] with [R,1] -> [R,D].
		{name: "rows", opDims: []int{10, 6}, idxDims: []int{4, 1}, idx: []int32{3, 0, 9, 3}, iva: 1,
			offsetAxes: []int{1}, collapsed: []int{0}, startIndexMap: []int{0}, sliceSizes: []int{1, 6}},
		{name: "rows-oob", opDims: []int{10, 6}, idxDims: []int{4, 1}, idx: []int32{-3, 10, 99, 5}, iva: 1,
			offsetAxes: []int{1}, collapsed: []int{0}, startIndexMap: []int{0}, sliceSizes: []int{1, 6}},
		{name: "rows-big", opDims: []int{4160, 768}, idxDims: []int{1000, 1}, idx: seqIdx(1000, 4160), iva: 1, // parallel
			offsetAxes: []int{1}, collapsed: []int{0}, startIndexMap: []int{0}, sliceSizes: []int{1, 768}},
		// graph.Gather with batch axes [2,3,2] indexing 2 axes of [5,4,3].
		{name: "nd", opDims: []int{5, 4, 3}, idxDims: []int{2, 3, 2}, idx: []int32{0, 0, 4, 3, 1, 2, 2, 1, 3, 3, 0, 1}, iva: 2,
			offsetAxes: []int{2}, collapsed: []int{0, 1}, startIndexMap: []int{0, 1}, sliceSizes: []int{1, 1, 3}},
		// graph.GatherSlices: no collapsed axes, slices of axes 1,2 of [3,10,10].
		{name: "gatherslices", opDims: []int{3, 10, 10}, idxDims: []int{2, 2}, idx: []int32{0, 3, 1, 9}, iva: 1,
			offsetAxes: []int{1, 2, 3}, collapsed: nil, startIndexMap: []int{1, 2}, sliceSizes: []int{3, 1, 3}},
		// Index vector not last, offset axes interleaved with batch axes, unsorted startIndexMap.
		{name: "interleaved", opDims: []int{4, 5, 6}, idxDims: []int{3, 2, 2}, idx: []int32{1, 0, 3, 2, 0, 1, 3, 4, 0, 2, 1, 2}, iva: 1,
			offsetAxes: []int{0, 3}, collapsed: []int{1}, startIndexMap: []int{2, 0}, sliceSizes: []int{2, 1, 3}},
		// Implicit index vector (iva == indices rank).
		{name: "implicit", opDims: []int{7, 3}, idxDims: []int{2, 2}, idx: []int32{6, 0, 2, 8}, iva: 2,
			offsetAxes: []int{2}, collapsed: []int{0}, startIndexMap: []int{0}, sliceSizes: []int{1, 3}, outDims: []int{2, 2, 3}},
		// Scalar-like indices [1] into rank 1.
		{name: "scalar", opDims: []int{7}, idxDims: []int{1}, idx: []int32{4}, iva: 0,
			offsetAxes: nil, collapsed: []int{0}, startIndexMap: []int{0}, sliceSizes: []int{1}},
		// Zero-size slice.
		{name: "empty", opDims: []int{7, 3}, idxDims: []int{2, 1}, idx: []int32{1, 2}, iva: 1,
			offsetAxes: []int{1, 2}, collapsed: nil, startIndexMap: []int{0}, sliceSizes: []int{0, 3}},
	}
}

func seqIdx(n, mod int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32((i * 7919) % mod)
	}
	return s
}

func TestGather(t *testing.T) {
	for _, g := range gatherCases() {
		outDims := g.outDims
		if outDims == nil {
			outDims = dimsOf(shapeinference.Gather(f32Shape(g.opDims), shapes.Make(dtypes.Int32, g.idxDims...),
				g.iva, g.offsetAxes, g.collapsed, g.startIndexMap, g.sliceSizes, false))
		}
		operand := seq(prod(g.opDims))
		out := make([]float32, prod(outDims))
		err := Gather(out, operand, g.opDims, g.idx, g.idxDims, g.iva, g.offsetAxes, g.collapsed, g.startIndexMap, g.sliceSizes)
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		assertEqual(t, "Gather "+g.name, out, refGather(operand, g, outDims))
		// Other index types.
		idx64 := make([]uint64, len(g.idx))
		for i, v := range g.idx {
			idx64[i] = uint64(max(v, 0))
		}
		out2 := make([]float32, len(out))
		g2 := g
		g2.idx = make([]int32, len(g.idx))
		for i, v := range idx64 {
			g2.idx[i] = int32(v)
		}
		if err := Gather(out2, operand, g.opDims, idx64, g.idxDims, g.iva, g.offsetAxes, g.collapsed, g.startIndexMap, g.sliceSizes); err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "Gather uint64 "+g.name, out2, refGather(operand, g2, outDims))
	}
	// Huge unsigned index saturates (clamped to the last row).
	out := make([]float32, 2)
	if err := Gather(out, []float32{1, 2, 3, 4, 5, 6}, []int{3, 2}, []uint64{1 << 63}, []int{1, 1}, 1, []int{1}, []int{0}, []int{0}, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "saturate", out, []float32{5, 6})
}

// --- Scatter ---

type scatterCase struct {
	name                                   string
	opDims, idxDims, updDims               []int
	idx                                    []int32
	iva                                    int
	windowAxes, inserted, scatterToOperand []int
}

func refScatter(op ScatterOp, out []float32, c scatterCase, upd []float32) {
	isWindow := make([]bool, len(c.updDims))
	for _, a := range c.windowAxes {
		isWindow[a] = true
	}
	inserted := make([]bool, len(c.opDims))
	for _, a := range c.inserted {
		inserted[a] = true
	}
	wsize := make([]int, len(c.opDims))
	j := 0
	for a := range wsize {
		wsize[a] = 1
		if !inserted[a] {
			wsize[a] = c.updDims[c.windowAxes[j]]
			j++
		}
	}
	forEach(c.updDims, func(u []int) {
		var batch, win []int
		for a := range u {
			if isWindow[a] {
				win = append(win, u[a])
			} else {
				batch = append(batch, u[a])
			}
		}
		pos := make([]int, 0, len(c.idxDims))
		pos = append(pos, batch[:min(c.iva, len(batch))]...)
		if c.iva < len(c.idxDims) {
			pos = append(pos, 0)
		}
		pos = append(pos, batch[min(c.iva, len(batch)):]...)
		x := make([]int, len(c.opDims))
		for k, a := range c.scatterToOperand {
			if c.iva < len(c.idxDims) {
				pos[c.iva] = k
			}
			x[a] = int(c.idx[ravel(pos, c.idxDims)])
			if x[a] < 0 || x[a]+wsize[a] > c.opDims[a] {
				return // window out of bounds: skipped
			}
		}
		j := 0
		for a := range x {
			if !inserted[a] {
				x[a] += win[j]
				j++
			}
		}
		f := ravel(x, c.opDims)
		v := upd[ravel(u, c.updDims)]
		switch op {
		case ScatterSum:
			out[f] += v
		case ScatterMax:
			out[f] = max(out[f], v)
		case ScatterMin:
			out[f] = min(out[f], v)
		}
	})
}

func scatterCases() []scatterCase {
	return []scatterCase{
		// graph.ScatterSum of rows (the Gather gradient): [R,D] into [N,D] with [R,1], duplicates.
		{name: "rows", opDims: []int{10, 6}, idxDims: []int{5, 1}, updDims: []int{5, 6}, idx: []int32{3, 0, 9, 3, 3}, iva: 1,
			windowAxes: []int{1}, inserted: []int{0}, scatterToOperand: []int{0}},
		{name: "rows-oob", opDims: []int{10, 6}, idxDims: []int{5, 1}, updDims: []int{5, 6}, idx: []int32{-1, 10, 2, 99, 2}, iva: 1,
			windowAxes: []int{1}, inserted: []int{0}, scatterToOperand: []int{0}},
		{name: "rows-big", opDims: []int{4160, 768}, idxDims: []int{1000, 1}, updDims: []int{1000, 768}, idx: seqIdx(1000, 300), iva: 1, // parallel
			windowAxes: []int{1}, inserted: []int{0}, scatterToOperand: []int{0}},
		// Scalars into a vector, duplicates and out-of-range.
		{name: "scalars", opDims: []int{6}, idxDims: []int{7, 1}, updDims: []int{7}, idx: []int32{0, 5, 5, 6, -1, 2, 0}, iva: 1,
			windowAxes: nil, inserted: []int{0}, scatterToOperand: []int{0}},
		// Two indexed axes, batch [2,2].
		{name: "nd", opDims: []int{4, 3, 5}, idxDims: []int{2, 2, 2}, updDims: []int{2, 2, 5}, idx: []int32{0, 0, 3, 2, 0, 0, 1, 3}, iva: 2,
			windowAxes: []int{2}, inserted: []int{0, 1}, scatterToOperand: []int{0, 1}},
		// Windows not inserted (partial windows along scattered axis), index vector first, implicit index.
		{name: "windows", opDims: []int{6, 4}, idxDims: []int{1, 3}, updDims: []int{3, 2, 4}, idx: []int32{0, 4, 5}, iva: 0,
			windowAxes: []int{1, 2}, inserted: nil, scatterToOperand: []int{0}},
		{name: "implicit", opDims: []int{6, 4}, idxDims: []int{3}, updDims: []int{3, 4}, idx: []int32{1, 1, 5}, iva: 1,
			windowAxes: []int{1}, inserted: []int{0}, scatterToOperand: []int{0}},
		// Window axes before batch axes in updates; scatter to axis 1.
		{name: "window-first", opDims: []int{3, 5}, idxDims: []int{4, 1}, updDims: []int{3, 4}, idx: []int32{4, 0, 4, 7}, iva: 1,
			windowAxes: []int{0}, inserted: []int{1}, scatterToOperand: []int{1}},
	}
}

func TestScatter(t *testing.T) {
	for _, c := range scatterCases() {
		for _, op := range []ScatterOp{ScatterSum, ScatterMax, ScatterMin} {
			if _, err := shapeinference.Scatter(f32Shape(c.opDims), shapes.Make(dtypes.Int32, c.idxDims...), f32Shape(c.updDims),
				c.iva, c.windowAxes, c.inserted, c.scatterToOperand); err != nil {
				t.Fatalf("%s: shapeinference: %v", c.name, err)
			}
			operand := seq(prod(c.opDims))
			upd := make([]float32, prod(c.updDims))
			for i := range upd {
				upd[i] = float32((i*37)%23) - 5
			}
			out := slices.Clone(operand)
			if err := Scatter(op, out, c.opDims, c.idx, c.idxDims, upd, c.updDims, c.iva, c.windowAxes, c.inserted, c.scatterToOperand); err != nil {
				t.Fatalf("%s %s: %v", c.name, op, err)
			}
			want := slices.Clone(operand)
			refScatter(op, want, c, upd)
			assertEqual(t, c.name+" "+op.String(), out, want)
		}
	}
	// Integer elements.
	out := []int32{1, 2, 3}
	if err := Scatter(ScatterSum, out, []int{3}, []int8{2, 2, 0}, []int{3, 1}, []int32{10, 20, 30}, []int{3}, 1, nil, []int{0}, []int{0}); err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "int32 sum", out, []int32{31, 2, 33})
}

// --- error cases ---

func TestErrors(t *testing.T) {
	f := make([]float32, 6)
	idx := []int32{0}
	cases := []struct {
		name string
		err  error
	}{
		{"Transpose", Transpose(f, f, []int{2, 3}, []int{0, 0})},
		{"Transpose", Transpose(f, f, []int{2, 3}, []int{0})},
		{"Transpose", Transpose(f, f, []int{2, 4}, []int{1, 0})},
		{"Transpose", Transpose(f[:5], f, []int{2, 3}, []int{1, 0})},
		{"Transpose", Transpose(f, f, []int{-2, -3}, []int{1, 0})},
		{"BroadcastInDim", BroadcastInDim(f, []int{2, 3}, f[:2], []int{2}, []int{1})},
		{"BroadcastInDim", BroadcastInDim(f, []int{2, 3}, f[:3], []int{3}, []int{2})},
		{"BroadcastInDim", BroadcastInDim(f, []int{2, 3}, f[:3], []int{3}, nil)},
		{"Slice", Slice(f[:1], f, []int{6}, []int{2}, []int{1}, []int{1})},
		{"Slice", Slice(f[:1], f, []int{6}, []int{0}, []int{7}, []int{1})},
		{"Slice", Slice(f[:1], f, []int{6}, []int{0}, []int{1}, []int{0})},
		{"Slice", Slice(f[:2], f, []int{6}, []int{0}, []int{1}, []int{1})},
		{"Concatenate", Concatenate(f, nil, nil, 0)},
		{"Concatenate", Concatenate(f, [][]float32{f[:3], f[:3]}, [][]int{{3}, {1, 3}}, 0)},
		{"Concatenate", Concatenate(f, [][]float32{f[:3], f[:3]}, [][]int{{1, 3}, {1, 3}}, 2)},
		{"Concatenate", Concatenate(f, [][]float32{f[:3], f[:4]}, [][]int{{1, 3}, {1, 4}}, 0)},
		{"Pad", Pad(f, f, []int{6}, 0, []compute.PadAxis{{Interior: -1}})},
		{"Pad", Pad(f, f, []int{6}, 0, []compute.PadAxis{{Start: -7}})},
		{"Pad", Pad(f, f, []int{6}, 0, []compute.PadAxis{{}, {}})},
		{"Pad", Pad(f, f, []int{6}, 0, []compute.PadAxis{{Start: 1}})},
		{"Reverse", Reverse(f, f, []int{6}, []int{1})},
		{"Reverse", Reverse(f, f, []int{6}, []int{0, 0})},
		{"Iota", Iota(f, []int{6}, 1)},
		{"Iota", Iota(f, []int{}, 0)},
		{"DynamicSlice", DynamicSlice(f, f, []int{6}, []int{0}, []int{7})},
		{"DynamicSlice", DynamicSlice(f, f, []int{6}, nil, []int{6})},
		{"DynamicUpdateSlice", DynamicUpdateSlice(f[:3], []int{3}, f, []int{6}, []int{0})},
		{"Gather", Gather(f, f, []int{}, idx, []int{1}, 0, nil, nil, []int{}, nil)},
		{"Gather", Gather(f, f, []int{6}, idx, []int{1}, 2, nil, []int{0}, []int{0}, []int{1})},
		{"Gather", Gather(f, f, []int{6}, idx, []int{1}, 0, nil, []int{0}, []int{0}, []int{2})},
		{"Gather", Gather(f, f, []int{6}, idx, []int{1}, 0, nil, []int{0}, []int{1}, []int{1})},
		{"Gather", Gather(f, f, []int{2, 3}, []int32{0, 0}, []int{2, 1}, 1, []int{2, 1}, nil, []int{0}, []int{1, 3})},
		{"ScatterSum", Scatter(ScatterSum, f, []int{6}, idx, []int{1}, f, []int{6}, 0, nil, []int{0}, []int{0})},
		{"ScatterMax", Scatter(ScatterMax, f, []int{6}, idx, []int{1}, f[:1], []int{}, 0, nil, []int{0}, []int{3})},
		{"ScatterMin", Scatter(ScatterMin, f, []int{2, 3}, idx, []int{1}, f[:4], []int{4}, 0, []int{0}, []int{0}, []int{0})},
		{"ScatterSum", Scatter(ScatterSum, f, []int{2, 3}, []int32{0, 1}, []int{2, 1}, f[:3], []int{3, 1}, 1, []int{1}, []int{1}, []int{0})},
		{"Scatter", Scatter(ScatterOp(9), f, []int{6}, idx, []int{1}, f[:1], []int{}, 0, nil, []int{0}, []int{0})},
	}
	for i, c := range cases {
		if c.err == nil {
			t.Errorf("case %d (%s): expected an error", i, c.name)
			continue
		}
		if !strings.Contains(c.err.Error(), "layout."+c.name+":") {
			t.Errorf("case %d: error %q does not name %s", i, c.err, c.name)
		}
	}
}
