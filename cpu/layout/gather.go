package layout

import (
	"math"
	"strconv"
)

// toInt converts an index to int, saturating unsigned values above MaxInt.
func toInt[I Integer](v I) int {
	x := int(v)
	if v > 0 && x < 0 {
		return math.MaxInt
	}
	return x
}

// batchIter walks the batch positions shared by the indices and the output
// (Gather) or the updates (Scatter), keeping one flat offset into each.
type batchIter struct {
	dims     []int
	idxStr   []int // strides into the indices
	dataStr  []int // strides into the output (Gather) or updates (Scatter)
	pos      []int
	idx, dat int
}

// seek positions the iterator at flat batch position n.
func (b *batchIter) seek(n int) {
	b.pos = make([]int, len(b.dims))
	b.idx, b.dat = 0, 0
	for k := len(b.dims) - 1; k >= 0; k-- {
		b.pos[k] = n % b.dims[k]
		n /= b.dims[k]
		b.idx += b.pos[k] * b.idxStr[k]
		b.dat += b.pos[k] * b.dataStr[k]
	}
}

// next advances to the following batch position.
func (b *batchIter) next() {
	for k := len(b.dims) - 1; k >= 0; k-- {
		b.idx += b.idxStr[k]
		b.dat += b.dataStr[k]
		if b.pos[k]++; b.pos[k] < b.dims[k] {
			return
		}
		b.pos[k] = 0
		b.idx -= b.dims[k] * b.idxStr[k]
		b.dat -= b.dims[k] * b.dataStr[k]
	}
}

// indexVector describes the index vectors inside the indices tensor.
type indexVector struct {
	size, stride int
	batch        []int // batch axes of the indices, in order
	nBatch       int
}

// parseIndexVector validates indexVectorAxis against the indices dims.
func parseIndexVector(op string, indicesDims []int, indexVectorAxis int) (indexVector, error) {
	r := len(indicesDims)
	if indexVectorAxis < 0 || indexVectorAxis > r {
		return indexVector{}, errorf(op, "indexVectorAxis=%d out of range [0, %d] for indices dims %v", indexVectorAxis, r, indicesDims)
	}
	iv := indexVector{size: 1, nBatch: 1}
	strides := rowMajorStrides(indicesDims)
	for a, d := range indicesDims {
		if a == indexVectorAxis {
			iv.size, iv.stride = d, strides[a]
			continue
		}
		iv.batch = append(iv.batch, a)
		iv.nBatch *= d
	}
	return iv, nil
}

// checkAxes checks that axes are in [0, rank), unique and, if sorted is set,
// strictly increasing.
func checkAxes(op, what string, axes []int, rank int, sorted bool) error {
	seen := make([]bool, rank)
	for i, a := range axes {
		if a < 0 || a >= rank {
			return errorf(op, "%s %v: axis %d out of range for rank %d", what, axes, a, rank)
		}
		if seen[a] {
			return errorf(op, "%s %v: axis %d repeated", what, axes, a)
		}
		if sorted && i > 0 && a < axes[i-1] {
			return errorf(op, "%s %v must be sorted in increasing order", what, axes)
		}
		seen[a] = true
	}
	return nil
}

// runSeq executes a plan sequentially.
func runSeq[T any](p *plan, out []T, outOff int, in []T, inOff int) {
	switch {
	case p.n == 0:
	case p.kind == kScalar:
		out[outOff] = in[inOff]
	case p.nOuter == 1 && p.kind == kCopy:
		n := p.dims[len(p.dims)-1]
		copy(out[outOff:outOff+n], in[inOff:inOff+n])
	default:
		runUnits(p, out, outOff, in, inOff, 0, p.nOuter, 1, p.dims[p.split])
	}
}

