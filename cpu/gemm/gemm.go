// Package gemm implements dense matrix multiplication kernels for the CPU
// backend.
//
// MatMulFloat32 is the fast path: a BLIS/GotoBLAS-style blocked GEMM. Panels of
// A (mr rows, k-major) and of B (nr columns, k-major) are packed into
// contiguous, zero-padded buffers (packing absorbs transposition and edges), the
// k dimension is blocked by kcMax so that a B micro-panel stays in L1 and a
// packed block of A in L2, and a register-blocked 6x16 microkernel computes
// each tile of C. On amd64 with AVX2 and FMA the microkernel is written in
// assembly; with AVX-512F, kernels on 16-lane vectors compute two or four
// adjacent tiles (6x32, 6x64) from consecutive packed B micro-panels, giving
// the AVX2 kernel's bits; elsewhere a pure-Go kernel over the same packed
// layout is used.
// When C has few columns (at most directAMaxPanels micro-panels) a row-major
// A is not packed: an assembly kernel variant reads it in place. Deep
// products with a small C (im2col weight gradients) split k among the
// goroutines (gemmSplitK).
//
// MatMul is a simple generic version for every other numeric dtype.
package gemm

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/peco-dev/peco/cpu/parallel"
)

const (
	// mr x nr is the register tile computed by one microkernel call.
	mr = 6
	nr = 16

	// kcMax bounds the depth of a packed block: a B micro-panel (kcMax*nr
	// floats = 16 KiB) plus an A micro-panel (kcMax*mr floats = 6 KiB) fit in
	// the 32 KiB L1.
	kcMax = 256
	// mcMax bounds the rows of a packed A block (mcMax*kcMax floats = 144 KiB,
	// well inside a 512 KiB L2). Multiple of mr.
	mcMax = 144
	// ncMax bounds the columns of a packed B block (kcMax*ncMax floats = 1 MiB,
	// streamed from L3 one 16 KiB micro-panel at a time). Multiple of nr.
	ncMax = 1024

	// directAMaxPanels is the most micro-panels of B (columns of C / nr)
	// for which multiplyBlock reads a row-major A in place.
	directAMaxPanels = 16
	// kcDirectMax bounds the depth of a k block when A is read in place:
	// a micro-panel of A (kcDirectMax*mr floats = 18 KiB) stays in L1 while
	// the (at most 16) micro-panels of B stream from L2 or L3.
	kcDirectMax = 768

	// minParallelWork is the number of multiply-adds (batch*m*n*k) below which
	// MatMulFloat32 runs inline on the calling goroutine.
	minParallelWork = 1 << 16

	// minSharedWork is the number of multiply-adds (m*n*k) of one product
	// above which a small batch is computed product by product with a shared
	// packed B (see gemmShared).
	minSharedWork = 1 << 22
	// sharedMaxB bounds the floats of B packed at once by gemmShared (4 MiB,
	// well inside L3).
	sharedMaxB = 1 << 20
)

// directAEnabled may be cleared by tests to compare with packing A.
var directAEnabled = true

// workspace holds one goroutine's packing buffers. Workspaces are recycled
// through wsPool so that the hot path does not allocate.
type workspace struct {
	a   []float32            // packed A block, up to mcMax x kcMax
	b   []float32            // packed B block, up to kcMax x ncMax
	tmp [mr * 2 * nr]float32 // scratch tile for partial (edge) tiles, up to 6x32
}

var wsPool = sync.Pool{New: func() any {
	return &workspace{
		a: make([]float32, mcMax*kcMax),
		b: make([]float32, kcMax*ncMax),
	}
}}

