package optim

import (
	"math"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/cpu"
)

func TestScheduleValues(t *testing.T) {
	c := Cosine{CosineConfig{WarmupSteps: 10, MinFactor: 0.1}}
	for _, tc := range []struct {
		step, total int
		want        float64
	}{
		{0, 110, 0},
		{5, 110, 0.5},
		{10, 110, 1},
		{60, 110, 0.1 + 0.9*0.5},
		{110, 110, 0.1},
		{200, 110, 0.1},
	} {
		if got := c.Factor(tc.step, tc.total); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("cosine(%d/%d) = %v, want %v", tc.step, tc.total, got, tc.want)
		}
	}
	frac := Cosine{CosineConfig{WarmupFrac: 0.1}}
	if got := frac.Factor(5, 100); math.Abs(got-0.5) > 1e-12 {
		t.Errorf("warmup_frac: factor(5/100) = %v, want 0.5", got)
	}
	k := Constant{ConstantConfig{WarmupSteps: 4}}
	if k.Factor(2, 10) != 0.5 || k.Factor(4, 10) != 1 || k.Factor(9, 10) != 1 {
		t.Error("constant schedule values")
	}
}

// TestAdamWStep checks one AdamW step against hand-computed values: the first
// Adam step moves each weight by lr * sign(grad) (bias-corrected moments),
// plus lr * wd * w for decayed variables only; clipping scales the gradient
// stored in the first moment; grad_norm reports the unclipped norm.
func TestAdamWStep(t *testing.T) {
	backend, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	s := store.Scope("/model")
	w := s.VariableWithValue("w", [][]float32{{1, 2}, {3, 4}})      // rank 2: decayed
	b := s.VariableWithValue("b", []float32{1, -2})                 // rank 1: not decayed
	pe := s.VariableWithValue("pos_embed", [][]float32{{0.5, 0.5}}) // named in no_decay
	opt := &AdamW{Config: DefaultAdamW()}
	opt.Config.WeightDecay = 0.1
	opt.Config.ClipGrad = 1.0
	const lr = 0.01
	if err := SetLR(store, lr); err != nil {
		t.Fatal(err)
	}
	// loss = sum(3*w) + sum(-4*b) + sum(2*pe): grads 3, -4, 2 everywhere.
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, g *Graph) *Node {
		ss := scope.In("model")
		loss := Add(Add(
			ReduceAllSum(MulScalar(ss.GetVariable("w").NodeValue(g), 3)),
			ReduceAllSum(MulScalar(ss.GetVariable("b").NodeValue(g), -4))),
			ReduceAllSum(MulScalar(ss.GetVariable("pos_embed").NodeValue(g), 2)))
		opt.UpdateGraph(scope, g, loss)
		return loss
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.Exec(); err != nil {
		t.Fatal(err)
	}
	get := func(v *model.Variable) []float32 { return tensors.MustCopyFlatData[float32](v.MustValue()) }
	near := func(name string, got []float32, want []float64) {
		t.Helper()
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > 1e-5 {
				t.Errorf("%s = %v, want %v", name, got, want)
				return
			}
		}
	}
	near("w", get(w), []float64{1 - lr*(1+0.1*1), 2 - lr*(1+0.1*2), 3 - lr*(1+0.1*3), 4 - lr*(1+0.1*4)})
	near("b (no decay: rank 1)", get(b), []float64{1 + lr, -2 + lr})
	near("pos_embed (no decay: by name)", get(pe), []float64{0.5 - lr, 0.5 - lr})
	norm := math.Sqrt(4*9 + 2*16 + 2*4)
	if got := GradNorm(store); math.Abs(got-norm) > 1e-4 {
		t.Errorf("grad_norm = %v, want %v", got, norm)
	}
	m1 := store.GetVariable("/" + Scope + "/model/b_m1")
	if m1 == nil {
		t.Fatal("no first moment for b")
	}
	scale := 1.0 / (norm + 1e-6)
	near("b first moment (clipped grad)", get(m1), []float64{0.1 * -4 * scale, 0.1 * -4 * scale})
}

