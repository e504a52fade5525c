package elem

import (
	"fmt"
	"math"
)

// stride01 returns 1 if the operand is contiguous over a segment, 0 if it is
// a broadcast value.
func stride01(contig bool) int {
	if contig {
		return 1
	}
	return 0
}

// Where computes out[i] = cond[i] ? onTrue[i] : onFalse[i] with broadcasting
// (see Binary): cond, onTrue and onFalse may each be a scalar. onTrue and
// onFalse must have out's dtype (any supported dtype, including bool).
func Where(out any, outDims []int, cond []bool, condDims []int, onTrue any, tDims []int, onFalse any, fDims []int) error {
	tn := typeName(out)
	if typeName(onTrue) != tn || typeName(onFalse) != tn {
		return fmt.Errorf("elem.Where: dtypes differ: out %s, onTrue %s, onFalse %s", tn, typeName(onTrue), typeName(onFalse))
	}
	switch o := out.(type) {
	case []float32:
		return WhereOf(o, outDims, cond, condDims, onTrue.([]float32), tDims, onFalse.([]float32), fDims)
	case []float64:
		return WhereOf(o, outDims, cond, condDims, onTrue.([]float64), tDims, onFalse.([]float64), fDims)
	case []int8:
		return WhereOf(o, outDims, cond, condDims, onTrue.([]int8), tDims, onFalse.([]int8), fDims)
	case []int16:
		return WhereOf(o, outDims, cond, condDims, onTrue.([]int16), tDims, onFalse.([]int16), fDims)
	case []int32:
		return WhereOf(o, outDims, cond, condDims, onTrue.([]int32), tDims, onFalse.([]int32), fDims)
	case []int64:
		return WhereOf(o, outDims, cond, condDims, onTrue.([]int64), tDims, onFalse.([]int64), fDims)
	case []uint8:
		return WhereOf(o, outDims, cond, condDims, onTrue.([]uint8), tDims, onFalse.([]uint8), fDims)
	case []uint16:
		return WhereOf(o, outDims, cond, condDims, onTrue.([]uint16), tDims, onFalse.([]uint16), fDims)
	case []uint32:
		return WhereOf(o, outDims, cond, condDims, onTrue.([]uint32), tDims, onFalse.([]uint32), fDims)
	case []uint64:
		return WhereOf(o, outDims, cond, condDims, onTrue.([]uint64), tDims, onFalse.([]uint64), fDims)
	case []bool:
		return WhereOf(o, outDims, cond, condDims, onTrue.([]bool), tDims, onFalse.([]bool), fDims)
	}
	return fmt.Errorf("elem.Where: unsupported dtype %s", tn)
}

