package cpu

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"

	"github.com/peco-dev/peco/cpu/layout"
)

// The data-movement kernels of cpu/layout only move elements, so they run
// on the storage seen as unsigned words of the element's size (bool and int8
// as uint8, float32 as uint32, ...): one instantiation per size instead of
// one per dtype.

// words returns flat's storage as a []uint8, []uint16, []uint32 or []uint64.
func words(flat any) any {
	v := reflect.ValueOf(flat)
	n := v.Len()
	var p unsafe.Pointer
	if n > 0 {
		p = v.UnsafePointer()
	}
	switch v.Type().Elem().Size() {
	case 1:
		return unsafe.Slice((*uint8)(p), n)
	case 2:
		return unsafe.Slice((*uint16)(p), n)
	case 4:
		return unsafe.Slice((*uint32)(p), n)
	case 8:
		return unsafe.Slice((*uint64)(p), n)
	}
	panic(fmt.Sprintf("cpu backend: no word type for %T", flat))
}

// mover runs cpu/layout's kernels on flat slices of one element size.
type mover interface {
	copy(dst, src any)
	transpose(out, in any, inDims, perm []int) error
	broadcastInDim(out any, outDims []int, in any, inDims, axes []int) error
	slice(out, in any, inDims, starts, limits, strides []int) error
	concatenate(out any, ins []any, inDims [][]int, axis int) error
	pad(out, in any, inDims []int, fill any, cfg []compute.PadAxis) error
	reverse(out, in any, dims, axes []int) error
	gather(out, operand any, operandDims []int, indices any, indicesDims []int, indexVectorAxis int,
		offsetOutputAxes, collapsedSliceAxes, startIndexMap, sliceSizes []int) error
	dynamicSlice(out, in any, inDims, starts, sliceDims []int) error
	dynamicUpdateSlice(out any, outDims []int, update any, updateDims, starts []int) error
}

// moverFor returns the mover for dt's element size.
func moverFor(dt dtypes.DType) mover {
	switch dt.Size() {
	case 1:
		return wordMover[uint8]{}
	case 2:
		return wordMover[uint16]{}
	case 4:
		return wordMover[uint32]{}
	}
	return wordMover[uint64]{}
}

type wordMover[W uint8 | uint16 | uint32 | uint64] struct{}

func (wordMover[W]) w(flat any) []W { return words(flat).([]W) }

func (m wordMover[W]) copy(dst, src any) { copy(m.w(dst), m.w(src)) }

func (m wordMover[W]) transpose(out, in any, inDims, perm []int) error {
	return layout.Transpose(m.w(out), m.w(in), inDims, perm)
}

func (m wordMover[W]) broadcastInDim(out any, outDims []int, in any, inDims, axes []int) error {
	return layout.BroadcastInDim(m.w(out), outDims, m.w(in), inDims, axes)
}

func (m wordMover[W]) slice(out, in any, inDims, starts, limits, strides []int) error {
	return layout.Slice(m.w(out), m.w(in), inDims, starts, limits, strides)
}

func (m wordMover[W]) concatenate(out any, ins []any, inDims [][]int, axis int) error {
	parts := make([][]W, len(ins))
	for i, x := range ins {
		parts[i] = m.w(x)
	}
	return layout.Concatenate(m.w(out), parts, inDims, axis)
}

func (m wordMover[W]) pad(out, in any, inDims []int, fill any, cfg []compute.PadAxis) error {
	return layout.Pad(m.w(out), m.w(in), inDims, m.w(fill)[0], cfg)
}

func (m wordMover[W]) reverse(out, in any, dims, axes []int) error {
	return layout.Reverse(m.w(out), m.w(in), dims, axes)
}

func (m wordMover[W]) gather(out, operand any, operandDims []int, indices any, indicesDims []int, indexVectorAxis int,
	offsetOutputAxes, collapsedSliceAxes, startIndexMap, sliceSizes []int) error {
	switch idx := indices.(type) {
	case []int32:
		return layout.Gather(m.w(out), m.w(operand), operandDims, idx, indicesDims, indexVectorAxis,
			offsetOutputAxes, collapsedSliceAxes, startIndexMap, sliceSizes)
	case []int64:
		return layout.Gather(m.w(out), m.w(operand), operandDims, idx, indicesDims, indexVectorAxis,
			offsetOutputAxes, collapsedSliceAxes, startIndexMap, sliceSizes)
	}
	return fmt.Errorf("Gather: indices of type %T are not supported (int32, int64)", indices)
}

func (m wordMover[W]) dynamicSlice(out, in any, inDims, starts, sliceDims []int) error {
	return layout.DynamicSlice(m.w(out), m.w(in), inDims, starts, sliceDims)
}

func (m wordMover[W]) dynamicUpdateSlice(out any, outDims []int, update any, updateDims, starts []int) error {
	return layout.DynamicUpdateSlice(m.w(out), outDims, m.w(update), updateDims, starts)
}