// TestAdamWGradientAccumulation checks that accum_steps 2 leaves the weights
// alone on the first batch and then takes the step one batch with the mean
// gradient would take.
func TestAdamWGradientAccumulation(t *testing.T) {
	backend, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	run := func(accum int, xs ...[]float32) []float32 {
		store := model.NewStore()
		w := store.Scope("/model").VariableWithValue("w", [][]float32{{1, 2}, {3, 4}})
		opt := &AdamW{Config: DefaultAdamW()}
		opt.Config.AccumSteps = accum
		opt.Config.ClipGrad = 0
		if err := SetLR(store, 0.1); err != nil {
			t.Fatal(err)
		}
		exec, err := model.NewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
			loss := ReduceAllSum(Mul(scope.In("model").GetVariable("w").NodeValue(x.Graph()), x))
			opt.UpdateGraph(scope, x.Graph(), loss)
			return loss
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			if _, err := exec.Exec(tensors.FromFlatDataAndDimensions(x, 2, 2)); err != nil {
				t.Fatal(err)
			}
		}
		return tensors.MustCopyFlatData[float32](w.MustValue())
	}
	x1 := []float32{1, -2, 0.5, 4}
	x2 := []float32{3, 2, -1.5, 0}
	mean := []float32{2, 0, -0.5, 2}
	if got := run(2, x1); got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 4 {
		t.Errorf("after one of two accumulated batches the weights moved: %v", got)
	}
	got, want := run(2, x1, x2), run(1, mean)
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("accumulated step %v, want the mean-gradient step %v", got, want)
		}
	}
}

// TestAdamWSkipsNonFiniteBatch checks that a batch whose loss (or gradient)
// is NaN or infinite changes no state, with and without accumulation, on
// GoMLX's Go backend and on peco's cpu backend: the batches around it train
// as if it had not been there, and Skipped counts it.
func TestAdamWSkipsNonFiniteBatch(t *testing.T) {
	goBackend, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	cpuBackend, err := cpu.New("")
	if err != nil {
		t.Fatal(err)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for name, backend := range map[string]compute.Backend{"go": goBackend, "cpu": cpuBackend} {
		for _, accum := range []int{1, 2} {
			run := func(xs ...[]float32) ([]float32, int64) {
				store := model.NewStore()
				w := store.Scope("/model").VariableWithValue("w", [][]float32{{1, 2}, {3, 4}})
				opt := &AdamW{Config: DefaultAdamW()}
				opt.Config.AccumSteps = accum
				if err := SetLR(store, 0.1); err != nil {
					t.Fatal(err)
				}
				exec, err := model.NewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
					loss := ReduceAllSum(Mul(scope.In("model").GetVariable("w").NodeValue(x.Graph()), x))
					opt.UpdateGraph(scope, x.Graph(), loss)
					return loss
				})
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range xs {
					if _, err := exec.Exec(tensors.FromFlatDataAndDimensions(x, 2, 2)); err != nil {
						t.Fatal(err)
					}
				}
				return tensors.MustCopyFlatData[float32](w.MustValue()), Skipped(store)
			}
			x1 := []float32{1, -2, 0.5, 4}
			x2 := []float32{3, 2, -1.5, 0}
			want, n := run(x1, x2)
			if n != 0 {
				t.Errorf("%s accum %d: %d batches skipped of finite ones", name, accum, n)
			}
			got, n := run(x1, []float32{nan, 1, 1, 1}, x2, []float32{1, inf, 1, 1})
			if n != 2 {
				t.Errorf("%s accum %d: Skipped = %d, want 2", name, accum, n)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s accum %d: weights %v after skipped batches, want %v", name, accum, got, want)
				}
			}
		}
	}
}
