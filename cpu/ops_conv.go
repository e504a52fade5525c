package cpu

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapeinference"
	"github.com/gomlx/compute/shapes"

	"github.com/peco-dev/peco/cpu/conv"
)

// ConvGeneral is the general convolution (see
// compute.StandardOps.ConvGeneral), for float32. The input is brought to
// [batch, spatial..., channels] and the kernel to [spatial..., in channels,
// out channels] (Transpose nodes, skipped when the layout already is that),
// the convolution runs there as a blocked implicit im2col with the packed
// matmul (cpu/conv), and its [batch, spatial..., channels] result is
// transposed to the requested output layout if needed. Convolutions in the
// layout GoMLX gives the kernel gradient of a channels-last convolution
// (see kernelGradLayout) are computed without transposing their operands.
func (f *Function) ConvGeneral(input, kernel compute.Value, axes compute.ConvolveAxesConfig, strides []int, paddings [][2]int,
	inputDilations, kernelDilations []int, channelGroupCount, batchGroupCount int) (compute.Value, error) {
	ns, err := f.nodesOf("ConvGeneral", input, kernel)
	if err != nil {
		return nil, err
	}
	in, k := ns[0], ns[1]
	channelGroupCount, batchGroupCount = max(channelGroupCount, 1), max(batchGroupCount, 1)
	shape, err := shapeinference.ConvGeneral(in.shape, k.shape, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount)
	if err != nil {
		return nil, err
	}
	if in.shape.DType != dtypes.Float32 || k.shape.DType != dtypes.Float32 {
		return nil, fmt.Errorf("cpu backend: ConvGeneral: dtype %s is not supported (float32 only): %w", in.shape.DType, compute.ErrNotImplemented)
	}
	rank := in.shape.Rank()
	n := rank - 2
	if kernelGradLayout(axes, rank, channelGroupCount, batchGroupCount) {
		return f.convKernelGrad(in, k, shape, axes, strides, paddings, inputDilations, kernelDilations)
	}

	inPerm := append(append([]int{axes.InputBatch}, axes.InputSpatial...), axes.InputChannels)
	kPerm := append(append([]int(nil), axes.KernelSpatial...), axes.KernelInputChannels, axes.KernelOutputChannels)
	if in, err = f.transpose(in, inPerm); err != nil {
		return nil, err
	}
	if k, err = f.transpose(k, kPerm); err != nil {
		return nil, err
	}

	p := &conv.Params{
		Batch:         in.shape.Dim(0),
		Channels:      in.shape.Dim(rank - 1),
		InSpatial:     append([]int(nil), in.shape.Dimensions[1:rank-1]...),
		KernelSpatial: append([]int(nil), k.shape.Dimensions[:n]...),
		OutChannels:   shape.Dim(axes.OutputChannels),
		OutSpatial:    make([]int, n),
		PadLow:        make([]int, n),
		ChannelGroups: channelGroupCount,
		BatchGroups:   batchGroupCount,
	}
	for d := range n {
		p.OutSpatial[d] = shape.Dim(axes.OutputSpatial[d])
		if paddings != nil {
			p.PadLow[d] = paddings[d][0]
		}
	}
	if strides != nil {
		p.Strides = append([]int(nil), strides...)
	}
	if inputDilations != nil {
		p.InputDilations = append([]int(nil), inputDilations...)
	}
	if kernelDilations != nil {
		p.KernelDilations = append([]int(nil), kernelDilations...)
	}

	// The result in canonical layout, then in the requested one: output
	// axis a is canonical axis outPerm[a].
	canon := shape.Clone()
	canon.Dimensions = append(append([]int{shape.Dim(axes.OutputBatch)}, p.OutSpatial...), p.OutChannels)
	out, err := f.add(compute.OpTypeConvGeneral, canon, []*node{in, k}, func(out any, ins []any) error {
		return conv.Float32(out.([]float32), ins[0].([]float32), ins[1].([]float32), p)
	})
	if err != nil {
		return nil, err
	}
	// 2 x output elements x (taps x input channels per group); the zeros an
	// input dilation inserts are multiplied, so they count.
	out.flops = 2 * int64(canon.Size()) * int64(prod(p.KernelSpatial)) * int64(p.Channels/channelGroupCount)
	switch {
	case channelGroupCount > 1 || batchGroupCount > 1:
		out.label = "ConvGeneral/grouped"
	case anyAbove1(inputDilations):
		out.label = "ConvGeneral/input-dilated"
	default:
		out.label = "ConvGeneral/forward"
	}
	outPerm := make([]int, rank)
	outPerm[axes.OutputBatch] = 0
	for d, a := range axes.OutputSpatial {
		outPerm[a] = 1 + d
	}
	outPerm[axes.OutputChannels] = rank - 1
	if isIdentityPerm(outPerm) {
		return out, nil
	}
	return f.transpose(out, outPerm)
}

