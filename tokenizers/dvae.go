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

// DVAEConfig configures the "dvae" tokenizer.
type DVAEConfig struct {
	InChannels     int         `mapstructure:"in_channels" doc:"image channels"`
	Encoder        conv.Config `mapstructure:"encoder" doc:"conv encoder producing codebook_size logits per cell"`
	Decoder        conv.Config `mapstructure:"decoder" doc:"conv decoder producing (mu, log_b) per pixel channel"`
	CodebookSize   int         `mapstructure:"codebook_size" doc:"number of codes K (DALL-E: 8192)"`
	CodeDim        int         `mapstructure:"code_dim" doc:"width of the code embeddings fed to the decoder"`
	TempStart      float64     `mapstructure:"temp_start" doc:"Gumbel-softmax temperature at step 0 (DALL-E: 1)"`
	TempEnd        float64     `mapstructure:"temp_end" doc:"temperature reached at the end of the annealing (DALL-E: 1/16)"`
	TempSchedule   string      `mapstructure:"temp_schedule" doc:"annealing curve: cosine (DALL-E) or exponential (geometric from temp_start to temp_end)"`
	TempAnnealFrac float64     `mapstructure:"temp_anneal_frac" doc:"fraction of the training steps over which the temperature is annealed; constant temp_end after"`
	KLWarmupFrac   float64     `mapstructure:"kl_warmup_frac" doc:"fraction of the training steps over which the KL weight ramps from 0 to 1 (cosine); 0 = full weight from the start"`
	Eps            float64     `mapstructure:"eps" doc:"logit-Laplace pixel mapping [0,1] -> [eps, 1-eps] used to decode mu into images (must equal the logit_laplace loss's eps)"`
}

// Validate checks the ranges.
func (c *DVAEConfig) Validate() error {
	var errs []error
	if c.InChannels <= 0 || c.CodebookSize < 2 || c.CodeDim <= 0 {
		errs = append(errs, errors.New("in_channels > 0, codebook_size >= 2 and code_dim > 0 are required"))
	}
	if c.Encoder.Factor() != c.Decoder.Factor() {
		errs = append(errs, fmt.Errorf("encoder downsamples by %d but the decoder upsamples by %d", c.Encoder.Factor(), c.Decoder.Factor()))
	}
	if c.TempStart <= 0 || c.TempEnd <= 0 {
		errs = append(errs, errors.New("temp_start and temp_end must be > 0"))
	}
	if c.TempSchedule != "cosine" && c.TempSchedule != "exponential" {
		errs = append(errs, fmt.Errorf("temp_schedule must be cosine or exponential, got %q", c.TempSchedule))
	}
	if c.TempAnnealFrac <= 0 || c.TempAnnealFrac > 1 || c.KLWarmupFrac < 0 || c.KLWarmupFrac > 1 {
		errs = append(errs, errors.New("temp_anneal_frac must be in (0, 1], kl_warmup_frac in [0, 1]"))
	}
	if c.Eps <= 0 || c.Eps >= 0.5 {
		errs = append(errs, fmt.Errorf("eps must be in (0, 0.5), got %v", c.Eps))
	}
	return errors.Join(errs...)
}

// DefaultDVAE is an f4 dVAE with 512 codes, temperature 1 -> 1/16 (cosine
// over 80% of training), KL weight ramped over the first 10%, eps 0.1.
func DefaultDVAE() DVAEConfig {
	return DVAEConfig{
		InChannels: 3, Encoder: conv.DefaultConfig(), Decoder: conv.DefaultConfig(),
		CodebookSize: 512, CodeDim: 64,
		TempStart: 1, TempEnd: 1.0 / 16, TempSchedule: "cosine", TempAnnealFrac: 0.8, KLWarmupFrac: 0.1, Eps: 0.1,
	}
}

// Temperature is the Gumbel-softmax temperature at step of total: with
// t = step / (temp_anneal_frac * total) clipped to [0, 1],
// cosine: end + (start-end) * (1 + cos(pi t)) / 2; exponential:
// start * (end/start)^t.
func (c DVAEConfig) Temperature(step, total int) float64 {
	t := float64(step) / math.Max(1, c.TempAnnealFrac*float64(total))
	t = min(max(t, 0), 1)
	if c.TempSchedule == "exponential" {
		return c.TempStart * math.Pow(c.TempEnd/c.TempStart, t)
	}
	return cosineAnneal(c.TempStart, c.TempEnd, t)
}

// KLRamp is the factor on the KL term at step of total: 0 -> 1 along half a
// cosine over the first kl_warmup_frac of the steps, 1 after.
func (c DVAEConfig) KLRamp(step, total int) float64 {
	if c.KLWarmupFrac == 0 {
		return 1
	}
	return cosineAnneal(0, 1, float64(step)/math.Max(1, c.KLWarmupFrac*float64(total)))
}

// DVAE is DALL-E's discrete VAE: the encoder outputs K logits per cell; in
// training a Gumbel-softmax sample (temperature annealed by the host, see
// Prepare) mixes the code embeddings; at evaluation the argmax code is
// used. The decoder outputs (mu, log_b) per pixel channel for the
// logit-Laplace loss. Variables under its scope: encoder/, codebook
// ("embedding" [K, D]), decoder/, and the host-set scalars
// schedule/temperature and schedule/kl_ramp. Loss terms (core.TokenizerOutput.Terms):
// "logits" [N, K], "mu", "log_b" [B, H, W, C] and "kl_ramp" (scalar).
type DVAE struct{ Config DVAEConfig }

