package sweep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/gofrs/flock"
	"go.yaml.in/yaml/v4"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
)

// Case is one row-to-be of the table: a variant at one grid point.
type Case struct {
	// Name is the variant's name, with the grid values (e.g.
	// "pixel,ratio=0.3").
	Name string
	// Sets are the overrides per stage.
	Sets map[string][]string
	// Config and From are the variant's config files and from wiring per
	// stage.
	Config map[string]string
	From   map[string]map[string]string
}

// Run is one run of the expanded sweep.
type Run struct {
	// ID names the run in the sweep: <stage>-s<seed>-<hash of its resolved
	// config>, so a stage whose config is the same for several cases is one
	// run.
	ID    string
	Stage string
	Seed  int64
	// Config is the stage's config file; Sets its overrides, from wiring
	// included.
	Config string
	Sets   []string
	// Cases are the cases using this run.
	Cases []string
	// Needs are the IDs of the runs it names in from.
	Needs []string
	// Resolved is the run's fully resolved config.
	Resolved []byte
}

// Dir is the run's directory relative to the sweep folder.
func (r *Run) Dir() string { return filepath.Join(r.Stage, r.ID) }

// Plan is an expanded sweep.
type Plan struct {
	Spec  *Spec
	Cases []Case
	// Runs in the order they run (a stage after the ones it needs).
	Runs []*Run
	// Out is the sweep folder (absolute).
	Out string
}

// placeholder stands for the sweep folder in the configs whose hash names a
// run, so a moved folder keeps its run ids.
const placeholder = "$SWEEP"

// Expand expands spec into its runs under the sweep folder out: every
// case (variants x grid) and seed through every stage, the stages that
// resolve to the same config shared. specDir is the sweep file's folder,
// for relative config paths.
func Expand(spec *Spec, specDir, out string) (*Plan, error) {
	out, err := filepath.Abs(out)
	if err != nil {
		return nil, err
	}
	p := &Plan{Spec: spec, Out: out, Cases: cases(spec)}
	byID := map[string]*Run{}
	for _, seed := range spec.Seeds {
		for _, c := range p.Cases {
			ids := map[string]string{} // stage -> run id of this case and seed
			for _, st := range spec.Stages {
				cfg := st.Config
				if c.Config[st.Name] != "" {
					cfg = c.Config[st.Name]
				}
				if !filepath.IsAbs(cfg) {
					if _, err := os.Stat(filepath.Join(specDir, cfg)); err == nil {
						cfg = filepath.Join(specDir, cfg)
					}
				}
				sets := append([]string{fmt.Sprintf("seed=%d", seed)}, st.Set...)
				sets = append(sets, spec.Scales[spec.Scale][st.Name]...)
				from := map[string]string{}
				for k, v := range st.From {
					from[k] = v
				}
				for k, v := range c.From[st.Name] {
					from[k] = v
				}
				var needs []string
				keys := make([]string, 0, len(from))
				for k := range from {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, key := range keys {
					up := ids[from[key]]
					needs = append(needs, up)
					sets = append(sets, fmt.Sprintf("%s=%s", key, filepath.Join(out, byID[up].Dir())))
				}
				// The variant's overrides come last: they may replace a
				// component the from wiring set a key of (pixel targets
				// instead of tokens, say).
				sets = append(sets, c.Sets[st.Name]...)
				_, resolved, err := run.LoadExperiment(cfg, sets)
				if err != nil {
					return nil, fmt.Errorf("stage %s of %s (seed %d): %w", st.Name, c.Name, seed, err)
				}
				sum := sha256.Sum256(append([]byte(st.Name+"\n"), []byte(strings.ReplaceAll(string(resolved), out, placeholder))...))
				id := fmt.Sprintf("%s-s%d-%s", st.Name, seed, hex.EncodeToString(sum[:4]))
				r, ok := byID[id]
				if !ok {
					r = &Run{ID: id, Stage: st.Name, Seed: seed, Config: cfg, Sets: sets, Needs: needs, Resolved: resolved}
					byID[id] = r
					p.Runs = append(p.Runs, r)
				}
				r.Cases = append(r.Cases, c.Name)
				ids[st.Name] = id
			}
		}
	}
	// Stage order, then expansion order: every run after the runs it needs.
	order := map[string]int{}
	for i, st := range spec.Stages {
		order[st.Name] = i
	}
	sort.SliceStable(p.Runs, func(i, j int) bool { return order[p.Runs[i].Stage] < order[p.Runs[j].Stage] })
	return p, nil
}

// cases crosses the variants with the grid.
func cases(spec *Spec) []Case {
	var out []Case
	for _, v := range spec.Variants {
		out = append(out, Case{Name: v.Name, Sets: v.Set, Config: v.Config, From: v.From})
	}
	for _, a := range spec.Grid {
		label := a.Label
		if label == "" {
			label = a.Key[strings.LastIndexByte(a.Key, '.')+1:]
		}
		var next []Case
		for _, c := range out {
			for _, val := range a.Values {
				sets := map[string][]string{}
				for k, v := range c.Sets {
					sets[k] = append([]string(nil), v...)
				}
				sets[a.Stage] = append(sets[a.Stage], fmt.Sprintf("%s=%s", a.Key, yamlValue(val)))
				next = append(next, Case{Name: fmt.Sprintf("%s,%s=%v", c.Name, label, val), Sets: sets, Config: c.Config, From: c.From})
			}
		}
		out = next
	}
	return out
}

// yamlValue writes a grid value as --set reads it.
func yamlValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
}