// kernelGradLayout reports whether a convolution has the form GoMLX gives
// the gradient of a channels-last convolution with respect to its kernel,
// with operands stored so that convKernelGrad needs no transposition: the
// input [input channels, spatial..., input batch] and the kernel [kernel
// input channels, spatial..., kernel output channels], with one group.
func kernelGradLayout(axes compute.ConvolveAxesConfig, rank, channelGroupCount, batchGroupCount int) bool {
	if channelGroupCount != 1 || batchGroupCount != 1 ||
		axes.InputChannels != 0 || axes.InputBatch != rank-1 ||
		axes.KernelInputChannels != 0 || axes.KernelOutputChannels != rank-1 {
		return false
	}
	for d := range rank - 2 {
		if axes.InputSpatial[d] != 1+d || axes.KernelSpatial[d] != 1+d {
			return false
		}
	}
	return true
}

// convKernelGrad computes a convolution of kernelGradLayout's form. Seen
// the other way round it is the gradient of a convolution with respect to
// its kernel: the input is the forward input x [N, spatial..., C] (N, the
// summed "channels" here, is its batch and C, the "batch" here, its
// channels), the kernel is the forward output's gradient dy [N, out
// spatial..., Co], the output spatial axes are the forward kernel's taps,
// the strides are the forward kernel dilations and the kernel dilations
// the forward strides. conv.KernelGradFloat32 computes it from x and dy as
// stored, into [taps..., C, Co], which is transposed to the requested output
// layout if needed.
func (f *Function) convKernelGrad(in, k *node, shape shapes.Shape, axes compute.ConvolveAxesConfig, strides []int, paddings [][2]int,
	inputDilations, kernelDilations []int) (compute.Value, error) {
	rank := in.shape.Rank()
	n := rank - 2
	p := &conv.Params{
		Batch:         in.shape.Dim(0),
		Channels:      in.shape.Dim(rank - 1),
		InSpatial:     append([]int(nil), in.shape.Dimensions[1:rank-1]...),
		KernelSpatial: make([]int, n),
		OutChannels:   k.shape.Dim(rank - 1),
		OutSpatial:    append([]int(nil), k.shape.Dimensions[1:rank-1]...),
		PadLow:        make([]int, n),
	}
	for d := range n {
		p.KernelSpatial[d] = shape.Dim(axes.OutputSpatial[d])
		if paddings != nil {
			p.PadLow[d] = paddings[d][0]
		}
	}
	if strides != nil {
		p.KernelDilations = append([]int(nil), strides...)
	}
	if kernelDilations != nil {
		p.Strides = append([]int(nil), kernelDilations...)
	}
	if inputDilations != nil {
		p.InputDilations = append([]int(nil), inputDilations...)
	}

	canon := shape.Clone()
	canon.Dimensions = append(append([]int(nil), p.KernelSpatial...), p.Channels, p.OutChannels)
	out, err := f.add(compute.OpTypeConvGeneral, canon, []*node{in, k}, func(out any, ins []any) error {
		return conv.KernelGradFloat32(out.([]float32), ins[0].([]float32), ins[1].([]float32), p)
	})
	if err != nil {
		return nil, err
	}
	// 2 x kernel elements x (batch x output positions of the forward conv).
	out.flops = 2 * int64(canon.Size()) * int64(p.Batch) * int64(prod(p.OutSpatial))
	out.label = "ConvGeneral/kernel-grad"
	// Output axis a is canonical axis outPerm[a].
	outPerm := make([]int, rank)
	for d, a := range axes.OutputSpatial {
		outPerm[a] = d
	}
	outPerm[axes.OutputBatch] = n
	outPerm[axes.OutputChannels] = n + 1
	if isIdentityPerm(outPerm) {
		return out, nil
	}
	return f.transpose(out, outPerm)
}

func prod(s []int) int {
	p := 1
	for _, d := range s {
		p *= d
	}
	return p
}

func anyAbove1(s []int) bool {
	for _, v := range s {
		if v > 1 {
			return true
		}
	}
	return false
}
