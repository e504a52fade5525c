package data

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Masker draws which patches of an h x w patch grid are masked for masked
// image modelling.
type Masker interface {
	// Mask returns H*W flags, row-major, true for masked patches.
	Mask(r *rand.Rand) []bool
	// Grid returns the patch grid size.
	Grid() (h, w int)
}

// BlockwiseMasker is BEiT's MaskingGenerator (masking_generator.py):
// rectangular blocks of random area and aspect ratio are added until
// NumMasked patches are masked or no block can be placed.
//
// Each block tries up to ten times: target area uniform in [MinPatches,
// remaining] (remaining = min(NumMasked - masked, MaxPatches)), aspect ratio
// exp(uniform(log MinAspect, log 1/MinAspect)), h = round(sqrt(area*aspect)),
// w = round(sqrt(area/aspect)); if h < H and w < W the block's top-left corner
// is uniform and the block is accepted when it masks between 1 and remaining
// new patches.
//
// BEiT's generator may stop short of NumMasked. With Exact set (the default)
// the mask is topped up with uniformly random unmasked patches (or trimmed of
// random masked ones) so that exactly NumMasked patches are masked — what a
// model with a fixed-shape "head on masked positions" needs.
type BlockwiseMasker struct {
	H, W       int
	NumMasked  int
	MinPatches int
	// MaxPatches bounds one block's area; 0 means NumMasked.
	MaxPatches int
	MinAspect  float64
	Exact      bool
}

// Grid returns the patch grid size.
func (m *BlockwiseMasker) Grid() (int, int) { return m.H, m.W }

// Mask draws a mask.
func (m *BlockwiseMasker) Mask(r *rand.Rand) []bool {
	mask, _ := m.maskBlocks(r)
	return mask
}

// block is one accepted rectangle, kept for tests.
type block struct{ top, left, h, w int }

func (m *BlockwiseMasker) maskBlocks(r *rand.Rand) ([]bool, []block) {
	mask := make([]bool, m.H*m.W)
	maxBlock := m.MaxPatches
	if maxBlock <= 0 {
		maxBlock = m.NumMasked
	}
	minAspect := m.MinAspect
	if minAspect <= 0 {
		minAspect = 0.3
	}
	logLo, logHi := math.Log(minAspect), math.Log(1/minAspect)
	var blocks []block
	count := 0
	for count < m.NumMasked {
		remaining := min(m.NumMasked-count, maxBlock)
		delta := 0
		for range 10 {
			target := uniform(r, float64(m.MinPatches), float64(remaining))
			aspect := math.Exp(uniform(r, logLo, logHi))
			h := int(math.RoundToEven(math.Sqrt(target * aspect)))
			w := int(math.RoundToEven(math.Sqrt(target / aspect)))
			if w < m.W && h < m.H {
				top := r.IntN(m.H - h + 1)
				left := r.IntN(m.W - w + 1)
				already := 0
				for i := top; i < top+h; i++ {
					for j := left; j < left+w; j++ {
						if mask[i*m.W+j] {
							already++
						}
					}
				}
				if n := h*w - already; 0 < n && n <= remaining {
					for i := top; i < top+h; i++ {
						for j := left; j < left+w; j++ {
							if !mask[i*m.W+j] {
								mask[i*m.W+j] = true
								delta++
							}
						}
					}
					blocks = append(blocks, block{top, left, h, w})
				}
			}
			if delta > 0 {
				break
			}
		}
		if delta == 0 {
			break
		}
		count += delta
	}
	if m.Exact {
		adjustCount(mask, count, m.NumMasked, r)
	}
	return mask, blocks
}

// adjustCount flips uniformly chosen cells until exactly want are set.
func adjustCount(mask []bool, have, want int, r *rand.Rand) {
	if have == want {
		return
	}
	// Flip cells of the minority kind: unmasked ones to top up, masked ones
	// to trim. Partial Fisher-Yates over the candidates.
	var cand []int
	for i, v := range mask {
		if v == (have > want) {
			cand = append(cand, i)
		}
	}
	need := have - want
	if need < 0 {
		need = -need
	}
	need = min(need, len(cand))
	for k := range need {
		j := k + r.IntN(len(cand)-k)
		cand[k], cand[j] = cand[j], cand[k]
		mask[cand[k]] = !mask[cand[k]]
	}
}

