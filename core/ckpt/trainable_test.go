package ckpt

import (
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"

	"github.com/peco-dev/peco/optim"
)

// dropStep builds a training step as a drop-path network has it: the loss
// multiplies a weight by random numbers drawn from the store's RNG state,
// and AdamW updates every trainable variable the graph uses.
func dropStep(t *testing.T, store *model.Store) *model.Exec {
	t.Helper()
	backend, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Finalize)
	adamw := &optim.AdamW{Config: optim.DefaultAdamW()}
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
		g := x.Graph()
		w := scope.In("model").WithInitializer(initializer.One).VariableWithShape("w", shapes.Make(dtypes.Float32, 3)).NodeValue(g)
		u := scope.RandomUniform(g, shapes.Make(dtypes.Float32, 3))
		loss := ReduceAllSum(Mul(Mul(w, u), x))
		adamw.UpdateGraph(scope, g, loss)
		return loss
	})
	if err != nil {
		t.Fatal(err)
	}
	return exec
}

// TestRestoreKeepsRNGStateNotTrainable is the --resume crash of drop-path
// configs ("data types for BinaryOp Add must match, got (Uint64)[3] and
// (Float32)[3]"): a variable the store hands over from a checkpoint is made
// trainable by GoMLX, so the RNG state (and any other non-trainable state)
// must come back as it was saved, not trainable, whichever way it is
// created, and training must continue.
func TestRestoreKeepsRNGStateNotTrainable(t *testing.T) {
	dir := t.TempDir()
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, int64(5))
	exec := dropStep(t, store)
	if _, err := exec.Exec(tensors.FromFlatDataAndDimensions([]float32{1, 2, 3}, 3)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "a"+Ext)
	if err := Save(p, store, 1, nil); err != nil {
		t.Fatal(err)
	}
	ck, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	// Resume into a fresh store, twice in a row (a resumed run resumed again).
	for round := range 2 {
		s2 := model.NewStore()
		s2.SetParam(model.ParamInitialSeed, int64(5))
		if err := ck.Restore(s2); err != nil {
			t.Fatal(err)
		}
		exec2 := dropStep(t, s2)
		if _, err := exec2.Exec(tensors.FromFlatDataAndDimensions([]float32{1, 2, 3}, 3)); err != nil {
			t.Fatalf("round %d: training after the restore: %v", round, err)
		}
		for v := range s2.IterVariables() {
			if v.Trainable && v.Path() != "/model/w" {
				t.Errorf("round %d: %s (%s) is trainable after the restore", round, v.Path(), v.Shape())
			}
		}
		p = filepath.Join(dir, "b"+Ext)
		if err := Save(p, s2, 2, nil); err != nil {
			t.Fatal(err)
		}
		if ck, err = Load(p); err != nil {
			t.Fatal(err)
		}
	}
}
