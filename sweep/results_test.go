package sweep

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var rtDay0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// rtRun fabricates one run's summary.
func rtRun(stage, variant string, variants []string, seed int64, status string, summary map[string]any) RunSummary {
	id := fmt.Sprintf("%s-%s-s%d-abcd1234", stage, variant, seed)
	if variant == "" {
		id = fmt.Sprintf("%s-shared-s%d-abcd1234", stage, seed)
	}
	if variants == nil {
		variants = []string{variant}
	}
	finished := rtDay0
	switch stage {
	case "mim":
		finished = rtDay0.Add(time.Hour)
	case "finetune":
		finished = rtDay0.Add(2 * time.Hour)
	}
	s := RunSummary{
		Sweep: "peco-ablation", Variant: variant, Variants: variants, Stage: stage, Seed: seed,
		ID: id, Dir: filepath.Join("runs", id), Status: status,
		WallSeconds: 10 * float64(seed), Steps: 200, Summary: summary,
		Finished: finished.Add(time.Duration(seed) * time.Minute), Machine: "host-a (16 CPUs)",
	}
	if status != StatusCompleted {
		s.Error = "loss became NaN"
	}
	// curves: a rising eval curve and a falling train loss
	evalKey := map[string]string{"tokenizer": "val_psnr", "mim": "val_mim_acc", "finetune": "val_top1"}[stage]
	base := 0.1 * float64(seed)
	if variant == "perceptual" {
		base += 0.5
	}
	s.Curves = map[string][][2]float64{
		evalKey: {{0, base}, {100, base + 1}, {200, base + 1.5}},
		"loss":  {{0, 5 - base}, {50, 3 - base}, {100, 2 - base}, {150, 1.5 - base}, {200, 1.2 - base}},
	}
	return s
}

// rtFixture: 2 variants x 3 seeds x 3 stages, the tokenizer stage shared; the
// fine-tuning of perceptual seed 3 failed; final_val_top5 only for pixel.
func rtFixture() []RunSummary {
	both := []string{"pixel", "perceptual"}
	var sums []RunSummary
	for seed := int64(1); seed <= 3; seed++ {
		k := float64(seed - 1) // 0, 1, 2
		sums = append(sums,
			rtRun("tokenizer", "", both, seed, StatusCompleted, map[string]any{"final_psnr": 20 + 2*k, "final_l1": 0.1, "best_psnr": 30.0, "target": "dall-e"}),
			rtRun("mim", "pixel", nil, seed, StatusCompleted, map[string]any{"final_val_mim_acc": 0.30 + 0.02*k, "final_val_loss": 3 - k}),
			rtRun("mim", "perceptual", nil, seed, StatusCompleted, map[string]any{"final_val_mim_acc": 0.40 + 0.02*k, "final_val_loss": 2 - k}),
			rtRun("finetune", "pixel", nil, seed, StatusCompleted, map[string]any{"final_val_top1": 0.70 + 0.02*k, "final_val_top5": 0.9}),
		)
		st := StatusCompleted
		if seed == 3 {
			st = "failed"
		}
		sums = append(sums, rtRun("finetune", "perceptual", nil, seed, st, map[string]any{"final_val_top1": 0.80 + 0.02*k}))
	}
	return sums
}

