package layout

import (
	"slices"
	"strconv"

	"github.com/gomlx/compute"
)

// Transpose permutes the axes of in (row-major, dims inDims) into out: output
// axis i is input axis perm[i], so the output dims are inDims[perm[i]].
// perm must be a permutation of 0..len(inDims)-1.
func Transpose[T any](out, in []T, inDims []int, perm []int) error {
	const op = "Transpose"
	if err := checkLen(op, "in", len(in), inDims); err != nil {
		return err
	}
	rank := len(inDims)
	if len(perm) != rank {
		return errorf(op, "len(perm)=%d (perm %v), but the input has rank %d", len(perm), perm, rank)
	}
	seen := make([]bool, rank)
	for i, a := range perm {
		if a < 0 || a >= rank || seen[a] {
			return errorf(op, "perm %v is not a permutation of the %d axes (perm[%d]=%d)", perm, rank, i, a)
		}
		seen[a] = true
	}
	if len(out) != len(in) {
		return errorf(op, "len(out)=%d, but the input has %d elements", len(out), len(in))
	}
	inStrides := rowMajorStrides(inDims)
	dims := make([]int, rank)
	is := make([]int, rank)
	for i, a := range perm {
		dims[i] = inDims[a]
		is[i] = inStrides[a]
	}
	run(newPlan(dims, rowMajorStrides(dims), is), out, 0, in, 0)
	return nil
}

// BroadcastInDim broadcasts in (dims inDims) to out (dims outDims): input axis
// i maps to output axis broadcastAxes[i], whose dimension must equal
// inDims[i] unless inDims[i] is 1. Output axes not in broadcastAxes repeat
// the input.
func BroadcastInDim[T any](out []T, outDims []int, in []T, inDims []int, broadcastAxes []int) error {
	const op = "BroadcastInDim"
	if err := checkLen(op, "in", len(in), inDims); err != nil {
		return err
	}
	if err := checkLen(op, "out", len(out), outDims); err != nil {
		return err
	}
	p, err := broadcastPlan(outDims, inDims, broadcastAxes)
	if err != nil {
		return err
	}
	if len(out) > 0 && len(in) == 0 {
		return errorf(op, "empty input (dims %v) cannot fill non-empty output (dims %v)", inDims, outDims)
	}
	if p.hasBroadcast() {
		replicate(p, out, in, 0)
		return nil
	}
	run(p, out, 0, in, 0)
	return nil
}

// broadcastPlan checks a broadcast of dims inDims to outDims (input axis i
// to output axis broadcastAxes[i]) and returns its plan: row-major output
// strides, input strides zero on the broadcast axes.
func broadcastPlan(outDims, inDims, broadcastAxes []int) (*plan, error) {
	const op = "BroadcastInDim"
	if len(broadcastAxes) != len(inDims) {
		return nil, errorf(op, "len(broadcastAxes)=%d (%v), but the input has rank %d", len(broadcastAxes), broadcastAxes, len(inDims))
	}
	inStrides := rowMajorStrides(inDims)
	is := make([]int, len(outDims))
	seen := make([]bool, len(outDims))
	for i, a := range broadcastAxes {
		if a < 0 || a >= len(outDims) || seen[a] {
			return nil, errorf(op, "broadcastAxes %v: axis %d (for input axis %d) is out of range or repeated for output rank %d", broadcastAxes, a, i, len(outDims))
		}
		seen[a] = true
		switch inDims[i] {
		case outDims[a]:
			is[a] = inStrides[i]
		case 1:
			// Broadcast: stride 0.
		default:
			return nil, errorf(op, "input axis %d has dim %d, but output axis %d has dim %d (must be equal or the input 1)", i, inDims[i], a, outDims[a])
		}
	}
	return newPlan(outDims, rowMajorStrides(outDims), is), nil
}

