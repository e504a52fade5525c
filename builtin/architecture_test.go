package builtin

import (
	"os/exec"
	"strings"
	"testing"
)

// TestComponentsLinkNoBackend checks the layering the architecture promises
// (docs/ARCHITECTURE.md): the contract, the run machinery, the components
// and the tasks build graphs for whichever backend runs them and link none;
// only cmd/peco (and tests) choose one. Tasks use backbones only through
// the interfaces of core, never a concrete backbone package.
func TestComponentsLinkNoBackend(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	const mod = "github.com/peco-dev/peco/"
	backends := []string{mod + "cpu", "github.com/gomlx/compute/gobackend", "github.com/gomlx/go-xla/compute"}
	for _, pkg := range []string{
		"core", "core/run", "core/ckpt", "registry", "data", "optim", "losses", "targets", "tokenizers",
		"backbones/vit", "backbones/conv", "backbones/mobilenet",
		"tasks/tokenizer", "tasks/mim", "tasks/classify", "tasks/probe", "tasks/plugintask", "tasks/split", "tasks/segment", "tasks/detect", "metrics",
		"plugins/host", "plugins/sdk", "sweep", "builtin",
		// Not bench: it times the cpu backend's own GEMM and reads its op profile.
	} {
		out, err := exec.Command(goBin, "list", "-deps", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range backends {
				if dep == b || strings.HasPrefix(dep, b+"/") {
					t.Errorf("%s links the backend package %s", pkg, dep)
				}
			}
		}
		if pkg == "plugins/sdk" {
			// What plugin authors import stays small: no GoMLX, no peco
			// beyond the protocol.
			for _, dep := range strings.Fields(string(out)) {
				if strings.HasPrefix(dep, "github.com/gomlx/") || strings.HasPrefix(dep, mod) && dep != mod+"plugins/sdk" && dep != mod+"plugins/proto/peco/plugin/v1" {
					t.Errorf("plugins/sdk links %s", dep)
				}
			}
		}
		if !strings.HasPrefix(pkg, "tasks/") {
			continue
		}
		out, err = exec.Command(goBin, "list", "-f", `{{join .Imports "\n"}}`, mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, imp := range strings.Fields(string(out)) {
			// backbones/conv holds convolution layers (no registered
			// backbone): decoders may build on them.
			if strings.HasPrefix(imp, mod+"backbones/") && imp != mod+"backbones/conv" {
				t.Errorf("task %s imports the concrete backbone %s", pkg, imp)
			}
		}
	}
}
