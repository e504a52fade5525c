//go:build goexperiment.simd && amd64

package elem

import "simd/archsimd"

// Float32 Add, Sub, Mul and Div eight lanes at a time (AVX), used by the
// element-wise kernels and the backend's fused loops in simd builds.

// simdBinaryF32 returns the vectorised float32 kernel of op, if there is one.
func simdBinaryF32(op BinaryOp) (kernel[float32, float32], bool) {
	if !archsimd.X86.AVX() {
		return kernel[float32, float32]{}, false
	}
	switch op {
	case Add:
		return kernel[float32, float32]{vv: addVVf32, vs: addVSf32, sv: func(o []float32, s float32, b []float32) { addVSf32(o, b, s) }}, true
	case Sub:
		return kernel[float32, float32]{vv: subVVf32, vs: subVSf32, sv: subSVf32}, true
	case Mul:
		return kernel[float32, float32]{vv: mulVVf32, vs: mulVSf32, sv: func(o []float32, s float32, b []float32) { mulVSf32(o, b, s) }}, true
	case Div:
		return kernel[float32, float32]{vv: divVVf32, vs: divVSf32, sv: divSVf32}, true
	}
	return kernel[float32, float32]{}, false
}

func addVVf32(o, a, b []float32) {
	n := len(o)
	a, b = a[:n], b[:n]
	i := 0
	for ; i+8 <= n; i += 8 {
		archsimd.LoadFloat32x8Slice(a[i:]).Add(archsimd.LoadFloat32x8Slice(b[i:])).StoreSlice(o[i:])
	}
	for ; i < n; i++ {
		o[i] = a[i] + b[i]
	}
}

func addVSf32(o, a []float32, s float32) {
	n := len(o)
	a = a[:n]
	v := archsimd.BroadcastFloat32x8(s)
	i := 0
	for ; i+8 <= n; i += 8 {
		archsimd.LoadFloat32x8Slice(a[i:]).Add(v).StoreSlice(o[i:])
	}
	for ; i < n; i++ {
		o[i] = a[i] + s
	}
}

func subVVf32(o, a, b []float32) {
	n := len(o)
	a, b = a[:n], b[:n]
	i := 0
	for ; i+8 <= n; i += 8 {
		archsimd.LoadFloat32x8Slice(a[i:]).Sub(archsimd.LoadFloat32x8Slice(b[i:])).StoreSlice(o[i:])
	}
	for ; i < n; i++ {
		o[i] = a[i] - b[i]
	}
}

func subVSf32(o, a []float32, s float32) {
	n := len(o)
	a = a[:n]
	v := archsimd.BroadcastFloat32x8(s)
	i := 0
	for ; i+8 <= n; i += 8 {
		archsimd.LoadFloat32x8Slice(a[i:]).Sub(v).StoreSlice(o[i:])
	}
	for ; i < n; i++ {
		o[i] = a[i] - s
	}
}

func subSVf32(o []float32, s float32, b []float32) {
	n := len(o)
	b = b[:n]
	v := archsimd.BroadcastFloat32x8(s)
	i := 0
	for ; i+8 <= n; i += 8 {
		v.Sub(archsimd.LoadFloat32x8Slice(b[i:])).StoreSlice(o[i:])
	}
	for ; i < n; i++ {
		o[i] = s - b[i]
	}
}

func mulVVf32(o, a, b []float32) {
	n := len(o)
	a, b = a[:n], b[:n]
	i := 0
	for ; i+8 <= n; i += 8 {
		archsimd.LoadFloat32x8Slice(a[i:]).Mul(archsimd.LoadFloat32x8Slice(b[i:])).StoreSlice(o[i:])
	}
	for ; i < n; i++ {
		o[i] = a[i] * b[i]
	}
}

func mulVSf32(o, a []float32, s float32) {
	n := len(o)
	a = a[:n]
	v := archsimd.BroadcastFloat32x8(s)
	i := 0
	for ; i+8 <= n; i += 8 {
		archsimd.LoadFloat32x8Slice(a[i:]).Mul(v).StoreSlice(o[i:])
	}
	for ; i < n; i++ {
		o[i] = a[i] * s
	}
}

func divVVf32(o, a, b []float32) {
	n := len(o)
	a, b = a[:n], b[:n]
	i := 0
	for ; i+8 <= n; i += 8 {
		archsimd.LoadFloat32x8Slice(a[i:]).Div(archsimd.LoadFloat32x8Slice(b[i:])).StoreSlice(o[i:])
	}
	for ; i < n; i++ {
		o[i] = a[i] / b[i]
	}
}

func divVSf32(o, a []float32, s float32) {
	n := len(o)
	a = a[:n]
	v := archsimd.BroadcastFloat32x8(s)
	i := 0
	for ; i+8 <= n; i += 8 {
		archsimd.LoadFloat32x8Slice(a[i:]).Div(v).StoreSlice(o[i:])
	}
	for ; i < n; i++ {
		o[i] = a[i] / s
	}
}

func divSVf32(o []float32, s float32, b []float32) {
	n := len(o)
	b = b[:n]
	v := archsimd.BroadcastFloat32x8(s)
	i := 0
	for ; i+8 <= n; i += 8 {
		v.Div(archsimd.LoadFloat32x8Slice(b[i:])).StoreSlice(o[i:])
	}
	for ; i < n; i++ {
		o[i] = s / b[i]
	}
}
