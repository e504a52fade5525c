package classify_test

import (
	"context"
	"errors"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
)

// TestDivergingRun trains with lr 1e6 (the loss turns NaN within a few
// steps). nan_policy stop: the run fails at that step naming it, meta.json
// says failed, metrics.jsonl stays readable, and every checkpoint left holds
// finite weights from before it. skip_step: the run completes, counting
// the skipped steps, its weights finite.
func TestDivergingRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model; skipped with -short")
	}
	cfg := writeConfig(t)
	root := t.TempDir()
	stop := filepath.Join(root, "stop")
	err := runCfg(t, cfg, stop, false, io.Discard, context.Background(), "task.optimizer.lr=1e6")
	var div *run.DivergedError
	if !errors.As(err, &div) {
		t.Fatalf("diverging run: %v, want a DivergedError", err)
	}
	if !strings.Contains(err.Error(), "loss = NaN") || readStatus(t, stop) != run.StatusFailed {
		t.Errorf("error %q, status %q", err, readStatus(t, stop))
	}
	recs, err := run.ReadMetrics(filepath.Join(stop, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[len(recs)-1]; last["step"] != float64(div.Step) || last["loss"] != "NaN" {
		t.Errorf("last record %v, want step %d with loss NaN", last, div.Step)
	}
	l, err := ckpt.List(filepath.Join(stop, core.CheckpointsDir))
	if err != nil || len(l) == 0 || l[len(l)-1] != div.LastGood {
		t.Fatalf("checkpoints %v (%v), last good %q", l, err, div.LastGood)
	}
	for _, p := range l {
		ck, err := ckpt.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if ck.Step >= div.Step {
			t.Errorf("%s is from step %d, at or after the divergence (step %d)", p, ck.Step, div.Step)
		}
		assertFinite(t, ck)
	}

	skip := filepath.Join(root, "skip")
	if err := runCfg(t, cfg, skip, false, io.Discard, context.Background(), "task.optimizer.lr=1e6", "task.nan_policy=skip_step"); err != nil {
		t.Fatalf("skip_step run: %v", err)
	}
	recs, err = run.ReadMetrics(filepath.Join(skip, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var skipped float64
	for _, r := range recs {
		if v, ok := r["skipped_steps"].(float64); ok {
			skipped = v
		}
	}
	if skipped < 1 {
		t.Errorf("skip_step run: skipped_steps %v, want > 0", skipped)
	}
	ck, err := ckpt.Load(filepath.Join(skip, core.CheckpointsDir, "last"+ckpt.Ext))
	if err != nil {
		t.Fatal(err)
	}
	assertFinite(t, ck)
}

// assertFinite fails when a float32 variable of ck holds NaN or infinity,
// but for the records of the last batch (the gradient norm AdamW logs, the
// trainer's moving average of the loss), which are no training state.
func assertFinite(t *testing.T, ck *ckpt.Checkpoint) {
	t.Helper()
	for p, v := range ck.Variables {
		if v.Shape().DType != dtypes.Float32 || p == "/adamw/grad_norm" || strings.HasPrefix(p, "/metrics/") {
			continue
		}
		for _, x := range tensors.MustCopyFlatData[float32](v) {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Errorf("%s: %s holds %v", ck.Path, p, x)
				break
			}
		}
	}
}
