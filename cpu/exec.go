package cpu

import (
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

// Executable runs a compiled graph. Intermediate buffers are recycled
// through a pool kept by the executable, so repeated steps allocate little.
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

	mu   sync.Mutex
	pool map[poolKey][]any
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
	e.mu.Unlock()
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
			out := e.get(n.shape.DType, n.shape.Size())
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
