package bench

import (
	"math"
	"strings"
	"testing"

	"github.com/peco-dev/peco/cpu"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*(1+math.Abs(b)) }

func TestMedianAndSpread(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want Spread
	}{
		{nil, Spread{}},
		{[]float64{3}, Spread{3, 3, 3, 1}},
		{[]float64{5, 1, 3}, Spread{3, 1, 5, 3}},
		{[]float64{4, 1, 3, 2}, Spread{2.5, 1, 4, 4}},
	} {
		in := append([]float64(nil), tc.xs...)
		if got := SpreadOf(tc.xs); got != tc.want {
			t.Errorf("SpreadOf(%v) = %+v, want %+v", tc.xs, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.xs[i] {
				t.Fatalf("SpreadOf reordered its input: %v", tc.xs)
			}
		}
	}
}

// TestSummarizePairsRounds: the ratio is taken per round (peer time over
// ours in the same round), its median and min-max reported; step times are
// medians over rounds; RSS the largest; GFLOP/s and peak fractions from the
// FLOPs per step; op times summed over the rounds.
func TestSummarizePairsRounds(t *testing.T) {
	res := []Result{
		{Workload: "w", Impl: "peco", Round: 0, Threads: 2, Batch: 8, SecPerStep: 1.0, MaxRSSMiB: 100, FLOPsPerStep: 4e9, Iters: 2,
			Ops: []cpu.OpTime{{Op: "DotGeneral", Runs: 4, Seconds: 1.2, FLOPs: 8e9}, {Op: "Fused", Runs: 2, Seconds: 0.6}}},
		{Workload: "w", Impl: "torch", Round: 0, Threads: 2, Batch: 8, SecPerStep: 2.0, MaxRSSMiB: 300},
		{Workload: "w", Impl: "torch", Round: 1, Threads: 2, Batch: 8, SecPerStep: 3.0, MaxRSSMiB: 250},
		{Workload: "w", Impl: "peco", Round: 1, Threads: 2, Batch: 8, SecPerStep: 2.0, MaxRSSMiB: 120, FLOPsPerStep: 4e9, Iters: 2,
			Ops: []cpu.OpTime{{Op: "DotGeneral", Runs: 4, Seconds: 1.0, FLOPs: 8e9}}},
		{Workload: "w", Impl: "peco", Round: 2, Threads: 2, Batch: 8, SecPerStep: 1.5, FLOPsPerStep: 4e9},
		{Workload: "w", Impl: "torch", Round: 2, Threads: 2, Batch: 8, SecPerStep: 6.0},
		{Workload: "w", Impl: "peco", Round: 0, Threads: 1, Batch: 8, SecPerStep: 4.0},
	}
	sums := Summarize(res, PeakAt(10, nil))
	if len(sums) != 2 {
		t.Fatalf("%d summaries, want 2 (threads 2 and 1): %+v", len(sums), sums)
	}
	s := sums[0]
	// Ratios per round: 2/1, 3/2, 6/1.5 = 2, 1.5, 4.
	if s.Ratio != (Spread{2, 1.5, 4, 3}) {
		t.Errorf("ratio %+v, want median 2, 1.5-4 over 3", s.Ratio)
	}
	if s.OursSec.Median != 1.5 || s.PeerSec.Median != 3 {
		t.Errorf("medians ours %v peer %v, want 1.5 and 3", s.OursSec, s.PeerSec)
	}
	if s.OursRSSMiB != 120 || s.PeerRSSMiB != 300 {
		t.Errorf("RSS ours %v peer %v, want 120 and 300", s.OursRSSMiB, s.PeerRSSMiB)
	}
	// 4 GFLOP in 1.5 s and in 3 s; the peak is 2 threads x 10 GFLOP/s.
	if !near(s.OursGFLOPs, 4/1.5) || !near(s.PeerGFLOPs, 4.0/3) || s.PeakGFLOPs != 20 || !near(s.OursPeakFrac, 4/1.5/20) {
		t.Errorf("GFLOP/s %v / %v, peak %v, fraction %v", s.OursGFLOPs, s.PeerGFLOPs, s.PeakGFLOPs, s.OursPeakFrac)
	}
	if s.Steps != 4 || len(s.Ops) != 2 || s.Ops[0].Op != "DotGeneral" || !near(s.Ops[0].Seconds, 2.2) || s.Ops[0].Runs != 8 {
		t.Errorf("ops %+v over %d steps", s.Ops, s.Steps)
	}
	if o := sums[1]; o.Threads != 1 || o.Ratio.N != 0 || o.OursSec.Median != 4 {
		t.Errorf("threads-1 summary %+v", o)
	}
	tab := SummaryTable(sums)
	if !strings.Contains(tab, "**2.00x** (1.50-4.00, 3)") || !strings.Contains(tab, "13%") {
		t.Errorf("summary table lacks the ratio or the peak fraction:\n%s", tab)
	}
}

