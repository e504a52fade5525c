package cpu

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapeinference"

	"github.com/peco-dev/peco/cpu/layout"
)

// This file wires Gather, the Scatter ops and the dynamic slices to
// cpu/layout. Indices may be int32 or int64 (what GoMLX emits).

// Gather is XLA's gather (see compute.StandardOps.Gather).
func (f *Function) Gather(operand, startIndices compute.Value, indexVectorAxis int,
	offsetOutputAxes, collapsedSliceAxes, startIndexMap, sliceSizes []int, indicesAreSorted bool) (compute.Value, error) {
	ns, err := f.nodesOf("Gather", operand, startIndices)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.Gather(ns[0].shape, ns[1].shape, indexVectorAxis, offsetOutputAxes, collapsedSliceAxes,
		startIndexMap, sliceSizes, indicesAreSorted)
	if err != nil {
		return nil, err
	}
	od, idd := dimsOf(ns[0].shape), dimsOf(ns[1].shape)
	offs, coll := append([]int(nil), offsetOutputAxes...), append([]int(nil), collapsedSliceAxes...)
	sim, sizes := append([]int(nil), startIndexMap...), append([]int(nil), sliceSizes...)
	mv := moverFor(shape.DType)
	return f.add(compute.OpTypeGather, shape, ns, func(out any, ins []any) error {
		return mv.gather(out, ins[0], od, ins[1], idd, indexVectorAxis, offs, coll, sim, sizes)
	})
}

func scatterT[T float32 | float64 | int32 | int64, I int32 | int64](op layout.ScatterOp, out, operand []T, od []int, idx []I, idd []int,
	upd []T, ud []int, iva int, uwa, iwa, s2o []int) error {
	copy(out, operand)
	return layout.Scatter(op, out, od, idx, idd, upd, ud, iva, uwa, iwa, s2o)
}

func scatterI[T float32 | float64 | int32 | int64](op layout.ScatterOp, out []T, ins []any, od []int, idd []int, ud []int, iva int, uwa, iwa, s2o []int) error {
	switch idx := ins[1].(type) {
	case []int32:
		return scatterT(op, out, ins[0].([]T), od, idx, idd, ins[2].([]T), ud, iva, uwa, iwa, s2o)
	case []int64:
		return scatterT(op, out, ins[0].([]T), od, idx, idd, ins[2].([]T), ud, iva, uwa, iwa, s2o)
	}
	return fmt.Errorf("indices of type %T are not supported (int32, int64)", ins[1])
}

func (f *Function) scatter(opType compute.OpType, op layout.ScatterOp, operand, scatterIndices, updates compute.Value,
	indexVectorAxis int, updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes []int) (compute.Value, error) {
	ns, err := f.nodesOf(opType.String(), operand, scatterIndices, updates)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.Scatter(ns[0].shape, ns[1].shape, ns[2].shape, indexVectorAxis, updateWindowAxes,
		insertedWindowAxes, scatterAxesToOperandAxes)
	if err != nil {
		return nil, err
	}
	od, idd, ud := dimsOf(ns[0].shape), dimsOf(ns[1].shape), dimsOf(ns[2].shape)
	uwa, iwa := append([]int(nil), updateWindowAxes...), append([]int(nil), insertedWindowAxes...)
	s2o := append([]int(nil), scatterAxesToOperandAxes...)
	return f.add(opType, shape, ns, func(out any, ins []any) error {
		switch o := out.(type) {
		case []float32:
			return scatterI(op, o, ins, od, idd, ud, indexVectorAxis, uwa, iwa, s2o)
		case []float64:
			return scatterI(op, o, ins, od, idd, ud, indexVectorAxis, uwa, iwa, s2o)
		case []int32:
			return scatterI(op, o, ins, od, idd, ud, indexVectorAxis, uwa, iwa, s2o)
		case []int64:
			return scatterI(op, o, ins, od, idd, ud, indexVectorAxis, uwa, iwa, s2o)
		}
		return fmt.Errorf("%s: dtype %s is not supported (float32, float64, int32, int64)", opType, shape.DType)
	})
}

// ScatterSum adds updates into operand at the scattered positions.
func (f *Function) ScatterSum(operand, scatterIndices, updates compute.Value, indexVectorAxis int,
	updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes []int, indicesAreSorted, uniqueIndices bool) (compute.Value, error) {
	return f.scatter(compute.OpTypeScatterSum, layout.ScatterSum, operand, scatterIndices, updates, indexVectorAxis,
		updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes)
}

