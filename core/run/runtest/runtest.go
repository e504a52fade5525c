// Package runtest helps tests run experiments end to end: it opens a
// backend (the component packages link none) and runs a config in a run
// directory as `peco run` does. Only tests import it.
package runtest

import (
	"context"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"

	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/cpu"
)

// Backend opens the backend named by spec: "cpu" (peco's, the default) or
// "go" (GoMLX's pure-Go backend, ops run one at a time as `peco run
// --backend go` does). It is finalized when the test ends.
func Backend(t testing.TB, spec string) compute.Backend {
	t.Helper()
	var b compute.Backend
	var err error
	switch spec {
	case "", "cpu":
		b, err = cpu.New("")
	case "go":
		b, err = gobackend.New("ops_sequential")
	default:
		t.Fatalf("runtest: unknown backend %q", spec)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Finalize)
	return b
}

// Run loads cfgPath with the --set overrides sets and runs it with opts,
// on the cpu backend when opts.Backend is nil. It returns the run
// directory and the run's error.
func Run(ctx context.Context, t testing.TB, cfgPath string, sets []string, opts run.RunOptions) (string, error) {
	t.Helper()
	exp, resolved, err := run.LoadExperiment(cfgPath, sets)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Backend == nil {
		opts.Backend = Backend(t, "cpu")
		opts.Device = opts.Backend.Name()
	}
	return run.RunExperiment(ctx, exp, resolved, opts)
}
