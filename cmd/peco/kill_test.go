package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
)

// killConfig is a tiny MNIST fine-tune with every stochastic option on:
// drop path, Mixup/CutMix, random erasing, RandAugment, label smoothing;
// 2 epochs of 8 steps, a checkpoint every 3 steps and at each epoch's end.
const killConfig = `
name: kill
seed: 5
task:
  type: classification
  epochs: 2
  log_every: 1
  checkpoint_every: 3
  keep_checkpoints: 2
  data:
    train: {type: mnist, split: train}
    val: {type: mnist, split: test}
    max_train: 256
    max_val: 64
    batch_size: 32
    eval_batch_size: 32
    workers: 2
    augment: {size: 28, scale: [0.8, 1.0], ratio: [0.9, 1.1], hflip: 0, normalize: half, crop_pct: 1.0, randaugment: {n: 2, m: 9, mstd: 0.5}}
  backbone: {type: vit, preset: "", image_size: 28, patch_size: 7, in_channels: 1, dim: 16, depth: 2, heads: 2, drop_path: 0.2}
  mix: {mixup: 0.8, cutmix: 1.0, prob: 1.0, switch_prob: 0.5}
  erasing: {prob: 0.25}
  loss: {type: cross_entropy, label_smoothing: 0.1}
  optimizer: {type: adamw, lr: 0.003}
`

// TestKillAndResume runs the peco binary on killConfig, kills it with
// SIGKILL at points drawn from a seeded RNG (after the k-th metrics record:
// during a step, a checkpoint write or an evaluation), resumes it until it
// completes, and checks the metrics equal an uninterrupted run's exactly,
// with no temporary or lock file left; SIGINT leaves status cancelled and a
// checkpoint to resume from.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds peco and trains a tiny model; skipped with -short")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "peco")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := filepath.Join(root, "kill.yaml")
	if err := os.WriteFile(cfg, []byte(killConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	peco := func(out string, resume bool) *exec.Cmd {
		args := []string{"run", cfg, "--out", out}
		if resume {
			args = append(args, "--resume")
		}
		return exec.Command(bin, args...)
	}
	ref := filepath.Join(root, "ref")
	if out, err := peco(ref, false).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}
	want := metricValues(t, ref)
	recs, err := run.ReadMetrics(filepath.Join(ref, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	total := len(recs) // 16 steps + 2 evaluations

	rng := rand.New(rand.NewPCG(20, 12))
	for trial := range 3 {
		dir := filepath.Join(root, fmt.Sprintf("killed%d", trial))
		// One or two kills before the run may finish.
		kills := []int{1 + rng.IntN(total-2)}
		if trial == 2 {
			kills = append(kills, kills[0]+1+rng.IntN(total-kills[0]-1))
		}
		for i, k := range kills {
			cmd := peco(dir, i > 0)
			done := start(t, cmd)
			waitRecords(t, done, dir, k)
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			// Records remained to be written: the kill hit a running run.
			if s := readStatus(t, dir); s != run.StatusRunning {
				t.Fatalf("trial %d: status %q after the kill after record %d, want running", trial, s, k)
			}
		}
		for range 3 { // resumed until complete (a kill may have hit the very end)
			if out, err := peco(dir, true).CombinedOutput(); err != nil {
				t.Fatalf("trial %d (killed after records %v): resume: %v\n%s", trial, kills, err, out)
			}
			if readStatus(t, dir) == run.StatusCompleted {
				break
			}
		}
		got := metricValues(t, dir)
		if len(got) != len(want) {
			t.Errorf("trial %d (killed after records %v): %d records, want %d", trial, kills, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("trial %d (killed after records %v): %s = %v, uninterrupted %v", trial, kills, k, got[k], v)
			}
		}
		noLeftovers(t, dir)
	}

	// SIGINT: status cancelled, a checkpoint kept, the resume completes.
	dir := filepath.Join(root, "interrupted")
	cmd := peco(dir, false)
	done := start(t, cmd)
	waitRecords(t, done, dir, 5)
	cmd.Process.Signal(os.Interrupt)
	if err := <-done; err == nil {
		t.Error("the interrupted run exited 0")
	}
	if s := readStatus(t, dir); s != run.StatusCancelled {
		t.Errorf("status after SIGINT = %q, want cancelled", s)
	}
	if l, _ := ckpt.List(filepath.Join(dir, core.CheckpointsDir)); len(l) == 0 {
		t.Error("no checkpoint after SIGINT")
	}
	if out, err := peco(dir, true).CombinedOutput(); err != nil {
		t.Fatalf("resume after SIGINT: %v\n%s", err, out)
	}
	got := metricValues(t, dir)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("after SIGINT and resume: %s = %v, uninterrupted %v", k, got[k], v)
		}
	}
	noLeftovers(t, dir)
}

// start starts cmd; the channel receives its exit.
func start(t *testing.T, cmd *exec.Cmd) chan error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return done
}

// waitRecords waits until the run in dir has written n metrics records (or
// the process ended, putting its exit back on done).
func waitRecords(t *testing.T, done chan error, dir string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(dir, core.MetricsFile))
		if strings.Count(string(b), "\n") >= n {
			return
		}
		select {
		case err := <-done:
			done <- err
			return
		default:
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s: no %d metrics records after 60 s", dir, n)
}

// metricValues maps "phase/step/metric" to the value of every loss, lr,
// grad_norm, top1 and top5 of a run's metrics.
func metricValues(t *testing.T, dir string) map[string]any {
	t.Helper()
	recs, err := run.ReadMetrics(filepath.Join(dir, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for _, r := range recs {
		for _, k := range []string{"loss", "lr", "grad_norm", "top1", "top5"} {
			if v, ok := r[k]; ok {
				out[fmt.Sprintf("%v/%v/%s", r["phase"], r["step"], k)] = v
			}
		}
	}
	return out
}

// noLeftovers fails when the run directory holds a temporary file or a lock
// file.
func noLeftovers(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && (strings.Contains(d.Name(), ".tmp-") || d.Name() == core.LockFile) {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
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
