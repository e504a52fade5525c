package tflite

import "math"

// This file holds TFLite's fixed-point helpers (tensorflow/lite/kernels/internal/
// quantization_util.cc and common.h, gemmlowp's fixedpoint.h), bit for bit.

// quantizeMultiplier represents a positive real multiplier as a Q0.31
// integer and a power-of-two exponent: m = q * 2^(shift-31).
func quantizeMultiplier(m float64) (q int32, shift int) {
	if m == 0 {
		return 0, 0
	}
	frac, exp := math.Frexp(m)
	qFixed := int64(math.Round(frac * (1 << 31)))
	if qFixed == 1<<31 {
		qFixed /= 2
		exp++
	}
	if exp < -31 {
		return 0, 0
	}
	return int32(qFixed), exp
}

// saturatingRoundingDoublingHighMul is gemmlowp's SaturatingRoundingDoublingHighMul.
func saturatingRoundingDoublingHighMul(a, b int32) int32 {
	if a == b && a == math.MinInt32 {
		return math.MaxInt32
	}
	ab := int64(a) * int64(b)
	nudge := int64(1 << 30)
	if ab < 0 {
		nudge = 1 - (1 << 30)
	}
	return int32((ab + nudge) / (1 << 31))
}

// roundingDivideByPOT is gemmlowp's RoundingDivideByPOT: x / 2^exponent
// rounded to nearest, ties away from zero.
func roundingDivideByPOT(x int32, exponent int) int32 {
	mask := int32(1)<<exponent - 1
	remainder := x & mask
	threshold := mask >> 1
	if x < 0 {
		threshold++
	}
	r := x >> exponent
	if remainder > threshold {
		r++
	}
	return r
}

// multiplyByQuantizedMultiplier is TFLite's MultiplyByQuantizedMultiplier:
// x * q * 2^(shift-31), rounded.
func multiplyByQuantizedMultiplier(x, q int32, shift int) int32 {
	left, right := 0, 0
	if shift > 0 {
		left = shift
	} else {
		right = -shift
	}
	return roundingDivideByPOT(saturatingRoundingDoublingHighMul(x*(1<<left), q), right)
}

// roundHalfAway rounds to nearest with ties away from zero (TfLiteRound).
func roundHalfAway(x float64) int32 { return int32(math.Round(x)) }
