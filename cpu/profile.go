package cpu

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// opProfile accumulates, per op type, the number of executions, the time
// spent, the elements written and the FLOPs done.
type opProfile struct {
	mu    sync.Mutex
	stats map[string]*opStat
}

type opStat struct {
	count    int
	elements int64
	flops    int64
	elapsed  time.Duration
}

func newOpProfile() *opProfile { return &opProfile{stats: map[string]*opStat{}} }

func (p *opProfile) add(op string, elements int, flops int64, d time.Duration) {
	p.mu.Lock()
	s := p.stats[op]
	if s == nil {
		s = &opStat{}
		p.stats[op] = s
	}
	s.count++
	s.elements += int64(elements)
	s.flops += flops
	s.elapsed += d
	p.mu.Unlock()
}

// OpTime is the time spent in one kind of op: an op type, "Fused" for the
// fused element-wise kernels, or a variant of ConvGeneral
// ("ConvGeneral/forward", "/input-dilated" (input gradients of strided
// convolutions), "/grouped", "/kernel-grad").
type OpTime struct {
	Op       string  `json:"op"`
	Runs     int     `json:"runs"`
	Seconds  float64 `json:"seconds"`
	Elements int64   `json:"elements"`
	FLOPs    int64   `json:"flops,omitempty"`
}

// OpTimes returns the time spent in each kind of op since the backend was
// opened with the "profile" option (cpu:profile) or since ResetOpProfile,
// largest first; nil when profiling is off.
func (b *Backend) OpTimes() []OpTime {
	p := b.profile
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var rows []OpTime
	for op, s := range p.stats {
		rows = append(rows, OpTime{Op: op, Runs: s.count, Seconds: s.elapsed.Seconds(), Elements: s.elements, FLOPs: s.flops})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Seconds != rows[j].Seconds {
			return rows[i].Seconds > rows[j].Seconds
		}
		return rows[i].Op < rows[j].Op
	})
	return rows
}

// ResetOpProfile clears the times accumulated so far (e.g. after warm-up
// steps); it does nothing when profiling is off.
func (b *Backend) ResetOpProfile() {
	if p := b.profile; p != nil {
		p.mu.Lock()
		p.stats = map[string]*opStat{}
		p.mu.Unlock()
	}
}

// OpProfile returns a Markdown table of OpTimes, or "" when profiling is off.
func (b *Backend) OpProfile() string {
	if b.profile == nil {
		return ""
	}
	return OpTable(b.OpTimes(), 1)
}

// OpTable renders op times as a Markdown table, each divided by per (e.g.
// the number of steps they were accumulated over): runs, seconds, share of
// the total, ns per element written and, for ops that count FLOPs, GFLOP/s.
func OpTable(rows []OpTime, per int) string {
	per = max(per, 1)
	var total float64
	for _, r := range rows {
		total += r.Seconds
	}
	var sb strings.Builder
	sb.WriteString("| op | runs | time s | share | ns/element | GFLOP/s |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		nsPer, gf := 0.0, ""
		if r.Elements > 0 {
			nsPer = 1e9 * r.Seconds / float64(r.Elements)
		}
		if r.FLOPs > 0 && r.Seconds > 0 {
			gf = fmt.Sprintf("%.1f", float64(r.FLOPs)/r.Seconds/1e9)
		}
		fmt.Fprintf(&sb, "| %s | %d | %.3f | %.1f%% | %.2f | %s |\n", r.Op, r.Runs/per, r.Seconds/float64(per),
			100*r.Seconds/max(total, 1e-12), nsPer, gf)
	}
	fmt.Fprintf(&sb, "| total | | %.3f | | | |\n", total/float64(per))
	return sb.String()
}
