//go:build goexperiment.simd && amd64

package elem

import "simd/archsimd"

// Vectorised Exp and Erf for float32 slices (AVX2 + FMA, four lanes of
// float64 at a time): the same formulas as expCore and erf32, evaluated in
// float64 exactly as the scalar code does, so the results agree with it to
// within the rounding differences FMA brings.

var haveVec = archsimd.X86.AVX2() && archsimd.X86.FMA()

// expVec writes e^x for x[i] into o[i] for the first len(o) &^ 3 elements
// and returns how many it did.
func expVec(o, x []float32) int {
	if !haveVec {
		return 0
	}
	n := len(o) &^ 3
	x = x[:n]
	lo, hi := archsimd.BroadcastFloat64x4(-104), archsimd.BroadcastFloat64x4(89)
	log2e, negLn2 := archsimd.BroadcastFloat64x4(log2E), archsimd.BroadcastFloat64x4(-ln2)
	round := archsimd.BroadcastFloat64x4(roundFP)
	one := archsimd.BroadcastFloat64x4(1)
	c2, c3, c4 := archsimd.BroadcastFloat64x4(1.0/2), archsimd.BroadcastFloat64x4(1.0/6), archsimd.BroadcastFloat64x4(1.0/24)
	c5, c6, c7 := archsimd.BroadcastFloat64x4(1.0/120), archsimd.BroadcastFloat64x4(1.0/720), archsimd.BroadcastFloat64x4(1.0/5040)
	// bits(roundFP + k) = bits(roundFP) + k; the exponent field of 2^k is k + 1023.
	bias := archsimd.BroadcastInt64x4(1023 - 0x4338000000000000)
	for i := 0; i < n; i += 4 {
		raw := archsimd.LoadFloat32x4Slice(x[i:]).ConvertToFloat64()
		xd := raw.Max(lo).Min(hi)
		t := xd.MulAdd(log2e, round) // roundFP + k
		kd := t.Sub(round)
		r := kd.MulAdd(negLn2, xd)
		p := r.MulAdd(c7, c6)
		p = p.MulAdd(r, c5)
		p = p.MulAdd(r, c4)
		p = p.MulAdd(r, c3)
		p = p.MulAdd(r, c2)
		p = p.MulAdd(r, one)
		p = p.MulAdd(r, one)
		scale := t.AsInt64x4().Add(bias).ShiftAllLeft(52).AsFloat64x4()
		raw.Merge(p.Mul(scale), raw.IsNaN()).ConvertToFloat32().StoreSlice(o[i:]) // NaN stays NaN
	}
	return n
}

// erfVec is erf32 on four lanes at a time; see expVec.
func erfVec(o, x []float32) int {
	if !haveVec {
		return 0
	}
	n := len(o) &^ 3
	x = x[:n]
	lo, hi := archsimd.BroadcastFloat64x4(-4), archsimd.BroadcastFloat64x4(4)
	p0, p1, p2 := archsimd.BroadcastFloat64x4(erfP0), archsimd.BroadcastFloat64x4(erfP1), archsimd.BroadcastFloat64x4(erfP2)
	p3, p4, p5 := archsimd.BroadcastFloat64x4(erfP3), archsimd.BroadcastFloat64x4(erfP4), archsimd.BroadcastFloat64x4(erfP5)
	q1, q2, q3 := archsimd.BroadcastFloat64x4(erfQ1), archsimd.BroadcastFloat64x4(erfQ2), archsimd.BroadcastFloat64x4(erfQ3)
	q4, q5 := archsimd.BroadcastFloat64x4(erfQ4), archsimd.BroadcastFloat64x4(erfQ5)
	one := archsimd.BroadcastFloat64x4(1)
	for i := 0; i < n; i += 4 {
		raw := archsimd.LoadFloat32x4Slice(x[i:]).ConvertToFloat64()
		xd := raw.Max(lo).Min(hi)
		z := xd.Mul(xd)
		p := z.MulAdd(p5, p4)
		p = p.MulAdd(z, p3)
		p = p.MulAdd(z, p2)
		p = p.MulAdd(z, p1)
		p = p.MulAdd(z, p0)
		q := z.MulAdd(q5, q4)
		q = q.MulAdd(z, q3)
		q = q.MulAdd(z, q2)
		q = q.MulAdd(z, q1)
		q = q.MulAdd(z, one)
		raw.Merge(xd.Mul(p).Div(q), raw.IsNaN()).ConvertToFloat32().StoreSlice(o[i:]) // NaN stays NaN
	}
	return n
}