// WhereOf is the typed form of Where.
func WhereOf[T any](out []T, outDims []int, cond []bool, condDims []int, onTrue []T, tDims []int, onFalse []T, fDims []int) error {
	name := fmt.Sprintf("elem.Where (%s)", typeName(out))
	p, err := newPlan(name, outDims, condDims, tDims, fDims)
	if err != nil {
		return err
	}
	if len(out) != p.total || len(cond) != p.sizes[0] || len(onTrue) != p.sizes[1] || len(onFalse) != p.sizes[2] {
		return fmt.Errorf("%s: sizes out=%d cond=%d onTrue=%d onFalse=%d do not match dims %v, %v, %v, %v",
			name, len(out), len(cond), len(onTrue), len(onFalse), outDims, condDims, tDims, fDims)
	}
	if bl := p.blk; bl != nil {
		n := bl.size
		p.execBlocks(ParallelThreshold, func() blockFn {
			cb, tb, fb := newBlockOperand(bl, 0, cond), newBlockOperand(bl, 1, onTrue), newBlockOperand(bl, 2, onFalse)
			return func(o int, base *[maxOperands]int) {
				cv, c := cb.get(base[0], n)
				tv, t := tb.get(base[1], n)
				fv, f := fb.get(base[2], n)
				whereBlock(out[o:o+n], cv, c, tv, t, fv, f)
			}
		})
		return nil
	}
	cs, ts, fs := stride01(p.contig[0]), stride01(p.contig[1]), stride01(p.contig[2])
	p.exec(ParallelThreshold, func(o int, off *[maxOperands]int, n int) {
		dst := out[o : o+n]
		c, t, f := cond[off[0]:], onTrue[off[1]:], onFalse[off[2]:]
		switch {
		case cs == 0:
			src, s := t, ts
			if !c[0] {
				src, s = f, fs
			}
			if s == 1 {
				copy(dst, src[:n])
			} else {
				v := src[0]
				for i := range dst {
					dst[i] = v
				}
			}
		case ts == 1 && fs == 1:
			if d, ok := any(dst).([]float32); ok {
				selectF32(d, c[:n], any(t[:n]).([]float32), any(f[:n]).([]float32))
				return
			}
			c, t, f = c[:n], t[:n], f[:n]
			for i := range dst {
				if c[i] {
					dst[i] = t[i]
				} else {
					dst[i] = f[i]
				}
			}
		default:
			if d, ok := any(dst).([]float32); ok {
				selectF32Strided(d, c[:n], any(t).([]float32), ts, any(f).([]float32), fs)
				return
			}
			for i := range dst {
				if c[i] {
					dst[i] = t[i*ts]
				} else {
					dst[i] = f[i*fs]
				}
			}
		}
	})
	return nil
}

// Clamp computes out[i] = min(max(x[i], lo[i]), hi[i]); lo and hi are scalars
// or have x's shape (outDims). NaN in any operand propagates for floats.
func Clamp(out any, outDims []int, lo any, loDims []int, x any, hi any, hiDims []int) error {
	tn := typeName(out)
	if typeName(lo) != tn || typeName(x) != tn || typeName(hi) != tn {
		return fmt.Errorf("elem.Clamp: dtypes differ: out %s, lo %s, x %s, hi %s", tn, typeName(lo), typeName(x), typeName(hi))
	}
	switch o := out.(type) {
	case []float32:
		return ClampOf(o, outDims, lo.([]float32), loDims, x.([]float32), hi.([]float32), hiDims)
	case []float64:
		return ClampOf(o, outDims, lo.([]float64), loDims, x.([]float64), hi.([]float64), hiDims)
	case []int8:
		return ClampOf(o, outDims, lo.([]int8), loDims, x.([]int8), hi.([]int8), hiDims)
	case []int16:
		return ClampOf(o, outDims, lo.([]int16), loDims, x.([]int16), hi.([]int16), hiDims)
	case []int32:
		return ClampOf(o, outDims, lo.([]int32), loDims, x.([]int32), hi.([]int32), hiDims)
	case []int64:
		return ClampOf(o, outDims, lo.([]int64), loDims, x.([]int64), hi.([]int64), hiDims)
	case []uint8:
		return ClampOf(o, outDims, lo.([]uint8), loDims, x.([]uint8), hi.([]uint8), hiDims)
	case []uint16:
		return ClampOf(o, outDims, lo.([]uint16), loDims, x.([]uint16), hi.([]uint16), hiDims)
	case []uint32:
		return ClampOf(o, outDims, lo.([]uint32), loDims, x.([]uint32), hi.([]uint32), hiDims)
	case []uint64:
		return ClampOf(o, outDims, lo.([]uint64), loDims, x.([]uint64), hi.([]uint64), hiDims)
	}
	return fmt.Errorf("elem.Clamp: unsupported dtype %s", tn)
}