// RandomMasker masks exactly NumMasked patches chosen uniformly at random
// (SimMIM/MAE-style random masking at patch granularity).
type RandomMasker struct {
	H, W, NumMasked int
}

// Grid returns the patch grid size.
func (m *RandomMasker) Grid() (int, int) { return m.H, m.W }

// Mask draws a mask.
func (m *RandomMasker) Mask(r *rand.Rand) []bool {
	mask := make([]bool, m.H*m.W)
	adjustCount(mask, 0, min(m.NumMasked, len(mask)), r)
	return mask
}

// MaskConfig configures a Masker; the patch grid comes from the model (image
// size / patch size) and is passed to New.
type MaskConfig struct {
	Kind       string  `mapstructure:"kind" doc:"masking strategy: block (BEiT blockwise) or random"`
	NumMasked  int     `mapstructure:"num_masked" doc:"number of masked patches; 0 means round(ratio * patches)"`
	Ratio      float64 `mapstructure:"ratio" doc:"fraction of patches masked when num_masked is 0"`
	MinPatches int     `mapstructure:"min_patches" doc:"smallest block area in patches (block)"`
	MaxPatches int     `mapstructure:"max_patches" doc:"largest block area in patches, 0 = num_masked (block)"`
	MinAspect  float64 `mapstructure:"min_aspect" doc:"smallest block aspect ratio; the largest is its inverse (block)"`
	Exact      bool    `mapstructure:"exact" doc:"top up BEiT's blocks with random patches to mask exactly num_masked (block)"`
}

// DefaultMaskConfig returns BEiT's pre-training masking: blockwise, 40% of the
// patches (78 of a 14x14 grid; BEiT's num_mask_patches is 75, set num_masked
// to match it exactly), blocks of at least 16 patches, aspect ratio in
// [0.3, 1/0.3], exact count.
func DefaultMaskConfig() MaskConfig {
	return MaskConfig{Kind: "block", Ratio: 0.4, MinPatches: 16, MinAspect: 0.3, Exact: true}
}

// Count returns the number of masked patches on an h x w grid.
func (c MaskConfig) Count(h, w int) int {
	if c.NumMasked > 0 {
		return c.NumMasked
	}
	return int(math.Round(c.Ratio * float64(h*w)))
}

// New returns the Masker for an h x w patch grid.
func (c MaskConfig) New(h, w int) (Masker, error) {
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("data: mask: grid %dx%d must be positive", h, w)
	}
	if c.NumMasked < 0 || c.Ratio < 0 || c.Ratio > 1 {
		return nil, fmt.Errorf("data: mask: num_masked %d / ratio %v out of range", c.NumMasked, c.Ratio)
	}
	n := c.Count(h, w)
	if n <= 0 || n > h*w {
		return nil, fmt.Errorf("data: mask: %d masked patches on a %dx%d grid", n, h, w)
	}
	switch strings.ToLower(c.Kind) {
	case "block", "blockwise", "":
		if c.MinPatches < 0 || c.MaxPatches < 0 {
			return nil, fmt.Errorf("data: mask: min_patches %d / max_patches %d must be >= 0", c.MinPatches, c.MaxPatches)
		}
		if !(c.MinAspect > 0 && c.MinAspect <= 1) {
			return nil, fmt.Errorf("data: mask: min_aspect %v outside (0, 1]", c.MinAspect)
		}
		return &BlockwiseMasker{H: h, W: w, NumMasked: n, MinPatches: c.MinPatches, MaxPatches: c.MaxPatches, MinAspect: c.MinAspect, Exact: c.Exact}, nil
	case "random":
		return &RandomMasker{H: h, W: w, NumMasked: n}, nil
	}
	return nil, fmt.Errorf("data: mask: unknown kind %q (want block or random)", c.Kind)
}
