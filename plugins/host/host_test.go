package host_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/plugins/host"
	"github.com/peco-dev/peco/registry"
)

// bins holds the test plugins built once by TestMain.
var bins struct {
	dir                    string
	faulty, oldproto, fake string
}

func TestMain(m *testing.M) {
	if os.Getenv("PECO_HOST_TEST_CHILD") != "" {
		childMain()
		return
	}
	dir, err := os.MkdirTemp("", "peco-host-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		bins.dir = dir
		bins.faulty = filepath.Join(dir, "peco-plugin-faulty")
		bins.oldproto = filepath.Join(dir, "peco-plugin-oldproto")
		bins.fake = filepath.Join(dir, "peco-plugin-fake")
		for _, b := range []struct{ out, pkg string }{{bins.faulty, "./testdata/faulty"}, {bins.oldproto, "./testdata/oldproto"}} {
			cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n", b.pkg, err)
				return 1
			}
		}
		// Not a plugin at all: a program that prints something else.
		if err := os.WriteFile(bins.fake, []byte("#!/bin/sh\necho hello, I am not a plugin\n"), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		var lock strings.Builder
		for _, p := range []string{bins.faulty, bins.oldproto, bins.fake} {
			sum, err := host.Hash(p)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Fprintf(&lock, "%s  %s\n", sum, filepath.Base(p))
		}
		lockPath := filepath.Join(dir, "plugins.lock")
		if err := os.WriteFile(lockPath, []byte(lock.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		os.Setenv(host.PathEnv, dir)
		os.Setenv(host.LockEnv, lockPath)
		return m.Run()
	}()
	host.Cleanup()
	os.Exit(code)
}

// buildLoss decodes and builds a loss plugin from config params.
func buildLoss(t *testing.T, params map[string]any) (*host.Loss, error) {
	t.Helper()
	cfg, err := registry.DecodeComponent(core.Losses.Kind(), "plugin:faulty", params)
	if err != nil {
		return nil, err
	}
	l, err := core.Losses.Build("plugin:faulty", cfg)
	if err != nil {
		return nil, err
	}
	return l.(*host.Loss), nil
}

func startLoss(t *testing.T, params map[string]any) *host.Loss {
	t.Helper()
	l, err := buildLoss(t, params)
	if err != nil {
		t.Fatal(err)
	}
	env := &core.Env{Seed: 1, Dir: t.TempDir()}
	if err := l.StartProcess(env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func lossInputs() map[string]*tensors.Tensor {
	return map[string]*tensors.Tensor{
		"logits": tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 0, -1, 0.5}, 2, 3),
		"labels": tensors.FromFlatDataAndDimensions([]int32{2, 0}, 2),
	}
}

// alive reports whether a process runs (and is not a zombie).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 100 && alive(pid); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("plugin process %d still runs", pid)
	}
}

// TestLossFaults has the plugin misbehave in each way at step 3: each is
// one error naming the plugin, the call and the step, and no process is
// left.
func TestLossFaults(t *testing.T) {
	for _, tc := range []struct {
		fault    string
		settings map[string]any
		want     string
		ok       bool
	}{
		{fault: "", ok: true},
		{fault: "crash", want: "crashed (its process exited); its last stderr lines:\n  | panic: faulty: crashing on purpose"},
		{fault: "hang", settings: map[string]any{"timeout": "1s"}, want: "did not answer within 1s (plugin.timeout); killed"},
		{fault: "nan", want: "returned a loss of NaN"},
		{fault: "nan_grad", want: `gradient of "logits" holds a non-finite value at flat index 1`},
		{fault: "shape", want: `gradient of "logits" is float32[2 2], want float32[2 3]`},
		{fault: "dtype", want: `gradient of "logits" is float64[2 3], want float32[2 3]`},
		{fault: "no_grad", want: `returned no gradient for "logits"`},
		{fault: "error", want: "refusing step 3 on purpose (InvalidArgument)"},
		{fault: "crash", settings: map[string]any{"restarts": 2}, want: "(after 2 restarts, plugin.restarts)"},
		{fault: "crash_once", settings: map[string]any{"restarts": 1}, ok: true},
		{fault: "env", ok: true},
	} {
		name := tc.fault
		if tc.settings != nil {
			name += fmt.Sprint(tc.settings)
		}
		t.Run(name, func(t *testing.T) {
			t.Setenv("PECO_TEST_SECRET", "hunter2") // must not reach the plugin
			t.Setenv("TMPDIR", t.TempDir())
			params := map[string]any{"fault": tc.fault, "at_step": 3}
			if tc.settings != nil {
				params["plugin"] = tc.settings
			}
			l := startLoss(t, params)
			pid := l.Process().Pid()
			if _, _, err := l.Evaluate(context.Background(), 2, lossInputs(), []string{"logits"}, true); err != nil {
				t.Fatalf("step 2 (before the fault): %v", err)
			}
			loss, grads, err := l.Evaluate(context.Background(), 3, lossInputs(), []string{"logits"}, true)
			if tc.ok {
				if err != nil {
					t.Fatalf("step 3: %v", err)
				}
				if loss <= 0 || grads["logits"] == nil {
					t.Errorf("loss %v, grads %v", loss, grads)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			prefix := fmt.Sprintf("plugin \"faulty\" (loss, %s): Compute at step 3: ", bins.faulty)
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %v\nwant prefix %q and %q", err, prefix, tc.want)
			}
			if tc.fault == "crash" || tc.fault == "hang" {
				waitGone(t, pid)
				if !l.Process().Exited() {
					t.Error("the host still holds a running plugin")
				}
			}
			_ = l.Close()
			waitGone(t, pid)
		})
	}
}

// TestStartFaults covers plugins that must not start, or not be used.
func TestStartFaults(t *testing.T) {
	other := filepath.Join(t.TempDir(), "peco-plugin-faulty")
	data, err := os.ReadFile(bins.faulty)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, append(data, 0), 0o755); err != nil { // one byte more: another sha256
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, typ string
		params    map[string]any
		want      string
	}{
		{"checksum", "plugin:faulty", map[string]any{"plugin": map[string]any{"path": other}}, "fails its checksum: the file's sha256 is"},
		{"pinned in config", "plugin:faulty", map[string]any{"plugin": map[string]any{"sha256": strings.Repeat("ab", 32)}}, "plugin.sha256) pins abab"},
		{"not a plugin", "plugin:fake", nil, "is not a peco plugin (it did not answer the plugin handshake"},
		{"protocol version", "plugin:oldproto", nil, "speaks another plugin protocol version than this peco"},
		{"missing", "plugin:nothere", nil, `no plugin "nothere": looked for peco-plugin-nothere in`},
		{"typo in a plugin key", "plugin:faulty", map[string]any{"faultt": "crash"}, `unknown key "faultt"; did you mean "fault"?`},
		{"typo in a host key", "plugin:faulty", map[string]any{"plugin": map[string]any{"timout": "1s"}}, `did you mean "timeout"?`},
		{"wrong type", "plugin:faulty", map[string]any{"at_step": "three"}, `at_step: expected an integer, got string "three"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registry.DecodeComponent(core.Losses.Kind(), tc.typ, tc.params)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %v\nwant %q", err, tc.want)
			}
		})
	}
	t.Run("unpinned", func(t *testing.T) {
		lock := filepath.Join(t.TempDir(), "plugins.lock")
		t.Setenv(host.LockEnv, lock)
		_, err := registry.DecodeComponent(core.Losses.Kind(), "plugin:faulty", nil)
		if err == nil || !strings.Contains(err.Error(), "is not pinned: add `") {
			t.Errorf("error %v, want: not pinned", err)
		}
	})
}

