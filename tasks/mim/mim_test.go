package mim

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"

	"github.com/peco-dev/peco/backbones/vit"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/core/run/runtest"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/losses"
	"github.com/peco-dev/peco/optim"
	"github.com/peco-dev/peco/registry"
	"github.com/peco-dev/peco/targets"
)

// idTokenizer reads token ids from channel 0 of its view [B, h, w, C]: the
// tests set targets directly.
type idTokenizer struct{ vocab int }

func (t idTokenizer) VocabSize() int { return t.vocab }
func (t idTokenizer) Encode(_ *model.Scope, v *Node) *Node {
	return ConvertDType(Squeeze(Slice(v, AxisRange(), AxisRange(), AxisRange(), AxisElem(0)), -1), dtypes.Int32)
}
func (t idTokenizer) Decode(_ *model.Scope, ids *Node) *Node { return ids }

// randTokenizer is a tiny randomly initialised tokenizer: the token of a
// p x p patch is the argmax of a random projection of its pixels.
type randTokenizer struct{ vocab, patch int }

func (t randTokenizer) VocabSize() int { return t.vocab }
func (t randTokenizer) Encode(scope *model.Scope, v *Node) *Node {
	b, h, w, c := v.Shape().Dim(0), v.Shape().Dim(1), v.Shape().Dim(2), v.Shape().Dim(3)
	p := t.patch
	x := Reshape(v, b, h/p, p, w/p, p, c)
	x = Reshape(TransposeAllAxes(x, 0, 1, 3, 2, 4, 5), b, h/p, w/p, p*p*c)
	proj := scope.WithInitializer(initializer.RandomNormalFn(scope, 1)).
		VariableWithShape("proj", shapes.Make(dtypes.Float32, p*p*c, t.vocab)).NodeValue(v.Graph())
	return ArgMax(Einsum("bhwd,dk->bhwk", x, proj), -1, dtypes.Int32)
}
func (t randTokenizer) Decode(_ *model.Scope, ids *Node) *Node { return ids }

type randTokenizerConfig struct {
	Vocab int `mapstructure:"vocab"`
	Patch int `mapstructure:"patch"`
}

