package data

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// texture returns a smooth but non-repeating test image.
func texture(h, w, c int, seed int) *Image {
	im := NewImage(h, w, c)
	s := float64(seed)
	for y := range h {
		for x := range w {
			for ch := range c {
				fx, fy, fc := float64(x), float64(y), float64(ch)
				v := 128 + 60*math.Sin(fx*0.11+fy*0.05+s+fc) + 50*math.Cos(fy*0.13-fx*0.03*(1+fc)+2*s) +
					15*math.Sin(fx*fy*0.002)
				im.Set(y, x, ch, clip8(float32(v)))
			}
		}
	}
	return im
}

func TestRandomResizedCropParamsStatistics(t *testing.T) {
	tests := []struct {
		name  string
		h, w  int
		scale [2]float64
		ratio [2]float64
	}{
		{"default", 300, 400, [2]float64{0.08, 1}, [2]float64{3.0 / 4, 4.0 / 3}},
		{"narrow", 500, 200, [2]float64{0.3, 0.6}, [2]float64{0.5, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			c := RandomResizedCrop{Size: 8, Scale: tc.scale, Ratio: tc.ratio}
			// The fallback after ten misses (area 200% never fits): the central
			// crop with the ratio clamped.
			fallback := randomCropParams(tc.h, tc.w, [2]float64{2, 2}, tc.ratio, r)
			var sumArea float64
			const n = 3000
			falls := 0
			for range n {
				b := c.Params(tc.h, tc.w, r)
				if !b.inside(tc.h, tc.w) {
					t.Fatalf("crop %+v outside %dx%d", b, tc.h, tc.w)
				}
				if b == fallback {
					falls++
					continue
				}
				frac := float64(b.H*b.W) / float64(tc.h*tc.w)
				// Rounding h and w moves the area by at most about a pixel
				// along each side.
				slack := float64(b.H+b.W+1) / float64(tc.h*tc.w)
				if frac < tc.scale[0]-slack || frac > tc.scale[1]+slack {
					t.Fatalf("area fraction %v outside %v", frac, tc.scale)
				}
				ratio := float64(b.W) / float64(b.H)
				lo := float64(b.W-1) / float64(b.H+1)
				hi := float64(b.W+1) / float64(max(b.H-1, 1))
				if hi < tc.ratio[0] || lo > tc.ratio[1] {
					t.Fatalf("aspect %v outside %v", ratio, tc.ratio)
				}
				sumArea += frac
			}
			// Accepted areas are uniform in scale, apart from rejected
			// attempts (which favour smaller crops): the mean stays within
			// the range and near its middle.
			if falls > n/20 {
				t.Errorf("%d of %d draws fell back to the center crop", falls, n)
			}
			mean := sumArea / float64(n-falls)
			mid := (tc.scale[0] + tc.scale[1]) / 2
			if mean < tc.scale[0] || mean > tc.scale[1] || math.Abs(mean-mid) > 0.15 {
				t.Errorf("mean area fraction %v, scale %v", mean, tc.scale)
			}
		})
	}
}

func TestRandomResizedCropFallback(t *testing.T) {
	// A 10x1000 strip can never hold 90% of its area at aspect <= 4/3: the
	// fallback is the central crop with the aspect ratio clamped to 4/3.
	c := RandomResizedCrop{Size: 8, Scale: [2]float64{0.9, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}}
	got := c.Params(10, 1000, rand.New(rand.NewPCG(3, 4)))
	want := Rect{Top: 0, Left: 493, H: 10, W: 13}
	if got != want {
		t.Errorf("fallback = %+v, want %+v", got, want)
	}
	got = c.Params(1000, 10, rand.New(rand.NewPCG(3, 4)))
	want = Rect{Top: 493, Left: 0, H: 13, W: 10}
	if got != want {
		t.Errorf("fallback = %+v, want %+v", got, want)
	}
}

func TestHorizontalFlip(t *testing.T) {
	im := imageFrom([][]uint8{{1, 2, 3}})
	r := rand.New(rand.NewPCG(1, 1))
	if got := (HorizontalFlip{P: 1}).Apply(im, r); !bytes.Equal(got.Pix, []uint8{3, 2, 1}) {
		t.Errorf("p=1 gave %v", got.Pix)
	}
	if got := (HorizontalFlip{P: 0}).Apply(im, r); !bytes.Equal(got.Pix, []uint8{1, 2, 3}) {
		t.Errorf("p=0 gave %v", got.Pix)
	}
	flips := 0
	for range 2000 {
		if DefaultHorizontalFlip().Draw(r) {
			flips++
		}
	}
	if flips < 900 || flips > 1100 {
		t.Errorf("p=0.5 flipped %d of 2000", flips)
	}
	if !bytes.Equal(im.Pix, []uint8{1, 2, 3}) {
		t.Error("input modified")
	}
}

