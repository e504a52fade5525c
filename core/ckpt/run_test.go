package ckpt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// fakeTokenizer maps images [B,H,W,C] to tokens int32(scale * channel 0),
// with scale a variable (initialised to 1) so a restore is visible.
type fakeTokenizer struct{ vocab int }

func (f fakeTokenizer) VocabSize() int { return f.vocab }

func (f fakeTokenizer) Encode(scope *model.Scope, images *Node) *Node {
	g := images.Graph()
	s := scope.In("enc").WithInitializer(initializer.One).VariableWithShape("scale", shapes.Make(dtypes.Float32, 1)).NodeValue(g)
	x := Squeeze(Slice(images, AxisRange(), AxisRange(), AxisRange(), AxisElem(0)), -1)
	return ConvertDType(Mul(x, ExpandLeftToRank(s, x.Rank())), dtypes.Int32)
}

func (f fakeTokenizer) Decode(_ *model.Scope, tokens *Node) *Node {
	return InsertAxes(ConvertDType(tokens, dtypes.Float32), -1)
}

type fakeTokenizerConfig struct {
	Vocab int `mapstructure:"vocab"`
}

func init() {
	registry.Register(core.Tokenizers, "test_fake_tokenizer", "test only",
		func() fakeTokenizerConfig { return fakeTokenizerConfig{Vocab: 4} },
		func(c fakeTokenizerConfig) (core.Tokenizer, error) { return fakeTokenizer{vocab: c.Vocab}, nil })
}

// writeRun writes a fake tokenizer run: config.yaml and a checkpoint whose
// /tokenizer/enc/scale is 3 (plus optimizer and unrelated variables).
func writeRun(t *testing.T, dir, ckptName string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, core.CheckpointsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "name: tok\nseed: 0\ntask:\n  type: tokenizer\n  tokenizer: {type: test_fake_tokenizer, vocab: 7}\n"
	if err := os.WriteFile(filepath.Join(dir, core.ConfigFile), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	store.Scope("/tokenizer/enc").VariableWithValue("scale", []float32{3})
	store.Scope("/adamw/tokenizer/enc").VariableWithValue("scale_m1", []float32{0.5})
	store.Scope("/other").VariableWithValue("x", []float32{9, 9})
	p := filepath.Join(dir, core.CheckpointsDir, ckptName)
	if err := Save(p, store, 10, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	runA := filepath.Join(root, "runs", "tok", "20260101-000000")
	runB := filepath.Join(root, "runs", "tok", "20260102-000000")
	stepA := writeRun(t, runA, "step-000000010.ckpt")
	writeRun(t, runA, "step-000000020.ckpt")
	lastB := writeRun(t, runB, "last.ckpt")

	check := func(ref, wantCkpt, wantRun string) {
		t.Helper()
		c, r, err := Resolve(ref)
		if err != nil {
			t.Fatalf("Resolve(%s): %v", ref, err)
		}
		if c != wantCkpt || r != wantRun {
			t.Errorf("Resolve(%s) = %s, %s; want %s, %s", ref, c, r, wantCkpt, wantRun)
		}
	}
	check(stepA, stepA, runA)
	check(runA, filepath.Join(runA, core.CheckpointsDir, "step-000000020.ckpt"), runA)
	check(runB, lastB, runB)
	check(filepath.Join(root, "runs", "tok"), lastB, runB)

	for _, bad := range []string{filepath.Join(root, "nope"), filepath.Join(root, "runs")} {
		_, _, err := Resolve(bad)
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Resolve(%s): error %v should name the path", bad, err)
		}
	}
	empty := filepath.Join(root, "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(empty, core.ConfigFile), []byte("seed: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Resolve(empty); err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Errorf("run without checkpoints: got %v", err)
	}
}

// TestOpenRun opens a fake tokenizer run, builds its tokenizer from the
// run's config, loads its weights under another scope (frozen, and through
// the loader when trainable) and checks the restored values, that nothing
// else was loaded, and the errors.
func TestOpenRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokrun")
	writeRun(t, dir, "last.ckpt")
	r, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.TaskType() != "tokenizer" || r.Dir != dir || !strings.HasSuffix(r.Checkpoint, "last.ckpt") {
		t.Errorf("run = %+v", r)
	}
	tok, err := Build[core.Tokenizer](r, "task.tokenizer")
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 7 {
		t.Errorf("VocabSize = %d, want 7 (from the run's config)", tok.VocabSize())
	}
	store := model.NewStore()
	if err := r.Load(store, "/tokenizer", "/frozen", true); err != nil {
		t.Fatal(err)
	}
	v := store.GetVariable("/frozen/enc/scale")
	if v == nil {
		t.Fatal("/frozen/enc/scale not restored")
	}
	if got := tensors.MustCopyFlatData[float32](v.MustValue()); got[0] != 3 {
		t.Errorf("restored scale = %v, want 3", got)
	}
	if v.Trainable {
		t.Error("restored tokenizer variable is trainable, want frozen")
	}
	if n := store.NumVariables(); n != 1 {
		t.Errorf("store has %d variables, want only the tokenizer's 1", n)
	}
	backend, err := gobackend.New("")
	if err != nil {
		t.Fatal(err)
	}
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, images *Node) *Node {
		return tok.Encode(scope.In("frozen"), images)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(tensors.FromFlatDataAndDimensions([]float32{1, 2}, 1, 1, 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[int32](out[0]); got[0] != 3 || got[1] != 6 {
		t.Errorf("Encode with the restored weights = %v, want [3 6]", got)
	}

	// Trainable: the value arrives when the model creates the variable.
	s2 := model.NewStore()
	if err := r.Load(s2, "/tokenizer", "/tokenizer", false); err != nil {
		t.Fatal(err)
	}
	if s2.NumVariables() != 0 {
		t.Errorf("trainable load created %d variables up front, want 0", s2.NumVariables())
	}
	w := s2.Scope("/tokenizer/enc").VariableWithShape("scale", shapes.Make(dtypes.Float32, 1))
	if got := tensors.MustCopyFlatData[float32](w.MustValue()); got[0] != 3 || !w.Trainable {
		t.Errorf("created variable = %v (trainable %v), want [3], trainable", got, w.Trainable)
	}

	if err := r.Load(model.NewStore(), "/nothing", "/t", true); err == nil ||
		!strings.Contains(err.Error(), "/nothing") || !strings.Contains(err.Error(), `"tokenizer"`) {
		t.Errorf("load from an empty scope: got %v", err)
	}
	if _, err := Build[core.Tokenizer](r, "task.missing"); err == nil {
		t.Error("building a missing key: want an error")
	}
	if _, err := OpenRun(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("open of a missing run: %v", err)
	}
}

func TestFreezeScope(t *testing.T) {
	store := model.NewStore()
	a := store.Scope("/tokenizer/x").VariableWithValue("w", []float32{1})
	b := store.Scope("/tokenizerx").VariableWithValue("w", []float32{1})
	if n := FreezeScope(store, "/tokenizer"); n != 1 || a.Trainable || !b.Trainable {
		t.Errorf("FreezeScope: n=%d, a.Trainable=%v, b.Trainable=%v", n, a.Trainable, b.Trainable)
	}
}
