package cpu

import (
	"sort"

	"github.com/gomlx/compute"
)

// Rematerialization. A training graph computes the forward pass, then the
// backward pass, which reads many forward values again: every value read
// there stays alive (in the arena) from the forward pass to its last
// backward reader. A GroupNorm + SiLU layer, for one, keeps five full-size
// values for its backward pass (x - mean, the normalised x, the affine
// output, its sigmoid and the SiLU output), though all five are a few
// element-wise ops away from the first. At compile time, before fusion,
// rematerialize recomputes such values where they are read late instead of
// keeping them: for each large element-wise value whose readers fall in two
// groups far apart (a forward use, a backward use), it clones the value's
// op just before the first late reader and has the late readers read the
// clone, provided each input the clone reads is alive there anyway (read at
// or after that point), small, a constant or a parameter, or itself
// recomputable the same way (a chain, up to rematMaxDepth ops). The
// original value then dies after its early readers; the clones are
// short-lived and, being element-wise, mostly fused into the backward
// kernels that read them. Recomputation repeats the same kernels on the
// same inputs, so the results are bitwise the same.

const (
	// rematMinSize is the fewest elements of a value worth recomputing.
	rematMinSize = 1 << 16
	// rematMinGap is the fewest nodes between two consecutive readers of a
	// value (or the value and its first reader) that makes the later readers
	// late.
	rematMinGap = 64
	// rematMaxDepth bounds the chain of ops recomputed for one value.
	rematMaxDepth = 8
	// rematSmallFraction: an input at most 1/rematSmallFraction of the
	// value's size (a mean, a per-channel scale) may be kept alive for the
	// clone.
	rematSmallFraction = 16
)

// rematOps are the ops rematerialize may clone: element-wise arithmetic of
// one or two operands that costs about a load and a store per element.
// Transcendental ops (Exp, Logistic, Erf, Tanh, Log) cost several times
// more and are kept instead (a recomputed sigmoid made the tokenizer step
// 6-8% slower for 3% of its memory).
var rematOps = map[compute.OpType]bool{
	compute.OpTypeAdd: true, compute.OpTypeSub: true, compute.OpTypeMul: true, compute.OpTypeDiv: true,
	compute.OpTypeMax: true, compute.OpTypeMin: true, compute.OpTypeNeg: true, compute.OpTypeAbs: true,
}

// recomputable reports whether n is an op rematerialize may clone: one of
// rematOps, or an alias (a reshape).
func recomputable(n *node) bool {
	if n.alias {
		return true
	}
	return n.run != nil && rematOps[n.op]
}

