// Package mobilenet provides MobileNet V1 and V2 as frozen perceptual
// feature networks (and, for V2, an ImageNet classifier) whose weights are
// the ImageNet-trained ones of TFLite files. It registers the backbones
// "mobilenet_v2" and "mobilenet_v1".
//
// The network is not hand-written: New reads the .tflite file (package
// tflite), dequantizes every filter and bias to float32 ((q - zero_point) *
// scale, per channel where the file has several scales; int32 biases with
// scale = input scale * filter scale), and Forward walks the file's operator
// list, translating each operator into GoMLX ops:
//
//	CONV_2D            im2col + one matmul (1x1: a plain matmul), + bias, fused activation
//	DEPTHWISE_CONV_2D  sum over the k*k taps of (strided slice * per-channel weights), + bias, activation
//	ADD                residual add, activation
//	AVERAGE_POOL_2D    window mean (the final 7x7 pool: a global mean, so other image sizes work)
//	FULLY_CONNECTED    matmul + bias
//	RESHAPE, SQUEEZE   reshape (batch kept)
//	SOFTMAX            softmax
//
// Batch norm is already folded into the convolutions by the TFLite
// converter, and ReLU6 is the fused activation. Padding is TFLite's SAME
// (asymmetric: the extra pixel goes after). The float network computes what
// the uint8 model approximates; tests check it against tflite.Interpreter,
// an integer-arithmetic reference of the quantized model.
//
// # Input
//
// The quantized models take uint8 pixels p with input scale 1/128 and zero
// point 128, i.e. reals (p - 128)/128 in [-1, 1). Forward therefore expects
// images [B, H, W, 3] normalised to [-1, 1] (data's "half" preset) unless
// Config.Normalization names another preset, which Forward converts with
// [Normalize]. [Network.Pixels] gives the exact TFLite mapping from uint8.
//
// # Features
//
// Features.Layers are the outputs of the resolution stages: for each
// spatial size the network passes through (strides 2, 4, 8, 16 and 32 for
// 224px input), the last operator output at that size, as [B, H_i*W_i, C_i].
// Features.Tokens is the last feature map before pooling ([B, 7*7, 1280] for
// V2 at 224px, [B, 49, 1024] for V1), GridH x GridW = 7 x 7; there is no
// [CLS] token. [Network.Stages] describes the taps.
//
// # Variables
//
// Each convolution's parameters are variables named after its TFLite layer,
// under the scope given to Forward, created with their loaded values:
//
//	Conv/weights                       [3, 3, 3, 32]   HWIO
//	Conv/biases                        [32]
//	expanded_conv/depthwise/weights    [3, 3, 32]      per-channel 3x3 filters
//	expanded_conv_1/expand/weights     [1, 1, 16, 96]
//	...
//	Logits/Conv2d_1c_1x1/weights       [1, 1, 1280, 1001]
//
// They are not trainable unless Config.Trainable is set: a perceptual
// network is frozen (gradients still flow through it to its input).
package mobilenet

import (
	"errors"
	"fmt"
	"slices"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/peco-dev/peco/backbones/tflite"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/registry"
)

func init() {
	registry.Register(core.Backbones, "mobilenet_v2",
		"MobileNet V2 with ImageNet weights from a TFLite file: frozen perceptual features (strides 2-32) and 1001-way logits",
		DefaultConfigV2, New)
	registry.Register(core.Backbones, "mobilenet_v1",
		"MobileNet V1 with ImageNet weights from a TFLite embedding extractor: frozen perceptual features (strides 2-32)",
		DefaultConfigV1, New)
}

// Default weight files, relative to the working directory (the repository
// root when peco runs from it).
const (
	DefaultWeightsV2 = "../shared/weights/mobilenet-tflite/mobilenet_v2_1.0_224_quant.tflite"
	DefaultWeightsV1 = "../shared/weights/mobilenet-tflite/mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"
)

// Config configures a MobileNet loaded from a TFLite file.
type Config struct {
	Weights       string `mapstructure:"weights" doc:"path of the .tflite file; a relative path is relative to the working directory"`
	ImageSize     int    `mapstructure:"image_size" doc:"input height and width in pixels, a multiple of 32 (the weights were trained at 224)"`
	Trainable     bool   `mapstructure:"trainable" doc:"let optimizers update the imported weights (false: a frozen perceptual network)"`
	Normalization string `mapstructure:"normalization" doc:"normalisation of the images given to Forward: half ([-1, 1], what the network expects), imagenet or none ([0, 1])"`
}

// DefaultConfigV2 returns the MobileNet V2 (224px, 1001 classes) config.
func DefaultConfigV2() Config {
	return Config{Weights: DefaultWeightsV2, ImageSize: 224, Normalization: data.NormalizeHalf}
}

