package losses

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// focalTargets is the float64 reference of the targets: one-hot labels
// smoothed by eps (timm's LabelSmoothingCrossEntropy).
func focalTargets(labels []int, k int, eps float64) [][]float64 {
	t := make([][]float64, len(labels))
	for i, c := range labels {
		t[i] = make([]float64, k)
		for j := range t[i] {
			t[i][j] = eps / float64(k)
			if j == c {
				t[i][j] += 1 - eps
			}
		}
	}
	return t
}

func softmax64(row []float64) (p, logp []float64) {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = math.Max(mx, v)
	}
	var z float64
	for _, v := range row {
		z += math.Exp(v - mx)
	}
	p, logp = make([]float64, len(row)), make([]float64, len(row))
	for j, v := range row {
		logp[j] = v - mx - math.Log(z)
		p[j] = math.Exp(logp[j])
	}
	return p, logp
}

// focalRef is the float64 reference loss and its analytic gradient with
// respect to the logits. Per row, with b_k = p_k dL/dp_k =
// -t_k [(1-p_k)^g - g (1-p_k)^(g-1) p_k log p_k]: dL/dz_j = b_j - p_j sum_k b_k.
func focalRef(logits, targets [][]float64, g float64, weights []float64) (float64, [][]float64) {
	var sum, wsum float64
	grad := make([][]float64, len(logits))
	ws := make([]float64, len(logits))
	for i, row := range logits {
		p, logp := softmax64(row)
		var l, sb float64
		b := make([]float64, len(row))
		for k := range row {
			q := 1 - p[k]
			l -= targets[i][k] * math.Pow(q, g) * logp[k]
			switch {
			case g == 0:
				b[k] = -targets[i][k]
			case q > 0:
				b[k] = -targets[i][k] * (math.Pow(q, g) - g*math.Pow(q, g-1)*p[k]*logp[k])
			}
			sb += b[k]
		}
		grad[i] = make([]float64, len(row))
		for j := range row {
			grad[i][j] = b[j] - p[j]*sb
		}
		ws[i] = 1
		if weights != nil {
			ws[i] = weights[i]
		}
		sum += ws[i] * l
		wsum += ws[i]
	}
	den := float64(len(logits))
	if weights != nil {
		den = math.Max(wsum, 1)
	}
	for i := range grad {
		for j := range grad[i] {
			grad[i][j] *= ws[i] / den
		}
	}
	return sum / den, grad
}

type focalCase struct {
	name    string
	gamma   float64
	eps     float64
	weights []float64
	soft    bool // "targets" instead of "labels"
	logits  [][]float64
	labels  []int
}

