package run

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
)

// TestResumeFallsBackFromDamagedCheckpoint damages the newest checkpoint of
// a killed run (truncated, one byte flipped): --resume names it, moves it
// aside, continues from the previous one and ends as an uninterrupted run;
// with every checkpoint damaged it refuses, naming them.
func TestResumeFallsBackFromDamagedCheckpoint(t *testing.T) {
	scores := []float64{0.5, 0.9, 0.7, 0.8}
	ref, err := loopRun(t, filepath.Join(t.TempDir(), "ref"), false, scores, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-7] }},
		{"one byte flipped", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			// Killed at step 8: checkpoints of steps 3 and 6 are kept.
			if _, err := loopRun(t, dir, false, scores, 8); !errors.Is(err, context.Canceled) {
				t.Fatalf("first part: %v", err)
			}
			ckDir := filepath.Join(dir, core.CheckpointsDir)
			newest := ckpt.StepPath(ckDir, 6)
			b, err := os.ReadFile(newest)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(newest, tc.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			st, err := loopRunOut(t, dir, true, scores, -1, &out)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{newest, "damaged checkpoint", newest + ".damaged", "falling back to " + ckpt.StepPath(ckDir, 3), "resumed from " + ckpt.StepPath(ckDir, 3)} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("resume output lacks %q:\n%s", want, out.String())
				}
			}
			if st.Step != ref.Step || st.Best != ref.Best || st.BestEpoch != ref.BestEpoch || bestStep(t, dir) != 6 {
				t.Errorf("resumed: %d steps, best %v at epoch %d; uninterrupted: %d, %v, %d", st.Step, st.Best, st.BestEpoch, ref.Step, ref.Best, ref.BestEpoch)
			}
			if _, err := os.Stat(newest + ".damaged"); err != nil {
				t.Errorf("the damaged file was not kept aside: %v", err)
			}
		})
	}
	t.Run("every checkpoint damaged", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "run")
		if _, err := loopRun(t, dir, false, scores, 8); !errors.Is(err, context.Canceled) {
			t.Fatalf("first part: %v", err)
		}
		ckDir := filepath.Join(dir, core.CheckpointsDir)
		entries, _ := os.ReadDir(ckDir)
		for _, e := range entries {
			if err := os.WriteFile(filepath.Join(ckDir, e.Name()), []byte("PECO-CHECK"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		rd, err := ResumeRunDir(dir, []byte("seed: 0\ntask: {type: test}\n"), Meta{})
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Finish(nil)
		loop := &Loop{Config: DefaultLoop(), Env: &core.Env{Dir: dir, Record: rd, Resume: true}}
		_, err = loop.Restore()
		if err == nil || !strings.Contains(err.Error(), "every checkpoint") || !strings.Contains(err.Error(), ckpt.StepPath(ckDir, 3)) {
			t.Errorf("all damaged: %v", err)
		}
	})
}
