package run

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/registry"
)

// Run statuses recorded in meta.json.
const (
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Meta is the content of a run's meta.json: what ran, where and how it ended.
type Meta struct {
	Name         string    `json:"name"`
	PecoVersion  string    `json:"peco_version"`
	GoVersion    string    `json:"go_version"`
	GoMLXVersion string    `json:"gomlx_version"`
	Backend      string    `json:"backend"`
	Device       string    `json:"device"`
	Seed         int64     `json:"seed"`
	Command      []string  `json:"command"`
	Host         string    `json:"host"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end,omitzero"`
	Status       string    `json:"status"`
	Error        string    `json:"error,omitempty"`
	// Resumes lists the times the run was resumed, oldest first.
	Resumes []time.Time `json:"resumes,omitempty"`
	// Plugins lists the out-of-process plugins the run uses: name, kind,
	// version, path and sha256.
	Plugins []core.PluginUse `json:"plugins,omitempty"`
	// Skipped lists the inputs left out by datasets with skip_bad: true.
	Skipped *SkippedInputs `json:"skipped,omitempty"`
	// Summary holds the final metrics a task reports.
	Summary map[string]any `json:"summary,omitempty"`
}

// RunDir is one run's directory: the resolved config, meta.json,
// metrics.jsonl, checkpoints/ and images/.
type RunDir struct {
	Dir     string
	Metrics *MetricsLog
	// Lock is the run directory's lock, held until Finish.
	Lock *Lock
	// Removed lists the temporary files of a killed writer that
	// ResumeRunDir removed (half-written checkpoints, metrics, meta).
	Removed []string

	mu   sync.Mutex
	meta Meta
}

// CreateRunDir makes a new run directory holding the resolved config and a
// meta.json with status "running", and locks it (core.LockFile) until
// Finish. It refuses a directory that already holds a run (resume it, or
// choose another directory) and one another process is writing.
func CreateRunDir(dir string, resolvedConfig []byte, meta Meta) (*RunDir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating run directory: %w", err)
	}
	lock, err := AcquireLock(dir, meta.Command)
	if err != nil {
		return nil, err
	}
	r, err := createRunDir(dir, resolvedConfig, meta, lock)
	if err != nil {
		lock.Release()
		return nil, err
	}
	return r, nil
}

func createRunDir(dir string, resolvedConfig []byte, meta Meta, lock *Lock) (*RunDir, error) {
	if _, err := os.Stat(filepath.Join(dir, core.ConfigFile)); err == nil {
		return nil, fmt.Errorf("run directory %s already holds a run: resume it with --resume or choose another --out", dir)
	}
	for _, sub := range []string{core.CheckpointsDir, core.ImagesDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("creating run directory: %w", err)
		}
	}
	if err := ckpt.WriteFileAtomic(filepath.Join(dir, core.ConfigFile), resolvedConfig); err != nil {
		return nil, err
	}
	meta.Status = StatusRunning
	return openRunDir(dir, meta, lock)
}

// openRunDir writes meta.json (status running) and opens the metrics log.
func openRunDir(dir string, meta Meta, lock *Lock) (*RunDir, error) {
	meta.Status = StatusRunning
	r := &RunDir{Dir: dir, meta: meta, Lock: lock}
	if err := r.writeMeta(); err != nil {
		return nil, err
	}
	m, err := OpenMetricsLog(filepath.Join(dir, core.MetricsFile))
	if err != nil {
		return nil, err
	}
	r.Metrics = m
	return r, nil
}

// ResumeRunDir reopens an existing run directory to continue it, locking it
// (core.LockFile) until Finish; a directory another process is writing is
// refused. The run's recorded config must equal resolvedConfig: a run is
// never continued under a different config; the error lists the keys that
// differ.
func ResumeRunDir(dir string, resolvedConfig []byte, meta Meta) (*RunDir, error) {
	if _, err := os.Stat(filepath.Join(dir, core.ConfigFile)); err != nil {
		return nil, fmt.Errorf("resuming %s: no run there to resume: %w", dir, err)
	}
	lock, err := AcquireLock(dir, meta.Command)
	if err != nil {
		return nil, fmt.Errorf("resuming %s: %w", dir, err)
	}
	r, err := resumeRunDir(dir, resolvedConfig, meta, lock)
	if err != nil {
		lock.Release()
		return nil, err
	}
	// Holding the lock, no one else writes here: temporary files are what a
	// killed writer left (ckpt.WriteFileAtomic's ".NAME.tmp-*").
	for _, sub := range []string{"", core.CheckpointsDir, core.ImagesDir} {
		tmps, _ := filepath.Glob(filepath.Join(dir, sub, ".*.tmp-*"))
		for _, p := range tmps {
			if err := os.Remove(p); err != nil {
				r.Finish(err)
				return nil, fmt.Errorf("resuming %s: removing the temporary file %s of a killed run: %w", dir, p, err)
			}
			r.Removed = append(r.Removed, p)
		}
	}
	return r, nil
}

