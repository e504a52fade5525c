package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/optim"
)

// LoopConfig holds the training-loop settings every training task shares.
type LoopConfig struct {
	Epochs          int    `mapstructure:"epochs" doc:"passes over the training data"`
	LogEvery        int    `mapstructure:"log_every" doc:"write a metrics record every this many steps"`
	CheckpointEvery int    `mapstructure:"checkpoint_every" doc:"also checkpoint every this many steps (0: only at the end of each epoch)"`
	KeepCheckpoints int    `mapstructure:"keep_checkpoints" doc:"step checkpoints kept on disk (the newest ones)"`
	NaNPolicy       string `mapstructure:"nan_policy" doc:"a step whose loss, gradient norm or any logged metric is NaN or infinite: stop (fail the run at that step, the checkpoints before it intact) or skip_step (leave the weights as they were, count it in skipped_steps, go on)"`
}

// The values of LoopConfig.NaNPolicy.
const (
	NaNStop     = "stop"
	NaNSkipStep = "skip_step"
)

// Validate checks the loop settings.
func (c *LoopConfig) Validate() error {
	if c.Epochs <= 0 {
		return fmt.Errorf("epochs must be > 0, got %d", c.Epochs)
	}
	if c.LogEvery <= 0 || c.CheckpointEvery < 0 {
		return fmt.Errorf("log_every must be > 0, checkpoint_every >= 0")
	}
	if c.KeepCheckpoints < 2 {
		return fmt.Errorf("keep_checkpoints must be >= 2 (a damaged newest checkpoint needs an older one to resume from), got %d", c.KeepCheckpoints)
	}
	if c.NaNPolicy != "" && c.NaNPolicy != NaNStop && c.NaNPolicy != NaNSkipStep {
		return fmt.Errorf("nan_policy must be %s or %s, got %q", NaNStop, NaNSkipStep, c.NaNPolicy)
	}
	return nil
}

// DefaultLoop returns 1 epoch, logging every 20 steps, keeping 2
// checkpoints, stopping at the first NaN.
func DefaultLoop() LoopConfig {
	return LoopConfig{Epochs: 1, LogEvery: 20, KeepCheckpoints: 2, NaNPolicy: NaNStop}
}

// LoopState is where a training loop stands; it is saved in checkpoints.
type LoopState struct {
	// Step counts the optimizer steps done.
	Step int64 `json:"step"`
	// Epoch and Batch locate the next batch to train on.
	Epoch int `json:"epoch"`
	Batch int `json:"batch"`
	// Best holds the best validation score so far and its epoch.
	Best      float64 `json:"best"`
	BestEpoch int     `json:"best_epoch"`
	// BestStep is the step of the checkpoint copied to best.ckpt.
	BestStep int64 `json:"best_step"`
	// SkippedSteps counts the steps whose update was skipped for a NaN or
	// infinite loss or gradient norm (nan_policy skip_step).
	SkippedSteps int64 `json:"skipped_steps,omitempty"`
	// Extra holds task-specific state.
	Extra json.RawMessage `json:"extra,omitempty"`
	// Components holds the state of the loop's Stateful components (a
	// plugin's own state) by StateKey.
	Components map[string][]byte `json:"components,omitempty"`
}

// HasBest reports whether an evaluation has set Best (Best, BestEpoch and
// BestStep are meaningless before: Best is -1).
func (s LoopState) HasBest() bool { return s.BestStep > 0 }

// Loop runs epochs of training steps with logging, checkpoints and resume.
// A task provides the step and the end-of-epoch evaluation.
type Loop struct {
	Config        LoopConfig
	Env           *core.Env
	Store         *model.Store
	StepsPerEpoch int
	BatchSize     int
	// Step trains on batch b of epoch e and returns the metrics to log
	// (e.g. "loss") for that step.
	Step func(state *LoopState) (map[string]float64, error)
	// Status formats the progress status from the last step's metrics.
	Status func(m map[string]float64) string
	// EndEpoch evaluates after each epoch; it returns the metrics to log and
	// a score (higher is better) used to keep best.ckpt. May be nil.
	EndEpoch func(epoch int) (metrics map[string]float64, score float64, err error)
	// Stateful are components with state outside the store, saved into
	// every checkpoint and loaded on resume.
	Stateful []core.Stateful
}

