package mim

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/core/run/runtest"
	"github.com/peco-dev/peco/data"
)

// mnistMIM is a tiny MIM run on MNIST (the Go module's copy: no shared data
// needed): 128 training images, 4 steps, 7x7 patches of 4 px.
const mnistMIM = `
name: mim-mnist-test
seed: 3
task:
  type: mim
  epochs: %d
  log_every: 1
  data:
    train: {type: mnist, split: train}
    val: {type: mnist, split: test}
    max_train: 128
    max_val: 64
    batch_size: 32
    eval_batch_size: 32
    workers: 2
    augment: {size: 28, scale: [0.6, 1.0], ratio: [0.9, 1.1], hflip: 0, normalize: half, crop_pct: 1.0}
  backbone: {type: vit, preset: "", image_size: 28, patch_size: 4, in_channels: 1, dim: 16, depth: 1, heads: 2}
  masker: {type: blockwise, ratio: 0.4, min_patches: 4}
  target: %s
%s`

// runMNIST runs a MIM config on MNIST in dir/name, returning the run
// directory, its printed output and its metrics.
func runMNIST(t *testing.T, dir, name string, epochs int, target, extra string) (string, string, []map[string]any) {
	t.Helper()
	p := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(mnistMIM, epochs, target, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	var log bytes.Buffer
	if _, err := runtest.Run(context.Background(), t, p, nil, run.RunOptions{Out: out, Stdout: &log, Stderr: &log}); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, log.String())
	}
	recs, err := run.ReadMetrics(filepath.Join(out, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	return out, log.String(), recs
}

func summary(t *testing.T, dir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, core.MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	var m run.Meta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.Summary
}

// TestTargetsAndLossesByConfig: pixels vs tokens and the MIM loss are
// config swaps; the default loss follows the target.
func TestTargetsAndLossesByConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, target, extra, wantLoss string
	}{
		{"pixels", "{type: pixels}", "", "l2"},
		{"pixels-l1", "{type: pixels, norm_pix: false}", "  loss: {type: l1}\n", "l1"},
		{"tokens", "{type: tokens, tokenizer: {type: mim_test_random, vocab: 16, patch: 4}}", "", "cross_entropy"},
		{"tokens-smoothed", "{type: tokens, tokenizer: {type: mim_test_random, vocab: 16, patch: 4}}",
			"  loss: {type: cross_entropy, label_smoothing: 0.1}\n", "cross_entropy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, recs := runMNIST(t, dir, tc.name, 1, tc.target, tc.extra)
			sum := summary(t, out)
			if sum["loss"] != tc.wantLoss {
				t.Errorf("summary loss %v, want %s", sum["loss"], tc.wantLoss)
			}
			var n int
			for _, r := range recs {
				if r["phase"] == "train" {
					if l, ok := r["mim_loss"].(float64); !ok || math.IsNaN(l) || l <= 0 {
						t.Errorf("step %v: mim_loss %v", r["step"], r["mim_loss"])
					}
					n++
				}
			}
			if n != 4 {
				t.Errorf("%d training records, want 4", n)
			}
		})
	}
	// A loss that does not fit the target says what the target hands it.
	p := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(mnistMIM, 1, "{type: pixels}", "  loss: {type: cross_entropy}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runtest.Run(context.Background(), t, p, nil, run.RunOptions{Out: filepath.Join(dir, "bad"), Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "continuous targets") {
		t.Errorf("cross_entropy on pixels: %v, want an error explaining the target's inputs", err)
	}
}

// TestRetiredTokenizerKey: the old `tokenizer:` spelling of the MIM target
// is refused with the new one.
func TestRetiredTokenizerKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "old.yaml")
	cfg := strings.Replace(fmt.Sprintf(mnistMIM, 1, "{type: pixels}", ""), "  target: {type: pixels}", "  tokenizer: {type: pretrained, checkpoint: runs/x}", 1)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := run.LoadExperiment(p, nil)
	if err == nil || !strings.Contains(err.Error(), "target:") || !strings.Contains(err.Error(), "from: RUN") {
		t.Errorf("old tokenizer key: %v", err)
	}
}

// fakeTokenizerRun writes a tokenizer run whose tokenizer is
// mim_test_random (vocab 16, patch 4, 1 channel) with the projection proj.
func fakeTokenizerRun(t *testing.T, dir string, proj []float32) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, core.CheckpointsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "name: tok\nseed: 0\ntask:\n  type: tokenizer\n  tokenizer: {type: mim_test_random, vocab: 16, patch: 4}\n"
	if err := os.WriteFile(filepath.Join(dir, core.ConfigFile), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	store.Scope("/tokenizer").VariableWithValue("proj", tensors.FromFlatDataAndDimensions(proj, 16, 16))
	if err := ckpt.Save(filepath.Join(dir, core.CheckpointsDir, "last.ckpt"), store, 1, nil); err != nil {
		t.Fatal(err)
	}
}

