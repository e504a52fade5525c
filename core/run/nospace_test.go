package run

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/peco-dev/peco/core"
)

// fullWriter passes n more bytes to w, then writes what fits and fails
// with ENOSPC, as a full disk does.
type fullWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int
}

func (f *fullWriter) Write(b []byte) (int, error) {
	if len(b) <= f.n {
		f.n -= len(b)
		return f.w.Write(b)
	}
	k, _ := f.w.Write(b[:f.n])
	f.n = 0
	return k, &os.PathError{Op: "write", Path: "metrics.jsonl", Err: syscall.ENOSPC}
}

// TestMetricsOnFullDisk: a metrics record that does not fit fails with a
// clear error naming metrics.jsonl; the records before it survive, and the
// partial line the failed write left is dropped when the log is reopened
// (--resume).
func TestMetricsOnFullDisk(t *testing.T) {
	p := filepath.Join(t.TempDir(), core.MetricsFile)
	m, err := OpenMetricsLog(p)
	if err != nil {
		t.Fatal(err)
	}
	for step := 1; step <= 2; step++ {
		if err := m.Log(map[string]any{"step": step, "loss": 1.5}); err != nil {
			t.Fatal(err)
		}
	}
	m.out = &fullWriter{w: m.f, n: 10}
	err = m.Log(map[string]any{"step": 3, "loss": 1.5})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "writing "+p) {
		t.Errorf("error %v, want ENOSPC naming %s", err, p)
	}
	m.Close()
	if b, _ := os.ReadFile(p); b[len(b)-1] == '\n' {
		t.Fatal("the failed write left no partial line: the test injects nothing")
	}
	m, err = OpenMetricsLog(p)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	recs, err := ReadMetrics(p)
	if err != nil || len(recs) != 2 || recs[1]["step"] != 2.0 {
		t.Errorf("after reopening: %v, %v; want the 2 whole records", recs, err)
	}
}
