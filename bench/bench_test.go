package bench

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/gobackend"

	"github.com/peco-dev/peco/backbones/conv"
	"github.com/peco-dev/peco/backbones/mobilenet"
	"github.com/peco-dev/peco/losses"
	"github.com/peco-dev/peco/optim"
	"github.com/peco-dev/peco/tokenizers"
)

func TestNamesListsEveryWorkload(t *testing.T) {
	names := Names()
	for n := range Workloads {
		if !slices.Contains(names, n) {
			t.Errorf("Names() lacks %s", n)
		}
	}
	for n := range Pipelines {
		if !slices.Contains(names, n) {
			t.Errorf("Names() lacks %s", n)
		}
	}
}

func TestTableRatios(t *testing.T) {
	tab := Table([]Result{
		{Workload: "w", Impl: "peco", Batch: 32, SecPerStep: 1, ImgPerSec: 32},
		{Workload: "w", Impl: "torch", Batch: 32, SecPerStep: 2, ImgPerSec: 16},
	})
	if !strings.Contains(tab, "| 2.00x |") {
		t.Errorf("ratio ours/peer missing:\n%s", tab)
	}
}

// sharedFiles returns the shared folders as seen from this package:
// $PECO_SHARED, else ../../shared. It skips the test when need (a path under
// that folder) is absent.
func sharedFiles(t *testing.T, need string) Files {
	t.Helper()
	root := os.Getenv("PECO_SHARED")
	if root == "" {
		root = filepath.Join("..", "..", "shared")
	}
	if _, err := os.Stat(filepath.Join(root, need)); err != nil {
		t.Skipf("shared file %s not found (set PECO_SHARED to the shared folder): %v", need, err)
	}
	return Files{DataDir: filepath.Join(root, "data"), WeightsDir: filepath.Join(root, "weights")}
}

// TestTokenizerConfigIsWhatThePeerMirrors pins the parts of
// configs/tokenizer/cifar10_peco.yaml that the PyTorch peer's tokenizer mode
// copies by hand: a change there needs the same change in
// bench/peers/torch_peer.py.
func TestTokenizerConfigIsWhatThePeerMirrors(t *testing.T) {
	w := Workloads["tokenizer-cifar10-b64"]
	cfg, err := TokenizerConfig(w.TokenizerConfig, filepath.Join("..", "..", "shared", "weights"))
	if err != nil && !strings.Contains(err.Error(), "perceptual network weights") {
		t.Fatal(err)
	}
	if err != nil {
		t.Skip(err)
	}
	vq, ok := cfg.Tokenizer.Config.(*tokenizers.VQVAEConfig)
	if !ok || cfg.Tokenizer.Type != "vqvae" {
		t.Fatalf("tokenizer %s %T, want vqvae", cfg.Tokenizer.Type, cfg.Tokenizer.Config)
	}
	for _, c := range []conv.Config{vq.Encoder, vq.Decoder} {
		if c.Width != 64 || !slices.Equal(c.Mults, []int{1, 2}) || c.Blocks != 1 || c.Attention || c.Groups != 32 {
			t.Errorf("encoder/decoder %+v, the peer has width 64, mults [1 2], 1 block, no attention, 32 groups", c)
		}
	}
	q := vq.QuantizerConfig
	if q.CodebookSize != 512 || q.CodeDim != 64 || q.L2Norm || q.EMA || q.Init != "batch" || q.RestartAfter != 100 || vq.InChannels != 3 {
		t.Errorf("quantizer %+v, the peer has 512 codes of 64, no l2 norm, no EMA, batch init, restarts after 100", q)
	}
	var kinds []string
	for _, l := range cfg.Losses {
		kinds = append(kinds, l.Type)
		switch c := l.Config.(type) {
		case *losses.PixelConfig:
			if c.Weight != 1 {
				t.Errorf("l1 weight %v, the peer has 1", c.Weight)
			}
		case *losses.VQConfig:
			if c.Weight != 1 || c.Beta != 0.25 {
				t.Errorf("vq %+v, the peer has weight 1, beta 0.25", c)
			}
		case *losses.PerceptualConfig:
			mc, _ := c.Network.Config.(*mobilenet.Config)
			if c.Weight != 0.1 || !slices.Equal(c.Layers, []int{0, 1, 2, 3}) || len(c.LayerWeights) != 0 ||
				c.InputNorm != "half" || c.NetworkNorm != "half" || c.Network.Type != "mobilenet_v2" || mc == nil || mc.ImageSize != 32 {
				t.Errorf("perceptual %+v, the peer has weight 0.1, MobileNet V2 at 32px, stages 0-3 unweighted, no renormalisation", c)
			}
		}
	}
	if !slices.Equal(kinds, []string{"l1", "vq", "perceptual"}) {
		t.Errorf("losses %v, the peer has l1, vq, perceptual", kinds)
	}
	a, ok := cfg.Optimizer.Config.(*optim.AdamWConfig)
	if !ok || a.LR != 1e-3 || a.WeightDecay != 0 || a.ClipGrad != 1 || a.Beta1 != 0.9 || a.Beta2 != 0.999 || a.AccumSteps > 1 {
		t.Errorf("optimizer %s %+v, the peer has AdamW lr 1e-3, betas (0.9, 0.999), no weight decay, clipping 1.0", cfg.Optimizer.Type, cfg.Optimizer.Config)
	}
	if cfg.Data.BatchSize != w.Batch || cfg.Data.Augment.Size != w.Image {
		t.Errorf("config batch %d at %dpx, workload %d at %dpx", cfg.Data.BatchSize, cfg.Data.Augment.Size, w.Batch, w.Image)
	}
}

// TestTokenizerWorkloadNamesMissingWeights: without the perceptual
// network's file the workload fails naming it.
func TestTokenizerWorkloadNamesMissingWeights(t *testing.T) {
	dir := t.TempDir()
	_, err := TokenizerConfig(Workloads["tokenizer-cifar10-b64"].TokenizerConfig, dir)
	want := filepath.Join(dir, "mobilenet-tflite", "mobilenet_v2_1.0_224_quant.tflite")
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one naming %s", err, want)
	}
}

// TestNewWorkloadsSmoke runs one warm-up and one timed step of the
// tokenizer and real-data MIM workloads at batch 4 (the plumbing, not the
// speed) on the backend `peco bench` uses by default ("go": ops one at a
// time; GoMLX's parallel executor can deadlock on the tokenizer graph, see
// docs/gomlx_notes.md); skipped without the shared files.
func TestNewWorkloadsSmoke(t *testing.T) {
	backend, err := gobackend.New("ops_sequential")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Finalize()
	for _, tc := range []struct{ name, need string }{
		{"tokenizer-cifar10-b64", "weights/mobilenet-tflite/mobilenet_v2_1.0_224_quant.tflite"},
		{"mim-tiny4-4l-b32-cifar10", "data/cifar10.tar.gz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := sharedFiles(t, tc.need)
			w := Workloads[tc.name]
			w.Batch = 4
			r, err := RunStep(backend, w, files, 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(r.Loss) || r.Loss <= 0 || r.SecPerStep <= 0 || r.Batch != 4 {
				t.Errorf("result %+v", r)
			}
			t.Logf("%s at batch 4: loss %.4f, compile+first step %.1fs, step %.2fs", tc.name, r.Loss, r.CompileSec, r.SecPerStep)
		})
	}
}
