package elem

import (
	"fmt"
	"math"
)

// Convert converts every element of in into out (same length), between any
// of the supported dtypes (numeric and bool). Rules: float to integer
// truncates toward zero and saturates at the integer range, with NaN giving
// 0; integer to integer wraps around (two's complement); to bool is x != 0
// (NaN gives true); from bool gives 1 or 0; float64 to float32 rounds to
// nearest even.
func Convert(out, in any) error {
	ni, no := sliceLen(in), sliceLen(out)
	if ni < 0 || no < 0 {
		return fmt.Errorf("elem.Convert: unsupported dtypes %s -> %s", typeName(in), typeName(out))
	}
	if ni != no {
		return fmt.Errorf("elem.Convert %s -> %s: input has %d elements, output %d", typeName(in), typeName(out), ni, no)
	}
	switch x := in.(type) {
	case []float32:
		return convertFrom(out, x)
	case []float64:
		return convertFrom(out, x)
	case []int8:
		return convertFrom(out, x)
	case []int16:
		return convertFrom(out, x)
	case []int32:
		return convertFrom(out, x)
	case []int64:
		return convertFrom(out, x)
	case []uint8:
		return convertFrom(out, x)
	case []uint16:
		return convertFrom(out, x)
	case []uint32:
		return convertFrom(out, x)
	case []uint64:
		return convertFrom(out, x)
	case []bool:
		if o, ok := out.([]bool); ok {
			copy(o, x)
			return nil
		}
		u := make([]uint8, len(x))
		for i, v := range x {
			if v {
				u[i] = 1
			}
		}
		return convertFrom(out, u)
	}
	return fmt.Errorf("elem.Convert: unsupported dtype %s", typeName(in))
}

func convertFrom[F Number](out any, in []F) error {
	switch o := out.(type) {
	case []float32:
		convertNum(o, in)
	case []float64:
		convertNum(o, in)
	case []int8:
		convertNum(o, in)
	case []int16:
		convertNum(o, in)
	case []int32:
		convertNum(o, in)
	case []int64:
		convertNum(o, in)
	case []uint8:
		convertNum(o, in)
	case []uint16:
		convertNum(o, in)
	case []uint32:
		convertNum(o, in)
	case []uint64:
		convertNum(o, in)
	case []bool:
		mapChunks(o, in, ParallelThreshold, func(d []bool, s []F) {
			s = s[:len(d)]
			for i := range d {
				d[i] = s[i] != 0
			}
		})
	default:
		return fmt.Errorf("elem.Convert %s -> %s: unsupported", typeName(in), typeName(out))
	}
	return nil
}

// intLimits returns, for an integer type T, the exclusive upper bound 2^k of
// its range as a float64, its lower bound as float64, and its extreme values.
func intLimits[T Integer]() (hiExcl, lo float64, minV, maxV T) {
	w := bitWidth[T]()
	var z T
	maxV = ^z
	if maxV < 0 { // signed
		maxV = T(uint64(1)<<(w-1) - 1)
		minV = -maxV - 1
		return math.Ldexp(1, w-1), -math.Ldexp(1, w-1), minV, maxV
	}
	return math.Ldexp(1, w), 0, 0, maxV
}

func convertNum[T, F Number](out []T, in []F) {
	var zf F
	var zt T
	fromFloat, toInt := false, false
	switch any(zf).(type) {
	case float32, float64:
		fromFloat = true
	}
	switch any(zt).(type) {
	case float32, float64:
	default:
		toInt = true
	}
	if fromFloat && toInt {
		convertFloatToInt(out, in)
		return
	}
	mapChunks(out, in, ParallelThreshold, func(d []T, s []F) {
		s = s[:len(d)]
		for i := range d {
			d[i] = T(s[i])
		}
	})
}

func convertFloatToInt[T, F Number](out []T, in []F) {
	var hiExcl, lo float64
	var minV, maxV T
	switch any(out).(type) {
	case []int8:
		hiExcl, lo, minV, maxV = limitsAs[int8, T]()
	case []int16:
		hiExcl, lo, minV, maxV = limitsAs[int16, T]()
	case []int32:
		hiExcl, lo, minV, maxV = limitsAs[int32, T]()
	case []int64:
		hiExcl, lo, minV, maxV = limitsAs[int64, T]()
	case []uint8:
		hiExcl, lo, minV, maxV = limitsAs[uint8, T]()
	case []uint16:
		hiExcl, lo, minV, maxV = limitsAs[uint16, T]()
	case []uint32:
		hiExcl, lo, minV, maxV = limitsAs[uint32, T]()
	case []uint64:
		hiExcl, lo, minV, maxV = limitsAs[uint64, T]()
	}
	mapChunks(out, in, ParallelThreshold, func(d []T, s []F) {
		s = s[:len(d)]
		for i := range d {
			v := float64(s[i])
			switch {
			case v >= hiExcl:
				d[i] = maxV
			case v <= lo:
				d[i] = minV // also for v == lo, which is exact.
			case v == v:
				d[i] = T(v)
			default:
				d[i] = 0 // NaN
			}
		}
	})
}

func limitsAs[I Integer, T Number]() (float64, float64, T, T) {
	h, l, mn, mx := intLimits[I]()
	return h, l, T(mn), T(mx)
}