// ScatterMax keeps the larger of operand and updates at the scattered positions.
func (f *Function) ScatterMax(operand, scatterIndices, updates compute.Value, indexVectorAxis int,
	updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes []int, indicesAreSorted, uniqueIndices bool) (compute.Value, error) {
	return f.scatter(compute.OpTypeScatterMax, layout.ScatterMax, operand, scatterIndices, updates, indexVectorAxis,
		updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes)
}

// ScatterMin keeps the smaller of operand and updates at the scattered positions.
func (f *Function) ScatterMin(operand, scatterIndices, updates compute.Value, indexVectorAxis int,
	updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes []int, indicesAreSorted, uniqueIndices bool) (compute.Value, error) {
	return f.scatter(compute.OpTypeScatterMin, layout.ScatterMin, operand, scatterIndices, updates, indexVectorAxis,
		updateWindowAxes, insertedWindowAxes, scatterAxesToOperandAxes)
}

// scalarInts reads scalar integer start indices.
func scalarInts(vals []any) ([]int, error) {
	out := make([]int, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case []int32:
			out[i] = int(x[0])
		case []int64:
			out[i] = int(x[0])
		case []uint32:
			out[i] = int(x[0])
		case []uint64:
			out[i] = int(x[0])
		case []int16:
			out[i] = int(x[0])
		case []int8:
			out[i] = int(x[0])
		case []uint16:
			out[i] = int(x[0])
		case []uint8:
			out[i] = int(x[0])
		default:
			return nil, fmt.Errorf("start index #%d of type %T is not an integer", i, v)
		}
	}
	return out, nil
}

func (f *Function) startIndices(op string, rank int, startIndices []compute.Value) ([]*node, error) {
	if len(startIndices) != rank {
		return nil, fmt.Errorf("cpu backend: %s: %d start indices for rank %d", op, len(startIndices), rank)
	}
	ns, err := f.nodesOf(op, startIndices...)
	if err != nil {
		return nil, err
	}
	for i, n := range ns {
		if !n.shape.IsScalar() {
			return nil, fmt.Errorf("cpu backend: %s: start index #%d must be a scalar, got %s", op, i, n.shape)
		}
	}
	return ns, nil
}

// DynamicSlice takes a slice of sliceDims starting at startIndices (clamped so it fits).
func (f *Function) DynamicSlice(operand compute.Value, startIndices []compute.Value, sliceDims []int) (compute.Value, error) {
	n, err := f.node(operand, "DynamicSlice")
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.DynamicSlice(n.shape, sliceDims)
	if err != nil {
		return nil, err
	}
	starts, err := f.startIndices("DynamicSlice", n.shape.Rank(), startIndices)
	if err != nil {
		return nil, err
	}
	ind, sd, mv := dimsOf(n.shape), append([]int(nil), sliceDims...), moverFor(shape.DType)
	return f.add(compute.OpTypeDynamicSlice, shape, append([]*node{n}, starts...), func(out any, ins []any) error {
		st, err := scalarInts(ins[1:])
		if err != nil {
			return err
		}
		return mv.dynamicSlice(out, ins[0], ind, st, sd)
	})
}

// DynamicUpdateSlice writes update into operand at startIndices (clamped so it fits).
func (f *Function) DynamicUpdateSlice(operand, update compute.Value, startIndices []compute.Value) (compute.Value, error) {
	ns, err := f.nodesOf("DynamicUpdateSlice", operand, update)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.DynamicUpdateSlice(ns[0].shape, ns[1].shape)
	if err != nil {
		return nil, err
	}
	starts, err := f.startIndices("DynamicUpdateSlice", shape.Rank(), startIndices)
	if err != nil {
		return nil, err
	}
	od, ud, mv := dimsOf(shape), dimsOf(ns[1].shape), moverFor(shape.DType)
	return f.add(compute.OpTypeDynamicUpdateSlice, shape, append(ns, starts...), func(out any, ins []any) error {
		st, err := scalarInts(ins[2:])
		if err != nil {
			return err
		}
		mv.copy(out, ins[0])
		return mv.dynamicUpdateSlice(out, od, ins[1], ud, st)
	})
}