// CaseNames lists the cases in order (the table's rows).
func (p *Plan) CaseNames() []string {
	var out []string
	for _, c := range p.Cases {
		out = append(out, c.Name)
	}
	return out
}

// DryRun writes the expanded runs: for each, its id, stage, seed, the cases
// that use it, what it needs, its overrides and where its resolved config
// differs from the stage's first run.
func (p *Plan) DryRun(w io.Writer) {
	fmt.Fprintf(w, "sweep %s: %d cases x %d seeds, %d runs (stages shared by cases run once) in %s\n",
		p.Spec.Name, len(p.Cases), len(p.Spec.Seeds), len(p.Runs), p.Out)
	firstOfStage := map[string]*Run{}
	for _, r := range p.Runs {
		if firstOfStage[r.Stage] == nil {
			firstOfStage[r.Stage] = r
		}
	}
	for _, r := range p.Runs {
		status := "to run"
		if m, err := readMeta(filepath.Join(p.Out, r.Dir())); err == nil {
			status = m.Status
		}
		fmt.Fprintf(w, "\n%s  [%s]\n  stage %s, seed %d, config %s\n  cases: %s\n", r.ID, status, r.Stage, r.Seed, r.Config, strings.Join(r.Cases, ", "))
		if len(r.Needs) > 0 {
			fmt.Fprintf(w, "  needs: %s\n", strings.Join(r.Needs, ", "))
		}
		for _, s := range r.Sets {
			fmt.Fprintf(w, "  --set %s\n", strings.ReplaceAll(s, p.Out, placeholder))
		}
		if first := firstOfStage[r.Stage]; first != r {
			diff := resolvedDiff(first.Resolved, r.Resolved, p.Out)
			if len(diff) == 0 {
				diff = []string{"(none: another seed or upstream run)"}
			}
			fmt.Fprintf(w, "  resolved config differs from %s in:\n    %s\n", first.ID, strings.Join(diff, "\n    "))
		}
	}
}

// resolvedDiff lists the keys whose values differ between two resolved
// configs, as "key: a -> b" (the seed and from paths included).
func resolvedDiff(a, b []byte, out string) []string {
	fa, fb := flatten(a, out), flatten(b, out)
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	var diff []string
	for k := range keys {
		if fa[k] != fb[k] {
			diff = append(diff, fmt.Sprintf("%s: %s -> %s", k, orNone(fa[k]), orNone(fb[k])))
		}
	}
	sort.Strings(diff)
	return diff
}

func orNone(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// flatten maps a YAML document to dotted keys and their values as text.
func flatten(doc []byte, out string) map[string]string {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return map[string]string{"(unreadable)": err.Error()}
	}
	flat := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(strings.TrimPrefix(prefix+"."+k, "."), e)
			}
		case []any:
			if len(x) > 0 {
				if _, isMap := x[0].(map[string]any); isMap {
					for i, e := range x {
						walk(fmt.Sprintf("%s.%d", prefix, i), e)
					}
					return
				}
			}
			flat[prefix] = strings.ReplaceAll(fmt.Sprint(x), out, placeholder)
		default:
			flat[prefix] = strings.ReplaceAll(fmt.Sprint(x), out, placeholder)
		}
	}
	walk("", v)
	return flat
}

// RunFunc runs one config with overrides in run directory out, resuming it
// when resume is set; progress and logs go to log.
type RunFunc func(ctx context.Context, config string, sets []string, out string, resume bool, log io.Writer) error

