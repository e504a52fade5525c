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

// badSample wraps err as a *BadSampleError for path when skipBad is set, and
// returns err unchanged otherwise.
func badSample(skipBad bool, path string, err error) error {
	if err == nil || !skipBad {
		return err
	}
	return &BadSampleError{Path: path, Err: err}
}
