package elem

import (
	"fmt"
	"math"
	"math/bits"
)

// UnaryOp identifies an element-wise unary operation.
type UnaryOp int

// Unary operations. IsFinite and IsNaN take floats and output bool;
// LogicalNot takes and outputs bool; BitwiseNot, BitCount and Clz take
// integers. The float-only functions (Exp ... Round) reject integer inputs.
const (
	Neg        UnaryOp = iota // -x (integers wrap around).
	Abs                       // |x| (integers wrap around for the minimum value).
	Sign                      // -1, 0 or +1; +-0 and NaN are returned unchanged for floats.
	Exp                       // e^x.
	Expm1                     // e^x - 1.
	Log                       // natural logarithm.
	Log1p                     // log(1 + x).
	Sqrt                      // square root.
	Rsqrt                     // 1 / sqrt(x).
	Erf                       // error function.
	Tanh                      // hyperbolic tangent.
	Logistic                  // 1 / (1 + e^-x), a.k.a. sigmoid.
	Sin                       // sine.
	Cos                       // cosine.
	Floor                     // round toward -Inf.
	Ceil                      // round toward +Inf.
	Round                     // round to nearest, ties to even.
	IsFinite                  // true if not NaN nor +-Inf (output bool).
	IsNaN                     // true if NaN (output bool).
	LogicalNot                // !x for bool.
	BitwiseNot                // ^x for integers.
	BitCount                  // number of set bits (population count) for integers.
	Clz                       // number of leading zero bits for integers.
	numUnaryOps
)

var unaryOpNames = [...]string{"Neg", "Abs", "Sign", "Exp", "Expm1", "Log", "Log1p", "Sqrt", "Rsqrt", "Erf", "Tanh",
	"Logistic", "Sin", "Cos", "Floor", "Ceil", "Round", "IsFinite", "IsNaN", "LogicalNot", "BitwiseNot", "BitCount", "Clz"}

// String returns the op name.
func (op UnaryOp) String() string {
	if op >= 0 && op < numUnaryOps {
		return unaryOpNames[op]
	}
	return fmt.Sprintf("UnaryOp(%d)", int(op))
}

// Unary computes out[i] = op(in[i]). out and in must have the same length;
// out is []bool for IsFinite and IsNaN, and of in's type otherwise. out may
// alias in when they have the same type.
func Unary(op UnaryOp, out, in any) error {
	inLen, outLen := sliceLen(in), sliceLen(out)
	if inLen < 0 || outLen < 0 {
		return fmt.Errorf("elem.Unary %s: unsupported slice types %s -> %s", op, typeName(in), typeName(out))
	}
	if inLen != outLen {
		return fmt.Errorf("elem.Unary %s (%s): input has %d elements, output %d", op, typeName(in), inLen, outLen)
	}
	if op == IsFinite || op == IsNaN {
		o, ok := out.([]bool)
		if !ok {
			return fmt.Errorf("elem.Unary %s (%s): output must be []bool, got %s", op, typeName(in), typeName(out))
		}
		switch x := in.(type) {
		case []float32:
			return unaryFloatPred(op, o, x)
		case []float64:
			return unaryFloatPred(op, o, x)
		}
		return unsupportedUnary(op, in)
	}
	if typeName(in) != typeName(out) {
		return fmt.Errorf("elem.Unary %s: output dtype %s differs from input dtype %s", op, typeName(out), typeName(in))
	}
	switch x := in.(type) {
	case []float32:
		return UnaryFloat32(op, out.([]float32), x)
	case []float64:
		return unaryFloat(op, out.([]float64), x)
	case []int8:
		return unaryInt(op, out.([]int8), x)
	case []int16:
		return unaryInt(op, out.([]int16), x)
	case []int32:
		return unaryInt(op, out.([]int32), x)
	case []int64:
		return unaryInt(op, out.([]int64), x)
	case []uint8:
		return unaryInt(op, out.([]uint8), x)
	case []uint16:
		return unaryInt(op, out.([]uint16), x)
	case []uint32:
		return unaryInt(op, out.([]uint32), x)
	case []uint64:
		return unaryInt(op, out.([]uint64), x)
	case []bool:
		if op != LogicalNot {
			return unsupportedUnary(op, in)
		}
		o := out.([]bool)
		parallelFor(len(x), ParallelThreshold, chunkAlign, func(lo, hi int) {
			src, dst := x[lo:hi], o[lo:hi]
			for i := range dst {
				dst[i] = !src[i]
			}
		})
		return nil
	}
	return unsupportedUnary(op, in)
}

