package elem

import "math"

// Scalar float32 approximations of transcendental functions. They evaluate
// internally in float64, so the only significant error is the approximation
// error of the formula plus the final rounding to float32.

const (
	log2E   = 1.4426950408889634073599246810018921374266
	ln2     = 0.6931471805599453094172321214581765680755
	roundFP = 6755399441055744.0 // 1.5*2^52: adding it rounds a float64 to an integer.
)

// expCore returns e^x for x in [-700, 700] (and NaN for NaN) with a relative
// error below 1e-8.
func expCore(x float64) float64 {
	kd := (x*log2E + roundFP) - roundFP
	r := x - kd*ln2
	// Taylor polynomial of degree 7 for |r| <= ln2/2: truncation error < 5e-9.
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	scale := math.Float64frombits(uint64(int64(kd)+1023) << 52)
	return p * scale
}

// exp32 approximates e^x for float32 with an error of about half an ulp.
// Overflow gives +Inf, underflow 0 (via subnormals), NaN stays NaN.
func exp32(x float32) float32 {
	xd := float64(x)
	if xd > 200 {
		xd = 200
	} else if xd < -200 {
		xd = -200
	}
	return float32(expCore(xd))
}

// logistic32 approximates 1/(1+e^-x) for float32.
func logistic32(x float32) float32 {
	xd := float64(x)
	if xd > 200 {
		xd = 200
	} else if xd < -200 {
		xd = -200
	}
	if xd >= 0 {
		return float32(1 / (1 + expCore(-xd)))
	}
	e := expCore(xd)
	return float32(e / (1 + e))
}

// Rational approximation erf(x) ~ x*P(x^2)/Q(x^2) on [-4, 4], fitted (weighted
// least squares with Lawson reweighting, 60-digit arithmetic) for this
// package with the leading coefficient fixed to 2/sqrt(pi) (so the relative
// error near 0 stays at float32 rounding). Approximation error < 2.4e-8; beyond |x| = 4, erf rounds to +-1 in
// float32.
const (
	erfP0 = 1.1283791670955125739
	erfP1 = 0.19456932517122068347
	erfP2 = 0.053240576890858625102
	erfP3 = 0.0039282301332490993173
	erfP4 = 0.00028571625973023568154
	erfP5 = 1.980717210375355009e-6
	erfQ1 = 0.50576500510273721473
	erfQ2 = 0.11577636705846856012
	erfQ3 = 0.015297001616182026277
	erfQ4 = 0.0011967202583466860263
	erfQ5 = 0.000037417593768144642926
)

// erf32 approximates the error function for float32; the maximum absolute
// error against math.Erf is below 6e-8 (see TestErfAccuracy).
func erf32(x float32) float32 {
	xd := float64(x)
	if xd > 4 {
		xd = 4
	} else if xd < -4 {
		xd = -4
	}
	z := xd * xd
	p := xd * (erfP0 + z*(erfP1+z*(erfP2+z*(erfP3+z*(erfP4+z*erfP5)))))
	q := 1 + z*(erfQ1+z*(erfQ2+z*(erfQ3+z*(erfQ4+z*erfQ5))))
	return float32(p / q)
}

// tanh32 approximates the hyperbolic tangent for float32.
func tanh32(x float32) float32 {
	xd := float64(x)
	ax := math.Abs(xd)
	if ax < 0.5 {
		// Odd series x*(1 + z*c1 + ...), z = x^2 <= 0.25; terms up to x^21
		// leave a relative truncation error below 1e-9.
		z := xd * xd
		p := -1.0/3 + z*(2.0/15+z*(-17.0/315+z*(62.0/2835+z*(-1382.0/155925+z*(21844.0/6081075+
			z*(-929569.0/638512875+z*(6404582.0/10854718875+z*(-443861162.0/1856156927625+z*(18888466084.0/194896477400625)))))))))
		return float32(xd + xd*z*p)
	}
	if ax > 20 {
		return float32(math.Copysign(1, xd))
	}
	e := expCore(2 * ax)
	t := 1 - 2/(e+1)
	return float32(math.Copysign(t, xd))
}

// log32 approximates the natural logarithm for float32. Non-positive, NaN,
// infinite and subnormal inputs use math.Log.
func log32(x float32) float32 {
	b := math.Float32bits(x)
	if b-0x00800000 >= 0x7f800000-0x00800000 {
		// x <= 0 (sign bit set or zero), subnormal, Inf or NaN.
		return float32(math.Log(float64(x)))
	}
	// x = m * 2^e with m in [sqrt(1/2), sqrt(2)).
	e := int32(b>>23) - 127
	mb := b&0x007fffff | 0x3f800000
	if mb > 0x3fb504f3 { // m > sqrt(2)
		mb -= 0x00800000
		e++
	}
	m := float64(math.Float32frombits(mb))
	s := (m - 1) / (m + 1) // |s| <= 0.1716
	s2 := s * s
	l := 2 * s * (1 + s2*(1.0/3+s2*(1.0/5+s2*(1.0/7+s2*(1.0/9+s2*(1.0/11+s2*(1.0/13)))))))
	return float32(float64(e)*ln2 + l)
}
