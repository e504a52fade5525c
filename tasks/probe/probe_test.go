package probe

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestUsageAndPSNR(t *testing.T) {
	used, ppl := usage([]int32{0, 0, 1, 1, 2, 2, 3, 3}, 16)
	if used != 4 || math.Abs(ppl-4) > 1e-12 {
		t.Errorf("uniform over 4 codes: used %d perplexity %v, want 4 and 4", used, ppl)
	}
	used, ppl = usage([]int32{5, 5, 5, 5}, 16)
	if used != 1 || math.Abs(ppl-1) > 1e-12 {
		t.Errorf("one code: used %d perplexity %v", used, ppl)
	}
	// Pixels in [-1, 1]; an error of 0.2 in [-1,1] is 0.1 on [0,1]: PSNR 20 dB.
	a := []float32{0, 0.5, -0.5, 1}
	b := []float32{0.2, 0.7, -0.3, 1.2} // the last clips to 1: error 0 there
	want := 10 * math.Log10(1/(3*0.01/4))
	if got := psnr(a, b); math.Abs(got-want) > 1e-4 {
		t.Errorf("psnr = %v, want %v", got, want)
	}
}

func TestFrequentCodes(t *testing.T) {
	got := frequentCodes([]int32{3, 3, 3, 1, 1, 7, 0, 0, 0, 0}, 8, 3)
	want := []int{0, 3, 1}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("frequentCodes = %v, want %v", got, want)
		}
	}
}

// TestBagOfCodesProbeSeparates checks the linear probe on synthetic token
// maps whose classes use disjoint halves of the codebook (accuracy 1) and on
// maps carrying no class information (accuracy near chance).
func TestBagOfCodesProbeSeparates(t *testing.T) {
	const vocab, h, w, n = 16, 4, 4, 200
	make := func(informative bool, seed int) *coded {
		c := &coded{h: h, w: w}
		r := rand.New(rand.NewPCG(uint64(seed), 9))
		for i := 0; i < n; i++ {
			label := int32(i % 2)
			c.labels = append(c.labels, label)
			for j := 0; j < h*w; j++ {
				code := int32(r.IntN(8))
				if informative && label == 1 {
					code += 8
				}
				c.tokens = append(c.tokens, code)
			}
		}
		return c
	}
	cfg := LinearConfig{Epochs: 30, LR: 0.05, WeightDecay: 1e-4}
	acc, err := bagOfCodesProbe(make(true, 0), make(true, 1), vocab, 2, cfg, 1)
	if err != nil || acc != 1 {
		t.Errorf("separable codes: accuracy %v, %v", acc, err)
	}
	acc, err = bagOfCodesProbe(make(false, 0), make(false, 1), vocab, 2, cfg, 1)
	if err != nil || acc > 0.75 {
		t.Errorf("uninformative codes: accuracy %v (should be near chance), %v", acc, err)
	}
}
