// Package tflite reads TensorFlow Lite model files (.tflite, FlatBuffers with
// the identifier "TFL3") in pure Go: tensors with their shapes, types, data
// and quantization, operators with their options, and the graph's inputs and
// outputs. It also holds [Interpreter], an integer-arithmetic reference that
// runs uint8-quantized convolutional networks (MobileNet V1/V2) the way
// TFLite's reference kernels do, for checking float re-implementations.
//
// Only the schema fields that image classifiers use are decoded (see
// schema.go); everything is read through a bounds-checked FlatBuffers reader,
// so a truncated or corrupt file is an error, never a panic.
package tflite

import (
	"errors"
	"fmt"
	"os"
)

// Identifier is the FlatBuffers file identifier of TFLite models, at bytes 4-8.
const Identifier = "TFL3"

// Model is a decoded TFLite file.
type Model struct {
	// Path is the file the model was read from (or the name given to Parse);
	// errors name it.
	Path string
	// Version is the schema version (3 for current files).
	Version uint32
	// Description is the converter's description string.
	Description string
	// Graphs are the subgraphs; Graphs[0] is the main one.
	Graphs []*Graph
}

// Graph is one subgraph: its tensors, operators in execution order, and the
// indices of its input and output tensors.
type Graph struct {
	Name      string
	Tensors   []*Tensor
	Inputs    []int
	Outputs   []int
	Operators []*Operator
}

// Tensor is a tensor of a graph. Constant tensors (weights, biases) have
// Data; activations have none.
type Tensor struct {
	// Index is the tensor's position in its graph.
	Index int
	Name  string
	// Shape is the tensor's shape, e.g. [1, 224, 224, 3] (NHWC) for images,
	// [out, kh, kw, in] for convolution filters.
	Shape []int
	Type  TensorType
	// Buffer is the index of the tensor's buffer in the file (0: none).
	Buffer int
	// Data holds the raw little-endian element bytes of a constant tensor,
	// aliasing the file's bytes (do not modify); nil for activations.
	Data []byte
	// Quant holds the quantization parameters; nil when the tensor is not
	// quantized.
	Quant *Quantization
}

// Quantization maps a tensor's integers q to reals: real = (q - ZeroPoint) * Scale,
// with one scale and zero point for the whole tensor, or one per index of
// axis Dimension (per-channel quantization).
type Quantization struct {
	Scale     []float32
	ZeroPoint []int64
	// Dimension is the quantized axis when there are several scales.
	Dimension int
	// Min and Max are the calibration range, when the file records it.
	Min, Max []float32
}

// PerChannel reports whether there is more than one scale.
func (q *Quantization) PerChannel() bool { return len(q.Scale) > 1 }

// ScaleAt returns the scale of channel i (the only scale when per-tensor).
func (q *Quantization) ScaleAt(i int) float32 {
	if len(q.Scale) == 1 {
		return q.Scale[0]
	}
	return q.Scale[i]
}

// ZeroPointAt returns the zero point of channel i (the only one when per-tensor;
// 0 when the file records none).
func (q *Quantization) ZeroPointAt(i int) int64 {
	switch {
	case len(q.ZeroPoint) == 0:
		return 0
	case len(q.ZeroPoint) == 1:
		return q.ZeroPoint[0]
	}
	return q.ZeroPoint[i]
}

// Operator is one operation of a graph.
type Operator struct {
	// Index is the operator's position in execution order.
	Index int
	// Code is the builtin operator; CustomCode names a custom one (Code == OpCustom).
	Code       BuiltinOp
	CustomCode string
	// Version is the operator version the converter recorded.
	Version int
	// Inputs and Outputs are tensor indices; -1 marks an omitted optional input.
	Inputs, Outputs []int
	// Options holds the builtin options of the operator kinds this package decodes.
	Options Options
}

// Options are the decoded builtin options of an operator. Only the fields
// that apply to the operator's kind are set.
type Options struct {
	Padding              Padding
	StrideW, StrideH     int
	DilationW, DilationH int
	// FilterW, FilterH are the pooling window (pooling ops).
	FilterW, FilterH int
	// DepthMultiplier is the depthwise convolution's channel multiplier.
	DepthMultiplier int
	Activation      Activation
	// Beta is the softmax temperature factor.
	Beta float32
	// NewShape is the reshape target (may be absent: the output tensor's shape rules).
	NewShape []int
	// SqueezeDims are the squeezed axes.
	SqueezeDims []int
	// KeepNumDims is the fully connected layer's keep_num_dims.
	KeepNumDims bool
	// Axis is the concatenation axis.
	Axis int
}

// ReadFile reads and decodes the TFLite file at path.
func ReadFile(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("tflite: model file %s does not exist: %w", path, err)
		}
		return nil, fmt.Errorf("tflite: reading %s: %w", path, err)
	}
	return Parse(path, b)
}

