package cpu

import (
	"fmt"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"

	"github.com/peco-dev/peco/cpu/elem"
	"github.com/peco-dev/peco/cpu/layout"
	"github.com/peco-dev/peco/cpu/parallel"
)

// Element-wise fusion. A chain of float32 element-wise ops (a GELU, an
// optimizer update, a normalisation's arithmetic) would otherwise read and
// write a full-size tensor per op. At compile time every such op whose
// result is used only by the next element-wise op is folded into that op's
// fused kernel: the fused kernel walks the output in blocks that fit in the
// L1/L2 cache and runs the whole expression tree block by block, with the
// intermediate values living only in per-goroutine block buffers. A
// reduction over trailing axes (LayerNorm's and softmax's sums, their
// gradients' sums) whose input is such a tree computes the tree's rows
// block by block and reduces them, so the tree's full-size result is never
// written either.

// fuseBlock is the number of elements a fused kernel computes at a time.
const fuseBlock = 2048

// minFuseSize is the smallest output worth fusing: below it the op-by-op
// path is already cache-resident.
const minFuseSize = 4096

// fusible reports whether n is a float32 element-wise op a fused kernel
// can run: a unary op, or a binary op whose operands have n's shape or are
// scalars.
func fusible(n *node) bool {
	if n.run == nil || n.alias || n.shape.DType != dtypes.Float32 || n.shape.Size() < minFuseSize {
		return false
	}
	if op, ok := unaryOps[n.op]; ok {
		_, err := elem.UnaryBlockKernelFloat32(op)
		return err == nil && n.inputs[0].shape.DType == dtypes.Float32
	}
	if op, ok := binaryOps[n.op]; ok {
		if _, err := elem.BinaryBlockKernelFloat32(op); err != nil {
			return false
		}
		for _, in := range n.inputs {
			if in.shape.DType != dtypes.Float32 || (in.shape.Size() != 1 && !in.shape.Equal(n.shape)) {
				return false
			}
		}
		return true
	}
	return false
}

// minBroadcastRun is the shortest contiguous run (see
// layout.BroadcastBlocks.Run) of a broadcast a fused kernel reads by block;
// broadcasts with shorter runs (GroupNorm's statistics) are materialized.
const minBroadcastRun = 16

// broadcastLeaf returns how a fused kernel over shape reads the broadcast
// in block by block from its input, or nil if in is not a float32
// BroadcastInDim of shape worth reading that way.
func broadcastLeaf(in *node, shape shapes.Shape) *layout.BroadcastBlocks {
	if in.op != compute.OpTypeBroadcastInDim || in.run == nil || in.alias || in.broadcastAxes == nil ||
		in.shape.DType != dtypes.Float32 || !in.shape.Equal(shape) || in.inputs[0].shape.DType != dtypes.Float32 {
		return nil
	}
	b, err := layout.NewBroadcastBlocks(dimsOf(in.shape), dimsOf(in.inputs[0].shape), in.broadcastAxes)
	if err != nil || b.Run() < minBroadcastRun {
		return nil
	}
	return b
}

// rowReduction returns, for a float32 Sum, Max or Min over trailing axes
// (at least two rows of elem.MinRowReduce to fuseBlock elements), the row
// length and the function that reduces a row; ok is false for any other
// node.
func rowReduction(r *node) (rowLen int, row func([]float32) float32, ok bool) {
	eop, isReduce := reduceOps[r.op]
	if !isReduce || r.run == nil || r.reduceAxes == nil || r.shape.DType != dtypes.Float32 || r.inputs[0].shape.DType != dtypes.Float32 {
		return 0, nil, false
	}
	dims := dimsOf(r.inputs[0].shape)
	reduced := make([]bool, len(dims))
	for _, a := range r.reduceAxes {
		reduced[a] = true
	}
	rows, rowLen, inRow := 1, 1, false
	for i, d := range dims {
		switch {
		case d == 1:
		case reduced[i]:
			inRow = true
			rowLen *= d
		case inRow: // a kept axis after a reduced one
			return 0, nil, false
		default:
			rows *= d
		}
	}
	if rows < 2 || rowLen < elem.MinRowReduce || rowLen > fuseBlock {
		return 0, nil, false
	}
	row, err := elem.RowReducerFloat32(eop)
	if err != nil {
		return 0, nil, false
	}
	return rowLen, row, true
}

