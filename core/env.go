package core

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/gomlx/compute"
)

// Files and folders of a run directory. Every run has this layout; a config
// that names an earlier run (a `from:` key) is resolved against it.
const (
	// ConfigFile holds the run's fully resolved config.
	ConfigFile = "config.yaml"
	// MetaFile records versions, backend, seed, command line and status.
	MetaFile = "meta.json"
	// MetricsFile holds one JSON record per logged step and evaluation.
	MetricsFile = "metrics.jsonl"
	// PluginLogFile collects the stderr of the run's plugins, each line
	// prefixed with the plugin's name.
	PluginLogFile = "plugins.log"
	// CheckpointsDir holds step-*.ckpt, best.ckpt and last.ckpt.
	CheckpointsDir = "checkpoints"
	// ImagesDir holds the pictures a task writes.
	ImagesDir = "images"
	// LockFile is held by the process writing the run (pid, host, start):
	// a second writer is refused while it lives.
	LockFile = "peco.lock"
)

// Env is what a Task receives to do its work: the compute backend, its run
// directory (through Record), the run's seed and where to report progress.
// The run machinery (package core/run) fills it in; tests may fill it in
// themselves.
type Env struct {
	// Backend computes the task's graphs.
	Backend compute.Backend
	// Seed drives model initialisation, data order, augmentation and masking.
	Seed int64
	// Dir is the run directory (layout: ConfigFile, MetricsFile, ...).
	Dir string
	// Record receives the run's metrics and final summary.
	Record Recorder
	// Resume is true when the run continues from its newest checkpoint.
	Resume bool
	// Out receives human-readable output (results, summaries).
	Out io.Writer
	// Progress creates progress reporters for long work; nil reports nothing.
	Progress ProgressFactory
}

// Recorder is where a run's records go: metrics.jsonl and the summary in
// meta.json.
type Recorder interface {
	// Log appends one record to the metrics log.
	Log(record map[string]any) error
	// Rewind drops the records whose "step" is greater than step: what a
	// killed run logged after the checkpoint it resumes from.
	Rewind(step int64) error
	// SetSummary records the run's final metrics.
	SetSummary(summary map[string]any) error
}

// Progress reports the advance of long work (a bar on a terminal, periodic
// lines otherwise).
type Progress interface {
	// Advance records n more steps done, covering items more items (e.g.
	// images), with a short status such as "loss 0.512".
	Advance(n, items int, status string)
	// Finish ends the report.
	Finish()
}

// ProgressFactory starts a progress reporter for work of total steps.
type ProgressFactory func(total int, desc string) Progress

// Printf writes a human-readable line to Out.
func (e *Env) Printf(format string, args ...any) {
	if e.Out != nil {
		fmt.Fprintf(e.Out, format, args...)
	}
}

// Log appends one record to the run's metrics log.
func (e *Env) Log(record map[string]any) error { return e.Record.Log(record) }

// Path returns a path inside the run directory.
func (e *Env) Path(elem ...string) string {
	return filepath.Join(append([]string{e.Dir}, elem...)...)
}

// StartProgress starts a progress reporter (one that reports nothing when
// the Env has no factory).
func (e *Env) StartProgress(total int, desc string) Progress {
	if e.Progress == nil {
		return silent{}
	}
	return e.Progress(total, desc)
}

type silent struct{}

func (silent) Advance(int, int, string) {}
func (silent) Finish()                  {}
