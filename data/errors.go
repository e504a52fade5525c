package data

import "fmt"

// BadSampleError reports an input that a reader opened with SkipBad could not
// use: a corrupt or truncated image, a missing or malformed annotation, a
// non-image file. Pipelines detect it with errors.As, skip the sample and count
// it; it is never dropped silently.
type BadSampleError struct {
	// Path names the offending file (inside an archive: archive path, then the
	// path inside it).
	Path string
	// Err is the underlying problem.
	Err error
}

// Error describes the bad sample.
func (e *BadSampleError) Error() string {
	return fmt.Sprintf("bad sample %s: %v", e.Path, e.Err)
}

// Unwrap returns the underlying error.
func (e *BadSampleError) Unwrap() error { return e.Err }

// SkipReporter is implemented by readers that, opened with SkipBad, left bad
// inputs out of the dataset while opening it (non-image files, annotations
// pointing nowhere, images without a label map). Skipped lists them so that
// callers can log and count them.
type SkipReporter interface {
	Skipped() []*BadSampleError
}

// SkipHint ends the errors of readers opened without skip_bad about an input
// they could have skipped: how to skip it.
const SkipHint = "set skip_bad: true on the dataset to skip bad files (they are then listed in the run's meta.json)"

// withSkipHint appends SkipHint to err.
func withSkipHint(err error) error { return fmt.Errorf("%w; %s", err, SkipHint) }

// badSample wraps err as a *BadSampleError for path when skipBad is set, and
// otherwise returns err with SkipHint appended.
func badSample(skipBad bool, path string, err error) error {
	if err == nil {
		return nil
	}
	if !skipBad {
		return withSkipHint(err)
	}
	return &BadSampleError{Path: path, Err: err}
}
