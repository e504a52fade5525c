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
			if r.by.alias && len(r.by.inputs) == 1 {
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

	// usesOf lists the reads of n's value by non-alias nodes, following
	// aliases: a forward reshape read by the backward pass is a late read
	// of n. via is the alias chain from n to the reader.
	type use struct {
		by  *node
		via []*node
		pos int
	}
	var usesOf func(n *node, via []*node) []use
	usesOf = func(n *node, via []*node) []use {
		var out []use
		for _, r := range readers[n] {
			if r.by.alias && len(r.by.inputs) == 1 {
				out = append(out, usesOf(r.by, append(via[:len(via):len(via)], r.by))...)
			} else {
				out = append(out, use{r.by, via, r.pos})
			}
		}
		return out
	}
	dropReader := func(x, by *node) {
		rr := readers[x]
		for i := len(rr) - 1; i >= 0; i-- {
			if rr[i].by == by {
				rr = append(rr[:i], rr[i+1:]...)
			}
		}
		readers[x] = rr
	}

	for _, v := range order {
		if v.alias || !recomputable(v) || isOutput[v] || v.shape.Size() < rematMinSize {
			continue
		}
		us := usesOf(v, nil)
		if len(us) == 0 {
			continue
		}
		sort.SliceStable(us, func(i, j int) bool { return us[i].pos < us[j].pos })
		// The largest gap between consecutive reads splits early from late.
		gap, split, prev := 0, 0, pos[v]
		for i, u := range us {
			if d := u.pos - prev; d > gap {
				gap, split = d, i
			}
			prev = u.pos
		}
		if gap < rematMinGap {
			continue
		}
		late := us[split:]
		at, p := late[0].by, late[0].pos
		if clones[key{v, p}] != nil {
			continue
		}
		// A failed attempt must leave no half-made clones behind: the clones
		// made are the tail of before[at], the memo entries those of keys.
		made := len(before[at])
		keysBefore := len(clones)
		c, ok := cloneAt(v, p, at, v.shape.Size(), 0)
		if !ok {
			dead := map[*node]bool{}
			for _, d := range before[at][made:] {
				dead[d] = true
				for _, x := range d.inputs {
					dropReader(x, d)
				}
			}
			for k, cl := range clones {
				if dead[cl] {
					delete(clones, k)
				}
			}
			if len(clones) != keysBefore {
				panic("cpu: rematerialize lost track of its clones")
			}
			before[at] = before[at][:made]
			continue
		}
		// The late readers read the clone, through clones of the aliases
		// they read it by.
		for _, u := range late {
			src, orig := c, v
			for _, a := range u.via {
				k := key{a, p}
				ac, ok := clones[k]
				if !ok {
					ac = new(node)
					*ac = *a
					ac.id = nextID
					nextID++
					ac.inputs = []*node{src}
					readers[src] = append(readers[src], read{ac, p})
					clones[k] = ac
					before[at] = append(before[at], ac)
				}
				src, orig = ac, a
			}
			replaced := false
			for i, x := range u.by.inputs {
				if x == orig {
					u.by.inputs[i] = src
					replaced = true
				}
			}
			if replaced {
				dropReader(orig, u.by)
				readers[src] = append(readers[src], read{u.by, u.pos})
			}
		}
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