func TestNormalize(t *testing.T) {
	im := NewImage(1, 2, 3)
	copy(im.Pix, []uint8{255, 0, 128, 10, 20, 30})
	tests := []struct {
		preset    string
		mean, std [3]float64
	}{
		{"imagenet", [3]float64{0.485, 0.456, 0.406}, [3]float64{0.229, 0.224, 0.225}},
		{"half", [3]float64{0.5, 0.5, 0.5}, [3]float64{0.5, 0.5, 0.5}},
		{"none", [3]float64{0, 0, 0}, [3]float64{1, 1, 1}},
	}
	for _, tc := range tests {
		n, err := NewNormalizer(tc.preset)
		if err != nil {
			t.Fatal(err)
		}
		got := n.Apply(im, nil)
		for i, v := range im.Pix {
			c := i % 3
			want := (float64(v)/255 - tc.mean[c]) / tc.std[c]
			if math.Abs(float64(got[i])-want) > 1e-5 {
				t.Errorf("%s: value %d = %v, want %v", tc.preset, i, got[i], want)
			}
		}
	}
	if _, err := NewNormalizer("bogus"); err == nil {
		t.Error("unknown preset accepted")
	}
	n, _ := NewNormalizer("half")
	if got := n.Apply(imageFrom([][]uint8{{0, 255}}), nil); got[0] != -1 || got[1] != 1 {
		t.Errorf("grey half = %v", got)
	}
}

func TestColorJitterOps(t *testing.T) {
	im := NewImage(1, 3, 3)
	copy(im.Pix, []uint8{255, 0, 0, 0, 255, 0, 10, 100, 200})
	ident := JitterParams{Order: [4]int{0, 1, 2, 3}, Brightness: 1, Contrast: 1, Saturation: 1}
	out := NewImage(1, 3, 3)
	ident.ApplyTo(out, im)
	if !bytes.Equal(out.Pix, im.Pix) {
		t.Errorf("identity jitter changed %v to %v", im.Pix, out.Pix)
	}
	tests := []struct {
		name string
		p    JitterParams
		want []uint8
	}{
		{"black", JitterParams{Order: [4]int{0, 1, 2, 3}, Brightness: 0, Contrast: 1, Saturation: 1}, make([]uint8, 9)},
		{"hue+1/3", JitterParams{Order: [4]int{3, 0, 1, 2}, Brightness: 1, Contrast: 1, Saturation: 1, Hue: 1.0 / 3},
			[]uint8{0, 255, 0, 0, 0, 255, 200, 10, 100}},
		{"grey", JitterParams{Order: [4]int{2, 0, 1, 3}, Brightness: 1, Contrast: 1, Saturation: 0},
			[]uint8{76, 76, 76, 150, 150, 150, 84, 84, 84}},
	}
	for _, tc := range tests {
		tc.p.ApplyTo(out, im)
		for i := range out.Pix {
			if d := int(out.Pix[i]) - int(tc.want[i]); d < -1 || d > 1 {
				t.Errorf("%s: got %v, want %v", tc.name, out.Pix, tc.want)
				break
			}
		}
	}
	// Contrast 0 gives the mean grey everywhere.
	JitterParams{Order: [4]int{1, 0, 2, 3}, Brightness: 1, Contrast: 0, Saturation: 1}.ApplyTo(out, im)
	for _, v := range out.Pix {
		if v != out.Pix[0] {
			t.Fatalf("contrast 0 not flat: %v", out.Pix)
		}
	}
	if (ColorJitter{Hue: 0.6}).Validate() == nil {
		t.Error("hue 0.6 accepted")
	}
}

func TestTwoViewCropSharesBox(t *testing.T) {
	im := texture(240, 320, 3, 5)
	c := DefaultTwoViewCrop()
	c.Size, c.SecondSize = 64, 32
	c.Scale = [2]float64{0.2, 0.5}
	for seed := range 10 {
		r := SampleRNG(int64(seed), 0, 0)
		big, small, err := c.Apply(im, r)
		if err != nil {
			t.Fatal(err)
		}
		if big.H != 64 || small.H != 32 {
			t.Fatalf("sizes %v %v", big, small)
		}
		down := Resize(big, 32, 32, Bilinear)
		same := meanAbsDiff(down, small)
		// A different crop of the same image for contrast.
		other, _, _ := c.Apply(im, SampleRNG(int64(seed)+100, 0, 0))
		diff := meanAbsDiff(Resize(other, 32, 32, Bilinear), small)
		if same > 3 || diff < 3*same {
			t.Errorf("seed %d: views differ by %.2f (another crop: %.2f)", seed, same, diff)
		}
	}
}