// DefaultConfigV1 returns the MobileNet V1 embedding extractor (224px) config.
func DefaultConfigV1() Config {
	return Config{Weights: DefaultWeightsV1, ImageSize: 224, Normalization: data.NormalizeHalf}
}

// Validate reports every invalid field, naming it by its config key.
func (c Config) Validate() error {
	var errs []error
	if c.Weights == "" {
		errs = append(errs, errors.New("mobilenet: weights: must name a .tflite file"))
	}
	if c.ImageSize < 32 || c.ImageSize%32 != 0 {
		errs = append(errs, fmt.Errorf("mobilenet: image_size: must be a positive multiple of 32, got %d", c.ImageSize))
	}
	if _, err := data.NewNormalizer(c.Normalization); err != nil {
		errs = append(errs, fmt.Errorf("mobilenet: normalization: %w", err))
	}
	return errors.Join(errs...)
}

// Stage describes one feature tap: the last operator output at one spatial
// resolution.
type Stage struct {
	// Name is the TFLite layer producing it, e.g. "expanded_conv_2/add".
	Name string
	// Stride is image_size / H.
	Stride int
	// H, W, C are the feature map's size for Config.ImageSize.
	H, W, C int
	// Tensor is the index of the TFLite tensor.
	Tensor int
}

// Network is a MobileNet whose graph and weights come from a TFLite file.
// It holds the dequantized weights on the host; Forward puts them into
// variables of the scope it is given (calling it twice with the same scope
// shares them).
type Network struct {
	cfg    Config
	model  *tflite.Model
	layers []*layer
	stages []Stage
	// producer maps a tensor index to the index of the layer computing it.
	producer map[int]int
	// tokens is the tensor of the last feature map; logits the softmax's
	// input (-1 without a classifier).
	tokens, logits int
	// FakeQuant, when set, makes the graph round every operator output (and
	// the input) to its uint8 grid, (clamp(round(x/s) + z) - z) * s, as the
	// quantized model does. It is for checking the float network against
	// the quantized model; leave it off for features (rounding has no
	// useful gradient).
	FakeQuant bool
}

var (
	_ core.Backbone      = (*Network)(nil)
	_ core.WeightCarrier = (*Network)(nil)
)

// HasWeights is true: the network's weights are the TFLite file's
// (core.WeightCarrier).
func (n *Network) HasWeights() bool { return true }

// New loads cfg.Weights and returns the network as a core.Backbone.
func New(cfg Config) (core.Backbone, error) { return Load(cfg) }

// Load validates cfg, reads and checks the TFLite file and dequantizes its
// weights. Errors name the file and, for bad content, the operator and tensor.
func Load(cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := tflite.ReadFile(cfg.Weights)
	if err != nil {
		return nil, fmt.Errorf("mobilenet: %w", err)
	}
	return FromModel(m, cfg)
}

// FromModel builds the network from an already decoded TFLite model;
// cfg.Weights is only used in messages.
func FromModel(m *tflite.Model, cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := m.Main()
	if len(g.Inputs) != 1 || len(g.Outputs) != 1 {
		return nil, fmt.Errorf("mobilenet: %s: want one input and one output, got %d and %d", m.Path, len(g.Inputs), len(g.Outputs))
	}
	in := g.Input(0)
	if len(in.Shape) != 4 || in.Shape[3] != 3 || in.Shape[1] != in.Shape[2] {
		return nil, fmt.Errorf("mobilenet: %s: input tensor %s is not a square RGB image batch [1, H, H, 3]", m.Path, in)
	}
	layers, err := prepareLayers(m)
	if err != nil {
		return nil, err
	}
	n := &Network{cfg: cfg, model: m, layers: layers, producer: map[int]int{}, tokens: -1, logits: -1}
	for i, l := range layers {
		n.producer[l.op.Outputs[0]] = i
	}
	n.findTaps()
	if n.tokens < 0 {
		return nil, fmt.Errorf("mobilenet: %s: no operator produces a spatial feature map", m.Path)
	}
	if last := layers[len(layers)-1].op; last.Code == tflite.OpSoftmax {
		n.logits = last.Inputs[0]
	}
	return n, nil
}

// findTaps fills the stages (the last 4-D output at each spatial size > 1,
// in file shapes) and the token tensor (the last of them).
func (n *Network) findTaps() {
	g := n.model.Main()
	fileSize := g.Input(0).Shape[1]
	var outs []*tflite.Tensor
	for _, l := range n.layers {
		t := g.Tensors[l.op.Outputs[0]]
		if len(t.Shape) == 4 && t.Shape[1] > 1 {
			outs = append(outs, t)
		}
	}
	for i, t := range outs {
		if i+1 < len(outs) && outs[i+1].Shape[1] == t.Shape[1] {
			continue
		}
		stride := fileSize / t.Shape[1]
		size := (n.cfg.ImageSize + stride - 1) / stride
		l := n.layers[n.producer[t.Index]]
		name := l.name
		if name == "" {
			name = fmt.Sprintf("op_%03d_%s", l.op.Index, l.op.Code)
		}
		n.stages = append(n.stages, Stage{Name: name, Stride: stride, H: size, W: size, C: t.Shape[3], Tensor: t.Index})
		n.tokens = t.Index
	}
}

