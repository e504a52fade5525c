package probe_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/peco-dev/peco/builtin"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/core/run/runtest"
)

const cifar = "../../../shared/data/cifar10.tar.gz"

func runConfig(t *testing.T, dir, name, text string, sets ...string) string {
	t.Helper()
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	var log bytes.Buffer
	if _, err := runtest.Run(context.Background(), t, cfgPath, sets, run.RunOptions{Out: out, Stdout: &log, Stderr: &log}); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, log.String())
	}
	return out
}

const tinyTokenizer = `
seed: 1
task:
  type: tokenizer
  epochs: 1
  data:
    train: {type: image_folder, root: CIFAR, split: train}
    val: {type: image_folder, root: CIFAR, split: test}
    max_train: 160
    max_val: 32
    batch_size: 16
    eval_batch_size: 32
    augment: {size: 32, scale: [1, 1], ratio: [1, 1], hflip: 0, normalize: half, crop_pct: 1}
  tokenizer:
    type: vqvae
    encoder: {width: 16, mults: [1, 2], blocks: 0, groups: 8}
    decoder: {width: 16, mults: [1, 2], blocks: 0, groups: 8}
    codebook_size: 32
    code_dim: 16
  losses: [{type: l1}, {type: vq, beta: 0.25}]
  optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0, clip_grad: 1, schedule: {type: constant}}
`

const tinyClassifier = `
seed: 1
task:
  type: classification
  epochs: 1
  data:
    train: {type: image_folder, root: CIFAR, split: train}
    val: {type: image_folder, root: CIFAR, split: test}
    max_train: 160
    max_val: 32
    batch_size: 16
    eval_batch_size: 32
    augment: {size: 32, scale: [1, 1], ratio: [1, 1], hflip: 0, normalize: imagenet, crop_pct: 1}
  backbone: {type: vit, preset: "", image_size: 32, patch_size: 8, dim: 16, depth: 1, heads: 2}
`

const probeConfig = `
seed: 1
task:
  type: codebook_probe
  tokenizer: {from: TOK}
  classifier: {from: CLF}
  data:
    train: {type: image_folder, root: CIFAR, split: train}
    val: {type: image_folder, root: CIFAR, split: test}
    max_train: 200
    max_val: 100
    batch_size: 50
  linear: {epochs: 5}
  grid_codes: 4
  grid_per_row: 4
`

// TestProbesOnTrainedTokenizer trains a tiny tokenizer and a tiny classifier
// on real CIFAR-10, then runs the three probes on them.
func TestProbesOnTrainedTokenizer(t *testing.T) {
	if testing.Short() {
		t.Skip("trains tiny models; skipped with -short")
	}
	abs, err := filepath.Abs(cifar)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Skipf("CIFAR-10 not available at %s: %v", abs, err)
	}
	dir := t.TempDir()
	fill := func(s string) string { return strings.ReplaceAll(s, "CIFAR", abs) }
	tok := runConfig(t, dir, "tok", fill(tinyTokenizer))
	clf := runConfig(t, dir, "clf", fill(tinyClassifier))
	probe := runConfig(t, dir, "probe", strings.NewReplacer("TOK", tok, "CLF", clf).Replace(fill(probeConfig)))
	recs, err := run.ReadMetrics(filepath.Join(probe, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d probe records", len(recs))
	}
	r := recs[0]
	for _, k := range []string{"bag_of_codes_top1", "classifier_top1_original", "classifier_top1_reconstruction", "codes_used", "perplexity", "recon_psnr"} {
		v, ok := r[k].(float64)
		if !ok {
			t.Errorf("probe record lacks %s: %v", k, r)
			continue
		}
		if strings.Contains(k, "top1") && (v < 0 || v > 1) {
			t.Errorf("%s = %v", k, v)
		}
	}
	if r["val_images"] != 100.0 || r["train_images"] != 200.0 {
		t.Errorf("image counts: %v / %v", r["train_images"], r["val_images"])
	}
	if fi, err := os.Stat(filepath.Join(probe, core.ImagesDir, "patches_per_code.png")); err != nil || fi.Size() == 0 {
		t.Errorf("patch grid image: %v", err)
	}
}
