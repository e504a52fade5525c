package data

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// This file holds torchvision-compatible augmentations. Every transform is a
// plain configuration struct (mapstructure tags for the config loader, a doc
// tag per field) with a Default* constructor and a Validate method; random
// decisions come from the *rand.Rand the caller passes, normally SampleRNG's,
// so the result depends only on (seed, epoch, index). No transform modifies
// its input image: inputs may be shared (see CachedDataset).

// RandomResizedCrop crops a random region of random area and aspect ratio and
// resizes it to Size x Size, as torchvision.transforms.RandomResizedCrop.
type RandomResizedCrop struct {
	Size          int        `mapstructure:"size" doc:"side of the square output in pixels"`
	Scale         [2]float64 `mapstructure:"scale" doc:"range of the crop area as a fraction of the image area"`
	Ratio         [2]float64 `mapstructure:"ratio" doc:"range of the crop aspect ratio width/height, sampled log-uniformly"`
	Interpolation string     `mapstructure:"interpolation" doc:"resize filter: bilinear, bicubic, lanczos or nearest"`
}

// DefaultRandomResizedCrop returns torchvision's defaults at 224 pixels:
// scale (0.08, 1), ratio (3/4, 4/3), bilinear.
func DefaultRandomResizedCrop() RandomResizedCrop {
	return RandomResizedCrop{Size: 224, Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}, Interpolation: "bilinear"}
}

// Validate checks the configuration.
func (c RandomResizedCrop) Validate() error {
	if c.Size <= 0 {
		return fmt.Errorf("data: random_resized_crop: size %d must be positive", c.Size)
	}
	if err := validateCropRanges(c.Scale, c.Ratio); err != nil {
		return fmt.Errorf("data: random_resized_crop: %w", err)
	}
	if _, err := ParseFilter(c.Interpolation); err != nil {
		return fmt.Errorf("data: random_resized_crop: %w", err)
	}
	return nil
}

func validateCropRanges(scale, ratio [2]float64) error {
	if !(scale[0] > 0 && scale[0] <= scale[1]) {
		return fmt.Errorf("scale %v must satisfy 0 < min <= max", scale)
	}
	if !(ratio[0] > 0 && ratio[0] <= ratio[1]) {
		return fmt.Errorf("ratio %v must satisfy 0 < min <= max", ratio)
	}
	return nil
}

// Params draws a crop of an h x w image with torchvision's get_params: up to
// ten attempts with area uniform in Scale (times the image area) and aspect
// ratio log-uniform in Ratio, rounding half to even like Python; when no
// attempt fits, the central crop with the aspect ratio clamped to Ratio.
func (c RandomResizedCrop) Params(h, w int, r *rand.Rand) Rect {
	return randomCropParams(h, w, c.Scale, c.Ratio, r)
}

func randomCropParams(height, width int, scale, ratio [2]float64, r *rand.Rand) Rect {
	area := float64(height * width)
	logLo, logHi := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * uniform(r, scale[0], scale[1])
		aspect := math.Exp(uniform(r, logLo, logHi))
		w := int(math.RoundToEven(math.Sqrt(target * aspect)))
		h := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if 0 < w && w <= width && 0 < h && h <= height {
			i := r.IntN(height - h + 1)
			j := r.IntN(width - w + 1)
			return Rect{Top: i, Left: j, H: h, W: w}
		}
	}
	inRatio := float64(width) / float64(height)
	w, h := width, height
	switch {
	case inRatio < min(ratio[0], ratio[1]):
		h = int(math.RoundToEven(float64(w) / min(ratio[0], ratio[1])))
	case inRatio > max(ratio[0], ratio[1]):
		w = int(math.RoundToEven(float64(h) * max(ratio[0], ratio[1])))
	}
	return Rect{Top: (height - h) / 2, Left: (width - w) / 2, H: h, W: w}
}

// uniform is Python's random.uniform: a + (b-a)*U[0,1), valid for b < a too.
func uniform(r *rand.Rand, a, b float64) float64 { return a + (b-a)*r.Float64() }

// Apply crops and resizes im.
func (c RandomResizedCrop) Apply(im *Image, r *rand.Rand) (*Image, error) {
	f, err := ParseFilter(c.Interpolation)
	if err != nil {
		return nil, err
	}
	return ResizedCrop(im, c.Params(im.H, im.W, r), c.Size, c.Size, f)
}

