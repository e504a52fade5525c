package losses_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/losses"
	"github.com/peco-dev/peco/plugins/examples/focal-loss/focal"
	"github.com/peco-dev/peco/plugins/sdk"
)

func TestZZCross(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	n, k := 64, 100
	z := make([]float32, n*k)
	for i := range z { z[i] = float32(3 * r.NormFloat64()) }
	lb := make([]int32, n)
	w := make([]float32, n)
	for i := range lb { lb[i] = int32(r.IntN(k)); w[i] = float32(r.IntN(2)) }
	for _, g := range []float64{0, 0.5, 2, 5} {
		pl := &focal.Loss{}
		if err := pl.Configure(sdk.Config{"gamma": g, "label_smoothing": 0.1}, 0); err != nil { t.Fatal(err) }
		res, err := pl.Compute(context.Background(), &sdk.LossRequest{Inputs: map[string]*sdk.Tensor{"logits": sdk.NewFloat32(z, n, k), "labels": sdk.NewInt32(lb, n), "weights": sdk.NewFloat32(w, n)}, GradFor: []string{"logits"}})
		if err != nil { t.Fatal(err) }
		bl := losses.Focal{Config: losses.FocalConfig{Weight: 1, Gamma: g, LabelSmoothing: 0.1}}
		exec, _ := NewExec(gobackend.GetBackend(), func(a, b, c *Node) (*Node, *Node) {
			l, _ := bl.Compute(nil, map[string]*Node{"logits": a, "labels": b, "weights": c})
			return l, Gradient(l, a)[0]
		})
		out, err := exec.Exec(tensors.FromFlatDataAndDimensions(z, n, k), tensors.FromFlatDataAndDimensions(lb, n), tensors.FromFlatDataAndDimensions(w, n))
		if err != nil { t.Fatal(err) }
		l := float64(tensors.ToScalar[float32](out[0]))
		gr := tensors.MustCopyFlatData[float32](out[1])
		var md float64
		for i := range gr { md = math.Max(md, math.Abs(float64(gr[i]-res.Grads["logits"].F32[i]))) }
		t.Logf("gamma %v: builtin %v plugin %v maxgraddiff %g", g, l, res.Loss, md)
	}
}
