package data

import (
	"math"
	"slices"
	"testing"
)

func countTrue(m []bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// components returns the sizes of the 4-connected components of the mask.
func components(m []bool, h, w int) []int {
	seen := make([]bool, len(m))
	var sizes []int
	for start := range m {
		if !m[start] || seen[start] {
			continue
		}
		stack := []int{start}
		seen[start] = true
		n := 0
		for len(stack) > 0 {
			c := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			n++
			y, x := c/w, c%w
			for _, d := range [][2]int{{-1, 0}, {1, 0}, {0, -1}, {0, 1}} {
				ny, nx := y+d[0], x+d[1]
				if ny < 0 || ny >= h || nx < 0 || nx >= w {
					continue
				}
				if k := ny*w + nx; m[k] && !seen[k] {
					seen[k] = true
					stack = append(stack, k)
				}
			}
		}
		sizes = append(sizes, n)
	}
	return sizes
}

func TestBlockwiseMaskerExactCount(t *testing.T) {
	tests := []struct {
		name          string
		h, w, n, minP int
	}{
		{"beit 75/196", 14, 14, 75, 16},
		{"ratio 0.6", 14, 14, 118, 16},
		{"small grid", 7, 7, 20, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &BlockwiseMasker{H: tc.h, W: tc.w, NumMasked: tc.n, MinPatches: tc.minP, MinAspect: 0.3, Exact: true}
			for i := range 1000 {
				got := m.Mask(SampleRNG(1, 0, i))
				if len(got) != tc.h*tc.w {
					t.Fatalf("mask length %d", len(got))
				}
				if c := countTrue(got); c != tc.n {
					t.Fatalf("draw %d masked %d, want exactly %d", i, c, tc.n)
				}
			}
		})
	}
}

func TestBlockwiseMaskerBEiTStatistics(t *testing.T) {
	m := &BlockwiseMasker{H: 14, W: 14, NumMasked: 75, MinPatches: 16, MinAspect: 0.3}
	var total, inBig, masked int
	const draws = 1000
	for i := range draws {
		mask, blocks := m.maskBlocks(SampleRNG(2, 0, i))
		c := countTrue(mask)
		if c > 75 {
			t.Fatalf("draw %d masked %d > 75", i, c)
		}
		total += c
		for _, size := range components(mask, 14, 14) {
			masked += size
			if size >= 16 {
				inBig += size
			}
		}
		for _, b := range blocks {
			if b.top < 0 || b.left < 0 || b.top+b.h > 14 || b.left+b.w > 14 || b.h >= 14 || b.w >= 14 {
				t.Fatalf("block %+v outside the grid", b)
			}
			// h and w are rounded from sqrt(area*aspect), sqrt(area/aspect):
			// allow half a patch each way.
			lo := (float64(b.h) - 0.5) / (float64(b.w) + 0.5)
			hi := (float64(b.h) + 0.5) / max(float64(b.w)-0.5, 0.5)
			if hi < 0.3 || lo > 1/0.3 {
				t.Fatalf("block %+v aspect %v outside [0.3, 3.33]", b, float64(b.h)/float64(b.w))
			}
		}
	}
	mean := float64(total) / draws
	// BEiT's generator usually reaches its target and never exceeds it.
	if mean < 70 || mean > 75 {
		t.Errorf("mean masked count %v, want close to 75", mean)
	}
	// Blocks are contiguous: most masked patches sit in components of at
	// least MinPatches.
	if frac := float64(inBig) / float64(masked); frac < 0.9 {
		t.Errorf("only %.2f of masked patches in components >= 16", frac)
	}
}

func TestRandomMaskerUniform(t *testing.T) {
	m := &RandomMasker{H: 8, W: 8, NumMasked: 24}
	freq := make([]int, 64)
	const draws = 4000
	for i := range draws {
		mask := m.Mask(SampleRNG(3, 1, i))
		if c := countTrue(mask); c != 24 {
			t.Fatalf("masked %d, want 24", c)
		}
		for k, v := range mask {
			if v {
				freq[k]++
			}
		}
	}
	p := 24.0 / 64
	sigma := math.Sqrt(draws * p * (1 - p))
	for k, f := range freq {
		if math.Abs(float64(f)-draws*p) > 5*sigma {
			t.Errorf("cell %d masked %d times, expected %.0f ± %.0f", k, f, draws*p, sigma)
		}
	}
}

func TestMaskConfig(t *testing.T) {
	c := DefaultMaskConfig()
	m, err := c.New(14, 14)
	if err != nil {
		t.Fatal(err)
	}
	if h, w := m.Grid(); h != 14 || w != 14 {
		t.Errorf("grid %dx%d", h, w)
	}
	if n := countTrue(m.Mask(SampleRNG(0, 0, 0))); n != 78 {
		t.Errorf("ratio 0.4 of 196 masked %d, want 78", n)
	}
	c.NumMasked = 75
	m, _ = c.New(14, 14)
	a, b := m.Mask(SampleRNG(5, 2, 9)), m.Mask(SampleRNG(5, 2, 9))
	if !slices.Equal(a, b) || countTrue(a) != 75 {
		t.Error("masks not deterministic or wrong count")
	}
	if slices.Equal(a, m.Mask(SampleRNG(5, 2, 10))) {
		t.Error("different samples got the same mask")
	}
	rc := MaskConfig{Kind: "random", Ratio: 0.5}
	rm, err := rc.New(4, 6)
	if err != nil || countTrue(rm.Mask(SampleRNG(0, 0, 0))) != 12 {
		t.Errorf("random masker: %v", err)
	}
	for _, bad := range []MaskConfig{
		{Kind: "block", Ratio: 0, MinAspect: 0.3},
		{Kind: "block", Ratio: 0.4, MinAspect: 2},
		{Kind: "grid", Ratio: 0.4},
		{Kind: "random", NumMasked: 300},
	} {
		if _, err := bad.New(14, 14); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
