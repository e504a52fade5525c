package losses

import (
	"math"
	"testing"

	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/data"
)

// evalLoss computes a loss on named float32 tensors given as flat data and
// dimensions.
func evalLoss(t *testing.T, l core.Loss, in map[string]*tensors.Tensor) float64 {
	t.Helper()
	var names []string
	var args []any
	for k, v := range in {
		names = append(names, k)
		args = append(args, v)
	}
	out, err := model.NewExec(gobackend.GetBackend(), model.NewStore(), func(scope *model.Scope, xs []*Node) *Node {
		m := map[string]*Node{}
		for i, n := range names {
			m[n] = xs[i]
		}
		v, err := l.Compute(scope, m)
		if err != nil {
			panic(err)
		}
		return v
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := out.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return float64(tensors.ToScalar[float32](res[0]))
}

func vec(v ...float32) *tensors.Tensor { return tensors.FromFlatDataAndDimensions(v, len(v)) }

func TestReconstructionLosses(t *testing.T) {
	x := vec(0, 1, -1, 0.5)
	y := vec(1, 1, 1, 0)
	// |d| = 1, 0, 2, 0.5; d^2 = 1, 0, 4, 0.25.
	for _, tc := range []struct {
		name string
		loss core.Loss
		want float64
	}{
		{"l1", L1{PixelConfig{Weight: 1}}, 3.5 / 4},
		{"l2", L2{PixelConfig{Weight: 1}}, 5.25 / 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := evalLoss(t, tc.loss, map[string]*tensors.Tensor{"input": x, "reconstruction": y})
			if math.Abs(got-tc.want) > 1e-6 {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLogitLaplace(t *testing.T) {
	const eps = 0.1
	in := []float32{-1, 0, 1}   // half range -> 0, 0.5, 1
	mu := []float32{0, 0.3, -1} // logit space
	logB := []float32{0, -0.5, 0.7}
	var want float64
	for i := range in {
		x := (float64(in[i]) + 1) / 2
		x = (1-2*eps)*x + eps
		b := math.Exp(float64(logB[i]))
		logit := math.Log(x / (1 - x))
		// -log f = log(2 b x (1-x)) + |logit - mu| / b
		want += math.Log(2*b*x*(1-x)) + math.Abs(logit-float64(mu[i]))/b
	}
	want /= 3
	got := evalLoss(t, LogitLaplace{LogitLaplaceConfig{Weight: 1, Eps: eps, InputRange: "half"}},
		map[string]*tensors.Tensor{"input": vec(in...), "mu": vec(mu...), "log_b": vec(logB...)})
	if math.Abs(got-want) > 1e-5 {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestVQValueAndBeta(t *testing.T) {
	z := vec(1, 2, 3, 4)
	zq := vec(1.5, 2, 2, 4)
	mse := (0.25 + 0 + 1 + 0) / 4
	for _, tc := range []struct {
		name string
		beta float64
		ema  bool
		want float64
	}{
		{"beta 0.25", 0.25, false, mse * 1.25},
		{"beta 1", 1, false, mse * 2},
		{"ema drops the codebook term", 0.25, true, mse * 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]*tensors.Tensor{"z": z, "z_q": zq}
			if tc.ema {
				in["codebook_ema"] = vec(1)
			}
			got := evalLoss(t, VQ{VQConfig{Weight: 1, Beta: tc.beta}}, in)
			if math.Abs(got-tc.want) > 1e-6 {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestVQBetaScalesCommitmentOnly checks the gradients: d/dz is beta * 2(z -
// z_q)/n (the commitment term), d/dz_q is 2(z_q - z)/n (the codebook term,
// independent of beta), so beta is on the commitment term.
func TestVQBetaScalesCommitmentOnly(t *testing.T) {
	zv := []float32{1, 2, 3, 4}
	zqv := []float32{1.5, 2, 2, 4}
	for _, beta := range []float64{0.25, 2} {
		outs := model.MustNewExec(gobackend.GetBackend(), model.NewStore(), func(_ *model.Scope, z, zq *Node) []*Node {
			l, err := VQ{VQConfig{Weight: 1, Beta: beta}}.Compute(nil, map[string]*Node{"z": z, "z_q": zq})
			if err != nil {
				panic(err)
			}
			return Gradient(l, z, zq)
		}).MustExec(vec(zv...), vec(zqv...))
		gz := tensors.MustCopyFlatData[float32](outs[0])
		gq := tensors.MustCopyFlatData[float32](outs[1])
		for i := range zv {
			wantZ := beta * 2 * float64(zv[i]-zqv[i]) / 4
			wantQ := 2 * float64(zqv[i]-zv[i]) / 4
			if math.Abs(float64(gz[i])-wantZ) > 1e-6 || math.Abs(float64(gq[i])-wantQ) > 1e-6 {
				t.Errorf("beta %v element %d: dL/dz %v (want %v), dL/dz_q %v (want %v)", beta, i, gz[i], wantZ, gq[i], wantQ)
			}
		}
	}
}

func TestKLUniform(t *testing.T) {
	logits := [][]float64{{0, 0, 0}, {1, 2, 3}}
	var want float64
	for _, row := range logits {
		var z float64
		for _, v := range row {
			z += math.Exp(v)
		}
		for _, v := range row {
			q := math.Exp(v) / z
			want += q * math.Log(q*3)
		}
	}
	want /= 2
	flat := tensors.FromFlatDataAndDimensions([]float32{0, 0, 0, 1, 2, 3}, 2, 3)
	l := KLUniform{KLUniformConfig{Weight: 1}}
	if got := evalLoss(t, l, map[string]*tensors.Tensor{"logits": flat}); math.Abs(got-want) > 1e-5 {
		t.Errorf("got %v, want %v", got, want)
	}
	flat = tensors.FromFlatDataAndDimensions([]float32{0, 0, 0, 1, 2, 3}, 2, 3)
	if got := evalLoss(t, l, map[string]*tensors.Tensor{"logits": flat, "kl_ramp": tensors.FromScalar(float32(0.5))}); math.Abs(got-want/2) > 1e-5 {
		t.Errorf("with kl_ramp 0.5: got %v, want %v", got, want/2)
	}
}

// linearNet is a test backbone: per-pixel features x @ W (W fixed at 1..C*D
// scaled), two "layers": the features and their squares.
type linearNet struct{ dim int }

func (n linearNet) Dim() int { return n.dim }
func (n linearNet) Forward(scope *model.Scope, images *Node, _ core.ForwardOptions) core.Features {
	d := images.Shape().Dimensions
	c := d[3]
	vals := make([]float32, c*n.dim)
	for i := range vals {
		vals[i] = float32(i+1) / 10
	}
	w := scope.VariableWithValue("w", tensors.FromFlatDataAndDimensions(vals, c, n.dim)).NodeValue(images.Graph())
	f := MatMul(Reshape(images, d[0], d[1]*d[2], c), w)
	return core.Features{Tokens: f, Layers: []*Node{f, Square(f)}}
}

func TestPerceptual(t *testing.T) {
	from, _ := data.NewNormalizer("half")
	to, _ := data.NewNormalizer("none")
	cfg := PerceptualConfig{Weight: 1, Layers: []int{0, -1}, LayerWeights: []float64{1, 0.5}, Scope: "perceptual"}
	l := &Perceptual{Config: cfg, network: linearNet{dim: 2}, from: from, to: to}
	// One image 1x2 pixels, 1 channel: x = [-1, 1] (half) -> [0, 1]; y = [0, 0] -> [0.5, 0.5].
	// W = [0.1, 0.2]: f(x) = [[0, 0], [0.1, 0.2]], f(y) = [[0.05, 0.1], [0.05, 0.1]].
	fx := [][2]float64{{0, 0}, {0.1, 0.2}}
	fy := [][2]float64{{0.05, 0.1}, {0.05, 0.1}}
	var l0, l1 float64
	for p := range 2 {
		for k := range 2 {
			l0 += math.Pow(fx[p][k]-fy[p][k], 2)
			l1 += math.Pow(fx[p][k]*fx[p][k]-fy[p][k]*fy[p][k], 2)
		}
	}
	want := l0/4 + 0.5*l1/4
	store := model.NewStore()
	outs := model.MustNewExec(gobackend.GetBackend(), store, func(scope *model.Scope, x, y *Node) []*Node {
		v, err := l.Compute(scope, map[string]*Node{"input": x, "reconstruction": y})
		if err != nil {
			panic(err)
		}
		return []*Node{v, Gradient(v, y)[0]}
	}).MustExec(tensors.FromFlatDataAndDimensions([]float32{-1, 1}, 1, 1, 2, 1),
		tensors.FromFlatDataAndDimensions([]float32{0, 0}, 1, 1, 2, 1))
	if got := float64(tensors.ToScalar[float32](outs[0])); math.Abs(got-want) > 1e-6 {
		t.Errorf("value %v, want %v", got, want)
	}
	g := tensors.MustCopyFlatData[float32](outs[1])
	if g[0] == 0 || g[1] == 0 {
		t.Errorf("gradient wrt the reconstruction %v: want non-zero", g)
	}
	v := store.GetVariable("/perceptual/w")
	if v == nil {
		t.Fatal("the network's variable is not under /perceptual")
	}
	if v.Trainable {
		t.Error("the perceptual network's variable is trainable")
	}
}