// Config returns the network's configuration.
func (n *Network) Config() Config { return n.cfg }

// Model returns the decoded TFLite file.
func (n *Network) Model() *tflite.Model { return n.model }

// Stages describes the feature taps of Features.Layers, in order.
func (n *Network) Stages() []Stage { return slices.Clone(n.stages) }

// Dim returns the channel count of Features.Tokens.
func (n *Network) Dim() int { return n.stages[len(n.stages)-1].C }

// NumClasses returns the classifier's number of classes (1001 for the V2
// file: index 0 is "background"), or 0 when the file has no classifier.
func (n *Network) NumClasses() int {
	if n.logits < 0 {
		return 0
	}
	s := n.model.Main().Tensors[n.logits].Shape
	return s[len(s)-1]
}

// Forward maps images [B, H, W, 3] (H = W = image_size, normalised as
// Config.Normalization says) to the stage features; see the package
// documentation. opts.Mask is not supported (MobileNet has no mask token)
// and opts.Training changes nothing (batch norm is folded).
func (n *Network) Forward(scope *model.Scope, images *Node, opts core.ForwardOptions) core.Features {
	if opts.Mask != nil {
		exceptions.Panicf("mobilenet: Forward does not support a token mask")
	}
	vals := n.run(scope, images, n.tokens)
	f := core.Features{}
	for _, s := range n.stages {
		x := vals[s.Tensor]
		b, h, w, c := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
		x = Reshape(x, b, h*w, c)
		f.Layers = append(f.Layers, x)
		f.Tokens, f.GridH, f.GridW = x, h, w
	}
	return f
}

// Logits returns the classifier's logits [B, NumClasses] (the softmax's
// input) for images normalised as Config.Normalization says. It panics
// (GoMLX's graph-building convention) when the file has no classifier.
func (n *Network) Logits(scope *model.Scope, images *Node) *Node {
	if n.logits < 0 {
		exceptions.Panicf("mobilenet: %s has no classifier (its last operator is not SOFTMAX)", n.model.Path)
	}
	return n.run(scope, images, n.logits)[n.logits]
}

// Output returns the file's graph output for images: the class
// probabilities [B, 1001] for V2, the pooled embedding [B, 1, 1, 1024] for
// the V1 embedding extractor.
func (n *Network) Output(scope *model.Scope, images *Node) *Node {
	out := n.model.Main().Outputs[0]
	return n.run(scope, images, out)[out]
}

// run builds the operators in file order until target is computed and
// returns the nodes of the tensors computed so far.
func (n *Network) run(scope *model.Scope, images *Node, target int) map[int]*Node {
	g := n.model.Main()
	size := n.cfg.ImageSize
	if images.Rank() != 4 || images.Shape().Dim(1) != size || images.Shape().Dim(2) != size || images.Shape().Dim(3) != 3 {
		exceptions.Panicf("mobilenet: images must be [batch, %d, %d, 3], got %s", size, size, images.Shape())
	}
	x := ConvertDType(images, dtypes.Float32)
	if n.cfg.Normalization != data.NormalizeHalf {
		x = Normalize(x, n.cfg.Normalization)
	}
	in := g.Input(0)
	if n.FakeQuant {
		x = fakeQuant(x, in)
	}
	vals := map[int]*Node{in.Index: x}
	for _, l := range n.layers {
		out := l.op.Outputs[0]
		y := n.apply(scope, l, vals)
		if n.FakeQuant && g.Tensors[out].Quant != nil {
			y = fakeQuant(y, g.Tensors[out])
		}
		vals[out] = y
		if out == target {
			return vals
		}
	}
	exceptions.Panicf("mobilenet: %s: tensor %d is not computed by any operator", n.model.Path, target)
	return nil
}