// MatMulFloat32 computes C[b] = op(A[b]) x op(B[b]) for b in [0, batch).
// A is [batch][m][k] row-major, or [batch][k][m] when transA; B is [batch][k][n], or [batch][n][k] when transB;
// C is [batch][m][n], overwritten (not accumulated). Slices are contiguous and exactly sized (len(a) == batch*m*k, ...).
// It uses up to runtime.GOMAXPROCS(0) goroutines.
//
// Problems smaller than about 64K multiply-adds run on the calling goroutine.
// Larger ones are split into independent tasks (batch entries, and row or
// column ranges of C when the batch is small, or k ranges whose partial
// products are summed when k is large and C small), executed by at most
// GOMAXPROCS goroutines including the caller. If k == 0, C is zeroed. It
// panics if a dimension is negative or a slice is too short. No alignment is
// required.
func MatMulFloat32(batch, m, n, k int, a []float32, transA bool, b []float32, transB bool, c []float32) {
	checkDims(batch, m, n, k, len(a), len(b), len(c))
	if batch == 0 || m == 0 || n == 0 {
		return
	}
	if k == 0 {
		clear(c[:batch*m*n])
		return
	}
	strideA, strideB, strideC := m*k, k*n, m*n

	threads := runtime.GOMAXPROCS(0)
	if batch < 4 && useSplitK(m, n, k) {
		// Deep products with a small C: split k (even on one goroutine,
		// so that the result does not depend on threads).
		for bi := 0; bi < batch; bi++ {
			gemmSplitK(threads, m, n, k,
				a[bi*strideA:(bi+1)*strideA], transA,
				b[bi*strideB:(bi+1)*strideB], transB,
				c[bi*strideC:(bi+1)*strideC])
		}
		return
	}
	if threads <= 1 || batch*m*n*k < minParallelWork {
		ws := wsPool.Get().(*workspace)
		for bi := 0; bi < batch; bi++ {
			gemmRange(ws, m, n, k,
				a[bi*strideA:(bi+1)*strideA], transA,
				b[bi*strideB:(bi+1)*strideB], transB,
				c[bi*strideC:(bi+1)*strideC], 0, m, 0, n)
		}
		wsPool.Put(ws)
		return
	}

	if batch < 2*threads && m*n*k >= minSharedWork && m >= 2*mr*threads {
		// Few large products: pack B once per product and share it, with the
		// rows of C handed out dynamically in blocks.
		for bi := 0; bi < batch; bi++ {
			gemmShared(threads, m, n, k,
				a[bi*strideA:(bi+1)*strideA], transA,
				b[bi*strideB:(bi+1)*strideB], transB,
				c[bi*strideC:(bi+1)*strideC])
		}
		return
	}

	// Otherwise each task is a whole product or a part of one, packing its
	// own panels. Split each batch entry into parts so that the number of
	// tasks divides evenly among the goroutines (or is large enough not to
	// matter).
	parts := 1
	if batch < 4*threads {
		parts = threads / gcd(batch, threads)
	}
	mTiles, nTiles := ceilDiv(m, mr), ceilDiv(n, nr)
	mParts, nParts := parts, 1
	if mTiles < parts {
		// Too few rows: split the columns of C as well.
		mParts = mTiles
		nParts = min(ceilDiv(parts, mParts), nTiles)
	}
	perBatch := mParts * nParts
	tasks := batch * perBatch
	forEachTaskWS(threads, tasks, func(ws *workspace, t int) {
		bi, r := t/perBatch, t%perBatch
		mp, np := r/nParts, r%nParts
		m0, m1 := splitTiles(mTiles, mParts, mp, mr, m)
		n0, n1 := splitTiles(nTiles, nParts, np, nr, n)
		gemmRange(ws, m, n, k,
			a[bi*strideA:(bi+1)*strideA], transA,
			b[bi*strideB:(bi+1)*strideB], transB,
			c[bi*strideC:(bi+1)*strideC], m0, m1, n0, n1)
	})
}

// runOn runs f on workers goroutines (the caller and pool workers, see
// package parallel) and waits for all of them.
func runOn(workers int, f func()) {
	parallel.Do(workers, func(int) { f() })
}

// taskCounter hands out the task indices 0..tasks-1, each once, in order, to
// whichever goroutine asks next (dynamic load balancing).
type taskCounter struct {
	next  atomic.Int64
	tasks int
}

func (c *taskCounter) take() (int, bool) {
	t := int(c.next.Add(1) - 1)
	return t, t < c.tasks
}

// forEachTask runs body(t) for every t in [0, tasks) on up to threads
// goroutines.
func forEachTask(threads, tasks int, body func(t int)) {
	c := &taskCounter{tasks: tasks}
	runOn(min(threads, tasks), func() {
		for t, ok := c.take(); ok; t, ok = c.take() {
			body(t)
		}
	})
}

// forEachTaskWS is forEachTask with a pooled workspace per goroutine.
func forEachTaskWS(threads, tasks int, body func(ws *workspace, t int)) {
	c := &taskCounter{tasks: tasks}
	runOn(min(threads, tasks), func() {
		ws := wsPool.Get().(*workspace)
		for t, ok := c.take(); ok; t, ok = c.take() {
			body(ws, t)
		}
		wsPool.Put(ws)
	})
}