// Slice extracts from in (dims inDims) the box starts[i] <= x < limits[i],
// taking every strides[i]-th element, into out, whose dims are
// ceil((limits[i]-starts[i])/strides[i]). A nil strides means all ones.
func Slice[T any](out, in []T, inDims, starts, limits, strides []int) error {
	const op = "Slice"
	if err := checkLen(op, "in", len(in), inDims); err != nil {
		return err
	}
	rank := len(inDims)
	if strides == nil {
		strides = make([]int, rank)
		for i := range strides {
			strides[i] = 1
		}
	}
	if len(starts) != rank || len(limits) != rank || len(strides) != rank {
		return errorf(op, "starts %v, limits %v and strides %v must each have one value per input axis (rank %d)", starts, limits, strides, rank)
	}
	inStrides := rowMajorStrides(inDims)
	dims := make([]int, rank)
	is := make([]int, rank)
	off := 0
	for a := range rank {
		s, l, st := starts[a], limits[a], strides[a]
		if st <= 0 {
			return errorf(op, "strides[%d]=%d must be positive", a, st)
		}
		if s < 0 || s > inDims[a] || l < s || l > inDims[a] {
			return errorf(op, "axis %d: start %d and limit %d must satisfy 0 <= start <= limit <= dim %d", a, s, l, inDims[a])
		}
		dims[a] = (l - s + st - 1) / st
		is[a] = inStrides[a] * st
		off += s * inStrides[a]
	}
	if err := checkLen(op, "out", len(out), dims); err != nil {
		return err
	}
	run(newPlan(dims, rowMajorStrides(dims), is), out, 0, in, off)
	return nil
}

// Concatenate joins ins (dims inDims) along axis into out. All inputs must
// have the same rank and the same dims except along axis. With one input it
// is a copy (and axis is not checked).
func Concatenate[T any](out []T, ins [][]T, inDims [][]int, axis int) error {
	const op = "Concatenate"
	if len(ins) == 0 || len(ins) != len(inDims) {
		return errorf(op, "need at least one input and one dims per input, got %d inputs and %d dims", len(ins), len(inDims))
	}
	for k := range ins {
		if err := checkLen(op, "ins["+strconv.Itoa(k)+"]", len(ins[k]), inDims[k]); err != nil {
			return err
		}
	}
	if len(ins) == 1 {
		if len(out) != len(ins[0]) {
			return errorf(op, "len(out)=%d, but the single input has %d elements", len(out), len(ins[0]))
		}
		run(newPlan([]int{len(out)}, []int{1}, []int{1}), out, 0, ins[0], 0)
		return nil
	}
	rank := len(inDims[0])
	if axis < 0 || axis >= rank {
		return errorf(op, "axis %d out of range for rank %d", axis, rank)
	}
	outDims := slices.Clone(inDims[0])
	for k := 1; k < len(ins); k++ {
		d := inDims[k]
		if len(d) != rank {
			return errorf(op, "input %d has rank %d (dims %v), input 0 has rank %d", k, len(d), d, rank)
		}
		for a := range rank {
			if a == axis {
				outDims[a] += d[a]
			} else if d[a] != outDims[a] {
				return errorf(op, "input %d has dims %v, which differ from input 0's %v outside axis %d", k, d, inDims[0], axis)
			}
		}
	}
	if err := checkLen(op, "out", len(out), outDims); err != nil {
		return err
	}
	outStrides := rowMajorStrides(outDims)
	pos := 0
	for k, in := range ins {
		run(newPlan(inDims[k], outStrides, rowMajorStrides(inDims[k])), out, pos*outStrides[axis], in, 0)
		pos += inDims[k][axis]
	}
	return nil
}

