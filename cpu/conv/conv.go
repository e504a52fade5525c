// Package conv implements the general convolution (XLA's ConvGeneral: any
// number of spatial axes, strides, padding, input and kernel dilation,
// channel and batch grouping) for float32 on a canonical layout, as an
// implicit im2col: the patches of a block of output positions (and of a
// range of kernel taps) are gathered into a cache-sized scratch buffer and
// multiplied by the matching rows of the kernel with gemm.MatMulFloat32, so
// the full im2col matrix is never materialized.
//
// Canonical layout (the caller transposes to it):
//
//	input  [Batch, InSpatial..., Channels]
//	kernel [KernelSpatial..., Channels/ChannelGroups, OutChannels]
//	output [Batch/BatchGroups, OutSpatial..., OutChannels]
//
// Semantics: with Bo = Batch/BatchGroups and G groups (ChannelGroups or
// BatchGroups, at most one of them above 1), output channel co belongs to
// group g = co / (OutChannels/G), and
//
//	out[b, o, co] = sum over taps t and channels c < Cg of
//	    in[b + g*Bo (batch groups only), pos(o, t), c + g*Cg (channel groups only)] * kernel[t, c, co]
//
// where, per spatial axis, the position in the dilated, padded input is
// p = o*Stride + t*KernelDilation - PadLow, the element is zero unless
// 0 <= p < (InSpatial-1)*InputDilation+1 and p is a multiple of
// InputDilation, and then it is input element p/InputDilation.
package conv

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/peco-dev/peco/cpu/gemm"
	"github.com/peco-dev/peco/cpu/parallel"
)

// Params describes one convolution in the canonical layout. Nil Strides,
// PadLow, InputDilations or KernelDilations mean 1 (0 for PadLow) on every
// axis; group counts below 1 mean 1.
type Params struct {
	Batch, Channels int
	InSpatial       []int
	KernelSpatial   []int
	OutChannels     int
	OutSpatial      []int

	Strides         []int
	PadLow          []int // padding before each spatial axis (may be negative)
	InputDilations  []int
	KernelDilations []int

	ChannelGroups, BatchGroups int
}

// Block sizes: a scratch block of patches holds about patchBudget floats
// (1 MiB), with at least minBlockRows rows when the kernel depth allows.
const (
	patchBudget  = 1 << 20
	minBlockRows = 256
	// minParallelBuild is the number of floats of a block above which its
	// patches are gathered by several goroutines.
	minParallelBuild = 1 << 15
)

func at(s []int, i, def int) int {
	if s == nil {
		return def
	}
	return s[i]
}

func prod(s []int) int {
	p := 1
	for _, d := range s {
		p *= d
	}
	return p
}

// plan is a validated Params with derived sizes.
type plan struct {
	n                     int // spatial rank
	g, cgc, bgc           int
	cg, og, bo            int
	o                     int
	taps, positions, m, k int
	outSpatial            []int
	inStrides             []int // element strides of the input's spatial axes
	inBatchStride         int
	dilatedIn             []int // (in-1)*inputDilation+1 per axis
	stride, idil          []int
	tapOff                []int // [taps][n]: t_d*kernelDilation_d - padLow_d
}