// sharedPool recycles the shared packed-B buffers of gemmShared.
var sharedPool = sync.Pool{New: func() any { return new([]float32) }}

// gemmShared computes one product c = op(a) x op(b) with up to threads
// goroutines. Columns of C are processed in chunks whose packed B (all of k)
// fits in sharedMaxB floats; for each chunk B is packed once, cooperatively,
// then the goroutines take row blocks of C dynamically, each packing its own
// blocks of A. Dynamic row blocks keep both cores busy even when one of them
// is shared with other work.
func gemmShared(threads, m, n, k int, a []float32, transA bool, b []float32, transB bool, c []float32) {
	kcStep := kcStepFor(k, useDirectA(transA, min(n, max(nr, sharedMaxB/k/nr*nr))))
	kBlocks := ceilDiv(k, kcStep)
	// Row blocks: at most mcMax rows, and at least 4 blocks per goroutine
	// for load balance.
	mcStep := min(mcMax, roundUp(ceilDiv(m, 4*threads), mr))
	mBlocks := ceilDiv(m, mcStep)
	chunk := max(nr, sharedMaxB/k/nr*nr)

	bufp := sharedPool.Get().(*[]float32)
	need := min(roundUp(n, nr), chunk) * k
	if cap(*bufp) < need {
		*bufp = make([]float32, need)
	}
	pb := (*bufp)[:need]

	for jc := 0; jc < n; jc += chunk {
		nc := min(chunk, n-jc)
		ncPad := roundUp(nc, nr)
		panels := ncPad / nr

		// Phase 1: pack B[:, jc:jc+nc] for all k blocks; block pc starts at
		// pb[pc*ncPad]. Work units are (k block, 4 panels).
		const panelsPerUnit = 4
		unitsPerK := ceilDiv(panels, panelsPerUnit)
		units := kBlocks * unitsPerK
		forEachTask(threads, units, func(u int) {
			pc := u / unitsPerK * kcStep
			kc := min(kcStep, k-pc)
			p0 := u % unitsPerK * panelsPerUnit * nr
			p1 := min(p0+panelsPerUnit*nr, nc)
			packB(pb[pc*ncPad+p0*kc:], b, transB, n, k, pc, kc, jc+p0, p1-p0)
		})

		// Phase 2: row blocks of C.
		forEachTaskWS(threads, mBlocks, func(ws *workspace, blk int) {
			ic := blk * mcStep
			mc := min(mcStep, m-ic)
			for pc := 0; pc < k; pc += kcStep {
				kc := min(kcStep, k-pc)
				multiplyBlock(ws, a, transA, m, k, ic, mc, pc, kc, pb[pc*ncPad:], nc, c[ic*n+jc:], n, pc > 0)
			}
		})
	}
	sharedPool.Put(bufp)
}

// checkDims panics on negative dimensions or slices too short for them.
func checkDims(batch, m, n, k, lenA, lenB, lenC int) {
	if batch < 0 || m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: negative dimension (batch=%d, m=%d, n=%d, k=%d)", batch, m, n, k))
	}
	if lenA < batch*m*k || lenB < batch*k*n || lenC < batch*m*n {
		panic(fmt.Sprintf("gemm: slices too short for batch=%d, m=%d, n=%d, k=%d: len(a)=%d, len(b)=%d, len(c)=%d",
			batch, m, n, k, lenA, lenB, lenC))
	}
}

// gemmRange computes rows [m0, m1) and columns [n0, n1) of one C = op(A) x
// op(B) product, where a, b and c hold exactly one batch entry.
func gemmRange(ws *workspace, m, n, k int, a []float32, transA bool, b []float32, transB bool, c []float32, m0, m1, n0, n1 int) {
	gemmBlock(ws, m, n, k, a, transA, b, transB, c, m0, m1, n0, n1, 0, k)
}

