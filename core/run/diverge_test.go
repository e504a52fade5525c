package run

import (
	"context"
	"errors"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/optim"
)

// TestMetricsNonFinite: NaN and infinities are written as strings, so a
// diverged loss is logged and the files stay valid JSON.
func TestMetricsNonFinite(t *testing.T) {
	dir := t.TempDir()
	r, err := CreateRunDir(dir, []byte("a: 1\n"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Log(map[string]any{"step": 1, "loss": math.NaN(), "grad_norm": math.Inf(1), "low": float32(math.Inf(-1)),
		"terms": map[string]float64{"l1": math.NaN()}, "ok": 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetSummary(map[string]any{"best": math.NaN(), "final": 0.25}); err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(nil); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadMetrics(filepath.Join(dir, core.MetricsFile))
	if err != nil || len(recs) != 1 {
		t.Fatalf("metrics: %v, %v", recs, err)
	}
	rec := recs[0]
	if rec["loss"] != "NaN" || rec["grad_norm"] != "+Inf" || rec["low"] != "-Inf" || rec["ok"] != 0.5 ||
		rec["terms"].(map[string]any)["l1"] != "NaN" {
		t.Errorf("record = %v", rec)
	}
	if m := readMeta(t, dir); m.Summary["best"] != "NaN" || m.Summary["final"] != 0.25 {
		t.Errorf("summary = %v", m.Summary)
	}
}

// nanLoop runs a Loop of 2 epochs x 4 steps, checkpointing every 2 steps,
// whose step badAt (0-based) reports loss NaN; skip says whether the fake
// optimizer skipped that update (as optim.AdamW does), by counting it in
// optim.SkippedVar. The store's variable counts the applied steps.
func nanLoop(t *testing.T, dir, policy string, badAt int64, skip bool) (LoopState, *RunDir, error) {
	t.Helper()
	rd, err := CreateRunDir(dir, []byte("seed: 0\n"), Meta{Name: "nan"})
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	applied := store.Scope("/model").VariableWithValue("applied", []float32{0})
	skipped := optim.SkippedVar(store)
	env := &core.Env{Dir: dir, Record: rd, Out: io.Discard}
	loop := &Loop{Config: LoopConfig{Epochs: 2, LogEvery: 1, CheckpointEvery: 2, KeepCheckpoints: 5, NaNPolicy: policy},
		Env: env, Store: store, StepsPerEpoch: 4, BatchSize: 1}
	st, err := loop.Restore()
	if err != nil {
		t.Fatal(err)
	}
	loop.Step = func(s *LoopState) (map[string]float64, error) {
		if s.Step == badAt {
			if skip {
				n := tensors.MustCopyFlatData[float32](skipped.MustValue())[0]
				if err := skipped.SetValue(tensors.FromScalar(n + 1)); err != nil {
					return nil, err
				}
				return map[string]float64{"loss": math.NaN(), "grad_norm": math.Inf(1)}, nil
			}
			// A metric other than the loss went bad: the update is applied.
			return map[string]float64{"loss": 1, "top1": math.NaN()}, nil
		}
		n := tensors.MustCopyFlatData[float32](applied.MustValue())[0]
		if err := applied.SetValue(tensors.FromFlatDataAndDimensions([]float32{n + 1}, 1)); err != nil {
			return nil, err
		}
		return map[string]float64{"loss": 1}, nil
	}
	st, err = loop.Run(context.Background(), st)
	return st, rd, err
}

// TestLoopStopsOnNaN: under nan_policy stop, a NaN loss stops the run at
// that step, names the step and the metrics, leaves the checkpoints before
// it intact and writes none after; meta.json says failed.
func TestLoopStopsOnNaN(t *testing.T) {
	dir := t.TempDir()
	_, rd, err := nanLoop(t, dir, NaNStop, 4, true)
	var div *DivergedError
	if !errors.As(err, &div) {
		t.Fatalf("run error = %v, want a DivergedError", err)
	}
	ckDir := filepath.Join(dir, core.CheckpointsDir)
	wantLast := ckpt.StepPath(ckDir, 4)
	if div.Step != 5 || div.Epoch != 1 || div.Batch != 0 || div.LastGood != wantLast {
		t.Errorf("diverged at %+v, want step 5, epoch 1, batch 0, last good %s", div, wantLast)
	}
	for _, want := range []string{"training diverged at step 5", "grad_norm = +Inf", "loss = NaN", wantLast, "nan_policy: skip_step"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := rd.Finish(err); err != nil {
		t.Fatal(err)
	}
	if m := readMeta(t, dir); m.Status != StatusFailed || !strings.Contains(m.Error, "training diverged at step 5") {
		t.Errorf("meta: status %q, error %q", m.Status, m.Error)
	}
	l, _ := ckpt.List(ckDir)
	if len(l) != 2 || l[1] != wantLast {
		t.Errorf("checkpoints %v, want steps 2 and 4 only", l)
	}
	ck, err := ckpt.Load(wantLast)
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[float32](ck.Variables["/model/applied"]); got[0] != 4 {
		t.Errorf("last good checkpoint holds %v applied steps, want 4", got)
	}
	recs, err := ReadMetrics(filepath.Join(dir, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[len(recs)-1]; last["step"] != 5.0 || last["loss"] != "NaN" {
		t.Errorf("last record = %v, want step 5 with loss NaN", last)
	}
}

// TestLoopSkipsNaNSteps: under nan_policy skip_step the run goes on past a
// step the optimizer skipped, counting it (metrics and checkpoint state);
// a bad metric the optimizer did not skip still stops the run.
func TestLoopSkipsNaNSteps(t *testing.T) {
	dir := t.TempDir()
	st, rd, err := nanLoop(t, dir, NaNSkipStep, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	rd.Finish(nil)
	if st.Step != 8 || st.SkippedSteps != 1 {
		t.Errorf("end state: %d steps, %d skipped; want 8, 1", st.Step, st.SkippedSteps)
	}
	recs, err := ReadMetrics(filepath.Join(dir, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[len(recs)-1]; last["skipped_steps"] != 1.0 {
		t.Errorf("last record = %v, want skipped_steps 1", last)
	}
	ck, err := ckpt.Load(ckpt.StepPath(filepath.Join(dir, core.CheckpointsDir), 8))
	if err != nil {
		t.Fatal(err)
	}
	var saved LoopState
	if err := ck.DecodeState(&saved); err != nil || saved.SkippedSteps != 1 {
		t.Errorf("checkpoint state skipped_steps = %d, %v", saved.SkippedSteps, err)
	}
	if got := tensors.MustCopyFlatData[float32](ck.Variables["/model/applied"]); got[0] != 7 {
		t.Errorf("%v steps applied, want 7", got)
	}

	_, _, err = nanLoop(t, t.TempDir(), NaNSkipStep, 4, false)
	if err == nil || !strings.Contains(err.Error(), "top1 = NaN, but the optimizer applied the update") {
		t.Errorf("a NaN metric the optimizer did not skip: %v", err)
	}
	cfg := DefaultLoop()
	cfg.NaNPolicy = "ignore"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "nan_policy must be stop or skip_step") {
		t.Errorf("bad nan_policy: %v", err)
	}
}
