package data

import (
	"errors"
	"fmt"

	"github.com/peco-dev/peco/core"
)

// SkippedAtOpen returns the inputs ds's reader left out when it was opened
// with skip_bad (SkipReporter), looking through this package's wrappers
// (subsets, shards, the decode cache); nil when the reader reports none.
func SkippedAtOpen(ds Dataset) []*BadSampleError {
	for ds != nil {
		if r, ok := ds.(SkipReporter); ok {
			return r.Skipped()
		}
		u, ok := ds.(interface{ Unwrap() Dataset })
		if !ok {
			return nil
		}
		ds = u.Unwrap()
	}
	return nil
}

// SkippedInputOf returns the record of err for split (its config key, e.g.
// data.val) when err is, or wraps, a *BadSampleError: the offending file and
// the reason. ok is false for any other error.
func SkippedInputOf(split string, err error) (in core.SkippedInput, ok bool) {
	var bad *BadSampleError
	if !errors.As(err, &bad) {
		return core.SkippedInput{}, false
	}
	reason := "bad sample"
	if bad.Err != nil {
		reason = bad.Err.Error()
	}
	return core.SkippedInput{Split: split, Path: bad.Path, Reason: reason}, true
}

// SkipReport lists the bad inputs of one split as a run records them
// (core.Env.ReportSkipped): those its reader left out when opened
// (SkippedAtOpen) and the samples its pipelines replaced so far
// (Pipeline.SkippedSamples), labelled with split, each path once.
func SkipReport(split string, ds Dataset, replaced ...[]SkippedSample) []core.SkippedInput {
	var out []core.SkippedInput
	seen := map[string]bool{}
	add := func(in core.SkippedInput) {
		if !seen[in.Path] {
			seen[in.Path] = true
			out = append(out, in)
		}
	}
	for _, bad := range SkippedAtOpen(ds) {
		if in, ok := SkippedInputOf(split, bad); ok {
			add(in)
		}
	}
	for _, list := range replaced {
		for _, s := range list {
			in, ok := SkippedInputOf(split, s.Err)
			if !ok {
				in = core.SkippedInput{Split: split, Path: s.Path, Reason: fmt.Sprint(s.Err)}
			}
			if in.Path == "" {
				in.Path = s.Path
			}
			add(in)
		}
	}
	return out
}

// SkipReport lists the bad inputs of both splits so far: left out when
// opening and replaced by the pipelines (see the function SkipReport).
func (l *Loaders[T]) SkipReport() []core.SkippedInput {
	var train, val []SkippedSample
	if l.Train != nil {
		train = l.Train.SkippedSamples()
	}
	if l.Val != nil {
		val = l.Val.SkippedSamples()
	}
	return append(SkipReport("data.train", l.TrainSet, train), SkipReport("data.val", l.ValSet, val)...)
}

// firstGoodSample returns the first sample of ds that is not a
// *BadSampleError (readers opened with skip_bad), or the first other error.
func firstGoodSample(ds Dataset) (Sample, error) {
	for i := range ds.Len() {
		s, err := ds.Sample(i)
		var bad *BadSampleError
		if err == nil || !errors.As(err, &bad) {
			return s, err
		}
	}
	return Sample{}, fmt.Errorf("all %d samples are bad (skip_bad: true skipped every one)", ds.Len())
}
