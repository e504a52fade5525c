package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peco-dev/peco/sweep"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestCLIConfigAndComponents(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	quick := filepath.Join("..", "..", "configs", "quickstart.yaml")
	typo := write("typo.yaml", "_base_: "+mustAbs(t, quick)+"\ntask:\n  backbone: {dpeth: 3}\n")
	unknownTask := write("unknown.yaml", "task: {type: clasification}\n")

	for _, tc := range []struct {
		name    string
		args    []string
		want    []string
		wantErr []string
	}{
		{name: "print resolves defaults", args: []string{"config", "print", quick},
			want: []string{"type: classification", "mlp_ratio: 4", "weight_decay: 0.05", "type: cosine"}},
		{name: "print with --set", args: []string{"config", "print", quick, "--set", "task.backbone.depth=2", "--set", "seed=9"},
			want: []string{"depth: 2", "seed: 9"}},
		{name: "typo names key, component and file", args: []string{"config", "print", typo},
			wantErr: []string{"typo.yaml: task.backbone.dpeth: unknown key \"dpeth\"", "backbone \"vit\"", "did you mean \"depth\""}},
		{name: "unknown --set path", args: []string{"config", "print", quick, "--set", "task.nosuch.x=1"},
			wantErr: []string{"--set task.nosuch.x", "unknown key \"nosuch\""}},
		{name: "--set wrong type", args: []string{"config", "print", quick, "--set", "task.epochs=many"},
			wantErr: []string{"--set task.epochs: task.epochs: expected an integer, got string \"many\""}},
		{name: "unknown task type", args: []string{"config", "print", unknownTask},
			wantErr: []string{"task.type: unknown task \"clasification\"", "did you mean \"classification\""}},
		{name: "missing config", args: []string{"config", "print", filepath.Join(dir, "nope.yaml")},
			wantErr: []string{"nope.yaml", "no such file"}},
		{name: "components lists kinds", args: []string{"components"},
			want: []string{"backbone:", "vit", "dataset:", "mnist", "task:", "classification", "loss:", "cross_entropy", "tokenizer:"}},
		{name: "components of a kind shows fields", args: []string{"components", "backbone"},
			want: []string{"vit", "patch_size", "an integer", "= 16"}},
		{name: "unknown kind", args: []string{"components", "gadget"}, wantErr: []string{"unknown component kind \"gadget\""}},
		{name: "version", args: []string{"version"}, want: []string{"peco ", "gomlx v0.28.2", "go"}},
		{name: "components lists the targets", args: []string{"components", "target"},
			want: []string{"tokens", "pixels", "from", "precompute", "norm_pix"}},
		{name: "old fine-tuning spelling names the new one", args: []string{"config", "print", shipped("quickstart/3_finetune.yaml"), "--set", "task.pretrained=runs/x"},
			wantErr: []string{"task.pretrained", "no longer used", "from: RUN"}},
		{name: "old MIM tokenizer spelling names the new one", args: []string{"config", "print", shipped("mim/cifar10_pixels.yaml"), "--set", "task.tokenizer={type: pretrained, checkpoint: runs/x}"},
			wantErr: []string{"task.tokenizer", "target:", "{type: tokens, from: RUN}"}},
		{name: "old probe spelling names the new one", args: []string{"config", "print", shipped("probe/cifar10.yaml"), "--set", "task.tokenizer=runs/x"},
			wantErr: []string{"task.tokenizer", "{from: runs/x}"}},
		{name: "old perceptual spelling names the new one", args: []string{"config", "print", shipped("tokenizer/cifar10_peco.yaml"), "--set", "task.losses.2.checkpoint=runs/x"},
			wantErr: []string{"task.losses.2.checkpoint", "from: RUN"}},
		{name: "bfloat16 on the cpu backend is refused before the run starts",
			args:    []string{"run", quick, "--backend", "cpu", "--set", "task.backbone.dtype=bfloat16", "--out", filepath.Join(dir, "never")},
			wantErr: []string{"cpu backend does not compute", "task.backbone.dtype: bfloat16"}},
		{name: "run refuses a bad config before doing anything", args: []string{"run", typo, "--out", filepath.Join(dir, "never")},
			wantErr: []string{"unknown key \"dpeth\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runCLI(t, tc.args...)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; output:\n%s", out)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error\n%v\nlacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); !os.IsNotExist(err) {
		t.Errorf("an invalid config created a run directory")
	}
}

// shipped is the path of a config in configs/.
func shipped(name string) string { return filepath.Join("..", "..", "configs", name) }

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestShippedConfigsDecode checks that every config in configs/ loads and
// decodes strictly (their data paths are only opened when a run starts).
func TestShippedConfigsDecode(t *testing.T) {
	var n int
	err := filepath.WalkDir(filepath.Join("..", "..", "configs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		n++
		if filepath.Base(filepath.Dir(p)) == "ablations" {
			return nil // sweeps: TestShippedSweepsExpand
		}
		if _, _, err := runCLI(t, "config", "print", p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Errorf("found only %d configs", n)
	}
}

// TestShippedSweepsExpand expands every shipped sweep, at its own scale and at
// every scale it defines (paper, pilot, ...), without running it: every stage
// config of every variant must decode.
func TestShippedSweepsExpand(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "configs", "ablations", "*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("sweeps: %v, %v", files, err)
	}
	t.Chdir(filepath.Join("..", "..")) // stage configs and data paths are relative to the repository
	for _, f := range files {
		p := filepath.Join("configs", "ablations", filepath.Base(f))
		out, _, err := runCLI(t, "sweep", p, "--dry-run", "--out", t.TempDir())
		if err != nil || !strings.Contains(out, "runs (stages shared by cases run once)") {
			t.Errorf("%s: %v\n%s", p, err, out)
		}
		spec, err := sweep.Load(p, nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(spec.Scales) == 0 && filepath.Base(p) != "targets.yaml" { // the one sweep without a paper scale
			t.Errorf("%s defines no scale (paper: the GPU budget)", p)
		}
		for name := range spec.Scales {
			if _, _, err := runCLI(t, "sweep", p, "--dry-run", "--set", "scale="+name, "--out", t.TempDir()); err != nil {
				t.Errorf("%s --set scale=%s: %v", p, name, err)
			}
		}
	}
}
