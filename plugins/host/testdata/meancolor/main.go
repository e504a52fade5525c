// Command meancolor is a tokenizer plugin for the host's tests: the token
// of a patch is its mean colour quantised to `levels` levels per channel
// (levels^channels tokens); Decode paints each patch with its level's
// centre.
package main

import (
	"context"
	"fmt"
	"math"

	"github.com/peco-dev/peco/plugins/sdk"
)

type tok struct{ patch, levels, channels int }

func (t *tok) Info() sdk.Info {
	return sdk.Info{Name: "meancolor", Version: "0.1.0", Doc: "mean colour of each patch, quantised (host tests)", Schema: []sdk.Field{
		{Key: "patch", Type: sdk.FieldInt, Default: 4, Doc: "patch size in pixels"},
		{Key: "levels", Type: sdk.FieldInt, Default: 4, Doc: "levels per channel"},
		{Key: "channels", Type: sdk.FieldInt, Default: 1, Doc: "image channels"},
	}}
}

func (t *tok) Configure(cfg sdk.Config, _ int64) error {
	t.patch, t.levels, t.channels = cfg.Int("patch"), cfg.Int("levels"), cfg.Int("channels")
	if t.patch < 1 || t.levels < 2 || t.channels < 1 {
		return fmt.Errorf("patch >= 1, levels >= 2 and channels >= 1, got %d, %d, %d", t.patch, t.levels, t.channels)
	}
	return nil
}

func (t *tok) Describe(h, w, c int) (sdk.TokenizerSpec, error) {
	vocab := int(math.Pow(float64(t.levels), float64(t.channels)))
	if h == 0 && w == 0 {
		return sdk.TokenizerSpec{VocabSize: vocab}, nil
	}
	if h%t.patch != 0 || w%t.patch != 0 || c != t.channels {
		return sdk.TokenizerSpec{}, fmt.Errorf("images %dx%dx%d: want sides divisible by %d and %d channels", h, w, c, t.patch, t.channels)
	}
	return sdk.TokenizerSpec{VocabSize: vocab, GridHeight: h / t.patch, GridWidth: w / t.patch}, nil
}

func (t *tok) Encode(_ context.Context, im *sdk.Tensor) (*sdk.Tensor, error) {
	if im.DType != sdk.Float32 || len(im.Shape) != 4 {
		return nil, fmt.Errorf("images %s: want float32 [B, H, W, C]", im)
	}
	b, h, w, c := im.Shape[0], im.Shape[1], im.Shape[2], im.Shape[3]
	if _, err := t.Describe(h, w, c); err != nil {
		return nil, err
	}
	gh, gw := h/t.patch, w/t.patch
	out := make([]int32, b*gh*gw)
	for n := range b {
		for gy := range gh {
			for gx := range gw {
				id := 0
				for ch := range c {
					sum := 0.0
					for y := gy * t.patch; y < (gy+1)*t.patch; y++ {
						for x := gx * t.patch; x < (gx+1)*t.patch; x++ {
							sum += float64(im.F32[((n*h+y)*w+x)*c+ch])
						}
					}
					mean := (sum/float64(t.patch*t.patch) + 1) / 2 // [-1, 1] -> [0, 1]
					q := min(t.levels-1, max(0, int(mean*float64(t.levels))))
					id = id*t.levels + q
				}
				out[(n*gh+gy)*gw+gx] = int32(id)
			}
		}
	}
	return sdk.NewInt32(out, b, gh, gw), nil
}

func (t *tok) Decode(_ context.Context, tk *sdk.Tensor) (*sdk.Tensor, error) {
	b, gh, gw := tk.Shape[0], tk.Shape[1], tk.Shape[2]
	h, w, c := gh*t.patch, gw*t.patch, t.channels
	out := make([]float32, b*h*w*c)
	for i, id := range tk.I32 {
		n, gy, gx := i/(gh*gw), (i/gw)%gh, i%gw
		v := int(id)
		for ch := c - 1; ch >= 0; ch-- {
			q := v % t.levels
			v /= t.levels
			val := float32((float64(q)+0.5)/float64(t.levels)*2 - 1)
			for y := gy * t.patch; y < (gy+1)*t.patch; y++ {
				for x := gx * t.patch; x < (gx+1)*t.patch; x++ {
					out[((n*h+y)*w+x)*c+ch] = val
				}
			}
		}
	}
	return sdk.NewFloat32(out, b, h, w, c), nil
}

func main() { sdk.Serve(&tok{}) }
