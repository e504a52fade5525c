package losses

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// VQConfig configures the vector-quantisation loss.
type VQConfig struct {
	Weight float64 `mapstructure:"weight" doc:"weight of the term in a composite loss"`
	Beta   float64 `mapstructure:"beta" doc:"weight of the commitment term ||z - sg[z_q]||^2 (VQ-VAE: 0.25)"`
}

// Validate checks the ranges.
func (c *VQConfig) Validate() error {
	if c.Beta < 0 {
		return fmt.Errorf("beta must be >= 0, got %v", c.Beta)
	}
	return nil
}

// VQ is the VQ-VAE codebook + commitment loss
//
//	mean((sg[z] - z_q)^2) + beta * mean((z - sg[z_q])^2)
//
// with beta on the commitment term, as in the VQ-VAE paper (VQGAN's
// "legacy" code puts it on the codebook term instead). Inputs: "z" (encoder
// outputs) and "z_q" (their codewords, without the straight-through trick),
// same shape. When the optional input "codebook_ema" is present (a
// tokenizer updating its codebook by exponential moving averages supplies
// it), the codebook term is dropped and only beta * commitment remains.
type VQ struct{ Config VQConfig }

// Weight implements core.Loss.
func (l VQ) Weight() float64 { return l.Config.Weight }

// Compute implements core.Loss.
func (l VQ) Compute(_ *model.Scope, in map[string]*Node) (*Node, error) {
	z, zq, err := pair("vq", in, "z", "z_q")
	if err != nil {
		return nil, err
	}
	commit := MulScalar(ReduceAllMean(Square(Sub(z, StopGradient(zq)))), l.Config.Beta)
	if in["codebook_ema"] != nil {
		return commit, nil
	}
	codebook := ReduceAllMean(Square(Sub(StopGradient(z), zq)))
	return Add(codebook, commit), nil
}

func init() {
	registry.Register(core.Losses, "vq", "VQ-VAE codebook + beta * commitment (inputs: z, z_q; codebook term dropped with codebook_ema)",
		func() VQConfig { return VQConfig{Weight: 1, Beta: 0.25} },
		func(c VQConfig) (core.Loss, error) { return VQ{c}, nil })
}
