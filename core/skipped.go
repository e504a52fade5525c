package core

import (
	"fmt"
	"strings"
)

// SkippedInput is one bad input a run left out because its dataset has
// skip_bad: true: a corrupt, truncated, zero-byte or non-image file, an
// annotation pointing nowhere. Runs record them in meta.json ("skipped").
type SkippedInput struct {
	// Split is the config key of the dataset, e.g. data.train or data.val.
	Split string `json:"split"`
	// Path names the file (inside an archive: archive path, then the path
	// inside it).
	Path string `json:"path"`
	// Reason is why the input was left out.
	Reason string `json:"reason"`
}

// SkipRecorder is implemented by Recorders that keep the list of a run's
// skipped inputs (the run directory: meta.json). Tasks reach it through
// Env.ReportSkipped.
type SkipRecorder interface {
	// RecordSkipped adds the inputs not recorded yet (by split and path) and
	// returns them.
	RecordSkipped(inputs []SkippedInput) ([]SkippedInput, error)
}

// maxSkipWarnings bounds the skipped inputs a warning names one by one.
const maxSkipWarnings = 5

// ReportSkipped records inputs in the run's meta.json (when Record is a
// SkipRecorder) and prints a warning naming the newly skipped ones, with
// their reasons. Inputs already reported are neither recorded nor printed
// again, so tasks may report the running list after every epoch (without a
// SkipRecorder, every call prints them all).
func (e *Env) ReportSkipped(inputs []SkippedInput) error {
	if len(inputs) == 0 {
		return nil
	}
	fresh := inputs
	where := ""
	if rec, ok := e.Record.(SkipRecorder); ok {
		var err error
		if fresh, err = rec.RecordSkipped(inputs); err != nil {
			return fmt.Errorf("recording skipped inputs: %w", err)
		}
		if len(fresh) == 0 {
			return nil
		}
		where = fmt.Sprintf(", listed in %s (\"skipped\")", MetaFile)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "warning: skipped %d bad input(s) (skip_bad: true)%s:\n", len(fresh), where)
	for i, in := range fresh {
		if i == maxSkipWarnings {
			fmt.Fprintf(&b, "  ... and %d more\n", len(fresh)-i)
			break
		}
		fmt.Fprintf(&b, "  %s: %s: %s\n", in.Split, in.Path, in.Reason)
	}
	e.Printf("%s", b.String())
	return nil
}
