//go:build goexperiment.simd && amd64

package elem

import (
	"math"
	"simd/archsimd"
)

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

// simdAddColsF32 returns a vectorised float32 column accumulation
// (acc[i] += x[i]) for reductions, or nil.
func simdAddColsF32() func(acc, x []float32) {
	if !archsimd.X86.AVX() {
		return nil
	}
	return func(acc, x []float32) { addVVf32(acc, acc, x) }
}

// simdMaxMinF32 returns vectorised float32 row and column kernels of Max
// (isMax) or Min for reductions (NaN propagating), or nils.
func simdMaxMinF32(isMax bool) (row func(x []float32) float32, cols func(acc, x []float32)) {
	if !archsimd.X86.AVX() {
		return nil, nil
	}
	if isMax {
		return maxRowF32, maxColsF32
	}
	return minRowF32, minColsF32
}

func maxRowF32(x []float32) float32 {
	n := len(x) &^ 7
	if n == 0 {
		return maxRow(x)
	}
	m := archsimd.LoadFloat32x8Slice(x)
	nan := m.IsNaN()
	for i := 8; i < n; i += 8 {
		v := archsimd.LoadFloat32x8Slice(x[i:])
		m = m.Max(v)
		nan = nan.Or(v.IsNaN())
	}
	var lanes [8]float32
	m.Store(&lanes)
	if nan.ToBits() != 0 {
		return float32(math.NaN())
	}
	return max(maxRow(lanes[:]), maxRow(x[n:]))
}

func maxColsF32(acc, x []float32) {
	n := len(acc)
	x = x[:n]
	i := 0
	for ; i+8 <= n; i += 8 {
		a, v := archsimd.LoadFloat32x8Slice(acc[i:]), archsimd.LoadFloat32x8Slice(x[i:])
		// a+v is NaN where either is NaN.
		a.Add(v).Merge(a.Max(v), a.IsNaN().Or(v.IsNaN())).StoreSlice(acc[i:])
	}
	for ; i < n; i++ {
		acc[i] = max(acc[i], x[i])
	}
}

func minRowF32(x []float32) float32 {
	n := len(x) &^ 7
	if n == 0 {
		return minRow(x)
	}
	m := archsimd.LoadFloat32x8Slice(x)
	nan := m.IsNaN()
	for i := 8; i < n; i += 8 {
		v := archsimd.LoadFloat32x8Slice(x[i:])
		m = m.Min(v)
		nan = nan.Or(v.IsNaN())
	}
	var lanes [8]float32
	m.Store(&lanes)
	if nan.ToBits() != 0 {
		return float32(math.NaN())
	}
	return min(minRow(lanes[:]), minRow(x[n:]))
}

func minColsF32(acc, x []float32) {
	n := len(acc)
	x = x[:n]
	i := 0
	for ; i+8 <= n; i += 8 {
		a, v := archsimd.LoadFloat32x8Slice(acc[i:]), archsimd.LoadFloat32x8Slice(x[i:])
		// a+v is NaN where either is NaN.
		a.Add(v).Merge(a.Min(v), a.IsNaN().Or(v.IsNaN())).StoreSlice(acc[i:])
	}
	for ; i < n; i++ {
		acc[i] = min(acc[i], x[i])
	}
}
