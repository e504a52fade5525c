// Package optim holds the optimizer parts shared by the training tasks:
// AdamW with weight-decay exclusions, global-norm gradient clipping and
// per-variable learning-rate scales (for layer-wise decay), and the
// learning-rate schedules, each a registered component.
package optim

import (
	"fmt"
	"math"

	"github.com/peco-dev/peco/registry"
)

// Schedule gives the learning-rate multiplier (in [0, 1] for the built-ins)
// at a step of a run of total steps. The optimizer's lr is base_lr times it.
type Schedule interface {
	Factor(step, total int) float64
}

// Schedules is the registry of learning-rate schedules.
var Schedules = registry.NewRegistry[Schedule]("schedule", "learning-rate schedules, evaluated per step")

// CosineConfig configures the cosine schedule with linear warm-up.
type CosineConfig struct {
	WarmupSteps  int     `mapstructure:"warmup_steps" doc:"linear warm-up steps from 0 (overrides warmup_frac when > 0)"`
	WarmupFrac   float64 `mapstructure:"warmup_frac" doc:"warm-up as a fraction of the total steps"`
	MinFactor    float64 `mapstructure:"min_factor" doc:"final lr as a fraction of the base lr"`
	WarmupFactor float64 `mapstructure:"warmup_factor" doc:"lr factor at step 0 of the warm-up"`
}

// Validate checks the ranges.
func (c *CosineConfig) Validate() error {
	if c.WarmupSteps < 0 || c.WarmupFrac < 0 || c.WarmupFrac >= 1 {
		return fmt.Errorf("warmup_steps must be >= 0 and warmup_frac in [0, 1)")
	}
	if c.MinFactor < 0 || c.MinFactor > 1 {
		return fmt.Errorf("min_factor must be in [0, 1], got %v", c.MinFactor)
	}
	return nil
}

// Cosine is linear warm-up followed by half-cosine decay, per step, as in
// BEiT's cosine_scheduler.
type Cosine struct{ CosineConfig }

// Factor implements Schedule.
func (c Cosine) Factor(step, total int) float64 {
	warm := c.WarmupSteps
	if warm == 0 {
		warm = int(math.Round(c.WarmupFrac * float64(total)))
	}
	if step < warm {
		return c.WarmupFactor + (1-c.WarmupFactor)*float64(step)/float64(warm)
	}
	if total <= warm {
		return 1
	}
	p := float64(step-warm) / float64(total-warm)
	p = min(p, 1)
	return c.MinFactor + (1-c.MinFactor)*0.5*(1+math.Cos(math.Pi*p))
}

// ConstantConfig configures a constant schedule with optional warm-up.
type ConstantConfig struct {
	WarmupSteps int `mapstructure:"warmup_steps" doc:"linear warm-up steps from 0"`
}

// Constant keeps the base lr after a linear warm-up.
type Constant struct{ ConstantConfig }

// Factor implements Schedule.
func (c Constant) Factor(step, total int) float64 {
	if step < c.WarmupSteps {
		return float64(step) / float64(c.WarmupSteps)
	}
	return 1
}

func init() {
	registry.Register(Schedules, "cosine", "linear warm-up then half-cosine decay to min_factor (BEiT/timm)",
		func() CosineConfig { return CosineConfig{WarmupFrac: 0.05} },
		func(c CosineConfig) (Schedule, error) { return Cosine{c}, nil })
	registry.Register(Schedules, "constant", "constant lr after a linear warm-up",
		func() ConstantConfig { return ConstantConfig{} },
		func(c ConstantConfig) (Schedule, error) { return Constant{c}, nil })
}
