package elem

import (
	"fmt"
	"math"
)

// CompareOp identifies an element-wise comparison with broadcasting; the
// output is bool.
type CompareOp int

// Comparison operations. The plain versions follow IEEE 754 (comparisons
// with NaN are false, except NotEqual). The TotalOrder versions order floats
// as -NaN < -Inf < -Finite < -0 < +0 < +Finite < +Inf < +NaN; for integers
// and bool they equal the plain versions. Bool is ordered false < true.
const (
	Equal CompareOp = iota
	NotEqual
	LessThan
	LessOrEqual
	GreaterThan
	GreaterOrEqual
	EqualTotalOrder
	NotEqualTotalOrder
	LessThanTotalOrder
	LessOrEqualTotalOrder
	GreaterThanTotalOrder
	GreaterOrEqualTotalOrder
	numCompareOps
)

var compareOpNames = [...]string{"Equal", "NotEqual", "LessThan", "LessOrEqual", "GreaterThan", "GreaterOrEqual",
	"EqualTotalOrder", "NotEqualTotalOrder", "LessThanTotalOrder", "LessOrEqualTotalOrder",
	"GreaterThanTotalOrder", "GreaterOrEqualTotalOrder"}

// String returns the op name.
func (op CompareOp) String() string {
	if op >= 0 && op < numCompareOps {
		return compareOpNames[op]
	}
	return fmt.Sprintf("CompareOp(%d)", int(op))
}

// Compare computes out = op(a, b) with broadcasting (see Binary); a and b must
// have the same dtype.
func Compare(op CompareOp, out []bool, outDims []int, a any, aDims []int, b any, bDims []int) error {
	if typeName(a) != typeName(b) {
		return fmt.Errorf("elem.Compare %s: dtypes differ: a %s, b %s", op, typeName(a), typeName(b))
	}
	switch x := a.(type) {
	case []float32:
		return compareFloat(op, out, outDims, x, aDims, b.([]float32), bDims, totalKey32)
	case []float64:
		return compareFloat(op, out, outDims, x, aDims, b.([]float64), bDims, totalKey64)
	case []int8:
		return CompareOf(op, out, outDims, x, aDims, b.([]int8), bDims)
	case []int16:
		return CompareOf(op, out, outDims, x, aDims, b.([]int16), bDims)
	case []int32:
		return CompareOf(op, out, outDims, x, aDims, b.([]int32), bDims)
	case []int64:
		return CompareOf(op, out, outDims, x, aDims, b.([]int64), bDims)
	case []uint8:
		return CompareOf(op, out, outDims, x, aDims, b.([]uint8), bDims)
	case []uint16:
		return CompareOf(op, out, outDims, x, aDims, b.([]uint16), bDims)
	case []uint32:
		return CompareOf(op, out, outDims, x, aDims, b.([]uint32), bDims)
	case []uint64:
		return CompareOf(op, out, outDims, x, aDims, b.([]uint64), bDims)
	case []bool:
		ua, ub := make([]uint8, len(x)), make([]uint8, len(b.([]bool)))
		for i, v := range x {
			if v {
				ua[i] = 1
			}
		}
		for i, v := range b.([]bool) {
			if v {
				ub[i] = 1
			}
		}
		return CompareOf(op, out, outDims, ua, aDims, ub, bDims)
	}
	return fmt.Errorf("elem.Compare %s: unsupported dtype %s", op, typeName(a))
}

// totalKey32 maps a float32 to an int32 whose signed order is the IEEE total
// order of the floats.
func totalKey32(f float32) int64 {
	k := int32(math.Float32bits(f))
	if k < 0 {
		k ^= math.MaxInt32
	}
	return int64(k)
}

// totalKey64 maps a float64 to an int64 whose signed order is the IEEE total
// order of the floats.
func totalKey64(f float64) int64 {
	k := int64(math.Float64bits(f))
	if k < 0 {
		k ^= math.MaxInt64
	}
	return k
}

