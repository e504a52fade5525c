package main

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/peco-dev/peco/sweep"
)

// newResultsCmd is `peco results DIR... [--out DIR2] [--metric stage:key[:name]]... [--compare A,B]...`:
// the results table of sweeps, rebuilt from their runs' summary.json files.
func newResultsCmd(stdout io.Writer) *cobra.Command {
	var out string
	var metricFlags, compareFlags []string
	cmd := &cobra.Command{
		Use:   "results DIR...",
		Short: "print the results table of sweeps from their runs' summary.json files (merging folders), and with --out write results.md/csv and charts",
		Long: `Results reads every ` + sweep.SummaryFile + ` under the DIRs (sweep folders, e.g. the same
sweep's seeds run on different machines or days) and merges them: a run found
twice is counted once, and two copies of a run that disagree are an error.

It prints a markdown table per sweep: a row per variant, a column per metric,
each cell "mean ± std (n)" over the seeds of the completed runs, the best of
each column in bold; runs that did not complete are listed below it.

Each --metric stage:key[:name] is a column: a key of the summary of the
stage's runs (meta.json "summary", e.g. final_top1), or wall_seconds or steps;
name is its heading (default "stage key"). Keys naming a loss or an error are
lower-is-better. Without --metric, the sweep's own columns (its table.json,
from the sweep file's metrics) or, without one, every numeric "final_*" key of
every stage is a column.

Each --compare A,B adds, below the table, variant A against variant B on every
metric, paired by seed: the mean difference ± its standard deviation, the
paired t statistic and the difference in pooled standard deviations.

With --out, results.md, results.csv, a bar chart of the first metric and a
chart of each stage's main curve are written there (in a folder per sweep
under it when the DIRs hold several sweeps).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			metrics, err := parseMetricFlags(metricFlags)
			if err != nil {
				return err
			}
			var pairs [][2]string
			for _, c := range compareFlags {
				a, b, ok := strings.Cut(c, ",")
				if !ok || strings.TrimSpace(a) == "" || strings.TrimSpace(b) == "" || strings.Contains(b, ",") {
					return fmt.Errorf("--compare %q: want two variants, A,B", c)
				}
				pairs = append(pairs, [2]string{strings.TrimSpace(a), strings.TrimSpace(b)})
			}
			return results(stdout, args, metrics, pairs, out)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write results.md, results.csv and the charts into this folder")
	cmd.Flags().StringArrayVar(&metricFlags, "metric", nil, `a column: stage:key[:name], e.g. finetune:final_top1:"fine-tune top-1"; repeatable (default: the sweep's columns, or every final_* key)`)
	cmd.Flags().StringArrayVar(&compareFlags, "compare", nil, "A,B: compare variant A with variant B on every metric, paired by seed (mean difference, t, std devs); repeatable")
	return cmd
}

// parseMetricFlags parses --metric stage:key[:name] values.
func parseMetricFlags(flags []string) ([]sweep.Metric, error) {
	var ms []sweep.Metric
	for _, f := range flags {
		parts := strings.SplitN(f, ":", 3)
		if len(parts) < 2 || strings.TrimSpace(parts[0]) == "" || strings.TrimSpace(parts[1]) == "" {
			return nil, fmt.Errorf("--metric %q: want stage:key[:name], e.g. finetune:final_top1:top-1", f)
		}
		m := sweep.Metric{Stage: strings.TrimSpace(parts[0]), Key: strings.TrimSpace(parts[1])}
		m.Name = m.Stage + " " + m.Key
		if len(parts) == 3 && strings.TrimSpace(parts[2]) != "" {
			m.Name = strings.TrimSpace(parts[2])
		}
		m.Lower = sweep.LowerIsBetter(m.Key)
		ms = append(ms, m)
	}
	return ms, nil
}

func results(w io.Writer, dirs []string, metrics []sweep.Metric, compare [][2]string, out string) error {
	sums, err := sweep.ReadSummaries(dirs...)
	if err != nil {
		return err
	}
	if len(sums) == 0 {
		return fmt.Errorf("no %s under %s (is it a sweep folder?)", sweep.SummaryFile, strings.Join(dirs, ", "))
	}
	specs, err := sweep.ReadTableSpecs(dirs...)
	if err != nil {
		return err
	}
	names, bySweep := sweep.BySweep(sums)
	for i, name := range names {
		runs := bySweep[name]
		ms, order := metrics, []string(nil)
		if ts, ok := specs[name]; ok {
			order = ts.Variants
			if len(ms) == 0 {
				ms = ts.Metrics // the sweep's own columns (table.json)
			}
		}
		if err := checkMetricStages(ms, runs); err != nil {
			return fmt.Errorf("sweep %q: %w", name, err)
		}
		t, err := sweep.BuildTable(runs, ms, order)
		if err != nil {
			return fmt.Errorf("sweep %q: %w", name, err)
		}
		for _, p := range compare {
			cs, err := sweep.Compare(t, p[0], p[1])
			if err != nil {
				return fmt.Errorf("sweep %q: %w", name, err)
			}
			t.Comparisons = append(t.Comparisons, cs...)
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "## %s (%d runs)\n\n%s", name, len(runs), t.Markdown())
		if out == "" {
			continue
		}
		dir := out
		if len(names) > 1 {
			dir = filepath.Join(out, sweep.Slug(name))
		}
		if err := sweep.WriteResults(dir, t, runs); err != nil {
			return err
		}
		if err := sweep.WriteTableSpec(dir, sweep.TableSpec{Sweep: name, Metrics: t.Metrics, Variants: order}); err != nil {
			return err
		}
		fmt.Fprintf(w, "\nwrote results.md, results.csv and charts to %s\n", dir)
	}
	return nil
}

// checkMetricStages refuses a --metric of a stage no run has (a typo would
// otherwise give an all-missing column).
func checkMetricStages(metrics []sweep.Metric, runs []sweep.RunSummary) error {
	stages := map[string]bool{}
	for _, r := range runs {
		stages[r.Stage] = true
	}
	for _, m := range metrics {
		if !stages[m.Stage] {
			var have []string
			for s := range stages {
				have = append(have, s)
			}
			sort.Strings(have)
			return fmt.Errorf("--metric %s:%s: no run of stage %q (stages: %s)", m.Stage, m.Key, m.Stage, strings.Join(have, ", "))
		}
	}
	return nil
}
