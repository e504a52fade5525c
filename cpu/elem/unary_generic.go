//go:build !(goexperiment.simd && amd64)

package elem

// expF32 and erfF32 are the slice kernels for Exp and Erf on float32.
var (
	expF32 = expF32Generic
	erfF32 = erfF32Generic
)
