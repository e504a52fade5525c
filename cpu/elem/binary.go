package elem

import (
	"fmt"
	"math"
)

// BinaryOp identifies an element-wise binary operation with broadcasting.
type BinaryOp int

// Binary operations. Arithmetic ops (Add ... Min) take any numeric dtype;
// Atan2 takes floats; bitwise and shift ops take integers; logical ops take
// bool.
const (
	Add                  BinaryOp = iota // a + b.
	Sub                                  // a - b.
	Mul                                  // a * b.
	Div                                  // a / b; integer division truncates, x/0 = -1 (all bits set).
	Rem                                  // remainder with the sign of a (math.Mod, Go's %); integer x%0 = x.
	Pow                                  // a^b; integer b < 0 gives 0 unless a is 1 or -1.
	Max                                  // larger value; NaN if either is NaN.
	Min                                  // smaller value; NaN if either is NaN.
	Atan2                                // atan2(a, b).
	BitwiseAnd                           // a & b.
	BitwiseOr                            // a | b.
	BitwiseXor                           // a ^ b.
	LogicalAnd                           // a && b.
	LogicalOr                            // a || b.
	LogicalXor                           // a != b.
	ShiftLeft                            // a << b; b outside [0, bits) gives 0.
	ShiftRightArithmetic                 // a >> b replicating the sign bit (also for unsigned dtypes).
	ShiftRightLogical                    // a >> b filling with zeros.
	numBinaryOps
)

var binaryOpNames = [...]string{"Add", "Sub", "Mul", "Div", "Rem", "Pow", "Max", "Min", "Atan2", "BitwiseAnd",
	"BitwiseOr", "BitwiseXor", "LogicalAnd", "LogicalOr", "LogicalXor", "ShiftLeft", "ShiftRightArithmetic",
	"ShiftRightLogical"}

// String returns the op name.
func (op BinaryOp) String() string {
	if op >= 0 && op < numBinaryOps {
		return binaryOpNames[op]
	}
	return fmt.Sprintf("BinaryOp(%d)", int(op))
}

// kernel holds the slice kernels of a broadcasting binary operation with
// inputs of type T and outputs of type O: vector-vector, vector-scalar and
// scalar-vector.
type kernel[T, O any] struct {
	vv func(o []O, a, b []T)
	vs func(o []O, a []T, s T)
	sv func(o []O, s T, b []T)
}

// kernelOf builds a kernel from a per-element function.
func kernelOf[T, O any](f func(x, y T) O) kernel[T, O] {
	return kernel[T, O]{
		vv: func(o []O, a, b []T) {
			a, b = a[:len(o)], b[:len(o)]
			for i := range o {
				o[i] = f(a[i], b[i])
			}
		},
		vs: func(o []O, a []T, s T) {
			a = a[:len(o)]
			for i := range o {
				o[i] = f(a[i], s)
			}
		},
		sv: func(o []O, s T, b []T) {
			b = b[:len(o)]
			for i := range o {
				o[i] = f(s, b[i])
			}
		},
	}
}

