package sweep

import (
	"math"
	"strings"
	"testing"
)

func cmpTable() *Table {
	cell := func(seeds []int64, vals ...float64) Cell {
		c := newCell(vals)
		c.Seeds = seeds
		return c
	}
	return &Table{
		Metrics: []Metric{{Name: "top-1"}, {Name: "same"}, {Name: "one seed"}, {Name: "disjoint"}},
		Rows: []Row{
			{Variant: "a", Cells: []Cell{
				cell([]int64{0, 1, 2}, 50, 52, 54),
				cell([]int64{0, 1}, 3, 3),
				cell([]int64{0}, 7),
				cell([]int64{0}, 1),
			}},
			{Variant: "b", Cells: []Cell{
				cell([]int64{0, 1, 2, 3}, 49, 50, 51, 99), // seed 3 has no partner
				cell([]int64{0, 1}, 3, 3),
				cell([]int64{0}, 5),
				cell([]int64{5}, 1),
			}},
		},
	}
}

func TestCompare(t *testing.T) {
	cs, err := Compare(cmpTable(), "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 {
		t.Fatalf("%d comparisons, want 3 (the disjoint metric left out): %+v", len(cs), cs)
	}
	// top-1: differences 1, 2, 3 -> mean 2, std 1, t = 2/(1/sqrt 3);
	// stds a: 2, b (seeds 0-2): 1 -> pooled sqrt(2.5).
	c := cs[0]
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if len(c.Seeds) != 3 || c.Seeds[2] != 2 {
		t.Errorf("seeds %v, want [0 1 2]", c.Seeds)
	}
	near("mean A", c.MeanA, 52)
	near("mean B", c.MeanB, 50)
	near("diff", c.Diff, 2)
	near("diff std", c.DiffStd, 1)
	near("t", c.T, 2*math.Sqrt(3))
	near("pooled std", c.PooledStd, math.Sqrt(2.5))
	near("effect", c.Effect, 2/math.Sqrt(2.5))
	// Equal values: no difference, no spread.
	if cs[1].T != 0 || cs[1].Effect != 0 || cs[1].Diff != 0 {
		t.Errorf("identical variants: %+v", cs[1])
	}
	// One seed: a difference but no statistics.
	if cs[2].Diff != 2 || !math.IsNaN(cs[2].T) || !math.IsNaN(cs[2].Effect) {
		t.Errorf("one seed: %+v", cs[2])
	}
	md := ComparisonsMarkdown(cs)
	for _, want := range []string{"| top-1 | a | b | 0, 1, 2 | 52.00 | 50.00 | +2.00 ± 1.00 | +3.46 | +1.26 |", "| one seed | a | b | 0 | 7.00 | 5.00 | +2.00 ± 0.00 | — | — |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if _, err := Compare(cmpTable(), "a", "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown variant: err = %v", err)
	}
}

// TestCompareBuiltTable: BuildTable records each value's seed, so a
// comparison pairs the seeds both variants completed (a failed run leaves
// its seed out) and renders below the table.
func TestCompareBuiltTable(t *testing.T) {
	tb, err := BuildTable(rtFixture(), rtMetrics, []string{"perceptual", "pixel"})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := Compare(tb, "perceptual", "pixel")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Comparison{}
	for _, c := range cs {
		got[c.Metric] = c
	}
	mim := got["MIM acc"]
	if len(mim.Seeds) != 3 || math.Abs(mim.Diff-10) > 1e-9 || mim.T < 1e6 || math.Abs(mim.Effect-5) > 1e-9 {
		t.Errorf("MIM acc: %+v, want 3 seeds, +10 points every seed (t huge), effect 10/2", mim)
	}
	ft := got["fine-tune top-1"]
	if len(ft.Seeds) != 2 || ft.Seeds[0] != 1 || ft.Seeds[1] != 2 || math.Abs(ft.Diff-10) > 1e-9 {
		t.Errorf("fine-tune top-1: %+v, want seeds 1 and 2 (seed 3 failed), +10", ft)
	}
	// Both read the PSNR from the shared tokenizer runs: no comparison.
	if p, ok := got["tokenizer PSNR"]; ok {
		t.Errorf("tokenizer PSNR compared though both variants share its runs: %+v", p)
	}
	tb.Comparisons = cs
	if md := tb.Markdown(); !strings.Contains(md, "| MIM acc | perceptual | pixel | 1, 2, 3 | 42.00 | 32.00 | +10.00 ± 0.00 |") {
		t.Errorf("markdown lacks the comparison:\n%s", md)
	}
}