// HorizontalFlip mirrors an image left to right with probability P.
type HorizontalFlip struct {
	P float64 `mapstructure:"p" doc:"probability of mirroring the image left to right"`
}

// DefaultHorizontalFlip returns P = 0.5.
func DefaultHorizontalFlip() HorizontalFlip { return HorizontalFlip{P: 0.5} }

// Validate checks the configuration.
func (f HorizontalFlip) Validate() error {
	if f.P < 0 || f.P > 1 {
		return fmt.Errorf("data: hflip: probability %v outside [0, 1]", f.P)
	}
	return nil
}

// Draw decides whether to flip. It always consumes one value of r, so the
// random sequence after it does not depend on P.
func (f HorizontalFlip) Draw(r *rand.Rand) bool { return r.Float64() < f.P }

// Apply flips im with probability P; it returns im itself when not flipping.
func (f HorizontalFlip) Apply(im *Image, r *rand.Rand) *Image {
	if f.Draw(r) {
		return FlipH(im)
	}
	return im
}

// ColorJitter randomly changes brightness, contrast, saturation and hue, in a
// random order, as torchvision.transforms.ColorJitter: the brightness,
// contrast and saturation factors are uniform in [max(0, 1-x), 1+x] and the
// hue shift uniform in [-Hue, Hue] (in turns of the colour wheel). Zero
// disables a component. Saturation and hue leave single-channel images alone.
//
// The operations follow torchvision's tensor implementation (blend with black,
// with the mean grey level, with the greyscale image; HSV rotation) on values
// in [0, 1], clamped after each step; the result is rounded to 8 bits once at
// the end.
type ColorJitter struct {
	Brightness float64 `mapstructure:"brightness" doc:"brightness jitter strength: factor uniform in [max(0,1-x), 1+x]"`
	Contrast   float64 `mapstructure:"contrast" doc:"contrast jitter strength: factor uniform in [max(0,1-x), 1+x]"`
	Saturation float64 `mapstructure:"saturation" doc:"saturation jitter strength: factor uniform in [max(0,1-x), 1+x]"`
	Hue        float64 `mapstructure:"hue" doc:"hue jitter: shift uniform in [-x, x] turns, x in [0, 0.5]"`
}

// DefaultColorJitter returns BEiT's pre-training jitter: 0.4 brightness,
// contrast and saturation, no hue.
func DefaultColorJitter() ColorJitter {
	return ColorJitter{Brightness: 0.4, Contrast: 0.4, Saturation: 0.4}
}

// Validate checks the configuration.
func (c ColorJitter) Validate() error {
	if c.Brightness < 0 || c.Contrast < 0 || c.Saturation < 0 {
		return fmt.Errorf("data: color_jitter: strengths must be non-negative, got %+v", c)
	}
	if c.Hue < 0 || c.Hue > 0.5 {
		return fmt.Errorf("data: color_jitter: hue %v outside [0, 0.5]", c.Hue)
	}
	return nil
}

// Enabled reports whether any component is non-zero.
func (c ColorJitter) Enabled() bool {
	return c.Brightness != 0 || c.Contrast != 0 || c.Saturation != 0 || c.Hue != 0
}

// JitterParams is one draw of ColorJitter: the order of the four operations
// (0 brightness, 1 contrast, 2 saturation, 3 hue) and their factors. Factors
// of 1 and a hue shift of 0 are identities.
type JitterParams struct {
	Order                            [4]int
	Brightness, Contrast, Saturation float64
	Hue                              float64
}

// Draw samples the parameters. It consumes the same number of values of r
// whatever the configuration.
func (c ColorJitter) Draw(r *rand.Rand) JitterParams {
	var p JitterParams
	copy(p.Order[:], r.Perm(4))
	p.Brightness = uniform(r, max(0, 1-c.Brightness), 1+c.Brightness)
	p.Contrast = uniform(r, max(0, 1-c.Contrast), 1+c.Contrast)
	p.Saturation = uniform(r, max(0, 1-c.Saturation), 1+c.Saturation)
	p.Hue = uniform(r, -c.Hue, c.Hue)
	return p
}