func resumeRunDir(dir string, resolvedConfig []byte, meta Meta, lock *Lock) (*RunDir, error) {
	old, err := os.ReadFile(filepath.Join(dir, core.ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("resuming %s: no run there to resume: %w", dir, err)
	}
	if !bytes.Equal(old, resolvedConfig) {
		return nil, fmt.Errorf("resuming %s: the config differs from the run's recorded %s, refusing to continue it under another config (start a new run instead):\n%s",
			dir, core.ConfigFile, diffConfigs(old, resolvedConfig))
	}
	var prev Meta
	if b, err := os.ReadFile(filepath.Join(dir, core.MetaFile)); err == nil {
		if err := json.Unmarshal(b, &prev); err != nil {
			return nil, fmt.Errorf("resuming %s: reading %s: %w", dir, core.MetaFile, err)
		}
	}
	meta.Start = prev.Start
	meta.Resumes = append(prev.Resumes, time.Now().UTC())
	meta.Status = StatusRunning
	for _, sub := range []string{core.CheckpointsDir, core.ImagesDir} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("resuming %s: %w", dir, err)
		}
	}
	return openRunDir(dir, meta, lock)
}

// Meta returns a copy of the run's metadata.
func (r *RunDir) Meta() Meta {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.meta
}

// SetSummary records final metrics in meta.json.
func (r *RunDir) SetSummary(summary map[string]any) error {
	r.mu.Lock()
	r.meta.Summary, _ = jsonSafe(summary).(map[string]any) // NaN and infinities as strings
	r.mu.Unlock()
	return r.writeMeta()
}

// Log appends a record to metrics.jsonl (core.Recorder).
func (r *RunDir) Log(record map[string]any) error { return r.Metrics.Log(record) }

// Rewind drops the metrics records after step (core.Recorder).
func (r *RunDir) Rewind(step int64) error { return r.Metrics.TruncateAfterStep(step) }

// Finish records how the run ended (err nil: completed) and closes the log.
func (r *RunDir) Finish(runErr error) error {
	r.mu.Lock()
	r.meta.End = time.Now().UTC()
	switch {
	case runErr == nil:
		r.meta.Status = StatusCompleted
		r.meta.Error = ""
	case errors.Is(runErr, errCancelled):
		r.meta.Status = StatusCancelled
		r.meta.Error = runErr.Error()
	default:
		r.meta.Status = StatusFailed
		r.meta.Error = runErr.Error()
	}
	r.mu.Unlock()
	err := r.writeMeta()
	if cerr := r.Metrics.Close(); err == nil {
		err = cerr
	}
	if lerr := r.Lock.Release(); err == nil {
		err = lerr
	}
	return err
}

func (r *RunDir) writeMeta() error {
	r.mu.Lock()
	b, err := json.MarshalIndent(r.meta, "", "  ")
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encoding %s: %w", core.MetaFile, err)
	}
	return ckpt.WriteFileAtomic(filepath.Join(r.Dir, core.MetaFile), append(b, '\n'))
}

