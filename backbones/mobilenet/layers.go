package mobilenet

import (
	"fmt"
	"strings"

	"github.com/peco-dev/peco/backbones/tflite"
)

// supportedOps are the TFLite operators the graph builder translates.
var supportedOps = []tflite.BuiltinOp{
	tflite.OpConv2D, tflite.OpDepthwiseConv2D, tflite.OpFullyConnected, tflite.OpAdd,
	tflite.OpAveragePool2D, tflite.OpReshape, tflite.OpSqueeze, tflite.OpSoftmax,
}

// layer is one TFLite operator prepared for graph building: its dequantized
// parameters in GoMLX layouts and where its variables live.
type layer struct {
	op *tflite.Operator
	// name is the variable scope of the layer's parameters, e.g.
	// "expanded_conv_1/expand" (empty for parameter-free operators).
	name string
	// kernel holds the dequantized weights: [kh, kw, Cin, Cout] for CONV_2D,
	// [kh, kw, C*mult] for DEPTHWISE_CONV_2D, [in, out] for FULLY_CONNECTED.
	kernel     []float32
	kernelDims []int
	// bias holds the dequantized bias [Cout] (nil when the op has none).
	bias   []float32
	params Conv2DParams
}

// prepareLayers checks every operator of m's main graph and dequantizes its
// parameters. Errors name the file, the operator and the tensor.
func prepareLayers(m *tflite.Model) ([]*layer, error) {
	g := m.Main()
	if err := g.CheckOps(supportedOps...); err != nil {
		return nil, fmt.Errorf("mobilenet: %s: %w", m.Path, err)
	}
	var layers []*layer
	used := map[string]bool{}
	for _, op := range g.Operators {
		l := &layer{op: op, params: Conv2DParams{
			StrideH: op.Options.StrideH, StrideW: op.Options.StrideW,
			DilationH: op.Options.DilationH, DilationW: op.Options.DilationW,
			Padding: op.Options.Padding,
		}}
		switch op.Code {
		case tflite.OpConv2D, tflite.OpDepthwiseConv2D, tflite.OpFullyConnected:
			if err := l.prepareWeights(g); err != nil {
				return nil, fmt.Errorf("mobilenet: %s: operator %d %s: %w", m.Path, op.Index, op.Code, err)
			}
			l.name = layerName(g.Tensors[op.Inputs[1]].Name)
			if l.name == "" || used[l.name] {
				l.name = fmt.Sprintf("op_%03d", op.Index)
			}
			used[l.name] = true
		case tflite.OpAdd:
			a, b := g.Tensors[op.Inputs[0]], g.Tensors[op.Inputs[1]]
			if !equalInts(a.Shape, b.Shape) {
				return nil, fmt.Errorf("mobilenet: %s: operator %d ADD: shape mismatch between %s and %s", m.Path, op.Index, a, b)
			}
		}
		layers = append(layers, l)
	}
	return layers, nil
}

// prepareWeights dequantizes and re-lays out a convolution's or fully
// connected layer's filter and bias, checking their shapes against the
// operator's input and output tensors.
func (l *layer) prepareWeights(g *tflite.Graph) error {
	op := l.op
	if len(op.Inputs) < 2 {
		return fmt.Errorf("has %d inputs, want input, filter[, bias]", len(op.Inputs))
	}
	in, wt, out := g.Tensors[op.Inputs[0]], g.Tensors[op.Inputs[1]], g.Tensors[op.Outputs[0]]
	w, err := wt.Float32()
	if err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	cin, cout := in.Shape[len(in.Shape)-1], out.Shape[len(out.Shape)-1]
	mismatch := func(want string) error {
		return fmt.Errorf("shape mismatch: filter tensor %q has shape %v, want %s for input %v and output %v",
			wt.Name, wt.Shape, want, in.Shape, out.Shape)
	}
	s := wt.Shape
	switch op.Code {
	case tflite.OpConv2D:
		// TFLite [Cout, kh, kw, Cin] -> HWIO [kh, kw, Cin, Cout].
		if len(s) != 4 || s[0] != cout || s[3] != cin {
			return mismatch(fmt.Sprintf("[%d, kh, kw, %d]", cout, cin))
		}
		kh, kw := s[1], s[2]
		l.kernelDims = []int{kh, kw, cin, cout}
		l.kernel = make([]float32, len(w))
		for o := range cout {
			for i := range kh * kw * cin {
				l.kernel[i*cout+o] = w[o*kh*kw*cin+i]
			}
		}
	case tflite.OpDepthwiseConv2D:
		// TFLite [1, kh, kw, C*mult] -> [kh, kw, C*mult].
		mult := max(op.Options.DepthMultiplier, 1)
		if len(s) != 4 || s[0] != 1 || s[3] != cout || cin*mult != cout {
			return mismatch(fmt.Sprintf("[1, kh, kw, %d] (depth multiplier %d)", cin*mult, mult))
		}
		l.kernelDims = []int{s[1], s[2], s[3]}
		l.kernel = w
	case tflite.OpFullyConnected:
		// TFLite [out, in] -> [in, out].
		n := in.NumElements() / max(in.Shape[0], 1)
		if len(s) != 2 || s[0] != cout || s[1] != n {
			return mismatch(fmt.Sprintf("[%d, %d]", cout, n))
		}
		l.kernelDims = []int{n, cout}
		l.kernel = make([]float32, len(w))
		for o := range cout {
			for i := range n {
				l.kernel[i*cout+o] = w[o*n+i]
			}
		}
	}
	if len(op.Inputs) > 2 && op.Inputs[2] >= 0 {
		bt := g.Tensors[op.Inputs[2]]
		if len(bt.Shape) != 1 || bt.Shape[0] != cout {
			return fmt.Errorf("shape mismatch: bias tensor %q has shape %v, want [%d]", bt.Name, bt.Shape, cout)
		}
		if bt.Type == tflite.Int32 && bt.Quant == nil && in.Quant != nil && wt.Quant != nil {
			// Older files leave the bias scale implicit: input scale * filter scale.
			bt.Quant = &tflite.Quantization{Scale: make([]float32, 0, cout)}
			for c := range cout {
				bt.Quant.Scale = append(bt.Quant.Scale, in.Quant.ScaleAt(0)*wt.Quant.ScaleAt(min(c, len(wt.Quant.Scale)-1)))
			}
		}
		if l.bias, err = bt.Float32(); err != nil {
			return fmt.Errorf("bias: %w", err)
		}
	}
	return nil
}

// layerName derives a readable variable scope from a TFLite weight tensor
// name: "MobilenetV2/expanded_conv_1/expand/Conv2D_Fold;MobilenetV2/..."
// becomes "expanded_conv_1/expand" (first alternative, last component and
// the leading model name dropped).
func layerName(tensorName string) string {
	name, _, _ := strings.Cut(tensorName, ";")
	parts := strings.Split(name, "/")
	if len(parts) < 2 {
		return ""
	}
	parts = parts[:len(parts)-1]
	for len(parts) > 1 && strings.HasPrefix(strings.ToLower(parts[0]), "mobilenet") {
		parts = parts[1:]
	}
	for _, p := range parts {
		if p == "" {
			return ""
		}
	}
	return strings.Join(parts, "/")
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
