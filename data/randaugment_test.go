package data

import (
	"math/rand/v2"
	"testing"
)

func testImage(h, w int) *Image {
	im := NewImage(h, w, 3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			im.Set(y, x, 0, uint8(40+10*x))
			im.Set(y, x, 1, uint8(60+5*y))
			im.Set(y, x, 2, uint8(100+3*(x+y)))
		}
	}
	return im
}

func TestRandAugmentOps(t *testing.T) {
	im := testImage(8, 8)
	for _, op := range randOps {
		for _, m := range []float64{0, 0.5, -1, 1} {
			if m < 0 && !op.signed {
				continue
			}
			out := op.apply(im, m)
			if out.H != 8 || out.W != 8 || out.C != 3 || len(out.Pix) != len(im.Pix) {
				t.Fatalf("%s(%v): shape %v", op.name, m, out)
			}
		}
	}
	// Magnitude 0 of the enhance and geometric ops is the identity.
	for _, name := range []string{"identity", "brightness", "contrast", "color", "sharpness", "translate_x", "translate_y", "shear_x", "shear_y", "rotate"} {
		for _, op := range randOps {
			if op.name == name {
				out := op.apply(im, 0)
				for i := range im.Pix {
					if out.Pix[i] != im.Pix[i] {
						t.Fatalf("%s at magnitude 0 changed pixel %d: %d -> %d", name, i, im.Pix[i], out.Pix[i])
					}
				}
			}
		}
	}
	// Hand-checked values.
	if got := posterize(im, 4).Pix[0]; got != 40&0xf0 {
		t.Errorf("posterize 4 bits of 40 = %d", got)
	}
	if got := solarize(im, 50, 0).Pix[0]; got != 40 {
		t.Errorf("solarize keeps values under the threshold: %d", got)
	}
	if got := solarize(im, 30, 0).Pix[0]; got != 255-40 {
		t.Errorf("solarize inverts values over the threshold: %d", got)
	}
	ac := autoContrast(im)
	lo, hi := uint8(255), uint8(0)
	for i := 0; i < len(ac.Pix); i += 3 {
		lo, hi = min(lo, ac.Pix[i]), max(hi, ac.Pix[i])
	}
	if lo != 0 || hi != 255 {
		t.Errorf("auto_contrast range [%d, %d], want [0, 255]", lo, hi)
	}
	tx := affine(im, 1, 0, 2, 0, 1, 0) // output x reads input x+2
	if tx.At(3, 1, 0) != im.At(3, 3, 0) || tx.At(3, 7, 0) != 128 {
		t.Errorf("translate: %d vs %d, fill %d", tx.At(3, 1, 0), im.At(3, 3, 0), tx.At(3, 7, 0))
	}
	r180 := rotate(im, 180)
	if r180.At(0, 0, 0) != im.At(7, 7, 0) {
		t.Errorf("rotate 180: corner %d, want %d", r180.At(0, 0, 0), im.At(7, 7, 0))
	}
}

func TestRandAugmentDeterministic(t *testing.T) {
	im := testImage(16, 16)
	c := RandAugmentConfig{N: 2, M: 9, MStd: 0.5}
	changed := 0
	for i := 0; i < 50; i++ {
		a := c.Apply(im, SampleRNG(1, 0, i))
		b := c.Apply(im, SampleRNG(1, 0, i))
		for j := range a.Pix {
			if a.Pix[j] != b.Pix[j] {
				t.Fatalf("sample %d: same seed, different output", i)
			}
		}
		for j := range a.Pix {
			if a.Pix[j] != im.Pix[j] {
				changed++
				break
			}
		}
	}
	if changed < 25 {
		t.Errorf("only %d of 50 images changed with n=2, m=9", changed)
	}
	if out := (RandAugmentConfig{}).Apply(im, rand.New(rand.NewPCG(1, 1))); out != im {
		t.Error("n=0 must return the image unchanged")
	}
}