// TestConfigResolved checks the resolved config records the binary.
func TestConfigResolved(t *testing.T) {
	cfg, err := registry.DecodeComponent(core.Losses.Kind(), "plugin:faulty", map[string]any{"at_step": 7})
	if err != nil {
		t.Fatal(err)
	}
	out, err := registry.Resolved(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := host.Hash(bins.faulty)
	for _, want := range []string{"path: " + bins.faulty, "sha256: " + sum, "at_step: 7", "fault: \"\"", "weight: 1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("resolved config lacks %q:\n%s", want, out)
		}
	}
	use := registry.Collect[core.PluginConfig](cfg)
	if len(use) != 1 || use[0].PluginUse().SHA256 != sum || use[0].PluginUse().Version != "0.1.0" {
		t.Errorf("Collect: %+v", use)
	}
}

// TestStateSaveLoad round-trips the plugin's state.
func TestStateSaveLoad(t *testing.T) {
	l := startLoss(t, map[string]any{})
	for step := range 3 {
		if _, _, err := l.Evaluate(context.Background(), int64(step), lossInputs(), []string{"logits"}, true); err != nil {
			t.Fatal(err)
		}
	}
	st, err := l.SaveState(3)
	if err != nil || len(st) != 8 || st[0] != 3 {
		t.Fatalf("state %v, %v; want 3 calls", st, err)
	}
	l2 := startLoss(t, map[string]any{})
	if err := l2.LoadState(st); err != nil {
		t.Fatal(err)
	}
	if st2, _ := l2.SaveState(3); string(st2) != string(st) {
		t.Errorf("loaded state %v, want %v", st2, st)
	}
	if err := l2.LoadState([]byte{1, 2}); err == nil || !strings.Contains(err.Error(), "Load: state of 2 bytes, want 8") {
		t.Errorf("bad state: %v", err)
	}
}

// childMain is the test binary re-run as a host that starts a plugin,
// prints its pid and waits to be killed.
func childMain() {
	cfg, err := registry.DecodeComponent(core.Losses.Kind(), "plugin:faulty", nil)
	if err == nil {
		var l core.Loss
		if l, err = core.Losses.Build("plugin:faulty", cfg); err == nil {
			pl := l.(*host.Loss)
			if err = pl.StartProcess(&core.Env{Dir: os.TempDir()}); err == nil {
				fmt.Println(pl.Process().Pid())
				time.Sleep(time.Minute)
			}
		}
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// TestNoOrphanAfterSIGKILL kills a host with SIGKILL: its plugin must end too.
func TestNoOrphanAfterSIGKILL(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "PECO_HOST_TEST_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscan(out, &pid); err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("reading the plugin's pid: %v", err)
	}
	if !alive(pid) {
		t.Fatalf("plugin %d not running", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) {
		t.Fatalf("host: %v", err)
	}
	waitGone(t, pid)
}
