package bench

import (
	"fmt"
	"sort"
	"strings"

	"github.com/peco-dev/peco/cpu"
)

// Median returns the median of xs (the mean of the two middle values for an
// even count), or 0 for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Spread is a median with the minimum and maximum it was taken over.
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// SpreadOf returns the median, minimum and maximum of xs.
func SpreadOf(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := Spread{Median: Median(xs), Min: xs[0], Max: xs[0], N: len(xs)}
	for _, x := range xs {
		s.Min, s.Max = min(s.Min, x), max(s.Max, x)
	}
	return s
}

// Summary is one workload (at one thread count) over the alternating
// rounds of a `peco bench` run: each impl's median step time over the
// rounds (each round's time is the median of its steps), the speed ratio
// ours/peer per round (peer s/step over ours, the rounds paired by index)
// as median and min-max, each impl's peak RSS (the largest over the rounds)
// and the step's FLOPs with the GFLOP/s each impl reaches and their fraction
// of the machine's peak.
type Summary struct {
	Workload string `json:"workload"`
	Threads  int    `json:"threads"`
	Batch    int    `json:"batch"`
	Backend  string `json:"backend,omitempty"`
	PeerImpl string `json:"peer_impl,omitempty"`
	// OursSec and PeerSec are the medians over rounds of the step time.
	OursSec Spread `json:"ours_sec"`
	PeerSec Spread `json:"peer_sec,omitempty"`
	// Ratio is the speed ratio ours/peer over the rounds (0 without peer).
	Ratio      Spread  `json:"ratio,omitempty"`
	OursRSSMiB float64 `json:"ours_rss_mib"`
	PeerRSSMiB float64 `json:"peer_rss_mib,omitempty"`
	// FLOPsPerStep is counted from our compiled graph (see RunStep).
	FLOPsPerStep float64 `json:"flops_per_step,omitempty"`
	OursGFLOPs   float64 `json:"ours_gflops,omitempty"`
	PeerGFLOPs   float64 `json:"peer_gflops,omitempty"`
	// OursPeakFrac and PeerPeakFrac are the GFLOP/s over the peak at
	// Threads threads (PeakGFLOPs, see PeakAt).
	PeakGFLOPs   float64 `json:"peak_gflops,omitempty"`
	OursPeakFrac float64 `json:"ours_peak_frac,omitempty"`
	PeerPeakFrac float64 `json:"peer_peak_frac,omitempty"`
	// Ops is where our step's time went, per op kind, per step (summed over
	// the rounds' timed steps and divided by their number).
	Ops   []cpu.OpTime `json:"ops,omitempty"`
	Steps int          `json:"op_steps,omitempty"`
}

