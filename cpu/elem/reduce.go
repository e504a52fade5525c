package elem

import (
	"fmt"
	"math"
	"runtime"
	"slices"
)

// ReduceOp identifies a reduction.
type ReduceOp int

// Reductions. Sum, Product, Max and Min take numeric dtypes; the logical ones
// take bool and the bitwise ones take integers. Reducing an empty axis yields
// the identity (0, 1, -Inf/lowest, +Inf/highest, true, false, all bits set).
const (
	ReduceSum ReduceOp = iota
	ReduceProduct
	ReduceMax
	ReduceMin
	ReduceLogicalAnd
	ReduceLogicalOr
	ReduceLogicalXor
	ReduceBitwiseAnd
	ReduceBitwiseOr
	ReduceBitwiseXor
	numReduceOps
)

var reduceOpNames = [...]string{"Sum", "Product", "Max", "Min", "LogicalAnd", "LogicalOr", "LogicalXor",
	"BitwiseAnd", "BitwiseOr", "BitwiseXor"}

// String returns the op name.
func (op ReduceOp) String() string {
	if op >= 0 && op < numReduceOps {
		return reduceOpNames[op]
	}
	return fmt.Sprintf("ReduceOp(%d)", int(op))
}

// reducer describes a reduction over values of type T.
type reducer[T any] struct {
	init T
	f    func(x, y T) T
	// row reduces a contiguous slice, starting from init.
	row func(x []T) T
	// cols accumulates x into acc element-wise: acc[i] = f(acc[i], x[i]).
	cols func(acc, x []T)
	// pairwise selects pairwise accumulation over rows (float sums).
	pairwise bool
	// short, if set, reduces the short rows of x ([len(out), R]) into out.
	short func(out, x []T, R int)
}

func genericReducer[T any](init T, f func(x, y T) T) reducer[T] {
	return reducer[T]{
		init: init,
		f:    f,
		row: func(x []T) T {
			acc := init
			for _, v := range x {
				acc = f(acc, v)
			}
			return acc
		},
		cols: func(acc, x []T) {
			x = x[:len(acc)]
			for i := range acc {
				acc[i] = f(acc[i], x[i])
			}
		},
	}
}

// Reduce reduces in (with dims inDims) over the given axes into out, whose
// dims are inDims without axes. Empty axes copy in to out. Float sums are
// accumulated in the input precision with pairwise summation, so the error
// grows with log(n).
func Reduce(op ReduceOp, out any, in any, inDims []int, axes []int) error {
	if typeName(out) != typeName(in) {
		return fmt.Errorf("elem.Reduce %s: output dtype %s differs from input dtype %s", op, typeName(out), typeName(in))
	}
	switch x := in.(type) {
	case []float32:
		return ReduceOf(op, out.([]float32), x, inDims, axes)
	case []float64:
		return ReduceOf(op, out.([]float64), x, inDims, axes)
	case []int8:
		return ReduceOf(op, out.([]int8), x, inDims, axes)
	case []int16:
		return ReduceOf(op, out.([]int16), x, inDims, axes)
	case []int32:
		return ReduceOf(op, out.([]int32), x, inDims, axes)
	case []int64:
		return ReduceOf(op, out.([]int64), x, inDims, axes)
	case []uint8:
		return ReduceOf(op, out.([]uint8), x, inDims, axes)
	case []uint16:
		return ReduceOf(op, out.([]uint16), x, inDims, axes)
	case []uint32:
		return ReduceOf(op, out.([]uint32), x, inDims, axes)
	case []uint64:
		return ReduceOf(op, out.([]uint64), x, inDims, axes)
	case []bool:
		var r reducer[bool]
		switch op {
		case ReduceLogicalAnd:
			r = genericReducer(true, func(a, b bool) bool { return a && b })
		case ReduceLogicalOr:
			r = genericReducer(false, func(a, b bool) bool { return a || b })
		case ReduceLogicalXor:
			r = genericReducer(false, func(a, b bool) bool { return a != b })
		default:
			return fmt.Errorf("elem.Reduce %s: unsupported for dtype bool", op)
		}
		return reduceWith(fmt.Sprintf("elem.Reduce %s (bool)", op), r, out.([]bool), x, inDims, axes)
	}
	return fmt.Errorf("elem.Reduce %s: unsupported dtype %s", op, typeName(in))
}

// ReduceOf is the typed form of Reduce for numeric dtypes.
func ReduceOf[T Number](op ReduceOp, out, in []T, inDims []int, axes []int) error {
	name := fmt.Sprintf("elem.Reduce %s (%s)", op, typeName(in))
	r, err := numReducer[T](op)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return reduceWith(name, r, out, in, inDims, axes)
}

// MinRowReduce is the shortest row RowReducerFloat32's function is used
// for: Reduce reduces shorter trailing rows with another loop.
const MinRowReduce = 16

