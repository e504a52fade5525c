// Package vit implements the Vision Transformer (Dosovitskiy et al., 2021)
// with the options BEiT (Bao et al., 2022) and PeCo use: a learned [MASK]
// token for masked image modeling, a [CLS] token, absolute position
// embeddings, relative position bias (shared or per block), LayerScale and
// stochastic depth. It registers itself as the backbone "vit".
//
// The forward pass follows BEiT's modeling_pretrain.py / modeling_finetune.py:
//
//	x = PatchEmbed(images)                       [B, N, D]
//	x[mask] = mask_token
//	x = concat(cls_token, x) + pos_embed         [B, 1+N, D]
//	for each block:
//	    x = x + drop_path(gamma_1 * Attn(LN(x), rel_pos_bias))
//	    x = x + drop_path(gamma_2 * MLP(LN(x)))
//	tokens = LN(x)
//
// # Variables
//
// Variables live under the scope passed to Forward, with BEiT's names
// (PyTorch "a.b" becomes "a/b"); dense weights are stored [in, out], the
// transpose of PyTorch's nn.Linear.weight:
//
//	patch_embed/weight         [p*p*C, D]  rows ordered (py, px, c): PyTorch's
//	                                       conv weight [D, C, p, p] permuted to [p, p, C, D]
//	patch_embed/bias           [D]
//	cls_token, mask_token      [1, 1, D]   (mask_token only once Forward saw a mask)
//	pos_embed                  [1, T, D]   T = N (+1 with the [CLS] token)
//	rel_pos_bias/rel_pos_bias_table        [(2h-1)(2w-1)+3, heads] (rel_pos_bias: shared)
//	blocks/<i>/norm1/{weight,bias}         [D]
//	blocks/<i>/attn/qkv/weight             [D, 3D] output columns ordered (q|k|v, head, head_dim)
//	blocks/<i>/attn/{q_bias,v_bias}        [D]  (BEiT has no key bias)
//	blocks/<i>/attn/rel_pos_bias_table     (rel_pos_bias: per_layer)
//	blocks/<i>/attn/proj/{weight,bias}
//	blocks/<i>/gamma_1, blocks/<i>/gamma_2 [D]  (layer_scale > 0)
//	blocks/<i>/norm2/{weight,bias}
//	blocks/<i>/mlp/fc1/{weight,bias}, blocks/<i>/mlp/fc2/{weight,bias}
//	norm/{weight,bias}
//
// With these names the weight-decay rule "no decay when rank < 2 or the name
// is cls_token, mask_token, pos_embed or rel_pos_bias_table" is the same as
// [NoWeightDecay], and [LayerID] gives BEiT's layer-wise learning-rate decay
// groups.
//
// Variables are float32; with dtype bfloat16 the matmuls and element-wise
// work run in bfloat16 while LayerNorm and softmax run in float32, and
// Features are returned as float32.
package vit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/nn"
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

func init() {
	registry.Register(core.Backbones, "vit",
		"Vision Transformer with BEiT options (mask token, relative position bias, LayerScale, drop path)",
		DefaultConfig, New)
}

// Relative position bias modes (Config.RelPosBias).
const (
	// RelPosNone disables the relative position bias.
	RelPosNone = "none"
	// RelPosShared uses one bias table for all blocks (BEiT pre-training).
	RelPosShared = "shared"
	// RelPosPerLayer gives every block its own bias table (BEiT fine-tuning).
	RelPosPerLayer = "per_layer"
)

