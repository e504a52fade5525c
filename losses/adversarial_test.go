package losses

import (
	"math"
	"testing"

	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"
)

func TestHingeLosses(t *testing.T) {
	out := model.MustNewExec(gobackend.GetBackend(), model.NewStore(), func(scope *model.Scope, real, fake *Node) []*Node {
		return []*Node{HingeD(real, fake), HingeG(fake)}
	}).MustExec(tensors.FromFlatDataAndDimensions([]float32{2, 0.5, -1}, 3), tensors.FromFlatDataAndDimensions([]float32{-2, 0, 1.5}, 3))
	// D: real relu(1-[2, .5, -1]) = [0, .5, 2] mean 5/6; fake relu(1+[-2, 0, 1.5]) = [0, 1, 2.5] mean 7/6.
	wantD := 0.5 * (2.5/3 + 3.5/3)
	if got := float64(tensors.ToScalar[float32](out[0])); math.Abs(got-wantD) > 1e-6 {
		t.Errorf("HingeD = %v, want %v", got, wantD)
	}
	if got := float64(tensors.ToScalar[float32](out[1])); math.Abs(got-0.5/3) > 1e-6 { // -mean(-2, 0, 1.5)
		t.Errorf("HingeG = %v, want %v", got, 0.5/3)
	}
}

func TestAdaptiveWeight(t *testing.T) {
	// nll = sum(W*a), g = sum(W*b): the gradients are a and b.
	a := []float32{3, 4}     // norm 5
	b := []float32{0.6, 0.8} // norm 1
	out := model.MustNewExec(gobackend.GetBackend(), model.NewStore(), func(scope *model.Scope, av, bv *Node) *Node {
		w := scope.VariableWithValue("w", []float32{1, 1}).NodeValue(av.Graph())
		return AdaptiveWeight(ReduceAllSum(Mul(w, av)), ReduceAllSum(Mul(w, bv)), w)
	}).MustExec(tensors.FromFlatDataAndDimensions(a, 2), tensors.FromFlatDataAndDimensions(b, 2))
	if got, want := float64(tensors.ToScalar[float32](out[0])), 5/(1+1e-4); math.Abs(got-want) > 1e-4 {
		t.Errorf("adaptive weight %v, want %v", got, want)
	}
}

// TestAdversarialTerm checks the start step gate and where gradients go: the
// discriminator's weights get gradient only after the start step, and the
// "decoder" (a scale applied to the input) gets gradient through the held
// discriminator.
func TestAdversarialTerm(t *testing.T) {
	l := Adversarial{AdversarialConfig{Weight: 1, Width: 4, Layers: 1, Start: 5, LastLayer: "/dec/scale", Scope: "discriminator"}}
	run := func(step int64) (term float64, gScale, gDisc float64) {
		store := model.NewStore()
		store.SetParam(model.ParamInitialSeed, int64(3))
		if err := optimizer.GetGlobalStepVar(store).SetValue(tensors.FromScalar(step)); err != nil {
			t.Fatal(err)
		}
		scale := store.Scope("/dec").VariableWithValue("scale", float32(0.7))
		x := make([]float32, 2*8*8*3)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)))
		}
		out := model.MustNewExec(gobackend.GetBackend(), store, func(scope *model.Scope, img *Node) []*Node {
			g := img.Graph()
			rec := Mul(img, scale.NodeValue(g))
			v, err := l.Compute(scope, map[string]*Node{"input": img, "reconstruction": rec})
			if err != nil {
				panic(err)
			}
			dw := store.GetVariable("/discriminator/conv0/weight")
			grads := Gradient(v, scale.NodeValue(g), dw.NodeValue(g))
			return []*Node{v, grads[0], ReduceAllSum(Abs(grads[1]))}
		}).MustExec(tensors.FromFlatDataAndDimensions(x, 2, 8, 8, 3))
		return float64(tensors.ToScalar[float32](out[0])), float64(tensors.ToScalar[float32](out[1])), float64(tensors.ToScalar[float32](out[2]))
	}
	if v, gs, gd := run(2); v != 0 || gs != 0 || gd != 0 {
		t.Errorf("before the start step: term %v, grads %v %v; want all 0", v, gs, gd)
	}
	v, gs, gd := run(9)
	if v == 0 || gs == 0 || gd == 0 {
		t.Errorf("after the start step: term %v, decoder grad %v, discriminator grad %v; want all non-zero", v, gs, gd)
	}
}