// Gather implements XLA's Gather. For each batch position of indices (all
// axes but indexVectorAxis, which may equal len(indicesDims) for an implicit
// index vector of size 1), the index vector gives the start of a slice of
// dims sliceSizes in operand along the axes startIndexMap (other axes start
// at 0); starts are clamped to [0, operandDims[a]-sliceSizes[a]]. The slice,
// minus the collapsedSliceAxes (which must have size 1), is written at the
// output axes offsetOutputAxes (sorted); the remaining output axes are the
// batch axes in order. Output dims are as computed by
// shapeinference.Gather.
func Gather[T any, I Integer](out []T, operand []T, operandDims []int, indices []I, indicesDims []int,
	indexVectorAxis int, offsetOutputAxes, collapsedSliceAxes, startIndexMap, sliceSizes []int) error {
	const op = "Gather"
	if err := checkLen(op, "operand", len(operand), operandDims); err != nil {
		return err
	}
	if err := checkLen(op, "indices", len(indices), indicesDims); err != nil {
		return err
	}
	rank := len(operandDims)
	if rank == 0 {
		return errorf(op, "operand must not be a scalar")
	}
	if len(sliceSizes) != rank {
		return errorf(op, "sliceSizes %v must have one value per operand axis (rank %d)", sliceSizes, rank)
	}
	for a, s := range sliceSizes {
		if s < 0 || s > operandDims[a] {
			return errorf(op, "sliceSizes[%d]=%d out of range [0, %d]", a, s, operandDims[a])
		}
	}
	if err := checkAxes(op, "collapsedSliceAxes", collapsedSliceAxes, rank, false); err != nil {
		return err
	}
	collapsed := make([]bool, rank)
	for _, a := range collapsedSliceAxes {
		if sliceSizes[a] != 1 {
			return errorf(op, "collapsed axis %d has slice size %d, must be 1", a, sliceSizes[a])
		}
		collapsed[a] = true
	}
	if len(collapsedSliceAxes)+len(offsetOutputAxes) != rank {
		return errorf(op, "len(collapsedSliceAxes)=%d + len(offsetOutputAxes)=%d must equal the operand rank %d",
			len(collapsedSliceAxes), len(offsetOutputAxes), rank)
	}
	iv, err := parseIndexVector(op, indicesDims, indexVectorAxis)
	if err != nil {
		return err
	}
	if len(startIndexMap) != iv.size {
		return errorf(op, "startIndexMap %v must have one value per index vector element (%d)", startIndexMap, iv.size)
	}
	if err := checkAxes(op, "startIndexMap", startIndexMap, rank, false); err != nil {
		return err
	}
	outRank := len(iv.batch) + len(offsetOutputAxes)
	if err := checkAxes(op, "offsetOutputAxes", offsetOutputAxes, outRank, true); err != nil {
		return err
	}

	// Output dims: offset axes take the non-collapsed slice sizes in order,
	// the others the batch dims in order.
	isOffset := make([]bool, outRank)
	for _, a := range offsetOutputAxes {
		isOffset[a] = true
	}
	outDims := make([]int, 0, outRank)
	var batchOutAxes []int
	sliceAxis, batchAxis := 0, 0
	for a := range outRank {
		if isOffset[a] {
			for collapsed[sliceAxis] {
				sliceAxis++
			}
			outDims = append(outDims, sliceSizes[sliceAxis])
			sliceAxis++
		} else {
			outDims = append(outDims, indicesDims[iv.batch[batchAxis]])
			batchOutAxes = append(batchOutAxes, a)
			batchAxis++
		}
	}
	if err := checkLen(op, "out", len(out), outDims); err != nil {
		return err
	}
	if len(out) == 0 {
		return nil
	}

	// Slice plan: non-collapsed operand axes onto the offset output axes.
	outStrides := rowMajorStrides(outDims)
	opStrides := rowMajorStrides(operandDims)
	var sDims, sOs, sIs []int
	k := 0
	for a := range rank {
		if collapsed[a] {
			continue
		}
		sDims = append(sDims, sliceSizes[a])
		sOs = append(sOs, outStrides[offsetOutputAxes[k]])
		sIs = append(sIs, opStrides[a])
		k++
	}
	p := newPlan(sDims, sOs, sIs)

	idxStrides := rowMajorStrides(indicesDims)
	bi := batchIter{}
	for k, a := range iv.batch {
		bi.dims = append(bi.dims, indicesDims[a])
		bi.idxStr = append(bi.idxStr, idxStrides[a])
		bi.dataStr = append(bi.dataStr, outStrides[batchOutAxes[k]])
	}
	maxStart := make([]int, len(startIndexMap))
	sStrides := make([]int, len(startIndexMap))
	for k, a := range startIndexMap {
		maxStart[k] = operandDims[a] - sliceSizes[a]
		sStrides[k] = opStrides[a]
	}
	units := iv.nBatch
	parallelFor(units, len(out), func(lo, hi int) {
		it := bi
		it.seek(lo)
		for range hi - lo {
			off := 0
			for k := range maxStart {
				s := min(max(toInt(indices[it.idx+k*iv.stride]), 0), maxStart[k])
				off += s * sStrides[k]
			}
			runSeq(p, out, it.dat, operand, off)
			it.next()
		}
	})
	return nil
}

