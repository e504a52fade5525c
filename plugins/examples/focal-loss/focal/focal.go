// Package focal is the example loss plugin "focal": the softmax focal loss
// of Lin et al. 2017 ("Focal Loss for Dense Object Detection") computed in
// float64 on the plugin's side, with its analytic gradient. It is the same
// loss as peco's built-in `focal` (losses/focal.go); the binary that serves
// it is plugins/examples/focal-loss.
//
// Per row i, with p = softmax(z_i) over the K classes and targets t (the
// one-hot label smoothed by label_smoothing, or given as "targets"):
//
//	L_i = -sum_k t_k (1 - p_k)^gamma log p_k
//
// and the loss is the mean of L_i over the rows, or with "weights" w:
// sum_i w_i L_i / max(sum_i w_i, 1).
//
// The gradient: with q_k = 1 - p_k and b_k = p_k dL_i/dp_k,
//
//	dL_i/dp_k = -t_k [ (1-p_k)^gamma / p_k - gamma (1-p_k)^(gamma-1) log p_k ]
//	b_k       = -t_k q_k^gamma [ 1 - gamma p_k log(p_k) / q_k ]
//	dL_i/dz_j = sum_k dL_i/dp_k p_k (delta_kj - p_j) = b_j - p_j sum_k b_k
//
// with b_k = -t_k for gamma = 0 and b_k = 0 where q_k = 0 and gamma > 0 (the
// limit: q^gamma -> 0 and log(p)/q -> -1), so that (1-p)^(gamma-1), infinite
// at p = 1 for gamma < 1, is never formed. The row gradients are scaled like
// the loss: 1/N, or w_i / max(sum w, 1).
package focal

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/peco-dev/peco/plugins/sdk"
)

// Defaults of the config keys.
const (
	DefaultGamma          = 2.0
	DefaultLabelSmoothing = 0.0
)

// Loss is the focal loss plugin. The zero value is configured by Configure.
type Loss struct {
	gamma, labelSmoothing float64
}

var _ sdk.Loss = (*Loss)(nil)

// Info implements sdk.Plugin.
func (l *Loss) Info() sdk.Info {
	return sdk.Info{
		Name:    "focal",
		Version: "1.0.0",
		Doc:     "softmax focal loss (Lin et al. 2017): cross-entropy down-weighted by (1-p)^gamma, computed in float64",
		Schema: []sdk.Field{
			{Key: "gamma", Type: sdk.FieldFloat, Default: DefaultGamma,
				Doc: "focusing parameter >= 0: (1-p)^gamma down-weights well-classified rows (0 is cross-entropy)"},
			{Key: "label_smoothing", Type: sdk.FieldFloat, Default: DefaultLabelSmoothing,
				Doc: "mass in [0, 1) spread uniformly over all classes of the \"labels\", as in cross_entropy"},
		},
	}
}

// Configure implements sdk.Plugin: gamma must be a finite number >= 0 and
// label_smoothing in [0, 1). A key the config lacks takes its default.
func (l *Loss) Configure(cfg sdk.Config, _ int64) error {
	gamma, err := number(cfg, "gamma", DefaultGamma)
	if err != nil {
		return err
	}
	eps, err := number(cfg, "label_smoothing", DefaultLabelSmoothing)
	if err != nil {
		return err
	}
	if !(gamma >= 0) || math.IsInf(gamma, 1) {
		return fmt.Errorf("gamma must be a finite number >= 0, got %v", gamma)
	}
	if !(eps >= 0 && eps < 1) {
		return fmt.Errorf("label_smoothing must be in [0, 1), got %v", eps)
	}
	l.gamma, l.labelSmoothing = gamma, eps
	return nil
}

// number reads a number key of the config, def when it is absent or null.
func number(cfg sdk.Config, key string, def float64) (float64, error) {
	v, ok := cfg[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	}
	return 0, fmt.Errorf("%s must be a number, got %T %v", key, v, v)
}