// rematerialize returns order with late reads of large element-wise values
// replaced by recomputations (see the comment above). order is a
// topological execution order; outputs are never cloned or removed.
func rematerialize(order []*node, outputs []*node, nextID int) []*node {
	pos := make(map[*node]int, len(order))
	for i, n := range order {
		pos[n] = i
	}
	isOutput := map[*node]bool{}
	for _, o := range outputs {
		isOutput[o] = true
	}
	// readers[n]: the nodes reading n, with the position each reads it at
	// (a clone reads at its late reader's position).
	type read struct {
		by  *node
		pos int
	}
	readers := map[*node][]read{}
	for _, n := range order {
		for _, x := range n.inputs {
			readers[x] = append(readers[x], read{n, pos[n]})
		}
	}
	// root follows aliases to the node owning the storage.
	root := func(n *node) *node {
		for n.alias {
			n = n.inputs[0]
		}
		return n
	}
	// lastRead is the last position the storage of n is read at, through
	// any alias of it.
	var lastRead func(n *node) int
	lastRead = func(n *node) int {
		last := -1
		for _, r := range readers[n] {
			if r.by.alias {
				last = max(last, lastRead(r.by))
			} else {
				last = max(last, r.pos)
			}
		}
		return last
	}

	type key struct {
		n *node
		p int
	}
	clones := map[key]*node{}
	before := map[*node][]*node{} // late reader -> clones to run just before it

	// cloneAt returns a node computing n's value just before the node at
	// position p (whose node is at), cloning n and, recursively, the inputs
	// that are not alive there; ok is false when some input can be neither
	// kept nor recomputed. size is the value being rematerialized.
	var cloneAt func(n *node, p int, at *node, size, depth int) (*node, bool)
	cloneAt = func(n *node, p int, at *node, size, depth int) (*node, bool) {
		if c, ok := clones[key{n, p}]; ok {
			return c, true
		}
		if depth > rematMaxDepth || !recomputable(n) || isOutput[n] {
			return nil, false
		}
		ins := make([]*node, len(n.inputs))
		for i, x := range n.inputs {
			r := root(x)
			switch {
			case r.op == compute.OpTypeParameter || r.op == compute.OpTypeConstant,
				r.shape.Size()*rematSmallFraction <= size,
				lastRead(r) >= p:
				ins[i] = x
			default:
				c, ok := cloneAt(x, p, at, size, depth+1)
				if !ok {
					return nil, false
				}
				ins[i] = c
			}
		}
		c := new(node)
		*c = *n
		c.id = nextID
		nextID++
		c.inputs = ins
		for _, x := range ins {
			readers[x] = append(readers[x], read{c, p})
		}
		clones[key{n, p}] = c
		before[at] = append(before[at], c)
		return c, true
	}

	for _, v := range order {
		if v.alias || !recomputable(v) || isOutput[v] || v.shape.Size() < rematMinSize {
			continue
		}
		rs := readers[v]
		if len(rs) == 0 {
			continue
		}
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].pos < rs[j].pos })
		// The largest gap between consecutive reads splits early from late.
		gap, split, prev := 0, 0, pos[v]
		for i, r := range rs {
			if d := r.pos - prev; d > gap {
				gap, split = d, i
			}
			prev = r.pos
		}
		if gap < rematMinGap {
			continue
		}
		late := rs[split:]
		at := late[0].by
		p := late[0].pos
		if at.alias || clones[key{v, p}] != nil {
			continue
		}
		// Try the clone on a copy of the bookkeeping: a failed attempt must
		// leave no half-made clones behind.
		savedReaders := len(before[at])
		c, ok := cloneAt(v, p, at, v.shape.Size(), 0)
		if !ok {
			for _, dead := range before[at][savedReaders:] {
				delete(clones, key{dead, p})
			}
			// Undo the readers the half-made clones registered.
			for _, dead := range before[at][savedReaders:] {
				for _, x := range dead.inputs {
					rr := readers[x]
					for i := len(rr) - 1; i >= 0; i-- {
						if rr[i].by == dead {
							rr = append(rr[:i], rr[i+1:]...)
						}
					}
					readers[x] = rr
				}
			}
			before[at] = before[at][:savedReaders]
			continue
		}
		// The late readers read the clone.
		for _, r := range late {
			for i, x := range r.by.inputs {
				if x == v {
					r.by.inputs[i] = c
				}
			}
			readers[c] = append(readers[c], r)
		}
		readers[v] = rs[:split]
	}
	if len(before) == 0 {
		return order
	}

	// Splice the clones in and drop the originals nobody reads any more.
	out := make([]*node, 0, len(order)+len(clones))
	for _, n := range order {
		out = append(out, before[n]...)
		out = append(out, n)
	}
	return dropDead(out, outputs)
}

// dropDead removes the nodes of order that no output depends on.
func dropDead(order []*node, outputs []*node) []*node {
	live := map[*node]bool{}
	for _, o := range outputs {
		live[o] = true
	}
	for i := len(order) - 1; i >= 0; i-- {
		if n := order[i]; live[n] {
			for _, x := range n.inputs {
				live[x] = true
			}
		}
	}
	kept := order[:0]
	for _, n := range order {
		if live[n] {
			kept = append(kept, n)
		}
	}
	return kept
}
