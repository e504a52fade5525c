//go:build goexperiment.simd && amd64

package elem

import (
	"math"
	"simd/archsimd"
)

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

// expConsts holds the broadcast constants of vecExp.
type expConsts struct {
	log2e, negLn2, round, one, c2, c3, c4, c5, c6, c7 archsimd.Float64x4
	bias                                              archsimd.Int64x4
}

func newExpConsts() expConsts {
	return expConsts{
		log2e: archsimd.BroadcastFloat64x4(log2E), negLn2: archsimd.BroadcastFloat64x4(-ln2),
		round: archsimd.BroadcastFloat64x4(roundFP), one: archsimd.BroadcastFloat64x4(1),
		c2: archsimd.BroadcastFloat64x4(1.0 / 2), c3: archsimd.BroadcastFloat64x4(1.0 / 6),
		c4: archsimd.BroadcastFloat64x4(1.0 / 24), c5: archsimd.BroadcastFloat64x4(1.0 / 120),
		c6: archsimd.BroadcastFloat64x4(1.0 / 720), c7: archsimd.BroadcastFloat64x4(1.0 / 5040),
		bias: archsimd.BroadcastInt64x4(1023 - 0x4338000000000000),
	}
}

// vecExp is expCore on four lanes; xd must lie in [-700, 700].
func (c *expConsts) vecExp(xd archsimd.Float64x4) archsimd.Float64x4 {
	t := xd.MulAdd(c.log2e, c.round) // roundFP + k
	kd := t.Sub(c.round)
	r := kd.MulAdd(c.negLn2, xd)
	p := r.MulAdd(c.c7, c.c6)
	p = p.MulAdd(r, c.c5)
	p = p.MulAdd(r, c.c4)
	p = p.MulAdd(r, c.c3)
	p = p.MulAdd(r, c.c2)
	p = p.MulAdd(r, c.one)
	p = p.MulAdd(r, c.one)
	scale := t.AsInt64x4().Add(c.bias).ShiftAllLeft(52).AsFloat64x4()
	return p.Mul(scale)
}

// logisticVec is logistic32 on four lanes at a time; see expVec.
func logisticVec(o, x []float32) int {
	if !haveVec {
		return 0
	}
	n := len(o) &^ 3
	x = x[:n]
	c := newExpConsts()
	zero, lo := archsimd.BroadcastFloat64x4(0), archsimd.BroadcastFloat64x4(-200)
	for i := 0; i < n; i += 4 {
		raw := archsimd.LoadFloat32x4Slice(x[i:]).ConvertToFloat64()
		negAbs := raw.Min(zero.Sub(raw)).Max(lo) // -|x|, at least -200
		e := c.vecExp(negAbs)
		s := c.one.Div(c.one.Add(e))             // 1/(1+e^-|x|): the result for x >= 0
		res := e.Mul(s).Merge(s, raw.Less(zero)) // e^x/(1+e^x) for x < 0
		raw.Merge(res, raw.IsNaN()).ConvertToFloat32().StoreSlice(o[i:])
	}
	return n
}

// tanhVec is tanh32 on four lanes at a time; see expVec.
func tanhVec(o, x []float32) int {
	if !haveVec {
		return 0
	}
	n := len(o) &^ 3
	x = x[:n]
	c := newExpConsts()
	zero, half, twenty := archsimd.BroadcastFloat64x4(0), archsimd.BroadcastFloat64x4(0.5), archsimd.BroadcastFloat64x4(20)
	two := archsimd.BroadcastFloat64x4(2)
	var k [10]archsimd.Float64x4
	for j, v := range [10]float64{-1.0 / 3, 2.0 / 15, -17.0 / 315, 62.0 / 2835, -1382.0 / 155925, 21844.0 / 6081075,
		-929569.0 / 638512875, 6404582.0 / 10854718875, -443861162.0 / 1856156927625, 18888466084.0 / 194896477400625} {
		k[j] = archsimd.BroadcastFloat64x4(v)
	}
	for i := 0; i < n; i += 4 {
		raw := archsimd.LoadFloat32x4Slice(x[i:]).ConvertToFloat64()
		neg := zero.Sub(raw)
		ax := raw.Max(neg)
		// Series for |x| < 0.5, on the signed value.
		z := raw.Mul(raw)
		p := z.MulAdd(k[9], k[8])
		for j := 7; j >= 0; j-- {
			p = p.MulAdd(z, k[j])
		}
		small := raw.Mul(z).MulAdd(p, raw)
		// 1 - 2/(e^(2|x|)+1) otherwise (1 beyond 20), with x's sign.
		e := c.vecExp(two.Mul(ax.Min(twenty)))
		t := c.one.Sub(two.Div(e.Add(c.one)))
		t = zero.Sub(t).Merge(t, raw.Less(zero))
		res := small.Merge(t, ax.Less(half))
		raw.Merge(res, raw.IsNaN()).ConvertToFloat32().StoreSlice(o[i:])
	}
	return n
}

