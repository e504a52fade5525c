package tflite

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Float32 returns the real values of a constant tensor: float32 data as is,
// quantized integers (uint8, int8, int32, int16) as (q - zero_point) * scale,
// per channel along Quant.Dimension when the file has several scales. Errors
// name the tensor.
func (t *Tensor) Float32() ([]float32, error) {
	if t.Data == nil {
		return nil, fmt.Errorf("tensor %s has no data (it is not a constant)", t)
	}
	n := t.NumElements()
	out := make([]float32, n)
	if t.Type == Float32 {
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
		return out, nil
	}
	q, err := t.Ints()
	if err != nil {
		return nil, err
	}
	if t.Quant == nil {
		return nil, fmt.Errorf("tensor %s is %s without quantization parameters", t, t.Type)
	}
	// Per-channel: the channel of flat index i is (i / inner) % channels.
	inner, channels := 1, 1
	if t.Quant.PerChannel() {
		channels = t.Shape[t.Quant.Dimension]
		for _, d := range t.Shape[t.Quant.Dimension+1:] {
			inner *= d
		}
	}
	for i, v := range q {
		c := (i / inner) % channels
		out[i] = float32(float64(int64(v)-t.Quant.ZeroPointAt(c)) * float64(t.Quant.ScaleAt(c)))
	}
	return out, nil
}

// Ints returns the raw integer values of a constant integer tensor (uint8,
// int8, int16, int32) without dequantizing.
func (t *Tensor) Ints() ([]int32, error) {
	if t.Data == nil {
		return nil, fmt.Errorf("tensor %s has no data (it is not a constant)", t)
	}
	n := t.NumElements()
	out := make([]int32, n)
	switch t.Type {
	case Uint8:
		for i := range out {
			out[i] = int32(t.Data[i])
		}
	case Int8:
		for i := range out {
			out[i] = int32(int8(t.Data[i]))
		}
	case Int16:
		for i := range out {
			out[i] = int32(int16(binary.LittleEndian.Uint16(t.Data[2*i:])))
		}
	case Int32:
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	default:
		return nil, fmt.Errorf("tensor %s: type %s is not an integer type", t, t.Type)
	}
	return out, nil
}

// Dequantize maps quantized values of tensor t (per-tensor quantization) to reals.
func (t *Tensor) Dequantize(q []int32) []float32 {
	out := make([]float32, len(q))
	if t.Quant == nil {
		for i, v := range q {
			out[i] = float32(v)
		}
		return out
	}
	s, z := float64(t.Quant.ScaleAt(0)), t.Quant.ZeroPointAt(0)
	for i, v := range q {
		out[i] = float32(float64(int64(v)-z) * s)
	}
	return out
}

// QuantRange returns the integer range of the tensor's type: [0, 255] for
// uint8, [-128, 127] for int8, [-32768, 32767] for int16.
func (t *Tensor) QuantRange() (lo, hi int32) {
	switch t.Type {
	case Int8:
		return -128, 127
	case Int16:
		return -32768, 32767
	case Int32:
		return math.MinInt32, math.MaxInt32
	}
	return 0, 255
}