// Config holds the hyperparameters of a Vision Transformer with BEiT's
// options. Fields left 0 among Dim, Depth and Heads are filled from Preset.
type Config struct {
	ImageSize    int     `mapstructure:"image_size" doc:"input image height and width in pixels (square images)"`
	PatchSize    int     `mapstructure:"patch_size" doc:"patch height and width in pixels; image_size must be a multiple"`
	InChannels   int     `mapstructure:"in_channels" doc:"number of input image channels"`
	Dim          int     `mapstructure:"dim" doc:"token width; 0 takes it from preset"`
	Depth        int     `mapstructure:"depth" doc:"number of transformer blocks; 0 takes it from preset (when preset is set)"`
	Heads        int     `mapstructure:"heads" doc:"number of attention heads; 0 takes it from preset; must divide dim"`
	MLPRatio     float64 `mapstructure:"mlp_ratio" doc:"MLP hidden width as a multiple of dim"`
	QKVBias      bool    `mapstructure:"qkv_bias" doc:"learn query and value biases (BEiT: no key bias)"`
	UseCLS       bool    `mapstructure:"use_cls" doc:"prepend a learned [CLS] token"`
	AbsPosEmb    bool    `mapstructure:"abs_pos_emb" doc:"add a learned absolute position embedding"`
	RelPosBias   string  `mapstructure:"rel_pos_bias" doc:"relative position bias: none, shared (one table for all blocks) or per_layer"`
	LayerScale   float64 `mapstructure:"layer_scale" doc:"LayerScale initial value (BEiT: 0.1); 0 turns LayerScale off"`
	DropPath     float64 `mapstructure:"drop_path" doc:"stochastic depth rate of the last block, increasing linearly from 0 at the first"`
	LayerNormEps float64 `mapstructure:"layer_norm_eps" doc:"LayerNorm epsilon"`
	InitStd      float64 `mapstructure:"init_std" doc:"standard deviation of the truncated-normal weight initialisation"`
	Preset       string  `mapstructure:"preset" doc:"size preset filling dim, depth and heads left 0: tiny, small, base, large or empty"`
	DType        string  `mapstructure:"dtype" doc:"compute dtype: float32 or bfloat16 (bfloat16 only pays off on XLA)"`
	// PackedAttention lays attention and the dense layers out for GoMLX's
	// pure-Go backend (attention_core.go); the model never asks which
	// backend runs it.
	PackedAttention bool `mapstructure:"packed_attention" doc:"float32 attention and dense layers with hand-written gradients laid out for GoMLX's pure-Go backend (--backend go, ~1.5x there); leave off on cpu and xla, which fuse the plain graph"`
}

// DefaultConfig returns a ViT-Tiny/16 for 224x224 RGB images with BEiT's
// defaults (qkv bias, [CLS] token, absolute position embedding, no relative
// position bias, no LayerScale, no drop path). The size comes from the "tiny"
// preset: Dim, Depth and Heads are 0 so that setting another preset is enough
// to change the size.
func DefaultConfig() Config {
	return Config{
		ImageSize:    224,
		PatchSize:    16,
		InChannels:   3,
		MLPRatio:     4,
		QKVBias:      true,
		UseCLS:       true,
		AbsPosEmb:    true,
		RelPosBias:   RelPosNone,
		LayerNormEps: 1e-6,
		InitStd:      0.02,
		Preset:       "tiny",
		DType:        "float32",
	}
}

// Resolve returns c with Dim, Depth and Heads that are 0 filled from c.Preset
// (no-op when Preset is empty or unknown; Validate reports unknown presets).
func (c Config) Resolve() Config {
	p, ok := PresetByName(c.Preset)
	if !ok {
		return c
	}
	if c.Dim == 0 {
		c.Dim = p.Dim
	}
	if c.Depth == 0 {
		c.Depth = p.Depth
	}
	if c.Heads == 0 {
		c.Heads = p.Heads
	}
	return c
}