// Options control Execute.
type Options struct {
	// Parallel is the number of runs of a stage at once (default 1).
	Parallel int
	// Log receives the sweep's progress lines; each run's own output goes
	// to its run directory's sweep.log.
	Log io.Writer
	// Machine describes the machine, for summaries.
	Machine string
}

// LockFile keeps two sweeps out of one folder.
const LockFile = ".sweep.lock"

// Outcome is how Execute left one run.
type Outcome struct {
	Run    *Run
	Status string // completed, skipped (done before), failed, blocked
	Err    error
}

// Execute runs the plan: finished runs are skipped, killed or failed ones
// resumed, a failing run is reported and the rest go on (runs that need it
// are blocked); every run leaves a summary.json. It then writes the
// results (results.md, results.csv, charts) into the sweep folder.
func Execute(ctx context.Context, p *Plan, runFn RunFunc, opts Options) ([]Outcome, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 1
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if err := os.MkdirAll(p.Out, 0o755); err != nil {
		return nil, err
	}
	lock := flock.New(filepath.Join(p.Out, LockFile))
	ok, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", p.Out, err)
	}
	if !ok {
		return nil, fmt.Errorf("another sweep is running in %s (it holds %s)", p.Out, LockFile)
	}
	defer lock.Unlock()

	var mu sync.Mutex
	state := map[string]string{} // id -> outcome status
	var outcomes []Outcome
	record := func(o Outcome) {
		mu.Lock()
		defer mu.Unlock()
		state[o.Run.ID] = o.Status
		outcomes = append(outcomes, o)
		msg := o.Status
		if o.Err != nil {
			msg += ": " + firstLine(o.Err.Error())
		}
		fmt.Fprintf(opts.Log, "sweep %s: %s %s\n", p.Spec.Name, o.Run.ID, msg)
	}
	for _, stage := range p.Spec.Stages {
		var runs []*Run
		for _, r := range p.Runs {
			if r.Stage == stage.Name {
				runs = append(runs, r)
			}
		}
		sem := make(chan struct{}, opts.Parallel)
		var wg sync.WaitGroup
		for _, r := range runs {
			if ctx.Err() != nil {
				break
			}
			mu.Lock()
			var blocked []string
			for _, need := range r.Needs {
				if s := state[need]; s != "completed" && s != "skipped" {
					blocked = append(blocked, need)
				}
			}
			mu.Unlock()
			if len(blocked) > 0 {
				record(Outcome{Run: r, Status: "blocked", Err: fmt.Errorf("needs %s, which did not complete", strings.Join(blocked, ", "))})
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func(r *Run) {
				defer wg.Done()
				defer func() { <-sem }()
				record(executeRun(ctx, p, r, runFn, opts))
			}(r)
		}
		wg.Wait()
		if ctx.Err() != nil {
			return outcomes, ctx.Err()
		}
	}
	if err := p.WriteResults(); err != nil {
		return outcomes, err
	}
	return outcomes, nil
}

// executeRun runs (or skips, or resumes) one run and writes its summary.
func executeRun(ctx context.Context, p *Plan, r *Run, runFn RunFunc, opts Options) Outcome {
	dir := filepath.Join(p.Out, r.Dir())
	m, err := readMeta(dir)
	if err == nil && m.Status == run.StatusCompleted {
		if err := writeSummary(p, r, dir, opts.Machine, nil); err != nil {
			return Outcome{Run: r, Status: "failed", Err: err}
		}
		return Outcome{Run: r, Status: "skipped"}
	}
	resume := err == nil // a run dir that did not complete: resume it
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Outcome{Run: r, Status: "failed", Err: err}
	}
	logPath := filepath.Join(p.Out, r.Stage, r.ID+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return Outcome{Run: r, Status: "failed", Err: err}
	}
	defer lf.Close()
	fmt.Fprintf(opts.Log, "sweep %s: %s starting (stage %s, seed %d, cases %s)%s\n", p.Spec.Name, r.ID, r.Stage, r.Seed,
		strings.Join(r.Cases, ", "), map[bool]string{true: ", resuming", false: ""}[resume])
	runErr := runFn(ctx, r.Config, r.Sets, dir, resume, lf)
	if err := writeSummary(p, r, dir, opts.Machine, runErr); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return Outcome{Run: r, Status: "failed", Err: fmt.Errorf("%w (log: %s)", runErr, logPath)}
	}
	return Outcome{Run: r, Status: "completed"}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func readMeta(dir string) (*run.Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, core.MetaFile))
	if err != nil {
		return nil, err
	}
	var m run.Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, core.MetaFile), err)
	}
	return &m, nil
}