// RowReducerFloat32 returns the function Reduce applies to each row when it
// reduces float32 values over trailing axes whose product (the row) has at
// least MinRowReduce elements, with at least two rows: a caller that
// produces the rows itself, block by block, and reduces each with this
// function gets Reduce's results bit for bit. Sum, Max and Min have one.
func RowReducerFloat32(op ReduceOp) (func(row []float32) float32, error) {
	switch op {
	case ReduceSum, ReduceMax, ReduceMin:
		r, err := numReducer[float32](op)
		if err != nil {
			return nil, err
		}
		return r.row, nil
	}
	return nil, fmt.Errorf("elem.RowReducerFloat32: no row function for %s", op)
}

// lowest and highest return the identity values of Max and Min.
func lowest[T Number]() T {
	var v any
	switch any(T(0)).(type) {
	case float32:
		v = float32(math.Inf(-1))
	case float64:
		v = math.Inf(-1)
	case int8:
		v = int8(math.MinInt8)
	case int16:
		v = int16(math.MinInt16)
	case int32:
		v = int32(math.MinInt32)
	case int64:
		v = int64(math.MinInt64)
	default:
		return 0
	}
	return v.(T)
}

func highest[T Number]() T {
	var v any
	switch any(T(0)).(type) {
	case float32:
		v = float32(math.Inf(1))
	case float64:
		v = math.Inf(1)
	case int8:
		v = int8(math.MaxInt8)
	case int16:
		v = int16(math.MaxInt16)
	case int32:
		v = int32(math.MaxInt32)
	case int64:
		v = int64(math.MaxInt64)
	case uint8:
		v = uint8(math.MaxUint8)
	case uint16:
		v = uint16(math.MaxUint16)
	case uint32:
		v = uint32(math.MaxUint32)
	case uint64:
		v = uint64(math.MaxUint64)
	}
	return v.(T)
}

func numReducer[T Number](op ReduceOp) (reducer[T], error) {
	var z T
	isFloat := false
	switch any(z).(type) {
	case float32, float64:
		isFloat = true
	}
	switch op {
	case ReduceSum:
		r := genericReducer(0, func(a, b T) T { return a + b })
		r.row = sumRow[T]
		r.cols = addCols[T]
		r.short = sumShort[T]
		if f, ok := any(&r).(*reducer[float32]); ok {
			if c := simdAddColsF32(); c != nil {
				f.cols = c
			}
		}
		r.pairwise = isFloat
		return r, nil
	case ReduceProduct:
		return genericReducer(1, func(a, b T) T { return a * b }), nil
	case ReduceMax:
		r := genericReducer(lowest[T](), func(a, b T) T { return max(a, b) })
		r.row = maxRow[T]
		r.cols = maxCols[T]
		r.short = maxShort[T]
		if f, ok := any(&r).(*reducer[float32]); ok {
			if row, cols := simdMaxMinF32(true); row != nil {
				f.row, f.cols = row, cols
			}
		}
		return r, nil
	case ReduceMin:
		r := genericReducer(highest[T](), func(a, b T) T { return min(a, b) })
		r.row = minRow[T]
		r.cols = minCols[T]
		r.short = minShort[T]
		if f, ok := any(&r).(*reducer[float32]); ok {
			if row, cols := simdMaxMinF32(false); row != nil {
				f.row, f.cols = row, cols
			}
		}
		return r, nil
	}
	if !isFloat {
		var k reducer[T]
		var err error
		switch any(z).(type) {
		case int8:
			k, err = intReducerAs[int8, T](op)
		case int16:
			k, err = intReducerAs[int16, T](op)
		case int32:
			k, err = intReducerAs[int32, T](op)
		case int64:
			k, err = intReducerAs[int64, T](op)
		case uint8:
			k, err = intReducerAs[uint8, T](op)
		case uint16:
			k, err = intReducerAs[uint16, T](op)
		case uint32:
			k, err = intReducerAs[uint32, T](op)
		case uint64:
			k, err = intReducerAs[uint64, T](op)
		}
		return k, err
	}
	return reducer[T]{}, fmt.Errorf("unsupported op for dtype %s", typeName([]T{}))
}

func intReducerAs[I Integer, T Number](op ReduceOp) (reducer[T], error) {
	var r reducer[I]
	switch op {
	case ReduceBitwiseAnd:
		r = genericReducer(^I(0), func(a, b I) I { return a & b })
	case ReduceBitwiseOr:
		r = genericReducer(I(0), func(a, b I) I { return a | b })
	case ReduceBitwiseXor:
		r = genericReducer(I(0), func(a, b I) I { return a ^ b })
	default:
		return reducer[T]{}, fmt.Errorf("unsupported op for dtype %s", typeName([]I{}))
	}
	return any(r).(reducer[T]), nil
}

