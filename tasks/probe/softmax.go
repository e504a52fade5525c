package probe

import (
	"math"
	"math/rand/v2"
)

// SoftmaxRegression is a multinomial logistic regression trained on the host:
// small (features x classes), so plain Go is faster than building a graph.
type SoftmaxRegression struct {
	W [][]float64 // [features][classes]
	B []float64   // [classes]
}

// NewSoftmaxRegression returns a zero-initialised model.
func NewSoftmaxRegression(features, classes int) *SoftmaxRegression {
	w := make([][]float64, features)
	for i := range w {
		w[i] = make([]float64, classes)
	}
	return &SoftmaxRegression{W: w, B: make([]float64, classes)}
}

// Probs returns the class probabilities of x.
func (m *SoftmaxRegression) Probs(x []float64) []float64 {
	k := len(m.B)
	z := append([]float64(nil), m.B...)
	for j, v := range x {
		if v == 0 {
			continue
		}
		row := m.W[j]
		for c := 0; c < k; c++ {
			z[c] += v * row[c]
		}
	}
	mx := math.Inf(-1)
	for _, v := range z {
		mx = math.Max(mx, v)
	}
	var s float64
	for c := range z {
		z[c] = math.Exp(z[c] - mx)
		s += z[c]
	}
	for c := range z {
		z[c] /= s
	}
	return z
}

// Fit minimises the mean cross-entropy plus wd/2 * ||W||^2 with minibatch
// Adam (batch 128) over epochs shuffled passes.
func (m *SoftmaxRegression) Fit(xs [][]float64, ys []int32, epochs int, lr, wd float64, seed int64) {
	const batch, b1, b2, eps = 128, 0.9, 0.999, 1e-8
	f, k := len(m.W), len(m.B)
	mw, vw := zeros(f, k), zeros(f, k)
	mb, vb := make([]float64, k), make([]float64, k)
	gw, gb := zeros(f, k), make([]float64, k)
	r := rand.New(rand.NewPCG(uint64(seed), 0x1ea5))
	step := 0
	for e := 0; e < epochs; e++ {
		order := r.Perm(len(xs))
		for start := 0; start < len(order); start += batch {
			idx := order[start:min(start+batch, len(order))]
			for j := range gw {
				clear(gw[j])
			}
			clear(gb)
			for _, i := range idx {
				p := m.Probs(xs[i])
				p[ys[i]]--
				for j, v := range xs[i] {
					if v == 0 {
						continue
					}
					for c := 0; c < k; c++ {
						gw[j][c] += v * p[c]
					}
				}
				for c := 0; c < k; c++ {
					gb[c] += p[c]
				}
			}
			step++
			n := float64(len(idx))
			c1, c2 := 1-math.Pow(b1, float64(step)), 1-math.Pow(b2, float64(step))
			for j := 0; j < f; j++ {
				for c := 0; c < k; c++ {
					g := gw[j][c]/n + wd*m.W[j][c]
					mw[j][c] = b1*mw[j][c] + (1-b1)*g
					vw[j][c] = b2*vw[j][c] + (1-b2)*g*g
					m.W[j][c] -= lr * (mw[j][c] / c1) / (math.Sqrt(vw[j][c]/c2) + eps)
				}
			}
			for c := 0; c < k; c++ {
				g := gb[c] / n
				mb[c] = b1*mb[c] + (1-b1)*g
				vb[c] = b2*vb[c] + (1-b2)*g*g
				m.B[c] -= lr * (mb[c] / c1) / (math.Sqrt(vb[c]/c2) + eps)
			}
		}
	}
}

// Accuracy is the top-1 accuracy on (xs, ys).
func (m *SoftmaxRegression) Accuracy(xs [][]float64, ys []int32) float64 {
	hits := 0
	for i, x := range xs {
		p := m.Probs(x)
		best := 0
		for c := range p {
			if p[c] > p[best] {
				best = c
			}
		}
		if best == int(ys[i]) {
			hits++
		}
	}
	return float64(hits) / float64(len(xs))
}

func zeros(r, c int) [][]float64 {
	out := make([][]float64, r)
	for i := range out {
		out[i] = make([]float64, c)
	}
	return out
}
