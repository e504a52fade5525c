// Package elem implements element-wise, comparison, selection, conversion and
// reduction kernels for the peco CPU compute backend.
//
// Kernels operate on plain Go slices holding row-major tensors. Shapes are
// given as []int dimensions; an empty or nil dimension slice denotes a scalar
// holding one element. The `any` entry points (Unary, Binary, Compare, Where,
// Clamp, Convert, Reduce, ArgMinMax) switch on the dynamic slice type
// ([]float32, []float64, []int8 ... []int64, []uint8 ... []uint64, []bool) and
// return an error naming the op and dtype when a combination is unsupported or
// sizes do not match; they never panic on bad input.
//
// Semantics follow github.com/gomlx/compute's Backend ops (XLA semantics):
// binary operands are broadcast to the output shape (each operand has the
// output's rank with every dimension equal to the output's or 1, or it is a
// scalar), integer division by zero yields -1 (all bits set) and remainder by
// zero yields the dividend, float to integer conversion truncates toward zero
// and saturates (NaN converts to 0), and Max/Min propagate NaN.
//
// Large operations (more than about 64K elements, fewer for transcendental
// functions) are split across runtime.GOMAXPROCS(0) goroutines in contiguous
// chunks. The package keeps no global mutable state.
package elem

import (
	"fmt"
	"runtime"

	"github.com/peco-dev/peco/cpu/parallel"
)

// Number is the set of numeric element types supported by the kernels.
type Number interface {
	float32 | float64 | int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64
}

// Float is the set of floating point element types.
type Float interface {
	float32 | float64
}

// Integer is the set of integer element types.
type Integer interface {
	int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64
}

// Signed is the set of signed integer element types.
type Signed interface {
	int8 | int16 | int32 | int64
}

// Unsigned is the set of unsigned integer element types.
type Unsigned interface {
	uint8 | uint16 | uint32 | uint64
}

// ParallelThreshold is the number of output elements above which cheap
// element-wise operations are split across goroutines.
const ParallelThreshold = 64 * 1024

// parallelThresholdHeavy is used for transcendental functions, where each
// element costs several nanoseconds.
const parallelThresholdHeavy = 16 * 1024

// chunkAlign is the granularity (in elements) of parallel chunks, chosen so
// that chunks of []bool, []float32 and []float64 outputs do not share cache
// lines.
const chunkAlign = 64

// dimsSize returns the number of elements of a row-major shape with the given
// dimensions (1 for a scalar) and an error if any dimension is negative.
func dimsSize(dims []int) (int, error) {
	n := 1
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in %v", dims)
		}
		n *= d
	}
	return n, nil
}

// typeName returns the dtype name of a slice given as any.
func typeName(x any) string {
	switch x.(type) {
	case []float32:
		return "float32"
	case []float64:
		return "float64"
	case []int8:
		return "int8"
	case []int16:
		return "int16"
	case []int32:
		return "int32"
	case []int64:
		return "int64"
	case []uint8:
		return "uint8"
	case []uint16:
		return "uint16"
	case []uint32:
		return "uint32"
	case []uint64:
		return "uint64"
	case []bool:
		return "bool"
	case nil:
		return "nil"
	}
	return fmt.Sprintf("unsupported type %T", x)
}

// sliceLen returns the length of a supported slice given as any, or -1.
func sliceLen(x any) int {
	switch v := x.(type) {
	case []float32:
		return len(v)
	case []float64:
		return len(v)
	case []int8:
		return len(v)
	case []int16:
		return len(v)
	case []int32:
		return len(v)
	case []int64:
		return len(v)
	case []uint8:
		return len(v)
	case []uint16:
		return len(v)
	case []uint32:
		return len(v)
	case []uint64:
		return len(v)
	case []bool:
		return len(v)
	}
	return -1
}

