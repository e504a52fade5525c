package run

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peco-dev/peco/core"
)

func readMeta(t *testing.T, dir string) Meta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, core.MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRunDirContents(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cfg := []byte("seed: 1\ntask:\n  type: x\n")
	r, err := CreateRunDir(dir, cfg, Meta{Name: "n", Seed: 1, Backend: "go", Command: []string{"peco", "run"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{core.ConfigFile, core.MetaFile, core.MetricsFile, core.CheckpointsDir, core.ImagesDir} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("run directory lacks %s: %v", p, err)
		}
	}
	if m := readMeta(t, dir); m.Status != StatusRunning || m.Seed != 1 || m.Backend != "go" {
		t.Errorf("meta at start = %+v", m)
	}
	if err := r.Metrics.Log(map[string]any{"step": 1, "loss": 2.5}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetSummary(map[string]any{"top1": 0.9}); err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(nil); err != nil {
		t.Fatal(err)
	}
	m := readMeta(t, dir)
	if m.Status != StatusCompleted || m.End.IsZero() || m.Summary["top1"] != 0.9 {
		t.Errorf("meta at end = %+v", m)
	}
	recs, err := ReadMetrics(filepath.Join(dir, core.MetricsFile))
	if err != nil || len(recs) != 1 || recs[0]["loss"] != 2.5 || recs[0]["time"] == nil {
		t.Errorf("metrics = %v, %v", recs, err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, core.ConfigFile))
	if string(got) != string(cfg) {
		t.Errorf("config.yaml = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, core.MetaFile)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("meta.json mode: %v, %v", fi.Mode(), err)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	// A second fresh run in the same directory is refused.
	if _, err := CreateRunDir(dir, cfg, Meta{}); err == nil || !strings.Contains(err.Error(), "already holds a run") {
		t.Errorf("second CreateRunDir: %v", err)
	}
}

func TestRunDirFailureRecorded(t *testing.T) {
	dir := t.TempDir()
	r, err := CreateRunDir(dir, []byte("a: 1\n"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(os.ErrNotExist); err != nil {
		t.Fatal(err)
	}
	if m := readMeta(t, dir); m.Status != StatusFailed || !strings.Contains(m.Error, "not exist") {
		t.Errorf("meta = %+v", m)
	}
}

func TestResumeRefusesChangedConfig(t *testing.T) {
	dir := t.TempDir()
	orig := "seed: 1\ntask:\n  lr: 0.001\n  sizes: [1, 2]\n  old: x\n"
	r, err := CreateRunDir(dir, []byte(orig), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	r.Finish(nil)
	_, err = ResumeRunDir(dir, []byte("seed: 1\ntask:\n  lr: 0.002\n  sizes: [1, 3]\n  nan_policy: stop\n"), Meta{})
	if err == nil {
		t.Fatal("resume with a changed config was accepted")
	}
	for _, want := range []string{"refusing", "\n  task.lr: 0.001 -> 0.002", "\n  task.sizes.1: 2 -> 3",
		"\n  task.nan_policy: (absent) -> stop", "\n  task.old: x -> (absent)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "seed") {
		t.Errorf("error %q lists an unchanged key", err)
	}
	r2, err := ResumeRunDir(dir, []byte(orig), Meta{})
	if err != nil {
		t.Fatalf("resume with the same config: %v", err)
	}
	r2.Finish(nil)
	if m := readMeta(t, dir); len(m.Resumes) != 1 {
		t.Errorf("resumes = %v", m.Resumes)
	}
	if _, err := ResumeRunDir(filepath.Join(dir, "nothing"), nil, Meta{}); err == nil || !strings.Contains(err.Error(), "no run there") {
		t.Errorf("resume of an empty dir: %v", err)
	}
}

func TestMetricsPartialLineAndTruncate(t *testing.T) {
	p := filepath.Join(t.TempDir(), core.MetricsFile)
	text := `{"step":1,"loss":3}` + "\n" + `{"step":2,"loss":2}` + "\n" + `{"step":3,"loss":1}` + "\n" + `{"step":4,"lo`
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := OpenMetricsLog(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.TruncateAfterStep(2); err != nil {
		t.Fatal(err)
	}
	if err := m.Log(map[string]any{"step": 3, "loss": 0.5}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	recs, err := ReadMetrics(p)
	if err != nil {
		t.Fatal(err)
	}
	var steps []float64
	for _, r := range recs {
		steps = append(steps, r["step"].(float64))
	}
	if len(steps) != 3 || steps[0] != 1 || steps[1] != 2 || steps[2] != 3 || recs[2]["loss"] != 0.5 {
		t.Errorf("records after truncation = %v", recs)
	}
}
