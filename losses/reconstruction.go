package losses

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// PixelConfig configures the l1 and l2 reconstruction losses.
type PixelConfig struct {
	Weight float64 `mapstructure:"weight" doc:"weight of the term in a composite loss"`
}

// L1 is the mean absolute difference between "input" and "reconstruction"
// (same shape, e.g. images [B, H, W, C], or MIM's per-patch targets and
// predictions [R, D]), over every element. An optional "weights" [R]
// averages the rows (first axis) by weight instead.
type L1 struct{ Config PixelConfig }

// Weight implements core.Loss.
func (l L1) Weight() float64 { return l.Config.Weight }

// Compute implements core.Loss.
func (l L1) Compute(_ *model.Scope, in map[string]*Node) (*Node, error) {
	x, y, err := pair("l1", in, "input", "reconstruction")
	if err != nil {
		return nil, err
	}
	return weightedMean(Abs(Sub(x, y)), in["weights"])
}

// L2 is the mean squared difference between "input" and "reconstruction",
// over every element; "weights" [R], when given, averages the rows by
// weight as in L1.
type L2 struct{ Config PixelConfig }

// Weight implements core.Loss.
func (l L2) Weight() float64 { return l.Config.Weight }

// Compute implements core.Loss.
func (l L2) Compute(_ *model.Scope, in map[string]*Node) (*Node, error) {
	x, y, err := pair("l2", in, "input", "reconstruction")
	if err != nil {
		return nil, err
	}
	return weightedMean(Square(Sub(x, y)), in["weights"])
}

// weightedMean is the mean of d over every element, or, with weights [R],
// the weighted mean over the first axis of the per-row means.
func weightedMean(d, weights *Node) (*Node, error) {
	if weights == nil {
		return ReduceAllMean(d), nil
	}
	if weights.Rank() != 1 || weights.Shape().Dim(0) != d.Shape().Dim(0) {
		return nil, fmt.Errorf("weights %s do not match the rows of %s", weights.Shape(), d.Shape())
	}
	perRow := d
	if d.Rank() > 1 {
		axes := make([]int, d.Rank()-1)
		for i := range axes {
			axes[i] = i + 1
		}
		perRow = ReduceMean(d, axes...)
	}
	w := ConvertDType(weights, perRow.DType())
	return Div(ReduceAllSum(Mul(perRow, w)), Max(ReduceAllSum(w), ScalarOne(w.Graph(), w.DType()))), nil
}

// pair fetches two same-shaped inputs.
func pair(loss string, in map[string]*Node, a, b string) (*Node, *Node, error) {
	x, y := in[a], in[b]
	if x == nil || y == nil {
		return nil, nil, fmt.Errorf("%s: needs inputs %q and %q", loss, a, b)
	}
	if !x.Shape().Equal(y.Shape()) {
		return nil, nil, fmt.Errorf("%s: %q is %s but %q is %s", loss, a, x.Shape(), b, y.Shape())
	}
	return x, y, nil
}

// LogitLaplaceConfig configures the logit-Laplace reconstruction loss.
type LogitLaplaceConfig struct {
	Weight     float64 `mapstructure:"weight" doc:"weight of the term in a composite loss"`
	Eps        float64 `mapstructure:"eps" doc:"pixels in [0,1] are mapped to [eps, 1-eps] (DALL-E: 0.1)"`
	InputRange string  `mapstructure:"input_range" doc:"range of the \"input\" images: half ([-1,1], the tokenizers' convention) or unit ([0,1])"`
}

// Validate checks the ranges.
func (c *LogitLaplaceConfig) Validate() error {
	if c.Eps <= 0 || c.Eps >= 0.5 {
		return fmt.Errorf("eps must be in (0, 0.5), got %v", c.Eps)
	}
	if c.InputRange != "half" && c.InputRange != "unit" {
		return fmt.Errorf("input_range must be half or unit, got %q", c.InputRange)
	}
	return nil
}

// LogitLaplace is DALL-E's logit-Laplace negative log-likelihood of the
// pixels, averaged over every pixel channel. Inputs: "input" (images in the
// configured range), "mu" and "log_b" (same shape: the decoder's location and
// log-scale per pixel channel, in logit space). With x in [0,1] mapped to
// x' = (1-2eps)x + eps, the density of x' is
//
//	f(x' | mu, b) = exp(-|logit(x') - mu| / b) / (2 b x' (1-x'))
//
// so the loss is mean(log 2 + log_b + log x' + log(1-x') + |logit(x') - mu| / b).
type LogitLaplace struct{ Config LogitLaplaceConfig }

// Weight implements core.Loss.
func (l LogitLaplace) Weight() float64 { return l.Config.Weight }

// Compute implements core.Loss.
func (l LogitLaplace) Compute(_ *model.Scope, in map[string]*Node) (*Node, error) {
	mu, logB, err := pair("logit_laplace", in, "mu", "log_b")
	if err != nil {
		return nil, err
	}
	x := in["input"]
	if x == nil {
		return nil, fmt.Errorf("logit_laplace: needs input \"input\"")
	}
	if !x.Shape().Equal(mu.Shape()) {
		return nil, fmt.Errorf("logit_laplace: \"input\" is %s but \"mu\" is %s", x.Shape(), mu.Shape())
	}
	x = StopGradient(x)
	if l.Config.InputRange == "half" {
		x = MulScalar(AddScalar(x, 1), 0.5)
	}
	eps := l.Config.Eps
	x = AddScalar(MulScalar(ClipScalar(x, 0, 1), 1-2*eps), eps)
	logX, log1mX := Log(x), Log(OneMinus(x))
	logit := Sub(logX, log1mX)
	nll := Add(AddScalar(logB, math.Ln2), Add(logX, log1mX))
	nll = Add(nll, Mul(Abs(Sub(logit, mu)), Exp(Neg(logB))))
	return ReduceAllMean(nll), nil
}

func init() {
	registry.Register(core.Losses, "l1", "mean absolute difference (inputs: input, reconstruction; optional row weights)",
		func() PixelConfig { return PixelConfig{Weight: 1} },
		func(c PixelConfig) (core.Loss, error) { return L1{c}, nil })
	registry.Register(core.Losses, "l2", "mean squared difference (inputs: input, reconstruction; optional row weights): tokenizers, MIM pixel targets",
		func() PixelConfig { return PixelConfig{Weight: 1} },
		func(c PixelConfig) (core.Loss, error) { return L2{c}, nil })
	registry.Register(core.Losses, "logit_laplace", "DALL-E's logit-Laplace pixel NLL (inputs: input, mu, log_b)",
		func() LogitLaplaceConfig { return LogitLaplaceConfig{Weight: 1, Eps: 0.1, InputRange: "half"} },
		func(c LogitLaplaceConfig) (core.Loss, error) { return LogitLaplace{c}, nil })
}
