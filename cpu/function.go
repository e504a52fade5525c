package cpu

import (
	"fmt"
	"reflect"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/notimplemented"
	"github.com/gomlx/compute/shapes"
)

// kernel computes one node: it writes every element of out (a flat slice of
// the node's shape, taken from the executable's pool, with stale contents)
// from the flat slices of the node's inputs, which it must not modify.
type kernel func(out any, ins []any) error

// node is one op of a graph under construction.
type node struct {
	id     int
	op     compute.OpType
	shape  shapes.Shape
	inputs []*node
	fn     *Function
	// run computes the node; nil for parameters, constants and aliases.
	run kernel
	// alias marks ops whose output is their first input's storage seen with
	// another shape (Reshape, Identity, barriers): no copy is made.
	alias bool
	// paramIndex is the parameter's position, for Parameter nodes.
	paramIndex int
	// constant holds a Constant node's data.
	constant any
	// fusedOps names the ops a fused element-wise kernel runs (see fuse.go).
	fusedOps []string
	// flops is the number of floating-point operations one run of the node
	// does, counted for matmuls and convolutions only (see Backend.FLOPs).
	flops int64
	// broadcastAxes are a BroadcastInDim's axes (the output axis of each
	// input axis), for fused kernels that read the broadcast by block.
	broadcastAxes []int
	// reduceAxes are a reduction's axes, for fused kernels that reduce the
	// rows they compute.
	reduceAxes []int
	// label, when set, names the node in profiles instead of its op (the
	// variants of ConvGeneral).
	label string
}

// opName names the node's op for profiles: the op, "Fused" for a fused
// element-wise kernel, or the node's label.
func (n *node) opName() string {
	if n.fusedOps != nil {
		return "Fused"
	}
	if n.label != "" {
		return n.label
	}
	return n.op.String()
}

// Builder records a graph; Compile turns it into an Executable.
type Builder struct {
	notimplemented.Builder
	backend  *Backend
	name     string
	main     *Function
	compiled bool
}

var _ compute.Builder = (*Builder)(nil)

func newBuilder(b *Backend, name string) *Builder {
	bld := &Builder{backend: b, name: name}
	bld.main = &Function{builder: bld, name: compute.MainName}
	bld.main.Function = notimplemented.Function{ErrFn: func(op compute.OpType) error {
		return fmt.Errorf("cpu backend: op %s is not implemented (graph %q); use the \"go\" backend for this graph: %w",
			op, name, compute.ErrNotImplemented)
	}}
	return bld
}

// Name returns the graph's name.
func (b *Builder) Name() string { return b.name }

// Main returns the main function, where the graph is built.
func (b *Builder) Main() compute.Function { return b.main }

// NewFunction is not supported: the backend runs flat graphs only.
func (b *Builder) NewFunction(name string) (compute.Function, error) {
	return nil, fmt.Errorf("cpu backend: sub-functions (closures, While, If, Sort) are not implemented (graph %q, function %q): %w",
		b.name, name, compute.ErrNotImplemented)
}

// OpShape returns the shape of a value built by this builder.
func (b *Builder) OpShape(v compute.Value) (shapes.Shape, error) { return b.main.Shape(v) }

// Compile returns the executable for the main function's outputs.
func (b *Builder) Compile() (compute.Executable, error) {
	if b.compiled {
		return nil, fmt.Errorf("cpu backend: graph %q compiled twice", b.name)
	}
	if !b.main.returned {
		return nil, fmt.Errorf("cpu backend: graph %q: Compile before Return", b.name)
	}
	b.compiled = true
	return newExecutable(b)
}

// Function is where ops are recorded. Ops the backend does not implement
// are answered by the embedded notimplemented.Function with an error.
type Function struct {
	notimplemented.Function
	builder  *Builder
	name     string
	nodes    []*node
	params   []*node
	outputs  []*node
	returned bool
}

var _ compute.Function = (*Function)(nil)

// Name returns the function's name.
func (f *Function) Name() string { return f.name }

// Builder returns the function's builder.
func (f *Function) Builder() compute.Builder { return f.builder }

// Parent is nil: only the main function exists.
func (f *Function) Parent() compute.Function { return nil }

// Closure is not supported.
func (f *Function) Closure() (compute.Function, error) {
	return nil, fmt.Errorf("cpu backend: closures are not implemented: %w", compute.ErrNotImplemented)
}

// Shape returns a value's shape.
func (f *Function) Shape(v compute.Value) (shapes.Shape, error) {
	n, err := f.node(v, "Shape")
	if err != nil {
		return shapes.Invalid(), err
	}
	return n.shape, nil
}