// idTarget is the tokens target of idTokenizer (vocabulary 7).
func idTarget(t *testing.T) core.Target {
	t.Helper()
	tg, err := targets.NewTokens(targets.TokensConfig{Tokenizer: registry.Spec[core.Tokenizer]{Type: "mim_test_ids", Config: &struct{}{}}})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func init() {
	registry.Register(core.Tokenizers, "mim_test_ids", "test only: token ids read from channel 0",
		func() struct{} { return struct{}{} },
		func(struct{}) (core.Tokenizer, error) { return idTokenizer{vocab: 7}, nil })
	registry.Register(core.Tokenizers, "mim_test_random", "test only: random-projection tokens",
		func() randTokenizerConfig { return randTokenizerConfig{Vocab: 16, Patch: 4} },
		func(c randTokenizerConfig) (core.Tokenizer, error) { return randTokenizer{c.Vocab, c.Patch}, nil })
}

func backend(t *testing.T) compute.Backend {
	t.Helper()
	b, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tinyViT(t *testing.T, depth int) *vit.ViT {
	t.Helper()
	c := vit.DefaultConfig()
	c.Preset, c.ImageSize, c.PatchSize, c.InChannels, c.Dim, c.Depth, c.Heads = "", 8, 2, 1, 8, depth, 2
	v, err := vit.NewViT(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// batchInputs makes a batch of 2 images 8x8x1 (grid 4x4 = 16 patches), a
// tokenizer view 4x4x1 holding token ids, and 5 masked patches per image.
func batchInputs(imgSeed float32, ids []float32, masked [2][]int) []any {
	const n = 16
	pix := make([]float32, 2*64)
	for i := range pix {
		pix[i] = float32(math.Sin(float64(imgSeed) * float64(i+1)))
	}
	mask := make([]float32, 2*n)
	var idx []int32
	for b := range 2 {
		for _, p := range masked[b] {
			mask[b*n+p] = 1
			idx = append(idx, int32(b*n+p))
		}
	}
	return []any{
		tensors.FromFlatDataAndDimensions(pix, 2, 8, 8, 1),
		tensors.FromFlatDataAndDimensions(append([]float32(nil), ids...), 2, 4, 4, 1),
		tensors.FromFlatDataAndDimensions(mask, 2, n),
		tensors.FromFlatDataAndDimensions(idx, len(idx)),
	}
}

var testMasked = [2][]int{{0, 3, 5, 6, 15}, {1, 2, 8, 9, 10}}

// TestMaskedPositionsGetMaskToken runs the task's graph with a zero-depth
// ViT, where a patch's output depends only on its own input token: the
// features of masked patches must not depend on the image (they are the
// [MASK] token plus the position embedding), those of unmasked ones must.
func TestMaskedPositionsGetMaskToken(t *testing.T) {
	be := backend(t)
	store := model.NewStore()
	net := &Network{Backbone: tinyViT(t, 0), Target: idTarget(t), Loss: losses.CrossEntropy{Config: losses.CrossEntropyConfig{Weight: 1}},
		Dim: 7, GridH: 4, GridW: 4, NumMasked: 5, PredictAll: true}
	exec, err := model.NewExec(be, store, func(scope *model.Scope, in []*Node) []*Node {
		f, _, rowMask := net.Rows(scope, in[0], in[1], in[2], in[3], false)
		return []*Node{f, rowMask}
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]float32, 32)
	outA, err := exec.Exec(batchInputs(1, ids, testMasked)...)
	if err != nil {
		t.Fatal(err)
	}
	outB, err := exec.Exec(batchInputs(2, ids, testMasked)...)
	if err != nil {
		t.Fatal(err)
	}
	fa, fb := tensors.MustCopyFlatData[float32](outA[0]), tensors.MustCopyFlatData[float32](outB[0])
	rm := tensors.MustCopyFlatData[float32](outA[1])
	const d = 8
	for r := range 32 {
		same := true
		for k := range d {
			if fa[r*d+k] != fb[r*d+k] {
				same = false
			}
		}
		if masked := rm[r] == 1; masked != same {
			t.Errorf("row %d: masked=%v but features independent of the image=%v", r, masked, same)
		}
	}
	if store.GetVariable("/backbone/mask_token") == nil {
		t.Error("no /backbone/mask_token variable")
	}
}

// TestLossOnlyOnMaskedPositions changes the target of one unmasked and one
// masked patch: only the latter changes the loss (and with predict_all both do).
func TestLossOnlyOnMaskedPositions(t *testing.T) {
	be := backend(t)
	for _, all := range []bool{false, true} {
		store := model.NewStore()
		net := &Network{Backbone: tinyViT(t, 1), Target: idTarget(t), Loss: losses.CrossEntropy{Config: losses.CrossEntropyConfig{Weight: 1}},
			Dim: 7, GridH: 4, GridW: 4, NumMasked: 5, PredictAll: all}
		exec, err := model.NewExec(be, store, func(scope *model.Scope, in []*Node) []*Node {
			loss, correct := net.Objective(scope, in[0], in[1], in[2], in[3], false)
			return []*Node{loss, correct}
		})
		if err != nil {
			t.Fatal(err)
		}
		loss := func(ids []float32) float32 {
			out, err := exec.Exec(batchInputs(1, ids, testMasked)...)
			if err != nil {
				t.Fatal(err)
			}
			return tensors.ToScalar[float32](out[0])
		}
		ids := make([]float32, 32)
		for i := range ids {
			ids[i] = float32(i % 7)
		}
		base := loss(ids)
		unmasked := append([]float32(nil), ids...)
		unmasked[16+4] = float32((int(ids[16+4]) + 3) % 7) // image 1, patch 4: not masked
		maskedChg := append([]float32(nil), ids...)
		maskedChg[16+8] = float32((int(ids[16+8]) + 3) % 7) // image 1, patch 8: masked
		lu, lm := loss(unmasked), loss(maskedChg)
		if all {
			if lu == base || lm == base {
				t.Errorf("predict_all: loss %v; changed unmasked target %v, masked %v: both should change", base, lu, lm)
			}
			continue
		}
		if lu != base {
			t.Errorf("changing an unmasked patch's target changed the loss: %v -> %v", base, lu)
		}
		if lm == base {
			t.Errorf("changing a masked patch's target left the loss at %v", base)
		}
	}
}

// TestMaskCountFixed draws masks with the default masker on an 8x8 grid.
func TestMaskCountFixed(t *testing.T) {
	spec := DefaultConfig().Masker
	f, err := spec.Build()
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.New(8, 8)
	if err != nil {
		t.Fatal(err)
	}
	want := f.Count(8, 8)
	if want != 26 {
		t.Errorf("default count on 8x8 = %d, want round(0.4*64) = 26", want)
	}
	for i := range 200 {
		n := 0
		for _, v := range m.Mask(data.SampleRNG(1, 0, i)) {
			if v {
				n++
			}
		}
		if n != want {
			t.Fatalf("mask %d has %d masked patches, want %d", i, n, want)
		}
	}
}

// TestLayerDecay checks BEiT's multipliers decay^(depth+1-layer_id).
func TestLayerDecay(t *testing.T) {
	const depth = 4
	scale := optim.LayerDecay(0.5, depth, func(p string) int { return vit.LayerID(p, depth) })
	for p, want := range map[string]float64{
		"/backbone/patch_embed/weight":       math.Pow(0.5, 5),
		"/backbone/cls_token":                math.Pow(0.5, 5),
		"/backbone/blocks/0/attn/qkv/weight": math.Pow(0.5, 4),
		"/backbone/blocks/3/mlp/fc2/bias":    0.5,
		"/backbone/norm/weight":              1,
		"/lm_head/weight":                    1,
	} {
		if got := scale(p); math.Abs(got-want) > 1e-15 {
			t.Errorf("LayerDecay(%s) = %v, want %v", p, got, want)
		}
	}
}

func cifarRoot(t *testing.T) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "data", "cifar10.tar.gz")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("CIFAR-10 not available at %s: %v", p, err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// e2eConfig is a tiny real MIM run on CIFAR-10.
func e2eConfig(root, target string) string {
	return fmt.Sprintf(`
name: mim-test
seed: 5
task:
  type: mim
  epochs: 2
  log_every: 1
  data:
    train: {type: image_folder, root: %q, split: train}
    val: {type: image_folder, root: %q, split: test}
    max_train: 512
    max_val: 64
    batch_size: 32
    eval_batch_size: 32
    workers: 2
    augment: {size: 32, scale: [0.5, 1.0], hflip: 0.5, normalize: half, crop_pct: 1.0, color_jitter: {brightness: 0, contrast: 0, saturation: 0}}
  backbone: {type: vit, preset: "", image_size: 32, patch_size: 4, dim: 32, depth: 1, heads: 2, layer_scale: 0.1, rel_pos_bias: shared}
  target: %s
  optimizer: {type: adamw, lr: 0.003, schedule: {type: cosine, warmup_steps: 3}}
`, root, root, target)
}

// runE2E runs the config and returns the training metrics records.
func runE2E(t *testing.T, cfg string) []map[string]any {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "mim.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	if _, err := runtest.Run(context.Background(), t, p, nil, run.RunOptions{Out: out, Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	recs, err := run.ReadMetrics(filepath.Join(out, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	ck, err := ckpt.Load(filepath.Join(out, core.CheckpointsDir, "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if ck.Variables["/backbone/mask_token"] == nil || ck.Variables["/backbone/blocks/0/attn/qkv/weight"] == nil {
		t.Error("last.ckpt lacks the backbone under /backbone")
	}
	return recs
}

// meanOf averages a metric over train records with step in [from, to].
func meanOf(recs []map[string]any, key string, from, to int) float64 {
	var s float64
	var n int
	for _, r := range recs {
		st, _ := r["step"].(float64)
		if r["phase"] == "train" && int(st) >= from && int(st) <= to {
			if v, ok := r[key].(float64); ok {
				s += v
				n++
			}
		}
	}
	return s / float64(max(n, 1))
}

// TestEndToEndPixels trains 32 steps with pixel targets: the loss falls, and
// the logged lr follows the configured schedule.
func TestEndToEndPixels(t *testing.T) {
	root := cifarRoot(t)
	recs := runE2E(t, e2eConfig(root, "{type: pixels}"))
	first, last := meanOf(recs, "mim_loss", 1, 4), meanOf(recs, "mim_loss", 29, 32)
	t.Logf("pixels: mim_loss steps 1-4 %.4f, steps 29-32 %.4f", first, last)
	if !(last < 0.9*first) {
		t.Errorf("pixel MIM loss did not fall: %.4f -> %.4f", first, last)
	}
	sched := optim.Cosine{CosineConfig: optim.CosineConfig{WarmupSteps: 3}}
	for _, r := range recs {
		if r["phase"] != "train" {
			continue
		}
		step := int(r["step"].(float64)) - 1 // the lr of the step that was just done
		want := 0.003 * sched.Factor(step, 32)
		if got := r["lr"].(float64); math.Abs(got-want) > 1e-9 {
			t.Errorf("step %d: lr %v, want %v", step, got, want)
		}
	}
}

// TestEndToEndTokens trains 32 steps predicting a tiny random tokenizer's
// tokens: the loss falls and the masked-token accuracy beats chance.
func TestEndToEndTokens(t *testing.T) {
	root := cifarRoot(t)
	recs := runE2E(t, e2eConfig(root, "{type: tokens, tokenizer: {type: mim_test_random, vocab: 16, patch: 4}}")+
		"  loss: {type: cross_entropy, label_smoothing: 0.1}\n")
	first, last := meanOf(recs, "mim_loss", 1, 4), meanOf(recs, "mim_loss", 29, 32)
	acc := meanOf(recs, "mim_acc", 25, 32)
	t.Logf("tokens: mim_loss steps 1-4 %.4f, steps 29-32 %.4f; mim_acc steps 25-32 %.3f (chance 1/16)", first, last, acc)
	if !(last < first-0.1) {
		t.Errorf("token MIM loss did not fall: %.4f -> %.4f", first, last)
	}
	if !(acc > 1.5/16) {
		t.Errorf("masked-token accuracy %.3f is not above chance 1/16", acc)
	}
	var val map[string]any
	for _, r := range recs {
		if r["phase"] == "eval" {
			val = r
		}
	}
	if val == nil || val["val_mim_acc"] == nil {
		t.Fatalf("no validation record with val_mim_acc: %v", val)
	}
}
