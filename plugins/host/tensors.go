package host

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/plugins/sdk"
)

// ToSDK copies a GoMLX tensor into an sdk tensor (float32, float64,
// int32, int64, uint8 and bool).
func ToSDK(t *tensors.Tensor) (*sdk.Tensor, error) {
	shape := t.Shape().Dimensions
	out := &sdk.Tensor{Shape: append([]int(nil), shape...)}
	var err error
	switch t.DType() {
	case dtypes.Float32:
		out.DType = sdk.Float32
		err = tensors.ConstFlatData(t, func(f []float32) { out.F32 = append([]float32(nil), f...) })
	case dtypes.Float64:
		out.DType = sdk.Float64
		err = tensors.ConstFlatData(t, func(f []float64) { out.F64 = append([]float64(nil), f...) })
	case dtypes.Int32:
		out.DType = sdk.Int32
		err = tensors.ConstFlatData(t, func(f []int32) { out.I32 = append([]int32(nil), f...) })
	case dtypes.Int64:
		out.DType = sdk.Int64
		err = tensors.ConstFlatData(t, func(f []int64) { out.I64 = append([]int64(nil), f...) })
	case dtypes.Uint8:
		out.DType = sdk.Uint8
		err = tensors.ConstFlatData(t, func(f []uint8) { out.U8 = append([]uint8(nil), f...) })
	case dtypes.Bool:
		out.DType = sdk.Bool
		err = tensors.ConstFlatData(t, func(f []bool) { out.B = append([]bool(nil), f...) })
	default:
		return nil, fmt.Errorf("dtype %s cannot go to a plugin", t.DType())
	}
	return out, err
}

// FromSDK makes a GoMLX tensor of an sdk tensor (sharing nothing).
func FromSDK(t *sdk.Tensor) (*tensors.Tensor, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	dims := append([]int(nil), t.Shape...)
	switch t.DType {
	case sdk.Float32:
		return tensors.FromFlatDataAndDimensions(append([]float32(nil), t.F32...), dims...), nil
	case sdk.Float64:
		return tensors.FromFlatDataAndDimensions(append([]float64(nil), t.F64...), dims...), nil
	case sdk.Int32:
		return tensors.FromFlatDataAndDimensions(append([]int32(nil), t.I32...), dims...), nil
	case sdk.Int64:
		return tensors.FromFlatDataAndDimensions(append([]int64(nil), t.I64...), dims...), nil
	case sdk.Uint8:
		return tensors.FromFlatDataAndDimensions(append([]uint8(nil), t.U8...), dims...), nil
	case sdk.Bool:
		return tensors.FromFlatDataAndDimensions(append([]bool(nil), t.B...), dims...), nil
	}
	return nil, fmt.Errorf("unknown dtype %v", t.DType)
}

// sameLayout reports whether two tensors share dtype and shape.
func sameLayout(a, b *sdk.Tensor) bool {
	if a.DType != b.DType || len(a.Shape) != len(b.Shape) {
		return false
	}
	for i := range a.Shape {
		if a.Shape[i] != b.Shape[i] {
			return false
		}
	}
	return true
}

// firstNonFinite returns the index of the first NaN or Inf of a float
// tensor, or -1.
func firstNonFinite(t *sdk.Tensor) int {
	for i, v := range t.F32 {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	for i, v := range t.F64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return i
		}
	}
	return -1
}
