package tokenizers

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"

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

// Pixels is the "pixels" masked-image-modeling target of BEiT's
// tokens-vs-pixels ablation: the target of a patch is its raw pixels (of the
// tokenizer view), optionally normalised per patch, regressed with an L2
// loss instead of classified. It is registered as a tokenizer so that the
// ablation is a swap of the `tokenizer:` component; it has no discrete
// vocabulary: VocabSize is 0, and tasks use PatchTargets (Encode and Decode
// panic). The MIM task recognises it by its PatchTargets method.
type Pixels struct {
	cfg PixelsConfig
}

var _ core.Tokenizer = (*Pixels)(nil)

// NewPixels returns the pixels target.
func NewPixels(cfg PixelsConfig) *Pixels { return &Pixels{cfg: cfg} }

// Config returns the configuration.
func (p *Pixels) Config() PixelsConfig { return p.cfg }

// VocabSize is 0: the targets are continuous.
func (p *Pixels) VocabSize() int { return 0 }

// Encode panics: pixel targets are not discrete tokens; use PatchTargets.
func (p *Pixels) Encode(_ *model.Scope, _ *Node) *Node {
	exceptions.Panicf("tokenizer pixels: continuous targets have no token ids; use PatchTargets (a task for discrete tokens needs another tokenizer)")
	return nil
}

// Decode panics: pixel targets are not discrete tokens.
func (p *Pixels) Decode(_ *model.Scope, _ *Node) *Node {
	exceptions.Panicf("tokenizer pixels: continuous targets have no token ids to decode")
	return nil
}

// PatchDim returns the width of one patch's target for a view of h x w
// pixels and c channels cut into a gridH x gridW patch grid, or an error when
// the view does not divide evenly.
func (p *Pixels) PatchDim(h, w, c, gridH, gridW int) (int, error) {
	if gridH <= 0 || gridW <= 0 || h%gridH != 0 || w%gridW != 0 {
		return 0, fmt.Errorf("tokenizer pixels: a %dx%d view does not split into a %dx%d patch grid", h, w, gridH, gridW)
	}
	return (h / gridH) * (w / gridW) * c, nil
}

// PatchTargets maps images [B, H, W, C] to the per-patch targets
// [B, gridH*gridW, ph*pw*C] (patches row-major, pixels within a patch in
// (py, px, c) order, as the ViT's patch embedding), normalised per patch
// when norm_pix is set ((x - mean) / sqrt(var + eps) with the unbiased
// variance, as MAE's torch .var), without gradient.
func (p *Pixels) PatchTargets(images *Node, gridH, gridW int) *Node {
	if images.Rank() != 4 {
		exceptions.Panicf("tokenizer pixels: images must be [batch, H, W, C], got %s", images.Shape())
	}
	b, h, w, c := images.Shape().Dim(0), images.Shape().Dim(1), images.Shape().Dim(2), images.Shape().Dim(3)
	if _, err := p.PatchDim(h, w, c, gridH, gridW); err != nil {
		exceptions.Panicf("%v", err)
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
	return x
}

func init() {
	registry.Register(core.Tokenizers, "pixels",
		"no tokenizer: the MIM target is each patch's pixels (norm_pix: per-patch normalised), L2 loss (BEiT's pixel ablation)",
		DefaultPixels, func(c PixelsConfig) (core.Tokenizer, error) { return NewPixels(c), nil })
}