// ClampOf is the typed form of Clamp; x has dims outDims.
func ClampOf[T Number](out []T, outDims []int, lo []T, loDims []int, x []T, hi []T, hiDims []int) error {
	name := fmt.Sprintf("elem.Clamp (%s)", typeName(out))
	p, err := newPlan(name, outDims, loDims, outDims, hiDims)
	if err != nil {
		return err
	}
	if len(out) != p.total || len(x) != p.total || len(lo) != p.sizes[0] || len(hi) != p.sizes[2] {
		return fmt.Errorf("%s: sizes out=%d lo=%d x=%d hi=%d do not match dims %v, %v, %v",
			name, len(out), len(lo), len(x), len(hi), outDims, loDims, hiDims)
	}
	if bl := p.blk; bl != nil {
		n := bl.size
		p.execBlocks(ParallelThreshold, func() blockFn {
			lb, xb, hb := newBlockOperand(bl, 0, lo), newBlockOperand(bl, 1, x), newBlockOperand(bl, 2, hi)
			return func(o int, base *[maxOperands]int) {
				dst := out[o : o+n]
				lv, l := lb.get(base[0], n)
				xv, xs := xb.get(base[1], n)
				hv, h := hb.get(base[2], n)
				for i := range dst {
					if lv != nil {
						l = lv[i]
					}
					if xv != nil {
						xs = xv[i]
					}
					if hv != nil {
						h = hv[i]
					}
					dst[i] = min(max(xs, l), h)
				}
			}
		})
		return nil
	}
	ls, hs := stride01(p.contig[0]), stride01(p.contig[2])
	p.exec(ParallelThreshold, func(o int, off *[maxOperands]int, n int) {
		dst := out[o : o+n]
		l, v, h := lo[off[0]:], x[off[1]:off[1]+n], hi[off[2]:]
		if ls == 0 && hs == 0 {
			lv, hv := l[0], h[0]
			for i := range dst {
				dst[i] = min(max(v[i], lv), hv)
			}
			return
		}
		for i := range dst {
			dst[i] = min(max(v[i], l[i*ls]), h[i*hs])
		}
	})
	return nil
}

// whereBlock selects between onTrue and onFalse values for one block; each
// operand is a slice of len(dst) or, when the slice is nil, a single value.
func whereBlock[T any](dst []T, cv []bool, c bool, tv []T, t T, fv []T, f T) {
	n := len(dst)
	switch {
	case cv == nil:
		src, v := tv, t
		if !c {
			src, v = fv, f
		}
		if src != nil {
			copy(dst, src[:n])
			return
		}
		for i := range dst {
			dst[i] = v
		}
	case tv != nil && fv != nil:
		if d, ok := any(dst).([]float32); ok {
			selectF32(d, cv, any(tv).([]float32), any(fv).([]float32))
			return
		}
		cv, tv, fv = cv[:n], tv[:n], fv[:n]
		for i := range dst {
			if cv[i] {
				dst[i] = tv[i]
			} else {
				dst[i] = fv[i]
			}
		}
	case tv != nil:
		cv, tv = cv[:n], tv[:n]
		for i := range dst {
			if cv[i] {
				dst[i] = tv[i]
			} else {
				dst[i] = f
			}
		}
	case fv != nil:
		cv, fv = cv[:n], fv[:n]
		for i := range dst {
			if cv[i] {
				dst[i] = t
			} else {
				dst[i] = fv[i]
			}
		}
	default:
		cv = cv[:n]
		for i := range dst {
			if cv[i] {
				dst[i] = t
			} else {
				dst[i] = f
			}
		}
	}
}

// selectF32 sets dst[i] = t[i] if c[i] else f[i] without branches (random
// conditions would mispredict).
func selectF32(dst []float32, c []bool, t, f []float32) {
	c, t, f = c[:len(dst)], t[:len(dst)], f[:len(dst)]
	for i := range dst {
		var m uint32
		if c[i] {
			m = 1
		}
		m = -m
		dst[i] = math.Float32frombits(math.Float32bits(t[i])&m | math.Float32bits(f[i])&^m)
	}
}

// selectF32Strided is selectF32 with t and f stepping by ts and fs (0 or 1).
func selectF32Strided(dst []float32, c []bool, t []float32, ts int, f []float32, fs int) {
	c = c[:len(dst)]
	for i := range dst {
		var m uint32
		if c[i] {
			m = 1
		}
		m = -m
		dst[i] = math.Float32frombits(math.Float32bits(t[i*ts])&m | math.Float32bits(f[i*fs])&^m)
	}
}