// gemmBlock computes rows [m0, m1) and columns [n0, n1) of the partial
// product of op(A)[:, p0:p1] by op(B)[p0:p1, :] into c (row stride n),
// overwriting it. a, b and c hold exactly one batch entry.
func gemmBlock(ws *workspace, m, n, k int, a []float32, transA bool, b []float32, transB bool, c []float32, m0, m1, n0, n1, p0, p1 int) {
	kcStep := kcStepFor(p1-p0, useDirectA(transA, n1-n0))
	mcStep := min(roundUp(ceilDiv(m1-m0, ceilDiv(m1-m0, mcMax)), mr), mcMax)
	for jc := n0; jc < n1; jc += ncMax {
		nc := min(ncMax, n1-jc)
		for pc := p0; pc < p1; pc += kcStep {
			kc := min(kcStep, p1-pc)
			packB(ws.b, b, transB, n, k, pc, kc, jc, nc)
			for ic := m0; ic < m1; ic += mcStep {
				mc := min(mcStep, m1-ic)
				multiplyBlock(ws, a, transA, m, k, ic, mc, pc, kc, ws.b, nc, c[ic*n+jc:], n, pc > p0)
			}
		}
	}
}

// kcStepFor returns the depth of the k blocks for a k range of kd: even
// blocks (rounded up to a multiple of 4 for the unrolled kernel loop) avoid
// a thin last block. They are at most kcMax deep, or kcDirectMax when A is
// read in place (direct).
func kcStepFor(kd int, direct bool) int {
	limit := kcMax
	if direct {
		limit = kcDirectMax
	}
	return min(roundUp(ceilDiv(kd, ceilDiv(kd, limit)), 4), limit)
}

// useDirectA reports whether multiplyBlock reads A in place for blocks of
// nc columns of C.
func useDirectA(transA bool, nc int) bool {
	return !transA && useAVX2 && directAEnabled && nc <= directAMaxPanels*nr
}

// multiplyBlock computes the mc x nc block of C at c (row stride ldc) from
// rows [ic, ic+mc) and depths [pc, pc+kc) of op(A), and the packed kc x nc
// block pb of B. With acc the product is added to C, otherwise C is
// overwritten.
//
// The block of A is packed (into ws.a) unless it is row-major (not
// transA), the assembly kernel is available and there are at most
// directAMaxPanels micro-panels of B: then each micro-panel of A would be
// used too few times for packing to pay, and the kernel reads A in place.
func multiplyBlock(ws *workspace, a []float32, transA bool, m, k, ic, mc, pc, kc int, pb []float32, nc int, c []float32, ldc int, acc bool) {
	if !useDirectA(transA, nc) {
		packA(ws.a, a, transA, m, k, ic, mc, pc, kc)
		macroKernel(ws, ws.a, pb, kc, mc, nc, c, ldc, acc)
		return
	}
	// Each micro-panel of A (6 rows, kc deep) is loaded from memory by
	// the first micro-panel of B and stays in L1 for the others.
	wide := useAVX512
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		cr := c[ir*ldc:]
		if rows < mr {
			// The last partial micro-panel is packed (zero rows past m).
			packA(ws.a, a, false, m, k, ic+ir, rows, pc, kc)
			macroKernel(ws, ws.a, pb, kc, rows, nc, cr, ldc, acc)
			continue
		}
		i0 := ic + ir
		ap := a[i0*k+pc : (i0+mr-1)*k+pc+kc]
		for jr := 0; jr < nc; jr += nr {
			if wide && nc-jr >= 4*nr {
				bp := pb[jr*kc : jr*kc+4*kc*nr]
				ct := cr[jr : jr+(mr-1)*ldc+4*nr]
				kernel6x64AVX512A(kc, &ap[0], k, &bp[0], &ct[0], ldc, acc)
				jr += 3 * nr
				continue
			}
			if wide && nc-jr >= 2*nr {
				// Two full micro-panels of B at once (AVX-512).
				bp := pb[jr*kc : jr*kc+2*kc*nr]
				ct := cr[jr : jr+(mr-1)*ldc+2*nr]
				kernel6x32AVX512A(kc, &ap[0], k, &bp[0], &ct[0], ldc, acc)
				jr += nr
				continue
			}
			cols := min(nr, nc-jr)
			bp := pb[jr*kc : jr*kc+kc*nr]
			if cols == nr {
				ct := cr[jr : jr+(mr-1)*ldc+nr]
				kernel6x16AVX2A(kc, &ap[0], k, &bp[0], &ct[0], ldc, acc)
				continue
			}
			tmp := ws.tmp[:mr*nr]
			kernel6x16AVX2A(kc, &ap[0], k, &bp[0], &tmp[0], nr, false)
			storeTile(cr[jr:], ldc, tmp, nr, mr, cols, acc)
		}
	}
}