func rtWrite(t *testing.T, root string, s RunSummary) string {
	t.Helper()
	dir := filepath.Join(root, s.Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, SummaryFile)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func rtWriteAll(t *testing.T, root string, sums []RunSummary) {
	for _, s := range sums {
		rtWrite(t, root, s)
	}
}

var rtMetrics = []Metric{
	{Name: "tokenizer PSNR", Stage: "tokenizer", Key: "final_psnr"},
	{Name: "MIM acc", Stage: "mim", Key: "final_val_mim_acc", Scale: 100},
	{Name: "fine-tune top-1", Stage: "finetune", Key: "final_val_top1", Scale: 100},
	{Name: "fine-tune top-5", Stage: "finetune", Key: "final_val_top5", Scale: 100},
	{Name: "MIM val loss", Stage: "mim", Key: "final_val_loss", Lower: true},
	{Name: "fine-tune wall", Stage: "finetune", Key: "wall_seconds", Lower: true},
}

func rtNear(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func rtCheckCell(t *testing.T, what string, c Cell, mean, std float64, n int) {
	t.Helper()
	if c.N != n || (n > 0 && (!rtNear(c.Mean, mean) || !rtNear(c.Std, std))) || len(c.Values) != n {
		t.Errorf("%s: got mean %v std %v n %d (values %v), want mean %v std %v n %d", what, c.Mean, c.Std, c.N, c.Values, mean, std, n)
	}
}

func TestReadAndBuildTable(t *testing.T) {
	root := t.TempDir()
	rtWriteAll(t, root, rtFixture())
	sums, err := ReadSummaries(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 15 {
		t.Fatalf("read %d runs, want 15", len(sums))
	}
	tab, err := BuildTable(sums, rtMetrics, []string{"pixel", "perceptual"})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Sweep != "peco-ablation" || len(tab.Rows) != 2 || tab.Rows[0].Variant != "pixel" || tab.Rows[1].Variant != "perceptual" {
		t.Fatalf("table %q rows %+v", tab.Sweep, tab.Rows)
	}
	pix, per := tab.Rows[0], tab.Rows[1]
	tests := []struct {
		what      string
		c         Cell
		mean, std float64
		n         int
	}{
		{"pixel tokenizer (shared)", pix.Cells[0], 22, 2, 3},
		{"perceptual tokenizer (shared)", per.Cells[0], 22, 2, 3},
		{"pixel mim acc", pix.Cells[1], 32, 2, 3},
		{"perceptual mim acc", per.Cells[1], 42, 2, 3},
		{"pixel top-1", pix.Cells[2], 72, 2, 3},
		{"perceptual top-1 (seed 3 failed)", per.Cells[2], 81, math.Sqrt2, 2},
		{"pixel top-5", pix.Cells[3], 90, 0, 3},
		{"perceptual top-5 missing", per.Cells[3], 0, 0, 0},
		{"pixel mim loss", pix.Cells[4], 2, 1, 3},
		{"perceptual mim loss", per.Cells[4], 1, 1, 3},
		{"pixel wall", pix.Cells[5], 20, 10, 3},
		{"perceptual wall", per.Cells[5], 15, math.Sqrt(50), 2},
	}
	for _, tt := range tests {
		rtCheckCell(t, tt.what, tt.c, tt.mean, tt.std, tt.n)
	}
	if want := []string{"finetune-perceptual-s3-abcd1234"}; !reflect.DeepEqual(tab.Failed, want) {
		t.Errorf("Failed = %v, want %v", tab.Failed, want)
	}
	if !reflect.DeepEqual(pix.Seeds, []int64{1, 2, 3}) || !reflect.DeepEqual(per.Seeds, []int64{1, 2, 3}) {
		t.Errorf("seeds %v %v", pix.Seeds, per.Seeds)
	}

	md := tab.Markdown()
	for _, want := range []string{
		"| variant | tokenizer PSNR | MIM acc | fine-tune top-1 | fine-tune top-5 | MIM val loss ↓ | fine-tune wall ↓ | seeds |",
		"| pixel | 22.00 ± 2.00 (3) | 32.00 ± 2.00 (3) | 72.00 ± 2.00 (3) | 90.00 ± 0.00 (3) | 2.00 ± 1.00 (3) | 20.00 ± 10.00 (3) | 1, 2, 3 |",
		// equal tokenizer means (shared stage) not bold; perceptual best
		// top-1; missing top-5; lower loss bold
		"| perceptual | 22.00 ± 2.00 (3) | **42.00 ± 2.00 (3)** | **81.00 ± 1.41 (2)** | — | **1.00 ± 1.00 (3)** | **15.00 ± 7.07 (2)** | 1, 2, 3 |",
		"finetune-perceptual-s3-abcd1234 (failed: loss became NaN)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "**22.00") || strings.Contains(md, "**72.00") || strings.Contains(md, "**90.00") {
		t.Errorf("markdown bolds a non-best cell, a column with one value or one with all equal:\n%s", md)
	}

	recs, err := csv.NewReader(strings.NewReader(tab.CSV())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || len(recs[0]) != 1+3*len(rtMetrics) {
		t.Fatalf("csv shape: %v", recs)
	}
	if want := []string{"variant", "tokenizer PSNR_mean", "tokenizer PSNR_std", "tokenizer PSNR_n", "MIM acc_mean"}; !reflect.DeepEqual(recs[0][:5], want) {
		t.Errorf("csv header %v, want prefix %v", recs[0], want)
	}
	if recs[2][0] != "perceptual" || recs[2][7] != "81" || recs[2][9] != "2" || recs[2][10] != "" || recs[2][12] != "0" {
		t.Errorf("csv perceptual row %v", recs[2])
	}
}

func TestFormatCell(t *testing.T) {
	tests := []struct {
		c    Cell
		want string
	}{
		{Cell{Mean: 72, Std: 2, N: 3}, "72.00 ± 2.00 (3)"},
		{Cell{Mean: 0.7234567, Std: 0.0123, N: 3}, "0.7235 ± 0.0123 (3)"},
		{Cell{Mean: 0.012345, Std: 0.001, N: 2}, "0.01235 ± 0.00100 (2)"},
		{Cell{Mean: 5, N: 1}, "5.00 (1)"},
		{Cell{}, "—"},
	}
	for _, tt := range tests {
		if got := FormatCell(tt.c); got != tt.want {
			t.Errorf("FormatCell(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestMergeFolders(t *testing.T) {
	all := rtFixture()
	var day1, day2 []RunSummary
	for _, s := range all {
		if s.Seed == 3 {
			day2 = append(day2, s)
		} else {
			day1 = append(day1, s)
		}
	}
	dup := day1[len(day1)-1] // an identical copy of a seed-2 run, in both folders
	dup.Machine = "host-b"
	day2 = append(day2, dup)

	tests := []struct {
		name    string
		second  []RunSummary
		wantErr string
	}{
		{name: "disjoint seeds and an identical duplicate", second: day2},
		{name: "conflicting duplicate", second: func() []RunSummary {
			c := dup
			c.Summary = map[string]any{"final_val_top1": 0.99}
			return append(append([]RunSummary{}, day2...), c)
		}(), wantErr: "different summaries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := t.TempDir(), t.TempDir()
			rtWriteAll(t, a, day1)
			// the second folder lays runs out differently (nested deeper)
			for _, s := range tt.second {
				s2 := s
				s2.Dir = filepath.Join("day2", s.Stage, s.ID)
				rtWrite(t, b, s2)
			}
			sums, err := ReadSummaries(a, b)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
					t.Fatalf("err = %v, want %q naming both folders' files", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(sums) != len(all) {
				t.Fatalf("merged %d runs, want %d", len(sums), len(all))
			}
			tab, err := BuildTable(sums, rtMetrics[:3], nil)
			if err != nil {
				t.Fatal(err)
			}
			// no order given: sorted
			if tab.Rows[0].Variant != "perceptual" || tab.Rows[1].Variant != "pixel" {
				t.Fatalf("rows %v %v", tab.Rows[0].Variant, tab.Rows[1].Variant)
			}
			rtCheckCell(t, "pixel top-1 merged", tab.Rows[1].Cells[2], 72, 2, 3)
			rtCheckCell(t, "perceptual top-1 merged", tab.Rows[0].Cells[2], 81, math.Sqrt2, 2)
			rtCheckCell(t, "tokenizer merged", tab.Rows[0].Cells[0], 22, 2, 3)
		})
	}
}

func TestReadSummariesErrors(t *testing.T) {
	good := rtFixture()[0]
	tests := []struct {
		name, content, want string
	}{
		{"corrupt", `{"sweep": "s", "id": `, "unexpected EOF"},
		{"unknown field", `{"sweep": "s", "id": "x", "bogus": 1}`, `unknown field "bogus"`},
		{"trailing data", `{"sweep": "s", "id": "x"} {}`, "after the JSON object"},
		{"no id", `{"sweep": "s"}`, "no run id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			rtWrite(t, root, good)
			p := filepath.Join(root, "bad", "run", SummaryFile)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadSummaries(root)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s and saying %q", err, p, tt.want)
			}
		})
	}
	if _, err := ReadSummaries(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("a missing folder is not an error")
	}
}

func TestRetriedRunAndDuplicates(t *testing.T) {
	s := rtFixture()
	failed := s[len(s)-1] // perceptual finetune seed 3, failed
	retried := failed
	retried.Status, retried.Error = StatusCompleted, ""
	retried.Summary = map[string]any{"final_val_top1": 0.84}
	a, b := t.TempDir(), t.TempDir()
	rtWriteAll(t, a, s)
	rtWrite(t, b, retried)
	sums, err := ReadSummaries(a, b)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := BuildTable(sums, rtMetrics[2:3], nil)
	if err != nil {
		t.Fatal(err)
	}
	rtCheckCell(t, "perceptual top-1 with the retry", tab.Rows[0].Cells[0], 82, 2, 3)
	if len(tab.Failed) != 0 {
		t.Errorf("Failed = %v after a completed retry", tab.Failed)
	}

	// two completed runs of the same stage, variant and seed, under other ids
	other := s[3]
	other.ID += "-other"
	if _, err := BuildTable(append(append([]RunSummary{}, s...), other), rtMetrics, nil); err == nil || !strings.Contains(err.Error(), "two completed runs") {
		t.Errorf("err = %v, want two completed runs", err)
	}
	// several sweeps
	x := s[0]
	x.Sweep = "another"
	if _, err := BuildTable(append(append([]RunSummary{}, s...), x), rtMetrics, nil); err == nil || !strings.Contains(err.Error(), "several sweeps") {
		t.Errorf("err = %v, want several sweeps", err)
	}
	names, by := BySweep(append(append([]RunSummary{}, s...), x))
	if !reflect.DeepEqual(names, []string{"another", "peco-ablation"}) || len(by["another"]) != 1 || len(by["peco-ablation"]) != len(s) {
		t.Errorf("BySweep: %v", names)
	}
	// a non-numeric value asked for
	if _, err := BuildTable(s, []Metric{{Name: "t", Stage: "tokenizer", Key: "target"}}, nil); err == nil || !strings.Contains(err.Error(), "not a number") {
		t.Errorf("err = %v, want not a number", err)
	}
}

func TestInferMetrics(t *testing.T) {
	got := InferMetrics(rtFixture())
	want := []Metric{
		{Name: "tokenizer l1", Stage: "tokenizer", Key: "final_l1", Lower: true},
		{Name: "tokenizer psnr", Stage: "tokenizer", Key: "final_psnr"},
		{Name: "mim val_loss", Stage: "mim", Key: "final_val_loss", Lower: true},
		{Name: "mim val_mim_acc", Stage: "mim", Key: "final_val_mim_acc"},
		{Name: "finetune val_top1", Stage: "finetune", Key: "final_val_top1"},
		{Name: "finetune val_top5", Stage: "finetune", Key: "final_val_top5"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("InferMetrics:\n got %+v\nwant %+v", got, want)
	}
	tab, err := BuildTable(rtFixture(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tab.Metrics, want) {
		t.Errorf("BuildTable did not infer the metrics: %+v", tab.Metrics)
	}
}

func TestWriteResultsAndCharts(t *testing.T) {
	sums := rtFixture()
	tab, err := BuildTable(sums, rtMetrics, []string{"pixel", "perceptual"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "results")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "curves_stale_top1.png"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteResults(out, tab, sums); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Sweep peco-ablation", "host-a (16 CPUs)", "Generated ", "| variant |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q", want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(out, "results.csv")); err != nil || string(b) != tab.CSV() {
		t.Errorf("results.csv: %v", err)
	}
	charts := []string{"bar_tokenizer_psnr.png", "curves_tokenizer_val_psnr.png", "curves_mim_val_mim_acc.png", "curves_finetune_val_top1.png"}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// Per stage, the training loss and the main evaluation metric; a stale
	// chart of an earlier table is removed.
	want := []string{"bar_tokenizer_psnr.png", "curves_finetune_loss.png", "curves_finetune_val_top1.png", "curves_mim_loss.png",
		"curves_mim_val_mim_acc.png", "curves_tokenizer_loss.png", "curves_tokenizer_val_psnr.png", "results.csv", "results.md"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("files %v, want %v (no temporary files left)", names, want)
	}

	// more charts, directly: other metrics, a missing cell, a train curve,
	// a stage with no such curve
	extra := t.TempDir()
	paths := map[string]func(string) error{
		"bar_top5.png": func(p string) error { return BarChart(p, tab, 3) },
		"bar_loss.png": func(p string) error { return BarChart(p, tab, 4) },
		"curves_loss.png": func(p string) error {
			return CurvesChart(p, sums, "finetune", "loss", []string{"perceptual", "pixel"})
		},
		"curves_none.png": func(p string) error { return CurvesChart(p, sums, "finetune", "nope", nil) },
	}
	for name, f := range paths {
		p := filepath.Join(extra, name)
		if err := f(p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		charts = append(charts, p)
	}
	for _, name := range charts {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(out, name)
		}
		rtCheckPNG(t, p)
	}
	if err := BarChart(filepath.Join(extra, "x.png"), tab, len(rtMetrics)); err == nil {
		t.Error("BarChart of a metric past the table's is not an error")
	}
}

// rtCheckPNG checks a chart decodes at the chart size and is not blank.
func rtCheckPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r := img.Bounds(); r.Dx() != ChartWidth || r.Dy() != ChartHeight {
		t.Fatalf("%s is %v, want %dx%d", path, r, ChartWidth, ChartHeight)
	}
	bg := img.At(0, 0)
	colours := map[[3]uint32]bool{}
	differ := 0
	for y := 0; y < ChartHeight; y += 2 {
		for x := 0; x < ChartWidth; x += 2 {
			c := img.At(x, y)
			if c != bg {
				differ++
			}
			r, g, b, _ := c.RGBA()
			colours[[3]uint32{r, g, b}] = true
		}
	}
	if differ < 500 || len(colours) < 3 {
		t.Errorf("%s looks blank: %d pixels differ from the background, %d colours", path, differ, len(colours))
	}
}

func TestMainCurve(t *testing.T) {
	mk := func(stage, status string, keys ...string) RunSummary {
		s := RunSummary{Stage: stage, Status: status, Curves: map[string][][2]float64{}}
		for _, k := range keys {
			s.Curves[k] = [][2]float64{{1, 1}}
		}
		return s
	}
	tests := []struct {
		name string
		sums []RunSummary
		want string
	}{
		{"val_top1 first", []RunSummary{mk("ft", StatusCompleted, "loss", "top1"), mk("ft", StatusCompleted, "val_top1")}, "val_top1"},
		{"classify eval top1", []RunSummary{mk("ft", StatusCompleted, "loss", "top5", "top1")}, "top1"},
		{"mim acc", []RunSummary{mk("ft", StatusCompleted, "mim_loss", "val_mim_loss", "val_mim_acc")}, "val_mim_acc"},
		{"an eval curve before train ones", []RunSummary{mk("ft", StatusCompleted, "loss", "val_mim_loss")}, "val_mim_loss"},
		{"first sorted", []RunSummary{mk("ft", StatusCompleted, "mim_loss", "loss")}, "loss"},
		{"failed runs and other stages ignored", []RunSummary{mk("ft", "failed", "val_top1"), mk("tok", StatusCompleted, "psnr")}, ""},
	}
	for _, tt := range tests {
		if got := MainCurve(tt.sums, "ft"); got != tt.want {
			t.Errorf("%s: MainCurve = %q, want %q", tt.name, got, tt.want)
		}
	}
}
