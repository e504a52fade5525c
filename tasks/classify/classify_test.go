package classify_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	_ "github.com/peco-dev/peco/builtin"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/core/run/runtest"
	"github.com/peco-dev/peco/tasks/classify"
)

// tinyConfig is a real, very small run: a one-block ViT on 256 MNIST digits.
const tinyConfig = `
name: tiny
seed: 3
task:
  type: classification
  epochs: 2
  log_every: 1
  checkpoint_every: 3
  keep_checkpoints: 5
  data:
    train: {type: mnist, split: train}
    val: {type: mnist, split: test}
    max_train: 256
    max_val: 64
    batch_size: 32
    eval_batch_size: 32
    workers: 2
    augment: {size: 28, scale: [0.8, 1.0], ratio: [0.9, 1.1], hflip: 0, normalize: half, crop_pct: 1.0}
  backbone: {type: vit, preset: "", image_size: 28, patch_size: 7, in_channels: 1, dim: 16, depth: 1, heads: 2}
  optimizer: {type: adamw, lr: 0.003}
`

func writeConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tiny.yaml")
	if err := os.WriteFile(p, []byte(tinyConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cancelWriter cancels a context when the progress output reports a step.
type cancelWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.cancel != nil && strings.Contains(w.buf.String(), w.marker) {
		w.cancel()
		w.cancel = nil
	}
	return len(p), nil
}

func runCfg(t *testing.T, cfgPath, out string, resume bool, stderr io.Writer, ctx context.Context, sets ...string) error {
	t.Helper()
	_, err := runtest.Run(ctx, t, cfgPath, sets, run.RunOptions{
		Out: out, Resume: resume, Stdout: io.Discard, Stderr: stderr, ProgressInterval: 1,
	})
	return err
}

// series extracts "phase/step -> value" from a run's metrics.
func series(t *testing.T, dir string) map[string]float64 {
	t.Helper()
	recs, err := run.ReadMetrics(filepath.Join(dir, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, r := range recs {
		key := fmt.Sprintf("%v/%v", r["phase"], r["step"])
		if v, ok := r["loss"].(float64); ok {
			out[key] = v
		}
		if v, ok := r["top1"].(float64); ok {
			out[key] = v
		}
	}
	return out
}

func TestMNISTRunDeterministicAndResumable(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model; skipped with -short")
	}
	cfg := writeConfig(t)
	root := t.TempDir()
	a := filepath.Join(root, "a")
	// Drop path draws from the store's RNG state, which a resume must bring
	// back as it was (not trainable, the same stream).
	dropPath := "task.backbone.drop_path=0.1"
	if err := runCfg(t, cfg, a, false, io.Discard, context.Background(), dropPath); err != nil {
		t.Fatal(err)
	}
	sa := series(t, a)
	if len(sa) != 16+2 {
		t.Fatalf("want 16 train steps and 2 evals logged, got %d: %v", len(sa), sa)
	}
	if sa["train/1"] <= sa["train/16"] {
		t.Errorf("loss did not fall: step 1 %.4f, step 16 %.4f", sa["train/1"], sa["train/16"])
	}
	for _, f := range []string{"config.yaml", "meta.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt"} {
		if _, err := os.Stat(filepath.Join(a, f)); err != nil {
			t.Errorf("run directory lacks %s", f)
		}
	}

	// Same seed, same backend: the same metrics.
	b := filepath.Join(root, "b")
	if err := runCfg(t, cfg, b, false, io.Discard, context.Background(), dropPath); err != nil {
		t.Fatal(err)
	}
	compare(t, "rerun", sa, series(t, b))

	// Killed after step 5 (last checkpoint at step 3), then resumed: the
	// metrics continue exactly as the uninterrupted run's.
	c := filepath.Join(root, "c")
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelWriter{marker: "train 5/16", cancel: cancel}
	err := runCfg(t, cfg, c, false, w, ctx, dropPath)
	if err == nil {
		t.Fatal("the cancelled run reported success")
	}
	if m := readStatus(t, c); m != run.StatusCancelled {
		t.Errorf("status after cancel = %q", m)
	}
	if err := runCfg(t, cfg, c, true, io.Discard, context.Background(), dropPath); err != nil {
		t.Fatalf("resume: %v", err)
	}
	compare(t, "resumed", sa, series(t, c))
	if m := readStatus(t, c); m != run.StatusCompleted {
		t.Errorf("status after resume = %q", m)
	}

	// Resuming the completed run says so and changes nothing (summary,
	// metrics, checkpoints), as torch/mmengine do.
	files := func() map[string]string {
		out := map[string]string{}
		filepath.WalkDir(c, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				out[p] = string(b)
			}
			return nil
		})
		return out
	}
	before := files()
	var log bytes.Buffer
	if err := runCfg(t, cfg, c, true, &log, context.Background(), dropPath); err != nil {
		t.Fatalf("resume of the completed run: %v", err)
	}
	if !strings.Contains(log.String(), "is complete") || !strings.Contains(log.String(), "nothing changed") {
		t.Errorf("resume of the completed run says:\n%s", log.String())
	}
	after := files()
	if len(after) != len(before) {
		t.Errorf("resume of the completed run: %d files, was %d", len(after), len(before))
	}
	for p, b := range before {
		if after[p] != b {
			t.Errorf("resume of the completed run changed %s", p)
		}
	}
}

