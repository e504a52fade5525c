package cpu

import (
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

// Executable runs a compiled graph. Intermediate values live in an arena
// planned at compile time (see planSlots): values alive at different times
// share memory whatever their sizes, so the arena is close to the largest
// set of values alive at one time. The arena is kept between executions;
// outputs and donated inputs go through a pool of buffers by size.
// Repeated steps allocate little.
type Executable struct {
	backend *Backend
	name    string
	nodes   []*node // live nodes, in execution order (inputs before users)
	params  []*node
	outputs []*node
	// root[i] is the node whose storage node i's value is (itself unless an
	// alias); uses[r] counts the input edges reading storage r; pinned[r]
	// marks storage handed out as an output.
	root   map[*node]*node
	uses   map[*node]int
	pinned map[*node]bool

	// flops is the floating-point operations of one execution (matmuls and
	// convolutions; see Backend.FLOPs).
	flops int64

	// slot[n] is the offset, in elements, of intermediate n (a computed
	// node freed during the execution: not an output) in the arena of its
	// dtype; arenaLen the arenas' lengths.
	slot     map[*node]int
	arenaLen map[dtypes.DType]int

	mu   sync.Mutex
	pool map[poolKey][]any
	// arenas are the arenas not in use by an execution (one set per
	// concurrent execution, each allocated on first use).
	arenas []map[dtypes.DType]any
}

type poolKey struct {
	dt dtypes.DType
	n  int
}

var _ compute.Executable = (*Executable)(nil)

func newExecutable(b *Builder) (*Executable, error) {
	f := b.main
	e := &Executable{backend: b.backend, name: b.name, params: f.params, outputs: f.outputs,
		root: map[*node]*node{}, uses: map[*node]int{}, pinned: map[*node]bool{}, pool: map[poolKey][]any{}}
	// Keep only the nodes the outputs depend on.
	live := map[*node]bool{}
	var mark func(n *node)
	mark = func(n *node) {
		if live[n] {
			return
		}
		live[n] = true
		for _, in := range n.inputs {
			mark(in)
		}
	}
	for _, o := range f.outputs {
		mark(o)
	}
	var order []*node
	for _, n := range f.nodes { // creation order is a topological order
		if live[n] {
			order = append(order, n)
		}
	}
	if !b.backend.noRemat {
		nextID := 0
		for _, n := range f.nodes {
			nextID = max(nextID, n.id+1)
		}
		order = rematerialize(order, f.outputs, nextID)
	}
	if !b.backend.noFusion {
		order = fuseElementwise(order, f.outputs)
	}
	for _, n := range order {
		e.nodes = append(e.nodes, n)
		e.flops += n.flops
		r := n
		if n.alias {
			r = e.root[n.inputs[0]]
		}
		e.root[n] = r
		for _, in := range n.inputs {
			e.uses[e.root[in]]++
		}
	}
	for _, o := range f.outputs {
		e.pinned[e.root[o]] = true
	}
	e.planSlots()
	return e, nil
}

// FLOPs returns the floating-point operations one execution does, counted
// over the compiled graph's matmuls (2*M*N*K per batch entry) and
// convolutions (2 x output elements x taps x input channels per group);
// element-wise ops, reductions and data movement are not counted.
func (e *Executable) FLOPs() int64 { return e.flops }

// Finalize releases the pooled buffers.
func (e *Executable) Finalize() {
	e.mu.Lock()
	e.pool = map[poolKey][]any{}
	e.arenas = nil
	e.mu.Unlock()
}

// planSlots places every intermediate (a computed node whose storage is
// freed during the execution) in an arena, one per dtype: from the
// execution order it knows when each value is computed and when it is last
// read, and places the values, largest first, each at the lowest offset
// (a multiple of slotAlign elements) where it overlaps no value already
// placed that is alive at the same time (greedy by size, as TFLite's
// arena planner). Values alive at the same time never share memory, with
// one exception: a fused element-wise kernel may write its result over a
// full-size input it is the last reader of (see inPlace), so the two are
// placed as one value spanning both lifetimes.
func (e *Executable) planSlots() {
	type value struct {
		nodes      []*node // the nodes sharing the value's place, in execution order
		dt         dtypes.DType
		start, end int // node indices: first computed at start, last read at end
		size       int // elements, rounded up to slotAlign
	}
	lastRead := map[*node]int{} // storage -> index of its last reader
	for i, n := range e.nodes {
		for _, x := range n.inputs {
			lastRead[e.root[x]] = i
		}
	}
	byNode := map[*node]*value{}
	var vals []*value
	for i, n := range e.nodes {
		for _, x := range n.inputs {
			if v := byNode[e.root[x]]; v != nil {
				v.end = i
			}
		}
		if n.run == nil || n.alias || e.pinned[n] || e.uses[n] == 0 {
			continue
		}
		if v := e.inPlace(n, i, func(r *node) (int, bool) {
			_, slotted := byNode[r]
			return lastRead[r], slotted
		}); v != nil {
			shared := byNode[v]
			shared.nodes = append(shared.nodes, n)
			byNode[n] = shared
			continue
		}
		v := &value{nodes: []*node{n}, dt: n.shape.DType, start: i, end: i, size: (n.shape.Size() + slotAlign - 1) &^ (slotAlign - 1)}
		byNode[n] = v
		vals = append(vals, v)
	}
	sort.SliceStable(vals, func(i, j int) bool { return vals[i].size > vals[j].size })
	e.slot = map[*node]int{}
	e.arenaLen = map[dtypes.DType]int{}
	placed := map[dtypes.DType][]*value{}
	offset := map[*value]int{}
	type span struct{ lo, hi int }
	for _, v := range vals {
		var busy []span
		for _, p := range placed[v.dt] {
			if p.start <= v.end && v.start <= p.end {
				busy = append(busy, span{offset[p], offset[p] + p.size})
			}
		}
		sort.Slice(busy, func(i, j int) bool { return busy[i].lo < busy[j].lo })
		off := 0
		for _, b := range busy {
			if b.lo >= off+v.size {
				break // the gap before b holds v
			}
			off = max(off, b.hi)
		}
		offset[v] = off
		for _, n := range v.nodes {
			e.slot[n] = off
		}
		e.arenaLen[v.dt] = max(e.arenaLen[v.dt], off+v.size)
		placed[v.dt] = append(placed[v.dt], v)
	}
}

// inPlace returns the input storage node n (the i-th node of the execution
// order) may compute its value into, or nil: n must be a fused element-wise
// kernel, and the input an intermediate of n's dtype and size, read as a
// full-size operand (not a scalar), whose last reader is n (lastRead gives
// the index of an intermediate's last reader, false for storage that is not
// an intermediate). A fused kernel reads block [lo, hi) of every full-size
// operand before it writes block [lo, hi) of its output and never reads
// elsewhere, so writing over such an operand is safe.
func (e *Executable) inPlace(n *node, i int, lastRead func(r *node) (int, bool)) *node {
	if n.fusedOps == nil {
		return nil
	}
	for _, x := range n.inputs {
		r := e.root[x]
		if x.shape.Size() != n.shape.Size() || r.shape.DType != n.shape.DType || r.shape.Size() != n.shape.Size() {
			continue
		}
		if end, ok := lastRead(r); ok && end == i {
			return r
		}
	}
	return nil
}

// slotAlign is the alignment, in elements, of values in the arena (64
// bytes for float32).
const slotAlign = 16

// SlotBytes returns the bytes of the arenas that hold an execution's
// intermediate values (see planSlots).
func (e *Executable) SlotBytes() int64 {
	var b int64
	for dt, n := range e.arenaLen {
		b += int64(n) * int64(dt.Size())
	}
	return b
}

func (e *Executable) takeArena() map[dtypes.DType]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n := len(e.arenas); n > 0 {
		a := e.arenas[n-1]
		e.arenas = e.arenas[:n-1]
		return a
	}
	return map[dtypes.DType]any{}
}