// Restore loads the newest checkpoint of the run when resuming, returning the
// state to continue from (the zero state for a fresh run).
func (l *Loop) Restore() (LoopState, error) {
	var st LoopState
	st.Best = -1
	if !l.Env.Resume {
		return st, nil
	}
	ck, err := l.newestIntact()
	if err != nil {
		return st, err
	}
	if ck == nil {
		l.Env.Printf("resume: no checkpoint yet, starting from the beginning\n")
		return st, l.Env.Record.Rewind(-1)
	}
	p := ck.Path
	if err := ck.DecodeState(&st); err != nil {
		return st, err
	}
	if err := ck.Restore(l.Store); err != nil {
		return st, err
	}
	for _, c := range l.Stateful {
		if err := c.LoadState(st.Components[c.StateKey()]); err != nil {
			return st, fmt.Errorf("resume: restoring %s from %s: %w", c.StateKey(), p, err)
		}
	}
	// A run killed between writing a new best step checkpoint and copying it
	// to best.ckpt gets the copy now.
	dir := l.Env.Path(core.CheckpointsDir)
	if _, err := os.Stat(ckpt.StepPath(dir, st.BestStep)); err == nil && st.BestStep > 0 {
		if b, err := ckpt.Load(filepath.Join(dir, "best"+ckpt.Ext)); err != nil || b.Step != st.BestStep {
			if err := l.copyBest(st); err != nil {
				return st, err
			}
		}
	}
	l.Env.Printf("resumed from %s (step %d, epoch %d, batch %d)\n", p, st.Step, st.Epoch, st.Batch)
	return st, l.Env.Record.Rewind(st.Step)
}

// newestIntact loads the newest intact checkpoint of the run: the newest
// step-*.ckpt, else last.ckpt (a copy of the final step), else the older
// step checkpoints, newest first, else best.ckpt. A damaged one (truncated,
// corrupt: ckpt.ErrDamaged) is reported, renamed to NAME.damaged (kept for
// inspection, out of the resume and pruning) and passed over. It returns nil
// when the run has no checkpoint.
func (l *Loop) newestIntact() (*ckpt.Checkpoint, error) {
	dir := l.Env.Path(core.CheckpointsDir)
	steps, err := ckpt.List(dir)
	if err != nil {
		return nil, err
	}
	var cands []string
	for i := len(steps) - 1; i >= 0; i-- {
		cands = append(cands, steps[i])
	}
	last := filepath.Join(dir, "last"+ckpt.Ext)
	if len(cands) > 0 {
		cands = append(cands[:1], append([]string{last}, cands[1:]...)...)
	} else {
		cands = append(cands, last)
	}
	cands = append(cands, filepath.Join(dir, "best"+ckpt.Ext))
	var damaged []string
	for _, p := range cands {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			continue
		}
		ck, err := ckpt.Load(p)
		if err == nil {
			if len(damaged) > 0 {
				l.Env.Printf("resume: falling back to %s (step %d)\n", p, ck.Step)
			}
			return ck, nil
		}
		if !errors.Is(err, ckpt.ErrDamaged) {
			return nil, fmt.Errorf("resume: %w", err)
		}
		aside := p + ".damaged"
		if rerr := os.Rename(p, aside); rerr != nil {
			return nil, fmt.Errorf("resume: %v; moving it aside: %w", err, rerr)
		}
		l.Env.Printf("resume: %v; moved to %s, trying an older checkpoint\n", err, aside)
		damaged = append(damaged, p)
	}
	if len(damaged) > 0 {
		return nil, fmt.Errorf("resume: every checkpoint of %s is damaged (%s, moved to *.damaged): nothing intact to continue from; start the run again in another directory",
			l.Env.Dir, strings.Join(damaged, ", "))
	}
	return nil, nil
}