// reduceWith validates the arguments and performs the reduction.
func reduceWith[T any](name string, r reducer[T], out, in []T, inDims []int, axes []int) error {
	inSize, err := dimsSize(inDims)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(in) != inSize {
		return fmt.Errorf("%s: input has %d elements, dims %v need %d", name, len(in), inDims, inSize)
	}
	reduced := make([]bool, len(inDims))
	for _, a := range axes {
		if a < 0 || a >= len(inDims) || reduced[a] {
			return fmt.Errorf("%s: invalid or repeated axis %d for dims %v", name, a, inDims)
		}
		reduced[a] = true
	}
	outSize := 1
	for i, d := range inDims {
		if !reduced[i] {
			outSize *= d
		}
	}
	if len(out) != outSize {
		return fmt.Errorf("%s: output has %d elements, reducing dims %v over axes %v needs %d", name, len(out), inDims, axes, outSize)
	}
	if outSize == 0 {
		return nil
	}
	if inSize == 0 {
		for i := range out {
			out[i] = r.init
		}
		return nil
	}
	// Merge adjacent axes with the same role, dropping size-1 axes.
	type group struct {
		dim     int
		reduced bool
	}
	var groups []group
	for i, d := range inDims {
		if d == 1 {
			continue
		}
		if n := len(groups); n > 0 && groups[n-1].reduced == reduced[i] {
			groups[n-1].dim *= d
			continue
		}
		groups = append(groups, group{d, reduced[i]})
	}
	// Reduce one group at a time, each pass reading its source once
	// sequentially: preferably a long group, and not a short trailing one
	// (rows of a few elements) while others remain.
	src := in
	for {
		j, best := -1, -1
		for i, g := range groups {
			if !g.reduced {
				continue
			}
			score := g.dim
			if i == len(groups)-1 && g.dim < 32 {
				score = 0
			}
			if score > best {
				j, best = i, score
			}
		}
		if j < 0 {
			break
		}
		A, B := 1, 1
		for _, g := range groups[:j] {
			A *= g.dim
		}
		for _, g := range groups[j+1:] {
			B *= g.dim
		}
		R := groups[j].dim
		dst := out
		if len(out) != A*B {
			dst = make([]T, A*B)
		}
		reduce3(r, dst, src, A, R, B)
		src = dst
		groups = slices.Delete(groups, j, j+1)
		if j > 0 && j < len(groups) && !groups[j-1].reduced && !groups[j].reduced {
			groups[j-1].dim *= groups[j].dim
			groups = slices.Delete(groups, j, j+1)
		}
	}
	if len(src) > 0 && &src[0] != &out[0] {
		copy(out, src)
	}
	return nil
}

// reduce3 computes out[a, b] = reduce over r of in[a, r, b] for in of shape
// [A, R, B] (R >= 1).
func reduce3[T any](r reducer[T], out, in []T, A, R, B int) {
	total := A * R * B
	workers := runtime.GOMAXPROCS(0)
	if B == 1 {
		if A == 1 {
			// Full reduction of a contiguous slice.
			if total <= ParallelThreshold || workers <= 1 {
				out[0] = r.row(in)
				return
			}
			partial := make([]T, workers)
			parallelFor(workers, 0, 1, func(lo, hi int) {
				for w := lo; w < hi; w++ {
					chunk := (R + workers - 1) / workers
					s, e := min(w*chunk, R), min((w+1)*chunk, R)
					partial[w] = r.row(in[s:e])
				}
			})
			out[0] = r.row(partial)
			return
		}
		parallelFor(A, ParallelThreshold/R, 1, func(lo, hi int) {
			if R < 16 && r.short != nil {
				r.short(out[lo:hi], in[lo*R:hi*R], R)
				return
			}
			for a := lo; a < hi; a++ {
				out[a] = r.row(in[a*R : (a+1)*R])
			}
		})
		return
	}
	// B > 1: accumulate whole rows so memory is read sequentially.
	if A >= workers || total <= ParallelThreshold {
		parallelFor(A, max(ParallelThreshold/(R*B), 0), 1, func(lo, hi int) {
			var scratch []T
			for a := lo; a < hi; a++ {
				scratch = reduceRows(r, out[a*B:(a+1)*B], in[a*R*B:(a+1)*R*B], R, B, 0, B, scratch)
			}
		})
		return
	}
	// Few outer blocks: split the columns.
	parallelFor(B, 16*workers, chunkAlign, func(lo, hi int) {
		var scratch []T
		for a := range A {
			scratch = reduceRows(r, out[a*B+lo:a*B+hi], in[a*R*B:(a+1)*R*B], R, B, lo, hi, scratch)
		}
	})
}

// pairwiseBlock is the number of rows accumulated sequentially before
// pairwise combination in column (leading axis) float sums.
const pairwiseBlock = 32

