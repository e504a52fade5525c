package run

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

func readMeta(t *testing.T, dir string) Meta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, MetaFile))
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
	for _, p := range []string{ConfigFile, MetaFile, MetricsFile, CheckpointsDir, ImagesDir} {
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
	recs, err := ReadMetrics(filepath.Join(dir, MetricsFile))
	if err != nil || len(recs) != 1 || recs[0]["loss"] != 2.5 || recs[0]["time"] == nil {
		t.Errorf("metrics = %v, %v", recs, err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	if string(got) != string(cfg) {
		t.Errorf("config.yaml = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, MetaFile)); err != nil || fi.Mode().Perm() != 0o644 {
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
	r, err := CreateRunDir(dir, []byte("seed: 1\nlr: 0.1\n"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	r.Finish(nil)
	_, err = ResumeRunDir(dir, []byte("seed: 1\nlr: 0.2\n"), Meta{})
	if err == nil {
		t.Fatal("resume with a changed config was accepted")
	}
	for _, want := range []string{"refusing", "- lr: 0.1", "+ lr: 0.2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	r2, err := ResumeRunDir(dir, []byte("seed: 1\nlr: 0.1\n"), Meta{})
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
	p := filepath.Join(t.TempDir(), MetricsFile)
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

func TestCheckpointRoundTrip(t *testing.T) {
	store := model.NewStore()
	w := store.Scope("/model").VariableWithValue("w", [][]float32{{1, 2}, {3, 4}})
	b := store.Scope("/model").VariableWithValue("b", []int32{7, 8, 9})
	dir := t.TempDir()
	p := CheckpointPath(dir, 12)
	if err := SaveCheckpoint(p, store, 12, LoopState{Step: 12, Epoch: 1, Batch: 3}); err != nil {
		t.Fatal(err)
	}
	ck, err := LoadCheckpoint(p)
	if err != nil {
		t.Fatal(err)
	}
	var st LoopState
	if err := ck.DecodeState(&st); err != nil || st.Epoch != 1 || st.Batch != 3 || ck.Step != 12 {
		t.Errorf("state = %+v, %v", st, err)
	}
	// Restore into a fresh store: existing variables are set, missing ones load on creation.
	s2 := model.NewStore()
	w2 := s2.Scope("/model").VariableWithShape("w", shapes.Make(dtypes.Float32, 2, 2))
	if err := ck.Restore(s2); err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[float32](w2.MustValue()); got[3] != 4 {
		t.Errorf("w restored = %v", got)
	}
	b2 := s2.Scope("/model").VariableWithShape("b", shapes.Make(dtypes.Int32, 3))
	if got := tensors.MustCopyFlatData[int32](b2.MustValue()); got[0] != 7 || got[2] != 9 {
		t.Errorf("b loaded on creation = %v", got)
	}
	_ = w
	_ = b
	// A shape mismatch names the variable.
	s3 := model.NewStore()
	s3.Scope("/model").VariableWithShape("w", shapes.Make(dtypes.Float32, 3, 2))
	if err := ck.Restore(s3); err == nil || !strings.Contains(err.Error(), "/model/w") {
		t.Errorf("mismatch error = %v", err)
	}
	// Damaged files are reported, naming the file.
	raw, _ := os.ReadFile(p)
	bad := filepath.Join(dir, "bad.ckpt")
	os.WriteFile(bad, raw[:len(raw)-5], 0o644)
	if _, err := LoadCheckpoint(bad); err == nil || !strings.Contains(err.Error(), "bad.ckpt") {
		t.Errorf("truncated checkpoint: %v", err)
	}
	os.WriteFile(bad, []byte("hello"), 0o644)
	if _, err := LoadCheckpoint(bad); err == nil || !strings.Contains(err.Error(), "not a peco checkpoint") {
		t.Errorf("not a checkpoint: %v", err)
	}
	// Pruning keeps the newest.
	for _, s := range []int64{1, 2, 3} {
		if err := SaveCheckpoint(CheckpointPath(dir, s), store, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := PruneCheckpoints(dir, 2); err != nil {
		t.Fatal(err)
	}
	l, _ := ListCheckpoints(dir)
	if len(l) != 2 || !strings.HasSuffix(l[1], CheckpointPath("", 12)) {
		t.Errorf("after pruning: %v", l)
	}
}