// Validate checks the config after resolving the preset and reports every
// problem found, each naming the offending field by its config key.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("vit: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Preset != "" {
		if _, ok := PresetByName(c.Preset); !ok {
			bad("preset", "unknown preset %q (known: %s)", c.Preset, strings.Join(presetNames, ", "))
		}
	}
	c = c.Resolve()
	if c.ImageSize <= 0 {
		bad("image_size", "must be > 0, got %d", c.ImageSize)
	}
	if c.PatchSize <= 0 {
		bad("patch_size", "must be > 0, got %d", c.PatchSize)
	} else if c.ImageSize > 0 && c.ImageSize%c.PatchSize != 0 {
		bad("patch_size", "image_size %d is not a multiple of patch_size %d", c.ImageSize, c.PatchSize)
	}
	if c.InChannels <= 0 {
		bad("in_channels", "must be > 0, got %d", c.InChannels)
	}
	if c.Dim <= 0 {
		bad("dim", "must be > 0 (or set preset), got %d", c.Dim)
	}
	if c.Depth < 0 {
		bad("depth", "must be >= 0, got %d", c.Depth)
	}
	if c.Heads <= 0 {
		bad("heads", "must be > 0 (or set preset), got %d", c.Heads)
	} else if c.Dim > 0 && c.Dim%c.Heads != 0 {
		bad("heads", "dim %d is not divisible by heads %d", c.Dim, c.Heads)
	}
	if !(c.MLPRatio > 0) || math.IsInf(c.MLPRatio, 0) {
		bad("mlp_ratio", "must be > 0, got %g", c.MLPRatio)
	} else if c.Dim > 0 && c.mlpHidden() < 1 {
		bad("mlp_ratio", "dim %d * mlp_ratio %g gives an empty MLP", c.Dim, c.MLPRatio)
	}
	switch c.RelPosBias {
	case RelPosNone, RelPosShared, RelPosPerLayer:
	default:
		bad("rel_pos_bias", "must be %q, %q or %q, got %q", RelPosNone, RelPosShared, RelPosPerLayer, c.RelPosBias)
	}
	if !(c.LayerScale >= 0) || math.IsInf(c.LayerScale, 0) {
		bad("layer_scale", "must be >= 0 (0 = off), got %g", c.LayerScale)
	}
	if !(c.DropPath >= 0 && c.DropPath < 1) {
		bad("drop_path", "must be in [0, 1), got %g", c.DropPath)
	}
	if !(c.LayerNormEps > 0) {
		bad("layer_norm_eps", "must be > 0, got %g", c.LayerNormEps)
	}
	if !(c.InitStd >= 0) || math.IsInf(c.InitStd, 0) {
		bad("init_std", "must be >= 0, got %g", c.InitStd)
	}
	switch c.DType {
	case "float32", "bfloat16":
	default:
		bad("dtype", "must be \"float32\" or \"bfloat16\", got %q", c.DType)
	}
	return errors.Join(errs...)
}

// GridSize returns the number of patches along each side of the image.
func (c Config) GridSize() int { return c.ImageSize / c.PatchSize }

// mlpHidden returns the MLP's hidden width, int(dim * mlp_ratio) as in timm.
func (c Config) mlpHidden() int { return int(float64(c.Dim) * c.MLPRatio) }

// ViT is a Vision Transformer backbone. It holds only its (validated,
// resolved) configuration; the weights live in the model.Store of the scope
// passed to Forward. Calling Forward twice with the same scope shares weights.
type ViT struct {
	cfg          Config
	grid         int
	computeDType dtypes.DType
	// relIndex is BEiT's relative_position_index for the tokens, flattened
	// row-major: relIndex[i*T+j] indexes the bias table for query i, key j.
	relIndex []int32
}

var _ core.Backbone = (*ViT)(nil)

// New builds a ViT from cfg, after filling Dim, Depth and Heads from the
// preset and validating.
func New(cfg Config) (core.Backbone, error) {
	return NewViT(cfg)
}

// NewViT is New returning the concrete type, for callers that need the
// ViT-specific methods (Embed, Config).
func NewViT(cfg Config) (*ViT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.Resolve()
	m := &ViT{cfg: cfg, grid: cfg.GridSize(), computeDType: dtypes.Float32}
	if cfg.DType == "bfloat16" {
		m.computeDType = dtypes.BFloat16
	}
	if cfg.RelPosBias != RelPosNone {
		idx := relativePositionIndex(m.grid, m.grid)
		if !cfg.UseCLS {
			idx = idx[1:]
			for i := range idx {
				idx[i] = idx[i][1:]
			}
		}
		for _, row := range idx {
			for _, v := range row {
				m.relIndex = append(m.relIndex, int32(v))
			}
		}
	}
	return m, nil
}

// Config returns the resolved configuration.
func (m *ViT) Config() Config { return m.cfg }

// Dim returns the token width.
func (m *ViT) Dim() int { return m.cfg.Dim }

// InputShape is the (height, width, channels) of the images the ViT takes
// (core.PatchBackbone).
func (m *ViT) InputShape() (h, w, c int) { return m.cfg.ImageSize, m.cfg.ImageSize, m.cfg.InChannels }

// PatchGrid is the patch grid of its tokens (core.PatchBackbone).
func (m *ViT) PatchGrid() (rows, cols int) { return m.cfg.GridSize(), m.cfg.GridSize() }

// NumLayers is the number of blocks (core.LayeredBackbone).
func (m *ViT) NumLayers() int { return m.cfg.Depth }