// Apply returns a jittered copy of im (im itself when the jitter is disabled).
func (c ColorJitter) Apply(im *Image, r *rand.Rand) *Image {
	p := c.Draw(r)
	if !c.Enabled() {
		return im
	}
	out := &Image{H: im.H, W: im.W, C: im.C, Pix: make([]uint8, len(im.Pix))}
	p.ApplyTo(out, im)
	return out
}

// ApplyTo writes the jittered src into dst, which must have src's shape; dst
// may be src.
func (p JitterParams) ApplyTo(dst, src *Image) {
	v := make([]float32, len(src.Pix))
	for i, b := range src.Pix {
		v[i] = float32(b) / 255
	}
	C := src.C
	for _, op := range p.Order {
		switch op {
		case 0:
			if p.Brightness != 1 {
				blendConst(v, float32(p.Brightness), 0)
			}
		case 1:
			if p.Contrast != 1 {
				blendConst(v, float32(p.Contrast), meanGray(v, C))
			}
		case 2:
			if p.Saturation != 1 && C == 3 {
				saturate(v, float32(p.Saturation))
			}
		case 3:
			if p.Hue != 0 && C == 3 {
				shiftHue(v, p.Hue)
			}
		}
	}
	for i, x := range v {
		dst.Pix[i] = clip8(x * 255)
	}
}

func clamp01(x float32) float32 { return min(max(x, 0), 1) }

// blendConst is torchvision's _blend(img, const, f) = f*img + (1-f)*const.
func blendConst(v []float32, f, c float32) {
	b := (1 - f) * c
	for i, x := range v {
		v[i] = clamp01(f*x + b)
	}
}

func gray(r, g, b float32) float32 { return 0.2989*r + 0.587*g + 0.114*b }

// meanGray is the mean of the greyscale image (of the single channel for
// non-RGB images).
func meanGray(v []float32, c int) float32 {
	var s float64
	if c != 3 {
		for _, x := range v {
			s += float64(x)
		}
		return float32(s / float64(max(len(v), 1)))
	}
	for i := 0; i+2 < len(v); i += 3 {
		s += float64(gray(v[i], v[i+1], v[i+2]))
	}
	return float32(s / float64(max(len(v)/3, 1)))
}

func saturate(v []float32, f float32) {
	for i := 0; i+2 < len(v); i += 3 {
		g := (1 - f) * gray(v[i], v[i+1], v[i+2])
		v[i] = clamp01(f*v[i] + g)
		v[i+1] = clamp01(f*v[i+1] + g)
		v[i+2] = clamp01(f*v[i+2] + g)
	}
}

// shiftHue is torchvision's adjust_hue on an RGB float image.
func shiftHue(v []float32, shift float64) {
	for i := 0; i+2 < len(v); i += 3 {
		h, s, val := rgbToHSV(v[i], v[i+1], v[i+2])
		h = math.Mod(h+shift, 1)
		if h < 0 {
			h++
		}
		v[i], v[i+1], v[i+2] = hsvToRGB(h, s, val)
	}
}

func rgbToHSV(r, g, b float32) (h float64, s, v float32) {
	maxc := max(r, g, b)
	minc := min(r, g, b)
	if maxc == minc {
		return 0, 0, maxc
	}
	cr := maxc - minc
	s = cr / maxc
	rc, gc, bc := (maxc-r)/cr, (maxc-g)/cr, (maxc-b)/cr
	var hh float32
	switch {
	case maxc == r:
		hh = bc - gc
	case maxc == g:
		hh = 2 + rc - bc
	default:
		hh = 4 + gc - rc
	}
	h = math.Mod(float64(hh)/6+1, 1)
	return h, s, maxc
}

func hsvToRGB(h float64, s, v float32) (float32, float32, float32) {
	i := math.Floor(h * 6)
	f := float32(h*6 - i)
	p := clamp01(v * (1 - s))
	q := clamp01(v * (1 - s*f))
	t := clamp01(v * (1 - s*(1-f)))
	switch int(i) % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	default:
		return v, p, q
	}
}