// Summarize groups results by workload and thread count, in first-seen
// order, and computes each group's Summary; peak gives the machine's fp32
// peak in GFLOP/s at a thread count (nil or 0: no fractions), see PeakAt.
func Summarize(results []Result, peak func(threads int) float64) []Summary {
	type key struct {
		w string
		t int
	}
	var order []key
	groups := map[key][]Result{}
	for _, r := range results {
		k := key{r.Workload, r.Threads}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []Summary
	for _, k := range order {
		s := Summary{Workload: k.w, Threads: k.t}
		oursByRound, peerByRound := map[int]float64{}, map[int]float64{}
		var ours, peer []float64
		ops := map[string]*cpu.OpTime{}
		for _, r := range groups[k] {
			s.Batch = r.Batch
			if r.Impl == "peco" {
				s.Backend = r.Backend
				ours = append(ours, r.SecPerStep)
				oursByRound[r.Round] = r.SecPerStep
				s.OursRSSMiB = max(s.OursRSSMiB, r.MaxRSSMiB)
				if r.FLOPsPerStep > 0 {
					s.FLOPsPerStep = r.FLOPsPerStep
				}
				for _, o := range r.Ops {
					a := ops[o.Op]
					if a == nil {
						a = &cpu.OpTime{Op: o.Op}
						ops[o.Op] = a
					}
					a.Runs += o.Runs
					a.Seconds += o.Seconds
					a.Elements += o.Elements
					a.FLOPs += o.FLOPs
				}
				if len(r.Ops) > 0 {
					s.Steps += r.Iters
				}
			} else {
				s.PeerImpl = r.Impl
				peer = append(peer, r.SecPerStep)
				peerByRound[r.Round] = r.SecPerStep
				s.PeerRSSMiB = max(s.PeerRSSMiB, r.MaxRSSMiB)
			}
		}
		s.OursSec, s.PeerSec = SpreadOf(ours), SpreadOf(peer)
		var ratios []float64
		for round, o := range oursByRound {
			if p, ok := peerByRound[round]; ok && o > 0 {
				ratios = append(ratios, p/o)
			}
		}
		s.Ratio = SpreadOf(ratios)
		if s.FLOPsPerStep > 0 {
			if s.OursSec.Median > 0 {
				s.OursGFLOPs = s.FLOPsPerStep / s.OursSec.Median / 1e9
			}
			if s.PeerSec.Median > 0 {
				s.PeerGFLOPs = s.FLOPsPerStep / s.PeerSec.Median / 1e9
			}
			if peak != nil && k.t > 0 {
				if p := peak(k.t); p > 0 {
					s.PeakGFLOPs = p
					s.OursPeakFrac = s.OursGFLOPs / p
					s.PeerPeakFrac = s.PeerGFLOPs / p
				}
			}
		}
		for _, o := range ops {
			s.Ops = append(s.Ops, *o)
		}
		sort.Slice(s.Ops, func(i, j int) bool { return s.Ops[i].Seconds > s.Ops[j].Seconds })
		out = append(out, s)
	}
	return out
}

// SummaryTable renders summaries as a Markdown table: per workload and
// thread count the median s/step and img/s of each impl, the ratio's median
// and min-max over rounds, peak RSS, and GFLOP/s with the fraction of peak.
func SummaryTable(sums []Summary) string {
	var b strings.Builder
	b.WriteString("| workload | threads | batch | ours s/step | peer s/step | ours img/s | peer img/s | ratio ours/peer (median, min-max, rounds) | RSS ours / peer MiB | GFLOP/step | GFLOP/s ours / peer | of peak ours / peer |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range sums {
		img := func(sec float64) string {
			if sec <= 0 {
				return ""
			}
			return fmt.Sprintf("%.1f", float64(s.Batch)/sec)
		}
		sec := func(sp Spread) string {
			if sp.N == 0 {
				return ""
			}
			return fmt.Sprintf("%.3f", sp.Median)
		}
		ratio := ""
		if s.Ratio.N > 0 {
			ratio = fmt.Sprintf("**%.2fx** (%.2f-%.2f, %d)", s.Ratio.Median, s.Ratio.Min, s.Ratio.Max, s.Ratio.N)
		}
		rss := fmt.Sprintf("%.0f", s.OursRSSMiB)
		if s.PeerRSSMiB > 0 {
			rss += fmt.Sprintf(" / %.0f", s.PeerRSSMiB)
		}
		gf, frac, fl := "", "", ""
		if s.FLOPsPerStep > 0 {
			fl = fmt.Sprintf("%.2f", s.FLOPsPerStep/1e9)
			gf = fmt.Sprintf("%.0f", s.OursGFLOPs)
			if s.PeerGFLOPs > 0 {
				gf += fmt.Sprintf(" / %.0f", s.PeerGFLOPs)
			}
			if s.PeakGFLOPs > 0 {
				frac = fmt.Sprintf("%.0f%%", 100*s.OursPeakFrac)
				if s.PeerGFLOPs > 0 {
					frac += fmt.Sprintf(" / %.0f%%", 100*s.PeerPeakFrac)
				}
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Workload, s.Threads, s.Batch,
			sec(s.OursSec), sec(s.PeerSec), img(s.OursSec.Median), img(s.PeerSec.Median), ratio, rss, fl, gf, frac)
	}
	return b.String()
}

// PeakAt returns the peak that Summarize divides by at a thread count: the
// larger of the nominal peak of that many cores (nominalPerCore x threads,
// from the CPU's description) and the measured peak at that thread count.
// A virtual machine's /proc/cpuinfo gives the base clock, and cores that
// boost above it run register-only FMAs faster than the nominal peak; the
// measured rate is then the real ceiling.
func PeakAt(nominalPerCore float64, measured []MeasuredPeak) func(threads int) float64 {
	return func(threads int) float64 {
		p := nominalPerCore * float64(threads)
		for _, m := range measured {
			if m.Threads == threads {
				p = max(p, m.GFLOPs)
			}
		}
		return p
	}
}
