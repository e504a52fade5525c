package losses

import (
	"math"
	"testing"

	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
)

// ceRef is the reference: mean over rows of -sum_k target_k * log softmax_k.
func ceRef(logits [][]float64, labels []int, eps float64, weights []float64) float64 {
	var sum, wsum float64
	for i, row := range logits {
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		var z float64
		for _, v := range row {
			z += math.Exp(v - mx)
		}
		k := float64(len(row))
		var l float64
		for j, v := range row {
			tgt := eps / k
			if j == labels[i] {
				tgt += 1 - eps
			}
			l -= tgt * (v - mx - math.Log(z))
		}
		w := 1.0
		if weights != nil {
			w = weights[i]
		}
		sum += w * l
		wsum += w
	}
	return sum / wsum
}

func TestCrossEntropy(t *testing.T) {
	backend, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	logits := [][]float64{{2, 1, 0.1}, {0.5, 2.5, -1}, {0, 0, 0}}
	labels := []int{0, 2, 1}
	flat := []float32{}
	for _, r := range logits {
		for _, v := range r {
			flat = append(flat, float32(v))
		}
	}
	for _, tc := range []struct {
		name    string
		eps     float64
		weights []float64
	}{
		{"plain", 0, nil},
		{"smoothing 0.1", 0.1, nil},
		{"weighted rows (masked positions)", 0.1, []float64{1, 0, 1}},
	} {
		ce := CrossEntropy{CrossEntropyConfig{Weight: 1, LabelSmoothing: tc.eps}}
		var w32 []float32
		for _, w := range tc.weights {
			w32 = append(w32, float32(w))
		}
		compute := func(lg, lb, w *Node) *Node {
			in := map[string]*Node{"logits": lg, "labels": lb}
			if w != nil {
				in["weights"] = w
			}
			l, err := ce.Compute(nil, in)
			if err != nil {
				panic(err)
			}
			return l
		}
		lgT := tensors.FromFlatDataAndDimensions(flat, 3, 3)
		lbT := tensors.FromFlatDataAndDimensions([]int32{int32(labels[0]), int32(labels[1]), int32(labels[2])}, 3)
		var out *tensors.Tensor
		if w32 != nil {
			out, err = ExecOnce(backend, func(lg, lb, w *Node) *Node { return compute(lg, lb, w) }, lgT, lbT, tensors.FromFlatDataAndDimensions(w32, 3))
		} else {
			out, err = ExecOnce(backend, func(lg, lb *Node) *Node { return compute(lg, lb, nil) }, lgT, lbT)
		}
		if err != nil {
			t.Fatal(err)
		}
		want := ceRef(logits, labels, tc.eps, tc.weights)
		if got := float64(tensors.ToScalar[float32](out)); math.Abs(got-want) > 1e-5 {
			t.Errorf("%s: loss %v, want %v", tc.name, got, want)
		}
	}
	if _, err := (CrossEntropy{}).Compute(nil, map[string]*Node{}); err == nil {
		t.Error("missing logits accepted")
	}
}
