//go:build !amd64

package gemm

// useAVX2 is always false off amd64: only the pure-Go kernel exists there.
var useAVX2 = false

// useAVX512 is always false off amd64.
var useAVX512 = false

// kernel6x32AVX512 is never called off amd64 (useAVX512 is false).
func kernel6x32AVX512(kc int, a, b, c *float32, ldc int, acc bool) {
	panic("gemm: assembly kernel not available on this architecture")
}

// kernel6x32AVX512A is never called off amd64 (useAVX512 is false).
func kernel6x32AVX512A(kc int, a *float32, lda int, b, c *float32, ldc int, acc bool) {
	panic("gemm: assembly kernel not available on this architecture")
}

// kernel6x16AVX2 is never called off amd64 (useAVX2 is false).
func kernel6x16AVX2(kc int, a, b, c *float32, ldc int, acc bool) {
	panic("gemm: assembly kernel not available on this architecture")
}

// kernel6x16AVX2A is never called off amd64 (useAVX2 is false).
func kernel6x16AVX2A(kc int, a *float32, lda int, b, c *float32, ldc int, acc bool) {
	panic("gemm: assembly kernel not available on this architecture")
}

// packA6N is never called off amd64 (useAVX2 is false).
func packA6N(kc int, src *float32, lds int, dst *float32) {
	panic("gemm: assembly packing not available on this architecture")
}

// packA6T is never called off amd64 (useAVX2 is false).
func packA6T(kc int, src *float32, lds int, dst *float32) {
	panic("gemm: assembly packing not available on this architecture")
}

// packB16T is never called off amd64 (useAVX2 is false).
func packB16T(kc int, src *float32, lds int, dst *float32) {
	panic("gemm: assembly packing not available on this architecture")
}

// packB16N is never called off amd64 (useAVX2 is false).
func packB16N(kc int, src *float32, lds int, dst *float32) {
	panic("gemm: assembly packing not available on this architecture")
}

// kernel6x64AVX512 is never called off amd64 (useAVX512 is false).
func kernel6x64AVX512(kc int, a, b, c *float32, ldc int, acc bool) {
	panic("gemm: assembly kernel not available on this architecture")
}

// kernel6x64AVX512A is never called off amd64 (useAVX512 is false).
func kernel6x64AVX512A(kc int, a *float32, lda int, b, c *float32, ldc int, acc bool) {
	panic("gemm: assembly kernel not available on this architecture")
}