func compareFloat[T Float](op CompareOp, out []bool, outDims []int, a []T, aDims []int, b []T, bDims []int, key func(T) int64) error {
	name := fmt.Sprintf("elem.Compare %s (%s)", op, typeName(a))
	var f func(x, y T) bool
	switch op {
	case EqualTotalOrder:
		f = func(x, y T) bool { return key(x) == key(y) }
	case NotEqualTotalOrder:
		f = func(x, y T) bool { return key(x) != key(y) }
	case LessThanTotalOrder:
		f = func(x, y T) bool { return key(x) < key(y) }
	case LessOrEqualTotalOrder:
		f = func(x, y T) bool { return key(x) <= key(y) }
	case GreaterThanTotalOrder:
		f = func(x, y T) bool { return key(x) > key(y) }
	case GreaterOrEqualTotalOrder:
		f = func(x, y T) bool { return key(x) >= key(y) }
	default:
		return CompareOf(op, out, outDims, a, aDims, b, bDims)
	}
	return runBinary(name, kernelOf(f), ParallelThreshold, out, outDims, a, aDims, b, bDims)
}

// CompareOf is the typed form of Compare for numeric dtypes. For floats the
// TotalOrder variants are handled by Compare; here they are treated as the
// plain comparisons, which is exact for integers.
func CompareOf[T Number](op CompareOp, out []bool, outDims []int, a []T, aDims []int, b []T, bDims []int) error {
	name := fmt.Sprintf("elem.Compare %s (%s)", op, typeName(a))
	base := op
	if op >= EqualTotalOrder && op < numCompareOps {
		base = op - EqualTotalOrder
	}
	var k kernel[T, bool]
	switch base {
	case Equal:
		k = kernel[T, bool]{eqVV[T], eqVS[T], eqSV[T]}
	case NotEqual:
		k = kernel[T, bool]{neVV[T], neVS[T], neSV[T]}
	case LessThan:
		k = kernel[T, bool]{ltVV[T], ltVS[T], ltSV[T]}
	case LessOrEqual:
		k = kernel[T, bool]{leVV[T], leVS[T], leSV[T]}
	case GreaterThan: // a > b == b < a
		k = kernel[T, bool]{
			func(o []bool, x, y []T) { ltVV(o, y, x) },
			func(o []bool, x []T, s T) { ltSV(o, s, x) },
			func(o []bool, s T, y []T) { ltVS(o, y, s) }}
	case GreaterOrEqual:
		k = kernel[T, bool]{
			func(o []bool, x, y []T) { leVV(o, y, x) },
			func(o []bool, x []T, s T) { leSV(o, s, x) },
			func(o []bool, s T, y []T) { leVS(o, y, s) }}
	default:
		return fmt.Errorf("%s: unknown comparison", name)
	}
	return runBinary(name, k, ParallelThreshold, out, outDims, a, aDims, b, bDims)
}

func eqVV[T Number](o []bool, a, b []T) {
	a, b = a[:len(o)], b[:len(o)]
	for i := range o {
		o[i] = a[i] == b[i]
	}
}

func eqVS[T Number](o []bool, a []T, s T) {
	a = a[:len(o)]
	for i := range o {
		o[i] = a[i] == s
	}
}

func eqSV[T Number](o []bool, s T, b []T) { eqVS(o, b, s) }

func neVV[T Number](o []bool, a, b []T) {
	a, b = a[:len(o)], b[:len(o)]
	for i := range o {
		o[i] = a[i] != b[i]
	}
}

func neVS[T Number](o []bool, a []T, s T) {
	a = a[:len(o)]
	for i := range o {
		o[i] = a[i] != s
	}
}

func neSV[T Number](o []bool, s T, b []T) { neVS(o, b, s) }

func ltVV[T Number](o []bool, a, b []T) {
	a, b = a[:len(o)], b[:len(o)]
	for i := range o {
		o[i] = a[i] < b[i]
	}
}

func ltVS[T Number](o []bool, a []T, s T) {
	a = a[:len(o)]
	for i := range o {
		o[i] = a[i] < s
	}
}

func ltSV[T Number](o []bool, s T, b []T) {
	b = b[:len(o)]
	for i := range o {
		o[i] = s < b[i]
	}
}

func leVV[T Number](o []bool, a, b []T) {
	a, b = a[:len(o)], b[:len(o)]
	for i := range o {
		o[i] = a[i] <= b[i]
	}
}

func leVS[T Number](o []bool, a []T, s T) {
	a = a[:len(o)]
	for i := range o {
		o[i] = a[i] <= s
	}
}

func leSV[T Number](o []bool, s T, b []T) {
	b = b[:len(o)]
	for i := range o {
		o[i] = s <= b[i]
	}
}