// runBinary validates sizes and runs kernel k over the broadcast plan.
func runBinary[T, O any](name string, k kernel[T, O], threshold int, out []O, outDims []int, a []T, aDims []int, b []T, bDims []int) error {
	p, err := newPlan(name, outDims, aDims, bDims)
	if err != nil {
		return err
	}
	if len(out) != p.total {
		return fmt.Errorf("%s: output has %d elements, dims %v need %d", name, len(out), outDims, p.total)
	}
	if len(a) != p.sizes[0] || len(b) != p.sizes[1] {
		return fmt.Errorf("%s: operands have %d and %d elements, dims %v and %v need %d and %d",
			name, len(a), len(b), aDims, bDims, p.sizes[0], p.sizes[1])
	}
	if bl := p.blk; bl != nil {
		n := bl.size
		p.execBlocks(threshold, func() blockFn {
			ab, bb := newBlockOperand(bl, 0, a), newBlockOperand(bl, 1, b)
			return func(o int, base *[maxOperands]int) {
				dst := out[o : o+n]
				av, as := ab.get(base[0], n)
				bv, bs := bb.get(base[1], n)
				switch {
				case av != nil && bv != nil:
					k.vv(dst, av, bv)
				case av != nil:
					k.vs(dst, av, bs)
				case bv != nil:
					k.sv(dst, as, bv)
				default:
					k.vv(dst[:1], []T{as}, []T{bs})
					v := dst[0]
					for i := range dst {
						dst[i] = v
					}
				}
			}
		})
		return nil
	}
	ac, bc := p.contig[0], p.contig[1]
	p.exec(threshold, func(o int, off *[maxOperands]int, n int) {
		dst := out[o : o+n]
		ao, bo := off[0], off[1]
		switch {
		case ac && bc:
			k.vv(dst, a[ao:ao+n], b[bo:bo+n])
		case ac:
			k.vs(dst, a[ao:ao+n], b[bo])
		case bc:
			k.sv(dst, a[ao], b[bo:bo+n])
		default:
			k.vv(dst[:1], a[ao:ao+1], b[bo:bo+1])
			v := dst[0]
			for i := range dst {
				dst[i] = v
			}
		}
	})
	return nil
}

// Binary computes out = op(a, b) with broadcasting: a and b have the same
// dtype as out and either the output's rank (each dimension equal to the
// output's or 1) or a single element. Dims describe the row-major shapes.
func Binary(op BinaryOp, out any, outDims []int, a any, aDims []int, b any, bDims []int) error {
	tn := typeName(out)
	if typeName(a) != tn || typeName(b) != tn {
		return fmt.Errorf("elem.Binary %s: dtypes differ: out %s, a %s, b %s", op, tn, typeName(a), typeName(b))
	}
	switch o := out.(type) {
	case []float32:
		return BinaryOf(op, o, outDims, a.([]float32), aDims, b.([]float32), bDims)
	case []float64:
		return BinaryOf(op, o, outDims, a.([]float64), aDims, b.([]float64), bDims)
	case []int8:
		return BinaryOf(op, o, outDims, a.([]int8), aDims, b.([]int8), bDims)
	case []int16:
		return BinaryOf(op, o, outDims, a.([]int16), aDims, b.([]int16), bDims)
	case []int32:
		return BinaryOf(op, o, outDims, a.([]int32), aDims, b.([]int32), bDims)
	case []int64:
		return BinaryOf(op, o, outDims, a.([]int64), aDims, b.([]int64), bDims)
	case []uint8:
		return BinaryOf(op, o, outDims, a.([]uint8), aDims, b.([]uint8), bDims)
	case []uint16:
		return BinaryOf(op, o, outDims, a.([]uint16), aDims, b.([]uint16), bDims)
	case []uint32:
		return BinaryOf(op, o, outDims, a.([]uint32), aDims, b.([]uint32), bDims)
	case []uint64:
		return BinaryOf(op, o, outDims, a.([]uint64), aDims, b.([]uint64), bDims)
	case []bool:
		return BinaryBool(op, o, outDims, a.([]bool), aDims, b.([]bool), bDims)
	}
	return fmt.Errorf("elem.Binary %s: unsupported dtype %s", op, tn)
}

// BinaryOf is the typed form of Binary for numeric dtypes.
func BinaryOf[T Number](op BinaryOp, out []T, outDims []int, a []T, aDims []int, b []T, bDims []int) error {
	k, threshold, err := numKernel[T](op)
	if err != nil {
		return err
	}
	return runBinary(binName(op, out), k, threshold, out, outDims, a, aDims, b, bDims)
}

func binName(op BinaryOp, x any) string {
	return fmt.Sprintf("elem.Binary %s (%s)", op, typeName(x))
}