func readStatus(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, core.MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), `"status": "`)
	if i < 0 {
		t.Fatalf("meta.json has no status: %s", b)
	}
	s := string(b[i+len(`"status": "`):])
	return s[:strings.IndexByte(s, '"')]
}

func compare(t *testing.T, what string, want, got map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d records, want %d", what, len(got), len(want))
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok || math.Abs(g-v) > 1e-6*math.Max(1, math.Abs(v)) {
			t.Errorf("%s: %s = %v, want %v", what, k, g, v)
		}
	}
}

func TestRank(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		logits []float32
		label  int
		want   int
	}{
		{[]float32{0.1, 0.9, 0.3}, 1, 0},
		{[]float32{0.1, 0.9, 0.3}, 2, 1},
		{[]float32{0.1, 0.9, 0.3}, 0, 2},
		{[]float32{0.5, 0.5, 0.1}, 1, 0}, // ties count in the label's favour
		{[]float32{1, 2, 3, 4, 5, 6}, 0, 5},
		{[]float32{nan, nan, nan}, 1, 3}, // a diverged model is never right
		{[]float32{0.1, nan, 0.3}, 2, 1},
	} {
		if got := classify.Rank(tc.logits, tc.label); got != tc.want {
			t.Errorf("Rank(%v, %d) = %d, want %d", tc.logits, tc.label, got, tc.want)
		}
	}
}

func TestLinearProbeFreezesBackbone(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model; skipped with -short")
	}
	cfg := writeConfig(t)
	dir := filepath.Join(t.TempDir(), "probe")
	err := runCfg(t, cfg, dir, false, io.Discard, context.Background(),
		"task.mode=linear_probe", "task.probe_layer=0", "task.epochs=1")
	if err != nil {
		t.Fatal(err)
	}
	first, err := ckpt.Load(ckpt.StepPath(filepath.Join(dir, core.CheckpointsDir), 3))
	if err != nil {
		t.Fatal(err)
	}
	last, err := ckpt.Load(filepath.Join(dir, core.CheckpointsDir, "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	var nb, nh int
	for p, v := range last.Variables {
		if !strings.HasPrefix(p, "/backbone/") && !strings.HasPrefix(p, "/head/") {
			continue
		}
		a := tensors.MustCopyFlatData[float32](v)
		b := tensors.MustCopyFlatData[float32](first.Variables[p])
		same := true
		for i := range a {
			if a[i] != b[i] {
				same = false
			}
		}
		switch {
		case strings.HasPrefix(p, "/backbone/"):
			nb++
			if !same {
				t.Errorf("backbone variable %s changed during linear probing", p)
			}
		case strings.HasPrefix(p, "/head/"):
			nh++
			if same {
				t.Errorf("head variable %s did not train", p)
			}
		}
	}
	if nb == 0 || nh == 0 {
		t.Fatalf("checkpoint holds %d backbone and %d head variables", nb, nh)
	}
}

func TestMixupCutMixRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model; skipped with -short")
	}
	cfg := writeConfig(t)
	dir := filepath.Join(t.TempDir(), "mix")
	err := runCfg(t, cfg, dir, false, io.Discard, context.Background(),
		"task.mix={mixup: 0.8, cutmix: 1.0, prob: 1.0, switch_prob: 0.5}", "task.erasing.prob=0.25",
		"task.loss.label_smoothing=0.1", "task.epochs=1", "task.data.augment.randaugment={n: 2, m: 9, mstd: 0.5}")
	if err != nil {
		t.Fatal(err)
	}
	s := series(t, dir)
	for k, v := range s {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("%s = %v", k, v)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, core.ImagesDir, "confusion_epoch000.png")); err != nil {
		t.Errorf("no confusion matrix image: %v", err)
	}
}

func TestPretrainedBackboneLoads(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model; skipped with -short")
	}
	cfg := writeConfig(t)
	root := t.TempDir()
	a := filepath.Join(root, "a")
	if err := runCfg(t, cfg, a, false, io.Discard, context.Background(), "task.epochs=1"); err != nil {
		t.Fatal(err)
	}
	// A linear probe on a's backbone keeps it exactly: its checkpoint must
	// hold a's final backbone weights.
	b := filepath.Join(root, "b")
	if err := runCfg(t, cfg, b, false, io.Discard, context.Background(), "task.epochs=1",
		"task.mode=linear_probe", "task.from="+a); err != nil {
		t.Fatal(err)
	}
	ca, err := ckpt.Load(filepath.Join(a, core.CheckpointsDir, "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	cb, err := ckpt.Load(filepath.Join(b, core.CheckpointsDir, "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for p, v := range ca.Variables {
		if !strings.HasPrefix(p, "/backbone/") {
			continue
		}
		n++
		x, y := tensors.MustCopyFlatData[float32](v), tensors.MustCopyFlatData[float32](cb.Variables[p])
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("%s differs between the pre-trained run and the probe", p)
			}
		}
	}
	if n == 0 {
		t.Fatal("no backbone variables in the checkpoint")
	}
	// A missing checkpoint is a clear error naming the path.
	err = runCfg(t, cfg, filepath.Join(root, "c"), false, io.Discard, context.Background(), "task.from="+filepath.Join(root, "nothing"))
	if err == nil || !strings.Contains(err.Error(), "nothing") {
		t.Errorf("missing pretrained checkpoint: %v", err)
	}
}
