package sweep

import (
	"fmt"
	"math"
	"strings"
)

// Comparison is the difference of one metric between two variants of a
// table, paired by seed: each seed both variants have gives one difference
// A - B (the variants of a seed share its data subsets and initial
// randomness, so pairing removes the variation common to both).
type Comparison struct {
	Metric string
	A, B   string
	// Seeds are the seeds both variants have, sorted.
	Seeds        []int64
	MeanA, MeanB float64 // over Seeds
	// Diff is the mean of the per-seed differences A - B (= MeanA - MeanB).
	Diff float64
	// DiffStd is the sample standard deviation of the per-seed differences
	// (0 with one seed).
	DiffStd float64
	// T is Diff over its standard error DiffStd/sqrt(n): the paired t
	// statistic with n-1 degrees of freedom (NaN below 2 seeds, ±Inf when
	// every difference is the same non-zero value).
	T float64
	// PooledStd is sqrt((sA² + sB²)/2), the two variants' sample standard
	// deviations over Seeds; Effect = Diff / PooledStd is the difference in
	// standard deviations of one variant's runs (NaN below 2 seeds).
	PooledStd, Effect float64
}

// Compare returns, for every metric of t, the comparison of variant a with
// variant b over the seeds both have. A metric where they share no seed is
// left out, and so is one that both read from the same run at every shared
// seed (a stage the two variants share, such as the tokenizer of MIM
// variants that differ only after it: the difference is zero by
// construction). It is an error when a or b is not a row of t.
func Compare(t *Table, a, b string) ([]Comparison, error) {
	ra, rb := t.row(a), t.row(b)
	if ra == nil || rb == nil {
		missing := a
		if ra != nil {
			missing = b
		}
		var have []string
		for _, r := range t.Rows {
			have = append(have, r.Variant)
		}
		return nil, fmt.Errorf("compare %s with %s: no variant %q in the table (variants: %s)", a, b, missing, strings.Join(have, ", "))
	}
	var out []Comparison
	for mi, m := range t.Metrics {
		ca, cb := ra.Cells[mi], rb.Cells[mi]
		bySeed := map[int64]int{}
		for i, s := range cb.Seeds {
			bySeed[s] = i
		}
		var xa, xb []float64
		c := Comparison{Metric: m.Name, A: a, B: b}
		sameRuns := true
		for i, s := range ca.Seeds {
			if j, ok := bySeed[s]; ok {
				c.Seeds = append(c.Seeds, s)
				xa = append(xa, ca.Values[i])
				xb = append(xb, cb.Values[j])
				sameRuns = sameRuns && runOf(ca, i) != "" && runOf(ca, i) == runOf(cb, j)
			}
		}
		n := len(c.Seeds)
		if n == 0 || sameRuns {
			continue
		}
		d := make([]float64, n)
		for i := range d {
			d[i] = xa[i] - xb[i]
		}
		sa, sb, sd := newCell(xa), newCell(xb), newCell(d)
		c.MeanA, c.MeanB, c.Diff, c.DiffStd = sa.Mean, sb.Mean, sd.Mean, sd.Std
		c.T, c.Effect = math.NaN(), math.NaN()
		if n > 1 {
			c.PooledStd = math.Sqrt((sa.Std*sa.Std + sb.Std*sb.Std) / 2)
			c.T = ratio(c.Diff, c.DiffStd/math.Sqrt(float64(n)))
			c.Effect = ratio(c.Diff, c.PooledStd)
		}
		out = append(out, c)
	}
	return out, nil
}

// runOf is the id of the run of c's i-th value ("" when unknown).
func runOf(c Cell, i int) string {
	if i < len(c.Runs) {
		return c.Runs[i]
	}
	return ""
}

// ratio is x/y, with 0/0 = 0 (no difference, no spread).
func ratio(x, y float64) float64 {
	if x == 0 && y == 0 {
		return 0
	}
	return x / y
}

func (t *Table) row(v string) *Row {
	for i := range t.Rows {
		if t.Rows[i].Variant == v {
			return &t.Rows[i]
		}
	}
	return nil
}

// ComparisonsMarkdown renders comparisons as a markdown table: per metric,
// the two means, the mean paired difference ± its standard deviation, the
// paired t statistic and the difference in pooled standard deviations.
func ComparisonsMarkdown(cs []Comparison) string {
	var b strings.Builder
	b.WriteString("Paired by seed (difference A - B per seed; t = mean difference / (its std / sqrt(n)), n-1 degrees of freedom; effect = mean difference / pooled std of the two variants):\n\n")
	b.WriteString("| metric | A | B | seeds | mean A | mean B | A - B (mean ± std) | t | effect (std devs) |\n")
	b.WriteString("|---|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, c := range cs {
		seeds := make([]string, len(c.Seeds))
		for i, s := range c.Seeds {
			seeds[i] = fmt.Sprint(s)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s ± %s | %s | %s |\n", c.Metric, c.A, c.B, strings.Join(seeds, ", "),
			num(c.MeanA), num(c.MeanB), signed(c.Diff), num(c.DiffStd), stat(c.T), stat(c.Effect))
	}
	return b.String()
}

func num(x float64) string { return fmt.Sprintf("%.2f", x) }

func signed(x float64) string { return fmt.Sprintf("%+.2f", x) }

func stat(x float64) string {
	switch {
	case math.IsNaN(x):
		return "—"
	case math.IsInf(x, 0):
		return signed(x)[:1] + "∞"
	}
	return signed(x)
}