// BinaryBool is the typed form of Binary for the logical ops on bool.
func BinaryBool(op BinaryOp, out []bool, outDims []int, a []bool, aDims []int, b []bool, bDims []int) error {
	var k kernel[bool, bool]
	switch op {
	case LogicalAnd:
		k = kernelOf(func(x, y bool) bool { return x && y })
	case LogicalOr:
		k = kernelOf(func(x, y bool) bool { return x || y })
	case LogicalXor:
		k = kernelOf(func(x, y bool) bool { return x != y })
	default:
		return fmt.Errorf("elem.Binary %s: unsupported for dtype bool", op)
	}
	return runBinary(binName(op, out), k, ParallelThreshold, out, outDims, a, aDims, b, bDims)
}

// numKernel returns the kernel of op for the numeric type T.
func numKernel[T Number](op BinaryOp) (kernel[T, T], int, error) {
	var zero T
	if _, ok := any(zero).(float32); ok {
		if k, ok := simdBinaryF32(op); ok {
			return any(k).(kernel[T, T]), ParallelThreshold, nil
		}
	}
	switch op {
	case Add:
		return kernel[T, T]{addVV[T], addVS[T], addVS2[T]}, ParallelThreshold, nil
	case Sub:
		return kernel[T, T]{subVV[T], subVS[T], subSV[T]}, ParallelThreshold, nil
	case Mul:
		return kernel[T, T]{mulVV[T], mulVS[T], mulVS2[T]}, ParallelThreshold, nil
	case Max:
		return kernelOf(func(x, y T) T { return max(x, y) }), ParallelThreshold, nil
	case Min:
		return kernelOf(func(x, y T) T { return min(x, y) }), ParallelThreshold, nil
	}
	var z T
	switch any(z).(type) {
	case float32:
		k, th, err := floatKernel[float32](op)
		return any(k).(kernel[T, T]), th, err
	case float64:
		k, th, err := floatKernel[float64](op)
		return any(k).(kernel[T, T]), th, err
	case int8:
		k, err := intKernel[int8](op)
		return any(k).(kernel[T, T]), ParallelThreshold, err
	case int16:
		k, err := intKernel[int16](op)
		return any(k).(kernel[T, T]), ParallelThreshold, err
	case int32:
		k, err := intKernel[int32](op)
		return any(k).(kernel[T, T]), ParallelThreshold, err
	case int64:
		k, err := intKernel[int64](op)
		return any(k).(kernel[T, T]), ParallelThreshold, err
	case uint8:
		k, err := intKernel[uint8](op)
		return any(k).(kernel[T, T]), ParallelThreshold, err
	case uint16:
		k, err := intKernel[uint16](op)
		return any(k).(kernel[T, T]), ParallelThreshold, err
	case uint32:
		k, err := intKernel[uint32](op)
		return any(k).(kernel[T, T]), ParallelThreshold, err
	case uint64:
		k, err := intKernel[uint64](op)
		return any(k).(kernel[T, T]), ParallelThreshold, err
	}
	return kernel[T, T]{}, 0, fmt.Errorf("elem.Binary %s: unsupported dtype %T", op, z)
}

func floatKernel[T Float](op BinaryOp) (kernel[T, T], int, error) {
	switch op {
	case Div:
		return kernel[T, T]{divVV[T], divVS[T], divSV[T]}, ParallelThreshold, nil
	case Rem:
		return kernelOf(func(x, y T) T { return T(math.Mod(float64(x), float64(y))) }), parallelThresholdHeavy, nil
	case Pow:
		return kernelOf(func(x, y T) T { return T(math.Pow(float64(x), float64(y))) }), parallelThresholdHeavy, nil
	case Atan2:
		return kernelOf(func(x, y T) T { return T(math.Atan2(float64(x), float64(y))) }), parallelThresholdHeavy, nil
	}
	var z T
	return kernel[T, T]{}, 0, fmt.Errorf("elem.Binary %s: unsupported for dtype %s", op, typeName([]T{z}))
}

