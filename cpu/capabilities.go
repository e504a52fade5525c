package cpu

import "github.com/gomlx/compute"

// implemented lists the ops this backend runs (its Capabilities). Fused ops
// are left out on purpose: GoMLX then builds them from primitives, whose
// gradients it knows.
var implemented = map[compute.OpType]bool{}

func init() {
	for op := range unaryOps {
		implemented[op] = true
	}
	for op := range binaryOps {
		implemented[op] = true
	}
	for op := range compareOps {
		implemented[op] = true
	}
	for op := range reduceOps {
		implemented[op] = true
	}
	for _, op := range []compute.OpType{
		compute.OpTypeParameter, compute.OpTypeConstant, compute.OpTypeIdentity, compute.OpTypeOptimizationBarrier,
		compute.OpTypeWhere, compute.OpTypeClamp, compute.OpTypeConvertDType, compute.OpTypeArgMinMax,
		compute.OpTypeReshape, compute.OpTypeBitcast, compute.OpTypeTranspose, compute.OpTypeBroadcastInDim,
		compute.OpTypeSlice, compute.OpTypeConcatenate, compute.OpTypePad, compute.OpTypeReverse, compute.OpTypeIota,
		compute.OpTypeGather, compute.OpTypeScatterSum, compute.OpTypeScatterMax, compute.OpTypeScatterMin,
		compute.OpTypeDynamicSlice, compute.OpTypeDynamicUpdateSlice, compute.OpTypeDotGeneral, compute.OpTypeRNGBitGenerator, compute.OpTypeConvGeneral,
	} {
		implemented[op] = true
	}
}