// reduceRows reduces the rows of x ([R, B] row-major) over R, restricted to
// columns [lo, hi), into out (len hi-lo). It returns scratch for reuse.
func reduceRows[T any](r reducer[T], out, x []T, R, B, lo, hi int, scratch []T) []T {
	n := hi - lo
	if !r.pairwise || R <= pairwiseBlock {
		copy(out, x[lo:hi])
		for i := 1; i < R; i++ {
			r.cols(out, x[i*B+lo:i*B+hi])
		}
		return scratch
	}
	// Pairwise over blocks of rows: each level needs one buffer of n values.
	levels := 1
	for blocks := (R + pairwiseBlock - 1) / pairwiseBlock; blocks > 1; blocks = (blocks + 1) / 2 {
		levels++
	}
	if cap(scratch) < levels*n {
		scratch = make([]T, levels*n)
	}
	scratch = scratch[:levels*n]
	var rec func(dst []T, r0, r1, level int)
	rec = func(dst []T, r0, r1, level int) {
		if r1-r0 <= pairwiseBlock {
			copy(dst, x[r0*B+lo:r0*B+hi])
			for i := r0 + 1; i < r1; i++ {
				r.cols(dst, x[i*B+lo:i*B+hi])
			}
			return
		}
		blocks := (r1 - r0 + pairwiseBlock - 1) / pairwiseBlock
		mid := r0 + (blocks+1)/2*pairwiseBlock
		rec(dst, r0, mid, level+1)
		tmp := scratch[level*n : (level+1)*n]
		rec(tmp, mid, r1, level+1)
		r.cols(dst, tmp)
	}
	rec(out, 0, R, 0)
	return scratch
}

// sumRow sums a contiguous slice with 8 accumulators and pairwise
// combination of blocks.
func sumRow[T Number](x []T) T {
	const block = 256
	if len(x) > block {
		h := (len(x) / 2) &^ 7
		return sumRow(x[:h]) + sumRow(x[h:])
	}
	var s0, s1, s2, s3, s4, s5, s6, s7 T
	i := 0
	for ; i+8 <= len(x); i += 8 {
		v := x[i : i+8 : i+8]
		s0 += v[0]
		s1 += v[1]
		s2 += v[2]
		s3 += v[3]
		s4 += v[4]
		s5 += v[5]
		s6 += v[6]
		s7 += v[7]
	}
	s := ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
	for ; i < len(x); i++ {
		s += x[i]
	}
	return s
}

func addCols[T Number](acc, x []T) {
	x = x[:len(acc)]
	for i := range acc {
		acc[i] += x[i]
	}
}

func maxRow[T Number](x []T) T {
	m0, m1, m2, m3 := lowest[T](), lowest[T](), lowest[T](), lowest[T]()
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		m0 = max(m0, v[0])
		m1 = max(m1, v[1])
		m2 = max(m2, v[2])
		m3 = max(m3, v[3])
	}
	m := max(max(m0, m1), max(m2, m3))
	for ; i < len(x); i++ {
		m = max(m, x[i])
	}
	return m
}

func minRow[T Number](x []T) T {
	m0, m1, m2, m3 := highest[T](), highest[T](), highest[T](), highest[T]()
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		m0 = min(m0, v[0])
		m1 = min(m1, v[1])
		m2 = min(m2, v[2])
		m3 = min(m3, v[3])
	}
	m := min(min(m0, m1), min(m2, m3))
	for ; i < len(x); i++ {
		m = min(m, x[i])
	}
	return m
}

func maxCols[T Number](acc, x []T) {
	x = x[:len(acc)]
	for i := range acc {
		acc[i] = max(acc[i], x[i])
	}
}

func minCols[T Number](acc, x []T) {
	x = x[:len(acc)]
	for i := range acc {
		acc[i] = min(acc[i], x[i])
	}
}

func sumShort[T Number](out, x []T, R int) {
	x = x[:len(out)*R]
	if R == 2 {
		for i := range out {
			out[i] = x[2*i] + x[2*i+1]
		}
		return
	}
	for i := range out {
		row := x[i*R : i*R+R]
		s := row[0]
		for _, v := range row[1:] {
			s += v
		}
		out[i] = s
	}
}

func maxShort[T Number](out, x []T, R int) {
	x = x[:len(out)*R]
	for i := range out {
		row := x[i*R : i*R+R]
		m := row[0]
		for _, v := range row[1:] {
			m = max(m, v)
		}
		out[i] = m
	}
}

func minShort[T Number](out, x []T, R int) {
	x = x[:len(out)*R]
	for i := range out {
		row := x[i*R : i*R+R]
		m := row[0]
		for _, v := range row[1:] {
			m = min(m, v)
		}
		out[i] = m
	}
}