// CenterCrop is the evaluation transform in timm's crop_pct convention:
// resize the shorter side to floor(Size / CropPct) and take the central
// Size x Size crop.
type CenterCrop struct {
	Size          int     `mapstructure:"size" doc:"side of the square output in pixels"`
	CropPct       float64 `mapstructure:"crop_pct" doc:"fraction of the resized shorter side kept by the center crop"`
	Interpolation string  `mapstructure:"interpolation" doc:"resize filter: bilinear, bicubic, lanczos or nearest"`
}

// DefaultCenterCrop returns 224 pixels at crop_pct 0.875 (resize to 256),
// bilinear.
func DefaultCenterCrop() CenterCrop {
	return CenterCrop{Size: 224, CropPct: 0.875, Interpolation: "bilinear"}
}

// Validate checks the configuration.
func (c CenterCrop) Validate() error {
	if c.Size <= 0 {
		return fmt.Errorf("data: center_crop: size %d must be positive", c.Size)
	}
	if !(c.CropPct > 0 && c.CropPct <= 1) {
		return fmt.Errorf("data: center_crop: crop_pct %v outside (0, 1]", c.CropPct)
	}
	if _, err := ParseFilter(c.Interpolation); err != nil {
		return fmt.Errorf("data: center_crop: %w", err)
	}
	return nil
}

// ResizeSize is the shorter side before cropping, floor(Size / CropPct).
func (c CenterCrop) ResizeSize() int {
	return int(math.Floor(float64(c.Size)/c.CropPct + 1e-9))
}

// Apply resizes and crops im.
func (c CenterCrop) Apply(im *Image) (*Image, error) {
	f, err := ParseFilter(c.Interpolation)
	if err != nil {
		return nil, err
	}
	return ResizeShorterCenterCrop(im, c.ResizeSize(), c.Size, f), nil
}

// Normalizer converts 8-bit images to float32 HWC tensors:
// out = (v/255 - Mean[c]) / Std[c].
type Normalizer struct {
	Mean, Std [3]float32
}

// Normalization presets.
const (
	// NormalizeImageNet uses ImageNet's channel statistics.
	NormalizeImageNet = "imagenet"
	// NormalizeHalf maps [0, 255] to [-1, 1] (mean = std = 0.5).
	NormalizeHalf = "half"
	// NormalizeNone maps [0, 255] to [0, 1].
	NormalizeNone = "none"
)

// NewNormalizer returns the preset named "imagenet" (mean 0.485, 0.456, 0.406,
// std 0.229, 0.224, 0.225), "half" (0.5 / 0.5) or "none" (x/255).
func NewNormalizer(preset string) (Normalizer, error) {
	switch strings.ToLower(preset) {
	case NormalizeImageNet:
		return Normalizer{Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}}, nil
	case NormalizeHalf:
		return Normalizer{Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}}, nil
	case NormalizeNone, "":
		return Normalizer{Std: [3]float32{1, 1, 1}}, nil
	}
	return Normalizer{}, fmt.Errorf("data: unknown normalization %q (want imagenet, half or none)", preset)
}

// Apply writes im normalized into dst (H*W*C float32 values, HWC order, the
// layout the NHWC model consumes) and returns it; dst is allocated when too
// short. Single-channel images use the mean of the three channel statistics;
// channels beyond the third reuse the third's.
func (n Normalizer) Apply(im *Image, dst []float32) []float32 {
	if cap(dst) < len(im.Pix) {
		dst = make([]float32, len(im.Pix))
	}
	dst = dst[:len(im.Pix)]
	C := im.C
	scale := make([]float32, C)
	bias := make([]float32, C)
	for c := range C {
		m, s := n.Mean[min(c, 2)], n.Std[min(c, 2)]
		if C == 1 {
			m = (n.Mean[0] + n.Mean[1] + n.Mean[2]) / 3
			s = (n.Std[0] + n.Std[1] + n.Std[2]) / 3
		}
		scale[c] = 1 / (255 * s)
		bias[c] = -m / s
	}
	if C == 3 {
		s0, s1, s2, b0, b1, b2 := scale[0], scale[1], scale[2], bias[0], bias[1], bias[2]
		for i := 0; i+2 < len(im.Pix); i += 3 {
			dst[i] = float32(im.Pix[i])*s0 + b0
			dst[i+1] = float32(im.Pix[i+1])*s1 + b1
			dst[i+2] = float32(im.Pix[i+2])*s2 + b2
		}
		return dst
	}
	for i, v := range im.Pix {
		c := i % C
		dst[i] = float32(v)*scale[c] + bias[c]
	}
	return dst
}

