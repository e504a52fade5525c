package vit

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
)

// The layout-optimised float32 paths (attentionCore, linear, the primitive
// GELU and LayerNorm used in training) must compute the same values and the
// same gradients as the plain graphs they replace.

func TestAttentionCoreMatchesPlain(t *testing.T) {
	for _, withBias := range []bool{false, true} {
		const b, tt, heads, hd = 2, 5, 2, 4
		r := rand.New(rand.NewPCG(21, 22))
		qkvT, _ := randTensor(r, b, tt, 3*heads*hd)
		biasT, _ := randTensor(r, heads, tt, tt)
		adjT, _ := randTensor(r, b, tt, heads*hd)
		build := func(fast bool) func(_ *model.Scope, qkv, bias, adj *Node) []*Node {
			return func(_ *model.Scope, qkv, bias, adj *Node) []*Node {
				if !withBias {
					bias = nil
				}
				var out *Node
				if fast {
					x := TransposeAllAxes(Reshape(qkv, b, tt, 3, heads, hd), 2, 0, 3, 1, 4)
					out = attentionCore(Reshape(x, 3, b*heads, tt, hd), bias, b, heads, 1/math.Sqrt(hd))
					out = TransposeAllAxes(Reshape(out, b, heads, tt, hd), 0, 2, 1, 3)
				} else {
					out = attentionPlain(qkv, bias, b, tt, heads, hd, qkv.DType())
				}
				out = Reshape(out, b, tt, heads*hd)
				loss := ReduceAllSum(Mul(out, adj))
				grads := []*Node{out}
				inputs := []*Node{qkv}
				if bias != nil {
					inputs = append(inputs, bias)
				}
				return append(grads, Gradient(loss, inputs...)...)
			}
		}
		want := model.MustNewExec(backend(t), model.NewStore(), build(false)).MustCall(qkvT, biasT, adjT)
		got := model.MustNewExec(backend(t), model.NewStore(), build(true)).MustCall(qkvT, biasT, adjT)
		names := []string{"output", "d qkv", "d bias"}
		for i := range want {
			assertClose(t, names[i], flat(t, got[i]), flat(t, want[i]), 1e-4)
		}
	}
}

func TestLinearMatchesDotGeneral(t *testing.T) {
	for _, dims := range [][3]int{{6, 3, 5}, {6, 5, 3}} { // in < out and in > out take different dW paths
		rows, in, out := dims[0], dims[1], dims[2]
		r := rand.New(rand.NewPCG(23, 24))
		xT, _ := randTensor(r, 2, rows/2, in)
		wT, _ := randTensor(r, in, out)
		adjT, _ := randTensor(r, 2, rows/2, out)
		build := func(fast bool) func(_ *model.Scope, x, w, adj *Node) []*Node {
			return func(_ *model.Scope, x, w, adj *Node) []*Node {
				var y *Node
				if fast {
					y = linear(x, w)
				} else {
					y = DotGeneral(x, []int{2}, nil, w, []int{0}, nil)
				}
				return append([]*Node{y}, Gradient(ReduceAllSum(Mul(y, adj)), x, w)...)
			}
		}
		want := model.MustNewExec(backend(t), model.NewStore(), build(false)).MustCall(xT, wT, adjT)
		got := model.MustNewExec(backend(t), model.NewStore(), build(true)).MustCall(xT, wT, adjT)
		for i, name := range []string{"y", "dx", "dw"} {
			assertClose(t, name, flat(t, got[i]), flat(t, want[i]), 1e-5)
		}
	}
}

func TestTrainingGeluAndLayerNormMatchLibrary(t *testing.T) {
	m := newViT(t, tinyConfig())
	r := rand.New(rand.NewPCG(25, 26))
	xT, _ := randTensor(r, 3, 4, m.Dim())
	build := func(training bool) func(scope *model.Scope, x *Node) []*Node {
		return func(scope *model.Scope, x *Node) []*Node {
			var ln, gelu *Node
			if training {
				ln = m.layerNormTrain(scope.At("norm"), x, true)
				gelu = Mul(x, MulScalar(AddScalar(Erf(MulScalar(x, 1/math.Sqrt2)), 1), 0.5))
			} else {
				ln = m.layerNorm(scope.At("norm"), x)
				gelu = activation.Gelu(x)
			}
			loss := Add(ReduceAllSum(Square(ln)), ReduceAllSum(Mul(gelu, x)))
			return []*Node{ln, gelu, Gradient(loss, x)[0]}
		}
	}
	want := model.MustNewExec(backend(t), newStore(t, 1), build(false)).MustCall(xT)
	got := model.MustNewExec(backend(t), newStore(t, 1), build(true)).MustCall(xT)
	for i, name := range []string{"layer norm", "gelu", "d x"} {
		assertClose(t, name, flat(t, got[i]), flat(t, want[i]), 1e-4)
	}
}

// TestTrainingForwardMatchesInference checks the whole backbone: with drop
// path off, Forward with Training (primitive GELU and LayerNorm) gives the
// same tokens as Forward without it (the library's fused ops).
func TestTrainingForwardMatchesInference(t *testing.T) {
	c := tinyConfig()
	c.RelPosBias = RelPosShared
	m := newViT(t, c)
	store := newStore(t, 3)
	r := rand.New(rand.NewPCG(27, 28))
	imgT, _ := randTensor(r, 2, c.ImageSize, c.ImageSize, 3)
	var outs [2][]*tensors.Tensor
	for i, training := range []bool{false, true} {
		outs[i] = model.MustNewExec(backend(t), store, func(scope *model.Scope, images *Node) *Node {
			return m.Forward(scope, images, core.ForwardOptions{Training: training}).Tokens
		}).MustCall(imgT)
	}
	assertClose(t, "tokens", flat(t, outs[1][0]), flat(t, outs[0][0]), 1e-4)
}

// TestPackedAttentionChoice: the hand-written-gradient layout is taken when
// the config asks for it, in float32 only; the backend is never consulted.
func TestPackedAttentionChoice(t *testing.T) {
	for _, c := range []struct {
		packed bool
		dtype  string
		want   bool
	}{
		{true, "float32", true},
		{true, "bfloat16", false},
		{false, "float32", false},
	} {
		cfg := DefaultConfig()
		cfg.PackedAttention, cfg.DType = c.packed, c.dtype
		m, err := NewViT(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.packed(); got != c.want {
			t.Errorf("packed_attention %v, dtype %s: packed() = %v, want %v", c.packed, c.dtype, got, c.want)
		}
	}
}
