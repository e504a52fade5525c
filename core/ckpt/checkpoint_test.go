package ckpt

import (
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