func unsupportedUnary(op UnaryOp, in any) error {
	return fmt.Errorf("elem.Unary %s: unsupported for dtype %s", op, typeName(in))
}

// mapSlice applies f to every element, in parallel for large inputs.
func mapSlice[T, O any](out []O, in []T, threshold int, f func(T) O) {
	parallelFor(len(out), threshold, chunkAlign, func(lo, hi int) {
		src, dst := in[lo:hi], out[lo:hi]
		for i := range dst {
			dst[i] = f(src[i])
		}
	})
}

// mapChunks applies the slice kernel k to contiguous chunks, in parallel for
// large inputs.
func mapChunks[T, O any](out []O, in []T, threshold int, k func(out []O, in []T)) {
	parallelFor(len(out), threshold, chunkAlign, func(lo, hi int) { k(out[lo:hi], in[lo:hi]) })
}

func unaryFloatPred[T Float](op UnaryOp, out []bool, in []T) error {
	if op == IsNaN {
		mapChunks(out, in, ParallelThreshold, func(o []bool, x []T) {
			x = x[:len(o)]
			for i := range o {
				o[i] = x[i] != x[i]
			}
		})
		return nil
	}
	mapChunks(out, in, ParallelThreshold, func(o []bool, x []T) {
		x = x[:len(o)]
		for i := range o {
			v := x[i]
			o[i] = v-v == 0 // false for NaN and +-Inf.
		}
	})
	return nil
}

// UnaryFloat32 computes out[i] = op(in[i]) for float32 data, using fast
// float32 approximations for Exp, Erf, Tanh, Log and Logistic. IsFinite and
// IsNaN are not supported here (they output bool; use Unary).
func UnaryFloat32(op UnaryOp, out, in []float32) error {
	if len(out) != len(in) {
		return fmt.Errorf("elem.Unary %s (float32): input has %d elements, output %d", op, len(in), len(out))
	}
	switch op {
	case Neg:
		mapChunks(out, in, ParallelThreshold, negF32)
	case Abs:
		mapChunks(out, in, ParallelThreshold, absF32)
	case Exp:
		mapChunks(out, in, parallelThresholdHeavy, expF32)
	case Erf:
		mapChunks(out, in, parallelThresholdHeavy, erfF32)
	case Tanh:
		mapChunks(out, in, parallelThresholdHeavy, tanhF32)
	case Log:
		mapChunks(out, in, parallelThresholdHeavy, logF32)
	case Logistic:
		mapChunks(out, in, parallelThresholdHeavy, logisticF32)
	case Sqrt:
		mapChunks(out, in, ParallelThreshold, sqrtF32)
	case Rsqrt:
		mapChunks(out, in, ParallelThreshold, rsqrtF32)
	default:
		return unaryFloat(op, out, in)
	}
	return nil
}

func negF32(o, x []float32) {
	x = x[:len(o)]
	for i := range o {
		o[i] = -x[i]
	}
}

func absF32(o, x []float32) {
	x = x[:len(o)]
	for i := range o {
		o[i] = math.Float32frombits(math.Float32bits(x[i]) &^ (1 << 31))
	}
}

func sqrtF32(o, x []float32) {
	x = x[:len(o)]
	for i := range o {
		o[i] = float32(math.Sqrt(float64(x[i])))
	}
}

func rsqrtF32(o, x []float32) {
	x = x[:len(o)]
	for i := range o {
		o[i] = float32(1 / math.Sqrt(float64(x[i])))
	}
}

func expF32(o, x []float32) {
	x = x[:len(o)]
	done := expVec(o, x)
	o, x = o[done:], x[done:]
	for i := range o {
		o[i] = exp32(x[i])
	}
}

func erfF32(o, x []float32) {
	x = x[:len(o)]
	done := erfVec(o, x)
	o, x = o[done:], x[done:]
	for i := range o {
		o[i] = erf32(x[i])
	}
}