// Run trains from state st to the end.
func (l *Loop) Run(ctx context.Context, st LoopState) (LoopState, error) {
	total := l.Config.Epochs * l.StepsPerEpoch
	prog := l.Env.StartProgress(total, "train")
	defer prog.Finish()
	prog.Advance(int(st.Step), 0, "")
	for st.Epoch < l.Config.Epochs {
		for st.Batch < l.StepsPerEpoch {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			t0 := time.Now()
			m, err := l.Step(&st)
			if err != nil {
				return st, fmt.Errorf("epoch %d step %d: %w", st.Epoch, st.Step, err)
			}
			dt := time.Since(t0)
			st.Step++
			st.Batch++
			bad := nonFinite(m)
			if len(bad) > 0 {
				if err := l.diverged(&st, bad); err != nil {
					// The step's record shows what went wrong; nothing of this
					// state is checkpointed.
					if lerr := l.Env.Log(l.trainRecord(st, m, dt)); lerr != nil {
						return st, fmt.Errorf("%w (and logging it: %v)", err, lerr)
					}
					return st, err
				}
			}
			status := ""
			if l.Status != nil {
				status = l.Status(m)
			}
			prog.Advance(1, l.BatchSize, status)
			if st.Step%int64(l.Config.LogEvery) == 0 || st.Batch == l.StepsPerEpoch {
				if err := l.Env.Log(l.trainRecord(st, m, dt)); err != nil {
					return st, err
				}
			}
			if l.Config.CheckpointEvery > 0 && st.Step%int64(l.Config.CheckpointEvery) == 0 && st.Batch < l.StepsPerEpoch {
				if err := l.checkpoint(st); err != nil {
					return st, err
				}
			}
		}
		epoch := st.Epoch
		st.Epoch++
		st.Batch = 0
		if l.EndEpoch != nil {
			m, score, err := l.EndEpoch(epoch)
			if err != nil {
				return st, fmt.Errorf("evaluating epoch %d: %w", epoch, err)
			}
			rec := map[string]any{"step": st.Step, "epoch": epoch, "phase": "eval"}
			for k, v := range m {
				rec[k] = v
			}
			if err := l.Env.Log(rec); err != nil {
				return st, err
			}
			// The best score is part of the state the checkpoint saves, so a
			// resumed run knows it; best.ckpt is a copy of that checkpoint.
			// The first evaluation is the best so far whatever its score (Best
			// starts at -1, below no score only by convention); NaN never is.
			newBest := !math.IsNaN(score) && (!st.HasBest() || score > st.Best)
			if newBest {
				st.Best, st.BestEpoch, st.BestStep = score, epoch, st.Step
			}
			if err := l.checkpoint(st); err != nil {
				return st, err
			}
			if newBest {
				if err := l.copyBest(st); err != nil {
					return st, err
				}
			}
		} else if err := l.checkpoint(st); err != nil {
			return st, err
		}
	}
	last := ckpt.StepPath(l.Env.Path(core.CheckpointsDir), st.Step)
	if _, err := os.Stat(last); err == nil {
		if err := ckpt.CopyFileAtomic(last, filepath.Join(l.Env.Path(core.CheckpointsDir), "last"+ckpt.Ext)); err != nil {
			return st, err
		}
	}
	return st, nil
}

// trainRecord is the metrics record of the step just done.
func (l *Loop) trainRecord(st LoopState, m map[string]float64, dt time.Duration) map[string]any {
	rec := map[string]any{"step": st.Step, "epoch": st.Epoch, "phase": "train",
		"images_per_sec": float64(l.BatchSize) / dt.Seconds()}
	if l.Config.NaNPolicy == NaNSkipStep {
		rec["skipped_steps"] = st.SkippedSteps
	}
	for k, v := range m {
		rec[k] = v
	}
	return rec
}

