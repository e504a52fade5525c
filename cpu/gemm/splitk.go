package gemm

import (
	"sync"
)

const (
	// splitKMinSlice is the least depth of one k slice of gemmSplitK: the
	// partial products of the slices are summed at the end, one pass over C
	// per extra slice, which is negligible against 2*splitKMinSlice flops
	// per C element.
	splitKMinSlice = 2048
	// splitKMaxSlices bounds the number of k slices (and of partial C
	// buffers, less one).
	splitKMaxSlices = 8
	// splitKMaxC bounds the C size (m*n floats) for which gemmSplitK is
	// used, and so its partial buffers ((splitKMaxSlices-1)*splitKMaxC
	// floats at most).
	splitKMaxC = 1 << 20
)

// useSplitK reports whether one m x n x k product is computed by
// gemmSplitK: a deep product (k at least twice m and n, and at least two
// k slices) with a small C. Such products have too few rows and columns of
// C to keep the goroutines busy with large packed blocks, and packing a
// block of B over all of k for gemmShared would take too much memory.
//
// The choice depends on the shape only, not on the number of goroutines, so
// that the result does not either.
func useSplitK(m, n, k int) bool {
	return splitKEnabled && k >= 2*splitKMinSlice && k >= 2*max(m, n) && m*n <= splitKMaxC
}

// splitKEnabled may be cleared by tests to compare with the other paths.
var splitKEnabled = true

// splitPool recycles the partial C buffers of gemmSplitK.
var splitPool = sync.Pool{New: func() any { return new([]float32) }}

// gemmSplitK computes one product c = op(a) x op(b) with up to threads
// goroutines by splitting k into slices. The partial product of slice s is
// computed into its own buffer (slice 0 directly into c), then the buffers
// are added to c in slice order. When there are fewer slices than about 4
// tasks per goroutine, the columns (then the rows) of C are split as well;
// tasks (slice, row block, column block) are handed out dynamically. Every
// element of C is thus summed in an order that depends on the shape only:
// the result is deterministic and independent of threads.
func gemmSplitK(threads, m, n, k int, a []float32, transA bool, b []float32, transB bool, c []float32) {
	if m*n*k < minParallelWork {
		threads = 1
	}
	slices := min(splitKMaxSlices, k/splitKMinSlice)
	// Further split C into blocks of at least 8 micro-panels of columns,
	// then 16 of rows, to get about 4 tasks per goroutine.
	target := 4 * threads
	mTiles, nTiles := ceilDiv(m, mr), ceilDiv(n, nr)
	nBlocks := max(1, min(ceilDiv(target, slices), nTiles/8))
	mBlocks := max(1, min(ceilDiv(target, slices*nBlocks), mTiles/16))
	perSlice := mBlocks * nBlocks
	tasks := slices * perSlice

	bufp := splitPool.Get().(*[]float32)
	need := (slices - 1) * m * n
	if cap(*bufp) < need {
		*bufp = make([]float32, need)
	}
	partial := func(s int) []float32 {
		if s == 0 {
			return c[:m*n]
		}
		return (*bufp)[(s-1)*m*n : s*m*n]
	}

	forEachTaskWS(threads, tasks, func(ws *workspace, t int) {
		s, r := t/perSlice, t%perSlice
		mb, nb := r/nBlocks, r%nBlocks
		m0, m1 := splitTiles(mTiles, mBlocks, mb, mr, m)
		n0, n1 := splitTiles(nTiles, nBlocks, nb, nr, n)
		p0, p1 := k*s/slices, k*(s+1)/slices
		gemmBlock(ws, m, n, k, a, transA, b, transB, partial(s), m0, m1, n0, n1, p0, p1)
	})

	if slices > 1 {
		// c += partial(1) + ... in slice order, rows shared among the
		// goroutines.
		const rowsPerUnit = 16
		units := ceilDiv(m, rowsPerUnit)
		forEachTask(threads, units, func(u int) {
			lo, hi := u*rowsPerUnit*n, min((u+1)*rowsPerUnit, m)*n
			dst := c[lo:hi]
			for s := 1; s < slices; s++ {
				addTo(dst, partial(s)[lo:hi])
			}
		})
	}
	splitPool.Put(bufp)
}

// addTo adds src to dst element-wise (len(src) >= len(dst)).
func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for len(dst) >= 8 {
		d, s := (*[8]float32)(dst), (*[8]float32)(src)
		d[0] += s[0]
		d[1] += s[1]
		d[2] += s[2]
		d[3] += s[3]
		d[4] += s[4]
		d[5] += s[5]
		d[6] += s[6]
		d[7] += s[7]
		dst, src = dst[8:], src[8:]
	}
	for i := range dst {
		dst[i] += src[i]
	}
}