// LayerID is the layer-wise lr decay group of a variable (core.LayeredBackbone),
// see the function LayerID.
func (m *ViT) LayerID(variablePath string) int { return LayerID(variablePath, m.cfg.Depth) }

// packed reports whether the graph uses the layout of attention_core.go.
func (m *ViT) packed() bool { return m.cfg.PackedAttention && m.computeDType == dtypes.Float32 }

var (
	_ core.PatchBackbone   = (*ViT)(nil)
	_ core.LayeredBackbone = (*ViT)(nil)
)

// NumTokens returns the number of tokens per image: patches, plus one with
// the [CLS] token.
func (m *ViT) NumTokens() int {
	n := m.grid * m.grid
	if m.cfg.UseCLS {
		n++
	}
	return n
}

// Forward maps images [B, H, W, C] (H = W = image_size) to features. Where
// opts.Mask ([B, N] bool) is true, the patch embedding is replaced by the
// [MASK] token. With opts.Training, drop path is active.
func (m *ViT) Forward(scope *model.Scope, images *Node, opts core.ForwardOptions) core.Features {
	cfg := m.cfg
	x := m.Embed(scope, images, opts.Mask)

	var sharedBias *Node
	if cfg.RelPosBias == RelPosShared {
		sharedBias = m.relativePositionBias(scope.At("rel_pos_bias"), x.Graph())
	}

	layers := make([]*Node, 0, cfg.Depth)
	blocks := scope.At("blocks")
	for i := range cfg.Depth {
		dropRate := 0.0
		if opts.Training {
			dropRate = m.dropPathRate(i)
		}
		x = m.block(blocks.At("%d", i), x, sharedBias, i, dropRate, opts.Training)
		layers = append(layers, ConvertDType(x, dtypes.Float32))
	}
	x = m.layerNormTrain(scope.At("norm"), x, opts.Training)
	return core.Features{
		Tokens: ConvertDType(x, dtypes.Float32),
		Layers: layers,
		HasCLS: cfg.UseCLS,
		GridH:  m.grid,
		GridW:  m.grid,
	}
}

// Embed computes the input tokens of the first block, [B, T, D]: the patch
// embedding, with the [MASK] token where mask ([B, N] bool, may be nil) is
// true, the [CLS] token prepended, plus the absolute position embedding. It
// is in the compute dtype.
func (m *ViT) Embed(scope *model.Scope, images *Node, mask *Node) *Node {
	cfg := m.cfg
	g := images.Graph()
	if images.Rank() != 4 || images.Shape().Dim(1) != cfg.ImageSize || images.Shape().Dim(2) != cfg.ImageSize ||
		images.Shape().Dim(3) != cfg.InChannels {
		exceptions.Panicf("vit: images must be [batch, %d, %d, %d], got %s",
			cfg.ImageSize, cfg.ImageSize, cfg.InChannels, images.Shape())
	}
	batch, n, d := images.Shape().Dim(0), m.grid*m.grid, cfg.Dim

	x := m.patchEmbed(scope.At("patch_embed"), ConvertDType(images, m.computeDType)) // [B, N, D]

	if mask != nil {
		if mask.Rank() != 2 || mask.Shape().Dim(0) != batch || mask.Shape().Dim(1) != n {
			exceptions.Panicf("vit: mask must be [batch=%d, patches=%d], got %s", batch, n, mask.Shape())
		}
		if mask.DType() != dtypes.Bool {
			mask = NotEqual(mask, ScalarZero(g, mask.DType()))
		}
		maskToken := m.variable(scope, g, "mask_token", m.truncNormal(scope, cfg.InitStd), 1, 1, d)
		x = Where(mask, BroadcastToDims(maskToken, batch, n, d), x)
	}

	if cfg.UseCLS {
		cls := m.variable(scope, g, "cls_token", m.truncNormal(scope, cfg.InitStd), 1, 1, d)
		x = Concatenate([]*Node{BroadcastToDims(cls, batch, 1, d), x}, 1)
	}

	if cfg.AbsPosEmb {
		pos := m.variable(scope, g, "pos_embed", m.truncNormal(scope, cfg.InitStd), 1, m.NumTokens(), d)
		x = Add(x, pos)
	}
	return x
}

