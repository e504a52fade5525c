// Package run is peco's run machinery: it loads an experiment config, makes
// the run directory (config.yaml, meta.json, metrics.jsonl, checkpoints/,
// images/), runs the task with a core.Env and records how it ended; the
// training loop (Loop) gives every training task logging, checkpoints, best
// tracking and exact --resume. The compute backend is chosen by the caller
// (cmd/peco), so that components never link a backend.
package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// Version is peco's version, recorded in every run.
const Version = "0.1.0"

// Experiment is the top level of a run config.
type Experiment struct {
	// Name names the run; it defaults to the config file's base name.
	Name string `mapstructure:"name" doc:"run name (default: the config file's base name)"`
	// Seed drives model initialisation, data order, augmentation and masking.
	Seed int64 `mapstructure:"seed" doc:"seed for model init, data order, augmentation and masking"`
	// Task is what the run does.
	Task registry.Spec[core.Task] `mapstructure:"task" doc:"the task to run"`
}

// Validate checks the experiment-level keys.
func (e *Experiment) Validate() error {
	if !e.Task.IsSet() {
		return fmt.Errorf("no task: the config needs `task: {type: ...}` (see `peco components task`)")
	}
	return nil
}

// LoadExperiment loads a config file with its `_base_` chain, applies the
// `--set` overrides and decodes it strictly. It returns the experiment and its
// fully resolved config text.
func LoadExperiment(path string, overrides []string) (*Experiment, []byte, error) {
	tree, err := registry.LoadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if err := tree.SetAll(overrides); err != nil {
		return nil, nil, err
	}
	exp := &Experiment{}
	if err := registry.Decode(tree, exp); err != nil {
		return nil, nil, fmt.Errorf("config %s is invalid:\n%w", path, err)
	}
	if exp.Name == "" {
		exp.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	resolved, err := registry.Resolved(exp)
	if err != nil {
		return nil, nil, err
	}
	return exp, resolved, nil
}

// RunOptions are the command-line choices of one run.
type RunOptions struct {
	// Out is the run directory; empty means runs/<name>/<timestamp> (or, with
	// Resume, the newest run under runs/<name>).
	Out string
	// Backend computes the task's graphs; Device describes it in one line
	// (meta.json).
	Backend compute.Backend
	Device  string
	// Resume continues the run in Out from its newest checkpoint.
	Resume bool
	// Command is the command line, recorded in meta.json.
	Command []string
	// Stdout receives results; Stderr receives progress and logs.
	Stdout, Stderr io.Writer
	// ProgressInterval is the period of plain progress lines when stderr is
	// not a terminal.
	ProgressInterval time.Duration
}

var errCancelled = errors.New("run cancelled")

// RunExperiment runs exp in a run directory and records how it ended. The
// run directory is returned even when the task fails, so that callers can
// point at it.
func RunExperiment(ctx context.Context, exp *Experiment, resolved []byte, opts RunOptions) (string, error) {
	task, err := exp.Task.Build()
	if err != nil {
		return "", err
	}
	backend, desc := opts.Backend, opts.Device
	if backend == nil {
		return "", errors.New("no backend given")
	}
	if err := CheckDTypes(resolved, backend); err != nil {
		return "", err
	}
	dir := opts.Out
	if dir == "" {
		base := filepath.Join("runs", exp.Name)
		if opts.Resume {
			if dir, err = newestRun(base); err != nil {
				return "", err
			}
		} else {
			dir = filepath.Join(base, time.Now().Format("20060102-150405"))
		}
	}
	meta := Meta{
		Name: exp.Name, PecoVersion: Version, GoVersion: runtime.Version(), GoMLXVersion: GoMLXVersion(),
		Backend: backend.Name(), Device: desc, Seed: exp.Seed, Command: opts.Command, Start: time.Now().UTC(),
	}
	meta.Host, _ = os.Hostname()
	for _, p := range registry.Collect[core.PluginConfig](exp) {
		meta.Plugins = append(meta.Plugins, p.PluginUse())
	}
	if opts.Resume {
		// A completed run is left as it is (as torch/mmengine resume: the
		// schedule is done), whatever the config says.
		done, err := CompletedRun(dir)
		if err != nil {
			return dir, err
		}
		if done != nil {
			fmt.Fprintf(opts.Stderr, "peco %s: run %s in %s is complete (ended %s): nothing to resume, nothing changed; to train more, start a new run with another --out\n",
				Version, exp.Name, dir, done.End.Local().Format(time.DateTime))
			return dir, nil
		}
	}
	var run *RunDir
	if opts.Resume {
		run, err = ResumeRunDir(dir, resolved, meta)
	} else {
		run, err = CreateRunDir(dir, resolved, meta)
	}
	if err != nil {
		return dir, err
	}
	fmt.Fprintf(opts.Stderr, "peco %s: run %s in %s\nbackend: %s\n", Version, exp.Name, dir, desc)
	if run.Lock.Stale != "" {
		fmt.Fprintf(opts.Stderr, "%s: %s\n", run.Lock.Path, run.Lock.Stale)
	}
	for _, p := range run.Removed {
		fmt.Fprintf(opts.Stderr, "removed %s, left half-written by the killed run\n", p)
	}
	interval := opts.ProgressInterval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	env := &core.Env{
		Backend:  backend,
		Seed:     exp.Seed,
		Dir:      run.Dir,
		Record:   run,
		Resume:   opts.Resume,
		Out:      opts.Stdout,
		Progress: NewProgressFactory(opts.Stderr, interval),
	}
	runErr := runTask(ctx, task, env)
	if ctx.Err() != nil && runErr != nil {
		runErr = fmt.Errorf("%w: %v", errCancelled, runErr)
	}
	ferr := run.Finish(runErr)
	switch {
	case runErr != nil && ferr == nil:
		return dir, &RecordedError{Meta: filepath.Join(dir, core.MetaFile), Err: runErr}
	case runErr != nil:
		return dir, fmt.Errorf("%w (and recording it in %s: %v)", runErr, filepath.Join(dir, core.MetaFile), ferr)
	}
	return dir, ferr
}

// RecordedError is the error of a run whose failure was recorded in its
// meta.json (status failed or cancelled, with the error); errors returned
// by RunExperiment otherwise were found before the run directory was opened
// (or while recording) and left no record.
type RecordedError struct {
	// Meta is the meta.json holding the record.
	Meta string
	Err  error
}

func (e *RecordedError) Error() string { return e.Err.Error() }

// Unwrap returns the run's error.
func (e *RecordedError) Unwrap() error { return e.Err }

// runTask runs the task, turning a panic (GoMLX reports graph errors by
// panicking) into an error so that the run records it.
func runTask(ctx context.Context, task core.Task, env *core.Env) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("task panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return task.Run(ctx, env)
}

// newestRun returns the newest run directory under base.
func newestRun(base string) (string, error) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return "", fmt.Errorf("--resume: no runs under %s to resume (give the run directory with --out): %w", base, err)
	}
	newest := ""
	for _, e := range entries {
		if e.IsDir() {
			if _, err := os.Stat(filepath.Join(base, e.Name(), core.ConfigFile)); err == nil && e.Name() > newest {
				newest = e.Name()
			}
		}
	}
	if newest == "" {
		return "", fmt.Errorf("--resume: no runs under %s to resume (give the run directory with --out)", base)
	}
	return filepath.Join(base, newest), nil
}

// GoMLXVersion is the GoMLX module version this binary was built with.
func GoMLXVersion() string { return moduleVersion("github.com/gomlx/gomlx") }

// moduleVersion reads a dependency's version from the build info.
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "unknown"
}
