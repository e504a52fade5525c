package losses_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	_ "github.com/peco-dev/peco/builtin"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/registry"
)

// perceptual builds the registered perceptual loss from config parameters.
func perceptual(t *testing.T, params map[string]any) core.Loss {
	t.Helper()
	cfg, err := registry.DecodeComponent("loss", "perceptual", params)
	if err != nil {
		t.Fatal(err)
	}
	l, err := core.Losses.Build("perceptual", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// lossOf evaluates the loss on two image batches [n, s, s, c].
func lossOf(t *testing.T, l core.Loss, store *model.Store, x, y []float32, n, s, c int) float64 {
	t.Helper()
	out, err := model.NewExec(gobackend.GetBackend(), store, func(scope *model.Scope, a, b *Node) *Node {
		v, err := l.Compute(scope, map[string]*Node{"input": a, "reconstruction": b})
		if err != nil {
			panic(err)
		}
		return v
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := out.Exec(tensors.FromFlatDataAndDimensions(x, n, s, s, c), tensors.FromFlatDataAndDimensions(y, n, s, s, c))
	if err != nil {
		t.Fatal(err)
	}
	return float64(tensors.ToScalar[float32](res[0]))
}

func noisy(r *rand.Rand, x []float32, sigma float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = v + float32(sigma*r.NormFloat64())
	}
	return out
}

// TestPerceptualFromCheckpoint uses a ViT trained by another run (here: a
// checkpoint holding /backbone weights) as the perceptual network.
func TestPerceptualFromCheckpoint(t *testing.T) {
	vitParams := map[string]any{"type": "vit", "preset": "", "image_size": 16, "patch_size": 4, "dim": 16, "depth": 2, "heads": 2}
	// A "trained" backbone: initialise it in its own store and save it under /backbone.
	spec := registry.Spec[core.Backbone]{}
	{
		cfg, err := registry.DecodeComponent("backbone", "vit", map[string]any{"preset": "", "image_size": 16, "patch_size": 4, "dim": 16, "depth": 2, "heads": 2})
		if err != nil {
			t.Fatal(err)
		}
		spec = registry.Spec[core.Backbone]{Type: "vit", Config: cfg}
	}
	bb, err := spec.Build()
	if err != nil {
		t.Fatal(err)
	}
	src := model.NewStore()
	src.SetParam(model.ParamInitialSeed, int64(77))
	model.MustNewExec(gobackend.GetBackend(), src, func(scope *model.Scope, x *Node) *Node {
		return bb.Forward(scope.In("backbone"), x, core.ForwardOptions{}).Tokens
	}).MustExec(tensors.FromShape(tensors.FromFlatDataAndDimensions(make([]float32, 16*16*3), 1, 16, 16, 3).Shape()))
	dir := filepath.Join(t.TempDir(), "run", core.CheckpointsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Dir(dir)
	if err := os.WriteFile(filepath.Join(runDir, core.ConfigFile), []byte("task: {type: classification}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ckpt.Save(filepath.Join(dir, "last.ckpt"), src, 1, nil); err != nil {
		t.Fatal(err)
	}

	l := perceptual(t, map[string]any{"network": vitParams, "layers": []any{0, 1}, "from": runDir, "input_norm": "half", "network_norm": "half"})
	store := model.NewStore()
	r := rand.New(rand.NewPCG(1, 2))
	x := noisy(r, make([]float32, 2*16*16*3), 0.5)
	if got := lossOf(t, l, store, x, x, 2, 16, 3); math.Abs(got) > 1e-9 {
		t.Errorf("identical images: loss %v, want 0", got)
	}
	if got := lossOf(t, l, store, x, noisy(r, x, 0.3), 2, 16, 3); got <= 0 {
		t.Errorf("noisy reconstruction: loss %v, want > 0", got)
	}
	want := tensors.MustCopyFlatData[float32](src.GetVariable("/backbone/patch_embed/weight").MustValue())
	v := store.GetVariable("/perceptual/patch_embed/weight")
	if v == nil {
		t.Fatal("no /perceptual/patch_embed/weight")
	}
	got := tensors.MustCopyFlatData[float32](v.MustValue())
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("the perceptual network's weights are not the checkpoint's (index %d: %v vs %v)", i, got[i], want[i])
		}
	}
	if v.Trainable {
		t.Error("the loaded perceptual network is trainable")
	}
	// A run without the network's scope is refused, naming it.
	empty := model.NewStore()
	empty.Scope("/tokenizer").VariableWithValue("w", []float32{1})
	if err := ckpt.Save(filepath.Join(dir, "last.ckpt"), empty, 1, nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := registry.DecodeComponent("loss", "perceptual", map[string]any{"network": vitParams, "from": runDir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Losses.Build("perceptual", cfg); err == nil || !strings.Contains(err.Error(), "/backbone") {
		t.Errorf("a run without the network's scope: %v", err)
	}
}

// TestPerceptualRandomWeightsRefused: a network without trained weights is
// an error unless the config says random_weights: true; the old keys say
// what to write instead.
func TestPerceptualRandomWeightsRefused(t *testing.T) {
	vitParams := map[string]any{"type": "vit", "preset": "", "image_size": 16, "patch_size": 4, "dim": 16, "depth": 2, "heads": 2}
	cfg, err := registry.DecodeComponent("loss", "perceptual", map[string]any{"network": vitParams})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Losses.Build("perceptual", cfg); err == nil || !strings.Contains(err.Error(), "random_weights") {
		t.Errorf("a random-weight network: %v, want an error naming random_weights", err)
	}
	cfg, err = registry.DecodeComponent("loss", "perceptual", map[string]any{"network": vitParams, "random_weights": true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Losses.Build("perceptual", cfg); err != nil {
		t.Errorf("random_weights: true: %v", err)
	}
	for _, old := range []string{"checkpoint", "checkpoint_scope"} {
		_, err := registry.DecodeComponent("loss", "perceptual", map[string]any{"network": vitParams, old: "runs/x"})
		if err == nil || !strings.Contains(err.Error(), "from: RUN") {
			t.Errorf("retired key %s: %v, want a message naming from: RUN", old, err)
		}
	}
}

// TestPerceptualThroughMobileNet checks PeCo's loss through the ImageNet
// MobileNet V2: zero for identical images, growing with the noise of the
// reconstruction.
func TestPerceptualThroughMobileNet(t *testing.T) {
	weights, err := filepath.Abs("../../shared/weights/mobilenet-tflite/mobilenet_v2_1.0_224_quant.tflite")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(weights); err != nil {
		t.Skipf("MobileNet weights not available (%v): skipping", err)
	}
	l := perceptual(t, map[string]any{
		"network":    map[string]any{"type": "mobilenet_v2", "weights": weights, "image_size": 32},
		"layers":     []any{0, 1, 2, 3},
		"input_norm": "half", "network_norm": "half",
	})
	store := model.NewStore()
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 2*32*32*3)
	for i := range x { // a smooth pattern plus texture
		x[i] = float32(0.5*math.Sin(float64(i%96)/7) + 0.2*r.NormFloat64())
	}
	if got := lossOf(t, l, store, x, x, 2, 32, 3); math.Abs(got) > 1e-9 {
		t.Errorf("identical images: loss %v, want 0", got)
	}
	prev := 0.0
	for _, sigma := range []float64{0.05, 0.15, 0.4} {
		got := lossOf(t, l, store, x, noisy(rand.New(rand.NewPCG(5, 6)), x, sigma), 2, 32, 3)
		if got <= prev {
			t.Errorf("noise %.2f: loss %v, not above %v", sigma, got, prev)
		}
		prev = got
	}
}
