package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/spf13/cobra"

	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/cpu/gemm"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/plugins/host"
)

// Statuses of a doctor check.
const (
	doctorOK      = "ok"
	doctorMissing = "missing" // optional: peco works without it
	doctorFail    = "FAIL"    // peco cannot run as configured
)

// doctorCheck is one line of `peco doctor`.
type doctorCheck struct {
	status, name, detail, hint string
}

// runsRoot is where `peco run` puts run directories without --out
// (core/run.RunExperiment: runs/<name>/<timestamp>).
const runsRoot = "runs"

// newDoctorCmd is `peco doctor`: what this binary and machine offer.
func newDoctorCmd(stdout io.Writer) *cobra.Command {
	var backendSpec string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "check this binary and machine: versions, backend (runs a tiny computation), SIMD, threads, XLA, shared data, plugins, run directory",
		Long: `Doctor prints one line per check: ok, missing (optional; a hint says how to
get it) or FAIL (peco cannot run as configured), then exits non-zero if any
check failed. It looks from the current directory, as peco run does: the
shared folder at ../shared (or $PECO_SHARED), plugins on $PECO_PLUGIN_PATH
then ./plugins.d, run directories under ./runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return doctor(stdout, backendSpec)
		},
	}
	cmd.Flags().StringVar(&backendSpec, "backend", "", `backend to check (default $PECO_BACKEND or cpu)`)
	return cmd
}

// doctor runs every check and prints them; it fails when one failed.
func doctor(w io.Writer, backendSpec string) error {
	checks := []doctorCheck{
		{doctorOK, "peco", fmt.Sprintf("%s, %s %s/%s, gomlx %s", run.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH, run.GoMLXVersion()), ""},
		checkBackend(backendSpec),
		checkSIMD(),
		checkMatmul(),
		{doctorOK, "threads", fmt.Sprintf("GOMAXPROCS %d, NumCPU %d", runtime.GOMAXPROCS(0), runtime.NumCPU()), ""},
		checkXLA(),
	}
	checks = append(checks, checkShared()...)
	checks = append(checks, checkPlugins(), checkRunsRoot())
	failed := 0
	for _, c := range checks {
		line := fmt.Sprintf("%-7s  %-8s  %s", c.status, c.name, c.detail)
		if c.hint != "" {
			line += " (hint: " + c.hint + ")"
		}
		fmt.Fprintln(w, line)
		if c.status == doctorFail {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("doctor: %d check(s) failed", failed)
	}
	return nil
}

// checkBackend opens the backend and computes 2*[1, 2, 3].
func checkBackend(spec string) doctorCheck {
	c := doctorCheck{name: "backend"}
	b, desc, err := OpenBackend(spec)
	if err != nil {
		c.status, c.detail, c.hint = doctorFail, err.Error(), "choose another with --backend or $"+BackendEnv
		return c
	}
	defer b.Finalize()
	got, err := tinyComputation(b)
	if err != nil || !slices.Equal(got, []float32{2, 4, 6}) {
		if err == nil {
			err = fmt.Errorf("2*[1 2 3] gave %v", got)
		}
		c.status, c.detail = doctorFail, fmt.Sprintf("%s: a tiny computation failed: %v", desc, err)
		return c
	}
	c.status, c.detail = doctorOK, desc+": 2*[1 2 3] = [2 4 6]"
	return c
}

// tinyComputation runs 2*x for x = [1, 2, 3] on b; a panic of the backend
// is returned as an error.
func tinyComputation(b compute.Backend) (out []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	exec, err := model.NewExec(b, model.NewStore(), func(_ *model.Scope, x *graph.Node) *graph.Node {
		return graph.MulScalar(x, 2)
	})
	if err != nil {
		return nil, err
	}
	res, err := exec.Call1(tensors.FromFlatDataAndDimensions([]float32{1, 2, 3}, 3))
	if err != nil {
		return nil, err
	}
	return tensors.MustCopyFlatData[float32](res), nil
}

// checkSIMD reports whether GOEXPERIMENT=simd was on when this binary was
// built.
func checkSIMD() doctorCheck {
	if simdExperiment {
		return doctorCheck{doctorOK, "simd", "GOEXPERIMENT=simd on: vectorised exp, erf and element-wise loops in the cpu backend", ""}
	}
	return doctorCheck{doctorMissing, "simd", "GOEXPERIMENT=simd off (the matmul is assembly either way)",
		"build or run with GOEXPERIMENT=simd for the vectorised element-wise loops"}
}

// checkMatmul reports which matmul kernels the cpu backend uses here.
func checkMatmul() doctorCheck {
	switch k := gemm.Kernel(); k {
	case "pure Go":
		return doctorCheck{doctorMissing, "matmul", "pure Go matmul kernel (no AVX2+FMA on this CPU or architecture)", ""}
	case "AVX2+FMA":
		hint := ""
		if os.Getenv("PECO_GEMM_AVX512") == "0" {
			hint = "PECO_GEMM_AVX512=0 keeps the AVX-512F kernels off on CPUs that have them"
		}
		return doctorCheck{doctorOK, "matmul", "AVX2+FMA assembly kernels (6x16 tiles)", hint}
	default:
		return doctorCheck{doctorOK, "matmul", k + " assembly kernels (6x32 and 6x64 tiles; PECO_GEMM_AVX512=0 keeps AVX2)", ""}
	}
}

// checkXLA reports whether the XLA backend is compiled in.
func checkXLA() doctorCheck {
	if slices.Contains(Backends(), "xla") {
		return doctorCheck{doctorOK, "xla", "compiled in: --backend xla:<PJRT plugin> (e.g. xla:cuda) on a GPU machine", ""}
	}
	return doctorCheck{doctorMissing, "xla", "not compiled in (backends: " + strings.Join(Backends(), ", ") + ")",
		"build with CGO_ENABLED=1 and without -tags noxla for GPU runs"}
}

// checkShared reports the shared data archives and weights.
func checkShared() []doctorCheck {
	dir := data.SharedDir(".")
	hint := fmt.Sprintf("configs read real data from %s; set $%s to the shared folder", dir, data.SharedEnv)
	var out []doctorCheck
	archives, err := data.SharedArchives(dir)
	switch {
	case err != nil:
		out = append(out, doctorCheck{doctorMissing, "data", err.Error(), hint})
	case len(archives) == 0:
		out = append(out, doctorCheck{doctorMissing, "data", "no archives in " + filepath.Join(dir, "data"), hint})
	default:
		out = append(out, doctorCheck{doctorOK, "data", fmt.Sprintf("%s: %s", filepath.Join(dir, "data"), strings.Join(archives, ", ")), ""})
	}
	wdir := filepath.Join(dir, "weights")
	entries, err := os.ReadDir(wdir)
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	switch {
	case err != nil:
		out = append(out, doctorCheck{doctorMissing, "weights", fmt.Sprintf("shared weights: %v", err), hint})
	case len(names) == 0:
		out = append(out, doctorCheck{doctorMissing, "weights", "nothing in " + wdir, hint})
	default:
		out = append(out, doctorCheck{doctorOK, "weights", fmt.Sprintf("%s: %s", wdir, strings.Join(names, ", ")), ""})
	}
	return out
}

// checkPlugins reports the plugin search path and the plugins on it.
func checkPlugins() doctorCheck {
	dirs := strings.Join(host.SearchDirs(), ":")
	found := host.Discover()
	if len(found) == 0 {
		return doctorCheck{doctorMissing, "plugins", "none on " + dirs,
			fmt.Sprintf("put peco-plugin-<name> executables in ./%s or on $%s; see `peco plugins list`", host.DefaultDir, host.PathEnv)}
	}
	var names []string
	for _, f := range found {
		names = append(names, f.Name)
	}
	return doctorCheck{doctorOK, "plugins", fmt.Sprintf("%s on %s (pins: %s; `peco plugins list` checks them)", strings.Join(names, ", "), dirs, host.LockPath()), ""}
}

// checkRunsRoot checks that run directories can be made under ./runs.
func checkRunsRoot() doctorCheck {
	dir := runsRoot
	if _, err := os.Stat(dir); err != nil {
		dir = "." // peco run creates runs/ here
	}
	f, err := os.CreateTemp(dir, ".peco-doctor-*")
	if err != nil {
		return doctorCheck{doctorFail, "runs", fmt.Sprintf("%s is not writable: %v", dir, err), "run from a writable folder or pass --out DIR to peco run"}
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return doctorCheck{doctorFail, "runs", fmt.Sprintf("removing %s: %v", name, err), ""}
	}
	abs, _ := filepath.Abs(runsRoot)
	return doctorCheck{doctorOK, "runs", abs + " writable", ""}
}