func meanAbsDiff(a, b *Image) float64 {
	var s float64
	for i := range a.Pix {
		s += math.Abs(float64(a.Pix[i]) - float64(b.Pix[i]))
	}
	return s / float64(len(a.Pix))
}

func TestAugmenterDeterminism(t *testing.T) {
	cfg := DefaultAugmentConfig()
	cfg.Size, cfg.SecondSize = 48, 24
	cfg.ColorJitter = ColorJitter{Brightness: 0.4, Contrast: 0.4, Saturation: 0.4, Hue: 0.1}
	a, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	im := texture(100, 130, 3, 7)
	orig := bytes.Clone(im.Pix)
	v1, s1, err := a.Train(im, SampleRNG(42, 3, 17))
	if err != nil {
		t.Fatal(err)
	}
	v2, s2, _ := a.Train(im, SampleRNG(42, 3, 17))
	if !bytes.Equal(v1.Pix, v2.Pix) || !bytes.Equal(s1.Pix, s2.Pix) {
		t.Error("same seed/epoch/index gave different views")
	}
	for _, other := range [][3]int{{42, 3, 18}, {42, 4, 17}, {43, 3, 17}} {
		v3, _, _ := a.Train(im, SampleRNG(int64(other[0]), other[1], other[2]))
		if bytes.Equal(v1.Pix, v3.Pix) {
			t.Errorf("%v gave the same view as (42, 3, 17)", other)
		}
	}
	if !bytes.Equal(im.Pix, orig) {
		t.Error("Train modified its input")
	}
	ev, es, err := a.Eval(im)
	if err != nil || ev.H != 48 || ev.W != 48 || es.H != 24 {
		t.Fatalf("Eval = %v %v %v", ev, es, err)
	}
	if d := meanAbsDiff(Resize(ev, 24, 24, Bilinear), es); d > 4 {
		t.Errorf("eval views differ by %.2f", d)
	}
	bad := cfg
	bad.Normalize = "zscore"
	bad.Scale = [2]float64{0.5, 0.1}
	if err := bad.Validate(); err == nil {
		t.Error("bad config accepted")
	}
}

func TestCenterCrop(t *testing.T) {
	c := DefaultCenterCrop()
	if c.ResizeSize() != 256 {
		t.Errorf("ResizeSize = %d", c.ResizeSize())
	}
	im := texture(300, 400, 3, 1)
	out, err := c.Apply(im)
	if err != nil || out.H != 224 || out.W != 224 {
		t.Fatalf("Apply = %v, %v", out, err)
	}
	want := Crop(ResizeShorter(im, 256, Bilinear), Rect{Top: 16, Left: 58, H: 224, W: 224})
	if !bytes.Equal(out.Pix, want.Pix) {
		t.Error("center crop differs from resize + crop")
	}
}

// denseSample draws a bright rectangle (the instance) on a dark image, with
// a matching mask and label map (class 3 inside, 1 outside).
func denseSample(h, w int, b Rect) Sample {
	im := NewImage(h, w, 3)
	mask := make([]uint8, h*w)
	lm := make([]uint8, h*w)
	for y := range h {
		for x := range w {
			in := y >= b.Top && y < b.Top+b.H && x >= b.Left && x < b.Left+b.W
			v, l := uint8(20), uint8(1)
			if in {
				v, l = 230, 3
				mask[y*w+x] = 1
			}
			for c := range 3 {
				im.Set(y, x, c, v)
			}
			lm[y*w+x] = l
		}
	}
	return Sample{
		Image: im, LabelMap: lm, Path: "synthetic",
		Instances: []Instance{
			{Category: 2, Box: Box{X: float32(b.Left), Y: float32(b.Top), W: float32(b.W), H: float32(b.H)}, Mask: mask, Area: float32(b.H * b.W)},
			{Category: 5, Box: Box{X: 0, Y: 0, W: 3, H: 3}}, // a corner box without a mask
		},
	}
}