// diffConfigs lists the keys whose values differ between the run's config
// and the current one, one "key.path: old -> new" per line (a key only one
// side has shows "(absent)" on the other); configs that do not parse are
// compared line by line.
func diffConfigs(old, cur []byte) string {
	a, err1 := registry.ParseTree("run config", old)
	b, err2 := registry.ParseTree("config", cur)
	if err1 != nil || err2 != nil {
		return diffLines(string(old), string(cur))
	}
	fa, fb := map[string]string{}, map[string]string{}
	flatten(a.Root, "", fa)
	flatten(b.Root, "", fb)
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	var lines []string
	for k := range keys {
		va, oka := fa[k]
		vb, okb := fb[k]
		switch {
		case !oka:
			va = "(absent)"
		case !okb:
			vb = "(absent)"
		}
		if !oka || !okb || va != vb {
			lines = append(lines, fmt.Sprintf("  %s: %s -> %s", k, va, vb))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// flatten puts the scalar leaves of a parsed config into out by key path
// (list items by index); empty maps and lists are leaves too.
func flatten(v any, path string, out map[string]string) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 && path != "" {
			out[path] = "{}"
		}
		for k, c := range x {
			flatten(c, join(k), out)
		}
	case []any:
		if len(x) == 0 {
			out[path] = "[]"
		}
		for i, c := range x {
			flatten(c, join(fmt.Sprint(i)), out)
		}
	default:
		out[path] = fmt.Sprint(x)
	}
}

// diffLines lists the lines that differ between two texts, for messages.
func diffLines(old, cur string) string {
	oldSet := map[string]bool{}
	for _, l := range strings.Split(old, "\n") {
		oldSet[l] = true
	}
	curSet := map[string]bool{}
	for _, l := range strings.Split(cur, "\n") {
		curSet[l] = true
	}
	var b strings.Builder
	for _, l := range strings.Split(old, "\n") {
		if !curSet[l] && strings.TrimSpace(l) != "" {
			fmt.Fprintf(&b, "  - %s\n", l)
		}
	}
	for _, l := range strings.Split(cur, "\n") {
		if !oldSet[l] && strings.TrimSpace(l) != "" {
			fmt.Fprintf(&b, "  + %s\n", l)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// CompletedRun returns the meta.json of the run in dir when it records a
// completed run, nil otherwise (no run, running, failed, cancelled).
func CompletedRun(dir string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, core.MetaFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, core.MetaFile), err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, core.MetaFile), err)
	}
	if m.Status != StatusCompleted {
		return nil, nil
	}
	return &m, nil
}

// MetricsLog appends one JSON object per line to metrics.jsonl. Each record
// is written with a single write call, so a killed run leaves at most one
// partial last line, which OpenMetricsLog removes.
type MetricsLog struct {
	mu   sync.Mutex
	f    *os.File
	out  io.Writer // f; tests put a failing writer (a full disk) here
	path string
}

// OpenMetricsLog opens (or creates) a metrics log for appending, dropping a
// trailing partial line left by a killed run.
func OpenMetricsLog(path string) (*MetricsLog, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 && b[len(b)-1] != '\n' {
		keep := b[:bytes.LastIndexByte(b, '\n')+1]
		if err := ckpt.WriteFileAtomic(path, keep); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening metrics log: %w", err)
	}
	return &MetricsLog{f: f, out: f, path: path}, nil
}

// Log appends a record, adding a "time" field (RFC 3339, UTC).
func (m *MetricsLog) Log(record map[string]any) error {
	rec := make(map[string]any, len(record)+1)
	for k, v := range record {
		rec[k] = jsonSafe(v) // NaN and infinities as strings (jsonsafe.go)
	}
	rec["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding metrics record: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.out == nil {
		return fmt.Errorf("writing %s: the log is closed", m.path)
	}
	if _, err := m.out.Write(append(b, '\n')); err != nil {
		// A partial line may be left: the next OpenMetricsLog drops it.
		return fmt.Errorf("writing %s: %w", m.path, err)
	}
	return nil
}

// TruncateAfterStep drops records whose "step" is greater than step: the
// records a killed run wrote after its last checkpoint, which the resumed run
// writes again.
func (m *MetricsLog) TruncateAfterStep(step int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := os.ReadFile(m.path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", m.path, err)
	}
	var keep bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var rec struct {
			Step *int64 `json:"step"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Step != nil && *rec.Step > step {
			continue
		}
		keep.Write(sc.Bytes())
		keep.WriteByte('\n')
	}
	if keep.Len() == len(b) {
		return nil
	}
	if err := m.f.Close(); err != nil {
		return err
	}
	if err := ckpt.WriteFileAtomic(m.path, keep.Bytes()); err != nil {
		return err
	}
	f, err := os.OpenFile(m.path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("reopening %s: %w", m.path, err)
	}
	m.f, m.out = f, f
	return nil
}

// Close closes the log file.
func (m *MetricsLog) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return nil
	}
	err := m.f.Close()
	m.f, m.out = nil, nil
	return err
}

// ReadMetrics reads every record of a metrics.jsonl file.
func ReadMetrics(path string) ([]map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	var out []map[string]any
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, i+1, err)
		}
		out = append(out, rec)
	}
	return out, nil
}