// logVec is log32 on eight lanes at a time (see expVec); non-positive,
// subnormal, infinite and NaN inputs are redone with log32 afterwards.
func logVec(o, x []float32) int {
	if !haveVec {
		return 0
	}
	n := len(o) &^ 7
	x = x[:n]
	minNorm, maxFin := archsimd.BroadcastInt32x8(0x00800000), archsimd.BroadcastInt32x8(0x7f7fffff)
	mantMask, oneBits := archsimd.BroadcastInt32x8(0x007fffff), archsimd.BroadcastInt32x8(0x3f800000)
	sqrt2 := archsimd.BroadcastInt32x8(0x3fb504f3)
	one, ln2v := archsimd.BroadcastFloat64x4(1), archsimd.BroadcastFloat64x4(ln2)
	// 2*atanh(s) = s*(2 + s2*(2/3 + s2*(2/5 + ...))).
	c1, c3, c5 := archsimd.BroadcastFloat64x4(2), archsimd.BroadcastFloat64x4(2.0/3), archsimd.BroadcastFloat64x4(2.0/5)
	c7, c9 := archsimd.BroadcastFloat64x4(2.0/7), archsimd.BroadcastFloat64x4(2.0/9)
	c11, c13 := archsimd.BroadcastFloat64x4(2.0/11), archsimd.BroadcastFloat64x4(2.0/13)
	special := false
	for i := 0; i < n; i += 8 {
		b := archsimd.LoadFloat32x8Slice(x[i:]).AsInt32x8()
		if b.Less(minNorm).Or(b.Greater(maxFin)).ToBits() != 0 {
			// Fixed up below: scalar code here, between AVX
			// instructions, would be slow.
			special = true
		}
		mb := b.And(mantMask).Or(oneBits)
		mb = mb.Sub(minNorm.Masked(mb.Greater(sqrt2))) // m in [sqrt(1/2), sqrt(2))
		e := b.Sub(mb).ShiftAllRight(23)               // x = m * 2^e
		mf := mb.AsFloat32x8()
		for h := range 2 {
			var m, ef archsimd.Float64x4
			if h == 0 {
				m, ef = mf.GetLo().ConvertToFloat64(), e.GetLo().ConvertToFloat64()
			} else {
				m, ef = mf.GetHi().ConvertToFloat64(), e.GetHi().ConvertToFloat64()
			}
			s := m.Sub(one).Div(m.Add(one))
			s2 := s.Mul(s)
			p := s2.MulAdd(c13, c11)
			p = p.MulAdd(s2, c9)
			p = p.MulAdd(s2, c7)
			p = p.MulAdd(s2, c5)
			p = p.MulAdd(s2, c3)
			p = p.MulAdd(s2, c1)
			ef.MulAdd(ln2v, s.Mul(p)).ConvertToFloat32().StoreSlice(o[i+4*h:])
		}
	}
	if special {
		for j, v := range x {
			if b := math.Float32bits(v); b-0x00800000 >= 0x7f800000-0x00800000 {
				o[j] = log32(v)
			}
		}
	}
	return n
}