// patchEmbed cuts images [B, H, W, C] into non-overlapping p x p patches and
// projects each to D: a reshape/transpose to [B, N, p*p*C] and one matmul,
// equivalent to BEiT's stride-p convolution.
func (m *ViT) patchEmbed(scope *model.Scope, images *Node) *Node {
	cfg := m.cfg
	g := images.Graph()
	batch, p, c, grid := images.Shape().Dim(0), cfg.PatchSize, cfg.InChannels, m.grid
	x := Reshape(images, batch, grid, p, grid, p, c)  // [B, gy, py, gx, px, C]
	x = TransposeAllAxes(x, 0, 1, 3, 2, 4, 5)         // [B, gy, gx, py, px, C]
	x = Reshape(x, batch, grid*grid, p*p*c)           // [B, N, p*p*C]
	return m.dense(scope, g, x, cfg.Dim, cfg.InitStd) // [B, N, D]
}

// block is one pre-norm transformer block.
func (m *ViT) block(scope *model.Scope, x, sharedBias *Node, index int, dropRate float64, training bool) *Node {
	cfg := m.cfg
	g := x.Graph()
	// BEiT's fix_init_weight: the residual projections start scaled by 1/sqrt(2*(index+1)).
	outStd := cfg.InitStd / math.Sqrt(2*float64(index+1))

	h := m.layerNormTrain(scope.At("norm1"), x, training)
	h = m.attention(scope.At("attn"), h, sharedBias, outStd)
	if cfg.LayerScale > 0 {
		h = Mul(h, ExpandLeftToRank(m.variable(scope, g, "gamma_1", constantInit(cfg.LayerScale), cfg.Dim), h.Rank()))
	}
	x = Add(x, DropPath(scope, h, dropRate))

	h = m.layerNormTrain(scope.At("norm2"), x, training)
	h = m.mlp(scope.At("mlp"), h, outStd, training)
	if cfg.LayerScale > 0 {
		h = Mul(h, ExpandLeftToRank(m.variable(scope, g, "gamma_2", constantInit(cfg.LayerScale), cfg.Dim), h.Rank()))
	}
	return Add(x, DropPath(scope, h, dropRate))
}

// attention is multi-head self-attention on x [B, T, D] with one fused QKV
// projection. bias, if not nil, is a [heads, T, T] relative position bias;
// with rel_pos_bias per_layer the block's own table is used instead.
func (m *ViT) attention(scope *model.Scope, x, bias *Node, outStd float64) *Node {
	cfg := m.cfg
	g := x.Graph()
	batch, t, d := x.Shape().Dim(0), x.Shape().Dim(1), cfg.Dim
	heads := cfg.Heads
	headDim := d / heads

	// qkv = x @ W_qkv + (q_bias, 0, v_bias)
	w := m.variable(scope.At("qkv"), g, "weight", m.truncNormal(scope, cfg.InitStd), d, 3*d)
	var qkv *Node // [B, T, 3D]
	if m.packed() {
		qkv = linear(x, w)
	} else {
		qkv = DotGeneral(x, []int{2}, nil, w, []int{0}, nil)
	}
	if cfg.QKVBias {
		qBias := m.variable(scope, g, "q_bias", zeroInit, d)
		vBias := m.variable(scope, g, "v_bias", zeroInit, d)
		qkv = Add(qkv, Reshape(Concatenate([]*Node{qBias, ZerosLike(qBias), vBias}, 0), 1, 1, 3*d))
	}
	if cfg.RelPosBias == RelPosPerLayer {
		bias = m.relativePositionBias(scope, g)
	}
	var out *Node
	if m.packed() {
		// Heads merged into the batch axis: [3, B*H, T, hd]; see attention_core.go.
		qkvT := TransposeAllAxes(Reshape(qkv, batch, t, 3, heads, headDim), 2, 0, 3, 1, 4) // [3, B, H, T, hd]
		out = attentionCore(Reshape(qkvT, 3, batch*heads, t, headDim), bias, batch, heads, 1/math.Sqrt(float64(headDim)))
		out = TransposeAllAxes(Reshape(out, batch, heads, t, headDim), 0, 2, 1, 3) // [B, T, H, hd]
	} else {
		out = attentionPlain(qkv, bias, batch, t, heads, headDim, m.computeDType)
	}
	out = Reshape(out, batch, t, d)
	return m.dense(scope.At("proj"), g, out, d, outStd)
}

