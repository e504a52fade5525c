package conv

import (
	"fmt"
	"runtime"

	"github.com/peco-dev/peco/cpu/gemm"
)

// kgMinRows is the least number of rows (output positions) of a block of
// KernelGradFloat32: the partial products of the blocks are summed, one
// pass over the output block per block, against kgMinRows multiply-adds per
// output element.
const kgMinRows = 64

// kgPatchBudget is the floats of a block of patches: deeper products (more
// rows) than Float32's blocks, for they are summed into the whole output
// block (taps x channels x output channels) rather than a few rows of it.
const kgPatchBudget = 2 * patchBudget

// KernelGradFloat32 computes the gradient of the convolution described by p
// (one group; see the package documentation) with respect to its kernel,
// from the convolution's input and the gradient of its output, both in the
// canonical layout:
//
//	in  [Batch, InSpatial..., Channels]
//	dy  [Batch, OutSpatial..., OutChannels]
//	out [KernelSpatial..., Channels, OutChannels], overwritten
//
// out[t, c, co] = sum over b and output positions o of
// in[b, pos(o, t), c] * dy[b, o, co], pos as in Float32. It is the
// transpose of the im2col matrix (the patches of every output position,
// rows of taps x channels) times dy seen as a [Batch*positions, OutChannels]
// matrix: the patches are gathered a block of rows (and, when the taps times
// channels are many, of taps) at a time and multiplied with the packed
// matmul, with no transposition of in or dy.
func KernelGradFloat32(out, in, dy []float32, p *Params) error {
	pl, err := newPlan(p)
	if err != nil {
		return err
	}
	if pl.g != 1 {
		return fmt.Errorf("conv: kernel gradient of a grouped convolution (%d groups) is not supported", pl.g)
	}
	// dy has the forward output's size, out the kernel's.
	if err := pl.sizes(p, len(dy), len(in), len(out)); err != nil {
		return err
	}
	if pl.k == 0 || pl.o == 0 {
		return nil
	}
	if pl.m == 0 {
		clear(out)
		return nil
	}
	if pl.pointwise(p) {
		// The patches are the input's rows.
		gemm.MatMulFloat32(1, pl.k, pl.o, pl.m, in, true, dy, false, out)
		return nil
	}

	tapsPerBlock := max(1, min(pl.taps, kgPatchBudget/(pl.cg*kgMinRows)))
	nkb := (pl.taps + tapsPerBlock - 1) / tapsPerBlock
	tapsPerBlock = (pl.taps + nkb - 1) / nkb
	kbMax := tapsPerBlock * pl.cg
	rowsPerBlock := min(pl.m, max(kgMinRows/4, kgPatchBudget/kbMax))

	patchBuf := getBuf(rowsPerBlock * kbMax)
	defer bufPool.Put(patchBuf)
	var tmp []float32
	if rowsPerBlock < pl.m {
		tb := getBuf(kbMax * pl.o)
		defer bufPool.Put(tb)
		tmp = *tb
	}
	threads := runtime.GOMAXPROCS(0)
	for t0 := 0; t0 < pl.taps; t0 += tapsPerBlock {
		t1 := min(pl.taps, t0+tapsPerBlock)
		kb := (t1 - t0) * pl.cg
		dst := out[t0*pl.cg*pl.o : t1*pl.cg*pl.o]
		for m0 := 0; m0 < pl.m; m0 += rowsPerBlock {
			m1 := min(pl.m, m0+rowsPerBlock)
			rows := m1 - m0
			a := (*patchBuf)[:rows*kb]
			pl.build(a, in, 0, m0, m1, t0, t1, threads)
			d := dy[m0*pl.o : m1*pl.o]
			if m0 == 0 {
				gemm.MatMulFloat32(1, kb, pl.o, rows, a, true, d, false, dst)
				continue
			}
			c := tmp[:kb*pl.o]
			gemm.MatMulFloat32(1, kb, pl.o, rows, a, true, d, false, c)
			addTo(dst, c)
		}
	}
	return nil
}
