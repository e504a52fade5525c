package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// RandAugmentConfig configures RandAugment (Cubuk et al., 2020) in the form
// of timm's "rand-m9-n2-mstd0.5" policy, on this documented set of
// operations (timm's rand transforms without Invert, plus Identity):
//
//	identity, auto_contrast, equalize, brightness, contrast, color,
//	sharpness, posterize, solarize, solarize_add, translate_x, translate_y,
//	shear_x, shear_y, rotate
//
// with timm's magnitude ranges (enhance factors 1 +- 0.9, translate up to
// 45% of the side, shear up to 0.3, rotate up to 30 degrees, posterize down
// to 4 bits, solarize threshold down to 0, solarize_add up to 110) and
// PIL's definitions of the enhance ops. Each image gets N operations drawn
// uniformly, each applied with probability 0.5 at magnitude M (of 10) plus
// Gaussian noise of std MStd, clipped to [0, 10]; signed ops flip their sign
// with probability 0.5. Geometric ops use nearest sampling and fill with
// grey (128), like timm.
type RandAugmentConfig struct {
	N    int     `mapstructure:"n" doc:"operations per image (0 = off; BEiT fine-tuning: 2)"`
	M    float64 `mapstructure:"m" doc:"magnitude, 0..10 (BEiT fine-tuning: 9)"`
	MStd float64 `mapstructure:"mstd" doc:"std of the Gaussian noise on the magnitude per operation (timm: 0.5)"`
}

// Validate checks the ranges.
func (c *RandAugmentConfig) Validate() error {
	if c.N < 0 || c.M < 0 || c.M > 10 || c.MStd < 0 {
		return fmt.Errorf("randaugment: n >= 0, m in [0, 10], mstd >= 0")
	}
	return nil
}

// randOps lists the operations; each maps a magnitude in [0, 1] (of the
// op's maximum) and a sign to a transform of im.
var randOps = []struct {
	name   string
	signed bool
	apply  func(im *Image, mag float64) *Image
}{
	{"identity", false, func(im *Image, _ float64) *Image { return im }},
	{"auto_contrast", false, func(im *Image, _ float64) *Image { return autoContrast(im) }},
	{"equalize", false, func(im *Image, _ float64) *Image { return equalize(im) }},
	{"brightness", true, func(im *Image, m float64) *Image { return enhance(im, 1+0.9*m, func(*Image) []float32 { return nil }) }},
	{"contrast", true, func(im *Image, m float64) *Image { return enhance(im, 1+0.9*m, meanGrayImage) }},
	{"color", true, func(im *Image, m float64) *Image { return enhance(im, 1+0.9*m, grayImage) }},
	{"sharpness", true, func(im *Image, m float64) *Image { return enhance(im, 1+0.9*m, smoothImage) }},
	{"posterize", false, func(im *Image, m float64) *Image { return posterize(im, 8-int(math.Round(4*math.Abs(m)))) }},
	{"solarize", false, func(im *Image, m float64) *Image { return solarize(im, 256-256*math.Abs(m), 0) }},
	{"solarize_add", false, func(im *Image, m float64) *Image { return solarize(im, 128, 110*math.Abs(m)) }},
	{"translate_x", true, func(im *Image, m float64) *Image { return affine(im, 1, 0, 0.45*m*float64(im.W), 0, 1, 0) }},
	{"translate_y", true, func(im *Image, m float64) *Image { return affine(im, 1, 0, 0, 0, 1, 0.45*m*float64(im.H)) }},
	{"shear_x", true, func(im *Image, m float64) *Image { return affine(im, 1, 0.3*m, 0, 0, 1, 0) }},
	{"shear_y", true, func(im *Image, m float64) *Image { return affine(im, 1, 0, 0, 0.3*m, 1, 0) }},
	{"rotate", true, func(im *Image, m float64) *Image { return rotate(im, 30*m) }},
}

// RandAugmentOps names the operations, in draw order.
func RandAugmentOps() []string {
	var out []string
	for _, o := range randOps {
		out = append(out, o.name)
	}
	return out
}

// Apply runs the policy on im (not modified) with r.
func (c RandAugmentConfig) Apply(im *Image, r *rand.Rand) *Image {
	out := im
	for range c.N {
		op := randOps[r.IntN(len(randOps))]
		if r.Float64() >= 0.5 {
			continue
		}
		m := c.M
		if c.MStd > 0 {
			m += c.MStd * r.NormFloat64()
		}
		m = min(max(m, 0), 10) / 10
		if op.signed && r.Float64() < 0.5 {
			m = -m
		}
		out = op.apply(out, m)
	}
	return out
}

func clone(im *Image) *Image {
	return &Image{H: im.H, W: im.W, C: im.C, Pix: append([]uint8(nil), im.Pix...)}
}

// autoContrast stretches each channel to [0, 255] (PIL's ImageOps.autocontrast).
func autoContrast(im *Image) *Image {
	out := clone(im)
	for c := 0; c < im.C; c++ {
		lo, hi := uint8(255), uint8(0)
		for i := c; i < len(im.Pix); i += im.C {
			lo, hi = min(lo, im.Pix[i]), max(hi, im.Pix[i])
		}
		if hi <= lo {
			continue
		}
		scale := 255 / float64(hi-lo)
		for i := c; i < len(im.Pix); i += im.C {
			out.Pix[i] = uint8(math.Round(float64(im.Pix[i]-lo) * scale))
		}
	}
	return out
}

