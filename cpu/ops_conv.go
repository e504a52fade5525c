package cpu

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapeinference"

	"github.com/peco-dev/peco/cpu/conv"
)

// ConvGeneral is the general convolution (see
// compute.StandardOps.ConvGeneral), for float32. The input is brought to
// [batch, spatial..., channels] and the kernel to [spatial..., in channels,
// out channels] (Transpose nodes, skipped when the layout already is that),
// the convolution runs there as a blocked implicit im2col with the packed
// matmul (cpu/conv), and its [batch, spatial..., channels] result is
// transposed to the requested output layout if needed.
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
