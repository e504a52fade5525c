package cpu

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapeinference"
	"github.com/gomlx/compute/shapes"

	"github.com/peco-dev/peco/cpu/elem"
)

// This file wires the element-wise, comparison, conversion and reduction
// ops to cpu/elem.

// dimsOf is the row-major dimensions a kernel sees (nil for scalars).
func dimsOf(s shapes.Shape) []int {
	if s.Rank() == 0 {
		return nil
	}
	return s.Dimensions
}

var unaryOps = map[compute.OpType]elem.UnaryOp{
	compute.OpTypeNeg: elem.Neg, compute.OpTypeAbs: elem.Abs, compute.OpTypeSign: elem.Sign,
	compute.OpTypeExp: elem.Exp, compute.OpTypeExpm1: elem.Expm1, compute.OpTypeLog: elem.Log,
	compute.OpTypeLog1p: elem.Log1p, compute.OpTypeSqrt: elem.Sqrt, compute.OpTypeRsqrt: elem.Rsqrt,
	compute.OpTypeErf: elem.Erf, compute.OpTypeTanh: elem.Tanh, compute.OpTypeLogistic: elem.Logistic,
	compute.OpTypeSin: elem.Sin, compute.OpTypeCos: elem.Cos, compute.OpTypeFloor: elem.Floor,
	compute.OpTypeCeil: elem.Ceil, compute.OpTypeRound: elem.Round, compute.OpTypeIsFinite: elem.IsFinite,
	compute.OpTypeIsNaN: elem.IsNaN, compute.OpTypeLogicalNot: elem.LogicalNot,
	compute.OpTypeBitwiseNot: elem.BitwiseNot, compute.OpTypeBitCount: elem.BitCount, compute.OpTypeClz: elem.Clz,
}

var binaryOps = map[compute.OpType]elem.BinaryOp{
	compute.OpTypeAdd: elem.Add, compute.OpTypeSub: elem.Sub, compute.OpTypeMul: elem.Mul,
	compute.OpTypeDiv: elem.Div, compute.OpTypeRem: elem.Rem, compute.OpTypePow: elem.Pow,
	compute.OpTypeMax: elem.Max, compute.OpTypeMin: elem.Min, compute.OpTypeAtan2: elem.Atan2,
	compute.OpTypeBitwiseAnd: elem.BitwiseAnd, compute.OpTypeBitwiseOr: elem.BitwiseOr,
	compute.OpTypeBitwiseXor: elem.BitwiseXor, compute.OpTypeLogicalAnd: elem.LogicalAnd,
	compute.OpTypeLogicalOr: elem.LogicalOr, compute.OpTypeLogicalXor: elem.LogicalXor,
	compute.OpTypeShiftLeft: elem.ShiftLeft, compute.OpTypeShiftRightArithmetic: elem.ShiftRightArithmetic,
	compute.OpTypeShiftRightLogical: elem.ShiftRightLogical,
}

var compareOps = map[compute.OpType]elem.CompareOp{
	compute.OpTypeEqual: elem.Equal, compute.OpTypeNotEqual: elem.NotEqual,
	compute.OpTypeLessThan: elem.LessThan, compute.OpTypeLessOrEqual: elem.LessOrEqual,
	compute.OpTypeGreaterThan: elem.GreaterThan, compute.OpTypeGreaterOrEqual: elem.GreaterOrEqual,
	compute.OpTypeEqualTotalOrder: elem.EqualTotalOrder, compute.OpTypeNotEqualTotalOrder: elem.NotEqualTotalOrder,
	compute.OpTypeLessThanTotalOrder: elem.LessThanTotalOrder, compute.OpTypeLessOrEqualTotalOrder: elem.LessOrEqualTotalOrder,
	compute.OpTypeGreaterThanTotalOrder: elem.GreaterThanTotalOrder, compute.OpTypeGreaterOrEqualTotalOrder: elem.GreaterOrEqualTotalOrder,
}

var reduceOps = map[compute.OpType]elem.ReduceOp{
	compute.OpTypeReduceSum: elem.ReduceSum, compute.OpTypeReduceProduct: elem.ReduceProduct,
	compute.OpTypeReduceMax: elem.ReduceMax, compute.OpTypeReduceMin: elem.ReduceMin,
	compute.OpTypeReduceLogicalAnd: elem.ReduceLogicalAnd, compute.OpTypeReduceLogicalOr: elem.ReduceLogicalOr,
	compute.OpTypeReduceLogicalXor: elem.ReduceLogicalXor, compute.OpTypeReduceBitwiseAnd: elem.ReduceBitwiseAnd,
	compute.OpTypeReduceBitwiseOr: elem.ReduceBitwiseOr, compute.OpTypeReduceBitwiseXor: elem.ReduceBitwiseXor,
}

func (f *Function) unary(op compute.OpType, x compute.Value) (compute.Value, error) {
	n, err := f.node(x, op.String())
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.UnaryOp(op, n.shape)
	if err != nil {
		return nil, err
	}
	eop := unaryOps[op]
	return f.add(op, shape, []*node{n}, func(out any, ins []any) error { return elem.Unary(eop, out, ins[0]) })
}