func TestDenseTransformKeepsAlignment(t *testing.T) {
	rect := Rect{Top: 60, Left: 50, H: 40, W: 80}
	s := denseSample(200, 300, rect)
	d := DefaultDenseAugment()
	d.Size = 96
	d.Interpolation = "nearest"
	kept := 0
	for i := range 60 {
		r := SampleRNG(9, 0, i)
		out, err := d.Apply(s, r)
		if err != nil {
			t.Fatal(err)
		}
		if out.Image.H != 96 || len(out.LabelMap) != 96*96 {
			t.Fatalf("output sizes %v %d", out.Image, len(out.LabelMap))
		}
		var inst *Instance
		for k := range out.Instances {
			if out.Instances[k].Category == 2 {
				inst = &out.Instances[k]
			}
		}
		bright := 0
		for y := range 96 {
			for x := range 96 {
				isBright := out.Image.At(y, x, 0) > 128
				if isBright != (out.LabelMap[y*96+x] == 3) {
					t.Fatalf("draw %d: label map disagrees with the image at %d,%d", i, y, x)
				}
				if !isBright {
					continue
				}
				bright++
				if inst == nil {
					t.Fatalf("draw %d: bright pixel at %d,%d but the instance was dropped", i, y, x)
				}
				if inst.Mask[y*96+x] != 1 {
					t.Fatalf("draw %d: mask misses bright pixel %d,%d", i, y, x)
				}
				b := inst.Box
				fx, fy := float32(x)+0.5, float32(y)+0.5
				if fx < b.X-1 || fx > b.X+b.W+1 || fy < b.Y-1 || fy > b.Y+b.H+1 {
					t.Fatalf("draw %d: box %+v misses bright pixel %d,%d", i, b, y, x)
				}
			}
		}
		if inst != nil {
			kept++
			if int(inst.Area) != bright {
				t.Errorf("draw %d: area %v, %d bright pixels", i, inst.Area, bright)
			}
			// The box is tight around the drawn pixels, within rounding.
			b := inst.Box
			if b.W*b.H > float32(bright)*1.5+4*(b.W+b.H) {
				t.Errorf("draw %d: box %+v loose around %d pixels", i, b, bright)
			}
		}
		for _, in := range out.Instances {
			if in.Box.W <= 0 || in.Box.H <= 0 || in.Box.X < 0 || in.Box.Y < 0 || in.Box.X+in.Box.W > 96.001 || in.Box.Y+in.Box.H > 96.001 {
				t.Errorf("draw %d: box %+v outside the output", i, in.Box)
			}
		}
	}
	if kept == 0 {
		t.Error("the instance never survived a crop")
	}
	// Untouched input.
	if s.Image.At(70, 60, 0) != 230 || s.LabelMap[70*300+60] != 3 {
		t.Error("input modified")
	}
}

func TestTransformDenseFlipAndDrop(t *testing.T) {
	s := denseSample(10, 20, Rect{Top: 2, Left: 2, H: 4, W: 6})
	out, err := TransformDense(s, DenseParams{Crop: Rect{Top: 0, Left: 0, H: 10, W: 20}, Flip: true, H: 10, W: 20, Filter: Nearest})
	if err != nil {
		t.Fatal(err)
	}
	if b := out.Instances[0].Box; b != (Box{X: 12, Y: 2, W: 6, H: 4}) {
		t.Errorf("flipped box %+v", b)
	}
	if out.Image.At(3, 12, 0) != 230 || out.Image.At(3, 11, 0) != 20 || out.Instances[0].Mask[3*20+17] != 1 {
		t.Error("flipped image/mask misplaced")
	}
	// A crop away from both objects drops them.
	out, err = TransformDense(s, DenseParams{Crop: Rect{Top: 6, Left: 10, H: 4, W: 10}, H: 4, W: 10, Filter: Bilinear})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Instances) != 0 {
		t.Errorf("kept %+v", out.Instances)
	}
	bad := s
	bad.LabelMap = bad.LabelMap[:5]
	if _, err := DenseResize(bad, 5, 5, Bilinear); err == nil {
		t.Error("short label map accepted")
	}
}

func BenchmarkAugmenterTrain(b *testing.B) {
	cfg := DefaultAugmentConfig()
	cfg.SecondSize = 112
	cfg.ColorJitter = DefaultColorJitter()
	a, err := cfg.Compile()
	if err != nil {
		b.Fatal(err)
	}
	im := texture(375, 500, 3, 1)
	n := a.Normalizer()
	var dst []float32
	i := 0
	for b.Loop() {
		v, _, err := a.Train(im, SampleRNG(1, 0, i))
		if err != nil {
			b.Fatal(err)
		}
		dst = n.Apply(v, dst)
		i++
	}
}

func BenchmarkCenterCrop(b *testing.B) {
	im := texture(375, 500, 3, 1)
	c := DefaultCenterCrop()
	for b.Loop() {
		if _, err := c.Apply(im); err != nil {
			b.Fatal(err)
		}
	}
}
