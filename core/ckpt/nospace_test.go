package ckpt

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// fullDisk is a temporary file on a disk with room for n more bytes: the
// write that passes it writes what fits and fails with ENOSPC, as the
// kernel does.
type fullDisk struct {
	*os.File
	n int
}

func (f *fullDisk) Write(b []byte) (int, error) {
	if len(b) <= f.n {
		f.n -= len(b)
		return f.File.Write(b)
	}
	k, _ := f.File.Write(b[:f.n])
	f.n = 0
	return k, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

// TestSaveOnFullDisk writes a checkpoint over an earlier one with the disk
// filling up after n bytes: a clear error naming the file and ENOSPC, the
// earlier checkpoint intact, no temporary file left.
func TestSaveOnFullDisk(t *testing.T) {
	dir := t.TempDir()
	p := StepPath(dir, 1)
	store := model.NewStore()
	w := store.Scope("/model").VariableWithValue("w", []float32{1, 2, 3})
	if err := Save(p, store, 1, map[string]int{"epoch": 0}); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(p)
	if err := w.SetValue(tensors.FromFlatDataAndDimensions([]float32{7, 8, 9}, 3)); err != nil {
		t.Fatal(err)
	}
	b, err := encode(p, store, 2, map[string]int{"epoch": 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, room := range []int{0, 1, len(b) / 2, len(b) - 1} {
		full := func(dir, pattern string) (tempFile, error) {
			f, err := os.CreateTemp(dir, pattern)
			if err != nil {
				return nil, err
			}
			return &fullDisk{File: f, n: room}, nil
		}
		err := writeFileAtomic(full, p, b)
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "no space left on device") {
			t.Errorf("room %d: error %v, want ENOSPC naming %s", room, err, p)
		}
		if now, _ := os.ReadFile(p); !bytes.Equal(now, good) {
			t.Fatalf("room %d: the earlier checkpoint changed", room)
		}
		ck, err := Load(p)
		if err != nil || tensors.MustCopyFlatData[float32](ck.Variables["/model/w"])[0] != 1 {
			t.Fatalf("room %d: the earlier checkpoint does not load as it was: %v", room, err)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("room %d: temporary file left: %s", room, e.Name())
			}
		}
	}
}
