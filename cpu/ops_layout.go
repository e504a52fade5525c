package cpu

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapeinference"
	"github.com/gomlx/compute/shapes"

	"github.com/peco-dev/peco/cpu/layout"
)

// This file wires the data-movement ops to cpu/layout. Those kernels only
// move elements, so they run on the storage seen as unsigned words of the
// element's size (bool and int8 as uint8, float32 as uint32, ...).

// Reshape changes x's dimensions; the storage is shared.
func (f *Function) Reshape(x compute.Value, dims ...int) (compute.Value, error) {
	n, err := f.node(x, "Reshape")
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.Reshape(n.shape, dims)
	if err != nil {
		return nil, err
	}
	return f.aliasOf(compute.OpTypeReshape, n, shape)
}

// Bitcast reinterprets x's bits as another dtype of the same size.
func (f *Function) Bitcast(x compute.Value, targetDType dtypes.DType) (compute.Value, error) {
	n, err := f.node(x, "Bitcast")
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.Bitcast(n.shape, targetDType)
	if err != nil {
		return nil, err
	}
	if shape.Size() != n.shape.Size() {
		return nil, fmt.Errorf("cpu backend: Bitcast between dtypes of different sizes (%s -> %s): %w", n.shape.DType, targetDType, compute.ErrNotImplemented)
	}
	mv := moverFor(shape.DType)
	return f.add(compute.OpTypeBitcast, shape, []*node{n}, func(out any, ins []any) error {
		mv.copy(out, ins[0])
		return nil
	})
}

// Transpose permutes x's axes: output axis i is input axis permutation[i].
func (f *Function) Transpose(x compute.Value, permutation ...int) (compute.Value, error) {
	n, err := f.node(x, "Transpose")
	if err != nil {
		return nil, err
	}
	return f.transpose(n, permutation)
}

func (f *Function) transpose(n *node, permutation []int) (*node, error) {
	shape, err := shapeinference.Transpose(n.shape, permutation)
	if err != nil {
		return nil, err
	}
	identity := true
	for i, p := range permutation {
		identity = identity && i == p
	}
	if identity {
		return f.aliasOf(compute.OpTypeTranspose, n, shape)
	}
	ind, perm, mv := dimsOf(n.shape), append([]int(nil), permutation...), moverFor(shape.DType)
	return f.add(compute.OpTypeTranspose, shape, []*node{n}, func(out any, ins []any) error {
		return mv.transpose(out, ins[0], ind, perm)
	})
}

// BroadcastInDim broadcasts x to shape; x's axis i becomes axis broadcastAxes[i].
func (f *Function) BroadcastInDim(x compute.Value, shape shapes.Shape, broadcastAxes []int) (compute.Value, error) {
	n, err := f.node(x, "BroadcastInDim")
	if err != nil {
		return nil, err
	}
	if err := shapeinference.BroadcastInDim(n.shape, shape, broadcastAxes, nil); err != nil {
		return nil, err
	}
	shape = shape.Clone()
	if shape.Size() == n.shape.Size() && isIncreasing(broadcastAxes) {
		return f.aliasOf(compute.OpTypeBroadcastInDim, n, shape)
	}
	od, ind, axes, mv := dimsOf(shape), dimsOf(n.shape), append([]int(nil), broadcastAxes...), moverFor(shape.DType)
	b, err := f.add(compute.OpTypeBroadcastInDim, shape, []*node{n}, func(out any, ins []any) error {
		return mv.broadcastInDim(out, od, ins[0], ind, axes)
	})
	if err != nil {
		return nil, err
	}
	b.broadcastAxes = axes
	return b, nil
}

func isIncreasing(axes []int) bool {
	for i := 1; i < len(axes); i++ {
		if axes[i] <= axes[i-1] {
			return false
		}
	}
	return true
}

// Slice takes x[starts:limits:strides] on every axis.
func (f *Function) Slice(x compute.Value, starts, limits, strides []int) (compute.Value, error) {
	n, err := f.node(x, "Slice")
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.Slice(n.shape, starts, limits, strides)
	if err != nil {
		return nil, err
	}
	if len(strides) == 0 {
		strides = make([]int, n.shape.Rank())
		for i := range strides {
			strides[i] = 1
		}
	}
	ind, mv := dimsOf(n.shape), moverFor(shape.DType)
	st, li, sr := append([]int(nil), starts...), append([]int(nil), limits...), append([]int(nil), strides...)
	return f.add(compute.OpTypeSlice, shape, []*node{n}, func(out any, ins []any) error {
		return mv.slice(out, ins[0], ind, st, li, sr)
	})
}

