package cpu

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// opProfile accumulates, per op type, the number of executions, the time
// spent and the elements written.
type opProfile struct {
	mu    sync.Mutex
	stats map[string]*opStat
}

type opStat struct {
	count    int
	elements int64
	elapsed  time.Duration
}

func newOpProfile() *opProfile { return &opProfile{stats: map[string]*opStat{}} }

func (p *opProfile) add(op string, elements int, d time.Duration) {
	p.mu.Lock()
	s := p.stats[op]
	if s == nil {
		s = &opStat{}
		p.stats[op] = s
	}
	s.count++
	s.elements += int64(elements)
	s.elapsed += d
	p.mu.Unlock()
}

// OpProfile returns a Markdown table of the time spent in each op type since
// the backend was opened with the "profile" option (cpu:profile), largest
// first, or "" when profiling is off.
func (b *Backend) OpProfile() string {
	p := b.profile
	if p == nil {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	type row struct {
		op string
		s  opStat
	}
	var rows []row
	var total time.Duration
	for op, s := range p.stats {
		rows = append(rows, row{op, *s})
		total += s.elapsed
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].s.elapsed > rows[j].s.elapsed })
	var sb strings.Builder
	sb.WriteString("| op | runs | time s | share | ns/element |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		nsPer := 0.0
		if r.s.elements > 0 {
			nsPer = float64(r.s.elapsed.Nanoseconds()) / float64(r.s.elements)
		}
		fmt.Fprintf(&sb, "| %s | %d | %.3f | %.1f%% | %.2f |\n", r.op, r.s.count, r.s.elapsed.Seconds(),
			100*r.s.elapsed.Seconds()/max(total.Seconds(), 1e-12), nsPer)
	}
	fmt.Fprintf(&sb, "| total | | %.3f | | |\n", total.Seconds())
	return sb.String()
}
