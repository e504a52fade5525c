package conv

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/cpu"
)

func cpuBackend(t *testing.T) *cpu.Backend {
	t.Helper()
	b, err := cpu.New("")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randTensor(r *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

func closeTo(t *testing.T, what string, want, got *tensors.Tensor, tol float64) {
	t.Helper()
	if !want.Shape().Equal(got.Shape()) {
		t.Fatalf("%s: shape %s, want %s", what, got.Shape(), want.Shape())
	}
	w, g := tensors.MustCopyFlatData[float32](want), tensors.MustCopyFlatData[float32](got)
	for i := range w {
		if d := math.Abs(float64(w[i] - g[i])); !(d <= tol*(1+math.Abs(float64(w[i])))) {
			t.Fatalf("%s: element %d: got %v, want %v", what, i, g[i], w[i])
		}
	}
}

// TestDirectConvMatchesIm2Col runs both forms of the convolution on the cpu
// backend: same outputs, same gradients for the input and the weight.
func TestDirectConvMatchesIm2Col(t *testing.T) {
	b := cpuBackend(t)
	if !NativeConv(NewGraph(b, "probe")) || NativeConv(NewGraph(gobackend.GetBackend(), "probe")) {
		t.Fatal("NativeConv: want true on the cpu backend (core.ConvolutionAdvisor) only")
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		name                        string
		b, h, w, cin, cout, k, s, p int
	}{
		{"3x3 stride1 pad1", 2, 8, 7, 5, 6, 3, 1, 1},
		{"3x3 stride2 pad1", 2, 8, 8, 4, 6, 3, 2, 1},
		{"3x3 stride2 pad1 odd", 1, 7, 9, 3, 4, 3, 2, 1},
		{"4x4 stride2 pad1", 2, 8, 8, 3, 5, 4, 2, 1},
		{"4x4 stride1 pad1", 1, 6, 6, 4, 1, 4, 1, 1},
		{"1x1 stride2", 2, 6, 6, 4, 3, 1, 2, 0},
		{"5x5 stride1 pad2", 1, 6, 6, 2, 3, 5, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := randTensor(r, tc.b, tc.h, tc.w, tc.cin)
			wt := randTensor(r, tc.k*tc.k*tc.cin, tc.cout)
			ho, wo := (tc.h+2*tc.p-tc.k)/tc.s+1, (tc.w+2*tc.p-tc.k)/tc.s+1
			v := randTensor(r, tc.b, ho, wo, tc.cout)
			outs := MustNewExec(b, func(x, w, v *Node) []*Node {
				a := Im2ColConv(x, w, tc.k, tc.s, tc.p)
				d := ConvWithWeight(x, w, tc.k, tc.s, tc.p)
				ga := Gradient(ReduceAllSum(Mul(a, v)), x, w)
				gd := Gradient(ReduceAllSum(Mul(d, v)), x, w)
				return []*Node{a, d, ga[0], gd[0], ga[1], gd[1]}
			}).MustExec(x, wt, v)
			closeTo(t, "output", outs[0], outs[1], 1e-4)
			closeTo(t, "grad x", outs[2], outs[3], 1e-4)
			closeTo(t, "grad weight", outs[4], outs[5], 1e-4)
		})
	}
}

// TestEncoderDecoderNativeMatchesIm2Col builds the encoder and decoder
// twice from the same seed, with ConvGeneral (the cpu backend) and with
// im2col (GoMLX's pure-Go backend, which draws the same random numbers):
// the same outputs and gradients.
func TestEncoderDecoderNativeMatchesIm2Col(t *testing.T) {
	cfg := Config{Width: 8, Mults: []int{1, 2}, Blocks: 1, Attention: true, Groups: 4}
	x := randTensor(rand.New(rand.NewPCG(9, 10)), 2, 16, 16, 3)
	run := func(im2col bool) []*tensors.Tensor {
		var backend compute.Backend = cpuBackend(t)
		if im2col {
			backend = gobackend.GetBackend()
		}
		store := model.NewStore()
		if err := store.SetRNGStateFromSeed(42); err != nil {
			t.Fatal(err)
		}
		return model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) []*Node {
			z := Encoder(scope.In("enc"), x, cfg, 5)
			y := Decoder(scope.In("dec"), z, cfg, 3)
			loss := ReduceAllMean(Square(Sub(y, x)))
			g := Gradient(loss, x, z)
			return []*Node{z, y, g[0], g[1]}
		}).MustExec(localClone(t, x))
	}
	want, got := run(true), run(false)
	for i, name := range []string{"z", "reconstruction", "grad x", "grad z"} {
		closeTo(t, name, want[i], got[i], 1e-4)
	}
}

func localClone(t *testing.T, x *tensors.Tensor) *tensors.Tensor {
	t.Helper()
	c, err := x.LocalClone()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