// TestPrecomputedTokens: with precompute, the tokens of 2 views per image
// are computed once, cached in the tokenizer run, reused by the next run
// (same metrics), and are the tokens the tokenizer gives the crop the
// training view is cut from.
func TestPrecomputedTokens(t *testing.T) {
	dir := t.TempDir()
	tokRun := filepath.Join(dir, "tokrun")
	proj := make([]float32, 16*16)
	for i := range proj {
		proj[i] = float32(math.Sin(float64(7*i + 1)))
	}
	fakeTokenizerRun(t, tokRun, proj)
	target := fmt.Sprintf("{type: tokens, from: %s, precompute: 2}", tokRun)
	_, log1, recs1 := runMNIST(t, dir, "first", 2, target, "")
	if !strings.Contains(log1, "computed train tokens (2 views of 128 images)") || !strings.Contains(log1, "computed val tokens (1 views of 64 images)") {
		t.Errorf("first run did not compute the tokens:\n%s", log1)
	}
	files, _ := filepath.Glob(filepath.Join(tokRun, "token_cache", "*.tokens"))
	if len(files) != 2 {
		t.Fatalf("cache files %v, want one per split", files)
	}
	_, log2, recs2 := runMNIST(t, dir, "second", 2, target, "")
	if !strings.Contains(log2, "train tokens (2 views of 128 images) from") {
		t.Errorf("second run did not reuse the cache:\n%s", log2)
	}
	loss := func(recs []map[string]any) []float64 {
		var out []float64
		for _, r := range recs {
			if v, ok := r["mim_loss"].(float64); ok {
				out = append(out, v)
			}
		}
		return out
	}
	l1, l2 := loss(recs1), loss(recs2)
	if len(l1) != 8 || fmt.Sprint(l1) != fmt.Sprint(l2) {
		t.Errorf("losses of the two runs differ or are missing:\n%v\n%v", l1, l2)
	}

	// The cached tokens of view 1 of image 5 are the tokenizer's tokens of
	// that view's crop.
	var trainFile string
	for _, f := range files {
		if strings.HasSuffix(f, "-train.tokens") {
			trainFile = f
		}
	}
	raw, err := os.ReadFile(trainFile)
	if err != nil {
		t.Fatal(err)
	}
	hl := binary.LittleEndian.Uint64(raw[len(tokenCacheMagic):])
	var hdr tokenFileHeader
	if err := json.Unmarshal(raw[len(tokenCacheMagic)+8:len(tokenCacheMagic)+8+int(hl)], &hdr); err != nil {
		t.Fatal(err)
	}
	ts, err := readTokenFile(trainFile, hdr.Key, 2, 128, 49)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readTokenFile(trainFile, hdr.Key+"x", 2, 128, 49); err == nil {
		t.Error("a cache file made for another key was accepted")
	}
	got, err := ts.tokensOf(1, 5)
	if err != nil {
		t.Fatal(err)
	}
	exp, _, err := run.LoadExperiment(filepath.Join(dir, "first.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := exp.Task.Config.(*Config)
	trainSet, _, err := cfg.Data.Splits.Open(exp.Seed)
	if err != nil {
		t.Fatal(err)
	}
	smp, err := trainSet.Sample(5)
	if err != nil {
		t.Fatal(err)
	}
	aug, err := cfg.Data.Augment.Compile()
	if err != nil {
		t.Fatal(err)
	}
	view, _, err := aug.Train(smp.Image, data.StreamRNG(exp.Seed, data.StreamFixedView, 1, 5))
	if err != nil {
		t.Fatal(err)
	}
	half, _ := data.NewNormalizer("half")
	store := model.NewStore()
	store.Scope("/tokenizer").VariableWithValue("proj", tensors.FromFlatDataAndDimensions(proj, 16, 16))
	tok := randTokenizer{vocab: 16, patch: 4}
	exec := model.MustNewExec(runtest.Backend(t, "cpu"), store, func(scope *model.Scope, v *Node) *Node {
		return Reshape(tok.Encode(scope.In("tokenizer"), v), 1, 49)
	})
	want := tensors.MustCopyFlatData[int32](exec.MustExec(tensors.FromFlatDataAndDimensions(half.Apply(view, nil), 1, 28, 28, 1))[0])
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cached tokens of image 5, view 1:\n%v\nthe tokenizer on that crop:\n%v", got, want)
	}
}