// parallelFor calls fn over [0, n) split into contiguous chunks, one per
// available processor, when n exceeds threshold; otherwise it calls fn(0, n)
// on the calling goroutine. Chunk boundaries are multiples of align.
func parallelFor(n, threshold, align int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n <= threshold || workers <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	if threshold >= 2 {
		// Give each goroutine at least threshold/2 elements.
		workers = min(workers, max(n/(threshold/2), 1))
	}
	if align < 1 {
		align = 1
	}
	chunk := (n + workers - 1) / workers
	chunk = (chunk + align - 1) / align * align
	parallel.Do((n+chunk-1)/chunk, func(p int) { fn(p*chunk, min((p+1)*chunk, n)) })
}

// maxOperands is the maximum number of broadcast input operands of a plan.
const maxOperands = 3

// plan describes how the operands of a broadcasting operation map onto the
// output after dropping size-1 output axes and merging adjacent axes with the
// same broadcast pattern. The output is iterated as a sequence of contiguous
// inner runs of length inner; within a run each operand is either contiguous
// (contig[k]) or a single broadcast value.
type plan struct {
	nops    int
	total   int
	inner   int
	contig  [maxOperands]bool
	outer   []int              // dimensions of the merged outer axes
	strides [maxOperands][]int // element strides of each operand on the outer axes (0 if broadcast)
	scalar  [maxOperands]bool  // operand is a single value
	sizes   [maxOperands]int   // operand sizes
	blk     *blocking          // block iteration for short inner runs, or nil
	_       [0]func()          // not comparable
}

// Operand modes within a block of a blocking.
const (
	blockConst  = iota // one value for the whole block
	blockContig        // contiguous: offsets base .. base+size-1
	blockGather        // offsets base+idx[i]
)

// shortRun is the inner run length below which a plan iterates over blocks
// of several runs instead (per-run call overhead would dominate).
const shortRun = 64

// Block sizes (elements) aimed for by a blocking.
const (
	minBlockSize = 256
	maxBlockSize = 2048
)

// blocking describes the output as a sequence of equal blocks of size
// elements, each covering whole runs of the innermost merged axes. Within a
// block every operand follows a fixed offset pattern relative to its base
// offset (mode[k]); gathered operands list that pattern in idx[k]. The bases
// of consecutive blocks follow the outer axes and strides as in plan.
type blocking struct {
	size    int
	outer   []int
	strides [maxOperands][]int
	mode    [maxOperands]uint8
	idx     [maxOperands][]int32
}

// newPlan validates the operand shapes against outDims and builds a plan.
// name is used in error messages.
func newPlan(name string, outDims []int, opDims ...[]int) (*plan, error) {
	total, err := dimsSize(outDims)
	if err != nil {
		return nil, fmt.Errorf("%s: output: %w", name, err)
	}
	p := &plan{nops: len(opDims), total: total, inner: 1}
	rank := len(outDims)
	for k, d := range opDims {
		sz, err := dimsSize(d)
		if err != nil {
			return nil, fmt.Errorf("%s: operand #%d: %w", name, k, err)
		}
		p.sizes[k] = sz
		if sz == 1 {
			p.scalar[k] = true
			continue
		}
		if len(d) != rank {
			return nil, fmt.Errorf("%s: operand #%d dims %v cannot be broadcast to output dims %v", name, k, d, outDims)
		}
		for i, v := range d {
			if v != outDims[i] && v != 1 {
				return nil, fmt.Errorf("%s: operand #%d dims %v cannot be broadcast to output dims %v", name, k, d, outDims)
			}
		}
	}
	// Merge axes.
	type axis struct {
		dim int
		bc  [maxOperands]bool
	}
	var axes []axis
	for i, od := range outDims {
		if od == 1 {
			continue
		}
		var a axis
		a.dim = od
		for k, d := range opDims {
			a.bc[k] = p.scalar[k] || d[i] == 1
		}
		if n := len(axes); n > 0 && axes[n-1].bc == a.bc {
			axes[n-1].dim *= od
			continue
		}
		axes = append(axes, a)
	}
	if len(axes) == 0 || total == 0 {
		for k := range p.nops {
			p.contig[k] = !p.scalar[k]
		}
		p.inner = max(total, 1)
		if total == 0 {
			p.inner = 0
		}
		return p, nil
	}
	last := axes[len(axes)-1]
	p.inner = last.dim
	for k := range p.nops {
		p.contig[k] = !last.bc[k]
	}
	outer := axes[:len(axes)-1]
	p.outer = make([]int, len(outer))
	for i, a := range outer {
		p.outer[i] = a.dim
	}
	for k := range p.nops {
		st := make([]int, len(outer))
		acc := 1
		if p.contig[k] {
			acc = p.inner
		}
		for i := len(outer) - 1; i >= 0; i-- {
			if outer[i].bc[k] {
				st[i] = 0
				continue
			}
			st[i] = acc
			acc *= outer[i].dim
		}
		p.strides[k] = st
	}
	if p.inner < shortRun {
		dims := make([]int, len(axes))
		bcs := make([][maxOperands]bool, len(axes))
		for i, a := range axes {
			dims[i], bcs[i] = a.dim, a.bc
		}
		p.blk = newBlocking(p.nops, dims, bcs)
	}
	return p, nil
}