// attentionPlain is the straightforward graph of attention on qkv [B, T, 3D]
// (autodiff gradient), returning [B, T, H, hd]; used for bfloat16 and as the
// reference the float32 core (attentionCore) is tested against.
func attentionPlain(qkv, bias *Node, batch, t, heads, headDim int, computeDType dtypes.DType) *Node {
	qkv = Reshape(qkv, batch, t, 3, heads, headDim)
	q := Reshape(SliceAxis(qkv, 2, AxisElem(0)), batch, t, heads, headDim)
	k := Reshape(SliceAxis(qkv, 2, AxisElem(1)), batch, t, heads, headDim)
	v := Reshape(SliceAxis(qkv, 2, AxisElem(2)), batch, t, heads, headDim)

	// logits[b, h, i, j] = (q[b, i, h] / sqrt(head_dim)) . k[b, j, h]
	q = MulScalar(q, 1/math.Sqrt(float64(headDim)))
	logits := DotGeneral(q, []int{3}, []int{0, 2}, k, []int{3}, []int{0, 2}) // [B, H, T, T]
	logits = ConvertDType(logits, dtypes.Float32)
	if bias != nil {
		logits = Add(logits, Reshape(bias, 1, heads, t, t))
	}
	attn := ConvertDType(Softmax(logits, -1), computeDType)

	// out[b, i, h] = sum_j attn[b, h, i, j] v[b, j, h]
	out := DotGeneral(attn, []int{3}, []int{0, 1}, v, []int{1}, []int{0, 2}) // [B, H, T, hd]
	return TransposeAllAxes(out, 0, 2, 1, 3)                                 // [B, T, H, hd]
}

// mlp is fc1 -> GELU (exact, erf) -> fc2.
//
// When training, GELU is built from primitives (x * 0.5 * (1 + erf(x/sqrt 2)),
// the same formula): the library's Gelu runs the backend's fused op forward
// and, for the gradient, the same decomposed graph as well, so in a training
// step it computes erf twice.
func (m *ViT) mlp(scope *model.Scope, x *Node, outStd float64, training bool) *Node {
	g := x.Graph()
	h := m.dense(scope.At("fc1"), g, x, m.cfg.mlpHidden(), m.cfg.InitStd)
	if training {
		h = Mul(h, MulScalar(AddScalar(Erf(MulScalar(h, 1/math.Sqrt2)), 1), 0.5))
	} else {
		h = activation.Gelu(h)
	}
	return m.dense(scope.At("fc2"), g, h, m.cfg.Dim, outStd)
}

// dense is x @ weight + bias on x's last axis, with weight [in, out]
// initialised truncated-normal(std) and a zero bias.
func (m *ViT) dense(scope *model.Scope, g *Graph, x *Node, out int, std float64) *Node {
	in := x.Shape().Dim(-1)
	w := m.variable(scope, g, "weight", m.truncNormal(scope, std), in, out)
	b := m.variable(scope, g, "bias", zeroInit, out)
	var y *Node
	if m.packed() {
		y = linear(x, w) // hand-written gradient, see attention_core.go
	} else {
		y = DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{0}, nil)
	}
	return Add(y, ExpandLeftToRank(b, y.Rank()))
}

// layerNormTrain is layerNorm; when training it builds the normalisation
// from primitives only (the library's LayerNorm runs the backend's fused op
// forward and, for the gradient, the decomposed graph as well).
func (m *ViT) layerNormTrain(scope *model.Scope, x *Node, training bool) *Node {
	if !training {
		return m.layerNorm(scope, x)
	}
	g := x.Graph()
	d := x.Shape().Dim(-1)
	w := scope.WithInitializer(constantInit(1)).VariableWithShape("weight", shapes.Make(dtypes.Float32, d)).NodeValue(g)
	b := scope.WithInitializer(zeroInit).VariableWithShape("bias", shapes.Make(dtypes.Float32, d)).NodeValue(g)
	xf := ConvertDType(x, dtypes.Float32)
	centered := Sub(xf, ReduceAndKeep(xf, ReduceMean, -1))
	variance := ReduceAndKeep(Square(centered), ReduceMean, -1)
	y := Div(centered, Sqrt(AddScalar(variance, m.cfg.LayerNormEps))) // (Rsqrt has no gradient in GoMLX)
	y = Add(Mul(y, ExpandLeftToRank(w, y.Rank())), ExpandLeftToRank(b, y.Rank()))
	return ConvertDType(y, m.computeDType)
}

