package core

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/gomlx/compute"
)

// Env is what a Task receives to do its work: the compute backend, the run
// directory with its metrics log and checkpoints, the run's seed, and where to
// report progress.
type Env struct {
	// Backend computes the task's graphs.
	Backend compute.Backend
	// Seed drives model initialisation, data order, augmentation and masking.
	Seed int64
	// Run is the run directory.
	Run *RunDir
	// Resume is true when the run continues from its newest checkpoint.
	Resume bool
	// Out receives human-readable output (results, summaries).
	Out io.Writer
	// Progress creates progress reporters for long work.
	Progress ProgressFactory
}

// Printf writes a human-readable line to Out.
func (e *Env) Printf(format string, args ...any) {
	if e.Out != nil {
		fmt.Fprintf(e.Out, format, args...)
	}
}

// Log appends one record to the run's metrics.jsonl.
func (e *Env) Log(record map[string]any) error { return e.Run.Metrics.Log(record) }

// Path returns a path inside the run directory.
func (e *Env) Path(elem ...string) string {
	return filepath.Join(append([]string{e.Run.Dir}, elem...)...)
}