// Pad pads in (dims inDims) into out with fill: along axis i, axes[i].Start
// elements before, axes[i].End after and axes[i].Interior between each pair
// of input elements. Start and End may be negative, which crops (after the
// interior padding). Missing trailing axes get no padding. The output dim is
// inDims[i] + Start + End + max(inDims[i]-1, 0)*Interior.
func Pad[T any](out []T, in []T, inDims []int, fill T, axes []compute.PadAxis) error {
	const op = "Pad"
	if err := checkLen(op, "in", len(in), inDims); err != nil {
		return err
	}
	rank := len(inDims)
	if len(axes) > rank {
		return errorf(op, "%d PadAxis given for an input of rank %d", len(axes), rank)
	}
	inStrides := rowMajorStrides(inDims)
	outDims := make([]int, rank)
	for a := range rank {
		var pa compute.PadAxis
		if a < len(axes) {
			pa = axes[a]
		}
		if pa.Interior < 0 {
			return errorf(op, "axis %d: interior padding %d is negative", a, pa.Interior)
		}
		d := inDims[a] + pa.Start + pa.End + max(inDims[a]-1, 0)*pa.Interior
		if d < 0 {
			return errorf(op, "axis %d: output dim %d is negative (input dim %d, padding %+v)", a, d, inDims[a], pa)
		}
		outDims[a] = d
	}
	if err := checkLen(op, "out", len(out), outDims); err != nil {
		return err
	}
	outStrides := rowMajorStrides(outDims)
	dims := make([]int, rank)
	os := make([]int, rank)
	pos := make([]int, rank) // output position of the first copied element
	inOff, outOff, interior := 0, 0, 0
	covers := true // whether the copied input covers the whole output
	for a := range rank {
		var pa compute.PadAxis
		if a < len(axes) {
			pa = axes[a]
		}
		step := pa.Interior + 1
		// Input element x lands at output position pa.Start + x*step.
		lo := 0
		if pa.Start < 0 {
			lo = (-pa.Start + step - 1) / step
		}
		hi := inDims[a] // exclusive
		if last := outDims[a] - 1 - pa.Start; last < 0 {
			hi = 0
		} else {
			hi = min(hi, last/step+1)
		}
		dims[a] = max(hi-lo, 0)
		os[a] = outStrides[a] * step
		pos[a] = pa.Start + lo*step
		inOff += lo * inStrides[a]
		outOff += pos[a] * outStrides[a]
		if dims[a] > 1 {
			interior += pa.Interior
		}
		if dims[a] != outDims[a] {
			covers = false
		}
	}
	if covers {
		// Pure crop: nothing to fill.
	} else if interior == 0 && len(in) > 0 && len(out) > 0 {
		padBox(out, outDims, outStrides, in, inStrides, inOff, dims, pos, fill)
		return nil
	} else {
		parallelFill(out, fill)
	}
	p := newPlan(dims, os, inStrides)
	if p.n > 0 {
		run(p, out, outOff, in, inOff)
	}
	return nil
}

// padBox writes a padding without interior: along each axis a, output
// positions [pos[a], pos[a]+cnt[a]) copy the input box of cnt starting at
// inOff, everything else gets fill. Each output element is written once,
// and the axis-0 positions of the box are split across goroutines.
func padBox[T any](out []T, outDims, outStrides []int, in []T, inStrides []int, inOff int, cnt, pos []int, v T) {
	// Skip leading axes of size 1 in both.
	a0 := 0
	for a0 < len(outDims)-1 && outDims[a0] == 1 && cnt[a0] == 1 {
		a0++
	}
	if cnt[a0] == 0 {
		parallelFill(out, v)
		return
	}
	last := len(outDims) - 1
	var rec func(a, o, i int)
	rec = func(a, o, i int) {
		s, c, st := pos[a], cnt[a], outStrides[a]
		if c == 0 {
			// The box is empty (pos may lie outside the output).
			fill(out[o:o+outDims[a]*st], v)
			return
		}
		if a == last {
			fill(out[o:o+s], v)
			copy(out[o+s:o+s+c], in[i:i+c])
			fill(out[o+s+c:o+outDims[a]], v)
			return
		}
		fill(out[o:o+s*st], v)
		for k := range c {
			rec(a+1, o+(s+k)*st, i+k*inStrides[a])
		}
		fill(out[o+(s+c)*st:o+outDims[a]*st], v)
	}
	if a0 == last {
		rec(a0, 0, inOff)
		return
	}
	s, c, st := pos[a0], cnt[a0], outStrides[a0]
	fill(out[:s*st], v)
	fill(out[(s+c)*st:], v)
	parallelFor(c, c*st, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			rec(a0+1, (s+k)*st, inOff+k*inStrides[a0])
		}
	})
}

