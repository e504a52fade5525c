// Package layout implements the data-movement kernels of the CPU compute
// backend: Transpose, BroadcastInDim, Slice, Concatenate, Pad, Reverse, Iota,
// Gather, Scatter, DynamicSlice and DynamicUpdateSlice.
//
// Kernels are generic over the element type and work on plain Go slices in
// row-major order; dimensions are given as []int (an empty slice is a scalar).
// Their semantics follow the corresponding compute.Backend operations of
// github.com/gomlx/compute (XLA semantics), with output shapes as computed by
// github.com/gomlx/compute/shapeinference. The caller allocates the outputs.
// Inputs and outputs must not overlap, except where documented.
//
// Invalid arguments are reported as errors naming the operation; kernels never
// panic on bad input. Large operations are split across
// runtime.GOMAXPROCS(0) goroutines.
//
// Internally, most operations are expressed as a strided move: every output
// element of a box is taken from an input element, both addressed by
// per-axis strides. Adjacent axes whose strides compose are merged, unit axes
// dropped, and the innermost work is done by contiguous copy(), fills,
// cache-blocked 2-D transposes, or plain strided loops.
package layout

import (
	"fmt"
	"runtime"

	"github.com/peco-dev/peco/cpu/parallel"
)

// Number is the constraint for element types that support arithmetic (Iota,
// Scatter).
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~uintptr |
		~float32 | ~float64
}

// Integer is the constraint for index types (Gather and Scatter indices).
type Integer interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// ParallelThreshold is the number of elements from which an operation is
// split across goroutines.
const ParallelThreshold = 256 << 10

// errorf returns an error prefixed with the operation name.
func errorf(op, format string, args ...any) error {
	return fmt.Errorf("layout.%s: "+format, append([]any{op}, args...)...)
}

// numElements checks that all dims are non-negative and returns their product.
func numElements(op, what string, dims []int) (int, error) {
	n := 1
	for i, d := range dims {
		if d < 0 {
			return 0, errorf(op, "%s[%d]=%d is negative (dims %v)", what, i, d, dims)
		}
		n *= d
	}
	return n, nil
}

// checkLen checks that a buffer has the length its dimensions require.
func checkLen(op, what string, got int, dims []int) error {
	want, err := numElements(op, what+" dims", dims)
	if err != nil {
		return err
	}
	if got != want {
		return errorf(op, "len(%s)=%d, but dims %v need %d elements", what, got, dims, want)
	}
	return nil
}

// rowMajorStrides returns the row-major element strides of dims.
func rowMajorStrides(dims []int) []int {
	s := make([]int, len(dims))
	st := 1
	for i := len(dims) - 1; i >= 0; i-- {
		s[i] = st
		st *= dims[i]
	}
	return s
}

// parallelFor runs fn over [0, units) split into contiguous ranges, one per
// goroutine, if work (in elements) is large enough; otherwise it calls
// fn(0, units) directly.
func parallelFor(units, work int, fn func(lo, hi int)) {
	w := runtime.GOMAXPROCS(0)
	if work < ParallelThreshold || w < 2 || units < 2 {
		if units > 0 {
			fn(0, units)
		}
		return
	}
	w = min(w, units)
	parallel.Do(w, func(k int) { fn(units*k/w, units*(k+1)/w) })
}

// workers returns how many goroutines an operation of work elements uses.
func workers(work int) int {
	if work < ParallelThreshold {
		return 1
	}
	return runtime.GOMAXPROCS(0)
}

// fill sets every element of out to v.
func fill[T any](out []T, v T) {
	if len(out) == 0 {
		return
	}
	if len(out) <= 32 {
		for i := range out {
			out[i] = v
		}
		return
	}
	// Doubling copies run at memmove speed.
	out[0] = v
	for k := 1; k < len(out); k *= 2 {
		copy(out[k:], out[:k])
	}
}

// parallelFill sets every element of out to v, in parallel for large slices.
func parallelFill[T any](out []T, v T) {
	const chunk = 64 << 10
	n := len(out)
	units := (n + chunk - 1) / chunk
	parallelFor(units, n, func(lo, hi int) {
		fill(out[lo*chunk:min(hi*chunk, n)], v)
	})
}
