package tokenizers

import (
	"math"
	"testing"

	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// TestPixelsPatchTargets checks the patch layout (row-major patches, (py, px,
// c) within a patch) and the per-patch normalisation.
func TestPixelsPatchTargets(t *testing.T) {
	backend, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	// One 4x4 image with 2 channels: value = 100*y + 10*x + c; 2x2 grid of 2x2 patches.
	const h, w, c = 4, 4, 2
	pix := make([]float32, h*w*c)
	for y := range h {
		for x := range w {
			for ch := range c {
				pix[(y*w+x)*c+ch] = float32(100*y + 10*x + ch)
			}
		}
	}
	run := func(norm bool) []float32 {
		p := NewPixels(PixelsConfig{NormPix: norm, Eps: 1e-6})
		out, err := MustNewExec(backend, func(images *Node) *Node { return p.PatchTargets(images, 2, 2) }).
			Exec(tensors.FromFlatDataAndDimensions(pix, 1, h, w, c))
		if err != nil {
			t.Fatal(err)
		}
		if dims := out[0].Shape().Dimensions; len(dims) != 3 || dims[0] != 1 || dims[1] != 4 || dims[2] != 8 {
			t.Fatalf("targets shape %v, want [1 4 8]", dims)
		}
		return tensors.MustCopyFlatData[float32](out[0])
	}
	raw := run(false)
	// Patch 3 (bottom-right) starts at y=2, x=2; its pixel (py=1, px=0, c=1) is y=3, x=2, c=1.
	if got := raw[3*8+(1*2+0)*2+1]; got != 321 {
		t.Errorf("patch 3 pixel (1,0,1) = %v, want 321", got)
	}
	if got := raw[1*8+0]; got != 20 {
		t.Errorf("patch 1 first value = %v, want 20 (y=0, x=2)", got)
	}
	normed := run(true)
	for pch := range 4 {
		row := normed[pch*8 : (pch+1)*8]
		var mean, ss float64
		for _, v := range row {
			mean += float64(v)
		}
		mean /= 8
		for _, v := range row {
			ss += (float64(v) - mean) * (float64(v) - mean)
		}
		if math.Abs(mean) > 1e-5 || math.Abs(ss/7-1) > 1e-4 {
			t.Errorf("patch %d: mean %v, unbiased var %v; want 0, 1", pch, mean, ss/7)
		}
	}
}

func TestPixelsRegistered(t *testing.T) {
	cfg, err := registry.DecodeComponent(core.Tokenizers.Kind(), "pixels", map[string]any{"norm_pix": false})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := core.Tokenizers.Build("pixels", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := tok.(*Pixels)
	if !ok || p.Config().NormPix || tok.VocabSize() != 0 {
		t.Fatalf("built %T %+v", tok, tok)
	}
	if d, err := p.PatchDim(32, 32, 3, 8, 8); err != nil || d != 48 {
		t.Errorf("PatchDim(32,32,3,8,8) = %d, %v; want 48", d, err)
	}
	if _, err := p.PatchDim(30, 32, 3, 8, 8); err == nil {
		t.Error("PatchDim of an indivisible view: want an error")
	}
}