// layerNorm normalises x over its last axis, in float32, with a learned
// weight (init 1) and bias (init 0).
func (m *ViT) layerNorm(scope *model.Scope, x *Node) *Node {
	g := x.Graph()
	d := x.Shape().Dim(-1)
	w := scope.WithInitializer(constantInit(1)).VariableWithShape("weight", shapes.Make(dtypes.Float32, d)).NodeValue(g)
	b := scope.WithInitializer(zeroInit).VariableWithShape("bias", shapes.Make(dtypes.Float32, d)).NodeValue(g)
	y := nn.LayerNorm(ConvertDType(x, dtypes.Float32), []int{x.Rank() - 1}, m.cfg.LayerNormEps, w, b, nil)
	return ConvertDType(y, m.computeDType)
}

// relativePositionBias gathers the [heads, T, T] bias from the scope's
// rel_pos_bias_table (zero-initialised, as in BEiT) with the host-computed
// relative position index.
func (m *ViT) relativePositionBias(scope *model.Scope, g *Graph) *Node {
	cfg := m.cfg
	numRel := (2*m.grid-1)*(2*m.grid-1) + 3
	table := scope.WithInitializer(zeroInit).
		VariableWithShape("rel_pos_bias_table", shapes.Make(dtypes.Float32, numRel, cfg.Heads)).NodeValue(g)
	t := m.NumTokens()
	index := Const(g, m.relIndex)                 // [T*T]
	bias := Gather(table, Reshape(index, t*t, 1)) // [T*T, heads]
	bias = Reshape(bias, t, t, cfg.Heads)         // [T, T, heads]
	return TransposeAllAxes(bias, 2, 0, 1)        // [heads, T, T]
}

// relativePositionIndex is BEiT's relative_position_index for a gh x gw patch
// grid with a [CLS] token: a (1+N) x (1+N) table (N = gh*gw) whose entry
// [i][j] selects the bias of query token i attending to key token j. Patch
// pairs use ((dh + gh-1) * (2gw-1) + (dw + gw-1)) for dh = hi-hj, dw = wi-wj;
// with R = (2gh-1)(2gw-1)+3 entries, [CLS] to patch is R-3, patch to [CLS]
// is R-2 and [CLS] to [CLS] is R-1.
func relativePositionIndex(gh, gw int) [][]int {
	n := gh * gw
	numRel := (2*gh-1)*(2*gw-1) + 3
	idx := make([][]int, n+1)
	for i := range idx {
		idx[i] = make([]int, n+1)
	}
	for i := range n {
		hi, wi := i/gw, i%gw
		for j := range n {
			hj, wj := j/gw, j%gw
			idx[i+1][j+1] = (hi-hj+gh-1)*(2*gw-1) + (wi - wj + gw - 1)
		}
	}
	for j := 1; j <= n; j++ {
		idx[0][j] = numRel - 3
		idx[j][0] = numRel - 2
	}
	idx[0][0] = numRel - 1
	return idx
}

// dropPathRate is the stochastic depth rate of block i: linearly from 0 at
// the first block to drop_path at the last (torch.linspace(0, rate, depth)).
func (m *ViT) dropPathRate(i int) float64 {
	if m.cfg.Depth <= 1 {
		return 0
	}
	return m.cfg.DropPath * float64(i) / float64(m.cfg.Depth-1)
}

// DropPath drops x [B, ...] as a whole per sample with probability rate and
// scales the kept samples by 1/(1-rate), so its expectation is x (stochastic
// depth, Huang et al. 2016, as in timm's drop_path). Call it only in
// training; with rate <= 0 it returns x. Randomness comes from the Store's
// RNG state.
func DropPath(scope *model.Scope, x *Node, rate float64) *Node {
	if rate <= 0 {
		return x
	}
	if rate >= 1 {
		exceptions.Panicf("vit: DropPath rate must be < 1, got %g", rate)
	}
	keep := 1 - rate
	dims := make([]int, x.Rank())
	for i := range dims {
		dims[i] = 1
	}
	dims[0] = x.Shape().Dim(0)
	u := scope.RandomUniform(x.Graph(), shapes.Make(dtypes.Float32, dims...)) // [B, 1, ..., 1] in [0, 1)
	kept := ConvertDType(LessThan(u, Scalar(x.Graph(), dtypes.Float32, keep)), x.DType())
	return Mul(x, MulScalar(kept, 1/keep))
}