// Parse decodes a TFLite model from its bytes; name identifies it in errors.
// The returned tensors' Data alias b.
func Parse(name string, b []byte) (m *Model, err error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("tflite: %s is not a TFLite model: %d bytes is too short", name, len(b))
	}
	if id := string(b[4:8]); id != Identifier {
		return nil, fmt.Errorf("tflite: %s is not a TFLite model: file identifier %q, want %q", name, id, Identifier)
	}
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(fbError)
			if !ok {
				panic(r)
			}
			m, err = nil, fmt.Errorf("tflite: %s: %w", name, fe)
		}
	}()
	m, err = parseModel(name, fbuf(b))
	if err != nil {
		return nil, fmt.Errorf("tflite: %s: %w", name, err)
	}
	return m, nil
}

// opcode is a decoded OperatorCode.
type opcode struct {
	code    BuiltinOp
	custom  string
	version int
}

func parseModel(name string, b fbuf) (*Model, error) {
	root := b.root()
	m := &Model{
		Path:        name,
		Version:     root.u32(modelVersion, 0),
		Description: root.str(modelDescription),
	}
	var codes []opcode
	for _, t := range root.tables(modelOperatorCodes) {
		// Files before schema 3a store the code in the deprecated int8 field;
		// newer ones in both (the deprecated one saturating at 127).
		code := max(BuiltinOp(int8(t.u8(opcodeDeprecatedBuiltin, 0))), BuiltinOp(t.i32(opcodeBuiltin, 0)))
		codes = append(codes, opcode{code: code, custom: t.str(opcodeCustom), version: int(t.i32(opcodeVersion, 1))})
	}
	buffers := root.tables(modelBuffers)
	subgraphs := root.tables(modelSubgraphs)
	if len(subgraphs) == 0 {
		return nil, errors.New("model has no subgraphs")
	}
	for gi, sg := range subgraphs {
		g := &Graph{Name: sg.str(subgraphName), Inputs: sg.ints(subgraphInputs), Outputs: sg.ints(subgraphOutputs)}
		for ti, tt := range sg.tables(subgraphTensors) {
			t, err := parseTensor(b, ti, tt, buffers)
			if err != nil {
				return nil, fmt.Errorf("subgraph %d: %w", gi, err)
			}
			g.Tensors = append(g.Tensors, t)
		}
		checkIndex := func(what string, idx []int, optional bool) error {
			for _, i := range idx {
				if (i == -1 && optional) || (i >= 0 && i < len(g.Tensors)) {
					continue
				}
				return fmt.Errorf("subgraph %d: %s refers to tensor %d, but there are %d tensors", gi, what, i, len(g.Tensors))
			}
			return nil
		}
		if err := checkIndex("graph inputs", g.Inputs, false); err != nil {
			return nil, err
		}
		if err := checkIndex("graph outputs", g.Outputs, false); err != nil {
			return nil, err
		}
		for oi, ot := range sg.tables(subgraphOperators) {
			ci := int(ot.u32(operatorOpcodeIndex, 0))
			if ci >= len(codes) {
				return nil, fmt.Errorf("subgraph %d: operator %d uses opcode %d, but there are %d", gi, oi, ci, len(codes))
			}
			op := &Operator{
				Index:      oi,
				Code:       codes[ci].code,
				CustomCode: codes[ci].custom,
				Version:    codes[ci].version,
				Inputs:     ot.ints(operatorInputs),
				Outputs:    ot.ints(operatorOutputs),
			}
			if err := checkIndex(fmt.Sprintf("operator %d (%s) inputs", oi, op.Code), op.Inputs, true); err != nil {
				return nil, err
			}
			if err := checkIndex(fmt.Sprintf("operator %d (%s) outputs", oi, op.Code), op.Outputs, false); err != nil {
				return nil, err
			}
			if opt, ok := ot.sub(operatorOptions); ok {
				op.Options = parseOptions(op.Code, opt)
			}
			g.Operators = append(g.Operators, op)
		}
		m.Graphs = append(m.Graphs, g)
	}
	return m, nil
}

