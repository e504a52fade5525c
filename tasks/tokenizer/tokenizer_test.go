package tokenizer

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/gobackend"

	_ "github.com/peco-dev/peco/backbones/vit"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/core/run/runtest"
	"github.com/peco-dev/peco/registry"
	_ "github.com/peco-dev/peco/tokenizers"
)

const cifar = "../../../shared/data/cifar10.tar.gz"

// run runs a tokenizer config (YAML text with the data root filled in) in a
// temporary run directory and returns its metrics and directory.
func runCfg(t *testing.T, cfgText string) ([]map[string]any, string) {
	t.Helper()
	if _, err := os.Stat(cifar); err != nil {
		t.Skipf("CIFAR-10 not available at %s: %v", cifar, err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "cfg.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	sets := []string{"task.data.train.root=" + mustAbs(t, cifar), "task.data.val.root=" + mustAbs(t, cifar)}
	runDir := filepath.Join(dir, "run")
	var out bytes.Buffer
	if _, err := runtest.Run(context.Background(), t, cfgPath, sets, run.RunOptions{Out: runDir, Backend: runtest.Backend(t, "go"), Stdout: &out, Stderr: &out}); err != nil {
		t.Fatalf("run failed: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	recs, err := run.ReadMetrics(filepath.Join(runDir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return recs, runDir
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const tinyVQ = `
seed: 1
task:
  type: tokenizer
  epochs: 2
  log_every: 5
  data:
    train: {type: image_folder, root: X, split: train}
    val: {type: image_folder, root: X, split: test}
    max_train: 320
    max_val: 64
    batch_size: 16
    eval_batch_size: 32
    workers: 2
    augment: {size: 32, scale: [1, 1], ratio: [1, 1], hflip: 0, normalize: half, crop_pct: 1}
  tokenizer:
    type: vqvae
    encoder: {width: 16, mults: [1, 2], blocks: 0, groups: 8}
    decoder: {width: 16, mults: [1, 2], blocks: 0, groups: 8}
    codebook_size: 64
    code_dim: 16
    restart_after: 10
  losses:
    - {type: l1}
    - {type: vq, beta: 0.25}
  optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0, clip_grad: 1, schedule: {type: constant}}
  grid_images: 4
`

// TestTrainingLowersReconstructionError trains a tiny VQ-VAE on real
// CIFAR-10 images for 40 steps: the validation L1 after the second epoch
// must be clearly below the first epoch's and the first logged training L1.
func TestTrainingLowersReconstructionError(t *testing.T) {
	recs, runDir := runCfg(t, tinyVQ)
	var firstTrain, lastTrain float64 = -1, -1
	var evals []map[string]any
	for _, r := range recs {
		switch r["phase"] {
		case "train":
			if firstTrain < 0 {
				firstTrain = r["loss_l1"].(float64)
			}
			lastTrain = r["loss_l1"].(float64)
		case "eval":
			evals = append(evals, r)
		}
	}
	if len(evals) != 2 {
		t.Fatalf("%d eval records, want 2", len(evals))
	}
	t.Logf("train L1 (on [-1,1]) first %.4f last %.4f; val L1 (on [0,1]) %.4f -> %.4f; PSNR %.2f -> %.2f; codes used %v, perplexity %.1f",
		firstTrain, lastTrain, evals[0]["l1"], evals[1]["l1"], evals[0]["psnr"], evals[1]["psnr"], evals[1]["codes_used"], evals[1]["perplexity"])
	if !(lastTrain < 0.8*firstTrain) {
		t.Errorf("training L1 went from %.4f to %.4f; want a clear drop", firstTrain, lastTrain)
	}
	// The first eval follows 20 steps already; compare the epochs and bound the absolute level.
	if l := evals[1]["l1"].(float64); !(l < evals[0]["l1"].(float64)) || l > 0.2 {
		t.Errorf("validation L1 %v -> %v: want lower and below 0.2", evals[0]["l1"], l)
	}
	for _, name := range []string{"recon_epoch000.png", "recon_epoch001.png"} {
		if _, err := os.Stat(filepath.Join(runDir, "images", name)); err != nil {
			t.Errorf("missing reconstruction grid: %v", err)
		}
	}
	// The trained tokenizer loads back from the run (LoadTrained) and tokenizes.
	tr, err := LoadTrained(runDir)
	if err != nil {
		t.Fatal(err)
	}
	if tr.ImageSize != 32 || tr.Tokenizer.VocabSize() != 64 {
		t.Errorf("loaded image size %d, vocab %d", tr.ImageSize, tr.Tokenizer.VocabSize())
	}
	toks, h, w, rec, err := tr.Tokenize(gobackend.GetBackend(), make([]float32, 2*32*32*3), 2, 32, 3)
	if err != nil {
		t.Fatal(err)
	}
	if h != 8 || w != 8 || len(toks) != 2*64 || len(rec) != 2*32*32*3 {
		t.Errorf("tokenize: grid %dx%d, %d tokens, %d pixels", h, w, len(toks), len(rec))
	}
	tree, err := registry.LoadFile(filepath.Join(runDir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tree.At("task.tokenizer.codebook_size"); !ok {
		t.Error("config.yaml lacks task.tokenizer")
	}
}

const tinyDVAE = `
seed: 2
task:
  type: tokenizer
  epochs: 1
  log_every: 2
  data:
    train: {type: image_folder, root: X, split: train}
    val: {type: image_folder, root: X, split: test}
    max_train: 96
    max_val: 32
    batch_size: 16
    eval_batch_size: 32
    workers: 2
    augment: {size: 32, scale: [1, 1], ratio: [1, 1], hflip: 0, normalize: half, crop_pct: 1}
  tokenizer:
    type: dvae
    encoder: {width: 8, mults: [1, 2], blocks: 0, groups: 4}
    decoder: {width: 8, mults: [1, 2], blocks: 0, groups: 4}
    codebook_size: 32
    code_dim: 8
    kl_warmup_frac: 0.5
  losses:
    - {type: logit_laplace}
    - {type: kl_uniform, weight: 0.1}
  optimizer: {type: adamw, lr: 3.0e-3, weight_decay: 0, clip_grad: 1, schedule: {type: constant}}
  grid_images: 2
`

// TestDVAERuns trains a tiny dVAE for a few steps: every term is logged,
// the temperature anneals and the KL ramp rises.
func TestDVAERuns(t *testing.T) {
	recs, _ := runCfg(t, tinyDVAE)
	var temps, ramps []float64
	for _, r := range recs {
		if r["phase"] != "train" {
			continue
		}
		for _, k := range []string{"loss_logit_laplace", "loss_kl_uniform", "temperature", "kl_ramp"} {
			if _, ok := r[k]; !ok {
				t.Fatalf("train record lacks %s: %v", k, r)
			}
		}
		temps = append(temps, r["temperature"].(float64))
		ramps = append(ramps, r["kl_ramp"].(float64))
	}
	if len(temps) < 2 || !(temps[len(temps)-1] < temps[0]) || !(ramps[len(ramps)-1] > ramps[0]) {
		t.Errorf("temperatures %v, kl ramps %v: want falling and rising", temps, ramps)
	}
}

// TestAdversarialTermInTask trains a tiny VQ-VAE with the adversarial term
// on from the start: the term is logged each step and stays finite.
func TestAdversarialTermInTask(t *testing.T) {
	cfg := strings.Replace(tinyVQ, "  losses:\n    - {type: l1}\n    - {type: vq, beta: 0.25}\n",
		"  losses:\n    - {type: l1}\n    - {type: vq, beta: 0.25}\n    - {type: adversarial, weight: 0.5, width: 8, layers: 1, start: 0}\n", 1)
	cfg = strings.Replace(cfg, "epochs: 2", "epochs: 1", 1)
	if cfg == tinyVQ {
		t.Fatal("the test config was not rewritten")
	}
	recs, _ := runCfg(t, cfg)
	n := 0
	for _, r := range recs {
		if r["phase"] != "train" {
			continue
		}
		v, ok := r["loss_adversarial"].(float64)
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("train record without a finite loss_adversarial: %v", r)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no train records")
	}
}
