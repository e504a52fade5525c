package classify

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMixTargetsSumToOne(t *testing.T) {
	const b, h, w, ch, k = 6, 8, 8, 3, 5
	for _, tc := range []struct {
		name string
		cfg  MixConfig
		eps  float64
	}{
		{"mixup", MixConfig{Mixup: 0.8, Prob: 1}, 0},
		{"cutmix", MixConfig{CutMix: 1, Prob: 1}, 0.1},
		{"both", MixConfig{Mixup: 0.8, CutMix: 1, Prob: 1, SwitchProb: 0.5}, 0.1},
		{"off", MixConfig{}, 0.1},
	} {
		for seed := uint64(0); seed < 20; seed++ {
			r := rand.New(rand.NewPCG(seed, 1))
			pix := make([]float32, b*h*w*ch)
			labels := make([]int32, b)
			for i := range labels {
				labels[i] = int32(i % k)
				for j := 0; j < h*w*ch; j++ {
					pix[i*h*w*ch+j] = float32(labels[i]) // image i is filled with its label
				}
			}
			targets := tc.cfg.MixBatch(r, pix, labels, h, w, ch, k, tc.eps)
			for i := 0; i < b; i++ {
				var sum, mass float64
				for j := 0; j < k; j++ {
					sum += float64(targets[i*k+j])
				}
				if math.Abs(sum-1) > 1e-5 {
					t.Fatalf("%s: row %d sums to %v", tc.name, i, sum)
				}
				// The label weight of the image's own class equals the share of
				// its own pixels (cutmix) or the blend factor (mixup): the mean
				// pixel value identifies the blend.
				for j := 0; j < h*w*ch; j++ {
					mass += float64(pix[i*h*w*ch+j])
				}
				mean := mass / float64(h*w*ch)
				own, other := float64(labels[i]), float64(labels[b-1-i])
				if own == other {
					continue
				}
				lamPix := (mean - other) / (own - other)
				off := tc.eps / k
				lamTgt := (float64(targets[i*k+int(labels[i])]) - off) / (1 - tc.eps)
				if math.Abs(lamPix-lamTgt) > 1e-4 {
					t.Fatalf("%s seed %d row %d: pixels say lambda %.4f, targets %.4f", tc.name, seed, i, lamPix, lamTgt)
				}
			}
		}
	}
}

func TestBetaSampler(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, a := range []float64{0.8, 1, 2} {
		var sum, sq float64
		const n = 20000
		for i := 0; i < n; i++ {
			x := sampleBeta(r, a, a)
			if x < 0 || x > 1 {
				t.Fatalf("Beta(%v) sample %v out of [0,1]", a, x)
			}
			sum += x
			sq += x * x
		}
		mean := sum / n
		variance := sq/n - mean*mean
		wantVar := 1 / (4 * (2*a + 1)) // Beta(a,a): a^2 / ((2a)^2 (2a+1))
		if math.Abs(mean-0.5) > 0.01 || math.Abs(variance-wantVar) > 0.01 {
			t.Errorf("Beta(%v,%v): mean %.4f var %.4f, want 0.5 and %.4f", a, a, mean, variance, wantVar)
		}
	}
}

func TestRandomErasing(t *testing.T) {
	const h, w, ch = 16, 16, 3
	c := ErasingConfig{Prob: 1, Area: [2]float64{0.1, 0.2}, MinRatio: 0.3}
	r := rand.New(rand.NewPCG(3, 3))
	for trial := 0; trial < 50; trial++ {
		pix := make([]float32, h*w*ch)
		for i := range pix {
			pix[i] = 100
		}
		c.Apply(r, pix, h, w, ch)
		changed := 0
		for i := 0; i < len(pix); i += ch {
			if pix[i] != 100 {
				changed++
			}
		}
		if f := float64(changed) / (h * w); f < 0.05 || f > 0.3 {
			t.Fatalf("erased fraction %.3f outside the configured area range", f)
		}
	}
	pix := []float32{1, 2, 3}
	ErasingConfig{Prob: 0, Area: [2]float64{0.1, 0.2}, MinRatio: 0.3}.Apply(r, pix, 1, 1, 3)
	if pix[0] != 1 {
		t.Error("prob 0 erased")
	}
}
