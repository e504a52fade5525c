package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/compute"
	// The backends are linked here, in the command, and nowhere else: the
	// component packages build graphs for whichever backend runs them. The
	// pure-Go backend is always compiled in; the XLA backend is added by
	// backend_xla.go in cgo builds without the noxla tag.
	_ "github.com/gomlx/compute/gobackend"
	// peco's own CPU backend, "cpu".
	_ "github.com/peco-dev/peco/cpu"
)

// BackendEnv is the environment variable that selects the backend when the
// --backend flag is not given.
const BackendEnv = "PECO_BACKEND"

// DefaultBackend is the backend used when none is chosen: peco's own CPU
// backend (package cpu), pure Go with assembly matmul kernels.
const DefaultBackend = "cpu"

// goDefaultConfig is what "go" means: the pure-Go backend running one graph
// op at a time, each op (matmuls above all) still spread over every core.
// With ops also run in parallel, the backend's worker pool can deadlock
// (seen on tokenizer training graphs: the executor waits on the pool while a
// matmul waits in Pool.Saturate); running ops sequentially avoids it, at
// ~15% on small models (docs/gomlx_notes.md). "go:<options>" passes options
// unchanged ("go:" alone is GoMLX's default).
const goDefaultConfig = "go:ops_sequential"

// OpenBackend opens the compute backend named by spec: "cpu" (peco's CPU
// backend, the default; "cpu:profile" also times every op), "go" (GoMLX's
// pure-Go backend) or "xla:<PJRT plugin name or path>" (e.g.
// "xla:cuda", "xla:/path/to/xla_cuda_plugin.so"), available in cgo builds.
// An empty spec reads PECO_BACKEND, then falls back to "cpu". It returns the
// backend and a one-line description of it and its device.
func OpenBackend(spec string) (compute.Backend, string, error) {
	if spec == "" {
		spec = os.Getenv(BackendEnv)
	}
	if spec == "" {
		spec = DefaultBackend
	}
	if spec == "go" {
		spec = goDefaultConfig
	}
	name, _, _ := strings.Cut(spec, ":")
	available := compute.List()
	found := false
	for _, a := range available {
		if a == name {
			found = true
		}
	}
	if !found {
		hint := ""
		if name == "xla" {
			hint = " (this binary was built without XLA: build with CGO_ENABLED=1 and without -tags noxla)"
		}
		return nil, "", fmt.Errorf("backend %q: not available in this build%s; available: %s", spec, hint, strings.Join(available, ", "))
	}
	b, err := compute.NewWithConfig(spec)
	if err != nil {
		return nil, "", fmt.Errorf("opening backend %q: %w", spec, err)
	}
	desc := b.Name()
	if b.NumDevices() > 0 {
		desc = fmt.Sprintf("%s, device 0: %s", b.Description(), b.DeviceDescription(0))
	}
	return b, desc, nil
}

// Backends lists the backends compiled into this binary.
func Backends() []string { return compute.List() }