// TwoViewCrop is BEiT's RandomResizedCropAndInterpolationWithTwoPic: one
// random crop box, resized twice — to Size for the ViT and to SecondSize for
// the image tokenizer — so both views show exactly the same region.
// BEiT resizes with bicubic and lanczos; bilinear (the default here) for both
// views is a close, cheaper match.
type TwoViewCrop struct {
	RandomResizedCrop   `mapstructure:",squash" doc:"the crop shared by both views (size is the first view's side)"`
	SecondSize          int    `mapstructure:"second_size" doc:"side of the second (tokenizer) view in pixels"`
	SecondInterpolation string `mapstructure:"second_interpolation" doc:"resize filter of the second view"`
}

// DefaultTwoViewCrop returns 224 and 112 pixel views of the default random
// resized crop, both bilinear.
func DefaultTwoViewCrop() TwoViewCrop {
	return TwoViewCrop{RandomResizedCrop: DefaultRandomResizedCrop(), SecondSize: 112, SecondInterpolation: "bilinear"}
}

// Validate checks the configuration.
func (c TwoViewCrop) Validate() error {
	if err := c.RandomResizedCrop.Validate(); err != nil {
		return err
	}
	if c.SecondSize <= 0 {
		return fmt.Errorf("data: two_view_crop: second_size %d must be positive", c.SecondSize)
	}
	if _, err := ParseFilter(c.SecondInterpolation); err != nil {
		return fmt.Errorf("data: two_view_crop: %w", err)
	}
	return nil
}

// Apply draws one crop box and returns both views of it.
func (c TwoViewCrop) Apply(im *Image, r *rand.Rand) (first, second *Image, err error) {
	f1, err := ParseFilter(c.Interpolation)
	if err != nil {
		return nil, nil, err
	}
	f2, err := ParseFilter(c.SecondInterpolation)
	if err != nil {
		return nil, nil, err
	}
	box := c.Params(im.H, im.W, r)
	if first, err = ResizedCrop(im, box, c.Size, c.Size, f1); err != nil {
		return nil, nil, err
	}
	if second, err = ResizedCrop(im, box, c.SecondSize, c.SecondSize, f2); err != nil {
		return nil, nil, err
	}
	return first, second, nil
}

// AugmentConfig bundles the classification / pre-training transforms:
// training is random-resized-crop, horizontal flip, colour jitter (with an
// optional second view of the same crop for the tokenizer); evaluation is
// resize-shorter-side plus center crop. Normalization is applied by the
// caller with the Normalizer the config names, so that uint8 views can be
// handed to a tokenizer un-normalized.
type AugmentConfig struct {
	Size                int         `mapstructure:"size" doc:"side of the model's input view in pixels"`
	Scale               [2]float64  `mapstructure:"scale" doc:"random-resized-crop area range as a fraction of the image"`
	Ratio               [2]float64  `mapstructure:"ratio" doc:"random-resized-crop aspect-ratio range width/height"`
	Interpolation       string      `mapstructure:"interpolation" doc:"resize filter of the main view: bilinear, bicubic, lanczos or nearest"`
	HFlip               float64     `mapstructure:"hflip" doc:"probability of a horizontal flip during training"`
	ColorJitter         ColorJitter `mapstructure:"color_jitter" doc:"colour jitter strengths during training"`
	Normalize           string      `mapstructure:"normalize" doc:"normalization preset: imagenet, half or none"`
	CropPct             float64     `mapstructure:"crop_pct" doc:"evaluation center-crop fraction: resize shorter side to size/crop_pct"`
	SecondSize          int         `mapstructure:"second_size" doc:"side of the second (tokenizer) view; 0 disables it"`
	SecondInterpolation string      `mapstructure:"second_interpolation" doc:"resize filter of the second view"`
	// RandAugment runs on the main view only, after crop, flip and jitter.
	RandAugment RandAugmentConfig `mapstructure:"randaugment" doc:"RandAugment on the main training view (n 0 = off; BEiT fine-tuning: n 2, m 9, mstd 0.5)"`
}

