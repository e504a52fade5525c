package cpu

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"unsafe"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapeinference"
	"github.com/gomlx/compute/shapes"

	"github.com/peco-dev/peco/cpu/gemm"
)

// DotGeneral is the general tensor contraction (see
// compute.StandardOps.DotGeneral). It is run as a batched matrix product
// [B, M, K] x [B, K, N] -> [B, M, N]: when an operand's axes are already in
// the order (batch, free, contracting) or (batch, contracting, free) the
// matmul reads it as it is (the kernel's packing absorbs the transposition);
// otherwise a Transpose node brings it into that order first.
func (f *Function) DotGeneral(lhs compute.Value, lhsContractingAxes, lhsBatchAxes []int,
	rhs compute.Value, rhsContractingAxes, rhsBatchAxes []int, config compute.DotGeneralConfig) (compute.Value, error) {
	ns, err := f.nodesOf("DotGeneral", lhs, rhs)
	if err != nil {
		return nil, err
	}
	l, r := ns[0], ns[1]
	shape, err := shapeinference.DotGeneral(l.shape, lhsContractingAxes, lhsBatchAxes, r.shape, rhsContractingAxes, rhsBatchAxes, config)
	if err != nil {
		return nil, err
	}
	lFree := freeAxes(l.shape.Rank(), lhsContractingAxes, lhsBatchAxes)
	rFree := freeAxes(r.shape.Rank(), rhsContractingAxes, rhsBatchAxes)
	size := func(dims []int, axes []int) int {
		p := 1
		for _, a := range axes {
			p *= dims[a]
		}
		return p
	}
	batch := size(l.shape.Dimensions, lhsBatchAxes)
	m := size(l.shape.Dimensions, lFree)
	k := size(l.shape.Dimensions, lhsContractingAxes)
	n := size(r.shape.Dimensions, rFree)

	// lhs as [B, M, K] (or [B, K, M] with transA); rhs as [B, K, N] (or [B, N, K] with transB).
	lhsNormal := concatAxes(lhsBatchAxes, lFree, lhsContractingAxes)
	lhsTrans := concatAxes(lhsBatchAxes, lhsContractingAxes, lFree)
	transA := false
	switch {
	case isIdentityPerm(lhsNormal):
	case isIdentityPerm(lhsTrans):
		transA = true
	default:
		if l, err = f.transpose(l, lhsNormal); err != nil {
			return nil, err
		}
	}
	rhsNormal := concatAxes(rhsBatchAxes, rhsContractingAxes, rFree)
	rhsTrans := concatAxes(rhsBatchAxes, rFree, rhsContractingAxes)
	transB := false
	switch {
	case isIdentityPerm(rhsNormal):
	case isIdentityPerm(rhsTrans):
		transB = true
	default:
		if r, err = f.transpose(r, rhsNormal); err != nil {
			return nil, err
		}
	}
	outDType := shape.DType
	shape.DType = l.shape.DType
	dot, err := f.add(compute.OpTypeDotGeneral, shape, []*node{l, r}, func(out any, ins []any) error {
		return matmul(batch, m, n, k, ins[0], transA, ins[1], transB, out)
	})
	if err != nil {
		return nil, err
	}
	if dt := shape.DType; dt == dtypes.Float32 || dt == dtypes.Float64 {
		dot.flops = 2 * int64(batch) * int64(m) * int64(n) * int64(k)
	}
	if outDType == shape.DType {
		return dot, err
	}
	return f.ConvertDType(dot, outDType)
}

