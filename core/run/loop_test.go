package run

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
)

// loopRun is a Loop of 4 epochs x 3 steps whose evaluation scores are
// scores[epoch]; the store's variable counts the steps. cancelAt cancels
// the context when that step (0-based, global) is about to run.
func loopRun(t *testing.T, dir string, resume bool, scores []float64, cancelAt int64) (LoopState, error) {
	t.Helper()
	return loopRunOut(t, dir, resume, scores, cancelAt, nil)
}

// loopRunOut is loopRun with the loop's messages written to out.
func loopRunOut(t *testing.T, dir string, resume bool, scores []float64, cancelAt int64, out io.Writer) (LoopState, error) {
	t.Helper()
	cfg := []byte("seed: 0\ntask: {type: test}\n")
	var rd *RunDir
	var err error
	if resume {
		rd, err = ResumeRunDir(dir, cfg, Meta{Name: "loop"})
	} else {
		rd, err = CreateRunDir(dir, cfg, Meta{Name: "loop"})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Finish(nil)
	store := model.NewStore()
	counter := store.Scope("/model").VariableWithValue("steps", []float32{0})
	env := &core.Env{Dir: dir, Record: rd, Resume: resume, Out: out}
	loop := &Loop{Config: LoopConfig{Epochs: len(scores), LogEvery: 1, KeepCheckpoints: 2}, Env: env, Store: store, StepsPerEpoch: 3, BatchSize: 1}
	st, err := loop.Restore()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loop.Step = func(s *LoopState) (map[string]float64, error) {
		if s.Step == cancelAt {
			cancel()
			return nil, context.Canceled
		}
		if err := counter.SetValue(tensors.FromFlatDataAndDimensions([]float32{float32(s.Step + 1)}, 1)); err != nil {
			return nil, err
		}
		return map[string]float64{"loss": 1}, nil
	}
	loop.EndEpoch = func(epoch int) (map[string]float64, float64, error) {
		return map[string]float64{"score": scores[epoch]}, scores[epoch], nil
	}
	return loop.Run(ctx, st)
}

// bestStep is the step of the run's best.ckpt.
func bestStep(t *testing.T, dir string) int64 {
	t.Helper()
	ck, err := ckpt.Load(filepath.Join(dir, core.CheckpointsDir, "best"+ckpt.Ext))
	if err != nil {
		t.Fatal(err)
	}
	return ck.Step
}

// TestLoopResumeKeepsBest kills runs around a new best epoch and resumes
// them: the best score, its epoch and best.ckpt must be those of an
// uninterrupted run, and resuming a finished run must not change them.
func TestLoopResumeKeepsBest(t *testing.T) {
	scores := []float64{0.5, 0.9, 0.7, 0.8} // the best is epoch 1, ending at step 6
	ref, err := loopRun(t, filepath.Join(t.TempDir(), "ref"), false, scores, -1)
	if err != nil {
		t.Fatal(err)
	}
	if ref.Best != 0.9 || ref.BestEpoch != 1 || ref.BestStep != 6 {
		t.Fatalf("uninterrupted run: best %v at epoch %d step %d, want 0.9, 1, 6", ref.Best, ref.BestEpoch, ref.BestStep)
	}
	for _, tc := range []struct {
		name     string
		cancelAt int64
		damage   func(dir string)
	}{
		{"killed in the epoch after the best", 7, nil},
		{"killed in the best epoch", 4, nil},
		{"killed after the best's checkpoint, before its copy", 7, func(dir string) {
			// best.ckpt still holds epoch 0.
			src := ckpt.StepPath(filepath.Join(dir, core.CheckpointsDir), 3)
			if err := ckpt.CopyFileAtomic(src, filepath.Join(dir, core.CheckpointsDir, "best"+ckpt.Ext)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			if _, err := loopRun(t, dir, false, scores, tc.cancelAt); !errors.Is(err, context.Canceled) {
				t.Fatalf("first part: %v, want cancelled", err)
			}
			if tc.damage != nil {
				// The epoch-0 checkpoint must still be there for the damage.
				if _, err := ckpt.Load(ckpt.StepPath(filepath.Join(dir, core.CheckpointsDir), 3)); err != nil {
					t.Skip("the epoch-0 checkpoint was pruned")
				}
				tc.damage(dir)
			}
			st, err := loopRun(t, dir, true, scores, -1)
			if err != nil {
				t.Fatal(err)
			}
			if st.Best != ref.Best || st.BestEpoch != ref.BestEpoch || st.Step != ref.Step {
				t.Errorf("resumed: best %v at epoch %d, %d steps; uninterrupted: %v at %d, %d steps", st.Best, st.BestEpoch, st.Step, ref.Best, ref.BestEpoch, ref.Step)
			}
			if got := bestStep(t, dir); got != 6 {
				t.Errorf("best.ckpt is step %d, want 6 (epoch 1)", got)
			}
			// Resuming the finished run changes nothing.
			again, err := loopRun(t, dir, true, scores, -1)
			if err != nil {
				t.Fatal(err)
			}
			if again.Best != ref.Best || again.BestEpoch != 1 || bestStep(t, dir) != 6 {
				t.Errorf("resuming the finished run: best %v at epoch %d, best.ckpt step %d", again.Best, again.BestEpoch, bestStep(t, dir))
			}
		})
	}
}

// TestLoopBestOfNegativeScores: Best starts at -1, which must not hide
// scores below it (e.g. a negated loss): the first evaluation is the best
// so far whatever its score.
func TestLoopBestOfNegativeScores(t *testing.T) {
	st, err := loopRun(t, filepath.Join(t.TempDir(), "run"), false, []float64{-3, -2, -5}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !st.HasBest() || st.Best != -2 || st.BestEpoch != 1 || st.BestStep != 6 {
		t.Errorf("best %v at epoch %d step %d, want -2 at epoch 1 step 6", st.Best, st.BestEpoch, st.BestStep)
	}
	if (LoopState{Best: -1}).HasBest() {
		t.Error("a fresh state claims a best")
	}
}
