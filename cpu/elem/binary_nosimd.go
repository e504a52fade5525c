//go:build !(goexperiment.simd && amd64)

package elem

// simdBinaryF32: without GOEXPERIMENT=simd (or off amd64) the scalar
// kernels are used.
func simdBinaryF32(op BinaryOp) (kernel[float32, float32], bool) {
	return kernel[float32, float32]{}, false
}

func simdAddColsF32() func(acc, x []float32) { return nil }

func simdMaxMinF32(isMax bool) (row func(x []float32) float32, cols func(acc, x []float32)) {
	return nil, nil
}