func intKernel[T Integer](op BinaryOp) (kernel[T, T], error) {
	w := uint64(bitWidth[T]())
	switch op {
	case Div:
		return kernelOf(func(x, y T) T {
			if y == 0 {
				return ^T(0)
			}
			return x / y
		}), nil
	case Rem:
		return kernelOf(func(x, y T) T {
			if y == 0 {
				return x
			}
			return x % y
		}), nil
	case Pow:
		return kernelOf(intPow[T]), nil
	case BitwiseAnd:
		return kernelOf(func(x, y T) T { return x & y }), nil
	case BitwiseOr:
		return kernelOf(func(x, y T) T { return x | y }), nil
	case BitwiseXor:
		return kernelOf(func(x, y T) T { return x ^ y }), nil
	case ShiftLeft:
		return kernelOf(func(x, y T) T { return x << uint64(y) }), nil
	case ShiftRightArithmetic:
		sh := 64 - w
		return kernelOf(func(x, y T) T {
			v := int64(uint64(x)<<sh) >> sh // sign-extend from the type's width
			return T(v >> min(uint64(y), 63))
		}), nil
	case ShiftRightLogical:
		mask := uint64(math.MaxUint64) >> (64 - w)
		return kernelOf(func(x, y T) T { return T((uint64(x) & mask) >> uint64(y)) }), nil
	}
	var z T
	return kernel[T, T]{}, fmt.Errorf("elem.Binary %s: unsupported for dtype %s", op, typeName([]T{z}))
}

// intPow computes base^exp for integers by repeated squaring (wrapping on
// overflow); negative exponents give the truncated result (0 unless base is
// 1 or -1).
func intPow[T Integer](base, exp T) T {
	if exp < 0 {
		switch base {
		case 1:
			return 1
		case ^T(0): // -1 for signed types
			if base < 0 {
				if exp&1 != 0 {
					return base
				}
				return 1
			}
		}
		return 0
	}
	result := T(1)
	for exp > 0 {
		if exp&1 != 0 {
			result *= base
		}
		base *= base
		exp >>= 1
	}
	return result
}

// The hot kernels are written out so the compiler emits tight loops.

func addVV[T Number](o, a, b []T) {
	a, b = a[:len(o)], b[:len(o)]
	for i := range o {
		o[i] = a[i] + b[i]
	}
}

func addVS[T Number](o, a []T, s T) {
	a = a[:len(o)]
	for i := range o {
		o[i] = a[i] + s
	}
}

func addVS2[T Number](o []T, s T, b []T) { addVS(o, b, s) }

func subVV[T Number](o, a, b []T) {
	a, b = a[:len(o)], b[:len(o)]
	for i := range o {
		o[i] = a[i] - b[i]
	}
}

func subVS[T Number](o, a []T, s T) {
	a = a[:len(o)]
	for i := range o {
		o[i] = a[i] - s
	}
}

func subSV[T Number](o []T, s T, b []T) {
	b = b[:len(o)]
	for i := range o {
		o[i] = s - b[i]
	}
}

func mulVV[T Number](o, a, b []T) {
	a, b = a[:len(o)], b[:len(o)]
	for i := range o {
		o[i] = a[i] * b[i]
	}
}

func mulVS[T Number](o, a []T, s T) {
	a = a[:len(o)]
	for i := range o {
		o[i] = a[i] * s
	}
}

func mulVS2[T Number](o []T, s T, b []T) { mulVS(o, b, s) }

func divVV[T Float](o, a, b []T) {
	a, b = a[:len(o)], b[:len(o)]
	for i := range o {
		o[i] = a[i] / b[i]
	}
}

func divVS[T Float](o, a []T, s T) {
	a = a[:len(o)]
	for i := range o {
		o[i] = a[i] / s
	}
}

func divSV[T Float](o []T, s T, b []T) {
	b = b[:len(o)]
	for i := range o {
		o[i] = s / b[i]
	}
}
