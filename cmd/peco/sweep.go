package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/sweep"
)

func newSweepCmd(stdout, stderr io.Writer) *cobra.Command {
	var sets []string
	var out, backendSpec string
	var parallel int
	var dry bool
	cmd := &cobra.Command{
		Use:   "sweep SWEEP.yaml",
		Short: "run a sweep (stages x variants x grid x seeds, shared stages once) and write its results table",
		Long: `Runs every run of a sweep file, each in its own directory under the sweep's folder
(default sweeps/<name>): stages in order, a stage shared by several variants once,
finished runs skipped, killed ones resumed, failing ones reported while the rest go on.
It ends by writing results.md, results.csv and charts there (peco results DIR rebuilds them).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := sweep.Load(args[0], sets)
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join("sweeps", spec.Name)
			}
			plan, err := sweep.Expand(spec, filepath.Dir(args[0]), out)
			if err != nil {
				return err
			}
			if dry {
				plan.DryRun(stdout)
				return nil
			}
			backend, desc, err := OpenBackend(backendSpec)
			if err != nil {
				return err
			}
			defer backend.Finalize()
			runFn := func(ctx context.Context, config string, sets []string, dir string, resume bool, log io.Writer) error {
				exp, resolved, err := run.LoadExperiment(config, sets)
				if err != nil {
					return err
				}
				_, err = run.RunExperiment(ctx, exp, resolved, run.RunOptions{Out: dir, Resume: resume, Backend: backend, Device: desc,
					Command: append(append([]string(nil), os.Args...), "(sweep run)"), Stdout: log, Stderr: log})
				return err
			}
			host, _ := os.Hostname()
			outcomes, err := sweep.Execute(cmd.Context(), plan, runFn, sweep.Options{Parallel: parallel, Log: stderr,
				Machine: fmt.Sprintf("%s (%s/%s, %d cores)", host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU())})
			var failed []string
			for _, o := range outcomes {
				if o.Status == "failed" || o.Status == "blocked" {
					failed = append(failed, fmt.Sprintf("  %s %s: %v", o.Run.ID, o.Status, o.Err))
				}
			}
			if err != nil {
				return err
			}
			if b, err := os.ReadFile(filepath.Join(plan.Out, "results.md")); err == nil {
				fmt.Fprintf(stdout, "%s\n", b)
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d runs did not complete:\n%s", len(failed), len(plan.Runs), strings.Join(failed, "\n"))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a key of the sweep file: key.path=value (e.g. seeds=[0])")
	cmd.Flags().StringVar(&out, "out", "", "the sweep folder (default sweeps/<name>)")
	cmd.Flags().StringVar(&backendSpec, "backend", "", `compute backend: "cpu", "go" or "xla:<plugin>"`)
	cmd.Flags().IntVar(&parallel, "parallel", 1, "runs of one stage at once")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "print the expanded runs and their overrides; run nothing")
	return cmd
}