// DivergedError reports a step whose metrics were NaN or infinite under
// nan_policy stop: the run stops there, before any checkpoint of that state.
type DivergedError struct {
	// Step is the step (as metrics.jsonl counts them), Epoch and Batch the
	// batch it trained on.
	Step         int64
	Epoch, Batch int
	// Metrics lists the non-finite metrics as "name = value".
	Metrics []string
	// LastGood is the newest checkpoint, written before the step ("" if
	// none).
	LastGood string
}

func (e *DivergedError) Error() string {
	last := "no checkpoint was written before it"
	if e.LastGood != "" {
		last = "the newest checkpoint, " + e.LastGood + ", is from before it and intact"
	}
	return fmt.Sprintf("training diverged at step %d (epoch %d, batch %d): %s; the run stopped without checkpointing this state (%s); lower the lr, or set task.nan_policy: %s to skip such steps",
		e.Step, e.Epoch, e.Batch, strings.Join(e.Metrics, ", "), last, NaNSkipStep)
}

// diverged handles a step whose metrics bad are NaN or infinite: under
// nan_policy stop it returns a DivergedError; under skip_step it counts the
// step, which the optimizer left out (optim.AdamW applies no update whose
// loss or gradient norm is not finite), and fails only when the optimizer
// did apply it (a metric other than the loss and gradient norm went bad).
func (l *Loop) diverged(st *LoopState, bad []string) error {
	if l.Config.NaNPolicy != NaNSkipStep {
		last, _ := ckpt.Latest(l.Env.Path(core.CheckpointsDir))
		return &DivergedError{Step: st.Step, Epoch: st.Epoch, Batch: st.Batch - 1, Metrics: bad, LastGood: last}
	}
	st.SkippedSteps++
	if got := optim.Skipped(l.Store); got != st.SkippedSteps {
		return fmt.Errorf("step %d (epoch %d, batch %d): %s, but the optimizer applied the update (it skips a step only when the loss or the gradient norm is not finite; %d skipped, the loop counted %d): stopping",
			st.Step, st.Epoch, st.Batch-1, strings.Join(bad, ", "), got, st.SkippedSteps)
	}
	l.Env.Printf("step %d: %s: update skipped (nan_policy %s, %d skipped so far)\n", st.Step, strings.Join(bad, ", "), NaNSkipStep, st.SkippedSteps)
	return nil
}

// nonFinite lists the NaN or infinite metrics of m as "name = value",
// sorted.
func nonFinite(m map[string]float64) []string {
	var bad []string
	for k, v := range m {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad = append(bad, fmt.Sprintf("%s = %v", k, v))
		}
	}
	sort.Strings(bad)
	return bad
}

func (l *Loop) checkpoint(st LoopState) error {
	dir := l.Env.Path(core.CheckpointsDir)
	for _, c := range l.Stateful {
		data, err := c.SaveState(st.Step)
		if err != nil {
			return fmt.Errorf("checkpoint at step %d: saving %s: %w", st.Step, c.StateKey(), err)
		}
		if st.Components == nil {
			st.Components = map[string][]byte{}
		}
		st.Components[c.StateKey()] = data
	}
	if err := ckpt.Save(ckpt.StepPath(dir, st.Step), l.Store, st.Step, st); err != nil {
		return err
	}
	return ckpt.Prune(dir, l.Config.KeepCheckpoints)
}

// copyBest copies the step checkpoint of st.BestStep to best.ckpt.
func (l *Loop) copyBest(st LoopState) error {
	dir := l.Env.Path(core.CheckpointsDir)
	return ckpt.CopyFileAtomic(ckpt.StepPath(dir, st.BestStep), filepath.Join(dir, "best"+ckpt.Ext))
}
