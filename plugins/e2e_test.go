// Package plugins_test trains with the example plugins against the same
// components built in, and checks a run's plugin bookkeeping (meta.json,
// plugins.log, checkpoints, resume).
package plugins_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	_ "github.com/peco-dev/peco/builtin"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/core/run/runtest"
	"github.com/peco-dev/peco/plugins/host"
	"github.com/peco-dev/peco/plugins/plugintest"
	"github.com/peco-dev/peco/registry"
)

// pythonReady reports whether Debian's Python has the numpy plugin's
// packages.
func pythonReady() error {
	return exec.Command("/usr/bin/python3", "-c", "import grpc, google.protobuf, numpy, cryptography").Run()
}

// setup builds the Go example plugins (and the host's fault-test plugin)
// into a temporary plugin directory, pins them and the Python example in a
// lock file, and points the host at both.
func setup(t testing.TB) (dir string) {
	t.Helper()
	dir = t.TempDir()
	var lock strings.Builder
	for name, pkg := range map[string]string{"focal": "./examples/focal-loss", "faulty": "./host/testdata/faulty", "meancolor": "./host/testdata/meancolor"} {
		out := filepath.Join(dir, host.ExecPrefix+name)
		cmd := exec.Command("go", "build", "-o", out, pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", pkg, err, b)
		}
		sum, err := host.Hash(out)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&lock, "%s  %s\n", sum, name)
	}
	pyDir, err := filepath.Abs(filepath.Join("examples", "numpy-loss"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := host.Hash(filepath.Join(pyDir, host.ExecPrefix+"numpy_ce"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&lock, "%s  numpy_ce\n", sum)
	lockPath := filepath.Join(dir, "plugins.lock")
	if err := os.WriteFile(lockPath, []byte(lock.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(host.PathEnv, dir+string(filepath.ListSeparator)+pyDir)
	t.Setenv(host.LockEnv, lockPath)
	t.Setenv("TMPDIR", t.TempDir())
	return dir
}

// mnistMIM is a tiny MIM run on MNIST (the Go module's copy) with drop path
// on, so the split step's forward passes must draw the same numbers.
const mnistMIM = `
name: plugin-mim
seed: 4
task:
  type: mim
  epochs: 1
  log_every: 1
  checkpoint_every: 2
  keep_checkpoints: 10
  data:
    train: {type: mnist, split: train}
    val: {type: mnist, split: test}
    max_train: %d
    max_val: 32
    batch_size: 16
    eval_batch_size: 32
    workers: 2
    augment: {size: 28, scale: [0.6, 1.0], ratio: [0.9, 1.1], hflip: 0, normalize: half, crop_pct: 1.0}
  backbone: {type: vit, preset: "", image_size: 28, patch_size: 4, in_channels: 1, dim: 16, depth: 2, heads: 2, drop_path: 0.2}
  masker: {type: blockwise, ratio: 0.4, min_patches: 4}
  target: %s
  loss: %s
  optimizer: {type: adamw, lr: 0.003, schedule: {type: cosine, warmup_steps: 2}}
`

// runMIM runs the config with the given loss; it returns the run directory,
// the output and the error.
func runMIM(t *testing.T, out, loss string, images int, resume bool) (string, error) {
	t.Helper()
	return runMIMTarget(t, out, vqvaeTarget, loss, images, resume)
}

// vqvaeTarget is a small VQ-VAE tokenizer used as built (random codes).
const vqvaeTarget = `{type: tokens, tokenizer: {type: vqvae, in_channels: 1, codebook_size: 32, code_dim: 8, init: random,
    encoder: {width: 8, mults: [1, 2], groups: 4}, decoder: {width: 8, mults: [1, 2], groups: 4}}}`

func runMIMTarget(t *testing.T, out, target, loss string, images int, resume bool) (string, error) {
	t.Helper()
	p := out + ".yaml"
	if err := os.WriteFile(p, []byte(fmt.Sprintf(mnistMIM, images, target, loss)), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	_, err := runtest.Run(context.Background(), t, p, nil, run.RunOptions{Out: out, Resume: resume, Stdout: &log, Stderr: &log})
	return log.String(), err
}

func trainRecords(t *testing.T, dir string) []map[string]any {
	t.Helper()
	recs, err := run.ReadMetrics(filepath.Join(dir, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, r := range recs {
		if r["phase"] == "train" {
			out = append(out, r)
		}
	}
	return out
}

func float32s(t *tensors.Tensor) []float32 {
	if t == nil {
		return nil
	}
	var out []float32
	tensors.MustConstFlatData(t, func(f []float32) { out = append(out, f...) })
	return out
}

func relDiff(a, b float64) float64 {
	return math.Abs(a-b) / math.Max(1e-12, math.Max(math.Abs(a), math.Abs(b)))
}

// TestLossPluginsMatchBuiltin trains the same steps with each example loss
// plugin and with the same loss built in: the loss curves, the gradient
// norms and the trained weights agree to float tolerance.
func TestLossPluginsMatchBuiltin(t *testing.T) {
	setup(t)
	for _, tc := range []struct {
		name, plugin, builtin string
		python                bool
	}{
		{"go focal", "{type: plugin:focal, gamma: 2}", "{type: focal, gamma: 2}", false},
		{"python numpy cross-entropy", "{type: plugin:numpy_ce, label_smoothing: 0.1}", "{type: cross_entropy, label_smoothing: 0.1}", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.python {
				if err := pythonReady(); err != nil {
					t.Skipf("Debian python3-grpcio, python3-protobuf, python3-numpy and python3-cryptography are needed for the Python plugin (/usr/bin/python3): %v", err)
				}
			}
			dir := t.TempDir()
			runs := map[string]string{"plugin": tc.plugin, "builtin": tc.builtin}
			for which, loss := range runs {
				if log, err := runMIM(t, filepath.Join(dir, which), loss, 64, false); err != nil {
					t.Fatalf("%s run: %v\n%s", which, err, log)
				}
			}
			pr, br := trainRecords(t, filepath.Join(dir, "plugin")), trainRecords(t, filepath.Join(dir, "builtin"))
			if len(pr) != 4 || len(br) != 4 {
				t.Fatalf("train records: plugin %d, built-in %d; want 4", len(pr), len(br))
			}
			for i := range pr {
				for _, key := range []string{"mim_loss", "grad_norm", "mim_acc"} {
					p, b := pr[i][key].(float64), br[i][key].(float64)
					if relDiff(p, b) > 2e-4 {
						t.Errorf("step %d %s: plugin %v, built-in %v", i+1, key, p, b)
					}
				}
			}
			pc, err := ckpt.Load(filepath.Join(dir, "plugin", core.CheckpointsDir, "last.ckpt"))
			if err != nil {
				t.Fatal(err)
			}
			bc, err := ckpt.Load(filepath.Join(dir, "builtin", core.CheckpointsDir, "last.ckpt"))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"/lm_head/weight", "/backbone/blocks/0/attn/qkv/weight", "/backbone/patch_embed/weight"} {
				pv, bv := float32s(pc.Variables[name]), float32s(bc.Variables[name])
				if len(pv) == 0 || len(pv) != len(bv) {
					t.Fatalf("%s: %d and %d values", name, len(pv), len(bv))
				}
				worst := 0.0
				for i := range pv {
					worst = math.Max(worst, math.Abs(float64(pv[i]-bv[i])))
				}
				if worst > 1e-4 {
					t.Errorf("%s differs by up to %g after training", name, worst)
				}
			}
			plugintest.NoPlugins(t, plugintest.Children, 0)
		})
	}
}

// TestPluginRunRecords checks a run's plugin bookkeeping and that a plugin
// that crashes stops the run with its checkpoints intact, and the run
// resumes (the crash happens once) to the same end.
func TestPluginRunRecords(t *testing.T) {
	setup(t)
	dir := filepath.Join(t.TempDir(), "run")
	loss := "{type: plugin:faulty, fault: crash_once, at_step: 5}"
	log, err := runMIM(t, dir, loss, 128, false) // 8 steps, checkpoints at 2, 4, 6
	if err == nil {
		t.Fatalf("the crash did not stop the run:\n%s", log)
	}
	for _, want := range []string{`plugin "faulty" (loss, `, "Compute at step 5: crashed (its process exited)", "faulty: crashing once"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	plugintest.NoPlugins(t, plugintest.Children, 0)
	latest, err := ckpt.Latest(filepath.Join(dir, core.CheckpointsDir))
	if err != nil {
		t.Fatal(err)
	}
	ck, err := ckpt.Load(latest)
	if err != nil {
		t.Fatalf("latest checkpoint %s: %v", latest, err)
	}
	var st run.LoopState
	if err := ck.DecodeState(&st); err != nil {
		t.Fatal(err)
	}
	if st.Step != 4 || len(st.Components["plugin:faulty"]) != 8 || st.Components["plugin:faulty"][0] != 4 {
		t.Errorf("latest checkpoint: step %d, plugin state %v; want step 4 and 4 calls", st.Step, st.Components)
	}
	if log, err := runMIM(t, dir, loss, 128, true); err != nil {
		t.Fatalf("resume: %v\n%s", err, log)
	}
	if recs := trainRecords(t, dir); len(recs) != 8 || recs[7]["step"].(float64) != 8 {
		t.Errorf("after resume: %d train records", len(recs))
	}
	var meta run.Meta
	b, err := os.ReadFile(filepath.Join(dir, core.MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	sum, _ := host.Hash(filepath.Join(os.Getenv(host.PathEnv)[:strings.IndexByte(os.Getenv(host.PathEnv), ':')], "peco-plugin-faulty"))
	if meta.Status != run.StatusCompleted || len(meta.Plugins) != 1 || meta.Plugins[0].Name != "faulty" || meta.Plugins[0].SHA256 != sum || meta.Plugins[0].Version != "0.1.0" {
		t.Errorf("meta.json: status %s, plugins %+v", meta.Status, meta.Plugins)
	}
	pl, err := os.ReadFile(filepath.Join(dir, core.PluginLogFile))
	if err != nil || !strings.Contains(string(pl), "[faulty] faulty: crashing once") {
		t.Errorf("plugins.log: %v\n%s", err, pl)
	}
	plugintest.NoPlugins(t, plugintest.Children, 0)
}

// TestResumeWithDropPath resumes a run whose checkpoint holds the RNG state
// (drop path draws from it): it must come back as the store's own,
// non-trainable state, or the optimizer tries to update it.
func TestResumeWithDropPath(t *testing.T) {
	setup(t)
	dir := filepath.Join(t.TempDir(), "run")
	if log, err := runMIM(t, dir, "{type: focal}", 128, false); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	for _, f := range []string{"step-000000008.ckpt", "last.ckpt", "best.ckpt"} {
		if err := os.Remove(filepath.Join(dir, core.CheckpointsDir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if log, err := runMIM(t, dir, "{type: focal}", 128, true); err != nil {
		t.Fatalf("resume from step 6: %v\n%s", err, log)
	}
	if recs := trainRecords(t, dir); len(recs) != 8 {
		t.Errorf("after resume: %d train records, want 8", len(recs))
	}
}

// TestTokenizerPluginTarget trains MIM on the tokens of a tokenizer plugin,
// computed per batch and precomputed into the run's token cache.
func TestTokenizerPluginTarget(t *testing.T) {
	setup(t)
	for _, tc := range []struct{ name, target string }{
		{"online", "{type: tokens, tokenizer: {type: plugin:meancolor, patch: 4, levels: 4}}"},
		{"precomputed", "{type: tokens, tokenizer: {type: plugin:meancolor, patch: 4, levels: 4}, precompute: 2}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			log, err := runMIMTarget(t, dir, tc.target, "null", 64, false)
			if err != nil {
				t.Fatalf("%v\n%s", err, log)
			}
			recs := trainRecords(t, dir)
			if len(recs) != 4 {
				t.Fatalf("%d train records", len(recs))
			}
			// 4 tokens (4 levels of gray): an untrained head starts near ln 4.
			if l := recs[0]["mim_loss"].(float64); math.Abs(l-math.Log(4)) > 0.1 {
				t.Errorf("first loss %v, want about ln 4 = 1.386", l)
			}
			cache, _ := filepath.Glob(filepath.Join(dir, "token_cache", "*.tokens"))
			if want := map[string]int{"online": 0, "precomputed": 2}[tc.name]; len(cache) != want {
				t.Errorf("token cache files %v, want %d", cache, want)
			}
			plugintest.NoPlugins(t, plugintest.Children, 0)
		})
	}
	t.Run("grid mismatch", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "run")
		_, err := runMIMTarget(t, dir, "{type: tokens, tokenizer: {type: plugin:meancolor, patch: 7}}", "null", 64, false)
		if err == nil || !strings.Contains(err.Error(), "the backbone's patch grid is 7x7") {
			t.Errorf("error %v, want a grid mismatch", err)
		}
		plugintest.NoPlugins(t, plugintest.Children, 0)
	})
}

// BenchmarkFocalPluginCall times one call of the focal loss plugin on the
// logits of the mim-tiny4-4l-b32 bench workload (32 images x 26 masked
// patches, 1024 tokens): the transfer both ways and the plugin's float64
// loss and gradient, without the model.
//
//	go test ./plugins/ -run '^$' -bench FocalPluginCall
func BenchmarkFocalPluginCall(b *testing.B) {
	setup(b)
	cfg, err := registry.DecodeComponent(core.Losses.Kind(), "plugin:focal", nil)
	if err != nil {
		b.Fatal(err)
	}
	built, err := core.Losses.Build("plugin:focal", cfg)
	if err != nil {
		b.Fatal(err)
	}
	l := built.(*host.Loss)
	if err := l.StartProcess(&core.Env{Dir: b.TempDir()}); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const n, k = 32 * 26, 1024
	r := rand.New(rand.NewPCG(1, 2))
	logits, labels := make([]float32, n*k), make([]int32, n)
	for i := range logits {
		logits[i] = float32(r.NormFloat64())
	}
	for i := range labels {
		labels[i] = int32(r.IntN(k))
	}
	in := map[string]*tensors.Tensor{"logits": tensors.FromFlatDataAndDimensions(logits, n, k), "labels": tensors.FromFlatDataAndDimensions(labels, n)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := l.Evaluate(context.Background(), int64(i), in, []string{"logits"}, true); err != nil {
			b.Fatal(err)
		}
	}
}
