package cpu_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"

	"github.com/peco-dev/peco/backbones/vit"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/losses"
	"github.com/peco-dev/peco/optim"
)

// mimLosses trains a small BEiT-style ViT (relative position bias, LayerScale,
// drop path, masked-token head) for a few AdamW steps on backend and returns
// the loss of each step. Initialisation and drop-path masks come from the
// graph's random generator, which the cpu backend draws exactly as GoMLX's
// pure-Go backend does, so both backends run the same training.
func mimLosses(t *testing.T, backend compute.Backend, steps int) []float64 {
	t.Helper()
	const batch, image, patch, vocab = 4, 16, 4, 32
	m, err := vit.NewViT(vit.Config{
		ImageSize: image, PatchSize: patch, InChannels: 3, Dim: 32, Depth: 2, Heads: 2, MLPRatio: 4,
		QKVBias: true, UseCLS: true, AbsPosEmb: false, RelPosBias: vit.RelPosShared, LayerScale: 0.1,
		DropPath: 0.1, LayerNormEps: 1e-6, InitStd: 0.02, DType: "float32",
	})
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, int64(3))
	opt := &optim.AdamW{Config: optim.DefaultAdamW()}
	if err := optim.SetLR(store, 1e-3); err != nil {
		t.Fatal(err)
	}
	ce := losses.CrossEntropy{Config: losses.CrossEntropyConfig{Weight: 1}}
	np := (image / patch) * (image / patch)
	trainer := train.NewTrainer(backend, store,
		func(scope *model.Scope, spec any, in []*Node) []*Node {
			images, mask := in[0], in[1]
			f := m.Forward(scope.In("backbone"), images, core.ForwardOptions{Mask: mask, Training: true})
			patches := Slice(f.Tokens, AxisRange(), AxisRange(1), AxisRange())
			w := scope.In("head").VariableWithShape("weight", shapes.Make(dtypes.Float32, 32, vocab)).NodeValue(images.Graph())
			return []*Node{Reshape(Einsum("bpd,dv->bpv", patches, w), batch*np, vocab)}
		},
		func(labels, preds []*Node) *Node {
			l, err := ce.Compute(nil, map[string]*Node{"logits": preds[0], "labels": labels[0]})
			if err != nil {
				panic(err)
			}
			return l
		}, opt, nil, nil)
	r := rand.New(rand.NewPCG(7, 8))
	var out []float64
	for range steps {
		pix := make([]float32, batch*image*image*3)
		for i := range pix {
			pix[i] = float32(r.NormFloat64())
		}
		mask := make([]bool, batch*np)
		for i := range mask {
			mask[i] = r.IntN(3) == 0
		}
		targets := make([]int32, batch*np)
		for i := range targets {
			targets[i] = int32(r.IntN(vocab))
		}
		metrics, err := trainer.TrainStep(train.Batch{
			Inputs: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(pix, batch, image, image, 3),
				tensors.FromFlatDataAndDimensions(mask, batch, np)},
			Labels: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(targets, batch*np)},
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, float64(tensors.ToScalar[float32](metrics[0])))
	}
	return out
}

func TestTrainingMatchesGoBackend(t *testing.T) {
	ref, ours := backends(t)
	want := mimLosses(t, ref, 4)
	got := mimLosses(t, ours, 4)
	for i := range want {
		if math.IsNaN(got[i]) || math.Abs(got[i]-want[i]) > 1e-4*(1+math.Abs(want[i])) {
			t.Fatalf("step %d loss %.6f on cpu, %.6f on go (all: %v vs %v)", i, got[i], want[i], got, want)
		}
	}
	if want[len(want)-1] >= want[0] {
		t.Errorf("loss did not fall: %v", want)
	}
	t.Logf("losses: go %v, cpu %v", want, got)
}
