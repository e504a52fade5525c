package plugintask_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/core/run/runtest"
	"github.com/peco-dev/peco/plugins/host"
	"github.com/peco-dev/peco/plugins/plugintest"
	_ "github.com/peco-dev/peco/tasks/plugintask"
)

const (
	pluginName = "fashion_mnist"
	faultyName = "faulty_task"
)

// built holds the test plugins, built and pinned once: the fashion-mnist
// example and a copy of it with faults on demand (testdata/faultytask).
var built struct {
	once  sync.Once
	dir   string
	paths map[string]string
	lock  string
	err   error
}

// usePlugin builds the test plugins (once), pins them in a lock file and
// points the host at both for this test. It returns the executable of the
// plugin name.
func usePlugin(t *testing.T, name string) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "peco-plugintask-test")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		built.paths = map[string]string{}
		var lock strings.Builder
		for name, pkg := range map[string]string{pluginName: "../../plugins/examples/fashion-mnist", faultyName: "./testdata/faultytask"} {
			path := filepath.Join(dir, host.ExecPrefix+name)
			cmd := exec.Command("go", "build", "-o", path, pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				built.err = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
				return
			}
			sum, err := host.Hash(path)
			if err != nil {
				built.err = err
				return
			}
			fmt.Fprintf(&lock, "%s  %s\n", sum, filepath.Base(path))
			built.paths[name] = path
		}
		built.lock = filepath.Join(dir, host.LockFile)
		built.err = os.WriteFile(built.lock, []byte(lock.String()), 0o644)
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	t.Setenv(host.PathEnv, built.dir)
	t.Setenv(host.LockEnv, built.lock)
	return built.paths[name]
}

func TestMain(m *testing.M) {
	code := m.Run()
	host.Cleanup()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// ---------------------------------------------------------------- synthetic Fashion-MNIST

func idxBytes(magic uint32, dims []int, data []byte) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		_ = binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(data)
	return b.Bytes()
}

func writeGz(t *testing.T, path string, raw []byte) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// synthSplit makes n 28x28 images of class i*7 % 10 (balanced): the class
// sets the background's gray level and where a bright 7x7 block sits (a
// 3x4 grid of places), with noise on both.
func synthSplit(n int, seed uint64) (images, labels []byte) {
	r := rand.New(rand.NewPCG(seed, 1))
	images = make([]byte, n*28*28)
	labels = make([]byte, n)
	for i := range n {
		k := i * 7 % 10
		labels[i] = byte(k)
		img := images[i*28*28 : (i+1)*28*28]
		for j := range img {
			img[j] = byte(k*16 + r.IntN(12))
		}
		y0, x0 := (k/4)*9+1, (k%4)*7
		for y := y0; y < y0+7; y++ {
			for x := x0; x < x0+7; x++ {
				img[y*28+x] = byte(220 + r.IntN(36))
			}
		}
	}
	return images, labels
}