// equalize equalises each channel's histogram (PIL's ImageOps.equalize).
func equalize(im *Image) *Image {
	out := clone(im)
	n := im.H * im.W
	for c := 0; c < im.C; c++ {
		var hist [256]int
		for i := c; i < len(im.Pix); i += im.C {
			hist[im.Pix[i]]++
		}
		last := 255
		for last > 0 && hist[last] == 0 {
			last--
		}
		step := (n - hist[last]) / 255
		if step == 0 {
			continue
		}
		var lut [256]uint8
		acc := step / 2
		for v := 0; v < 256; v++ {
			lut[v] = uint8(min(acc/step, 255))
			acc += hist[v]
		}
		for i := c; i < len(im.Pix); i += im.C {
			out.Pix[i] = lut[im.Pix[i]]
		}
	}
	return out
}

// enhance blends im with a degenerate image (PIL's ImageEnhance): factor 1
// is the identity, 0 the degenerate image; degenerate nil means black.
func enhance(im *Image, factor float64, degenerate func(*Image) []float32) *Image {
	out := clone(im)
	d := degenerate(im)
	f := float32(factor)
	for i, v := range im.Pix {
		var base float32
		if d != nil {
			base = d[i]
		}
		out.Pix[i] = clip8(base + f*(float32(v)-base))
	}
	return out
}

func grayImage(im *Image) []float32 {
	d := make([]float32, len(im.Pix))
	for i := 0; i+im.C-1 < len(im.Pix); i += im.C {
		g := float32(im.Pix[i])
		if im.C >= 3 {
			g = gray(float32(im.Pix[i]), float32(im.Pix[i+1]), float32(im.Pix[i+2]))
		}
		for c := 0; c < im.C; c++ {
			d[i+c] = g
		}
	}
	return d
}

func meanGrayImage(im *Image) []float32 {
	g := grayImage(im)
	var s float64
	for _, v := range g {
		s += float64(v)
	}
	m := float32(math.Round(s / float64(len(g))))
	for i := range g {
		g[i] = m
	}
	return g
}

// smoothImage is PIL's SMOOTH filter (3x3, centre 5, others 1, /13), border kept.
func smoothImage(im *Image) []float32 {
	d := make([]float32, len(im.Pix))
	for i, v := range im.Pix {
		d[i] = float32(v)
	}
	for y := 1; y < im.H-1; y++ {
		for x := 1; x < im.W-1; x++ {
			for c := 0; c < im.C; c++ {
				var s float32
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						w := float32(1)
						if dx == 0 && dy == 0 {
							w = 5
						}
						s += w * float32(im.At(y+dy, x+dx, c))
					}
				}
				d[(y*im.W+x)*im.C+c] = s / 13
			}
		}
	}
	return d
}

func posterize(im *Image, bits int) *Image {
	bits = min(max(bits, 1), 8)
	out := clone(im)
	mask := uint8(0xff << (8 - bits))
	for i, v := range im.Pix {
		out.Pix[i] = v & mask
	}
	return out
}

// solarize inverts values >= threshold; with add > 0 it instead adds add to
// values below the threshold (timm's solarize_add).
func solarize(im *Image, threshold, add float64) *Image {
	out := clone(im)
	for i, v := range im.Pix {
		switch {
		case add > 0 && float64(v) < threshold:
			out.Pix[i] = uint8(min(float64(v)+add, 255))
		case add == 0 && float64(v) >= threshold:
			out.Pix[i] = 255 - v
		}
	}
	return out
}

// affine maps each output pixel (x, y) to the input (a*x + b*y + c, d*x + e*y
// + f) (PIL's Image.transform with AFFINE, nearest), filling with 128.
func affine(im *Image, a, b, c, d, e, f float64) *Image {
	out := &Image{H: im.H, W: im.W, C: im.C, Pix: make([]uint8, len(im.Pix))}
	for y := 0; y < im.H; y++ {
		for x := 0; x < im.W; x++ {
			sx := int(math.Floor(a*(float64(x)+0.5) + b*(float64(y)+0.5) + c))
			sy := int(math.Floor(d*(float64(x)+0.5) + e*(float64(y)+0.5) + f))
			for ch := 0; ch < im.C; ch++ {
				v := uint8(128)
				if sx >= 0 && sx < im.W && sy >= 0 && sy < im.H {
					v = im.At(sy, sx, ch)
				}
				out.Set(y, x, ch, v)
			}
		}
	}
	return out
}

// rotate turns the image by deg degrees about its centre.
func rotate(im *Image, deg float64) *Image {
	t := deg * math.Pi / 180
	cos, sin := math.Cos(t), math.Sin(t)
	cx, cy := float64(im.W)/2, float64(im.H)/2
	return affine(im, cos, sin, cx-cos*cx-sin*cy, -sin, cos, cy+sin*cx-cos*cy)
}