func init() {
	registry.Register(core.Tokenizers, "dvae",
		"DALL-E-style discrete VAE: Gumbel-softmax (temperature annealed 1 -> 1/16), KL to uniform, logit-Laplace pixels (BEiT's tokenizer)",
		DefaultDVAE, func(c DVAEConfig) (core.Tokenizer, error) { return &DVAE{Config: c}, nil })
}

// VocabSize implements core.Tokenizer.
func (m *DVAE) VocabSize() int { return m.Config.CodebookSize }

// Grid implements core.TrainableTokenizer.
func (m *DVAE) Grid(imageSize int) (int, int) {
	f := m.Config.Encoder.Factor()
	return imageSize / f, imageSize / f
}

func scheduleVar(scope *model.Scope, name string) *model.Variable {
	return nonTrainable(scope.At("schedule").WithInitializer(initializer.One).VariableWithShape(name, shapes.Make(dtypes.Float32)))
}

// Prepare implements core.TrainableTokenizer: it sets schedule/temperature and
// schedule/kl_ramp for the step.
func (m *DVAE) Prepare(scope *model.Scope, step, total int) (map[string]float64, error) {
	temp, ramp := m.Config.Temperature(step, total), m.Config.KLRamp(step, total)
	for name, v := range map[string]float64{"temperature": temp, "kl_ramp": ramp} {
		vr, err := scope.At("schedule").CreateVariable(name, tensors.FromScalar(float32(v)))
		if err != nil {
			return nil, fmt.Errorf("dvae: %w", err)
		}
		vr.SetTrainable(false)
		if err := vr.SetValue(tensors.FromScalar(float32(v))); err != nil {
			return nil, fmt.Errorf("dvae: setting %s: %w", name, err)
		}
	}
	return map[string]float64{"temperature": temp, "kl_ramp": ramp}, nil
}

func (m *DVAE) embedding(scope *model.Scope, g *Graph) *Node {
	return scope.In("codebook").WithInitializer(initializer.RandomNormalFn(scope, 1)).
		VariableWithShape("embedding", shapes.Make(dtypes.Float32, m.Config.CodebookSize, m.Config.CodeDim)).NodeValue(g)
}

// decode runs the decoder on soft or hard codes y [B, h, w, K] and returns
// mu, log_b and the reconstruction in [-1, 1].
func (m *DVAE) decode(scope *model.Scope, y *Node) (mu, logB, rec *Node) {
	d := y.Shape().Dimensions
	k, c := m.Config.CodebookSize, m.Config.InChannels
	emb := m.embedding(scope, y.Graph())
	z := Reshape(MatMul(Reshape(y, d[0]*d[1]*d[2], k), emb), d[0], d[1], d[2], m.Config.CodeDim)
	out := conv.Decoder(scope.In("decoder"), z, m.Config.Decoder, 2*c)
	mu = SliceAxis(out, 3, AxisRange(0, c))
	logB = SliceAxis(out, 3, AxisRange(c, 2*c))
	eps := m.Config.Eps
	x01 := ClipScalar(DivScalar(AddScalar(Sigmoid(mu), -eps), 1-2*eps), 0, 1)
	return mu, logB, AddScalar(MulScalar(x01, 2), -1)
}

// Forward implements core.TrainableTokenizer.
func (m *DVAE) Forward(scope *model.Scope, images *Node, training bool) core.TokenizerOutput {
	g := images.Graph()
	k := m.Config.CodebookSize
	klRamp := scheduleVar(scope, "kl_ramp").NodeValue(g)
	temp := scheduleVar(scope, "temperature").NodeValue(g)
	logits := conv.Encoder(scope.In("encoder"), images, m.Config.Encoder, k) // [B, h, w, K]
	ids := ArgMax(logits, -1, dtypes.Int32)
	var y *Node
	if training {
		u := scope.RandomUniform(g, logits.Shape())
		gumbel := Neg(Log(AddScalar(Neg(Log(AddScalar(u, 1e-10))), 1e-10)))
		y = Softmax(Div(Add(logits, gumbel), temp), -1)
	} else {
		y = OneHot(ids, k, dtypes.Float32)
	}
	mu, logB, rec := m.decode(scope, y)
	d := logits.Shape().Dimensions
	terms := map[string]*Node{
		"logits": Reshape(logits, d[0]*d[1]*d[2], k),
		"mu":     mu, "log_b": logB,
		"kl_ramp": klRamp,
	}
	return core.TokenizerOutput{Reconstruction: rec, Tokens: ids, Terms: terms}
}

// Encode implements core.Tokenizer: the argmax code per cell.
func (m *DVAE) Encode(scope *model.Scope, images *Node) *Node {
	logits := conv.Encoder(scope.In("encoder"), images, m.Config.Encoder, m.Config.CodebookSize)
	return ArgMax(logits, -1, dtypes.Int32)
}

// Decode implements core.Tokenizer: one-hot codes -> decoder -> images.
func (m *DVAE) Decode(scope *model.Scope, tokens *Node) *Node {
	_, _, rec := m.decode(scope, OneHot(tokens, m.Config.CodebookSize, dtypes.Float32))
	return rec
}
