package ckpt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

func TestCheckpointRoundTrip(t *testing.T) {
	store := model.NewStore()
	w := store.Scope("/model").VariableWithValue("w", [][]float32{{1, 2}, {3, 4}})
	b := store.Scope("/model").VariableWithValue("b", []int32{7, 8, 9})
	dir := t.TempDir()
	p := StepPath(dir, 12)
	if err := Save(p, store, 12, map[string]int{"step": 12, "epoch": 1, "batch": 3}); err != nil {
		t.Fatal(err)
	}
	ck, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Epoch, Batch int }
	if err := ck.DecodeState(&st); err != nil || st.Epoch != 1 || st.Batch != 3 || ck.Step != 12 {
		t.Errorf("state = %+v, %v", st, err)
	}
	// Restore into a fresh store: existing variables are set, missing ones load on creation.
	s2 := model.NewStore()
	w2 := s2.Scope("/model").VariableWithShape("w", shapes.Make(dtypes.Float32, 2, 2))
	if err := ck.Restore(s2); err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[float32](w2.MustValue()); got[3] != 4 {
		t.Errorf("w restored = %v", got)
	}
	b2 := s2.Scope("/model").VariableWithShape("b", shapes.Make(dtypes.Int32, 3))
	if got := tensors.MustCopyFlatData[int32](b2.MustValue()); got[0] != 7 || got[2] != 9 {
		t.Errorf("b loaded on creation = %v", got)
	}
	_ = w
	_ = b
	// A shape mismatch names the variable.
	s3 := model.NewStore()
	s3.Scope("/model").VariableWithShape("w", shapes.Make(dtypes.Float32, 3, 2))
	if err := ck.Restore(s3); err == nil || !strings.Contains(err.Error(), "/model/w") {
		t.Errorf("mismatch error = %v", err)
	}
	// Damaged files are reported, naming the file.
	raw, _ := os.ReadFile(p)
	bad := filepath.Join(dir, "bad.ckpt")
	os.WriteFile(bad, raw[:len(raw)-5], 0o644)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "bad.ckpt") {
		t.Errorf("truncated checkpoint: %v", err)
	}
	os.WriteFile(bad, []byte("hello"), 0o644)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "not a peco checkpoint") {
		t.Errorf("not a checkpoint: %v", err)
	}
	// Pruning keeps the newest.
	for _, s := range []int64{1, 2, 3} {
		if err := Save(StepPath(dir, s), store, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := Prune(dir, 2); err != nil {
		t.Fatal(err)
	}
	l, _ := List(dir)
	if len(l) != 2 || !strings.HasSuffix(l[1], StepPath("", 12)) {
		t.Errorf("after pruning: %v", l)
	}
}

// TestCheckpointChecksum: a truncated checkpoint, or one with any single
// byte changed, is refused as damaged, naming the file; a version-1 file
// (no checksum, no trainability) still loads, its RNG state not trainable.
func TestCheckpointChecksum(t *testing.T) {
	store := model.NewStore()
	store.Scope("/model").VariableWithValue("w", [][]float32{{1, 2}, {3, 4}})
	if err := store.SetRNGStateFromSeed(3); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "good"+Ext)
	if err := Save(p, store, 5, map[string]int{"epoch": 1}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad"+Ext)
	check := func(what string, b []byte) {
		t.Helper()
		if err := os.WriteFile(bad, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(bad)
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), bad) {
			t.Fatalf("%s: Load = %v, want ErrDamaged naming %s", what, err, bad)
		}
	}
	for _, n := range []int{0, 5, len(checkpointMagic), len(checkpointMagic) + 8, len(raw) / 2, len(raw) - 32, len(raw) - 1} {
		check(fmt.Sprintf("truncated to %d of %d bytes", n, len(raw)), raw[:n])
	}
	for i := range raw {
		flipped := append([]byte{}, raw...)
		flipped[i] ^= 0x10
		check(fmt.Sprintf("byte %d of %d flipped", i, len(raw)), flipped)
	}

	// Version 1: magic, header length, header, data; no checksum.
	hl := binary.LittleEndian.Uint64(raw[len(checkpointMagic):])
	hdr := raw[len(checkpointMagic)+8 : len(checkpointMagic)+8+int(hl)]
	hdr = bytes.ReplaceAll(hdr, []byte(`,"not_trainable":true`), nil)
	data := raw[len(checkpointMagic)+8+int(hl) : len(raw)-sha256.Size]
	var v1 bytes.Buffer
	v1.WriteString(checkpointMagicV1)
	binary.Write(&v1, binary.LittleEndian, uint64(len(hdr)))
	v1.Write(hdr)
	v1.Write(data)
	old := filepath.Join(dir, "v1"+Ext)
	if err := os.WriteFile(old, v1.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ck, err := Load(old)
	if err != nil {
		t.Fatalf("version-1 checkpoint: %v", err)
	}
	if ck.Step != 5 || len(ck.Variables) != 2 || !ck.NotTrainable[rngStatePath] || ck.NotTrainable["/model/w"] {
		t.Errorf("version-1 checkpoint: step %d, %d variables, not trainable %v", ck.Step, len(ck.Variables), ck.NotTrainable)
	}
	if got := tensors.MustCopyFlatData[float32](ck.Variables["/model/w"]); got[3] != 4 {
		t.Errorf("version-1 checkpoint: w = %v", got)
	}
}