// DefaultAugmentConfig returns a single 224-pixel view with torchvision's
// random-resized-crop defaults, flip 0.5, no colour jitter, ImageNet
// normalization and crop_pct 0.875. BEiT pre-training sets SecondSize 112 and
// ColorJitter to DefaultColorJitter().
func DefaultAugmentConfig() AugmentConfig {
	rrc := DefaultRandomResizedCrop()
	return AugmentConfig{
		Size: rrc.Size, Scale: rrc.Scale, Ratio: rrc.Ratio, Interpolation: rrc.Interpolation,
		HFlip: 0.5, Normalize: NormalizeImageNet, CropPct: 0.875, SecondInterpolation: "bilinear",
	}
}

// Validate checks the configuration.
func (c AugmentConfig) Validate() error {
	_, err := c.Compile()
	return err
}

// Augmenter is a validated AugmentConfig ready to apply.
type Augmenter struct {
	cfg        AugmentConfig
	crop       RandomResizedCrop
	flip       HorizontalFlip
	f1, f2     Filter
	eval       CenterCrop
	normalizer Normalizer
}

// Compile validates the configuration and returns the transform.
func (c AugmentConfig) Compile() (*Augmenter, error) {
	a := &Augmenter{
		cfg:  c,
		crop: RandomResizedCrop{Size: c.Size, Scale: c.Scale, Ratio: c.Ratio, Interpolation: c.Interpolation},
		flip: HorizontalFlip{P: c.HFlip},
		eval: CenterCrop{Size: c.Size, CropPct: c.CropPct, Interpolation: c.Interpolation},
	}
	var errs []error
	errs = append(errs, a.crop.Validate(), a.flip.Validate(), c.ColorJitter.Validate(), a.eval.Validate(), c.RandAugment.Validate())
	if c.SecondSize < 0 {
		errs = append(errs, fmt.Errorf("data: augment: second_size %d must be >= 0", c.SecondSize))
	}
	var err error
	a.f1, _ = ParseFilter(c.Interpolation)
	if a.f2, err = ParseFilter(c.SecondInterpolation); err != nil {
		errs = append(errs, fmt.Errorf("data: augment: %w", err))
	}
	if a.normalizer, err = NewNormalizer(c.Normalize); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// Config returns the configuration the Augmenter was compiled from.
func (a *Augmenter) Config() AugmentConfig { return a.cfg }

// Normalizer returns the configured normalization.
func (a *Augmenter) Normalizer() Normalizer { return a.normalizer }

// Train applies the training augmentation: one random resized crop, a flip
// decision and a colour-jitter draw (in that order of random draws), shared by
// both views. second is nil when SecondSize is 0. The jitter is applied to
// each output view (cheaper than to the full image); its contrast step uses
// each view's own mean grey level.
func (a *Augmenter) Train(im *Image, r *rand.Rand) (view, second *Image, err error) {
	box := a.crop.Params(im.H, im.W, r)
	flip := a.flip.Draw(r)
	jit := a.cfg.ColorJitter.Draw(r)
	jitter := a.cfg.ColorJitter.Enabled()
	finish := func(size int, f Filter) (*Image, error) {
		out, err := ResizedCrop(im, box, size, size, f)
		if err != nil {
			return nil, err
		}
		if flip {
			flipInPlace(out)
		}
		if jitter {
			jit.ApplyTo(out, out)
		}
		return out, nil
	}
	if view, err = finish(a.cfg.Size, a.f1); err != nil {
		return nil, nil, fmt.Errorf("data: augment: %w", err)
	}
	if a.cfg.SecondSize > 0 {
		if second, err = finish(a.cfg.SecondSize, a.f2); err != nil {
			return nil, nil, fmt.Errorf("data: augment: %w", err)
		}
	}
	if a.cfg.RandAugment.N > 0 {
		view = a.cfg.RandAugment.Apply(view, r)
	}
	return view, second, nil
}

// Eval applies the evaluation transform (resize shorter side, center crop).
// The second view, when configured, is the same center crop resized to
// SecondSize.
func (a *Augmenter) Eval(im *Image) (view, second *Image, err error) {
	view = ResizeShorterCenterCrop(im, a.eval.ResizeSize(), a.cfg.Size, a.f1)
	if a.cfg.SecondSize > 0 {
		h, w := ShorterSideSize(im.H, im.W, a.eval.ResizeSize())
		// The crop in source coordinates, then one resize from the source.
		sy, sx := float64(im.H)/float64(h), float64(im.W)/float64(w)
		top := centerOffset(h, a.cfg.Size)
		left := centerOffset(w, a.cfg.Size)
		box := Rect{
			Top: int(math.Round(float64(top) * sy)), Left: int(math.Round(float64(left) * sx)),
			H: int(math.Round(float64(a.cfg.Size) * sy)), W: int(math.Round(float64(a.cfg.Size) * sx)),
		}
		box = clampRect(box, im.H, im.W)
		if second, err = ResizedCrop(im, box, a.cfg.SecondSize, a.cfg.SecondSize, a.f2); err != nil {
			return nil, nil, fmt.Errorf("data: augment eval: %w", err)
		}
	}
	return view, second, nil
}

func clampRect(r Rect, h, w int) Rect {
	r.H, r.W = min(max(r.H, 1), h), min(max(r.W, 1), w)
	r.Top, r.Left = min(max(r.Top, 0), h-r.H), min(max(r.Left, 0), w-r.W)
	return r
}

func flipInPlace(im *Image) {
	C := im.C
	for y := range im.H {
		row := im.Pix[y*im.W*C : (y+1)*im.W*C]
		for i, j := 0, im.W-1; i < j; i, j = i+1, j-1 {
			for c := range C {
				row[i*C+c], row[j*C+c] = row[j*C+c], row[i*C+c]
			}
		}
	}
}

// DenseAugment is the training transform of detection and segmentation
// samples: a random resized crop (torchvision's parameters) and a horizontal
// flip applied consistently to the image (with Interpolation), boxes (clipped
// to the crop), instance masks and the label map (nearest neighbour).
type DenseAugment struct {
	Size          int        `mapstructure:"size" doc:"side of the square output in pixels"`
	Scale         [2]float64 `mapstructure:"scale" doc:"crop area range as a fraction of the image area"`
	Ratio         [2]float64 `mapstructure:"ratio" doc:"crop aspect-ratio range width/height"`
	HFlip         float64    `mapstructure:"hflip" doc:"probability of a horizontal flip"`
	Interpolation string     `mapstructure:"interpolation" doc:"image resize filter: bilinear, bicubic, lanczos or nearest"`
	MinBoxSize    float64    `mapstructure:"min_box_size" doc:"drop boxes narrower or shorter than this many output pixels"`
}

// DefaultDenseAugment returns 512-pixel crops of 25-100% of the image area
// (tiny crops rarely leave whole objects), flip 0.5, bilinear, keeping every
// box of positive size.
func DefaultDenseAugment() DenseAugment {
	return DenseAugment{Size: 512, Scale: [2]float64{0.25, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}, HFlip: 0.5, Interpolation: "bilinear"}
}

// Validate checks the configuration.
func (d DenseAugment) Validate() error {
	if d.Size <= 0 {
		return fmt.Errorf("data: dense_augment: size %d must be positive", d.Size)
	}
	if err := validateCropRanges(d.Scale, d.Ratio); err != nil {
		return fmt.Errorf("data: dense_augment: %w", err)
	}
	if err := (HorizontalFlip{P: d.HFlip}).Validate(); err != nil {
		return err
	}
	if _, err := ParseFilter(d.Interpolation); err != nil {
		return fmt.Errorf("data: dense_augment: %w", err)
	}
	return nil
}

// Apply draws a crop and a flip and transforms s with TransformDense.
func (d DenseAugment) Apply(s Sample, r *rand.Rand) (Sample, error) {
	if s.Image == nil {
		return Sample{}, fmt.Errorf("data: dense_augment %s: no image", s.Path)
	}
	f, err := ParseFilter(d.Interpolation)
	if err != nil {
		return Sample{}, err
	}
	box := randomCropParams(s.Image.H, s.Image.W, d.Scale, d.Ratio, r)
	flip := r.Float64() < d.HFlip
	return TransformDense(s, DenseParams{Crop: box, Flip: flip, H: d.Size, W: d.Size, Filter: f, MinBoxSize: float32(d.MinBoxSize)})
}

// DenseParams is one geometric transform of a dense sample: crop Crop, resize
// to H x W, then optionally mirror.
type DenseParams struct {
	Crop   Rect
	Flip   bool
	H, W   int
	Filter Filter // image filter; masks and label maps always use nearest
	// MinBoxSize drops boxes whose output width or height is not larger;
	// boxes with no area are always dropped.
	MinBoxSize float32
}

// DenseResize resizes a dense sample to h x w (the evaluation path).
func DenseResize(s Sample, h, w int, f Filter) (Sample, error) {
	if s.Image == nil {
		return Sample{}, fmt.Errorf("data: dense resize %s: no image", s.Path)
	}
	return TransformDense(s, DenseParams{Crop: Full(s.Image.H, s.Image.W), H: h, W: w, Filter: f})
}

// TransformDense applies p to the image and, consistently, to the boxes,
// instance masks and label map of s, returning a new sample (s is not
// modified). Boxes are clipped to the crop, scaled and mirrored; an instance
// is dropped when its clipped box has no area (or is below MinBoxSize) or,
// when it has a mask, when no mask pixel survives. Area becomes the mask's
// pixel count, or the box area for instances without a mask.
func TransformDense(s Sample, p DenseParams) (Sample, error) {
	im := s.Image
	if im == nil {
		return Sample{}, fmt.Errorf("data: dense transform %s: no image", s.Path)
	}
	if p.H <= 0 || p.W <= 0 {
		return Sample{}, fmt.Errorf("data: dense transform %s: output %dx%d", s.Path, p.H, p.W)
	}
	out := s
	img, err := ResizedCrop(im, p.Crop, p.H, p.W, p.Filter)
	if err != nil {
		return Sample{}, fmt.Errorf("data: dense transform %s: %w", s.Path, err)
	}
	if p.Flip {
		flipInPlace(img)
	}
	out.Image = img
	mapOf := func(m []uint8, what string) ([]uint8, error) {
		if len(m) != im.H*im.W {
			return nil, fmt.Errorf("data: dense transform %s: %s has %d bytes, want %dx%d", s.Path, what, len(m), im.H, im.W)
		}
		o := ResizedCropMap(m, im.W, p.Crop, p.H, p.W)
		if p.Flip {
			flipInPlace(&Image{H: p.H, W: p.W, C: 1, Pix: o})
		}
		return o, nil
	}
	if s.LabelMap != nil {
		if out.LabelMap, err = mapOf(s.LabelMap, "label map"); err != nil {
			return Sample{}, err
		}
	}
	if s.Instances != nil {
		out.Instances = make([]Instance, 0, len(s.Instances))
	}
	sx := float32(p.W) / float32(p.Crop.W)
	sy := float32(p.H) / float32(p.Crop.H)
	cx0, cy0 := float32(p.Crop.Left), float32(p.Crop.Top)
	cx1, cy1 := cx0+float32(p.Crop.W), cy0+float32(p.Crop.H)
	for i, inst := range s.Instances {
		b := inst.Box
		x0, y0 := max(b.X, cx0), max(b.Y, cy0)
		x1, y1 := min(b.X+b.W, cx1), min(b.Y+b.H, cy1)
		if x1 <= x0 || y1 <= y0 {
			continue
		}
		nb := Box{X: (x0 - cx0) * sx, Y: (y0 - cy0) * sy, W: (x1 - x0) * sx, H: (y1 - y0) * sy}
		if p.Flip {
			nb.X = float32(p.W) - nb.X - nb.W
		}
		if nb.W <= p.MinBoxSize || nb.H <= p.MinBoxSize {
			continue
		}
		ni := inst
		ni.Box = nb
		ni.Area = nb.W * nb.H
		if inst.Mask != nil {
			m, err := mapOf(inst.Mask, fmt.Sprintf("mask of instance %d", i))
			if err != nil {
				return Sample{}, err
			}
			n := 0
			for _, v := range m {
				if v != 0 {
					n++
				}
			}
			if n == 0 {
				continue
			}
			ni.Mask, ni.Area = m, float32(n)
		}
		out.Instances = append(out.Instances, ni)
	}
	return out, nil
}