// Concatenate joins operands along axis.
func (f *Function) Concatenate(axis int, operands ...compute.Value) (compute.Value, error) {
	ns, err := f.nodesOf("Concatenate", operands...)
	if err != nil {
		return nil, err
	}
	in := make([]shapes.Shape, len(ns))
	inDims := make([][]int, len(ns))
	for i, n := range ns {
		in[i], inDims[i] = n.shape, dimsOf(n.shape)
	}
	shape, err := shapeinference.Concatenate(in, axis)
	if err != nil {
		return nil, err
	}
	mv := moverFor(shape.DType)
	return f.add(compute.OpTypeConcatenate, shape, ns, func(out any, ins []any) error {
		return mv.concatenate(out, ins, inDims, axis)
	})
}

// Pad pads x with fillValue (a scalar): Start/End elements before/after
// each axis (negative values crop) and Interior elements between elements.
func (f *Function) Pad(x, fillValue compute.Value, axesConfig ...compute.PadAxis) (compute.Value, error) {
	ns, err := f.nodesOf("Pad", x, fillValue)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.Pad(ns[0].shape, axesConfig...)
	if err != nil {
		return nil, err
	}
	if !ns[1].shape.IsScalar() || ns[1].shape.DType != shape.DType {
		return nil, fmt.Errorf("cpu backend: Pad: fill value must be a %s scalar, got %s", shape.DType, ns[1].shape)
	}
	ind, cfg, mv := dimsOf(ns[0].shape), append([]compute.PadAxis(nil), axesConfig...), moverFor(shape.DType)
	return f.add(compute.OpTypePad, shape, ns, func(out any, ins []any) error {
		return mv.pad(out, ins[0], ind, ins[1], cfg)
	})
}

// Reverse reverses x along axes.
func (f *Function) Reverse(x compute.Value, axes ...int) (compute.Value, error) {
	n, err := f.node(x, "Reverse")
	if err != nil {
		return nil, err
	}
	for _, a := range axes {
		if a < 0 || a >= n.shape.Rank() {
			return nil, fmt.Errorf("cpu backend: Reverse: axis %d out of range for %s", a, n.shape)
		}
	}
	ind, ax, mv := dimsOf(n.shape), append([]int(nil), axes...), moverFor(n.shape.DType)
	return f.add(compute.OpTypeReverse, n.shape, []*node{n}, func(out any, ins []any) error {
		return mv.reverse(out, ins[0], ind, ax)
	})
}

// Iota fills shape with its index along iotaAxis.
func (f *Function) Iota(shape shapes.Shape, iotaAxis int) (compute.Value, error) {
	if iotaAxis < 0 || iotaAxis >= shape.Rank() {
		return nil, fmt.Errorf("cpu backend: Iota: axis %d out of range for %s", iotaAxis, shape)
	}
	shape = shape.Clone()
	od := dimsOf(shape)
	return f.add(compute.OpTypeIota, shape, nil, func(out any, _ []any) error {
		switch o := out.(type) {
		case []float32:
			return layout.Iota(o, od, iotaAxis)
		case []float64:
			return layout.Iota(o, od, iotaAxis)
		case []int8:
			return layout.Iota(o, od, iotaAxis)
		case []int16:
			return layout.Iota(o, od, iotaAxis)
		case []int32:
			return layout.Iota(o, od, iotaAxis)
		case []int64:
			return layout.Iota(o, od, iotaAxis)
		case []uint8:
			return layout.Iota(o, od, iotaAxis)
		case []uint16:
			return layout.Iota(o, od, iotaAxis)
		case []uint32:
			return layout.Iota(o, od, iotaAxis)
		case []uint64:
			return layout.Iota(o, od, iotaAxis)
		}
		return fmt.Errorf("Iota: dtype %s not supported", shape.DType)
	})
}