// writeSynth writes the four IDX files of a synthetic dataset.
func writeSynth(t *testing.T, nTrain, nTest int) string {
	t.Helper()
	dir := t.TempDir()
	for _, s := range []struct {
		images, labels string
		n              int
		seed           uint64
	}{
		{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", nTrain, 1},
		{"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", nTest, 2},
	} {
		img, lab := synthSplit(s.n, s.seed)
		writeGz(t, filepath.Join(dir, s.images), idxBytes(0x803, []int{s.n, 28, 28}, img))
		writeGz(t, filepath.Join(dir, s.labels), idxBytes(0x801, []int{s.n}, lab))
	}
	return dir
}

// ---------------------------------------------------------------- helpers

// config is a run of the plugin on dir: a one-block ViT on 32x32 images.
func config(dir string, trainSize, testSize, epochs, batch int) string {
	return fmt.Sprintf(`name: fmnist
seed: 1
task:
  type: plugin:fashion_mnist
  dir: %q
  train_size: %d
  test_size: %d
  size: 32
  train:
    epochs: %d
    log_every: 1
    batch_size: %d
    eval_batch_size: 100
    normalize: half
    backbone: {type: vit, preset: "", image_size: 32, patch_size: 4, in_channels: 1, dim: 32, depth: 1, heads: 2}
    optimizer: {type: adamw, lr: 0.003, weight_decay: 0.01, schedule: {type: cosine, warmup_frac: 0.05}}
`, dir, trainSize, testSize, epochs, batch)
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fmnist.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runIt(t *testing.T, cfgPath, out string, resume bool, stdout io.Writer, sets ...string) error {
	t.Helper()
	return runCtx(context.Background(), t, cfgPath, out, resume, stdout, io.Discard, sets...)
}

func runCtx(ctx context.Context, t *testing.T, cfgPath, out string, resume bool, stdout, stderr io.Writer, sets ...string) error {
	t.Helper()
	if stdout == nil {
		stdout = io.Discard
	}
	_, err := runtest.Run(ctx, t, cfgPath, sets, run.RunOptions{Out: out, Resume: resume, Stdout: stdout, Stderr: stderr, ProgressInterval: 1})
	return err
}

// cancelWriter cancels a context once the progress output shows marker.
type cancelWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.cancel != nil && strings.Contains(w.buf.String(), w.marker) {
		w.cancel()
		w.cancel = nil
	}
	return len(p), nil
}

// series maps "phase/step/key" to every number a run logged but times.
func series(t *testing.T, dir string) map[string]float64 {
	t.Helper()
	recs, err := run.ReadMetrics(filepath.Join(dir, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, r := range recs {
		for k, v := range r {
			if f, ok := v.(float64); ok && k != "images_per_sec" && k != "eval_seconds" {
				out[fmt.Sprintf("%v/%v/%s", r["phase"], r["step"], k)] = f
			}
		}
	}
	return out
}

func modTimes(t *testing.T, paths []string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, info.ModTime())
	}
	return out
}

func readMetrics(t *testing.T, dir string) (train, eval []map[string]any) {
	t.Helper()
	recs, err := run.ReadMetrics(filepath.Join(dir, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		switch r["phase"] {
		case "train":
			train = append(train, r)
		case "eval":
			eval = append(eval, r)
		}
	}
	return train, eval
}

func meanLoss(recs []map[string]any) float64 {
	var s float64
	for _, r := range recs {
		s += r["loss"].(float64)
	}
	return s / float64(len(recs))
}

func readMeta(t *testing.T, dir string) run.Meta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, core.MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	var m run.Meta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var metricNames = []string{"val_top1", "val_mean_class_acc", "val_macro_f1"}

// checkEval checks the eval records: one per epoch, each with the plugin's
// metrics in [0, 100].
func checkEval(t *testing.T, eval []map[string]any, epochs int) {
	t.Helper()
	if len(eval) != epochs {
		t.Fatalf("%d eval records, want %d", len(eval), epochs)
	}
	for _, r := range eval {
		for _, k := range metricNames {
			v, ok := r[k].(float64)
			if !ok || v < 0 || v > 100 {
				t.Errorf("eval record %v: %s = %v, want a number in [0, 100]", r, k, r[k])
			}
		}
	}
}

// ---------------------------------------------------------------- tests

// TestEndToEnd trains a tiny ViT for two epochs on synthetic
// Fashion-MNIST files served by the example plugin, resumes the finished
// run (a no-op) and starts a second run from its backbone.
func TestEndToEnd(t *testing.T) {
	bin := usePlugin(t, pluginName)
	data := writeSynth(t, 512, 256)
	cfg := writeConfig(t, config(data, 512, 256, 2, 16))
	out := filepath.Join(t.TempDir(), "run")
	t0 := time.Now()
	var stdout bytes.Buffer
	if err := runIt(t, cfg, out, false, &stdout); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	t.Logf("2 epochs of 32 steps in %s", time.Since(t0).Round(time.Millisecond))
	plugintest.NoPlugins(t, plugintest.Running(bin), 2*time.Second)

	train, eval := readMetrics(t, out)
	if len(train) != 64 {
		t.Errorf("%d train records, want 64 (log_every 1)", len(train))
	}
	checkEval(t, eval, 2)
	first, last := meanLoss(train[:4]), meanLoss(train[len(train)-4:])
	top1 := eval[1]["val_top1"].(float64)
	t.Logf("loss %.3f -> %.3f; val_top1 %.1f%% then %.1f%%", first, last, eval[0]["val_top1"], top1)
	if !(last < 0.8*first) {
		t.Errorf("the training loss did not fall: %.4f -> %.4f", first, last)
	}
	if top1 < 45 {
		t.Errorf("val_top1 %.1f%% after training on class-dependent images, want >= 45%% (chance is 10%%)", top1)
	}
	for _, r := range train {
		if _, ok := r["lr"].(float64); !ok {
			t.Errorf("train record without lr: %v", r)
			break
		}
	}

	ckDir := filepath.Join(out, core.CheckpointsDir)
	for _, f := range []string{"last.ckpt", "best.ckpt"} {
		if _, err := os.Stat(filepath.Join(ckDir, f)); err != nil {
			t.Error(err)
		}
	}
	steps, err := ckpt.List(ckDir)
	if err != nil || len(steps) == 0 {
		t.Errorf("no step checkpoints: %v %v", steps, err)
	}
	ck, err := ckpt.Load(filepath.Join(ckDir, "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if !ck.HasScope(ckpt.BackboneScope) || ck.Variables["/head/weight"] == nil {
		t.Error("last.ckpt lacks the backbone under /backbone or the head under /head")
	}
	if ck.Step != 64 {
		t.Errorf("last.ckpt is of step %d, want 64", ck.Step)
	}

	meta := readMeta(t, out)
	if meta.Status != run.StatusCompleted {
		t.Errorf("meta status %q (%s)", meta.Status, meta.Error)
	}
	if meta.Summary["steps"] != float64(64) || meta.Summary["final_val_top1"] != top1 || meta.Summary["best_top1"] == nil {
		t.Errorf("summary %v: want steps 64, final_val_top1 %v, best_top1", meta.Summary, top1)
	}
	if len(meta.Plugins) != 1 || meta.Plugins[0].Name != pluginName || meta.Plugins[0].Kind != "task" || meta.Plugins[0].Path != bin {
		t.Errorf("meta.json plugins %+v, want the fashion_mnist task plugin at %s", meta.Plugins, bin)
	}
	if !strings.Contains(stdout.String(), "epoch 1: top1 ") {
		t.Errorf("stdout lacks the epoch's metrics:\n%s", stdout.String())
	}

	// Resuming the finished run changes nothing.
	before, _ := os.ReadFile(filepath.Join(out, core.MetricsFile))
	lastBefore, _ := os.ReadFile(filepath.Join(ckDir, "last.ckpt"))
	stamps := modTimes(t, steps)
	if err := runIt(t, cfg, out, true, nil); err != nil {
		t.Fatalf("resume: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(out, core.MetricsFile))
	if !bytes.Equal(before, after) {
		t.Error("--resume of a finished run changed metrics.jsonl")
	}
	if lastAfter, _ := os.ReadFile(filepath.Join(ckDir, "last.ckpt")); !bytes.Equal(lastBefore, lastAfter) {
		t.Error("--resume of a finished run changed last.ckpt")
	}
	if steps2, _ := ckpt.List(ckDir); fmt.Sprint(steps2) != fmt.Sprint(steps) || fmt.Sprint(modTimes(t, steps2)) != fmt.Sprint(stamps) {
		t.Errorf("--resume of a finished run changed the step checkpoints: %v -> %v", steps, steps2)
	}
	if m := readMeta(t, out); m.Status != run.StatusCompleted || m.Summary["final_val_top1"] != top1 || len(m.Resumes) != 0 {
		t.Errorf("after the resume: status %q, summary %v, resumes %v", m.Status, m.Summary, m.Resumes)
	}
	plugintest.NoPlugins(t, plugintest.Running(bin), 2*time.Second)

	// A run from the first one's backbone: with a negligible lr, its
	// backbone stays the first run's.
	stdout.Reset()
	out2 := filepath.Join(t.TempDir(), "from")
	if err := runIt(t, cfg, out2, false, &stdout, "task.train.epochs=1", "task.train.from="+out, "task.train.optimizer.lr=1e-12"); err != nil {
		t.Fatalf("from: %v", err)
	}
	if !strings.Contains(stdout.String(), "backbone: loaded ") || !strings.Contains(stdout.String(), "("+filepath.Join(ckDir, "last.ckpt")+")") {
		t.Errorf("the from: run does not say where its backbone came from:\n%s", stdout.String())
	}
	_, eval2 := readMetrics(t, out2)
	checkEval(t, eval2, 1)
	ck2, err := ckpt.Load(filepath.Join(out2, core.CheckpointsDir, "last.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for p, v := range ck.Variables {
		if !strings.HasPrefix(p, ckpt.BackboneScope+"/") {
			continue
		}
		n++
		a, b := tensors.MustCopyFlatData[float32](v), tensors.MustCopyFlatData[float32](ck2.Variables[p])
		for i := range a {
			if math.Abs(float64(a[i]-b[i])) > 1e-6 {
				t.Fatalf("%s[%d]: %v in the first run, %v in the run from it", p, i, a[i], b[i])
			}
		}
	}
	if n == 0 {
		t.Error("no backbone variables compared")
	}
	plugintest.NoPlugins(t, plugintest.Running(bin), 2*time.Second)
}

// TestResumeExact kills a run mid-epoch and resumes it: the metrics
// continue exactly as the uninterrupted run's.
func TestResumeExact(t *testing.T) {
	bin := usePlugin(t, pluginName)
	data := writeSynth(t, 256, 128)
	cfg := writeConfig(t, strings.Replace(config(data, 256, 128, 2, 32), "log_every: 1", "log_every: 1\n    checkpoint_every: 5", 1))
	root := t.TempDir()
	a := filepath.Join(root, "a")
	if err := runIt(t, cfg, a, false, nil); err != nil {
		t.Fatal(err)
	}
	want := series(t, a)
	c := filepath.Join(root, "c")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelWriter{marker: "train 12/16", cancel: cancel}
	if err := runCtx(ctx, t, cfg, c, false, nil, w); err == nil {
		t.Fatal("the cancelled run reported success")
	}
	if m := readMeta(t, c); m.Status != run.StatusCancelled {
		t.Errorf("status after cancel %q", m.Status)
	}
	plugintest.NoPlugins(t, plugintest.Running(bin), 2*time.Second)
	var out bytes.Buffer
	if err := runCtx(context.Background(), t, cfg, c, true, &out, io.Discard); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if !strings.Contains(out.String(), "resumed from") {
		t.Errorf("the resumed run does not say where it resumed from:\n%s", out.String())
	}
	got := series(t, c)
	if len(got) != len(want) {
		t.Errorf("resumed run logged %d numbers, the uninterrupted one %d", len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || math.Abs(g-v) > 1e-6*math.Max(1, math.Abs(v)) {
			t.Errorf("resumed: %s = %v, want %v", k, g, v)
		}
	}
	if m := readMeta(t, c); m.Status != run.StatusCompleted || m.Summary["final_val_top1"] != want["eval/16/val_top1"] {
		t.Errorf("after the resume: status %q, summary %v", m.Status, m.Summary)
	}
	plugintest.NoPlugins(t, plugintest.Running(bin), 2*time.Second)
}

// TestConfigErrors: typos in the plugin's keys and in the host's are
// config errors with a suggestion; a backbone of another image size is an
// error naming the plugin; no process is left.
func TestConfigErrors(t *testing.T) {
	bin := usePlugin(t, pluginName)
	data := writeSynth(t, 64, 32)
	base := config(data, 64, 32, 1, 32)
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"plugin key", "train_size:", "train_sise:", `did you mean "train_size"`},
		{"train key", "batch_size:", "batch_sise:", `did you mean "batch_size"`},
		{"bad train value", "normalize: half", "normalize: halve", `unknown normalization "halve"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, strings.Replace(base, tc.from, tc.to, 1))
			_, _, err := run.LoadExperiment(p, nil)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %s", err, tc.want)
			}
		})
	}
	t.Run("image size", func(t *testing.T) {
		p := writeConfig(t, base)
		err := runIt(t, p, filepath.Join(t.TempDir(), "run"), false, nil, "task.train.backbone.image_size=28")
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), `plugin "fashion_mnist" serves 32x32x1 images`) || !strings.Contains(err.Error(), "takes 28x28x1") {
			t.Fatalf("error %v, want the image size mismatch", err)
		}
	})
	t.Run("batch larger than the split", func(t *testing.T) {
		p := writeConfig(t, base)
		err := runIt(t, p, filepath.Join(t.TempDir(), "run"), false, nil, "task.train.batch_size=100")
		if err == nil || !strings.Contains(err.Error(), "fewer than train.batch_size 100") {
			t.Fatalf("error %v, want the batch size error", err)
		}
	})
	t.Run("plugin refuses its config", func(t *testing.T) {
		p := writeConfig(t, base)
		err := runIt(t, p, filepath.Join(t.TempDir(), "run"), false, nil, "task.dir="+filepath.Join(data, "nope"))
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), `plugin "fashion_mnist"`) || !strings.Contains(err.Error(), "Configure") {
			t.Fatalf("error %v, want the plugin's Configure error", err)
		}
	})
	plugintest.NoPlugins(t, plugintest.Running(bin), 2*time.Second)
}

// TestDebian trains on the real Fashion-MNIST files of Debian's
// dataset-fashion-mnist: val top-1 well above chance.
func TestDebian(t *testing.T) {
	const dir = "/usr/share/datasets/fashion-mnist"
	if _, err := os.Stat(filepath.Join(dir, "train-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("Debian's dataset-fashion-mnist is not installed (%s): apt-get install dataset-fashion-mnist", dir)
	}
	if testing.Short() {
		t.Skip("trains for a few seconds; skipped with -short")
	}
	bin := usePlugin(t, pluginName)
	cfg := writeConfig(t, config(dir, 2048, 500, 3, 32))
	out := filepath.Join(t.TempDir(), "run")
	t0 := time.Now()
	if err := runIt(t, cfg, out, false, nil); err != nil {
		t.Fatal(err)
	}
	_, eval := readMetrics(t, out)
	checkEval(t, eval, 3)
	top1 := eval[2]["val_top1"].(float64)
	t.Logf("real Fashion-MNIST, 2048 images x 3 epochs in %s: val_top1 %.1f%%, mean_class_acc %.1f%%, macro_f1 %.1f%%",
		time.Since(t0).Round(time.Millisecond), top1, eval[2]["val_mean_class_acc"], eval[2]["val_macro_f1"])
	if top1 < 40 {
		t.Errorf("val_top1 %.1f%%, want well above chance (10%%): >= 40%%", top1)
	}
	plugintest.NoPlugins(t, plugintest.Running(bin), 2*time.Second)
}

// TestPluginFaults has the faulty plugin misbehave in each way: each is one
// error naming the plugin and the call (and the step), and no process is
// left.
func TestPluginFaults(t *testing.T) {
	bin := usePlugin(t, faultyName)
	data := writeSynth(t, 64, 32)
	base := strings.Replace(config(data, 64, 32, 1, 32), "type: plugin:fashion_mnist", "type: plugin:faulty_task", 1)
	prefix := fmt.Sprintf("plugin %q (task, %s): ", faultyName, bin)
	for _, tc := range []struct {
		fault string
		sets  []string
		want  []string
	}{
		{"describe_head", nil, []string{prefix + "Describe: asks for head 7"}},
		{"describe_primary", nil, []string{prefix + `Describe: its primary_metric "auc" is not one of its metrics (top1, mean_class_acc, macro_f1)`}},
		{"label_dtype", nil, []string{prefix + "Samples at step 0: ", "labels are float32[32], want int32[32]"}},
		{"pixel_range", nil, []string{prefix + "Samples at step 1: ", "holds 2 at flat index 5, want values in [0, 1]"}},
		{"short_samples", nil, []string{prefix + "Samples at step 0: ", "want a leading dimension of 32"}},
		{"crash_samples", nil, []string{prefix + "Samples at step 2: crashed (its process exited)"}},
		{"nan_metric", nil, []string{prefix + `Evaluate at step 2: returned metric "macro_f1" = NaN`}},
		{"no_primary", nil, []string{prefix + `Evaluate at step 2: returned no "top1", its primary_metric (it returned: macro_f1, mean_class_acc)`}},
		{"hang_evaluate", []string{"task.plugin.timeout=1s"}, []string{prefix + "Evaluate at step 2: did not answer within 1s"}},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			p := writeConfig(t, base+"  fault: "+tc.fault+"\n")
			err := runIt(t, p, filepath.Join(t.TempDir(), "run"), false, nil, tc.sets...)
			if err == nil {
				t.Fatal("the run succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			plugintest.NoPlugins(t, plugintest.Running(bin), 2*time.Second)
		})
	}
	// A crash is survived with plugin.restarts, the call repeated.
	t.Run("restart", func(t *testing.T) {
		p := writeConfig(t, base+"  fault: crash_samples\n")
		out := filepath.Join(t.TempDir(), "run")
		if err := runIt(t, p, out, false, nil, "task.plugin.restarts=1"); err != nil {
			t.Fatal(err)
		}
		_, eval := readMetrics(t, out)
		checkEval(t, eval, 1)
		log, _ := os.ReadFile(filepath.Join(out, core.PluginLogFile))
		if !strings.Contains(string(log), "restarting (1 of 1)") {
			t.Errorf("plugins.log does not record the restart:\n%s", log)
		}
		plugintest.NoPlugins(t, plugintest.Running(bin), 2*time.Second)
	})
}
