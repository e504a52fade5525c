package sweep

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/peco-dev/peco/core/ckpt"
)

// SummaryFile is the name of the small file each sweep run leaves in its run directory; it is enough to rebuild the sweep's table without checkpoints.
const SummaryFile = "summary.json"

// StatusCompleted is the RunSummary.Status of a run that finished normally;
// only such runs are counted in a Table.
const StatusCompleted = "completed"

// RunSummary is one sweep run's summary.json.
type RunSummary struct {
	Sweep       string                  `json:"sweep"`    // the sweep's name
	Variant     string                  `json:"variant"`  // the variant this run belongs to ("" for a stage shared by every variant)
	Variants    []string                `json:"variants"` // every variant that uses this run (a shared stage lists several)
	Stage       string                  `json:"stage"`    // the pipeline stage, e.g. "tokenizer", "mim", "finetune"
	Seed        int64                   `json:"seed"`
	ID          string                  `json:"id"`     // unique run id within the sweep, e.g. "finetune-pixel-s1-3f2a9c1d"
	Dir         string                  `json:"dir"`    // run directory relative to the sweep folder
	Status      string                  `json:"status"` // "completed", "failed", ...
	Error       string                  `json:"error,omitempty"`
	WallSeconds float64                 `json:"wall_seconds"`
	Steps       int64                   `json:"steps"`
	Summary     map[string]any          `json:"summary"`  // the run's final metrics as the task reported them (meta.json "summary"), e.g. "final_val_top1", "final_val_mim_acc", "codes_used"
	Curves      map[string][][2]float64 `json:"curves"`   // metric name -> [step, value] points from metrics.jsonl (eval records: keys starting with "val_"; train: "loss", "mim_loss" ...)
	Finished    time.Time               `json:"finished"` // when the run ended
	Machine     string                  `json:"machine"`  // hostname / CPU description
}

// Metric is one column of the results table: a value of a stage's runs.
type Metric struct {
	Name  string  `mapstructure:"name" doc:"column heading, e.g. \"fine-tune top-1\""`
	Stage string  `mapstructure:"stage" doc:"the stage whose runs hold it"`
	Key   string  `mapstructure:"key" doc:"a key of the run's summary (meta.json), e.g. final_val_top1; or wall_seconds / steps"`
	Scale float64 `mapstructure:"scale" doc:"multiply by this (e.g. 100 for a fraction in percent); 0 = 1"`
	Lower bool    `mapstructure:"lower" doc:"lower is better (for marking the best row)"`
}

// variants returns the variants that use the run: Variants, or Variant
// alone when Variants is empty (a summary written by hand).
func (s *RunSummary) variants() []string {
	if len(s.Variants) > 0 {
		return s.Variants
	}
	if s.Variant != "" {
		return []string{s.Variant}
	}
	return nil
}

func (s *RunSummary) completed() bool { return s.Status == StatusCompleted }

// ReadSummaries reads every SummaryFile under the given sweep folders
// (recursively) and merges them into one list, sorted by sweep, stage,
// variant, seed and id.
//
// Each file is decoded strictly: a corrupt file or one with unknown fields is
// an error naming it. A run is identified by (Sweep, ID); the same run found
// twice (e.g. a folder copied from another machine) is kept once, unless the
// two copies are completed and disagree on Summary, which is an error naming
// both files. A completed copy wins over one that did not complete (a run
// retried elsewhere under the same id); of two that did not complete, the
// later one is kept. Folders holding different seeds of the same sweep thus
// merge into one table.
func ReadSummaries(dirs ...string) ([]RunSummary, error) {
	type found struct {
		sum  RunSummary
		path string
	}
	type key struct{ sweep, id string }
	byKey := map[key]*found{}
	var order []key
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("reading sweep results: %w", err)
		}
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || d.Name() != SummaryFile {
				return nil
			}
			s, err := decodeSummaryFile(path)
			if err != nil {
				return err
			}
			k := key{s.Sweep, s.ID}
			prev, ok := byKey[k]
			if !ok {
				byKey[k] = &found{s, path}
				order = append(order, k)
				return nil
			}
			switch {
			case prev.sum.completed() && !s.completed():
				// keep the completed copy
			case !prev.sum.completed() && s.completed():
				*prev = found{s, path}
			case !prev.sum.completed() && !s.completed():
				if s.Finished.After(prev.sum.Finished) {
					*prev = found{s, path} // the latest attempt
				}
			case !reflect.DeepEqual(normSummary(prev.sum.Summary), normSummary(s.Summary)):
				return fmt.Errorf("run %q of sweep %q is in both %s and %s with different summaries; remove one of them",
					s.ID, s.Sweep, prev.path, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]RunSummary, 0, len(order))
	for _, k := range order {
		out = append(out, byKey[k].sum)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Sweep != b.Sweep {
			return a.Sweep < b.Sweep
		}
		if a.Stage != b.Stage {
			return a.Stage < b.Stage
		}
		if a.Variant != b.Variant {
			return a.Variant < b.Variant
		}
		if a.Seed != b.Seed {
			return a.Seed < b.Seed
		}
		return a.ID < b.ID
	})
	return out, nil
}

