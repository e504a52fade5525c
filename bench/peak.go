package bench

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Peak is the machine's fp32 peak as the CPU's description gives it:
//
//	GFLOP/s = cores x FMA units x lanes x 2 x clock GHz
//
// where cores are the CPUs this process may run on (the affinity mask),
// divided by the SMT siblings per core when /proc/cpuinfo lists more
// siblings than cores; lanes are the float32 lanes of the widest vector
// unit (16 with AVX-512F, 8 with AVX or AVX2, 4 otherwise); an FMA counts 2
// FLOPs (without the fma flag: one add and one multiply pipe, counted the
// same); 2 FMA units per core (Zen 1-4, Intel since Haswell; an assumption,
// not read from the CPU); clock the "cpu MHz" line, which on a VM is the
// nominal (TSC) clock — cores that boost above it run faster, so a measured
// GEMM can exceed this number.
type Peak struct {
	Model string `json:"model"`
	// CPUs is the number of logical CPUs of the affinity mask; Cores those
	// counted (CPUs over SMT siblings per core).
	CPUs     int     `json:"cpus"`
	Cores    int     `json:"cores"`
	Lanes    int     `json:"lanes"`
	FMAUnits int     `json:"fma_units"`
	FMA      bool    `json:"fma"`
	ISA      string  `json:"isa"`
	MHz      float64 `json:"mhz"`
	// PerCoreGFLOPs = FMAUnits x Lanes x 2 x MHz/1000.
	PerCoreGFLOPs float64 `json:"per_core_gflops"`
	// GFLOPs = Cores x PerCoreGFLOPs.
	GFLOPs float64 `json:"gflops"`
}

// Formula states how GFLOPs was computed, with the numbers.
func (p Peak) Formula() string {
	return fmt.Sprintf("%d cores x %d FMA units x %d fp32 lanes (%s) x 2 FLOPs/FMA x %.3f GHz = %.1f GFLOP/s (%.1f per core)",
		p.Cores, p.FMAUnits, p.Lanes, p.ISA, p.MHz/1000, p.GFLOPs, p.PerCoreGFLOPs)
}

// ParseCPUInfo computes the peak from the text of /proc/cpuinfo for cpus
// logical CPUs (the affinity mask's count): the first processor's model
// name, flags and cpu MHz, and its siblings and cpu cores lines for SMT.
func ParseCPUInfo(text string, cpus int) (Peak, error) {
	p := Peak{CPUs: cpus, FMAUnits: 2}
	var flags map[string]bool
	siblings, coresPer := 0, 0
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "processor" && flags != nil {
			break // the first processor's block is enough
		}
		switch k {
		case "model name":
			p.Model = v
		case "flags":
			flags = map[string]bool{}
			for _, f := range strings.Fields(v) {
				flags[f] = true
			}
		case "cpu MHz":
			mhz, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return p, fmt.Errorf("cpuinfo: cpu MHz %q: %w", v, err)
			}
			p.MHz = mhz
		case "siblings":
			siblings, _ = strconv.Atoi(v)
		case "cpu cores":
			coresPer, _ = strconv.Atoi(v)
		}
	}
	if flags == nil {
		return p, fmt.Errorf("cpuinfo: no flags line")
	}
	if p.MHz <= 0 {
		return p, fmt.Errorf("cpuinfo: no cpu MHz line")
	}
	switch {
	case flags["avx512f"]:
		p.Lanes, p.ISA = 16, "AVX-512"
	case flags["avx2"]:
		p.Lanes, p.ISA = 8, "AVX2"
	case flags["avx"]:
		p.Lanes, p.ISA = 8, "AVX"
	default:
		p.Lanes, p.ISA = 4, "SSE"
	}
	if p.FMA = flags["fma"]; p.FMA {
		p.ISA += "+FMA"
	}
	p.Cores = cpus
	if siblings > coresPer && coresPer > 0 {
		p.Cores = max(1, cpus*coresPer/siblings)
	}
	p.PerCoreGFLOPs = float64(p.FMAUnits*p.Lanes*2) * p.MHz / 1000
	p.GFLOPs = float64(p.Cores) * p.PerCoreGFLOPs
	return p, nil
}

// MachinePeak reads /proc/cpuinfo for the CPUs this process may run on
// (runtime.NumCPU, the affinity mask).
func MachinePeak() (Peak, error) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return Peak{}, fmt.Errorf("machine peak: %w", err)
	}
	return ParseCPUInfo(string(b), runtime.NumCPU())
}
