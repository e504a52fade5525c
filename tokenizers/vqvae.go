package tokenizers

import (
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"

	"github.com/peco-dev/peco/backbones/conv"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// QuantizerConfig configures the nearest-codeword quantiser of a VQ-VAE.
type QuantizerConfig struct {
	CodebookSize int     `mapstructure:"codebook_size" doc:"number of codewords K (PeCo: 8192; small data: 512-1024)"`
	CodeDim      int     `mapstructure:"code_dim" doc:"codeword width D (the encoder's output channels)"`
	L2Norm       bool    `mapstructure:"l2_norm" doc:"l2-normalise encoder vectors and codewords (cosine-similarity codes, as in ViT-VQGAN / BEiT v2)"`
	EMA          bool    `mapstructure:"ema" doc:"update the codebook by exponential moving averages of its assigned vectors instead of by gradient (the vq loss then drops its codebook term)"`
	EMADecay     float64 `mapstructure:"ema_decay" doc:"EMA decay"`
	EMAEps       float64 `mapstructure:"ema_eps" doc:"Laplace smoothing of the EMA cluster sizes"`
	Init         string  `mapstructure:"init" doc:"codebook initialisation: random (normal, std 1/sqrt(D)), batch (random encoder vectors of the first training batch) or kmeans (k-means on the first batch, starting from batch)"`
	KMeansIters  int     `mapstructure:"kmeans_iters" doc:"Lloyd iterations of the kmeans init"`
	RestartAfter int     `mapstructure:"restart_after" doc:"re-initialise a code unused for this many training steps from a random encoder vector of the current batch (0 = never)"`
}

// Validate checks the ranges.
func (c *QuantizerConfig) Validate() error {
	var errs []error
	if c.CodebookSize < 2 || c.CodeDim <= 0 {
		errs = append(errs, fmt.Errorf("codebook_size must be >= 2 and code_dim > 0, got %d and %d", c.CodebookSize, c.CodeDim))
	}
	if c.EMADecay <= 0 || c.EMADecay >= 1 || c.EMAEps <= 0 {
		errs = append(errs, fmt.Errorf("ema_decay must be in (0, 1) and ema_eps > 0"))
	}
	switch c.Init {
	case "random", "batch", "kmeans":
	default:
		errs = append(errs, fmt.Errorf("init must be random, batch or kmeans, got %q", c.Init))
	}
	if c.KMeansIters < 0 || c.RestartAfter < 0 {
		errs = append(errs, errors.New("kmeans_iters and restart_after must be >= 0"))
	}
	return errors.Join(errs...)
}

// Quantizer is a VQ-VAE codebook with nearest-codeword assignment. Its
// variables (in the scope given to its methods): "codebook" [K, D] (trained
// by gradient, or, with EMA, non-trainable and written by the EMA update),
// and the non-trainable state "ema_count" [K], "ema_sum" [K, D] (EMA
// statistics; they start at 1 and at the codebook, so an unused code keeps
// its value) and "unused" [K] (training steps since each code was last
// assigned, for dead-code restarts).
type Quantizer struct{ Config QuantizerConfig }

// Quantized is the result of Quantize.
type Quantized struct {
	// IDs are the codeword indices [N] int32.
	IDs *Node
	// Z and ZQ are the (normalised, with L2Norm) encoder vectors [N, D] and
	// their codewords: the inputs of the vq loss.
	Z, ZQ *Node
	// ST is the straight-through output z + sg(z_q - z): forward value z_q,
	// gradient passed to z unchanged.
	ST *Node
}

func (q *Quantizer) codebookVar(scope *model.Scope) *model.Variable {
	k, d := q.Config.CodebookSize, q.Config.CodeDim
	v := scope.WithInitializer(initializer.RandomNormalFn(scope, 1/sqrtF(d))).
		VariableWithShape("codebook", shapes.Make(dtypes.Float32, k, d))
	if q.Config.EMA {
		v.SetTrainable(false)
	}
	return v
}

func (q *Quantizer) stateVars(scope *model.Scope, g *Graph) (count, sum, unused *model.Variable) {
	k, d := q.Config.CodebookSize, q.Config.CodeDim
	count = nonTrainable(scope.WithInitializer(initializer.One).VariableWithShape("ema_count", shapes.Make(dtypes.Float32, k)))
	sum = nonTrainable(scope.WithInitializer(initializer.Zero).VariableWithShape("ema_sum", shapes.Make(dtypes.Float32, k, d)))
	unused = nonTrainable(scope.WithInitializer(initializer.Zero).VariableWithShape("unused", shapes.Make(dtypes.Float32, k)))
	return
}

func sqrtF(d int) float64 { return math.Sqrt(float64(d)) }

// normalise l2-normalises the rows of x when L2Norm is set.
func (q *Quantizer) normalise(x *Node) *Node {
	if !q.Config.L2Norm {
		return x
	}
	return L2NormalizeWithEpsilon(x, 1e-6, -1)
}

// Assign returns the index [N] int32 of the nearest row of codebook [K, D]
// to each row of z [N, D], by squared L2 distance ||z||^2 - 2 z.e + ||e||^2
// computed with one matmul.
func Assign(z, codebook *Node) *Node {
	zz := ReduceAndKeep(Square(z), ReduceSum, -1)               // [N, 1]
	ee := InsertAxes(ReduceSum(Square(codebook), -1), 0)        // [1, K]
	ze := DotGeneral(z, []int{1}, nil, codebook, []int{1}, nil) // [N, K]
	dist := Add(Sub(zz, MulScalar(ze, 2)), ee)
	return ArgMin(dist, -1, dtypes.Int32)
}

// Lookup returns the codewords [N, D] of ids [N].
func Lookup(codebook, ids *Node) *Node {
	return Gather(codebook, InsertAxes(ids, -1))
}

// Quantize assigns each row of z [N, D] to its nearest codeword. With
// training, it first restarts dead codes (unused for RestartAfter steps)
// from random rows of z, then, after the assignment, updates the usage
// counters and (with EMA) the codebook:
//
//	count = decay*count + (1-decay)*n_k,  sum = decay*sum + (1-decay)*sum_{i->k} z_i
//	codebook_k = sum_k / ((count_k + eps) / (total + K*eps) * total)
//
// with total = sum of count. The EMA state must have been set by
// InitFromVectors (or SetCodebook) before the first training step: the
// tokenizer task does it on the first batch of a fresh run. All updates are written into the variables in
// the graph (Variable.SetNodeValue).
func (q *Quantizer) Quantize(scope *model.Scope, z *Node, training bool) Quantized {
	g := z.Graph()
	cfg := q.Config
	k := cfg.CodebookSize
	n := z.Shape().Dim(0)
	cbVar := q.codebookVar(scope)
	cb := cbVar.NodeValue(g)
	zn := q.normalise(z)
	zsg := StopGradient(zn)
	var countVar, sumVar, unusedVar *model.Variable
	var dead *Node
	if training {
		countVar, sumVar, unusedVar = q.stateVars(scope, g)
		if cfg.RestartAfter > 0 {
			dead = GreaterOrEqual(unusedVar.NodeValue(g), Scalar(g, dtypes.Float32, float64(cfg.RestartAfter)))
			ridx := scope.RandomIntN(g, int32(n), shapes.Make(dtypes.Int32, k))
			repl := Lookup(zsg, ridx) // [K, D]
			deadKD := BroadcastToDims(InsertAxes(dead, -1), k, cfg.CodeDim)
			cb = Where(deadKD, repl, cb)
			cbVar.SetNodeValue(cb)
			if cfg.EMA {
				sumVar.SetNodeValue(Where(deadKD, repl, sumVar.NodeValue(g)))
				countVar.SetNodeValue(Where(dead, OnesLike(countVar.NodeValue(g)), countVar.NodeValue(g)))
			}
		}
	}
	cbn := q.normalise(cb)
	ids := Assign(zsg, StopGradient(cbn))
	zq := Lookup(cbn, ids)
	if training {
		counts := ScatterSum(Zeros(g, shapes.Make(dtypes.Float32, k)), InsertAxes(ids, -1), Ones(g, shapes.Make(dtypes.Float32, n)), false, false)
		used := GreaterThan(counts, ScalarZero(g, dtypes.Float32))
		if dead != nil {
			used = LogicalOr(used, dead)
		}
		unused := unusedVar.NodeValue(g)
		unusedVar.SetNodeValue(Where(used, ZerosLike(unused), AddScalar(unused, 1)))
		if cfg.EMA {
			sums := ScatterSum(Zeros(g, shapes.Make(dtypes.Float32, k, cfg.CodeDim)), InsertAxes(ids, -1), zsg, false, false)
			d := cfg.EMADecay
			count := Add(MulScalar(countVar.NodeValue(g), d), MulScalar(counts, 1-d))
			sum := Add(MulScalar(sumVar.NodeValue(g), d), MulScalar(sums, 1-d))
			total := ReduceAllSum(count)
			smoothed := Mul(Div(AddScalar(count, cfg.EMAEps), AddScalar(total, float64(k)*cfg.EMAEps)), total)
			countVar.SetNodeValue(count)
			sumVar.SetNodeValue(sum)
			cbVar.SetNodeValue(Div(sum, InsertAxes(smoothed, -1)))
		}
	}
	st := Add(zn, StopGradient(Sub(zq, zn)))
	return Quantized{IDs: ids, Z: zn, ZQ: zq, ST: st}
}

// InitFromVectors initialises the codebook from encoder vectors z [N, D]:
// K random rows (Init "batch"), refined by KMeansIters Lloyd iterations
// (Init "kmeans"); the EMA state is reset to match and the usage counters
// to zero. Init "random" keeps the initial random codebook and only sets
// the state.
func (q *Quantizer) InitFromVectors(scope *model.Scope, z *Node) {
	cfg := q.Config
	g := z.Graph()
	k, n := cfg.CodebookSize, z.Shape().Dim(0)
	zn := StopGradient(q.normalise(z))
	cbVar := q.codebookVar(scope)
	count, sum, unused := q.stateVars(scope, g)
	cb := cbVar.NodeValue(g)
	if cfg.Init != "random" {
		cb = Lookup(zn, scope.RandomIntN(g, int32(n), shapes.Make(dtypes.Int32, k)))
	}
	if cfg.Init == "kmeans" {
		for range cfg.KMeansIters {
			ids := InsertAxes(Assign(zn, cb), -1)
			sums := ScatterSum(ZerosLike(cb), ids, zn, false, false)
			cnt := ScatterSum(Zeros(g, shapes.Make(dtypes.Float32, k)), ids, Ones(g, shapes.Make(dtypes.Float32, n)), false, false)
			has := BroadcastToDims(InsertAxes(GreaterThan(cnt, ScalarZero(g, dtypes.Float32)), -1), k, cfg.CodeDim)
			cb = Where(has, Div(sums, InsertAxes(Max(cnt, OnesLike(cnt)), -1)), cb)
			cb = q.normalise(cb)
		}
	}
	cbVar.SetNodeValue(cb)
	sum.SetNodeValue(cb)
	count.SetNodeValue(OnesLike(count.NodeValue(g)))
	unused.SetNodeValue(ZerosLike(unused.NodeValue(g)))
}

// VQVAEConfig configures the "vqvae" tokenizer.
type VQVAEConfig struct {
	InChannels      int         `mapstructure:"in_channels" doc:"image channels"`
	Encoder         conv.Config `mapstructure:"encoder" doc:"conv encoder: width, channel multipliers per level (downsampling 2^len(mults)), blocks per level, attention"`
	Decoder         conv.Config `mapstructure:"decoder" doc:"conv decoder (mirrors the encoder; mults listed from the top level as in the encoder)"`
	QuantizerConfig `mapstructure:",squash"`
}

// Validate checks that encoder and decoder agree.
func (c *VQVAEConfig) Validate() error {
	if c.InChannels <= 0 {
		return fmt.Errorf("in_channels must be > 0, got %d", c.InChannels)
	}
	if c.Encoder.Factor() != c.Decoder.Factor() {
		return fmt.Errorf("encoder downsamples by %d but the decoder upsamples by %d (give both the same number of mults)",
			c.Encoder.Factor(), c.Decoder.Factor())
	}
	return nil
}

// DefaultVQVAE is an f4 VQ-VAE (width 64, mults [1, 2]) with 512 codes of
// width 64, batch initialisation and dead-code restarts after 200 steps.
func DefaultVQVAE() VQVAEConfig {
	return VQVAEConfig{
		InChannels: 3, Encoder: conv.DefaultConfig(), Decoder: conv.DefaultConfig(),
		QuantizerConfig: QuantizerConfig{
			CodebookSize: 512, CodeDim: 64, EMADecay: 0.99, EMAEps: 1e-5,
			Init: "batch", KMeansIters: 10, RestartAfter: 200,
		},
	}
}

// VQVAE is a VQGAN-style VQ-VAE: conv encoder -> nearest codeword
// (straight-through) -> conv decoder. Variables under its scope: encoder/,
// quantizer/ (see Quantizer), decoder/. Loss terms (core.TokenizerOutput.Terms): "z" and
// "z_q" for the vq loss ([N, D]), plus "codebook_ema" when the codebook is
// EMA-updated.
type VQVAE struct {
	Config VQVAEConfig
	quant  *Quantizer
}

// NewVQVAE builds the tokenizer.
func NewVQVAE(c VQVAEConfig) (*VQVAE, error) {
	return &VQVAE{Config: c, quant: &Quantizer{Config: c.QuantizerConfig}}, nil
}

func init() {
	registry.Register(core.Tokenizers, "vqvae",
		"VQGAN-style VQ-VAE (nearest codeword, straight-through; EMA, l2-normalised codes, batch/k-means init, dead-code restarts); PeCo with a perceptual loss",
		DefaultVQVAE, func(c VQVAEConfig) (core.Tokenizer, error) { return NewVQVAE(c) })
}

// VocabSize implements core.Tokenizer.
func (m *VQVAE) VocabSize() int { return m.Config.CodebookSize }

// Grid implements core.TrainableTokenizer.
func (m *VQVAE) Grid(imageSize int) (int, int) {
	f := m.Config.Encoder.Factor()
	return imageSize / f, imageSize / f
}

// Prepare implements core.TrainableTokenizer: a VQ-VAE has no host-set scalars.
func (m *VQVAE) Prepare(*model.Scope, int, int) (map[string]float64, error) { return nil, nil }

// encode returns the encoder vectors flattened to [N, D] and the grid.
func (m *VQVAE) encode(scope *model.Scope, images *Node) (z *Node, b, h, w int) {
	ze := conv.Encoder(scope.In("encoder"), images, m.Config.Encoder, m.Config.CodeDim)
	d := ze.Shape().Dimensions
	return Reshape(ze, d[0]*d[1]*d[2], d[3]), d[0], d[1], d[2]
}

// Forward implements core.TrainableTokenizer.
func (m *VQVAE) Forward(scope *model.Scope, images *Node, training bool) core.TokenizerOutput {
	z, b, h, w := m.encode(scope, images)
	q := m.quant.Quantize(scope.In("quantizer"), z, training)
	rec := conv.Decoder(scope.In("decoder"), Reshape(q.ST, b, h, w, m.Config.CodeDim), m.Config.Decoder, m.Config.InChannels)
	terms := map[string]*Node{"z": q.Z, "z_q": q.ZQ}
	if m.Config.EMA {
		terms["codebook_ema"] = ScalarOne(images.Graph(), dtypes.Float32)
	}
	return core.TokenizerOutput{Reconstruction: rec, Tokens: Reshape(q.IDs, b, h, w), Terms: terms}
}

// InitFromBatch implements core.BatchInitializer: it initialises the codebook
// from the encoder vectors of images (Init batch or kmeans) and the
// quantiser's EMA and usage state (every Init).
func (m *VQVAE) InitFromBatch(scope *model.Scope, images *Node) {
	z, _, _, _ := m.encode(scope, images)
	m.quant.InitFromVectors(scope.In("quantizer"), z)
}

// Encode implements core.Tokenizer: the nearest codeword's index per cell.
func (m *VQVAE) Encode(scope *model.Scope, images *Node) *Node {
	z, b, h, w := m.encode(scope, images)
	q := m.quant.Quantize(scope.In("quantizer"), z, false)
	return Reshape(q.IDs, b, h, w)
}

// Decode implements core.Tokenizer: codewords -> decoder.
func (m *VQVAE) Decode(scope *model.Scope, tokens *Node) *Node {
	d := tokens.Shape().Dimensions
	qs := scope.In("quantizer")
	cb := m.quant.normalise(m.quant.codebookVar(qs).NodeValue(tokens.Graph()))
	zq := Lookup(cb, Reshape(ConvertDType(tokens, dtypes.Int32), d[0]*d[1]*d[2]))
	return conv.Decoder(scope.In("decoder"), Reshape(zq, d[0], d[1], d[2], m.Config.CodeDim), m.Config.Decoder, m.Config.InChannels)
}

// SetCodebook writes codebook values [K*D] (row-major) into the quantizer
// variables under scope (the tokenizer's scope): codebook, and the EMA sums,
// with EMA counts 1 and usage counters 0. For tests and imports.
func (m *VQVAE) SetCodebook(scope *model.Scope, values []float32) error {
	k, d := m.Config.CodebookSize, m.Config.CodeDim
	if len(values) != k*d {
		return fmt.Errorf("vqvae: codebook needs %d values, got %d", k*d, len(values))
	}
	qs := scope.At("quantizer")
	set := func(name string, t *tensors.Tensor) error {
		if v := qs.GetVariable(name); v != nil {
			return v.SetValue(t)
		}
		_, err := qs.CreateVariable(name, t)
		return err
	}
	ones := make([]float32, k)
	for i := range ones {
		ones[i] = 1
	}
	for _, e := range []error{
		set("codebook", tensors.FromFlatDataAndDimensions(append([]float32{}, values...), k, d)),
		set("ema_sum", tensors.FromFlatDataAndDimensions(append([]float32{}, values...), k, d)),
		set("ema_count", tensors.FromFlatDataAndDimensions(ones, k)),
		set("unused", tensors.FromFlatDataAndDimensions(make([]float32, k), k)),
	} {
		if e != nil {
			return fmt.Errorf("vqvae: setting the codebook: %w", e)
		}
	}
	return nil
}
