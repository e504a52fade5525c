package losses

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// KLUniformConfig configures the KL-to-uniform loss.
type KLUniformConfig struct {
	Weight float64 `mapstructure:"weight" doc:"weight of the term in a composite loss (the value reached once the tokenizer's ramp is complete)"`
}

// KLUniform is KL(q || uniform) of the categorical distributions
// q = softmax("logits") over the last axis (K codes), averaged over every
// other position (cells and batch): mean(sum_k q_k log q_k) + log K. An
// optional scalar input "kl_ramp" (a dVAE supplies it: 0 -> 1 over the
// first steps) multiplies the term, so the logged value is the ramped one.
type KLUniform struct{ Config KLUniformConfig }

// Weight implements core.Loss.
func (l KLUniform) Weight() float64 { return l.Config.Weight }

// Compute implements core.Loss.
func (l KLUniform) Compute(_ *model.Scope, in map[string]*Node) (*Node, error) {
	logits := in["logits"]
	if logits == nil {
		return nil, fmt.Errorf("kl_uniform: needs input \"logits\"")
	}
	k := logits.Shape().Dim(-1)
	logq := LogSoftmax(logits, -1)
	kl := AddScalar(ReduceAllMean(ReduceSum(Mul(Exp(logq), logq), -1)), math.Log(float64(k)))
	if r := in["kl_ramp"]; r != nil {
		kl = Mul(kl, ConvertDType(r, kl.DType()))
	}
	return kl, nil
}

func init() {
	registry.Register(core.Losses, "kl_uniform", "KL of softmax(logits) to a uniform prior, times the optional kl_ramp (inputs: logits)",
		func() KLUniformConfig { return KLUniformConfig{Weight: 1} },
		func(c KLUniformConfig) (core.Loss, error) { return KLUniform{c}, nil })
}