func (e *Executable) returnArena(a map[dtypes.DType]any) {
	e.mu.Lock()
	e.arenas = append(e.arenas, a)
	e.mu.Unlock()
}

// storage returns the buffer node n's value is computed into: its place in
// the arena of its dtype (allocated on first use, then kept), or one from
// the pool for outputs.
func (e *Executable) storage(arena map[dtypes.DType]any, n *node) any {
	off, ok := e.slot[n]
	if !ok {
		return e.get(n.shape.DType, n.shape.Size())
	}
	dt := n.shape.DType
	a := arena[dt]
	if a == nil {
		a = makeFlat(dt, e.arenaLen[dt])
		arena[dt] = a
	}
	return window(a, off, off+n.shape.Size())
}

// window returns flat[lo:hi:hi].
func window(flat any, lo, hi int) any {
	switch f := flat.(type) {
	case []float32:
		return f[lo:hi:hi]
	case []float64:
		return f[lo:hi:hi]
	case []int32:
		return f[lo:hi:hi]
	case []int64:
		return f[lo:hi:hi]
	case []bool:
		return f[lo:hi:hi]
	case []uint64:
		return f[lo:hi:hi]
	}
	return reflect.ValueOf(flat).Slice3(lo, hi, hi).Interface()
}

// Inputs returns the parameters' names and shapes.
func (e *Executable) Inputs() ([]string, []shapes.Shape) {
	names := make([]string, len(e.params))
	sh := make([]shapes.Shape, len(e.params))
	for i, p := range e.params {
		names[i] = fmt.Sprintf("p%d", i)
		sh[i] = p.shape
	}
	return names, sh
}

// Outputs returns the outputs' shapes.
func (e *Executable) Outputs() []shapes.Shape {
	sh := make([]shapes.Shape, len(e.outputs))
	for i, o := range e.outputs {
		sh[i] = o.shape
	}
	return sh
}

