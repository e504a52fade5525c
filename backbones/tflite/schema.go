package tflite

import "fmt"

// TensorType is the element type of a tensor (TFLite's TensorType enum).
type TensorType int8

// The tensor types of the TFLite schema.
const (
	Float32 TensorType = 0
	Float16 TensorType = 1
	Int32   TensorType = 2
	Uint8   TensorType = 3
	Int64   TensorType = 4
	String  TensorType = 5
	Bool    TensorType = 6
	Int16   TensorType = 7
	Int8    TensorType = 9
	Float64 TensorType = 10
)

var tensorTypeNames = map[TensorType]string{
	Float32: "float32", Float16: "float16", Int32: "int32", Uint8: "uint8", Int64: "int64",
	String: "string", Bool: "bool", Int16: "int16", Int8: "int8", Float64: "float64",
}

// String returns the type's name, e.g. "uint8".
func (t TensorType) String() string {
	if s, ok := tensorTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("TensorType(%d)", int(t))
}

// Size returns the size of one element in bytes, or 0 for types without a
// fixed size (string) or unknown types.
func (t TensorType) Size() int {
	switch t {
	case Uint8, Int8, Bool:
		return 1
	case Float16, Int16:
		return 2
	case Float32, Int32:
		return 4
	case Int64, Float64:
		return 8
	}
	return 0
}

// BuiltinOp is a TFLite builtin operator code (TFLite's BuiltinOperator enum).
type BuiltinOp int32

// The builtin operators this package names. Others still load; their String
// is "BUILTIN_<code>".
const (
	OpAdd             BuiltinOp = 0
	OpAveragePool2D   BuiltinOp = 1
	OpConcatenation   BuiltinOp = 2
	OpConv2D          BuiltinOp = 3
	OpDepthwiseConv2D BuiltinOp = 4
	OpDequantize      BuiltinOp = 6
	OpFullyConnected  BuiltinOp = 9
	OpLogistic        BuiltinOp = 14
	OpMaxPool2D       BuiltinOp = 17
	OpMul             BuiltinOp = 18
	OpRelu            BuiltinOp = 19
	OpRelu6           BuiltinOp = 21
	OpReshape         BuiltinOp = 22
	OpSoftmax         BuiltinOp = 25
	OpCustom          BuiltinOp = 32
	OpPad             BuiltinOp = 34
	OpMean            BuiltinOp = 40
	OpSub             BuiltinOp = 41
	OpSqueeze         BuiltinOp = 43
	OpQuantize        BuiltinOp = 114
	OpHardSwish       BuiltinOp = 117
)

var opNames = map[BuiltinOp]string{
	OpAdd: "ADD", OpAveragePool2D: "AVERAGE_POOL_2D", OpConcatenation: "CONCATENATION", OpConv2D: "CONV_2D",
	OpDepthwiseConv2D: "DEPTHWISE_CONV_2D", OpDequantize: "DEQUANTIZE", OpFullyConnected: "FULLY_CONNECTED",
	OpLogistic: "LOGISTIC", OpMaxPool2D: "MAX_POOL_2D", OpMul: "MUL", OpRelu: "RELU", OpRelu6: "RELU6",
	OpReshape: "RESHAPE", OpSoftmax: "SOFTMAX", OpCustom: "CUSTOM", OpPad: "PAD", OpMean: "MEAN", OpSub: "SUB",
	OpSqueeze: "SQUEEZE", OpQuantize: "QUANTIZE", OpHardSwish: "HARD_SWISH",
}

// String returns the operator's schema name, e.g. "CONV_2D".
func (o BuiltinOp) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("BUILTIN_%d", int32(o))
}

// Padding is a convolution or pooling padding scheme.
type Padding int8

// The padding schemes. With Same, the output has ceil(in/stride) positions
// and the padding is split as TFLite does: total = max((out-1)*stride +
// k - in, 0), before = total/2, after = total - before.
const (
	Same  Padding = 0
	Valid Padding = 1
)

// String returns "SAME" or "VALID".
func (p Padding) String() string {
	switch p {
	case Same:
		return "SAME"
	case Valid:
		return "VALID"
	}
	return fmt.Sprintf("Padding(%d)", int(p))
}

// Activation is a fused activation function.
type Activation int8

// The fused activation functions.
const (
	ActNone      Activation = 0
	ActRelu      Activation = 1
	ActReluN1To1 Activation = 2
	ActRelu6     Activation = 3
	ActTanh      Activation = 4
)

// String returns the activation's schema name, e.g. "RELU6".
func (a Activation) String() string {
	switch a {
	case ActNone:
		return "NONE"
	case ActRelu:
		return "RELU"
	case ActReluN1To1:
		return "RELU_N1_TO_1"
	case ActRelu6:
		return "RELU6"
	case ActTanh:
		return "TANH"
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// Range returns the interval a clamping activation limits values to, with
// ok false for activations that do not clamp (NONE, TANH).
func (a Activation) Range() (lo, hi float64, ok bool) {
	switch a {
	case ActRelu:
		return 0, inf, true
	case ActReluN1To1:
		return -1, 1, true
	case ActRelu6:
		return 0, 6, true
	}
	return 0, 0, false
}

// Field ids of the TFLite schema tables (schema.fbs), in declaration order.
// A union takes two ids: its type then its value.
const (
	modelVersion       = 0
	modelOperatorCodes = 1
	modelSubgraphs     = 2
	modelDescription   = 3
	modelBuffers       = 4

	opcodeDeprecatedBuiltin = 0
	opcodeCustom            = 1
	opcodeVersion           = 2
	opcodeBuiltin           = 3

	subgraphTensors   = 0
	subgraphInputs    = 1
	subgraphOutputs   = 2
	subgraphOperators = 3
	subgraphName      = 4

	tensorShape        = 0
	tensorType         = 1
	tensorBuffer       = 2
	tensorName         = 3
	tensorQuantization = 4

	quantMin       = 0
	quantMax       = 1
	quantScale     = 2
	quantZeroPoint = 3
	quantDimension = 6

	bufferData   = 0
	bufferOffset = 1
	bufferSize   = 2

	operatorOpcodeIndex = 0
	operatorInputs      = 1
	operatorOutputs     = 2
	operatorOptionsType = 3
	operatorOptions     = 4
)