// newBlocking groups the innermost of the merged axes (dims, with broadcast
// flags bcs) into blocks of about minBlockSize to maxBlockSize elements,
// splitting an axis if needed. It returns nil when blocks would not be
// longer than the innermost axis.
func newBlocking(nops int, dims []int, bcs [][maxOperands]bool) *blocking {
	n := len(dims)
	// Row-major operand strides over all axes (0 where broadcast).
	var st [maxOperands][]int
	for k := range nops {
		st[k] = make([]int, n)
		acc := 1
		for i := n - 1; i >= 0; i-- {
			if !bcs[i][k] {
				st[k][i] = acc
				acc *= dims[i]
			}
		}
	}
	size := dims[n-1]
	first := n - 1 // first axis in the block
	for first > 0 && size*dims[first-1] <= maxBlockSize {
		first--
		size *= dims[first]
	}
	split := 1 // part of axis first-1 taken into the block
	if size < minBlockSize && first > 0 {
		d := dims[first-1]
		for c := min(d-1, maxBlockSize/size); c > 1; c-- {
			if d%c == 0 {
				split = c
				break
			}
		}
	}
	if size*split <= dims[n-1] {
		return nil
	}
	bl := &blocking{size: size * split}
	// Block axes: split (if any) then first .. n-1.
	var inDims []int
	var inSt [maxOperands][]int
	if split > 1 {
		inDims = append(inDims, split)
		for k := range nops {
			inSt[k] = append(inSt[k], st[k][first-1])
		}
	}
	inDims = append(inDims, dims[first:]...)
	for k := range nops {
		inSt[k] = append(inSt[k], st[k][first:]...)
	}
	// Outer axes, the split one reduced to d/split steps of split.
	nOuter := first
	bl.outer = append([]int(nil), dims[:nOuter]...)
	for k := range nops {
		bl.strides[k] = append([]int(nil), st[k][:nOuter]...)
	}
	if split > 1 {
		bl.outer[nOuter-1] /= split
		for k := range nops {
			bl.strides[k][nOuter-1] *= split
		}
	}
	for k := range nops {
		allBc, noBc := true, true
		for i := first; i < n; i++ {
			allBc = allBc && bcs[i][k]
			noBc = noBc && !bcs[i][k]
		}
		if split > 1 {
			allBc = allBc && bcs[first-1][k]
			noBc = noBc && !bcs[first-1][k]
		}
		switch {
		case allBc:
			bl.mode[k] = blockConst
		case noBc:
			bl.mode[k] = blockContig
		default:
			bl.mode[k] = blockGather
			idx := make([]int32, bl.size)
			coords := make([]int, len(inDims))
			off := 0
			for e := range idx {
				idx[e] = int32(off)
				for i := len(inDims) - 1; i >= 0; i-- {
					coords[i]++
					off += inSt[k][i]
					if coords[i] < inDims[i] {
						break
					}
					off -= coords[i] * inSt[k][i]
					coords[i] = 0
				}
			}
			bl.idx[k] = idx
		}
	}
	return bl
}

// blockFn processes the output block starting at output offset o; base[k]
// is the base offset of operand k in the block.
type blockFn func(o int, base *[maxOperands]int)