// node checks that v is a node of this function.
func (f *Function) node(v compute.Value, op string) (*node, error) {
	n, ok := v.(*node)
	if !ok || n == nil {
		return nil, fmt.Errorf("cpu backend: %s: value %T is not from this backend", op, v)
	}
	if n.fn != f {
		return nil, fmt.Errorf("cpu backend: %s: value #%d belongs to another graph", op, n.id)
	}
	return n, nil
}

// nodes checks and converts values.
func (f *Function) nodesOf(op string, vs ...compute.Value) ([]*node, error) {
	out := make([]*node, len(vs))
	for i, v := range vs {
		n, err := f.node(v, op)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// add records a node.
func (f *Function) add(op compute.OpType, shape shapes.Shape, inputs []*node, run kernel) (*node, error) {
	if f.returned {
		return nil, fmt.Errorf("cpu backend: %s after Return", op)
	}
	if !dtypeSupported(shape.DType) {
		return nil, fmt.Errorf("cpu backend: %s: dtype %s is not supported: %w", op, shape.DType, compute.ErrNotImplemented)
	}
	if shape.IsDynamic() {
		return nil, fmt.Errorf("cpu backend: %s: dynamic shapes are not supported: %w", op, compute.ErrNotImplemented)
	}
	n := &node{id: len(f.nodes), op: op, shape: shape, inputs: inputs, fn: f, run: run}
	f.nodes = append(f.nodes, n)
	return n, nil
}

// Parameter declares an input of the graph.
func (f *Function) Parameter(name string, shape shapes.Shape, sharding *compute.ShardingSpec) (compute.Value, error) {
	if sharding != nil {
		return nil, fmt.Errorf("cpu backend: parameter %q: sharding is not supported", name)
	}
	n, err := f.add(compute.OpTypeParameter, shape.Clone(), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("parameter %q: %w", name, err)
	}
	n.paramIndex = len(f.params)
	f.params = append(f.params, n)
	return n, nil
}

// Constant records a constant tensor (flat is copied).
func (f *Function) Constant(flat any, dims ...int) (compute.Value, error) {
	v := reflect.ValueOf(flat)
	if v.Kind() != reflect.Slice {
		return nil, fmt.Errorf("cpu backend: Constant: want a slice, got %T", flat)
	}
	shape := shapes.Make(dtypeOfSlice(v.Type()), dims...)
	if shape.Size() != v.Len() {
		return nil, fmt.Errorf("cpu backend: Constant: %d values for dimensions %v", v.Len(), dims)
	}
	n, err := f.add(compute.OpTypeConstant, shape, nil, nil)
	if err != nil {
		return nil, err
	}
	c := makeFlat(shape.DType, v.Len())
	reflect.Copy(reflect.ValueOf(c), v)
	n.constant = c
	return n, nil
}

// Return sets the graph's outputs.
func (f *Function) Return(outputs []compute.Value, shardings []*compute.ShardingSpec) error {
	if f.returned {
		return fmt.Errorf("cpu backend: Return called twice")
	}
	if len(shardings) > 0 {
		return fmt.Errorf("cpu backend: output sharding is not supported")
	}
	outs, err := f.nodesOf("Return", outputs...)
	if err != nil {
		return err
	}
	f.outputs = outs
	f.returned = true
	return nil
}

// aliasOf records an op whose output is x's storage with another shape.
func (f *Function) aliasOf(op compute.OpType, x *node, shape shapes.Shape) (*node, error) {
	n, err := f.add(op, shape, []*node{x}, nil)
	if err != nil {
		return nil, err
	}
	n.alias = true
	return n, nil
}

// Identity returns x.
func (f *Function) Identity(x compute.Value) (compute.Value, error) {
	n, err := f.node(x, "Identity")
	if err != nil {
		return nil, err
	}
	return f.aliasOf(compute.OpTypeIdentity, n, n.shape)
}

// OptimizationBarrier returns its operands unchanged.
func (f *Function) OptimizationBarrier(operands ...compute.Value) ([]compute.Value, error) {
	ns, err := f.nodesOf("OptimizationBarrier", operands...)
	if err != nil {
		return nil, err
	}
	out := make([]compute.Value, len(ns))
	for i, n := range ns {
		if out[i], err = f.aliasOf(compute.OpTypeOptimizationBarrier, n, n.shape); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dtypeOfSlice maps a slice type to its dtype.
func dtypeOfSlice(t reflect.Type) dtypes.DType {
	for _, d := range supportedDTypes {
		if reflect.SliceOf(d.GoType()) == t {
			return d
		}
	}
	return dtypes.InvalidDType
}