// normSummary treats a nil and an empty summary as the same.
func normSummary(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// decodeSummaryFile decodes one summary file strictly.
func decodeSummaryFile(path string) (RunSummary, error) {
	var s RunSummary
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("reading %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return s, fmt.Errorf("reading %s: unexpected data after the JSON object", path)
	}
	if s.ID == "" {
		return s, fmt.Errorf("reading %s: no run id", path)
	}
	return s, nil
}

// Table is a sweep's results: one row per variant, one column per metric.
type Table struct {
	Sweep   string
	Metrics []Metric
	Rows    []Row
	// Failed lists the ids of the runs that did not complete (failed,
	// cancelled, still running ...), sorted; they are not counted in any cell.
	Failed []string
	// FailedWhy maps a Failed id to its status and error, for the report.
	FailedWhy map[string]string
	// Comparisons, when set (see Compare), are rendered after the table.
	Comparisons []Comparison
}

// Row is one variant's results.
type Row struct {
	Variant string
	Cells   []Cell  // one per Table.Metrics
	Seeds   []int64 // the seeds of the completed runs counted in any cell, sorted
}

// Cell is a metric's value over a variant's seeds.
type Cell struct {
	Mean, Std float64 // Std: sample standard deviation (n-1), 0 when N == 1
	N         int     // number of seeds; 0: missing
	Values    []float64
	Seeds     []int64 // Seeds[i] is the seed of Values[i]
	// Runs[i] is the id of the run Values[i] was read from (variants that
	// share a stage's run share its id).
	Runs []string
}

// BuildTable builds the results table of one sweep's runs. Rows are the
// variants: those of variantOrder first, in that order, then any other
// variant seen in sums, sorted. The cell of metric m and variant v holds, one
// value per seed, m.Key of the completed run of stage m.Stage whose Variants
// contain v, so a shared stage contributes to every variant it lists. Key
// "wall_seconds" or "steps" reads the RunSummary field of that name; other
// keys read Summary, whose value must be a number (a missing or null value
// leaves that seed out). Values are multiplied by m.Scale (0 = 1).
//
// Runs that did not complete are not counted but listed in Table.Failed.
// Two completed runs of the same stage, variant and seed (e.g. from
// different configs) are an error.
//
// With no metrics, they are inferred (InferMetrics).
func BuildTable(sums []RunSummary, metrics []Metric, variantOrder []string) (*Table, error) {
	t := &Table{FailedWhy: map[string]string{}}
	sweeps := map[string]bool{}
	for i := range sums {
		sweeps[sums[i].Sweep] = true
	}
	if len(sweeps) > 1 {
		return nil, fmt.Errorf("the runs belong to several sweeps (%s); build one table per sweep (BySweep)", strings.Join(sortedMapKeys(sweeps), ", "))
	}
	for s := range sweeps {
		t.Sweep = s
	}
	if len(metrics) == 0 {
		metrics = InferMetrics(sums)
	}
	t.Metrics = metrics

	// rows
	seen := map[string]bool{}
	var names []string
	for _, v := range variantOrder {
		if !seen[v] {
			seen[v] = true
			names = append(names, v)
		}
	}
	var others []string
	for i := range sums {
		for _, v := range sums[i].variants() {
			if !seen[v] {
				seen[v] = true
				others = append(others, v)
			}
		}
	}
	sort.Strings(others)
	names = append(names, others...)

	for i := range sums {
		s := &sums[i]
		if !s.completed() {
			t.Failed = append(t.Failed, s.ID)
			why := s.Status
			if why == "" {
				why = "no status"
			}
			if s.Error != "" {
				why += ": " + s.Error
			}
			t.FailedWhy[s.ID] = why
		}
	}
	sort.Strings(t.Failed)

	for _, v := range names {
		row := Row{Variant: v, Cells: make([]Cell, len(metrics))}
		seeds := map[int64]bool{}
		for mi, m := range metrics {
			bySeed := map[int64]*RunSummary{}
			for i := range sums {
				s := &sums[i]
				if !s.completed() || s.Stage != m.Stage || !hasString(s.variants(), v) {
					continue
				}
				if prev, ok := bySeed[s.Seed]; ok {
					return nil, fmt.Errorf("variant %q, stage %q, seed %d: two completed runs, %s (%s) and %s (%s); remove the stale one",
						v, m.Stage, s.Seed, prev.ID, prev.Dir, s.ID, s.Dir)
				}
				bySeed[s.Seed] = s
			}
			var seedList []int64
			for seed := range bySeed {
				seedList = append(seedList, seed)
			}
			sort.Slice(seedList, func(i, j int) bool { return seedList[i] < seedList[j] })
			var vals []float64
			var valSeeds []int64
			var valRuns []string
			for _, seed := range seedList {
				s := bySeed[seed]
				x, ok, err := metricValue(s, m.Key)
				if err != nil {
					return nil, fmt.Errorf("metric %q: run %s: %w", m.Name, s.ID, err)
				}
				if !ok {
					continue
				}
				if m.Scale != 0 {
					x *= m.Scale
				}
				vals = append(vals, x)
				valSeeds = append(valSeeds, seed)
				valRuns = append(valRuns, s.ID)
				seeds[seed] = true
			}
			row.Cells[mi] = newCell(vals)
			row.Cells[mi].Seeds = valSeeds
			row.Cells[mi].Runs = valRuns
		}
		for s := range seeds {
			row.Seeds = append(row.Seeds, s)
		}
		sort.Slice(row.Seeds, func(i, j int) bool { return row.Seeds[i] < row.Seeds[j] })
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// BySweep splits runs by sweep name, in sorted sweep order.
func BySweep(sums []RunSummary) (names []string, runs map[string][]RunSummary) {
	runs = map[string][]RunSummary{}
	for _, s := range sums {
		if _, ok := runs[s.Sweep]; !ok {
			names = append(names, s.Sweep)
		}
		runs[s.Sweep] = append(runs[s.Sweep], s)
	}
	sort.Strings(names)
	return names, runs
}

// InferMetrics returns, for each stage, a metric per numeric Summary key
// starting with "final_" among its completed runs. Stages come in pipeline
// order (by the earliest Finished time of their runs, then by name), keys
// sorted within a stage; the column is named "<stage> <key without final_>",
// and keys that read as losses or errors are marked lower-is-better.
func InferMetrics(sums []RunSummary) []Metric {
	var out []Metric
	for _, stage := range StageOrder(sums) {
		keys := map[string]bool{}
		for i := range sums {
			s := &sums[i]
			if s.Stage != stage || !s.completed() {
				continue
			}
			for k, v := range s.Summary {
				if _, ok := toFloat(v); ok && strings.HasPrefix(k, "final_") {
					keys[k] = true
				}
			}
		}
		for _, k := range sortedMapKeys(keys) {
			out = append(out, Metric{
				Name:  stage + " " + strings.TrimPrefix(k, "final_"),
				Stage: stage,
				Key:   k,
				Lower: LowerIsBetter(k),
			})
		}
	}
	return out
}

// StageOrder lists the stages of the runs in pipeline order: by the earliest
// Finished time among each stage's runs (a zero time sorts last), then by name.
func StageOrder(sums []RunSummary) []string {
	first := map[string]time.Time{}
	for i := range sums {
		s := &sums[i]
		t, ok := first[s.Stage]
		if !ok || (!s.Finished.IsZero() && (t.IsZero() || s.Finished.Before(t))) {
			first[s.Stage] = s.Finished
		}
	}
	stages := sortedMapKeys(first)
	sort.SliceStable(stages, func(i, j int) bool {
		a, b := first[stages[i]], first[stages[j]]
		switch {
		case a.IsZero() || b.IsZero():
			return !a.IsZero() && b.IsZero()
		default:
			return a.Before(b)
		}
	})
	return stages
}

// LowerIsBetter guesses from a metric key whether lower values are better:
// keys with a word such as loss, err, error, l1, mse, dead or seconds.
func LowerIsBetter(key string) bool {
	for _, w := range strings.FieldsFunc(strings.ToLower(key), func(r rune) bool { return r == '_' || r == '-' || r == '.' || r == ' ' }) {
		switch w {
		case "loss", "err", "error", "l1", "l2", "mse", "mae", "rmse", "dead", "seconds", "time", "lpips", "fid":
			return true
		}
	}
	return false
}

// metricValue reads key of a run: ok false when the run does not have it.
func metricValue(s *RunSummary, key string) (float64, bool, error) {
	switch key {
	case "wall_seconds":
		return s.WallSeconds, true, nil
	case "steps":
		return float64(s.Steps), true, nil
	}
	v, ok := s.Summary[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	x, ok := toFloat(v)
	if !ok {
		return 0, false, fmt.Errorf("summary key %q is %v (%T), not a number", key, v, v)
	}
	return x, true, nil
}

// toFloat converts a JSON number (float64, or a Go number of a summary built
// in memory) to float64.
func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func newCell(vals []float64) Cell {
	c := Cell{N: len(vals), Values: vals}
	if c.N == 0 {
		return c
	}
	var sum float64
	for _, v := range vals {
		sum += v
	}
	c.Mean = sum / float64(c.N)
	if c.N > 1 {
		var ss float64
		for _, v := range vals {
			ss += (v - c.Mean) * (v - c.Mean)
		}
		c.Std = math.Sqrt(ss / float64(c.N-1))
	}
	return c
}

// best returns the rows holding the best mean of metric mi (ties share it);
// none when fewer than two rows have a value or all of them are equal.
func (t *Table) best(mi int) map[int]bool {
	out := map[int]bool{}
	var have []int
	for ri, r := range t.Rows {
		if r.Cells[mi].N > 0 {
			have = append(have, ri)
		}
	}
	if len(have) < 2 {
		return out
	}
	lower := t.Metrics[mi].Lower
	bestV := t.Rows[have[0]].Cells[mi].Mean
	for _, ri := range have[1:] {
		v := t.Rows[ri].Cells[mi].Mean
		if (lower && v < bestV) || (!lower && v > bestV) {
			bestV = v
		}
	}
	for _, ri := range have {
		if t.Rows[ri].Cells[mi].Mean == bestV {
			out[ri] = true
		}
	}
	if len(out) == len(have) {
		return map[int]bool{} // all equal (e.g. a shared stage): nothing stands out
	}
	return out
}

// cellDecimals is the number of decimals FormatCell shows for a mean: 2 for
// |v| >= 1, else enough for 4 significant digits.
func cellDecimals(v float64) int {
	a := math.Abs(v)
	if a >= 1 || a == 0 || math.IsNaN(a) || math.IsInf(a, 0) {
		return 2
	}
	d := 3 - int(math.Floor(math.Log10(a)))
	if d > 12 {
		d = 12
	}
	return d
}

// FormatCell formats a cell as "mean ± std (n)" ("mean (1)" for one seed,
// "—" when missing); std has as many decimals as the mean.
func FormatCell(c Cell) string {
	if c.N == 0 {
		return "—"
	}
	d := cellDecimals(c.Mean)
	if c.N == 1 {
		return fmt.Sprintf("%.*f (1)", d, c.Mean)
	}
	return fmt.Sprintf("%.*f ± %.*f (%d)", d, c.Mean, d, c.Std, c.N)
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// Markdown renders the table as markdown: a row per variant, a column per
// metric ("mean ± std (n)", the best of each column in bold, "—" when
// missing) and the seeds counted; then the runs that did not complete.
func (t *Table) Markdown() string {
	var b strings.Builder
	b.WriteString("| variant |")
	for _, m := range t.Metrics {
		name := m.Name
		if m.Lower {
			name += " ↓"
		}
		b.WriteString(" " + mdEscape(name) + " |")
	}
	b.WriteString(" seeds |\n|---|")
	for range t.Metrics {
		b.WriteString("---:|")
	}
	b.WriteString("---|\n")
	bests := make([]map[int]bool, len(t.Metrics))
	for mi := range t.Metrics {
		bests[mi] = t.best(mi)
	}
	for ri, r := range t.Rows {
		name := r.Variant
		if name == "" {
			name = "(shared)"
		}
		b.WriteString("| " + mdEscape(name) + " |")
		for mi, c := range r.Cells {
			s := FormatCell(c)
			if bests[mi][ri] {
				s = "**" + s + "**"
			}
			b.WriteString(" " + s + " |")
		}
		seeds := make([]string, len(r.Seeds))
		for i, s := range r.Seeds {
			seeds[i] = strconv.FormatInt(s, 10)
		}
		if len(seeds) == 0 {
			seeds = []string{"—"}
		}
		b.WriteString(" " + strings.Join(seeds, ", ") + " |\n")
	}
	if len(t.Comparisons) > 0 {
		b.WriteString("\n" + ComparisonsMarkdown(t.Comparisons))
	}
	if len(t.Failed) > 0 {
		fmt.Fprintf(&b, "\nRuns that did not complete (not counted): %d\n\n", len(t.Failed))
		for _, id := range t.Failed {
			line := "- " + id
			if why := t.FailedWhy[id]; why != "" {
				line += " (" + strings.ReplaceAll(why, "\n", " ") + ")"
			}
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// CSV renders the table as CSV: variant, then for each metric
// <name>_mean, <name>_std and <name>_n (mean and std empty when missing).
func (t *Table) CSV() string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	head := []string{"variant"}
	for _, m := range t.Metrics {
		head = append(head, m.Name+"_mean", m.Name+"_std", m.Name+"_n")
	}
	w.Write(head)
	for _, r := range t.Rows {
		rec := []string{r.Variant}
		for _, c := range r.Cells {
			if c.N == 0 {
				rec = append(rec, "", "", "0")
				continue
			}
			rec = append(rec, strconv.FormatFloat(c.Mean, 'g', -1, 64), strconv.FormatFloat(c.Std, 'g', -1, 64), strconv.Itoa(c.N))
		}
		w.Write(rec)
	}
	w.Flush()
	return b.String()
}

// Slug turns a name into a file-name part: lower-case letters, digits, '-'
// and '_', other runs of characters becoming one '_'.
func Slug(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' || r == '_' {
			b.WriteRune(r)
			under = false
		} else if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	out := strings.TrimRight(b.String(), "_")
	if out == "" {
		out = "x"
	}
	return out
}

// MainCurve is the curve WriteResults draws for a stage: the first of
// "val_top1", "top1" (classification eval records), "val_mim_acc", "psnr",
// "val_psnr" (tokenizer) that any of its completed runs has, else the first
// (sorted) "val_..." curve, else the first curve; "" when none has curves.
func MainCurve(sums []RunSummary, stage string) string {
	keys := map[string]bool{}
	for i := range sums {
		s := &sums[i]
		if s.Stage != stage || !s.completed() {
			continue
		}
		for k, pts := range s.Curves {
			if len(pts) > 0 {
				keys[k] = true
			}
		}
	}
	for _, k := range []string{"val_top1", "top1", "val_mim_acc", "psnr", "val_psnr"} {
		if keys[k] {
			return k
		}
	}
	sorted := sortedMapKeys(keys)
	for _, k := range sorted {
		if strings.HasPrefix(k, "val_") {
			return k
		}
	}
	if len(sorted) > 0 {
		return sorted[0]
	}
	return ""
}

// WriteResults writes into dir (created if needed) results.md (a header
// with the sweep's name, the time, the machines the runs ran on, then the
// table), results.csv, bar_<slug of metric 0's name>.png and, for each stage
// with curves, curves_<stage>_<key>.png of its MainCurve. Every file is
// written atomically (a temporary file in dir, renamed).
func WriteResults(dir string, t *Table, sums []RunSummary) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	machines := map[string]bool{}
	for i := range sums {
		if m := strings.TrimSpace(sums[i].Machine); m != "" {
			machines[m] = true
		}
	}
	var b strings.Builder
	name := t.Sweep
	if name == "" {
		name = "(unnamed)"
	}
	fmt.Fprintf(&b, "# Sweep %s\n\n", name)
	fmt.Fprintf(&b, "Generated %s from %d runs.\n\n", time.Now().UTC().Format(time.RFC3339), len(sums))
	if len(machines) > 0 {
		b.WriteString("Machines:\n\n")
		for _, m := range sortedMapKeys(machines) {
			b.WriteString("- " + strings.ReplaceAll(m, "\n", " ") + "\n")
		}
		b.WriteString("\n")
	}
	b.WriteString(t.Markdown())
	var errs []error
	if err := writeResultFile(filepath.Join(dir, "results.md"), []byte(b.String())); err != nil {
		return err
	}
	if err := writeResultFile(filepath.Join(dir, "results.csv"), []byte(t.CSV())); err != nil {
		return err
	}
	if len(t.Metrics) > 0 && len(t.Rows) > 0 {
		if err := BarChart(filepath.Join(dir, "bar_"+Slug(t.Metrics[0].Name)+".png"), t, 0); err != nil {
			errs = append(errs, err)
		}
	}
	order := make([]string, len(t.Rows))
	for i, r := range t.Rows {
		order[i] = r.Variant
	}
	written := map[string]bool{}
	if len(t.Metrics) > 0 && len(t.Rows) > 0 {
		written["bar_"+Slug(t.Metrics[0].Name)+".png"] = true
	}
	for _, stage := range StageOrder(sums) {
		// The stage's training loss and its main evaluation metric.
		for _, key := range []string{TrainCurve(sums, stage), MainCurve(sums, stage)} {
			name := "curves_" + Slug(stage) + "_" + Slug(key) + ".png"
			if key == "" || written[name] {
				continue
			}
			written[name] = true
			if err := CurvesChart(filepath.Join(dir, name), sums, stage, key, order); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Charts of an earlier table that this one does not draw are stale.
	old, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	for _, p := range old {
		base := filepath.Base(p)
		if (strings.HasPrefix(base, "bar_") || strings.HasPrefix(base, "curves_")) && !written[base] {
			_ = os.Remove(p)
		}
	}
	return errors.Join(errs...)
}

// TrainCurve is the training-loss curve of a stage's runs: "loss",
// "mim_loss" or another key ending in "loss" that is not an evaluation's
// ("" when none).
func TrainCurve(sums []RunSummary, stage string) string {
	keys := map[string]bool{}
	for i := range sums {
		if sums[i].Stage == stage && sums[i].completed() {
			for k, pts := range sums[i].Curves {
				if len(pts) > 1 && strings.HasSuffix(k, "loss") && !strings.HasPrefix(k, "val_") {
					keys[k] = true
				}
			}
		}
	}
	for _, k := range []string{"loss", "mim_loss"} {
		if keys[k] {
			return k
		}
	}
	if sorted := sortedMapKeys(keys); len(sorted) > 0 {
		return sorted[0]
	}
	return ""
}

// writeResultFile writes data to path atomically (readers never see half a
// table).
func writeResultFile(path string, data []byte) error { return ckpt.WriteFileAtomic(path, data) }

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