// macroKernel multiplies the packed mc x kc block pa of A by the packed kc x nc
// block pb of B into the mc x nc block of C starting at c[0] (row stride ldc).
// With acc the product is added to C, otherwise C is overwritten. ws provides
// the scratch tile.
func macroKernel(ws *workspace, pa, pb []float32, kc, mc, nc int, c []float32, ldc int, acc bool) {
	asm, wide := useAVX2, useAVX512
	for jr := 0; jr < nc; jr += nr {
		if wide && nc-jr >= 4*nr && mc%mr == 0 {
			bp := pb[jr*kc : jr*kc+4*kc*nr]
			for ir := 0; ir < mc; ir += mr {
				ap := pa[ir*kc : ir*kc+kc*mr]
				off := ir*ldc + jr
				ct := c[off : off+(mr-1)*ldc+4*nr]
				kernel6x64AVX512(kc, &ap[0], &bp[0], &ct[0], ldc, acc)
			}
			jr += 3 * nr
			continue
		}
		if wide && nc-jr >= 2*nr {
			// Two full micro-panels of B at once (AVX-512): a 6x32 tile.
			bp := pb[jr*kc : jr*kc+2*kc*nr]
			for ir := 0; ir < mc; ir += mr {
				rows := min(mr, mc-ir)
				ap := pa[ir*kc : ir*kc+kc*mr]
				off := ir*ldc + jr
				if rows == mr {
					ct := c[off : off+(mr-1)*ldc+2*nr]
					kernel6x32AVX512(kc, &ap[0], &bp[0], &ct[0], ldc, acc)
					continue
				}
				tmp := ws.tmp[:]
				kernel6x32AVX512(kc, &ap[0], &bp[0], &tmp[0], 2*nr, false)
				storeTile(c[off:], ldc, tmp, 2*nr, rows, 2*nr, acc)
			}
			jr += nr
			continue
		}
		cols := min(nr, nc-jr)
		bp := pb[jr*kc : jr*kc+kc*nr]
		for ir := 0; ir < mc; ir += mr {
			rows := min(mr, mc-ir)
			ap := pa[ir*kc : ir*kc+kc*mr]
			off := ir*ldc + jr
			if rows == mr && cols == nr {
				ct := c[off : off+(mr-1)*ldc+nr]
				if asm {
					kernel6x16AVX2(kc, &ap[0], &bp[0], &ct[0], ldc, acc)
				} else {
					kernelGo(kc, ap, bp, ct, ldc, acc)
				}
				continue
			}
			// Edge tile: compute the full (zero-padded) tile into scratch and
			// copy out the valid part.
			tmp := ws.tmp[:mr*nr]
			if asm {
				kernel6x16AVX2(kc, &ap[0], &bp[0], &tmp[0], nr, false)
			} else {
				kernelGo(kc, ap, bp, tmp, nr, false)
			}
			storeTile(c[off:], ldc, tmp, nr, rows, cols, acc)
		}
	}
}

// storeTile copies (acc == false) or adds (acc == true) the top-left rows x
// cols values of the tile tmp (row stride ldt) to c (row stride ldc).
func storeTile(c []float32, ldc int, tmp []float32, ldt, rows, cols int, acc bool) {
	for r := 0; r < rows; r++ {
		dst := c[r*ldc : r*ldc+cols]
		src := tmp[r*ldt : r*ldt+cols]
		if acc {
			for j, v := range src {
				dst[j] += v
			}
		} else {
			copy(dst, src)
		}
	}
}

// splitTiles divides tiles tiles of size tile into parts nearly equal
// contiguous ranges and returns the element range [lo, hi) of range part,
// clipped to size.
func splitTiles(tiles, parts, part, tile, size int) (lo, hi int) {
	lo = min(tiles*part/parts*tile, size)
	hi = min(tiles*(part+1)/parts*tile, size)
	return lo, hi
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Kernel names the microkernels MatMulFloat32 uses on this machine:
// "AVX-512F" (6x32 and 6x64 tiles), "AVX2+FMA" (6x16) or "pure Go".
func Kernel() string {
	switch {
	case useAVX512:
		return "AVX-512F"
	case useAVX2:
		return "AVX2+FMA"
	}
	return "pure Go"
}
