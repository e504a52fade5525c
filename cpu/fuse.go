package cpu

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

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
// intermediate values living only in per-goroutine block buffers.

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

// fuseElementwise folds single-use element-wise producers into their
// element-wise consumers, and has fused kernels read the broadcasts among
// their operands block by block from the broadcasts' inputs. It returns
// the nodes that still run, in order; fused roots get a new kernel and, as
// inputs, the leaves of their tree. A broadcast every reader of which
// reads it by block is no longer computed.
func fuseElementwise(order []*node, outputs []*node) []*node {
	consumers := map[*node]int{}
	for _, n := range order {
		for _, in := range n.inputs {
			consumers[in]++
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
		if size > 1 {
			buildFused(n, absorbable)
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

// fusedLeaf is how a fused kernel reads one of its inputs for a block.
type fusedLeaf struct {
	scalar    bool                    // a single element, for every position
	broadcast *layout.BroadcastBlocks // read by block from a broadcast's input
	buf       int                     // broadcast: its block buffer's index in the scratch space
}

// buildFused replaces root's kernel by one that evaluates its tree of
// absorbed element-wise ops block by block.
func buildFused(root *node, absorbable func(*node) bool) {
	var steps []fusedStep
	var leaves []*node
	var leafKinds []fusedLeaf
	var names []string
	addLeaf := func(in *node) int {
		k := fusedLeaf{}
		if b := broadcastLeaf(in, root.shape); b != nil {
			names = append(names, in.op.String())
			in = in.inputs[0]
			k.broadcast = b
		}
		k.scalar = in.shape.Size() == 1
		if k.scalar {
			k.broadcast = nil
		}
		leaves = append(leaves, in)
		leafKinds = append(leafKinds, k)
		return -len(leaves)
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
		names = append(names, x.op.String())
		steps = append(steps, st)
		return len(steps) - 1
	}
	emit(root)
	nBufs := len(steps)
	for i := range leafKinds {
		if leafKinds[i].broadcast != nil {
			leafKinds[i].buf = nBufs
			nBufs++
		}
	}
	root.inputs = leaves
	root.fusedOps = names
	total := root.shape.Size()
	scratch := sync.Pool{New: func() any {
		b := make([]float32, nBufs*fuseBlock)
		return &b
	}}
	root.run = func(out any, ins []any) error {
		o := out.([]float32)
		vals := make([][]float32, len(ins))
		for i, in := range ins {
			v, ok := in.([]float32)
			if !ok {
				return fmt.Errorf("fused %v: input %d is %T", names, i, in)
			}
			vals[i] = v
		}
		blocks := (total + fuseBlock - 1) / fuseBlock
		workers := min(runtime.GOMAXPROCS(0), blocks)
		var nextBlock atomic.Int64 // blocks are handed out in order, one at a time
		work := func() {
			bufp := scratch.Get().(*[]float32)
			buf := *bufp
			for {
				bi := int(nextBlock.Add(1) - 1)
				if bi >= blocks {
					break
				}
				lo := bi * fuseBlock
				hi := min(lo+fuseBlock, total)
				n := hi - lo
				for l, k := range leafKinds {
					if k.broadcast != nil {
						layout.ReadBroadcast(k.broadcast, buf[k.buf*fuseBlock:k.buf*fuseBlock+n], vals[l], lo)
					}
				}
				for si, st := range steps {
					dst := buf[si*fuseBlock : si*fuseBlock+n]
					if si == len(steps)-1 {
						dst = o[lo:hi]
					}
					arg := func(a int) ([]float32, float32, bool) {
						if a >= 0 {
							return buf[a*fuseBlock : a*fuseBlock+n], 0, false
						}
						l := -1 - a
						switch k := leafKinds[l]; {
						case k.scalar:
							return nil, vals[l][0], true
						case k.broadcast != nil:
							return buf[k.buf*fuseBlock : k.buf*fuseBlock+n], 0, false
						}
						return vals[l][lo:hi], 0, false
					}
					if st.unary != nil {
						x, _, _ := arg(st.args[0])
						st.unary(dst, x)
						continue
					}
					a, as, aScalar := arg(st.args[0])
					b, bs, bScalar := arg(st.args[1])
					switch {
					case !aScalar && !bScalar:
						st.binary.VV(dst, a, b)
					case !aScalar:
						st.binary.VS(dst, a, bs)
					case !bScalar:
						st.binary.SV(dst, as, b)
					default:
						var one [1]float32
						st.binary.VV(one[:], []float32{as}, []float32{bs})
						for i := range dst {
							dst[i] = one[0]
						}
					}
				}
			}
			scratch.Put(bufp)
		}
		parallel.Do(workers, func(int) { work() })
		return nil
	}
}