const sampleCPUInfo = `processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B13
cpu MHz		: 2445.400
siblings	: 4
cpu cores	: 2
flags		: fpu sse sse2 avx fma avx2 bmi2

processor	: 1
model name	: AMD EPYC 7B13
cpu MHz		: 3000.000
flags		: fpu sse sse2 avx fma avx2 avx512f
`

func TestParseCPUInfoPeak(t *testing.T) {
	// 4 CPUs in the mask, 2 siblings per core: 2 cores x 2 units x 8 lanes
	// x 2 x 2.4454 GHz = 156.5056.
	p, err := ParseCPUInfo(sampleCPUInfo, 4)
	if err != nil {
		t.Fatal(err)
	}
	if p.Model != "AMD EPYC 7B13" || p.Cores != 2 || p.Lanes != 8 || !p.FMA || p.ISA != "AVX2+FMA" || !near(p.GFLOPs, 156.5056) || !near(p.PerCoreGFLOPs, 78.2528) {
		t.Errorf("peak %+v", p)
	}
	if !strings.Contains(p.Formula(), "2 cores x 2 FMA units x 8 fp32 lanes (AVX2+FMA) x 2 FLOPs/FMA x 2.445 GHz = 156.5 GFLOP/s") {
		t.Errorf("formula %q", p.Formula())
	}
	// AVX-512, no SMT lines: 1 core x 2 x 16 x 2 x 2 GHz = 128.
	p, err = ParseCPUInfo("flags: avx512f avx2 fma\ncpu MHz: 2000\n", 1)
	if err != nil || p.Lanes != 16 || !near(p.GFLOPs, 128) {
		t.Errorf("AVX-512: %+v, %v", p, err)
	}
	if _, err := ParseCPUInfo("model name: x\n", 2); err == nil {
		t.Error("no flags or MHz: no error")
	}
}

func TestTableRatioPerRound(t *testing.T) {
	tab := Table([]Result{
		{Workload: "w", Impl: "peco", Round: 0, Batch: 32, SecPerStep: 1, ImgPerSec: 32},
		{Workload: "w", Impl: "torch", Round: 0, Batch: 32, SecPerStep: 2, ImgPerSec: 16},
		{Workload: "w", Impl: "torch", Round: 1, Batch: 32, SecPerStep: 4, ImgPerSec: 8},
		{Workload: "w", Impl: "peco", Round: 1, Batch: 32, SecPerStep: 1, ImgPerSec: 32},
	})
	if !strings.Contains(tab, "| 2.00x |") || !strings.Contains(tab, "| 4.00x |") {
		t.Errorf("per-round ratios missing:\n%s", tab)
	}
}

func TestDefaultNamesSkipOptional(t *testing.T) {
	def := DefaultNames()
	for _, n := range def {
		if Workloads[n].Optional {
			t.Errorf("default workloads include optional %s", n)
		}
	}
	for _, n := range []string{"tokenizer-cifar10-b64", "gemm-2048", "mim-tiny4-4l-b32-online"} {
		if !strings.Contains(strings.Join(def, " "), n) {
			t.Errorf("default workloads lack %s", n)
		}
	}
	if !Workloads["mim-tiny4-4l-b256"].Optional {
		t.Error("scaling workload mim-tiny4-4l-b256 missing or not optional")
	}
}

func TestGEMMWorkload(t *testing.T) {
	r := runGEMM(Workload{Name: "g", GEMM: 64}, 1, 3)
	if r.FLOPsPerStep != 2*64*64*64 || r.SecPerStep <= 0 || r.Iters != 3 {
		t.Errorf("result %+v", r)
	}
}

func TestPeakAt(t *testing.T) {
	measured := []MeasuredPeak{{Threads: 1, GFLOPs: 90}, {Threads: 2, GFLOPs: 150}}
	peak := PeakAt(78, measured)
	for _, c := range []struct {
		threads int
		want    float64
	}{
		{1, 90},  // measured above nominal (boost clock)
		{2, 156}, // nominal above measured
		{4, 312}, // not measured: nominal
	} {
		if got := peak(c.threads); got != c.want {
			t.Errorf("PeakAt(78, ...)(%d) = %v, want %v", c.threads, got, c.want)
		}
	}
}