func (e *Executable) get(dt dtypes.DType, n int) any {
	e.mu.Lock()
	k := poolKey{dt, n}
	if l := e.pool[k]; len(l) > 0 {
		v := l[len(l)-1]
		e.pool[k] = l[:len(l)-1]
		e.mu.Unlock()
		return v
	}
	e.mu.Unlock()
	return makeFlat(dt, n)
}

func (e *Executable) put(dt dtypes.DType, flat any) {
	k := poolKey{dt, reflect.ValueOf(flat).Len()}
	e.mu.Lock()
	e.pool[k] = append(e.pool[k], flat)
	e.mu.Unlock()
}

// Execute runs the graph. Donated inputs may be reused for intermediate
// values and are finalized.
func (e *Executable) Execute(inputs []compute.Buffer, donate []bool, _ compute.DeviceNum) ([]compute.Buffer, error) {
	if len(inputs) != len(e.params) {
		return nil, fmt.Errorf("cpu backend: graph %q takes %d inputs, got %d", e.name, len(e.params), len(inputs))
	}
	in := make([]*Buffer, len(inputs))
	for i, x := range inputs {
		b, ok := x.(*Buffer)
		if !ok {
			return nil, fmt.Errorf("cpu backend: graph %q input #%d is a %T, not a cpu buffer", e.name, i, x)
		}
		if err := b.check(); err != nil {
			return nil, fmt.Errorf("graph %q input #%d: %w", e.name, i, err)
		}
		if !b.shape.Equal(e.params[i].shape) {
			return nil, fmt.Errorf("cpu backend: graph %q input #%d has shape %s, want %s", e.name, i, b.shape, e.params[i].shape)
		}
		in[i] = b
	}
	donated := func(r *node) bool {
		return r.op == compute.OpTypeParameter && r.paramIndex < len(donate) && donate[r.paramIndex]
	}
	// freeable: intermediates and donated inputs not handed out as outputs.
	freeable := func(r *node) bool {
		if e.pinned[r] || r.op == compute.OpTypeConstant {
			return false
		}
		return r.op != compute.OpTypeParameter || donated(r)
	}
	values := make(map[*node]any, len(e.nodes))
	remaining := make(map[*node]int, len(e.uses))
	for r, u := range e.uses {
		remaining[r] = u
	}
	ins := make([]any, 0, 8)
	prof := e.backend.profile
	arena := e.takeArena()
	defer e.returnArena(arena)
	for _, n := range e.nodes {
		switch {
		case n.op == compute.OpTypeParameter:
			values[n] = in[n.paramIndex].flat
		case n.op == compute.OpTypeConstant:
			values[n] = n.constant
		case n.alias:
			values[n] = values[n.inputs[0]]
		default:
			ins = ins[:0]
			for _, x := range n.inputs {
				ins = append(ins, values[x])
			}
			out := e.storage(arena, n)
			var start time.Time
			if prof != nil {
				start = time.Now()
			}
			err := n.run(out, ins)
			if prof != nil {
				prof.add(n.opName(), n.shape.Size(), n.flops, time.Since(start))
			}
			if err != nil {
				return nil, fmt.Errorf("cpu backend: graph %q, node #%d (%s -> %s): %w", e.name, n.id, n.op, n.shape, err)
			}
			values[n] = out
		}
		for _, x := range n.inputs {
			r := e.root[x]
			remaining[r]--
			if _, slotted := e.slot[r]; slotted {
				continue // its slot is free again (planSlots)
			}
			if remaining[r] == 0 && freeable(r) {
				e.put(r.shape.DType, values[r])
				if r.op == compute.OpTypeParameter { // a donated input: its storage is the pool's now
					b := in[r.paramIndex]
					b.finalized, b.flat = true, nil
				}
			}
		}
	}
	for i, b := range in {
		if i < len(donate) && donate[i] && !e.pinned[e.params[i]] {
			b.finalized, b.flat = true, nil
		}
	}
	e.backend.flops.Add(e.flops)
	outs := make([]compute.Buffer, len(e.outputs))
	given := map[*node]bool{}
	for i, o := range e.outputs {
		r := e.root[o]
		flat := values[o]
		owned := r.op != compute.OpTypeConstant && (r.op != compute.OpTypeParameter || donated(r))
		if !owned || given[r] {
			c := makeFlat(o.shape.DType, o.shape.Size())
			reflect.Copy(reflect.ValueOf(c), reflect.ValueOf(flat))
			flat = c
		} else {
			given[r] = true
			if r.op == compute.OpTypeParameter {
				b := in[r.paramIndex]
				b.finalized, b.flat = true, nil
			}
		}
		outs[i] = &Buffer{backend: e.backend, shape: o.shape.Clone(), flat: flat}
	}
	return outs, nil
}
