package elem

import "fmt"

// ArgMinMax writes into out the index of the minimum (isMin) or maximum value
// of in along axis; out has in's dims without axis and any integer dtype
// (indices are converted with wrap-around). Ties select the first index; a
// NaN is selected over any number (the first NaN if several).
func ArgMinMax(out any, in any, inDims []int, axis int, isMin bool) error {
	switch x := in.(type) {
	case []float32:
		return argMinMaxTo(out, x, inDims, axis, isMin)
	case []float64:
		return argMinMaxTo(out, x, inDims, axis, isMin)
	case []int8:
		return argMinMaxTo(out, x, inDims, axis, isMin)
	case []int16:
		return argMinMaxTo(out, x, inDims, axis, isMin)
	case []int32:
		return argMinMaxTo(out, x, inDims, axis, isMin)
	case []int64:
		return argMinMaxTo(out, x, inDims, axis, isMin)
	case []uint8:
		return argMinMaxTo(out, x, inDims, axis, isMin)
	case []uint16:
		return argMinMaxTo(out, x, inDims, axis, isMin)
	case []uint32:
		return argMinMaxTo(out, x, inDims, axis, isMin)
	case []uint64:
		return argMinMaxTo(out, x, inDims, axis, isMin)
	}
	return fmt.Errorf("elem.ArgMinMax: unsupported input dtype %s", typeName(in))
}

func argMinMaxTo[T Number](out any, in []T, inDims []int, axis int, isMin bool) error {
	switch o := out.(type) {
	case []int8:
		return ArgMinMaxOf(o, in, inDims, axis, isMin)
	case []int16:
		return ArgMinMaxOf(o, in, inDims, axis, isMin)
	case []int32:
		return ArgMinMaxOf(o, in, inDims, axis, isMin)
	case []int64:
		return ArgMinMaxOf(o, in, inDims, axis, isMin)
	case []uint8:
		return ArgMinMaxOf(o, in, inDims, axis, isMin)
	case []uint16:
		return ArgMinMaxOf(o, in, inDims, axis, isMin)
	case []uint32:
		return ArgMinMaxOf(o, in, inDims, axis, isMin)
	case []uint64:
		return ArgMinMaxOf(o, in, inDims, axis, isMin)
	}
	return fmt.Errorf("elem.ArgMinMax (%s): unsupported output dtype %s", typeName(in), typeName(out))
}

// ArgMinMaxOf is the typed form of ArgMinMax.
func ArgMinMaxOf[I Integer, T Number](out []I, in []T, inDims []int, axis int, isMin bool) error {
	name := fmt.Sprintf("elem.ArgMinMax (%s -> %s)", typeName(in), typeName(out))
	size, err := dimsSize(inDims)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if axis < 0 || axis >= len(inDims) {
		return fmt.Errorf("%s: axis %d out of range for dims %v", name, axis, inDims)
	}
	if len(in) != size {
		return fmt.Errorf("%s: input has %d elements, dims %v need %d", name, len(in), inDims, size)
	}
	R := inDims[axis]
	A, B := 1, 1
	for _, d := range inDims[:axis] {
		A *= d
	}
	for _, d := range inDims[axis+1:] {
		B *= d
	}
	if len(out) != A*B {
		return fmt.Errorf("%s: output has %d elements, needs %d", name, len(out), A*B)
	}
	if R == 0 {
		if A*B != 0 {
			return fmt.Errorf("%s: cannot take arg-min/max over empty axis %d of dims %v", name, axis, inDims)
		}
		return nil
	}
	// better reports whether v should replace the current best b: NaN wins
	// over numbers (v != v), and a NaN best is never replaced.
	better := func(v, b T) bool { return v > b || (v != v && b == b) }
	if isMin {
		better = func(v, b T) bool { return v < b || (v != v && b == b) }
	}
	parallelFor(A, max(ParallelThreshold/(R*B), 0), 1, func(lo, hi int) {
		var best []T
		if B > 1 {
			best = make([]T, B)
		}
		for a := lo; a < hi; a++ {
			x := in[a*R*B : (a+1)*R*B]
			o := out[a*B : (a+1)*B]
			if B == 1 {
				bv, bi := x[0], 0
				for i := 1; i < R; i++ {
					if better(x[i], bv) {
						bv, bi = x[i], i
					}
				}
				o[0] = I(bi)
				continue
			}
			copy(best, x[:B])
			for j := range o {
				o[j] = 0
			}
			for i := 1; i < R; i++ {
				row := x[i*B : (i+1)*B]
				for j, v := range row {
					if better(v, best[j]) {
						best[j], o[j] = v, I(i)
					}
				}
			}
		}
	})
	return nil
}