// Compute implements sdk.Loss. Inputs: "logits" float32 [N, K] and either
// "labels" int32 [N] in [0, K) or "targets" float32 [N, K] (used as given,
// as by the built-in); optional "weights" float32 [N]. GradFor may name
// "logits" only.
func (l *Loss) Compute(ctx context.Context, req *sdk.LossRequest) (*sdk.LossResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logits, err := input(req.Inputs, "logits", sdk.Float32, "float32 [N, classes]", 2)
	if err != nil {
		return nil, err
	}
	n, k := logits.Shape[0], logits.Shape[1]
	if k < 1 {
		return nil, fmt.Errorf("input \"logits\": %s has no classes", logits)
	}
	if i := nonFinite(logits.F32); i >= 0 {
		return nil, fmt.Errorf("input \"logits\": element [%d, %d] is %v", i/k, i%k, logits.F32[i])
	}
	wantGrad := false
	for _, name := range req.GradFor {
		if name != "logits" {
			return nil, fmt.Errorf("gradient for input %q asked: this loss gives the gradient of \"logits\" only", name)
		}
		wantGrad = true
	}

	// Targets: soft "targets" as given, else smoothed one-hot "labels".
	var targetRow func(i int, t []float64)
	if _, soft := req.Inputs["targets"]; soft {
		targets, err := input(req.Inputs, "targets", sdk.Float32, "float32 [N, classes]", 2)
		if err != nil {
			return nil, err
		}
		if !slices.Equal(targets.Shape, logits.Shape) {
			return nil, fmt.Errorf("input \"targets\": %s, logits are %s: want the same shape", targets, logits)
		}
		if i := nonFinite(targets.F32); i >= 0 {
			return nil, fmt.Errorf("input \"targets\": element [%d, %d] is %v", i/k, i%k, targets.F32[i])
		}
		targetRow = func(i int, t []float64) {
			for j := range t {
				t[j] = float64(targets.F32[i*k+j])
			}
		}
	} else {
		if _, ok := req.Inputs["labels"]; !ok {
			return nil, fmt.Errorf("missing input: needs \"labels\" (int32 [N]) or \"targets\" (float32 [N, classes])")
		}
		labels, err := input(req.Inputs, "labels", sdk.Int32, "int32 [N]", 1)
		if err != nil {
			return nil, err
		}
		if labels.Shape[0] != n {
			return nil, fmt.Errorf("input \"labels\": %s for logits %s: want %d labels", labels, logits, n)
		}
		for i, c := range labels.I32 {
			if c < 0 || int(c) >= k {
				return nil, fmt.Errorf("input \"labels\": labels[%d] = %d is out of range [0, %d)", i, c, k)
			}
		}
		off, on := l.labelSmoothing/float64(k), 1-l.labelSmoothing+l.labelSmoothing/float64(k)
		targetRow = func(i int, t []float64) {
			for j := range t {
				t[j] = off
			}
			t[labels.I32[i]] = on
		}
	}

	// Row weights and the normaliser.
	var weights []float32
	den := float64(n)
	if _, ok := req.Inputs["weights"]; ok {
		w, err := input(req.Inputs, "weights", sdk.Float32, "float32 [N]", 1)
		if err != nil {
			return nil, err
		}
		if w.Shape[0] != n {
			return nil, fmt.Errorf("input \"weights\": %s for logits %s: want %d weights", w, logits, n)
		}
		if i := nonFinite(w.F32); i >= 0 {
			return nil, fmt.Errorf("input \"weights\": weights[%d] is %v", i, w.F32[i])
		}
		weights = w.F32
		var sum float64
		for _, v := range weights {
			sum += float64(v)
		}
		den = math.Max(sum, 1)
	}

	res := &sdk.LossResult{}
	var grad []float32
	if wantGrad {
		grad = make([]float32, n*k)
		res.Grads = map[string]*sdk.Tensor{"logits": sdk.NewFloat32(grad, n, k)}
	}
	if n == 0 {
		return res, nil // no rows: loss 0
	}
	z := make([]float64, k)
	t := make([]float64, k)
	var g []float64
	if wantGrad {
		g = make([]float64, k)
	}
	var total float64
	for i := range n {
		for j := range z {
			z[j] = float64(logits.F32[i*k+j])
		}
		targetRow(i, t)
		li := Row(z, t, l.gamma, g)
		w := 1.0
		if weights != nil {
			w = float64(weights[i])
		}
		total += w * li
		if grad != nil {
			for j, v := range g {
				grad[i*k+j] = float32(v * w / den)
			}
		}
	}
	res.Loss = total / den
	return res, nil
}

// Row returns the focal loss of one row of logits z with targets t and, when
// grad is not nil, writes dL/dz into it (len(z) elements).
func Row(z, t []float64, gamma float64, grad []float64) float64 {
	// Stable log-softmax: the largest logit contributes exactly 1 to the
	// sum, so log(sum) = log1p(rest) and 1-p of that class is rest/(1+rest)
	// without cancellation.
	m := 0
	for j := range z {
		if z[j] > z[m] {
			m = j
		}
	}
	var rest float64
	for j := range z {
		if j != m {
			rest += math.Exp(z[j] - z[m])
		}
	}
	logS := math.Log1p(rest)
	var loss, sumB float64
	for j := range z {
		logp := z[j] - z[m] - logS
		var b float64
		if gamma == 0 {
			loss -= t[j] * logp
			b = -t[j]
		} else if q := -math.Expm1(logp); q > 0 { // q = 1 - p_j, accurate as p_j -> 1
			qg := math.Pow(q, gamma)
			loss -= t[j] * qg * logp
			b = -t[j] * qg * (1 - gamma*math.Exp(logp)*logp/q)
		} // q == 0, gamma > 0: the term and its b are 0
		sumB += b
		if grad != nil {
			grad[j] = b
		}
	}
	if grad != nil {
		for j := range z {
			grad[j] -= math.Exp(z[j]-z[m]-logS) * sumB
		}
	}
	return loss
}

// input returns the named input checked for dtype and rank; what describes
// the expected tensor in errors.
func input(in map[string]*sdk.Tensor, name string, dtype sdk.DType, what string, rank int) (*sdk.Tensor, error) {
	x, ok := in[name]
	if !ok || x == nil {
		return nil, fmt.Errorf("missing input %q (%s)", name, what)
	}
	if x.DType != dtype || len(x.Shape) != rank {
		return nil, fmt.Errorf("input %q: got %s, want %s", name, x, what)
	}
	if err := x.Check(); err != nil {
		return nil, fmt.Errorf("input %q: %w", name, err)
	}
	return x, nil
}

// nonFinite is the index of the first NaN or infinite element, or -1.
func nonFinite(v []float32) int {
	for i, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return i
		}
	}
	return -1
}