// fuseElementwise folds single-use element-wise producers into their
// element-wise consumers, has fused kernels read the broadcasts among their
// operands block by block from the broadcasts' inputs, and folds a fused
// tree whose only reader is a row reduction (see rowReduction) into the
// reduction. It returns the nodes that still run, in order; fused roots get
// a new kernel and, as inputs, the leaves of their tree. A broadcast every
// reader of which reads it by block is no longer computed.
func fuseElementwise(order []*node, outputs []*node) []*node {
	consumers := map[*node]int{}
	reader := map[*node]*node{} // a reader of each node: its only one where consumers is 1
	for _, n := range order {
		for _, in := range n.inputs {
			consumers[in]++
			reader[in] = n
		}
	}
	for _, o := range outputs {
		consumers[o] += 2 // an output is never folded away
	}
	can := map[*node]bool{}
	for _, n := range order {
		can[n] = fusible(n)
	}
	internal := map[*node]bool{}
	// absorbable: an input folded into its consumer's kernel.
	absorbable := func(in *node) bool { return can[in] && consumers[in] == 1 }
	for i := len(order) - 1; i >= 0; i-- { // consumers before producers
		n := order[i]
		if internal[n] || !can[n] {
			continue
		}
		var mark func(x *node)
		size := 0
		mark = func(x *node) {
			size++
			for _, in := range x.inputs {
				if absorbable(in) && in.shape.Equal(n.shape) {
					internal[in] = true
					mark(in)
				} else if broadcastLeaf(in, n.shape) != nil {
					size++
				}
			}
		}
		mark(n)
		if r := reader[n]; consumers[n] == 1 && len(r.inputs) == 1 {
			if rowLen, row, ok := rowReduction(r); ok {
				internal[n] = true
				installRowReduction(r, compileFused(n, absorbable), rowLen, row)
				continue
			}
		}
		if size > 1 {
			installFused(n, compileFused(n, absorbable))
		}
	}
	var kept []*node
	for _, n := range order {
		if !internal[n] {
			kept = append(kept, n)
		}
	}
	// Drop the broadcasts left without readers (outputs are kept).
	read := map[*node]bool{}
	for _, o := range outputs {
		read[o] = true
	}
	for _, n := range kept {
		for _, in := range n.inputs {
			read[in] = true
		}
	}
	live := kept[:0]
	for _, n := range kept {
		if n.op != compute.OpTypeBroadcastInDim || read[n] {
			live = append(live, n)
		}
	}
	return live
}

// fusedStep is one op of a fused program.
type fusedStep struct {
	unary  func(o, x []float32)
	binary elem.BinaryBlockFloat32
	// args: >= 0 is a temporary (the step of that index), < 0 is leaf -1-arg.
	args [2]int
}

// fusedLeaf is how a fused program reads one of its inputs for a block.
type fusedLeaf struct {
	scalar    bool                    // a single element, for every position
	broadcast *layout.BroadcastBlocks // read by block from a broadcast's input
	buf       int                     // broadcast: its block buffer's index in the scratch space
}

// fusedProgram evaluates a tree of float32 element-wise ops block by block.
type fusedProgram struct {
	steps     []fusedStep // in evaluation order; the last one is the root
	leaves    []*node     // the tree's inputs, in the order of the kernel's inputs
	leafKinds []fusedLeaf
	names     []string // the ops run, for profiles and errors
	nBufs     int      // block buffers needed: one per step and per broadcast leaf
}

// compileFused compiles the tree of root and the absorbable element-wise
// ops under it; root itself is not changed.
func compileFused(root *node, absorbable func(*node) bool) *fusedProgram {
	p := &fusedProgram{}
	addLeaf := func(in *node) int {
		k := fusedLeaf{}
		if b := broadcastLeaf(in, root.shape); b != nil {
			p.names = append(p.names, in.op.String())
			in = in.inputs[0]
			k.broadcast = b
		}
		k.scalar = in.shape.Size() == 1
		if k.scalar {
			k.broadcast = nil
		}
		p.leaves = append(p.leaves, in)
		p.leafKinds = append(p.leafKinds, k)
		return -len(p.leaves)
	}
	var emit func(x *node) int
	emit = func(x *node) int {
		st := fusedStep{}
		for j, in := range x.inputs {
			if absorbable(in) && in.shape.Equal(root.shape) && in != root {
				st.args[j] = emit(in)
			} else {
				st.args[j] = addLeaf(in)
			}
		}
		if op, ok := unaryOps[x.op]; ok {
			st.unary, _ = elem.UnaryBlockKernelFloat32(op)
		} else {
			st.binary, _ = elem.BinaryBlockKernelFloat32(binaryOps[x.op])
		}
		p.names = append(p.names, x.op.String())
		p.steps = append(p.steps, st)
		return len(p.steps) - 1
	}
	emit(root)
	p.nBufs = len(p.steps)
	for i := range p.leafKinds {
		if p.leafKinds[i].broadcast != nil {
			p.leafKinds[i].buf = p.nBufs
			p.nBufs++
		}
	}
	return p
}

