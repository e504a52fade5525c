package classify

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// MixConfig configures Mixup/CutMix as in timm's Mixup (batch mode): each
// batch is mixed with its reverse, with CutMix chosen with probability
// switch_prob when both are on, and soft targets
// lam*smooth(y) + (1-lam)*smooth(y_reversed).
type MixConfig struct {
	Mixup      float64 `mapstructure:"mixup" doc:"mixup alpha (Beta(alpha, alpha)); 0 = off (BEiT fine-tuning: 0.8)"`
	CutMix     float64 `mapstructure:"cutmix" doc:"cutmix alpha; 0 = off (BEiT fine-tuning: 1.0)"`
	Prob       float64 `mapstructure:"prob" doc:"probability of mixing a batch"`
	SwitchProb float64 `mapstructure:"switch_prob" doc:"probability of cutmix instead of mixup when both are on"`
}

// Validate checks the ranges.
func (c *MixConfig) Validate() error {
	if c.Mixup < 0 || c.CutMix < 0 || c.Prob < 0 || c.Prob > 1 || c.SwitchProb < 0 || c.SwitchProb > 1 {
		return fmt.Errorf("mix: alphas must be >= 0, prob and switch_prob in [0, 1]")
	}
	return nil
}

// Enabled reports whether any mixing is configured.
func (c MixConfig) Enabled() bool { return c.Prob > 0 && (c.Mixup > 0 || c.CutMix > 0) }

// MixBatch mixes a batch in place: pix holds b images of h*w*c floats (HWC),
// and it returns the soft targets [b*k] for labels with label smoothing eps.
// Without mixing (not drawn), the targets are the smoothed one-hot labels.
func (c MixConfig) MixBatch(r *rand.Rand, pix []float32, labels []int32, h, w, ch, k int, eps float64) []float32 {
	b := len(labels)
	lam := 1.0
	if c.Enabled() && r.Float64() < c.Prob {
		useCut := c.CutMix > 0 && (c.Mixup == 0 || r.Float64() < c.SwitchProb)
		per := h * w * ch
		orig := append([]float32(nil), pix...)
		if useCut {
			lam = sampleBeta(r, c.CutMix, c.CutMix)
			y0, x0, y1, x1 := cutBox(r, h, w, lam)
			for i := 0; i < b; i++ {
				src := orig[(b-1-i)*per : (b-i)*per]
				dst := pix[i*per : (i+1)*per]
				for y := y0; y < y1; y++ {
					copy(dst[(y*w+x0)*ch:(y*w+x1)*ch], src[(y*w+x0)*ch:(y*w+x1)*ch])
				}
			}
			// The label weight is the area actually kept (timm's correct_lam).
			lam = 1 - float64((y1-y0)*(x1-x0))/float64(h*w)
		} else {
			lam = sampleBeta(r, c.Mixup, c.Mixup)
			l := float32(lam)
			for i := 0; i < b; i++ {
				src := orig[(b-1-i)*per : (b-i)*per]
				dst := pix[i*per : (i+1)*per]
				for j := range dst {
					dst[j] = l*dst[j] + (1-l)*src[j]
				}
			}
		}
	}
	targets := make([]float32, b*k)
	off, on := eps/float64(k), 1-eps+eps/float64(k)
	for i := 0; i < b; i++ {
		row := targets[i*k : (i+1)*k]
		for j := range row {
			row[j] = float32(off)
		}
		row[labels[i]] += float32(lam * (on - off))
		row[labels[b-1-i]] += float32((1 - lam) * (on - off))
	}
	return targets
}

// cutBox draws the CutMix box for a kept-area ratio lam (timm's rand_bbox):
// a box of side sqrt(1-lam) of the image, centred uniformly, clipped.
func cutBox(r *rand.Rand, h, w int, lam float64) (y0, x0, y1, x1 int) {
	cut := math.Sqrt(1 - lam)
	ch, cw := int(float64(h)*cut), int(float64(w)*cut)
	cy, cx := r.IntN(h), r.IntN(w)
	y0, y1 = max(cy-ch/2, 0), min(cy+ch/2, h)
	x0, x1 = max(cx-cw/2, 0), min(cx+cw/2, w)
	return
}

// sampleBeta draws from Beta(a, b) through two Gamma draws.
func sampleBeta(r *rand.Rand, a, b float64) float64 {
	x := sampleGamma(r, a)
	y := sampleGamma(r, b)
	if x+y == 0 {
		return 0.5
	}
	return x / (x + y)
}

// sampleGamma draws from Gamma(shape, 1) (Marsaglia and Tsang; shape < 1
// boosted by U^(1/shape)).
func sampleGamma(r *rand.Rand, shape float64) float64 {
	if shape < 1 {
		return sampleGamma(r, shape+1) * math.Pow(r.Float64(), 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

// ErasingConfig configures random erasing (timm's RandomErasing, mode
// "pixel": the erased box is filled with per-pixel normal noise, on the
// normalised image).
type ErasingConfig struct {
	Prob     float64    `mapstructure:"prob" doc:"probability of erasing a box in an image (BEiT fine-tuning: 0.25)"`
	Area     [2]float64 `mapstructure:"area" doc:"erased area range as a fraction of the image"`
	MinRatio float64    `mapstructure:"min_ratio" doc:"smallest box aspect ratio; the largest is its inverse"`
}

// Validate checks the ranges.
func (c *ErasingConfig) Validate() error {
	if c.Prob < 0 || c.Prob > 1 || c.Area[0] <= 0 || c.Area[0] > c.Area[1] || c.Area[1] > 1 || c.MinRatio <= 0 || c.MinRatio > 1 {
		return fmt.Errorf("erasing: prob in [0,1], 0 < area[0] <= area[1] <= 1, min_ratio in (0, 1]")
	}
	return nil
}

// Apply erases one box of a normalised HWC image in place (with probability Prob).
func (c ErasingConfig) Apply(r *rand.Rand, pix []float32, h, w, ch int) {
	if c.Prob <= 0 || r.Float64() >= c.Prob {
		return
	}
	for attempt := 0; attempt < 10; attempt++ {
		area := float64(h*w) * (c.Area[0] + (c.Area[1]-c.Area[0])*r.Float64())
		logR := math.Log(c.MinRatio) + (math.Log(1/c.MinRatio)-math.Log(c.MinRatio))*r.Float64()
		ratio := math.Exp(logR)
		eh := int(math.Round(math.Sqrt(area * ratio)))
		ew := int(math.Round(math.Sqrt(area / ratio)))
		if eh < h && ew < w && eh > 0 && ew > 0 {
			top, left := r.IntN(h-eh+1), r.IntN(w-ew+1)
			for y := top; y < top+eh; y++ {
				row := pix[(y*w+left)*ch : (y*w+left+ew)*ch]
				for i := range row {
					row[i] = float32(r.NormFloat64())
				}
			}
			return
		}
	}
}
