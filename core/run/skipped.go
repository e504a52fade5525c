package run

import "github.com/peco-dev/peco/core"

// maxSkippedRecorded bounds the skipped inputs meta.json lists one by one;
// SkippedInputs.Count counts them all.
const maxSkippedRecorded = 1000

// SkippedInputs is meta.json's "skipped": the bad inputs a run left out
// because their dataset has skip_bad: true.
type SkippedInputs struct {
	// Count is the number of distinct inputs skipped.
	Count int `json:"count"`
	// Inputs lists them (the first 1000), each with its split, path and
	// reason.
	Inputs []core.SkippedInput `json:"inputs"`

	seen map[[2]string]bool // split, path
}

// RecordSkipped implements core.SkipRecorder: it adds the inputs not
// listed yet to meta.json's "skipped" and rewrites meta.json when there was
// any, returning the new ones.
func (r *RunDir) RecordSkipped(inputs []core.SkippedInput) ([]core.SkippedInput, error) {
	r.mu.Lock()
	s := r.meta.Skipped
	if s == nil {
		s = &SkippedInputs{}
		r.meta.Skipped = s
	}
	if s.seen == nil {
		s.seen = map[[2]string]bool{}
		for _, in := range s.Inputs {
			s.seen[[2]string{in.Split, in.Path}] = true
		}
	}
	var fresh []core.SkippedInput
	for _, in := range inputs {
		key := [2]string{in.Split, in.Path}
		if s.seen[key] {
			continue
		}
		s.seen[key] = true
		s.Count++
		if len(s.Inputs) < maxSkippedRecorded {
			s.Inputs = append(s.Inputs, in)
		}
		fresh = append(fresh, in)
	}
	r.mu.Unlock()
	if len(fresh) == 0 {
		return nil, nil
	}
	return fresh, r.writeMeta()
}
