package elem

import "fmt"

// Block kernels: the float32 kernels without broadcasting plans, size checks
// or goroutines, for callers that run a chain of ops over small blocks that
// stay in cache (the backend's fused element-wise loops). Slices passed to
// them must have the output's length (the scalar argument of VS/SV aside).

// BinaryBlockFloat32 holds the block kernels of one binary op: vector-vector,
// vector-scalar and scalar-vector.
type BinaryBlockFloat32 struct {
	VV func(o, a, b []float32)
	VS func(o, a []float32, s float32)
	SV func(o []float32, s float32, b []float32)
}

// BinaryBlockKernelFloat32 returns op's float32 block kernels.
func BinaryBlockKernelFloat32(op BinaryOp) (BinaryBlockFloat32, error) {
	k, _, err := numKernel[float32](op)
	if err != nil {
		return BinaryBlockFloat32{}, err
	}
	if k.vv == nil {
		return BinaryBlockFloat32{}, fmt.Errorf("elem: %s has no float32 kernel", op)
	}
	return BinaryBlockFloat32{VV: k.vv, VS: k.vs, SV: k.sv}, nil
}

// UnaryBlockKernelFloat32 returns op's float32 block kernel, which may write
// in place (o and x the same slice).
func UnaryBlockKernelFloat32(op UnaryOp) (func(o, x []float32), error) {
	switch op {
	case Neg:
		return negF32, nil
	case Abs:
		return absF32, nil
	case Exp:
		return expF32, nil
	case Erf:
		return erfF32, nil
	case Tanh:
		return tanhF32, nil
	case Log:
		return logF32, nil
	case Logistic:
		return logisticF32, nil
	case Sqrt:
		return sqrtF32, nil
	case Rsqrt:
		return rsqrtF32, nil
	}
	// The other ops take the generic path, which runs serially on inputs
	// below the parallel thresholds (blocks are far smaller).
	var probe [1]float32
	if err := unaryFloat(op, probe[:], probe[:]); err != nil {
		return nil, err
	}
	return func(o, x []float32) { _ = unaryFloat(op, o, x) }, nil
}