// variable returns the value of a float32 variable in the compute dtype.
func (m *ViT) variable(scope *model.Scope, g *Graph, name string, init model.VariableInitializer, dims ...int) *Node {
	v := scope.WithInitializer(init).VariableWithShape(name, shapes.Make(dtypes.Float32, dims...))
	return ConvertDType(v.NodeValue(g), m.computeDType)
}

// truncNormal returns BEiT's initialiser, timm's trunc_normal_(std=std): a
// normal with mean 0 truncated to [-2, 2] (absolute bounds, as timm's
// defaults; at std 0.02 the truncation practically never triggers). Values
// out of bounds are redrawn a few times, then clipped.
func (m *ViT) truncNormal(scope *model.Scope, std float64) model.VariableInitializer {
	const lo, hi = -2.0, 2.0
	store := scope.Store()
	return func(g *Graph, shape shapes.Shape) *Node {
		if !shape.DType.IsFloat() {
			return Zeros(g, shape)
		}
		x := MulScalar(store.RandomNormal(g, shape), std)
		for range 4 {
			out := Or(LessThan(x, Scalar(g, shape.DType, lo)), GreaterThan(x, Scalar(g, shape.DType, hi)))
			x = Where(out, MulScalar(store.RandomNormal(g, shape), std), x)
		}
		return ClipScalar(x, lo, hi)
	}
}

// zeroInit initialises variables with zeros.
func zeroInit(g *Graph, shape shapes.Shape) *Node { return Zeros(g, shape) }

// constantInit initialises variables with value.
func constantInit(value float64) model.VariableInitializer {
	return func(g *Graph, shape shapes.Shape) *Node { return FillScalar(g, shape, value) }
}

// NoWeightDecay reports whether the variable at variablePath (a model.Store
// path such as "/backbone/blocks/3/attn/qkv/weight") is excluded from weight
// decay, as in BEiT: biases (bias, q_bias, v_bias), LayerNorm weights
// (norm, norm1, norm2), LayerScale (gamma_1, gamma_2), cls_token,
// mask_token, pos_embed and rel_pos_bias_table. For this package's variables
// it equals "rank < 2 or name in {cls_token, mask_token, pos_embed,
// rel_pos_bias_table}".
func NoWeightDecay(variablePath string) bool {
	parts := splitPath(variablePath)
	if len(parts) == 0 {
		return false
	}
	name := parts[len(parts)-1]
	switch name {
	case "cls_token", "mask_token", "pos_embed", "rel_pos_bias_table":
		return true
	case "bias", "q_bias", "v_bias", "gamma_1", "gamma_2":
		return true
	case "weight":
		return len(parts) >= 2 && strings.HasPrefix(parts[len(parts)-2], "norm")
	}
	return false
}

// LayerID returns the layer-wise learning-rate decay group of a variable, as
// BEiT's get_num_layer_for_vit with num_layers = depth+2: 0 for cls_token,
// mask_token, pos_embed and patch_embed/*, i+1 for blocks/<i>/*, and depth+1
// for everything else (final norm, shared relative position bias, heads).
// variablePath is a model.Store path; the innermost "blocks/<i>" counts.
func LayerID(variablePath string, depth int) int {
	parts := splitPath(variablePath)
	for i := len(parts) - 2; i >= 0; i-- {
		if parts[i] == "blocks" {
			if n, err := strconv.Atoi(parts[i+1]); err == nil && n >= 0 {
				return n + 1
			}
		}
	}
	if len(parts) > 0 {
		switch parts[len(parts)-1] {
		case "cls_token", "mask_token", "pos_embed":
			return 0
		}
	}
	for _, p := range parts {
		if p == "patch_embed" {
			return 0
		}
	}
	return depth + 1
}

// splitPath splits a store path into its non-empty components.
func splitPath(p string) []string {
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return parts
}

// String describes the model in one line.
func (m *ViT) String() string {
	c := m.cfg
	return fmt.Sprintf("ViT(dim=%d, depth=%d, heads=%d, patch=%d, image=%d, rel_pos_bias=%s, layer_scale=%g, drop_path=%g)",
		c.Dim, c.Depth, c.Heads, c.PatchSize, c.ImageSize, c.RelPosBias, c.LayerScale, c.DropPath)
}