// ScatterOp selects how Scatter combines updates with the operand.
type ScatterOp int

const (
	// ScatterSum adds the updates to the operand.
	ScatterSum ScatterOp = iota
	// ScatterMax keeps the maximum of the operand and the updates.
	ScatterMax
	// ScatterMin keeps the minimum of the operand and the updates.
	ScatterMin
)

// String returns the operation's name.
func (s ScatterOp) String() string {
	switch s {
	case ScatterSum:
		return "ScatterSum"
	case ScatterMax:
		return "ScatterMax"
	case ScatterMin:
		return "ScatterMin"
	}
	return "ScatterOp(" + strconv.Itoa(int(s)) + ")"
}

// Scatter implements XLA's Scatter (ScatterSum/Max/Min) in place on out
// (dims outDims), which the caller pre-fills with the operand. For each
// batch position of indices (all axes but indexVectorAxis, which may equal
// len(indicesDims) for an implicit index vector of size 1), the index vector
// gives the start of a window along the operand axes
// scatterAxesToOperandAxes (other axes start at 0). The window of updates
// spans updateWindowAxes (sorted), mapped in order to the operand axes not in
// insertedWindowAxes (which have window size 1); the other updates axes are
// the batch axes, in order, with the dims of the indices batch axes. As in
// XLA, a window that does not fit entirely in the operand is skipped.
// Windows are applied in batch order, so duplicate indices accumulate.
func Scatter[T Number, I Integer](op ScatterOp, out []T, outDims []int, indices []I, indicesDims []int,
	updates []T, updatesDims []int, indexVectorAxis int,
	updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes []int) error {
	name := op.String()
	if op < ScatterSum || op > ScatterMin {
		return errorf("Scatter", "unknown op %d", int(op))
	}
	if err := checkLen(name, "out", len(out), outDims); err != nil {
		return err
	}
	if err := checkLen(name, "indices", len(indices), indicesDims); err != nil {
		return err
	}
	if err := checkLen(name, "updates", len(updates), updatesDims); err != nil {
		return err
	}
	rank := len(outDims)
	iv, err := parseIndexVector(name, indicesDims, indexVectorAxis)
	if err != nil {
		return err
	}
	if len(scatterAxesToOperandAxes) != iv.size {
		return errorf(name, "scatterAxesToOperandAxes %v must have one value per index vector element (%d)", scatterAxesToOperandAxes, iv.size)
	}
	if err := checkAxes(name, "scatterAxesToOperandAxes", scatterAxesToOperandAxes, rank, false); err != nil {
		return err
	}
	if err := checkAxes(name, "updateWindowAxes", updateWindowAxes, len(updatesDims), true); err != nil {
		return err
	}
	if len(updateWindowAxes)+len(iv.batch) != len(updatesDims) {
		return errorf(name, "len(updateWindowAxes)=%d + %d batch axes must equal the updates rank %d",
			len(updateWindowAxes), len(iv.batch), len(updatesDims))
	}
	if err := checkAxes(name, "insertedWindowAxes", insertedWindowAxes, rank, false); err != nil {
		return err
	}
	if len(updateWindowAxes)+len(insertedWindowAxes) != rank {
		return errorf(name, "len(updateWindowAxes)=%d + len(insertedWindowAxes)=%d must equal the operand rank %d",
			len(updateWindowAxes), len(insertedWindowAxes), rank)
	}
	inserted := make([]bool, rank)
	for _, a := range insertedWindowAxes {
		inserted[a] = true
	}
	isWindow := make([]bool, len(updatesDims))
	for _, a := range updateWindowAxes {
		isWindow[a] = true
	}

	// Window plan: updates window axes onto the non-inserted operand axes.
	outStrides := rowMajorStrides(outDims)
	updStrides := rowMajorStrides(updatesDims)
	windowSize := make([]int, rank)
	var wDims, wOs, wIs []int
	k := 0
	for a := range rank {
		windowSize[a] = 1
		if inserted[a] {
			continue
		}
		ua := updateWindowAxes[k]
		k++
		windowSize[a] = updatesDims[ua]
		if windowSize[a] > outDims[a] {
			return errorf(name, "updates axis %d (dim %d) does not fit in operand axis %d (dim %d)", ua, updatesDims[ua], a, outDims[a])
		}
		wDims = append(wDims, updatesDims[ua])
		wOs = append(wOs, outStrides[a])
		wIs = append(wIs, updStrides[ua])
	}
	p := newPlan(wDims, wOs, wIs)

	idxStrides := rowMajorStrides(indicesDims)
	bi := batchIter{}
	k = 0
	for ua, d := range updatesDims {
		if isWindow[ua] {
			continue
		}
		ia := iv.batch[k]
		if indicesDims[ia] != d {
			return errorf(name, "updates batch axis %d has dim %d, but the matching indices axis %d has dim %d", ua, d, ia, indicesDims[ia])
		}
		bi.dims = append(bi.dims, d)
		bi.idxStr = append(bi.idxStr, idxStrides[ia])
		bi.dataStr = append(bi.dataStr, updStrides[ua])
		k++
	}
	if p.n == 0 || iv.nBatch == 0 {
		return nil
	}
	maxStart := make([]int, iv.size)
	sStrides := make([]int, iv.size)
	for k, a := range scatterAxesToOperandAxes {
		maxStart[k] = outDims[a] - windowSize[a]
		sStrides[k] = outStrides[a]
	}

	// Windows may overlap, so goroutines split the innermost window axis
	// (each owns a column range of every window) and apply all windows in
	// order.
	inner := 1
	if p.kind != kScalar {
		inner = p.dims[len(p.dims)-1]
	}
	w := workers(len(updates))
	cols := 1
	if w > 1 && inner >= 64*w {
		cols = w
	}
	parallelFor(cols, len(updates), func(lo, hi int) {
		c0, c1 := inner*lo/cols, inner*hi/cols
		it := bi
		it.seek(0)
	batches:
		for range iv.nBatch {
			off := 0
			for k := range maxStart {
				s := toInt(indices[it.idx+k*iv.stride])
				if s < 0 || s > maxStart[k] {
					it.next()
					continue batches
				}
				off += s * sStrides[k]
			}
			combineWindow(op, p, out, off, updates, it.dat, c0, c1)
			it.next()
		}
	})
	return nil
}