// execBlocks runs the blocks of p.blk, in parallel when the output is large.
// Each goroutine calls newFn once and feeds its blocks to the result, so
// functions may keep per-goroutine scratch space.
func (p *plan) execBlocks(threshold int, newFn func() blockFn) {
	bl := p.blk
	nblk := p.total / bl.size
	parallelFor(nblk, threshold/bl.size, 1, func(lo, hi int) {
		fn := newFn()
		nOuter := len(bl.outer)
		coords := make([]int, nOuter)
		var base [maxOperands]int
		r := lo
		for i := nOuter - 1; i >= 0; i-- {
			c := r % bl.outer[i]
			r /= bl.outer[i]
			coords[i] = c
			for k := range p.nops {
				base[k] += c * bl.strides[k][i]
			}
		}
		for b := lo; b < hi; b++ {
			fn(b*bl.size, &base)
			for i := nOuter - 1; i >= 0; i-- {
				coords[i]++
				if coords[i] < bl.outer[i] {
					for k := range p.nops {
						base[k] += bl.strides[k][i]
					}
					break
				}
				coords[i] = 0
				for k := range p.nops {
					base[k] -= (bl.outer[i] - 1) * bl.strides[k][i]
				}
			}
		}
	})
}

// blockOperand resolves an operand's values in a block: a contiguous slice
// (its own memory or a gathered copy) or a single value.
type blockOperand[T any] struct {
	x       []T
	mode    uint8
	idx     []int32
	scratch []T
	last    int
}

func newBlockOperand[T any](bl *blocking, k int, x []T) blockOperand[T] {
	b := blockOperand[T]{x: x, mode: bl.mode[k], idx: bl.idx[k], last: -1}
	if b.mode == blockGather {
		b.scratch = make([]T, bl.size)
	}
	return b
}

// get returns the operand's block values starting at base: vec (len n) for
// contiguous and gathered operands, else the single value s. A gathered
// block is reused while the base does not change.
func (b *blockOperand[T]) get(base, n int) (vec []T, s T) {
	switch b.mode {
	case blockContig:
		return b.x[base : base+n], s
	case blockGather:
		if base != b.last {
			src, dst := b.x[base:], b.scratch[:len(b.idx)]
			for i, j := range b.idx {
				dst[i] = src[j]
			}
			b.last = base
		}
		return b.scratch, s
	}
	return nil, b.x[base]
}

// segmentFn processes n output elements starting at output offset o; off[k]
// is the offset of operand k (its broadcast value when !contig[k]).
type segmentFn func(o int, off *[maxOperands]int, n int)

// run calls fn for every contiguous segment of the output range [lo, hi).
func (p *plan) run(lo, hi int, fn segmentFn) {
	if lo >= hi {
		return
	}
	inner := p.inner
	r, pos := lo/inner, lo%inner
	nOuter := len(p.outer)
	var coordsBuf [8]int
	coords := coordsBuf[:0]
	if nOuter > len(coordsBuf) {
		coords = make([]int, nOuter)
	} else {
		coords = coordsBuf[:nOuter]
	}
	var base [maxOperands]int
	for i := nOuter - 1; i >= 0; i-- {
		c := r % p.outer[i]
		r /= p.outer[i]
		coords[i] = c
		for k := range p.nops {
			base[k] += c * p.strides[k][i]
		}
	}
	var off [maxOperands]int
	o := lo
	for {
		n := min(inner-pos, hi-o)
		for k := range p.nops {
			off[k] = base[k]
			if p.contig[k] {
				off[k] += pos
			}
		}
		fn(o, &off, n)
		o += n
		if o >= hi {
			return
		}
		pos = 0
		for i := nOuter - 1; i >= 0; i-- {
			coords[i]++
			if coords[i] < p.outer[i] {
				for k := range p.nops {
					base[k] += p.strides[k][i]
				}
				break
			}
			coords[i] = 0
			for k := range p.nops {
				base[k] -= (p.outer[i] - 1) * p.strides[k][i]
			}
		}
	}
}

// exec runs fn over the whole output, in parallel when large.
func (p *plan) exec(threshold int, fn segmentFn) {
	parallelFor(p.total, threshold, chunkAlign, func(lo, hi int) { p.run(lo, hi, fn) })
}
