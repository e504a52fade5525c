package run

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/peco-dev/peco/core"
)

// Progress reports long work: a bar with steps, items/s, status and ETA when
// the output is a terminal; plain periodic log lines otherwise.
type Progress struct {
	w        io.Writer
	bar      *progressbar.ProgressBar
	desc     string
	total    int
	done     int
	items    int
	start    time.Time
	lastLog  time.Time
	interval time.Duration
}

// NewProgressFactory returns a factory writing to w. Bars are drawn when w is
// a terminal; otherwise a line is logged at most every interval.
func NewProgressFactory(w io.Writer, interval time.Duration) core.ProgressFactory {
	isTerm := false
	if f, ok := w.(*os.File); ok {
		isTerm = term.IsTerminal(int(f.Fd()))
	}
	return func(total int, desc string) core.Progress {
		p := &Progress{w: w, desc: desc, total: total, start: time.Now(), interval: interval}
		p.lastLog = p.start
		if isTerm {
			p.bar = progressbar.NewOptions(total,
				progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription(desc),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionClearOnFinish(),
				progressbar.OptionThrottle(200*time.Millisecond),
			)
		}
		return p
	}
}

// Advance records n more steps done, covering items more items (e.g.
// images), with a short status such as "loss 0.512".
func (p *Progress) Advance(n, items int, status string) {
	if p == nil {
		return
	}
	p.done += n
	p.items += items
	rate := p.Rate()
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("%s %s %.0f img/s", p.desc, status, rate))
		_ = p.bar.Add(n)
		return
	}
	if now := time.Now(); now.Sub(p.lastLog) >= p.interval || p.done == p.total {
		p.lastLog = now
		eta := "?"
		if p.done > 0 && p.total > 0 {
			left := time.Duration(float64(time.Since(p.start)) / float64(p.done) * float64(p.total-p.done))
			eta = left.Round(time.Second).String()
		}
		fmt.Fprintf(p.w, "%s %d/%d %s %.1f img/s eta %s\n", p.desc, p.done, p.total, status, rate, eta)
	}
}

// Rate is the items processed per second so far.
func (p *Progress) Rate() float64 {
	el := time.Since(p.start).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(p.items) / el
}

// Finish closes the bar.
func (p *Progress) Finish() {
	if p != nil && p.bar != nil {
		_ = p.bar.Finish()
	}
}