// Reverse copies in (dims) into out reversing the listed axes: along each of
// them, index x takes the input at dims[axis]-1-x.
func Reverse[T any](out, in []T, dims []int, axes []int) error {
	const op = "Reverse"
	if err := checkLen(op, "in", len(in), dims); err != nil {
		return err
	}
	if len(out) != len(in) {
		return errorf(op, "len(out)=%d, but the input has %d elements", len(out), len(in))
	}
	strides := rowMajorStrides(dims)
	is := slices.Clone(strides)
	off := 0
	for _, a := range axes {
		if a < 0 || a >= len(dims) {
			return errorf(op, "axis %d out of range for rank %d", a, len(dims))
		}
		if is[a] < 0 {
			return errorf(op, "axis %d repeated in axes %v", a, axes)
		}
		is[a] = -strides[a]
		off += (dims[a] - 1) * strides[a]
	}
	if len(in) == 0 {
		return nil
	}
	run(newPlan(dims, strides, is), out, 0, in, off)
	return nil
}

// Iota fills out (dims) with the index along axis: out[x] = T(x[axis]).
func Iota[T Number](out []T, dims []int, axis int) error {
	const op = "Iota"
	if err := checkLen(op, "out", len(out), dims); err != nil {
		return err
	}
	if axis < 0 || axis >= len(dims) {
		return errorf(op, "axis %d out of range for rank %d", axis, len(dims))
	}
	if len(out) == 0 {
		return nil
	}
	n := dims[axis]
	inner := 1
	for _, d := range dims[axis+1:] {
		inner *= d
	}
	block := n * inner
	for o := 0; o < len(out); o += block {
		for k := range n {
			fill(out[o+k*inner:o+(k+1)*inner], T(k))
		}
	}
	return nil
}

// DynamicSlice copies the box of dims sliceDims starting at starts from in
// (dims inDims) into out. Each start is first clamped to
// [0, inDims[i]-sliceDims[i]] so the box fits, as XLA does.
func DynamicSlice[T any](out, in []T, inDims []int, starts []int, sliceDims []int) error {
	const op = "DynamicSlice"
	if err := checkLen(op, "in", len(in), inDims); err != nil {
		return err
	}
	rank := len(inDims)
	if len(starts) != rank || len(sliceDims) != rank {
		return errorf(op, "starts %v and sliceDims %v must each have one value per input axis (rank %d)", starts, sliceDims, rank)
	}
	for a, s := range sliceDims {
		if s < 0 || s > inDims[a] {
			return errorf(op, "sliceDims[%d]=%d out of range [0, %d]", a, s, inDims[a])
		}
	}
	if err := checkLen(op, "out", len(out), sliceDims); err != nil {
		return err
	}
	inStrides := rowMajorStrides(inDims)
	off := 0
	for a := range rank {
		off += min(max(starts[a], 0), inDims[a]-sliceDims[a]) * inStrides[a]
	}
	run(newPlan(sliceDims, rowMajorStrides(sliceDims), inStrides), out, 0, in, off)
	return nil
}

// DynamicUpdateSlice writes update (dims updateDims) into out (dims outDims,
// pre-filled by the caller with the operand) at starts. Each start is first
// clamped to [0, outDims[i]-updateDims[i]] so the update fits, as XLA does.
func DynamicUpdateSlice[T any](out []T, outDims []int, update []T, updateDims []int, starts []int) error {
	const op = "DynamicUpdateSlice"
	if err := checkLen(op, "out", len(out), outDims); err != nil {
		return err
	}
	if err := checkLen(op, "update", len(update), updateDims); err != nil {
		return err
	}
	rank := len(outDims)
	if len(updateDims) != rank || len(starts) != rank {
		return errorf(op, "update dims %v and starts %v must each have one value per operand axis (rank %d)", updateDims, starts, rank)
	}
	for a, u := range updateDims {
		if u > outDims[a] {
			return errorf(op, "update dims %v do not fit in operand dims %v (axis %d)", updateDims, outDims, a)
		}
	}
	outStrides := rowMajorStrides(outDims)
	off := 0
	for a := range rank {
		off += min(max(starts[a], 0), outDims[a]-updateDims[a]) * outStrides[a]
	}
	run(newPlan(updateDims, outStrides, rowMajorStrides(updateDims)), out, off, update, 0)
	return nil
}