// run computes the graph loss and its gradient with respect to the logits.
func (tc focalCase) run(t *testing.T, loss core.Loss) (float64, [][]float64) {
	t.Helper()
	n, k := len(tc.logits), len(tc.logits[0])
	var flat []float32
	for _, r := range tc.logits {
		for _, v := range r {
			flat = append(flat, float32(v))
		}
	}
	args := []any{tensors.FromFlatDataAndDimensions(flat, n, k)}
	names := []string{"logits"}
	if tc.soft {
		var tg []float32
		for _, r := range focalTargets(tc.labels, k, tc.eps) {
			for _, v := range r {
				tg = append(tg, float32(v))
			}
		}
		args, names = append(args, tensors.FromFlatDataAndDimensions(tg, n, k)), append(names, "targets")
	} else {
		lb := make([]int32, n)
		for i, c := range tc.labels {
			lb[i] = int32(c)
		}
		args, names = append(args, tensors.FromFlatDataAndDimensions(lb, n)), append(names, "labels")
	}
	if tc.weights != nil {
		w := make([]float32, n)
		for i, v := range tc.weights {
			w[i] = float32(v)
		}
		args, names = append(args, tensors.FromFlatDataAndDimensions(w, n)), append(names, "weights")
	}
	exec, err := NewExec(gobackend.GetBackend(), func(xs []*Node) []*Node {
		in := map[string]*Node{}
		for i, name := range names {
			in[name] = xs[i]
		}
		l, err := loss.Compute(nil, in)
		if err != nil {
			panic(err)
		}
		return []*Node{l, Gradient(l, xs[0])[0]}
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	g32 := tensors.MustCopyFlatData[float32](out[1])
	grad := make([][]float64, n)
	for i := range grad {
		grad[i] = make([]float64, k)
		for j := range grad[i] {
			grad[i][j] = float64(g32[i*k+j])
		}
	}
	return float64(tensors.ToScalar[float32](out[0])), grad
}

func randomCase(r *rand.Rand, n, k int, scale float64) ([][]float64, []int) {
	logits := make([][]float64, n)
	labels := make([]int, n)
	for i := range logits {
		logits[i] = make([]float64, k)
		for j := range logits[i] {
			logits[i][j] = scale * r.NormFloat64()
		}
		labels[i] = r.IntN(k)
	}
	return logits, labels
}

func focalCases() []focalCase {
	r := rand.New(rand.NewPCG(7, 11))
	var cases []focalCase
	for _, g := range []float64{0, 0.5, 1, 2, 3.7} {
		for _, v := range []struct {
			suffix  string
			eps     float64
			weights []float64
			soft    bool
		}{
			{"", 0, nil, false},
			{" smoothing 0.1", 0.1, nil, false},
			{" weighted", 0.1, []float64{1, 0, 1, 0.5, 2}, false},
			{" all weights 0", 0, []float64{0, 0, 0, 0, 0}, false},
			{" soft targets", 0.2, nil, true},
		} {
			logits, labels := randomCase(r, 5, 4, 2)
			cases = append(cases, focalCase{name: fmt.Sprintf("gamma %v%s", g, v.suffix), gamma: g, eps: v.eps,
				weights: v.weights, soft: v.soft, logits: logits, labels: labels})
		}
	}
	return cases
}

func closeTo(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

func TestFocalMatchesReference(t *testing.T) {
	for _, tc := range focalCases() {
		t.Run(tc.name, func(t *testing.T) {
			loss := Focal{FocalConfig{Weight: 1, Gamma: tc.gamma, LabelSmoothing: tc.eps}}
			if tc.soft {
				loss.Config.LabelSmoothing = 0.7 // "targets" are taken as given
			}
			got, grad := tc.run(t, loss)
			targets := focalTargets(tc.labels, len(tc.logits[0]), tc.eps)
			want, wantGrad := focalRef(tc.logits, targets, tc.gamma, tc.weights)
			if !closeTo(got, want, 1e-5) {
				t.Errorf("loss %v, want %v", got, want)
			}
			for i := range grad {
				for j := range grad[i] {
					if !closeTo(grad[i][j], wantGrad[i][j], 1e-4) {
						t.Errorf("d loss/d logits[%d][%d] = %v, want %v", i, j, grad[i][j], wantGrad[i][j])
					}
				}
			}
		})
	}
}

// TestFocalReferenceGradient checks the analytic reference gradient against
// central finite differences of the reference loss.
func TestFocalReferenceGradient(t *testing.T) {
	const h = 1e-6
	for _, tc := range focalCases() {
		targets := focalTargets(tc.labels, len(tc.logits[0]), tc.eps)
		_, grad := focalRef(tc.logits, targets, tc.gamma, tc.weights)
		for i := range tc.logits {
			for j := range tc.logits[i] {
				v := tc.logits[i][j]
				tc.logits[i][j] = v + h
				up, _ := focalRef(tc.logits, targets, tc.gamma, tc.weights)
				tc.logits[i][j] = v - h
				down, _ := focalRef(tc.logits, targets, tc.gamma, tc.weights)
				tc.logits[i][j] = v
				if fd := (up - down) / (2 * h); !closeTo(grad[i][j], fd, 1e-6) {
					t.Errorf("%s: analytic d/dz[%d][%d] = %v, finite differences %v", tc.name, i, j, grad[i][j], fd)
				}
			}
		}
	}
}

func TestFocalGammaZeroIsCrossEntropy(t *testing.T) {
	for _, tc := range focalCases() {
		if tc.gamma != 0 {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			fl, flGrad := tc.run(t, Focal{FocalConfig{Weight: 1, LabelSmoothing: tc.eps}})
			ce, ceGrad := tc.run(t, CrossEntropy{CrossEntropyConfig{Weight: 1, LabelSmoothing: tc.eps}})
			if fl != ce {
				t.Errorf("focal %v, cross_entropy %v", fl, ce)
			}
			for i := range flGrad {
				for j := range flGrad[i] {
					if flGrad[i][j] != ceGrad[i][j] {
						t.Errorf("gradient [%d][%d]: focal %v, cross_entropy %v", i, j, flGrad[i][j], ceGrad[i][j])
					}
				}
			}
		})
	}
}

// TestFocalSaturatedRows: a row whose softmax is exactly 1 in float32 (the
// label's, or another class's) gives a finite loss and gradient for every
// gamma, including gamma < 1 where (1-p)^(gamma-1) is infinite.
func TestFocalSaturatedRows(t *testing.T) {
	tc := focalCase{logits: [][]float64{{200, 0, -3}, {0, 200, 1}, {1, 2, 3}}, labels: []int{0, 0, 2}}
	for _, g := range []float64{0, 0.25, 0.5, 1, 2} {
		loss, grad := tc.run(t, Focal{FocalConfig{Weight: 1, Gamma: g}})
		want, wantGrad := focalRef(tc.logits, focalTargets(tc.labels, 3, 0), g, nil)
		if !closeTo(loss, want, 1e-5) {
			t.Errorf("gamma %v: loss %v, want %v", g, loss, want)
		}
		for i := range grad {
			for j := range grad[i] {
				if math.IsNaN(grad[i][j]) || !closeTo(grad[i][j], wantGrad[i][j], 1e-4) {
					t.Errorf("gamma %v: gradient [%d][%d] = %v, want %v", g, i, j, grad[i][j], wantGrad[i][j])
				}
			}
		}
	}
}

func TestFocalRegistered(t *testing.T) {
	cfg, err := registry.DecodeComponent("loss", "focal", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if c := *cfg.(*FocalConfig); c != (FocalConfig{Weight: 1, Gamma: 2}) {
		t.Errorf("defaults %+v, want weight 1, gamma 2, label_smoothing 0", c)
	}
	l, err := core.Losses.Build("focal", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.(core.LabelSmoother); !ok {
		t.Error("focal does not report its label smoothing to Mixup/CutMix")
	}
	for _, bad := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"gamma": -0.5}, "gamma must be"},
		{map[string]any{"label_smoothing": 1}, "label_smoothing must be in [0, 1)"},
		{map[string]any{"label_smoothing": -0.1}, "label_smoothing must be in [0, 1)"},
	} {
		if _, err := registry.DecodeComponent("loss", "focal", bad.params); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: error %v, want one saying %q", bad.params, err, bad.want)
		}
	}
	if _, err := core.Losses.Build("focal", &FocalConfig{Gamma: math.NaN()}); err == nil {
		t.Error("gamma NaN built")
	}
	for _, in := range []map[string]*Node{{}, {"logits": nil}} {
		if _, err := (Focal{}).Compute(nil, in); err == nil || !strings.Contains(err.Error(), "logits") {
			t.Errorf("missing logits: %v", err)
		}
	}
}