func newPlan(p *Params) (*plan, error) {
	n := len(p.InSpatial)
	if len(p.KernelSpatial) != n || len(p.OutSpatial) != n {
		return nil, fmt.Errorf("conv: spatial ranks differ: input %v, kernel %v, output %v", p.InSpatial, p.KernelSpatial, p.OutSpatial)
	}
	for _, s := range [][]int{p.Strides, p.PadLow, p.InputDilations, p.KernelDilations} {
		if s != nil && len(s) != n {
			return nil, fmt.Errorf("conv: %d spatial axes but a parameter has %d values", n, len(s))
		}
	}
	pl := &plan{n: n, cgc: max(p.ChannelGroups, 1), bgc: max(p.BatchGroups, 1), o: p.OutChannels}
	if pl.cgc > 1 && pl.bgc > 1 {
		return nil, fmt.Errorf("conv: channel groups %d and batch groups %d both above 1", pl.cgc, pl.bgc)
	}
	pl.g = max(pl.cgc, pl.bgc)
	if p.Channels%pl.cgc != 0 || p.OutChannels%pl.g != 0 || p.Batch%pl.bgc != 0 {
		return nil, fmt.Errorf("conv: channels %d, output channels %d or batch %d not divisible by the group count %d",
			p.Channels, p.OutChannels, p.Batch, pl.g)
	}
	pl.cg, pl.og, pl.bo = p.Channels/pl.cgc, p.OutChannels/pl.g, p.Batch/pl.bgc
	pl.taps, pl.positions = prod(p.KernelSpatial), prod(p.OutSpatial)
	pl.m, pl.k = pl.bo*pl.positions, pl.taps*pl.cg
	pl.outSpatial = p.OutSpatial
	pl.inStrides = make([]int, n)
	st := p.Channels
	for d := n - 1; d >= 0; d-- {
		pl.inStrides[d] = st
		st *= p.InSpatial[d]
	}
	pl.inBatchStride = st
	pl.dilatedIn, pl.stride, pl.idil = make([]int, n), make([]int, n), make([]int, n)
	for d := range n {
		pl.stride[d], pl.idil[d] = at(p.Strides, d, 1), at(p.InputDilations, d, 1)
		if pl.stride[d] < 1 || pl.idil[d] < 1 || at(p.KernelDilations, d, 1) < 1 {
			return nil, fmt.Errorf("conv: strides and dilations must be >= 1")
		}
		if p.InSpatial[d] > 0 {
			pl.dilatedIn[d] = (p.InSpatial[d]-1)*pl.idil[d] + 1
		}
	}
	pl.tapOff = make([]int, pl.taps*n)
	idx := make([]int, n)
	for t := range pl.taps {
		for d := range n {
			pl.tapOff[t*n+d] = idx[d]*at(p.KernelDilations, d, 1) - at(p.PadLow, d, 0)
		}
		for d := n - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < p.KernelSpatial[d] {
				break
			}
			idx[d] = 0
		}
	}
	return pl, nil
}

// sizes checks the flat slices' lengths.
func (pl *plan) sizes(p *Params, out, in, kernel int) error {
	wantIn := p.Batch * prod(p.InSpatial) * p.Channels
	wantK := pl.taps * pl.cg * p.OutChannels
	wantOut := pl.m * p.OutChannels
	if in != wantIn || kernel != wantK || out != wantOut {
		return fmt.Errorf("conv: sizes (out %d, in %d, kernel %d), want (%d, %d, %d)", out, in, kernel, wantOut, wantIn, wantK)
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { return new([]float32) }}

func getBuf(n int) *[]float32 {
	b := bufPool.Get().(*[]float32)
	if cap(*b) < n {
		*b = make([]float32, n)
	}
	*b = (*b)[:n]
	return b
}

// Float32 computes the convolution described by p (see the package
// documentation) into out, which is overwritten.
func Float32(out, in, kernel []float32, p *Params) error {
	pl, err := newPlan(p)
	if err != nil {
		return err
	}
	if err := pl.sizes(p, len(out), len(in), len(kernel)); err != nil {
		return err
	}
	if pl.m == 0 || pl.o == 0 {
		return nil
	}
	if pl.k == 0 {
		clear(out)
		return nil
	}
	if pl.g == 1 && pl.pointwise(p) {
		// A 1x1 convolution with unit strides, no padding or dilation is a
		// plain matmul of the input's rows.
		gemm.MatMulFloat32(1, pl.m, pl.o, pl.k, in, false, kernel, false, out)
		return nil
	}

	// Block sizes: tapsPerBlock taps (all of them when they fit) by
	// rowsPerBlock output positions.
	rowsWanted := min(pl.m, minBlockRows)
	tapsPerBlock := max(1, min(pl.taps, patchBudget/(pl.cg*rowsWanted)))
	nkb := (pl.taps + tapsPerBlock - 1) / tapsPerBlock
	tapsPerBlock = (pl.taps + nkb - 1) / nkb // even out the k blocks
	kbMax := tapsPerBlock * pl.cg
	rowsPerBlock := max(1, min(pl.m, patchBudget/kbMax))
	if rowsPerBlock > 6 && rowsPerBlock < pl.m {
		rowsPerBlock -= rowsPerBlock % 6
	}

	patchBuf := getBuf(rowsPerBlock * kbMax)
	defer bufPool.Put(patchBuf)
	var tmp []float32
	if pl.g > 1 || nkb > 1 {
		tb := getBuf(rowsPerBlock * pl.og)
		defer bufPool.Put(tb)
		tmp = *tb
	}
	var wg []float32
	if pl.g > 1 {
		wb := getBuf(pl.k * pl.og)
		defer bufPool.Put(wb)
		wg = *wb
	}

	threads := runtime.GOMAXPROCS(0)
	for g := range pl.g {
		w := kernel
		if pl.g > 1 {
			// The group's columns of the kernel, as a contiguous [k, og] matrix.
			for r := range pl.k {
				copy(wg[r*pl.og:(r+1)*pl.og], kernel[r*pl.o+g*pl.og:])
			}
			w = wg
		}
		for m0 := 0; m0 < pl.m; m0 += rowsPerBlock {
			m1 := min(pl.m, m0+rowsPerBlock)
			rows := m1 - m0
			for t0 := 0; t0 < pl.taps; t0 += tapsPerBlock {
				t1 := min(pl.taps, t0+tapsPerBlock)
				kb := (t1 - t0) * pl.cg
				a := (*patchBuf)[:rows*kb]
				pl.build(a, in, g, m0, m1, t0, t1, threads)
				wb := w[t0*pl.cg*pl.og : t1*pl.cg*pl.og]
				if pl.g == 1 && t0 == 0 {
					gemm.MatMulFloat32(1, rows, pl.og, kb, a, false, wb, false, out[m0*pl.o:m1*pl.o])
					continue
				}
				c := tmp[:rows*pl.og]
				gemm.MatMulFloat32(1, rows, pl.og, kb, a, false, wb, false, c)
				if pl.g == 1 {
					addTo(out[m0*pl.o:m1*pl.o], c)
					continue
				}
				for i := range rows {
					dst := out[(m0+i)*pl.o+g*pl.og : (m0+i)*pl.o+(g+1)*pl.og]
					src := c[i*pl.og : (i+1)*pl.og]
					if t0 == 0 {
						copy(dst, src)
					} else {
						addTo(dst, src)
					}
				}
			}
		}
	}
	return nil
}

// pointwise reports whether the convolution is a plain matmul of the
// input's rows by the kernel.
func (pl *plan) pointwise(p *Params) bool {
	if pl.taps != 1 {
		return false
	}
	for d := range pl.n {
		if pl.stride[d] != 1 || pl.idil[d] != 1 || at(p.PadLow, d, 0) != 0 || p.OutSpatial[d] != p.InSpatial[d] {
			return false
		}
	}
	return true
}

func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}