func (f *Function) binary(op compute.OpType, a, b compute.Value) (compute.Value, error) {
	ns, err := f.nodesOf(op.String(), a, b)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.BinaryOp(op, ns[0].shape, ns[1].shape)
	if err != nil {
		return nil, err
	}
	eop := binaryOps[op]
	od, ad, bd := dimsOf(shape), dimsOf(ns[0].shape), dimsOf(ns[1].shape)
	return f.add(op, shape, ns, func(out any, ins []any) error { return elem.Binary(eop, out, od, ins[0], ad, ins[1], bd) })
}

func (f *Function) compare(op compute.OpType, a, b compute.Value) (compute.Value, error) {
	ns, err := f.nodesOf(op.String(), a, b)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.ComparisonOp(op, ns[0].shape, ns[1].shape)
	if err != nil {
		return nil, err
	}
	eop := compareOps[op]
	od, ad, bd := dimsOf(shape), dimsOf(ns[0].shape), dimsOf(ns[1].shape)
	return f.add(op, shape, ns, func(out any, ins []any) error {
		return elem.Compare(eop, out.([]bool), od, ins[0], ad, ins[1], bd)
	})
}

func (f *Function) reduce(op compute.OpType, x compute.Value, axes ...int) (compute.Value, error) {
	n, err := f.node(x, op.String())
	if err != nil {
		return nil, err
	}
	if len(axes) == 0 { // reduce everything
		for i := range n.shape.Rank() {
			axes = append(axes, i)
		}
	}
	shape, err := shapeinference.Reduce(n.shape, axes)
	if err != nil {
		return nil, err
	}
	eop := reduceOps[op]
	ind, ax := dimsOf(n.shape), append([]int(nil), axes...)
	r, err := f.add(op, shape, []*node{n}, func(out any, ins []any) error { return elem.Reduce(eop, out, ins[0], ind, ax) })
	if err != nil {
		return nil, err
	}
	r.reduceAxes = ax
	return r, nil
}

// Where selects onTrue where condition holds, else onFalse.
func (f *Function) Where(condition, onTrue, onFalse compute.Value) (compute.Value, error) {
	ns, err := f.nodesOf("Where", condition, onTrue, onFalse)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.Where(ns[0].shape, ns[1].shape, ns[2].shape)
	if err != nil {
		return nil, err
	}
	od, cd, td, fd := dimsOf(shape), dimsOf(ns[0].shape), dimsOf(ns[1].shape), dimsOf(ns[2].shape)
	return f.add(compute.OpTypeWhere, shape, ns, func(out any, ins []any) error {
		return elem.Where(out, od, ins[0].([]bool), cd, ins[1], td, ins[2], fd)
	})
}

// Clamp clamps x to [lo, hi] element-wise.
func (f *Function) Clamp(lo, x, hi compute.Value) (compute.Value, error) {
	ns, err := f.nodesOf("Clamp", lo, x, hi)
	if err != nil {
		return nil, err
	}
	shape := ns[1].shape
	for _, b := range []shapes.Shape{ns[0].shape, ns[2].shape} {
		if b.DType != shape.DType || (!b.IsScalar() && !b.Equal(shape)) {
			return nil, fmt.Errorf("cpu backend: Clamp: bounds %s must be scalars or of x's shape %s", b, shape)
		}
	}
	od, ld, hd := dimsOf(shape), dimsOf(ns[0].shape), dimsOf(ns[2].shape)
	return f.add(compute.OpTypeClamp, shape, ns, func(out any, ins []any) error {
		return elem.Clamp(out, od, ins[0], ld, ins[1], ins[2], hd)
	})
}

// ConvertDType converts x to dtype.
func (f *Function) ConvertDType(x compute.Value, dtype dtypes.DType) (compute.Value, error) {
	n, err := f.node(x, "ConvertDType")
	if err != nil {
		return nil, err
	}
	shape := n.shape.Clone()
	shape.DType = dtype
	if dtype == n.shape.DType {
		return f.aliasOf(compute.OpTypeConvertDType, n, shape)
	}
	return f.add(compute.OpTypeConvertDType, shape, []*node{n}, func(out any, ins []any) error { return elem.Convert(out, ins[0]) })
}

// ArgMinMax returns the index of the smallest (isMin) or largest value along axis.
func (f *Function) ArgMinMax(x compute.Value, axis int, outputDType dtypes.DType, isMin bool) (compute.Value, error) {
	n, err := f.node(x, "ArgMinMax")
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.ArgMinMax(n.shape, axis, outputDType)
	if err != nil {
		return nil, err
	}
	ind := dimsOf(n.shape)
	return f.add(compute.OpTypeArgMinMax, shape, []*node{n}, func(out any, ins []any) error {
		return elem.ArgMinMax(out, ins[0], ind, axis, isMin)
	})
}