func parseTensor(b fbuf, index int, tt table, buffers []table) (*Tensor, error) {
	t := &Tensor{
		Index:  index,
		Name:   tt.str(tensorName),
		Shape:  tt.ints(tensorShape),
		Type:   TensorType(int8(tt.u8(tensorType, 0))),
		Buffer: int(tt.u32(tensorBuffer, 0)),
	}
	if t.Buffer >= len(buffers) {
		return nil, fmt.Errorf("tensor %d %q: buffer %d out of range (%d buffers)", index, t.Name, t.Buffer, len(buffers))
	}
	if t.Buffer > 0 {
		buf := buffers[t.Buffer]
		t.Data = buf.bytes(bufferData)
		if off := buf.u64(bufferOffset, 0); off > 1 && t.Data == nil {
			// Large models (> 2 GiB) keep buffers after the FlatBuffer, addressed from the file start.
			size := buf.u64(bufferSize, 0)
			if off > uint64(len(b)) || size > uint64(len(b))-off {
				return nil, fmt.Errorf("tensor %d %q: buffer %d at offset %d size %d lies outside the %d-byte file",
					index, t.Name, t.Buffer, off, size, len(b))
			}
			t.Data = b[off : off+size]
		}
	}
	if q, ok := tt.sub(tensorQuantization); ok {
		quant := &Quantization{
			Scale:     q.f32s(quantScale),
			ZeroPoint: q.i64s(quantZeroPoint),
			Dimension: int(q.i32(quantDimension, 0)),
			Min:       q.f32s(quantMin),
			Max:       q.f32s(quantMax),
		}
		if len(quant.Scale) > 0 {
			t.Quant = quant
			if err := checkQuant(t); err != nil {
				return nil, err
			}
		}
	}
	if t.Data != nil {
		if err := checkDataSize(t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func checkQuant(t *Tensor) error {
	q := t.Quant
	if len(q.ZeroPoint) > 1 && len(q.ZeroPoint) != len(q.Scale) {
		return fmt.Errorf("tensor %d %q: %d scales but %d zero points", t.Index, t.Name, len(q.Scale), len(q.ZeroPoint))
	}
	if q.PerChannel() {
		if q.Dimension < 0 || q.Dimension >= len(t.Shape) || t.Shape[q.Dimension] != len(q.Scale) {
			return fmt.Errorf("tensor %d %q: shape %v: %d per-channel scales do not match quantized dimension %d",
				t.Index, t.Name, t.Shape, len(q.Scale), q.Dimension)
		}
	}
	return nil
}

func checkDataSize(t *Tensor) error {
	size := t.Type.Size()
	if size == 0 {
		return nil
	}
	n := 1
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor %d %q: constant with dynamic shape %v", t.Index, t.Name, t.Shape)
		}
		n *= d
	}
	if len(t.Data) != n*size {
		return fmt.Errorf("tensor %d %q: shape mismatch: shape %v of %s needs %d bytes, its buffer has %d",
			t.Index, t.Name, t.Shape, t.Type, n*size, len(t.Data))
	}
	return nil
}

func parseOptions(code BuiltinOp, t table) Options {
	var o Options
	stride := func(id int) int { return int(max(t.i32(id, 1), 1)) }
	switch code {
	case OpConv2D:
		o.Padding = Padding(t.u8(0, 0))
		o.StrideW, o.StrideH = stride(1), stride(2)
		o.Activation = Activation(t.u8(3, 0))
		o.DilationW, o.DilationH = stride(4), stride(5)
	case OpDepthwiseConv2D:
		o.Padding = Padding(t.u8(0, 0))
		o.StrideW, o.StrideH = stride(1), stride(2)
		o.DepthMultiplier = int(t.i32(3, 1))
		o.Activation = Activation(t.u8(4, 0))
		o.DilationW, o.DilationH = stride(5), stride(6)
	case OpAveragePool2D, OpMaxPool2D:
		o.Padding = Padding(t.u8(0, 0))
		o.StrideW, o.StrideH = stride(1), stride(2)
		o.FilterW, o.FilterH = int(t.i32(3, 0)), int(t.i32(4, 0))
		o.Activation = Activation(t.u8(5, 0))
	case OpFullyConnected:
		o.Activation = Activation(t.u8(0, 0))
		o.KeepNumDims = t.bool(2)
	case OpAdd, OpMul, OpSub:
		o.Activation = Activation(t.u8(0, 0))
	case OpConcatenation:
		o.Axis = int(t.i32(0, 0))
		o.Activation = Activation(t.u8(1, 0))
	case OpSoftmax:
		o.Beta = t.f32(0, 0)
	case OpReshape:
		o.NewShape = t.ints(0)
	case OpSqueeze:
		o.SqueezeDims = t.ints(0)
	}
	return o
}

// Main returns the main subgraph.
func (m *Model) Main() *Graph { return m.Graphs[0] }

// Input returns the graph's i-th input tensor.
func (g *Graph) Input(i int) *Tensor { return g.Tensors[g.Inputs[i]] }

// Output returns the graph's i-th output tensor.
func (g *Graph) Output(i int) *Tensor { return g.Tensors[g.Outputs[i]] }

// Tensor returns the tensor at index i, or nil for -1 (an omitted optional input).
func (g *Graph) Tensor(i int) *Tensor {
	if i < 0 {
		return nil
	}
	return g.Tensors[i]
}

// CheckOps returns an error naming the first operator whose code is not
// among supported, with the tensor it produces.
func (g *Graph) CheckOps(supported ...BuiltinOp) error {
	for _, op := range g.Operators {
		ok := false
		for _, s := range supported {
			ok = ok || op.Code == s
		}
		if !ok {
			name := op.Code.String()
			if op.Code == OpCustom {
				name = "CUSTOM " + op.CustomCode
			}
			out := ""
			if len(op.Outputs) > 0 {
				out = fmt.Sprintf(" producing tensor %q", g.Tensors[op.Outputs[0]].Name)
			}
			return fmt.Errorf("unsupported operator %d %s%s", op.Index, name, out)
		}
	}
	return nil
}

// NumElements returns the product of the tensor's dimensions.
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// String describes the tensor in one line, e.g. `12 "conv/weights" uint8[32 3 3 3]`.
func (t *Tensor) String() string {
	return fmt.Sprintf("%d %q %s%v", t.Index, t.Name, t.Type, t.Shape)
}