// build gathers the patches of output rows [m0, m1) and taps [t0, t1) of
// group g into a ([m1-m0] x [(t1-t0)*cg], row-major), with several
// goroutines when the block is large.
func (pl *plan) build(a, in []float32, g, m0, m1, t0, t1, threads int) {
	kb := (t1 - t0) * pl.cg
	rows := m1 - m0
	parts := min(threads, rows)
	if parts <= 1 || rows*kb < minParallelBuild {
		pl.buildRows(a, in, g, m0, m1, t0, t1)
		return
	}
	parallel.Do(parts, func(i int) {
		r0, r1 := m0+rows*i/parts, m0+rows*(i+1)/parts
		pl.buildRows(a[(r0-m0)*kb:(r1-m0)*kb], in, g, r0, r1, t0, t1)
	})
}

func (pl *plan) buildRows(a, in []float32, g, m0, m1, t0, t1 int) {
	n, cg := pl.n, pl.cg
	chanOff := 0
	if pl.cgc > 1 {
		chanOff = g * cg
	}
	batchOff := 0
	if pl.bgc > 1 {
		batchOff = g * pl.bo
	}
	// o is the output row's spatial multi-index; base[d] = o[d]*stride[d].
	o := make([]int, n)
	base := make([]int, n)
	b := m0 / pl.positions
	rem := m0 % pl.positions
	for d := n - 1; d >= 0; d-- {
		o[d] = rem % pl.outSpatial[d]
		rem /= pl.outSpatial[d]
	}
	dst := 0
	for range m1 - m0 {
		for d := range n {
			base[d] = o[d] * pl.stride[d]
		}
		rowBase := (b+batchOff)*pl.inBatchStride + chanOff
	taps:
		for t := t0; t < t1; t++ {
			seg := a[dst : dst+cg]
			dst += cg
			src := rowBase
			off := pl.tapOff[t*n : t*n+n]
			for d := range n {
				p := base[d] + off[d]
				if p < 0 || p >= pl.dilatedIn[d] {
					clear(seg)
					continue taps
				}
				if id := pl.idil[d]; id > 1 {
					if p%id != 0 {
						clear(seg)
						continue taps
					}
					p /= id
				}
				src += p * pl.inStrides[d]
			}
			copy(seg, in[src:src+cg])
		}
		// Next output position.
		carry := true
		for d := n - 1; d >= 0 && carry; d-- {
			if o[d]++; o[d] < pl.outSpatial[d] {
				carry = false
			} else {
				o[d] = 0
			}
		}
		if carry {
			b++
		}
	}
}
