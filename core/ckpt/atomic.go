package ckpt

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to path through a temporary file in the same
// folder, synced and renamed into place: readers see the old file or the new
// one, never a half-written one. When the write fails (e.g. the disk is
// full) the temporary file is removed, the old file is left as it was, and
// the error names path and the cause.
func WriteFileAtomic(path string, data []byte) error {
	return writeFileAtomic(osCreateTemp, path, data)
}

// tempFile is what writeFileAtomic needs of a temporary file (*os.File);
// the seam lets tests inject a failing write (a full disk).
type tempFile interface {
	io.Writer
	Name() string
	Chmod(mode os.FileMode) error
	Sync() error
	Close() error
}

// tempCreator makes a temporary file as os.CreateTemp does.
type tempCreator func(dir, pattern string) (tempFile, error)

func osCreateTemp(dir, pattern string) (tempFile, error) { return os.CreateTemp(dir, pattern) }

func writeFileAtomic(create tempCreator, path string, data []byte) error {
	f, err := create(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp makes 0600 files; outputs are meant to be shared
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