// writeSummary writes the run's summary.json from its meta.json and
// metrics.jsonl (or from runErr when it never started).
func writeSummary(p *Plan, r *Run, dir, machine string, runErr error) error {
	s := RunSummary{Sweep: p.Spec.Name, Variants: r.Cases, Stage: r.Stage, Seed: r.Seed, ID: r.ID, Dir: r.Dir(),
		Status: run.StatusFailed, Summary: map[string]any{}, Curves: map[string][][2]float64{}, Finished: time.Now().UTC(), Machine: machine}
	if len(r.Cases) == 1 {
		s.Variant = r.Cases[0]
	}
	if m, err := readMeta(dir); err == nil {
		s.Status, s.Error = m.Status, m.Error
		if !m.End.IsZero() {
			s.WallSeconds = m.End.Sub(m.Start).Seconds()
		}
		if m.Summary != nil {
			s.Summary = m.Summary
		}
		if st, ok := m.Summary["steps"].(float64); ok {
			s.Steps = int64(st)
		}
	}
	if runErr != nil {
		s.Status, s.Error = run.StatusFailed, runErr.Error()
	}
	if recs, err := run.ReadMetrics(filepath.Join(dir, core.MetricsFile)); err == nil {
		s.Curves = curves(recs)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return ckpt.WriteFileAtomic(filepath.Join(dir, SummaryFile), append(b, '\n'))
}

// maxCurvePoints bounds each curve kept in a summary.
const maxCurvePoints = 200

// curves extracts the numeric series of the metrics records: every metric
// of the eval records (top1, psnr, val_mim_acc, ...), the losses of the
// train records.
func curves(recs []map[string]any) map[string][][2]float64 {
	out := map[string][][2]float64{}
	for _, r := range recs {
		step, ok := r["step"].(float64)
		if !ok {
			continue
		}
		for k, v := range r {
			x, isNum := v.(float64)
			if !isNum || k == "step" || k == "epoch" {
				continue
			}
			eval := r["phase"] == "eval" && k != "eval_seconds" && k != "val_images" && !strings.HasPrefix(k, "data_")
			if eval || r["phase"] == "train" && strings.HasSuffix(k, "loss") {
				out[k] = append(out[k], [2]float64{step, x})
			}
		}
	}
	for k, pts := range out {
		if len(pts) > maxCurvePoints {
			thin := make([][2]float64, 0, maxCurvePoints)
			for i := 0; i < maxCurvePoints; i++ {
				thin = append(thin, pts[i*(len(pts)-1)/(maxCurvePoints-1)])
			}
			out[k] = thin
		}
	}
	return out
}

// WriteResults rebuilds the table from the sweep folder's summaries and
// writes results.md, results.csv and the charts.
func (p *Plan) WriteResults() error {
	sums, err := ReadSummaries(p.Out)
	if err != nil {
		return err
	}
	var mine []RunSummary
	for _, s := range sums {
		if s.Sweep == p.Spec.Name {
			mine = append(mine, s)
		}
	}
	t, err := BuildTable(mine, p.Spec.Metrics, p.CaseNames())
	if err != nil {
		return err
	}
	if err := WriteTableSpec(p.Out, TableSpec{Sweep: p.Spec.Name, Metrics: p.Spec.Metrics, Variants: p.CaseNames()}); err != nil {
		return err
	}
	return WriteResults(p.Out, t, mine)
}

// TableSpecFile keeps, in a sweep folder, how its table is built, so that
// `peco results` rebuilds the same table from the summaries alone.
const TableSpecFile = "table.json"

// TableSpec is the content of table.json.
type TableSpec struct {
	Sweep    string   `json:"sweep"`
	Metrics  []Metric `json:"metrics"`
	Variants []string `json:"variants"`
}

// WriteTableSpec writes dir/table.json.
func WriteTableSpec(dir string, ts TableSpec) error {
	b, err := json.MarshalIndent(ts, "", "  ")
	if err != nil {
		return err
	}
	return writeResultFile(filepath.Join(dir, TableSpecFile), append(b, '\n'))
}

// ReadTableSpecs reads the table.json of each folder that has one, by
// sweep name (the first folder's wins).
func ReadTableSpecs(dirs ...string) (map[string]TableSpec, error) {
	out := map[string]TableSpec{}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, TableSpecFile))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var ts TableSpec
		if err := json.Unmarshal(b, &ts); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(d, TableSpecFile), err)
		}
		if _, seen := out[ts.Sweep]; !seen {
			out[ts.Sweep] = ts
		}
	}
	return out, nil
}