// values checks a kernel's inputs, one per leaf.
func (p *fusedProgram) values(ins []any) ([][]float32, error) {
	vals := make([][]float32, len(ins))
	for i, in := range ins {
		v, ok := in.([]float32)
		if !ok {
			return nil, fmt.Errorf("fused %v: input %d is %T", p.names, i, in)
		}
		vals[i] = v
	}
	return vals, nil
}

// eval computes the elements [lo, hi) of the tree (at most fuseBlock) into
// dst, with buf (p.nBufs blocks) for the temporaries.
func (p *fusedProgram) eval(buf []float32, vals [][]float32, lo, hi int, dst []float32) {
	n := hi - lo
	for l, k := range p.leafKinds {
		if k.broadcast != nil {
			layout.ReadBroadcast(k.broadcast, buf[k.buf*fuseBlock:k.buf*fuseBlock+n], vals[l], lo)
		}
	}
	arg := func(a int) ([]float32, float32, bool) {
		if a >= 0 {
			return buf[a*fuseBlock : a*fuseBlock+n], 0, false
		}
		l := -1 - a
		switch k := p.leafKinds[l]; {
		case k.scalar:
			return nil, vals[l][0], true
		case k.broadcast != nil:
			return buf[k.buf*fuseBlock : k.buf*fuseBlock+n], 0, false
		}
		return vals[l][lo:hi], 0, false
	}
	for si, st := range p.steps {
		out := buf[si*fuseBlock : si*fuseBlock+n]
		if si == len(p.steps)-1 {
			out = dst
		}
		if st.unary != nil {
			x, _, _ := arg(st.args[0])
			st.unary(out, x)
			continue
		}
		a, as, aScalar := arg(st.args[0])
		b, bs, bScalar := arg(st.args[1])
		switch {
		case !aScalar && !bScalar:
			st.binary.VV(out, a, b)
		case !aScalar:
			st.binary.VS(out, a, bs)
		case !bScalar:
			st.binary.SV(out, as, b)
		default:
			var one [1]float32
			st.binary.VV(one[:], []float32{as}, []float32{bs})
			for i := range out {
				out[i] = one[0]
			}
		}
	}
}

// runBlocks runs fn(buf, i) for the blocks i in [0, blocks), the parts of
// one parallel.Do, each with a buf of bufLen elements from pool.
func runBlocks(blocks, bufLen int, pool *sync.Pool, fn func(buf []float32, i int)) {
	parallel.Do(blocks, func(i int) {
		bufp, _ := pool.Get().(*[]float32)
		if bufp == nil || len(*bufp) < bufLen {
			b := make([]float32, bufLen)
			bufp = &b
		}
		fn(*bufp, i)
		pool.Put(bufp)
	})
}

// installFused makes root run its fused program: the output is computed
// block by block.
func installFused(root *node, p *fusedProgram) {
	root.inputs = p.leaves
	root.fusedOps = p.names
	total := root.shape.Size()
	var pool sync.Pool
	root.run = func(out any, ins []any) error {
		o := out.([]float32)
		vals, err := p.values(ins)
		if err != nil {
			return err
		}
		runBlocks((total+fuseBlock-1)/fuseBlock, p.nBufs*fuseBlock, &pool, func(buf []float32, bi int) {
			lo := bi * fuseBlock
			hi := min(lo+fuseBlock, total)
			p.eval(buf, vals, lo, hi, o[lo:hi])
		})
		return nil
	}
}

// installRowReduction makes the reduction r compute its input with p, a
// block of whole rows (rowLen elements each) at a time, and reduce each row
// with row: the results of the unfused reduction, bit for bit.
func installRowReduction(r *node, p *fusedProgram, rowLen int, row func([]float32) float32) {
	r.inputs = p.leaves
	r.label = "Fused+" + r.op.String()
	rows := r.shape.Size()
	perBlock := fuseBlock / rowLen
	var pool sync.Pool
	r.run = func(out any, ins []any) error {
		o := out.([]float32)
		vals, err := p.values(ins)
		if err != nil {
			return err
		}
		runBlocks((rows+perBlock-1)/perBlock, (p.nBufs+1)*fuseBlock, &pool, func(buf []float32, bi int) {
			a0 := bi * perBlock
			a1 := min(a0+perBlock, rows)
			x := buf[p.nBufs*fuseBlock : p.nBufs*fuseBlock+(a1-a0)*rowLen]
			p.eval(buf, vals, a0*rowLen, a1*rowLen, x)
			for a := a0; a < a1; a++ {
				o[a] = row(x[(a-a0)*rowLen : (a-a0+1)*rowLen])
			}
		})
		return nil
	}
}
