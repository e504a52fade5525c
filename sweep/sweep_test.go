package sweep_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"

	_ "github.com/peco-dev/peco/builtin"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/sweep"
)

// sweepFile is a 3-stage pipeline on the quickstart config: variant b
// changes only the last stage, the grid only the second.
const sweepFile = `
name: test-sweep
seeds: [0, 1]
stages:
  - {name: pre, config: ../configs/quickstart.yaml, set: [task.epochs=1]}
  - {name: mid, config: ../configs/quickstart.yaml, from: {task.from: pre}}
  - {name: ft, config: ../configs/quickstart.yaml, from: {task.from: mid}}
variants:
  - {name: a}
  - {name: b, set: {ft: [task.optimizer.lr=0.001]}}
grid:
  - {stage: mid, key: task.epochs, values: [2, 3], label: ep}
metrics:
  - {name: top-1, stage: ft, key: final_top1}
  - {name: pre top-1, stage: pre, key: final_top1}
`

func loadPlan(t *testing.T, text, out string) *sweep.Plan {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sweep.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := sweep.Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := sweep.Expand(spec, ".", out)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestExpand(t *testing.T) {
	plan := loadPlan(t, sweepFile, t.TempDir())
	if got := strings.Join(plan.CaseNames(), " "); got != "a,ep=2 a,ep=3 b,ep=2 b,ep=3" {
		t.Errorf("cases %s", got)
	}
	count := map[string]int{}
	for _, r := range plan.Runs {
		count[r.Stage]++
	}
	// pre: one per seed (shared by all 4 cases); mid: per grid value and
	// seed (shared by a and b); ft: per case and seed.
	if count["pre"] != 2 || count["mid"] != 4 || count["ft"] != 8 || len(plan.Runs) != 14 {
		t.Errorf("runs per stage %v", count)
	}
	for _, r := range plan.Runs {
		want := map[string]int{"pre": 4, "mid": 2, "ft": 1}[r.Stage]
		if len(r.Cases) != want {
			t.Errorf("%s used by %v, want %d cases", r.ID, r.Cases, want)
		}
		if r.Stage != "pre" && len(r.Needs) != 1 {
			t.Errorf("%s needs %v", r.ID, r.Needs)
		}
		if !strings.Contains(strings.Join(r.Sets, " "), fmt.Sprintf("seed=%d", r.Seed)) {
			t.Errorf("%s sets %v lack its seed", r.ID, r.Sets)
		}
	}
	// The same spec expands to the same ids.
	again := loadPlan(t, sweepFile, plan.Out)
	for i := range plan.Runs {
		if plan.Runs[i].ID != again.Runs[i].ID {
			t.Errorf("run %d: id %s, then %s", i, plan.Runs[i].ID, again.Runs[i].ID)
		}
	}
	var dry strings.Builder
	plan.DryRun(&dry)
	if !strings.Contains(dry.String(), "4 cases x 2 seeds, 14 runs") || !strings.Contains(dry.String(), "--set task.from=$SWEEP/pre/pre-s0-") ||
		!strings.Contains(dry.String(), "task.optimizer.lr: 0.002 -> 0.001") || !strings.Contains(dry.String(), "seed: 0 -> 1") {
		t.Errorf("dry run:\n%s", dry.String())
	}
}

// fakeRun writes what a run leaves (meta.json, metrics.jsonl) without
// training: top-1 = 50 + 10*seed (+5 with lr 0.001, +epochs when > 1),
// failing when the sets contain fail.
type fakeRun struct {
	mu      sync.Mutex
	calls   map[string]bool // dir -> resume flag
	failing string
}

func (f *fakeRun) run(_ context.Context, _ string, sets []string, dir string, resume bool, _ io.Writer) error {
	f.mu.Lock()
	f.calls[dir] = resume
	f.mu.Unlock()
	all := strings.Join(sets, " ")
	if f.failing != "" && strings.Contains(all, f.failing) {
		return fmt.Errorf("run refused on purpose")
	}
	top1 := 50.0
	for _, s := range sets {
		var seed, ep int
		if _, err := fmt.Sscanf(s, "seed=%d", &seed); err == nil {
			top1 += 10 * float64(seed)
		}
		if _, err := fmt.Sscanf(s, "task.epochs=%d", &ep); err == nil && ep > 1 {
			top1 += float64(ep)
		}
		if s == "task.optimizer.lr=0.001" {
			top1 += 5
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	meta := run.Meta{Name: "fake", Status: run.StatusCompleted, Start: start, End: start.Add(30 * time.Second),
		Summary: map[string]any{"final_top1": top1, "steps": 10}}
	b, _ := json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(dir, core.MetaFile), b, 0o644); err != nil {
		return err
	}
	rec := fmt.Sprintf("{\"step\":10,\"epoch\":0,\"phase\":\"train\",\"loss\":1.5}\n{\"step\":10,\"epoch\":0,\"phase\":\"eval\",\"top1\":%v}\n", top1)
	return os.WriteFile(filepath.Join(dir, core.MetricsFile), []byte(rec), 0o644)
}

func TestExecute(t *testing.T) {
	out := t.TempDir()
	plan := loadPlan(t, sweepFile, out)
	f := &fakeRun{calls: map[string]bool{}}
	outcomes, err := sweep.Execute(context.Background(), plan, f.run, sweep.Options{Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 14 || len(outcomes) != 14 {
		t.Fatalf("%d calls, %d outcomes; want 14", len(f.calls), len(outcomes))
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	// ft top-1 of b: seeds 0 and 1: 50+5 = 55 and 65: mean 60, std 7.07
	// (the grid changes mid only); a: 55 ± 7.07.
	if !strings.Contains(string(md), "| b,ep=3 | **60.00 ± 7.07 (2)**") || !strings.Contains(string(md), "| a,ep=2 | 55.00 ± 7.07 (2)") {
		t.Errorf("results.md lacks b's 60 ± 7.07 and a's 55 ± 7.07:\n%s", md)
	}
	specs, err := sweep.ReadTableSpecs(out)
	if ts := specs["test-sweep"]; err != nil || len(ts.Metrics) != 2 || ts.Metrics[0].Key != "final_top1" || len(ts.Variants) != 4 {
		t.Errorf("table.json: %+v, %v", specs, err)
	}
	for _, r := range plan.Runs {
		if _, err := os.Stat(filepath.Join(out, r.Dir(), sweep.SummaryFile)); err != nil {
			t.Errorf("%s: %v", r.ID, err)
		}
	}

	// Again: everything finished is skipped; a killed run is resumed.
	killed := plan.Runs[len(plan.Runs)-1]
	meta := filepath.Join(out, killed.Dir(), core.MetaFile)
	b, _ := os.ReadFile(meta)
	if err := os.WriteFile(meta, []byte(strings.Replace(string(b), `"completed"`, `"running"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	f.calls = map[string]bool{}
	if _, err := sweep.Execute(context.Background(), plan, f.run, sweep.Options{}); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 1 || !f.calls[filepath.Join(out, killed.Dir())] {
		t.Errorf("second execution ran %v; want only %s, resumed", f.calls, killed.ID)
	}
}

func TestFailingVariant(t *testing.T) {
	out := t.TempDir()
	plan := loadPlan(t, sweepFile, out)
	f := &fakeRun{calls: map[string]bool{}, failing: "task.epochs=3"} // the mid runs of ep=3
	outcomes, err := sweep.Execute(context.Background(), plan, f.run, sweep.Options{})
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]int{}
	for _, o := range outcomes {
		status[o.Status]++
	}
	// mid ep=3 (2 seeds) fail, their 4 ft runs are blocked, the other 8 complete.
	if status["failed"] != 2 || status["blocked"] != 4 || status["completed"] != 8 {
		t.Errorf("outcomes %v", status)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "mid-s") {
		t.Errorf("results.md does not list the failed runs:\n%s", md)
	}
}

func TestLock(t *testing.T) {
	out := t.TempDir()
	plan := loadPlan(t, sweepFile, out)
	lock := flock.New(filepath.Join(out, sweep.LockFile))
	if ok, err := lock.TryLock(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	defer lock.Unlock()
	f := &fakeRun{calls: map[string]bool{}}
	_, err := sweep.Execute(context.Background(), plan, f.run, sweep.Options{})
	if err == nil || !strings.Contains(err.Error(), "another sweep is running in") || len(f.calls) != 0 {
		t.Errorf("error %v, %d calls", err, len(f.calls))
	}
}

func TestSpecErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{strings.Replace(sweepFile, "seeds:", "seedz:", 1), `unknown key "seedz"; did you mean "seeds"?`},
		{strings.Replace(sweepFile, "from: {task.from: pre}", "from: {task.from: post}", 1), `from.task.from names "post", which is not an earlier stage`},
		{strings.Replace(sweepFile, "set: {ft:", "set: {fine:", 1), `set names stage "fine"`},
		{strings.Replace(sweepFile, "stage: ft, key", "stage: nope, key", 1), `stage "nope" is not a stage`},
	} {
		p := filepath.Join(t.TempDir(), "s.yaml")
		if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := sweep.Load(p, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}
