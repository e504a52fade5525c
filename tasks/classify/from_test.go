package classify_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/core/run/runtest"
)

// fakeRun writes a run directory of task taskType whose checkpoint holds
// the given variables (each a 2-vector), for from: checks.
func fakeRun(t *testing.T, dir, taskType string, vars ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, core.CheckpointsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, core.ConfigFile), []byte("name: fake\nseed: 0\ntask:\n  type: "+taskType+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	for _, v := range vars {
		store.Scope(filepath.Dir(v)).VariableWithValue(filepath.Base(v), []float32{1, 2})
	}
	if err := ckpt.Save(filepath.Join(dir, core.CheckpointsDir, "last"+ckpt.Ext), store, 1, nil); err != nil {
		t.Fatal(err)
	}
}

// TestFromChecksTheRun: a fine-tune whose from: is the wrong kind of run (a
// tokenizer run), a run of another backbone, or one of other shapes is
// refused before training, naming the run, the variables and the shapes; a
// partial match (a deeper backbone) loads what fits and reports the rest.
func TestFromChecksTheRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model; skipped with -short")
	}
	cfg := writeConfig(t)
	root := t.TempDir()
	a := filepath.Join(root, "a")
	if err := runCfg(t, cfg, a, false, io.Discard, context.Background(), "task.epochs=1"); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(root, "tok")
	fakeRun(t, tok, "tokenizer", "/tokenizer/enc/w", "/adamw/tokenizer/enc/w_m1")
	other := filepath.Join(root, "other")
	fakeRun(t, other, "classification", "/backbone/stem/w", "/head/weight")
	for _, tc := range []struct {
		name string
		sets []string
		want []string
	}{
		{"tokenizer run", []string{"task.from=" + tok},
			[]string{"run " + tok, `task "tokenizer"`, "holds no variables under /backbone", "it holds /adamw, /tokenizer", "not a run that trains a backbone"}},
		{"another backbone", []string{"task.from=" + other},
			[]string{"run " + other, "none of its 1 variables under /backbone", "/backbone/stem/w", "/backbone/blocks/0/"}},
		{"other shapes", []string{"task.from=" + a, "task.backbone.dim=32"},
			[]string{"run " + a, "does not fit this backbone", "/backbone/blocks/0/attn/qkv/weight: [16 48] in the run, [32 96] here", filepath.Join(a, core.ConfigFile), "more)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(root, strings.ReplaceAll(tc.name, " ", "_"))
			var log bytes.Buffer
			err := runCfg(t, cfg, out, false, &log, context.Background(), append(tc.sets, "task.epochs=1")...)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nlacks %q", err, w)
				}
			}
			if l, _ := ckpt.List(filepath.Join(out, core.CheckpointsDir)); len(l) > 0 || strings.Contains(log.String(), "train ") {
				t.Errorf("it trained before refusing: %v\n%s", l, log.String())
			}
		})
	}
	// A deeper backbone: block 0 and the embeddings load, block 1 is new.
	var stdout bytes.Buffer
	out := filepath.Join(root, "deeper")
	_, err := runtest.Run(context.Background(), t, cfg, []string{"task.epochs=1", "task.from=" + a, "task.backbone.depth=2"},
		run.RunOptions{Out: out, Stdout: &stdout, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"backbone: loaded 19 of 32 variables from " + a, "not in the run, initialised fresh (13): /backbone/blocks/1/"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, stdout.String())
		}
	}
}