func tanhF32(o, x []float32) {
	x = x[:len(o)]
	done := tanhVec(o, x)
	o, x = o[done:], x[done:]
	for i := range o {
		o[i] = tanh32(x[i])
	}
}

func logF32(o, x []float32) {
	x = x[:len(o)]
	done := logVec(o, x)
	o, x = o[done:], x[done:]
	for i := range o {
		o[i] = log32(x[i])
	}
}

func logisticF32(o, x []float32) {
	x = x[:len(o)]
	done := logisticVec(o, x)
	o, x = o[done:], x[done:]
	for i := range o {
		o[i] = logistic32(x[i])
	}
}

// unaryFloat implements the float unary ops with the math package.
func unaryFloat[T Float](op UnaryOp, out, in []T) error {
	if len(out) != len(in) {
		return fmt.Errorf("elem.Unary %s (%s): input has %d elements, output %d", op, typeName(in), len(in), len(out))
	}
	var f func(float64) float64
	switch op {
	case Neg:
		mapSlice(out, in, ParallelThreshold, func(x T) T { return -x })
		return nil
	case Abs:
		f = math.Abs
	case Sign:
		mapSlice(out, in, ParallelThreshold, func(x T) T {
			switch {
			case x > 0:
				return 1
			case x < 0:
				return -1
			}
			return x // +-0 and NaN.
		})
		return nil
	case Exp:
		f = math.Exp
	case Expm1:
		f = math.Expm1
	case Log:
		f = math.Log
	case Log1p:
		f = math.Log1p
	case Sqrt:
		f = math.Sqrt
	case Rsqrt:
		f = func(x float64) float64 { return 1 / math.Sqrt(x) }
	case Erf:
		f = math.Erf
	case Tanh:
		f = math.Tanh
	case Logistic:
		f = func(x float64) float64 {
			if x >= 0 {
				return 1 / (1 + math.Exp(-x))
			}
			e := math.Exp(x)
			return e / (1 + e)
		}
	case Sin:
		f = math.Sin
	case Cos:
		f = math.Cos
	case Floor:
		f = math.Floor
	case Ceil:
		f = math.Ceil
	case Round:
		f = math.RoundToEven
	default:
		return unsupportedUnary(op, in)
	}
	mapSlice(out, in, parallelThresholdHeavy, func(x T) T { return T(f(float64(x))) })
	return nil
}

// bitWidth returns the number of bits of the integer type T.
func bitWidth[T Integer]() int {
	var z T
	switch any(z).(type) {
	case int8, uint8:
		return 8
	case int16, uint16:
		return 16
	case int32, uint32:
		return 32
	}
	return 64
}

// unaryInt implements the integer unary ops.
func unaryInt[T Integer](op UnaryOp, out, in []T) error {
	if len(out) != len(in) {
		return fmt.Errorf("elem.Unary %s (%s): input has %d elements, output %d", op, typeName(in), len(in), len(out))
	}
	w := bitWidth[T]()
	switch op {
	case Neg:
		mapSlice(out, in, ParallelThreshold, func(x T) T { return -x })
	case Abs:
		mapSlice(out, in, ParallelThreshold, func(x T) T {
			if x < 0 {
				return -x
			}
			return x
		})
	case Sign:
		mapSlice(out, in, ParallelThreshold, func(x T) T {
			switch {
			case x > 0:
				return 1
			case x < 0:
				return ^T(0) // -1
			}
			return 0
		})
	case BitwiseNot:
		mapSlice(out, in, ParallelThreshold, func(x T) T { return ^x })
	case BitCount:
		mask := uint64(1)<<w - 1
		if w == 64 {
			mask = math.MaxUint64
		}
		mapSlice(out, in, ParallelThreshold, func(x T) T { return T(bits.OnesCount64(uint64(x) & mask)) })
	case Clz:
		mask := uint64(1)<<w - 1
		if w == 64 {
			mask = math.MaxUint64
		}
		extra := 64 - w
		mapSlice(out, in, ParallelThreshold, func(x T) T { return T(bits.LeadingZeros64(uint64(x)&mask) - extra) })
	default:
		return unsupportedUnary(op, in)
	}
	return nil
}