func matmul(batch, m, n, k int, a any, transA bool, b any, transB bool, c any) error {
	switch cc := c.(type) {
	case []float32:
		gemm.MatMulFloat32(batch, m, n, k, a.([]float32), transA, b.([]float32), transB, cc)
	case []float64:
		gemm.MatMul(batch, m, n, k, a.([]float64), transA, b.([]float64), transB, cc)
	case []int32:
		gemm.MatMul(batch, m, n, k, a.([]int32), transA, b.([]int32), transB, cc)
	case []int64:
		gemm.MatMul(batch, m, n, k, a.([]int64), transA, b.([]int64), transB, cc)
	case []int8:
		gemm.MatMul(batch, m, n, k, a.([]int8), transA, b.([]int8), transB, cc)
	case []int16:
		gemm.MatMul(batch, m, n, k, a.([]int16), transA, b.([]int16), transB, cc)
	case []uint8:
		gemm.MatMul(batch, m, n, k, a.([]uint8), transA, b.([]uint8), transB, cc)
	case []uint16:
		gemm.MatMul(batch, m, n, k, a.([]uint16), transA, b.([]uint16), transB, cc)
	case []uint32:
		gemm.MatMul(batch, m, n, k, a.([]uint32), transA, b.([]uint32), transB, cc)
	case []uint64:
		gemm.MatMul(batch, m, n, k, a.([]uint64), transA, b.([]uint64), transB, cc)
	default:
		return fmt.Errorf("DotGeneral: dtype %T is not supported", c)
	}
	return nil
}

// freeAxes lists the axes of a rank-r operand that are neither contracted
// nor batch, in order.
func freeAxes(rank int, contracting, batch []int) []int {
	var out []int
	for a := range rank {
		if !slices.Contains(contracting, a) && !slices.Contains(batch, a) {
			out = append(out, a)
		}
	}
	return out
}

func concatAxes(parts ...[]int) []int {
	var out []int
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func isIdentityPerm(p []int) bool {
	for i, a := range p {
		if a != i {
			return false
		}
	}
	return true
}

// RNGBitGenerator fills shape with random bits from state ([2+]uint64) and
// returns the advanced state. The bits are those of math/rand/v2's PCG seeded
// with (state[0], state[1]), little-endian, 8 bytes per Uint64 — the same
// stream GoMLX's pure-Go backend produces, so a model initialised (or a
// dropout mask drawn) from a seed is the same on both backends.
func (f *Function) RNGBitGenerator(state compute.Value, shape shapes.Shape) (compute.Value, compute.Value, error) {
	st, err := f.node(state, "RNGBitGenerator")
	if err != nil {
		return nil, nil, err
	}
	if st.shape.DType != dtypes.Uint64 || st.shape.Rank() != 1 || st.shape.Dim(0) < 2 {
		return nil, nil, fmt.Errorf("cpu backend: RNGBitGenerator: state must be a uint64 vector of 2 or more values, got %s", st.shape)
	}
	shape = shape.Clone()
	nBytes := int(shape.Memory())
	newState, err := f.add(compute.OpTypeRNGBitGenerator, st.shape, []*node{st}, func(out any, ins []any) error {
		o, s := out.([]uint64), ins[0].([]uint64)
		copy(o, s)
		rng := rand.NewPCG(s[0], s[1])
		for range (nBytes + 7) / 8 {
			rng.Uint64()
		}
		// The new state is the PCG's marshalled (hi, lo) read as
		// little-endian words: what GoMLX's pure-Go backend stores.
		b, err := rng.MarshalBinary()
		if err != nil || len(b) != 20 || string(b[:4]) != "pcg:" {
			return fmt.Errorf("RNGBitGenerator: unexpected PCG state encoding %q (%v)", b, err)
		}
		o[0], o[1] = binary.LittleEndian.Uint64(b[4:12]), binary.LittleEndian.Uint64(b[12:20])
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	values, err := f.add(compute.OpTypeRNGBitGenerator, shape, []*node{st}, func(out any, ins []any) error {
		s := ins[0].([]uint64)
		rng := rand.NewPCG(s[0], s[1])
		b := bytesOf(out)
		for i := 0; i < len(b); i += 8 {
			var w [8]byte
			binary.LittleEndian.PutUint64(w[:], rng.Uint64())
			copy(b[i:], w[:])
		}
		return nil
	})
	return newState, values, err
}

// bytesOf returns flat's storage as bytes.
func bytesOf(flat any) []byte {
	v := reflect.ValueOf(flat)
	n := v.Len() * int(v.Type().Elem().Size())
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(v.UnsafePointer()), n)
}
