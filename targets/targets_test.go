package targets

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

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
		out, err := MustNewExec(backend, func(images *Node) *Node {
			x, err := p.Compute(nil, images, 2, 2)
			if err != nil {
				panic(err)
			}
			return x
		}).
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
	cfg, err := registry.DecodeComponent(core.Targets.Kind(), "pixels", map[string]any{"norm_pix": false})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := core.Targets.Build("pixels", cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := tg.(*Pixels)
	if !ok || p.Config().NormPix || tg.Discrete() {
		t.Fatalf("built %T %+v", tg, tg)
	}
	if d, err := p.Dim(32, 32, 3, 8, 8); err != nil || d != 48 {
		t.Errorf("Dim(32,32,3,8,8) = %d, %v; want 48", d, err)
	}
	if _, err := p.Dim(30, 32, 3, 8, 8); err == nil {
		t.Error("Dim of an indivisible view: want an error")
	}
}

// TestTokensConfig: exactly one source of tokens, precompute only from a
// run, and the former "pretrained" tokenizer's keys name the new spelling.
func TestTokensConfig(t *testing.T) {
	tok := map[string]any{"type": "tokens_test_fixed"}
	for _, tc := range []struct {
		name   string
		params map[string]any
		want   string // "" = valid
	}{
		{"nothing", map[string]any{}, "from must name the tokenizer run"},
		{"both", map[string]any{"from": "runs/x", "tokenizer": tok}, "not both"},
		{"tokenizer", map[string]any{"tokenizer": tok}, ""},
		{"precompute without a run", map[string]any{"tokenizer": tok, "precompute": 2}, "precompute needs from"},
		{"negative precompute", map[string]any{"from": "runs/x", "precompute": -1}, "precompute must be >= 0"},
		{"old checkpoint key", map[string]any{"checkpoint": "runs/x"}, "`from: RUN`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registry.DecodeComponent(core.Targets.Kind(), "tokens", tc.params)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("valid config refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	cfg, err := registry.DecodeComponent(core.Targets.Kind(), "tokens", map[string]any{"tokenizer": tok})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := core.Targets.Build("tokens", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := tg.Dim(8, 8, 1, 2, 2); err != nil || d != 5 || !tg.Discrete() {
		t.Errorf("Dim = %d, %v, discrete %v; want 5 (the vocabulary), discrete", d, err, tg.Discrete())
	}
	src := tg.(core.TokenSource)
	if src.PrecomputedViews() != 0 || src.CacheKey() != "" || src.CacheDir() != "" {
		t.Errorf("a tokenizer used as built: views %d, key %q, dir %q", src.PrecomputedViews(), src.CacheKey(), src.CacheDir())
	}
	// Its tokens are the tokenizer's on the view, checked against the grid.
	out, err := MustNewExec(gobackend.GetBackend(), func(v *Node) *Node {
		ids, err := tg.Compute(nil, v, 2, 2)
		if err != nil {
			panic(err)
		}
		return ids
	}).Exec(tensors.FromFlatDataAndDimensions([]float32{0, 1, 2, 3}, 1, 2, 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[int32](out[0]); fmt.Sprint(got) != "[0 1 2 3]" {
		t.Errorf("tokens %v, want [0 1 2 3]", got)
	}
	if _, err := MustNewExec(gobackend.GetBackend(), func(v *Node) *Node {
		ids, err := tg.Compute(nil, v, 4, 4)
		if err != nil {
			panic(err)
		}
		return ids
	}).Exec(tensors.FromFlatDataAndDimensions([]float32{0, 1, 2, 3}, 1, 2, 2, 1)); err == nil || !strings.Contains(err.Error(), "second_size") {
		t.Errorf("a grid mismatch: %v, want an error naming second_size", err)
	}
}

// fixedTokenizer reads token ids from channel 0 of its [B, h, w, C] input.
type fixedTokenizer struct{}

func (fixedTokenizer) VocabSize() int { return 5 }
func (fixedTokenizer) Encode(_ *model.Scope, v *Node) *Node {
	return ConvertDType(Squeeze(Slice(v, AxisRange(), AxisRange(), AxisRange(), AxisElem(0)), -1), dtypes.Int32)
}
func (fixedTokenizer) Decode(_ *model.Scope, ids *Node) *Node { return ids }

func init() {
	registry.Register(core.Tokenizers, "tokens_test_fixed", "test only: ids read from channel 0",
		func() struct{} { return struct{}{} },
		func(struct{}) (core.Tokenizer, error) { return fixedTokenizer{}, nil })
}
