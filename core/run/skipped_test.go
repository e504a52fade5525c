package run

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peco-dev/peco/core"
)

// TestRecordSkipped reports skipped inputs through an Env whose Record is a
// run directory: meta.json lists each input once with its reason, the
// warning names only the new ones, and the list is capped while the count
// is not.
func TestRecordSkipped(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	r, err := CreateRunDir(dir, []byte("seed: 0\n"), Meta{Name: "n"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	env := &core.Env{Record: r, Out: &out}
	var _ core.SkipRecorder = r
	a := core.SkippedInput{Split: "data.train", Path: "/d/train/a/2.png", Reason: "decoding /d/train/a/2.png: PNG: unexpected EOF"}
	b := core.SkippedInput{Split: "data.val", Path: "/d/val/x.txt", Reason: "not an image file"}
	if err := env.ReportSkipped([]core.SkippedInput{a}); err != nil {
		t.Fatal(err)
	}
	if err := env.ReportSkipped([]core.SkippedInput{a, b}); err != nil {
		t.Fatal(err)
	}
	m := readMeta(t, dir)
	if m.Skipped == nil || m.Skipped.Count != 2 || len(m.Skipped.Inputs) != 2 || m.Skipped.Inputs[0] != a || m.Skipped.Inputs[1] != b {
		t.Fatalf("meta.json skipped = %+v, want a then b", m.Skipped)
	}
	warn := out.String()
	if strings.Count(warn, "warning: skipped 1 bad input(s) (skip_bad: true), listed in meta.json") != 2 ||
		strings.Count(warn, a.Path) != 2 || !strings.Contains(warn, "data.val: /d/val/x.txt: not an image file") {
		t.Errorf("warnings:\n%s\nwant one per new input, naming its split, path and reason", warn)
	}

	var many []core.SkippedInput
	for i := range maxSkippedRecorded + 10 {
		many = append(many, core.SkippedInput{Split: "data.train", Path: fmt.Sprintf("/d/%d.png", i), Reason: "empty file"})
	}
	out.Reset()
	if err := env.ReportSkipped(many); err != nil {
		t.Fatal(err)
	}
	m = readMeta(t, dir)
	if m.Skipped.Count != 2+len(many) || len(m.Skipped.Inputs) != maxSkippedRecorded {
		t.Errorf("after %d more: count %d, %d listed; want %d, %d", len(many), m.Skipped.Count, len(m.Skipped.Inputs), 2+len(many), maxSkippedRecorded)
	}
	if !strings.Contains(out.String(), "... and 1005 more") {
		t.Errorf("warning for many inputs:\n%s\nwant the first 5 and a count of the rest", out.String())
	}
	if err := r.Finish(nil); err != nil {
		t.Fatal(err)
	}
	if m := readMeta(t, dir); m.Skipped == nil || m.Skipped.Count != 2+len(many) {
		t.Errorf("skipped list lost when the run finished: %+v", m.Skipped)
	}
}