// apply builds one operator.
func (n *Network) apply(scope *model.Scope, l *layer, vals map[int]*Node) *Node {
	g := n.model.Main()
	op := l.op
	input := func(i int) *Node {
		v, ok := vals[op.Inputs[i]]
		if !ok {
			exceptions.Panicf("mobilenet: %s: operator %d %s: input tensor %s is not computed before it",
				n.model.Path, op.Index, op.Code, g.Tensors[op.Inputs[i]])
		}
		return v
	}
	x := input(0)
	var y *Node
	switch op.Code {
	case tflite.OpConv2D:
		y = Conv2D(x, n.weights(scope, l, x.Graph()), l.params)
	case tflite.OpDepthwiseConv2D:
		if mult := l.kernelDims[2] / x.Shape().Dim(3); mult > 1 {
			// Channel c feeds outputs c*mult ... c*mult+mult-1.
			b, h, w, c := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
			x = Reshape(BroadcastToDims(Reshape(x, b, h, w, c, 1), b, h, w, c, mult), b, h, w, c*mult)
		}
		y = DepthwiseConv2D(x, n.weights(scope, l, x.Graph()), l.params)
	case tflite.OpFullyConnected:
		y = DotGeneral(Reshape(x, x.Shape().Dim(0), -1), []int{1}, nil, n.weights(scope, l, x.Graph()), []int{0}, nil)
	case tflite.OpAdd:
		y = Add(x, input(1))
	case tflite.OpAveragePool2D:
		o := op.Options
		fileIn := g.Tensors[op.Inputs[0]].Shape
		if o.Padding == tflite.Valid && o.FilterH == fileIn[1] && o.FilterW == fileIn[2] {
			y = ReduceAndKeep(x, ReduceMean, 1, 2) // global pool, for any image size
		} else {
			y = AveragePool2D(x, o.FilterH, o.FilterW, l.params)
		}
	case tflite.OpReshape, tflite.OpSqueeze:
		dims := slices.Clone(g.Tensors[op.Outputs[0]].Shape)
		dims[0] = x.Shape().Dim(0)
		if total := x.Shape().Size(); total != prod(dims) {
			exceptions.Panicf("mobilenet: %s: operator %d %s: shape mismatch: cannot reshape %s to output tensor %q's %v (batch %d)",
				n.model.Path, op.Index, op.Code, x.Shape(), g.Tensors[op.Outputs[0]].Name, g.Tensors[op.Outputs[0]].Shape, dims[0])
		}
		y = Reshape(x, dims...)
	case tflite.OpSoftmax:
		beta := float64(op.Options.Beta)
		if beta != 0 && beta != 1 {
			x = MulScalar(x, beta)
		}
		y = Softmax(x, -1)
	default:
		exceptions.Panicf("mobilenet: %s: unsupported operator %d %s", n.model.Path, op.Index, op.Code)
	}
	if l.bias != nil {
		y = Add(y, ExpandLeftToRank(n.variable(scope, l, "biases", l.bias, len(l.bias)).NodeValue(x.Graph()), y.Rank()))
	}
	return activate(y, op.Options.Activation)
}

// weights returns the layer's kernel variable's value.
func (n *Network) weights(scope *model.Scope, l *layer, g *Graph) *Node {
	return n.variable(scope, l, "weights", l.kernel, l.kernelDims...).NodeValue(g)
}

// variable returns the layer's variable name, creating it with its loaded
// value (and the configured trainability) on first use.
func (n *Network) variable(scope *model.Scope, l *layer, name string, value []float32, dims ...int) *model.Variable {
	s := scope
	for _, part := range splitName(l.name) {
		s = s.At("%s", part)
	}
	v := s.GetVariable(name)
	if v == nil {
		v = s.VariableWithValue(name, tensors.FromFlatDataAndDimensions(slices.Clone(value), dims...))
	} else if !slices.Equal(v.Shape().Dimensions, dims) {
		exceptions.Panicf("mobilenet: variable %s has shape %s, but %s needs %v", v.Path(), v.Shape(), n.model.Path, dims)
	}
	return v.SetTrainable(n.cfg.Trainable)
}

// activate applies a fused activation.
func activate(x *Node, a tflite.Activation) *Node {
	switch a {
	case tflite.ActNone:
		return x
	case tflite.ActRelu:
		return MaxScalar(x, 0)
	case tflite.ActRelu6:
		return ClipScalar(x, 0, 6)
	case tflite.ActReluN1To1:
		return ClipScalar(x, -1, 1)
	case tflite.ActTanh:
		return Tanh(x)
	}
	exceptions.Panicf("mobilenet: unsupported fused activation %s", a)
	return nil
}

// fakeQuant rounds x to t's quantization grid and back to reals.
func fakeQuant(x *Node, t *tflite.Tensor) *Node {
	s, z := float64(t.Quant.ScaleAt(0)), float64(t.Quant.ZeroPointAt(0))
	lo, hi := t.QuantRange()
	q := ClipScalar(AddScalar(Round(MulScalar(x, 1/s)), z), float64(lo), float64(hi))
	return MulScalar(AddScalar(q, -z), s)
}

func prod(dims []int) int {
	p := 1
	for _, d := range dims {
		p *= d
	}
	return p
}

func splitName(name string) []string {
	var parts []string
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '/' {
			if i > start {
				parts = append(parts, name[start:i])
			}
			start = i + 1
		}
	}
	return parts
}
