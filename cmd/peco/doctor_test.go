package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peco-dev/peco/cpu/gemm"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/plugins/host"
)

// doctorLines runs `peco doctor` with args and returns its lines by check
// name, and its error.
func doctorLines(t *testing.T, args ...string) (map[string]string, error) {
	t.Helper()
	out, _, err := runCLI(t, append([]string{"doctor"}, args...)...)
	lines := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			t.Fatalf("doctor line %q: want STATUS NAME DETAIL", l)
		}
		lines[f[1]] = l
	}
	return lines, err
}

// TestDoctor runs `peco doctor` in a folder with a fake shared folder, a
// plugin on $PECO_PLUGIN_PATH and no runs/ yet, then with nothing shared,
// a runs/ that is a file and a backend that does not exist.
func TestDoctor(t *testing.T) {
	work := t.TempDir()
	shared := filepath.Join(work, "shared")
	plugins := filepath.Join(work, "bin")
	for _, d := range []string{filepath.Join(shared, "data"), filepath.Join(shared, "weights", "mobilenet-tflite"), plugins, filepath.Join(work, "repo")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, mode := range map[string]os.FileMode{
		filepath.Join(shared, "data", "cifar10.tar.gz"):     0o644,
		filepath.Join(shared, "data", "notes.txt"):          0o644,
		filepath.Join(plugins, host.ExecPrefix+"myloss"):    0o755,
		filepath.Join(plugins, host.ExecPrefix+"notexec"):   0o644,
		filepath.Join(shared, "weights", ".hidden-ignored"): 0o644,
	} {
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(filepath.Join(work, "repo"))
	t.Setenv(data.SharedEnv, shared)
	t.Setenv(host.PathEnv, plugins)
	t.Setenv(BackendEnv, "")

	lines, err := doctorLines(t)
	if err != nil {
		t.Fatalf("doctor: %v\n%v", err, lines)
	}
	simd := "missing  simd      GOEXPERIMENT=simd off"
	if simdExperiment {
		simd = "ok       simd      GOEXPERIMENT=simd on"
	}
	xla := "missing  xla       not compiled in"
	if strings.Contains(strings.Join(Backends(), ","), "xla") {
		xla = "ok       xla       compiled in"
	}
	for name, want := range map[string]string{
		"peco":    "ok       peco      0.1.0, go",
		"backend": "2*[1 2 3] = [2 4 6]",
		"simd":    simd,
		"matmul":  gemm.Kernel() + " ",
		"threads": "ok       threads   GOMAXPROCS ",
		"xla":     xla,
		"data":    "ok       data      " + filepath.Join(shared, "data") + ": cifar10.tar.gz",
		"weights": "ok       weights   " + filepath.Join(shared, "weights") + ": mobilenet-tflite",
		"plugins": "ok       plugins   myloss on " + plugins + ":plugins.d",
		"runs":    "ok       runs      " + filepath.Join(work, "repo", "runs") + " writable",
	} {
		if l := lines[name]; !strings.Contains(l, want) {
			t.Errorf("%s: line %q, want it to contain %q", name, l, want)
		}
	}
	if strings.Contains(lines["data"], "notes.txt") || strings.Contains(lines["plugins"], "notexec") || strings.Contains(lines["weights"], "hidden") {
		t.Errorf("doctor lists what is not data, a plugin or weights:\n%v", lines)
	}
	if _, err := os.Stat("runs"); err == nil {
		t.Error("doctor created runs/")
	}

	// Nothing shared, no plugins, runs/ a file, an unknown backend.
	t.Setenv(data.SharedEnv, filepath.Join(work, "nowhere"))
	t.Setenv(host.PathEnv, "")
	if err := os.WriteFile("runs", []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	lines, err = doctorLines(t, "--backend", "nosuch")
	if err == nil || !strings.Contains(err.Error(), "2 check(s) failed") {
		t.Errorf("doctor error %v, want 2 failed checks", err)
	}
	for name, want := range map[string]string{
		"backend": "FAIL     backend   backend \"nosuch\": not available in this build",
		"data":    "missing  data      shared data: open " + filepath.Join(work, "nowhere", "data"),
		"weights": "missing  weights",
		"plugins": "missing  plugins   none on plugins.d (hint: ",
		"runs":    "FAIL     runs      runs is not writable",
	} {
		if l := lines[name]; !strings.Contains(l, want) {
			t.Errorf("%s: line %q, want it to contain %q", name, l, want)
		}
	}
	if !strings.Contains(lines["data"], "hint: ") || !strings.Contains(lines["data"], data.SharedEnv) {
		t.Errorf("data line %q lacks a hint naming $%s", lines["data"], data.SharedEnv)
	}
}
