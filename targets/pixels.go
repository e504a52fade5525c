package targets

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// PixelsConfig configures the "pixels" target.
type PixelsConfig struct {
	NormPix bool    `mapstructure:"norm_pix" doc:"normalise each patch's pixels by their own mean and std (MAE's norm_pix_loss)"`
	Eps     float64 `mapstructure:"eps" doc:"variance epsilon of norm_pix"`
}

// Validate checks the ranges.
func (c *PixelsConfig) Validate() error {
	if !(c.Eps > 0) {
		return fmt.Errorf("eps must be > 0, got %v", c.Eps)
	}
	return nil
}

// DefaultPixels normalises per patch with eps 1e-6, as MAE.
func DefaultPixels() PixelsConfig { return PixelsConfig{NormPix: true, Eps: 1e-6} }

// Pixels is the continuous target of BEiT's tokens-vs-pixels ablation: the
// target of a patch is its pixels in the target view, optionally normalised
// per patch, regressed by the MIM loss (l2 by default) instead of
// classified.
type Pixels struct {
	cfg PixelsConfig
}

var _ core.Target = (*Pixels)(nil)

// NewPixels returns the pixels target.
func NewPixels(cfg PixelsConfig) *Pixels { return &Pixels{cfg: cfg} }

// Config returns the configuration.
func (p *Pixels) Config() PixelsConfig { return p.cfg }

// Discrete is false: the targets are vectors.
func (p *Pixels) Discrete() bool { return false }

// Dim is the number of values in one patch of an h x w x c view cut into a
// gridH x gridW grid; it fails when the view does not divide evenly.
func (p *Pixels) Dim(h, w, c, gridH, gridW int) (int, error) {
	if gridH <= 0 || gridW <= 0 || h%gridH != 0 || w%gridW != 0 {
		return 0, fmt.Errorf("target pixels: a %dx%d view does not split into a %dx%d patch grid", h, w, gridH, gridW)
	}
	return (h / gridH) * (w / gridW) * c, nil
}

// Compute maps images [B, H, W, C] to the per-patch targets
// [B, gridH*gridW, ph*pw*C] (patches row-major, pixels within a patch in
// (py, px, c) order, as the ViT's patch embedding), normalised per patch
// when norm_pix is set ((x - mean) / sqrt(var + eps) with the unbiased
// variance, as MAE's torch .var), without gradient.
func (p *Pixels) Compute(_ *model.Scope, images *Node, gridH, gridW int) (*Node, error) {
	if images.Rank() != 4 {
		return nil, fmt.Errorf("target pixels: images must be [batch, H, W, C], got %s", images.Shape())
	}
	b, h, w, c := images.Shape().Dim(0), images.Shape().Dim(1), images.Shape().Dim(2), images.Shape().Dim(3)
	if _, err := p.Dim(h, w, c, gridH, gridW); err != nil {
		return nil, err
	}
	ph, pw := h/gridH, w/gridW
	x := ConvertDType(StopGradient(images), dtypes.Float32)
	x = Reshape(x, b, gridH, ph, gridW, pw, c)
	x = TransposeAllAxes(x, 0, 1, 3, 2, 4, 5)
	x = Reshape(x, b, gridH*gridW, ph*pw*c)
	if p.cfg.NormPix {
		mean := ReduceAndKeep(x, ReduceMean, -1)
		xc := Sub(x, mean)
		n := ph * pw * c
		variance := DivScalar(ReduceAndKeep(Square(xc), ReduceSum, -1), float64(max(n-1, 1)))
		x = Div(xc, Sqrt(AddScalar(variance, p.cfg.Eps)))
	}
	return x, nil
}

func init() {
	registry.Register(core.Targets, "pixels",
		"each masked patch's pixels (norm_pix: per-patch normalised), regressed (BEiT's pixel ablation; default loss l2)",
		DefaultPixels, func(c PixelsConfig) (core.Target, error) { return NewPixels(c), nil })
}