// combineWindow applies one window of the plan p (output = operand, input =
// updates), restricted to the innermost range [c0, c1).
func combineWindow[T Number](op ScatterOp, p *plan, out []T, o int, upd []T, u int, c0, c1 int) {
	if p.kind == kScalar {
		out[o] = combine(op, out[o], upd[u])
		return
	}
	last := len(p.dims) - 1
	os, is := p.os[last], p.is[last]
	outerDims := p.dims[:last]
	var buf [8]int
	idx := buf[:0]
	if last <= len(buf) {
		idx = buf[:last]
	} else {
		idx = make([]int, last)
	}
	nOuter := 1
	for _, d := range outerDims {
		nOuter *= d
	}
	o += c0 * os
	u += c0 * is
	n := c1 - c0
	for range nOuter {
		if os == 1 && is == 1 {
			combineRun(op, out[o:o+n], upd[u:u+n])
		} else {
			oo, uu := o, u
			for range n {
				out[oo] = combine(op, out[oo], upd[uu])
				oo += os
				uu += is
			}
		}
		for k := last - 1; k >= 0; k-- {
			o += p.os[k]
			u += p.is[k]
			if idx[k]++; idx[k] < p.dims[k] {
				break
			}
			idx[k] = 0
			o -= p.dims[k] * p.os[k]
			u -= p.dims[k] * p.is[k]
		}
	}
}

// combine returns a combined with b.
func combine[T Number](op ScatterOp, a, b T) T {
	switch op {
	case ScatterMax:
		return max(a, b)
	case ScatterMin:
		return min(a, b)
	}
	return a + b
}

// combineRun combines src into dst element-wise (equal lengths).
func combineRun[T Number](op ScatterOp, dst, src []T) {
	src = src[:len(dst)]
	switch op {
	case ScatterSum:
		for k := range dst {
			dst[k] += src[k]
		}
	case ScatterMax:
		for k := range dst {
			dst[k] = max(dst[k], src[k])
		}
	case ScatterMin:
		for k := range dst {
			dst[k] = min(dst[k], src[k])
		}
	}
}
