// Package bench measures peco's training steps and input pipeline on the
// workloads the project compares with PyTorch (see bench/README.md): a
// BEiT-style MIM step (on random or real CIFAR-10 images) and a fine-tuning
// step of ViT-Tiny/4 on 32px images, the PeCo tokenizer's training step
// (configs/tokenizer/cifar10_peco.yaml), and the input pipelines. `peco bench` runs each workload in a
// child process (so its peak memory is its own), runs the PyTorch peer on the
// same workload in the same invocation, and writes a table and JSON results.
package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/peco-dev/peco/backbones/mobilenet"
	"github.com/peco-dev/peco/backbones/vit"
	"github.com/peco-dev/peco/configs"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/cpu"
	"github.com/peco-dev/peco/cpu/gemm"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/losses"
	"github.com/peco-dev/peco/optim"
	"github.com/peco-dev/peco/registry"
	"github.com/peco-dev/peco/targets"
	"github.com/peco-dev/peco/tasks/classify"
	"github.com/peco-dev/peco/tasks/mim"
	"github.com/peco-dev/peco/tasks/tokenizer"
	"github.com/peco-dev/peco/tokenizers"
	_ "github.com/peco-dev/peco/tokenizers" // the vqvae tokenizer
)

// Workload is one benchmarked step.
type Workload struct {
	Name string
	Doc  string
	// Batch is the number of images per step.
	Batch int
	// Layers, Dim, Heads, Patch, Image describe the ViT.
	Layers, Dim, Heads, Patch, Image int
	// Vocab > 0 makes a MIM step predicting Vocab tokens at Masked positions;
	// Classes > 0 makes a fine-tuning step with a Classes-way head.
	Vocab, Masked, Classes int
	// Data names an archive in the data folder (Files.DataDir): the MIM or
	// fine-tuning step is fed its real training images (data.OpenImageFolder
	// + data.NewPipeline, augmented as the pipeline workloads) instead of
	// random ones.
	Data string
	// TokenizerConfig names a shipped tokenizer config (a path under
	// configs/): the step is the tokenizer task's training step
	// (tokenizer.TrainStep) as that config sets it up, on Batch random
	// Image x Image images in [-1, 1]; the ViT fields are unused.
	TokenizerConfig string
	// Peer names the PyTorch peer's mode in bench/peers/torch_peer.py (""
	// for none).
	Peer string
	// Loss is the MIM step's loss type (default cross_entropy), with its
	// default parameters, e.g. "focal" or a plugin, "plugin:focal" (found
	// and pinned as any plugin: $PECO_PLUGIN_PATH, ./plugins.d,
	// ./plugins.lock).
	Loss string
	// Online makes the MIM step compute its targets itself: the tokens
	// target's tokenizer (a VQ-VAE of the registry's defaults with Vocab
	// codes, frozen at its initialisation) runs inside the step, instead of
	// random ids given as precomputed tokens.
	Online bool
	// Optional workloads are run only when named (`peco bench` without
	// names runs the others): the scaling and loss-variant ones.
	Optional bool
	// GEMM > 0 makes the workload one GEMM x GEMM x GEMM float32 matrix
	// product through the project's matmul (gemm.MatMulFloat32), no graph:
	// the large-GEMM reference for the machine's peak. Batch is 1.
	GEMM int
}

// Workloads lists the benchmarked workloads by name.
var Workloads = map[string]Workload{
	"mim-tiny4-12l-b64": {Name: "mim-tiny4-12l-b64", Doc: "MIM step, ViT-Tiny/4 32px, 12 layers, vocab 1024, 26/64 masked, batch 64",
		Batch: 64, Layers: 12, Dim: 192, Heads: 3, Patch: 4, Image: 32, Vocab: 1024, Masked: 26, Peer: "mim"},
	"mim-tiny4-4l-b32": {Name: "mim-tiny4-4l-b32", Doc: "MIM step, ViT-Tiny/4 32px, 4 layers, vocab 1024, 26/64 masked, batch 32",
		Batch: 32, Layers: 4, Dim: 192, Heads: 3, Patch: 4, Image: 32, Vocab: 1024, Masked: 26, Peer: "mim"},
	"mim-tiny4-4l-b32-focal": {Name: "mim-tiny4-4l-b32-focal", Doc: "mim-tiny4-4l-b32 with the built-in focal loss (gamma 2)",
		Batch: 32, Layers: 4, Dim: 192, Heads: 3, Patch: 4, Image: 32, Vocab: 1024, Masked: 26, Loss: "focal", Optional: true},
	"mim-tiny4-4l-b32-plugin-focal": {Name: "mim-tiny4-4l-b32-plugin-focal", Doc: "mim-tiny4-4l-b32 with the focal loss plugin (plugins/examples/focal-loss, gamma 2): the plugin's per-step overhead",
		Batch: 32, Layers: 4, Dim: 192, Heads: 3, Patch: 4, Image: 32, Vocab: 1024, Masked: 26, Loss: "plugin:focal", Optional: true},
	"mim-tiny4-4l-b32-cifar10": {Name: "mim-tiny4-4l-b32-cifar10", Doc: "mim-tiny4-4l-b32 fed real CIFAR-10 training batches (cifar10.tar.gz, data pipeline)",
		Batch: 32, Layers: 4, Dim: 192, Heads: 3, Patch: 4, Image: 32, Vocab: 1024, Masked: 26, Data: "cifar10.tar.gz", Peer: "mim"},
	"finetune-tiny4-12l-b64": {Name: "finetune-tiny4-12l-b64", Doc: "fine-tuning step, ViT-Tiny/4 32px, 12 layers, 10-way head, batch 64",
		Batch: 64, Layers: 12, Dim: 192, Heads: 3, Patch: 4, Image: 32, Classes: 10, Peer: "finetune"},
	"tokenizer-cifar10-b64": {Name: "tokenizer-cifar10-b64", Doc: "tokenizer step of configs/tokenizer/cifar10_peco.yaml (VQ-VAE f4, 512 codes, L1 + VQ + MobileNet V2 perceptual), batch 64",
		Batch: 64, Image: 32, TokenizerConfig: "tokenizer/cifar10_peco.yaml", Peer: "tokenizer"},
	"tokenizer-cifar10-64px-b32": {Name: "tokenizer-cifar10-64px-b32", Doc: "tokenizer-cifar10-b64's step on 64px images (MobileNet V2 at 64px, its usual strides: taps at 32, 16, 8 and 4 px), batch 32",
		Batch: 32, Image: 64, TokenizerConfig: "tokenizer/cifar10_peco.yaml", Peer: "tokenizer"},
	"tokenizer-dvae-cifar10-b64": {Name: "tokenizer-dvae-cifar10-b64", Doc: "tokenizer step of configs/tokenizer/cifar10_dvae.yaml (dVAE f4, 512 codes, Gumbel-softmax, logit-Laplace + KL), batch 64; no peer",
		Batch: 64, Image: 32, TokenizerConfig: "tokenizer/cifar10_dvae.yaml"},
	"mim-tiny4-4l-b32-online": {Name: "mim-tiny4-4l-b32-online", Doc: "mim-tiny4-4l-b32 with its targets computed in the step by a frozen VQ-VAE tokenizer (f4, width 64, 1024 codes)",
		Batch: 32, Layers: 4, Dim: 192, Heads: 3, Patch: 4, Image: 32, Vocab: 1024, Masked: 26, Online: true, Peer: "mim-online"},
	"gemm-2048": {Name: "gemm-2048", Doc: "one 2048^3 float32 matrix product through cpu/gemm (no graph): the measured peak",
		Batch: 1, GEMM: 2048, Peer: "gemm"},
}

// The scaling workloads: mim-tiny4-4l at batch 64, 128 and 256 (with
// mim-tiny4-4l-b32, batch 32).
func init() {
	for _, b := range []int{64, 128, 256} {
		name := fmt.Sprintf("mim-tiny4-4l-b%d", b)
		Workloads[name] = Workload{Name: name, Doc: fmt.Sprintf("mim-tiny4-4l-b32 at batch %d (scaling)", b),
			Batch: b, Layers: 4, Dim: 192, Heads: 3, Patch: 4, Image: 32, Vocab: 1024, Masked: 26, Peer: "mim", Optional: true}
	}
}

// Names lists the workload names, sorted.
func Names() []string {
	var out []string
	for n := range Workloads {
		out = append(out, n)
	}
	for n := range Pipelines {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DefaultNames lists, sorted, the workloads `peco bench` runs when none is
// named: all but the optional ones (scaling, loss variants).
func DefaultNames() []string {
	var out []string
	for _, n := range Names() {
		if !Workloads[n].Optional {
			out = append(out, n)
		}
	}
	return out
}

// Result is one measurement.
type Result struct {
	Workload   string  `json:"workload"`
	Impl       string  `json:"impl"`
	Backend    string  `json:"backend,omitempty"`
	Batch      int     `json:"batch"`
	SecPerStep float64 `json:"sec_per_step"`
	ImgPerSec  float64 `json:"img_per_sec"`
	CompileSec float64 `json:"compile_sec,omitempty"`
	Iters      int     `json:"iters"`
	MaxRSSMiB  float64 `json:"max_rss_mib,omitempty"`
	Loss       float64 `json:"loss,omitempty"`
	Note       string  `json:"note,omitempty"`
	// Round is the alternating round of `peco bench --rounds` the result
	// belongs to (0-based); Threads the threads the child ran with.
	Round   int `json:"round"`
	Threads int `json:"threads,omitempty"`
	// FLOPsPerStep is the step's floating-point operations as the cpu
	// backend counts them from the compiled graph (Backend.FLOPs: matmuls
	// and convolutions, forward and backward as the training graph has
	// them; element-wise ops not counted), 0 on other backends.
	FLOPsPerStep float64 `json:"flops_per_step,omitempty"`
	// Ops is where the timed steps' time went per op kind (cpu backend with
	// the profile option), summed over the Iters timed steps.
	Ops []cpu.OpTime `json:"ops,omitempty"`
}

// flopCounter is a backend that counts the FLOPs it executes (cpu).
type flopCounter interface{ FLOPs() int64 }

// opProfiler is a backend that times its ops (cpu with the profile option).
type opProfiler interface {
	OpTimes() []cpu.OpTime
	ResetOpProfile()
}

// Files locates the shared files that the real-data and tokenizer
// workloads read.
type Files struct {
	// DataDir holds the data archives (DefaultDataDir).
	DataDir string
	// WeightsDir holds the pre-trained weights (DefaultWeightsDir); a
	// config's weight paths under ../shared/weights are read from here.
	WeightsDir string
}

// DefaultFiles are the shared folders as seen from the repository root.
func DefaultFiles() Files { return Files{DataDir: DefaultDataDir, WeightsDir: DefaultWeightsDir} }

// DefaultWeightsDir is where the tokenizer workload finds its perceptual
// network's weights, relative to the repository root.
const DefaultWeightsDir = "../shared/weights"

// configWeightsDir is the folder that the shipped configs' weight paths
// start with; RunStep reads them from Files.WeightsDir instead.
const configWeightsDir = "../shared/weights"

// RunStep times w's training step on backend: warm-up steps (the first
// compiles), then iters timed steps; the median step time is reported. The
// real-data and tokenizer workloads read their files from files.
func RunStep(backend compute.Backend, w Workload, files Files, warmup, iters int) (Result, error) {
	res := Result{Workload: w.Name, Impl: "peco", Backend: backend.Name(), Batch: w.Batch, Iters: iters}
	var step func() (float64, error)
	var err error
	if w.GEMM > 0 {
		return runGEMM(w, warmup, iters), nil
	}
	if w.TokenizerConfig != "" {
		step, err = tokenizerStep(backend, w, files)
	} else {
		var done func()
		step, done, err = vitStep(backend, w, files)
		if done != nil {
			defer done()
		}
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w", w.Name, err)
	}
	t0 := time.Now()
	for i := 0; i < max(warmup, 1); i++ {
		if _, err := step(); err != nil {
			return res, fmt.Errorf("%s: warm-up step: %w", w.Name, err)
		}
		if i == 0 {
			res.CompileSec = time.Since(t0).Seconds()
		}
	}
	prof, _ := backend.(opProfiler)
	if prof != nil {
		prof.ResetOpProfile()
	}
	fc, _ := backend.(flopCounter)
	var flops0 int64
	if fc != nil {
		flops0 = fc.FLOPs()
	}
	var times []float64
	for i := 0; i < iters; i++ {
		t := time.Now()
		loss, err := step()
		if err != nil {
			return res, fmt.Errorf("%s: step %d: %w", w.Name, i, err)
		}
		times = append(times, time.Since(t).Seconds())
		res.Loss = loss
	}
	if fc != nil && iters > 0 {
		res.FLOPsPerStep = float64(fc.FLOPs()-flops0) / float64(iters)
	}
	if prof != nil {
		res.Ops = prof.OpTimes()
	}
	res.SecPerStep = Median(times)
	res.ImgPerSec = float64(w.Batch) / res.SecPerStep
	return res, nil
}

// runGEMM times w.GEMM^3 float32 matrix products C = A B through
// gemm.MatMulFloat32 on random A and B; FLOPsPerStep is 2 w.GEMM^3.
func runGEMM(w Workload, warmup, iters int) Result {
	n := w.GEMM
	r := rand.New(rand.NewPCG(0, 1))
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		a[i], b[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
	}
	res := Result{Workload: w.Name, Impl: "peco", Backend: "cpu/gemm", Batch: 1, Iters: iters,
		FLOPsPerStep: 2 * float64(n) * float64(n) * float64(n)}
	t0 := time.Now()
	for range max(warmup, 1) {
		gemm.MatMulFloat32(1, n, n, n, a, false, b, false, c)
	}
	res.CompileSec = time.Since(t0).Seconds() / float64(max(warmup, 1))
	var times []float64
	for range iters {
		t := time.Now()
		gemm.MatMulFloat32(1, n, n, n, a, false, b, false, c)
		times = append(times, time.Since(t).Seconds())
	}
	res.SecPerStep = Median(times)
	res.ImgPerSec = 1 / res.SecPerStep
	res.Loss = float64(c[0])
	return res
}

// vitStep builds the MIM or fine-tuning step of a ViT workload: the MIM
// task's own step (mim.TrainStep, with the workload's random token ids as
// its precomputed targets and its masker's masks) or the classification
// task's (classify.TrainStep), as the tasks run them. done, when not nil,
// releases the input pipeline.
func vitStep(backend compute.Backend, w Workload, files Files) (step func() (float64, error), done func(), err error) {
	vc := vit.Config{
		ImageSize: w.Image, PatchSize: w.Patch, InChannels: 3, Dim: w.Dim, Depth: w.Layers, Heads: w.Heads,
		MLPRatio: 4, QKVBias: true, UseCLS: true, AbsPosEmb: true, RelPosBias: vit.RelPosNone,
		LayerNormEps: 1e-6, InitStd: 0.02, DType: "float32",
	}
	opt := optim.DefaultAdamW()
	opt.LR, opt.ClipGrad = 1.5e-3, 0 // the peer does not clip
	opt.Schedule = registry.Spec[optim.Schedule]{Type: "constant", Config: registry.MustDefaults(optim.Schedules, "constant")}
	optSpec := registry.Spec[optim.Optimizer]{Type: "adamw", Config: &opt}
	backbone := registry.Spec[core.Backbone]{Type: "vit", Config: &vc}
	ce := registry.Spec[core.Loss]{Type: "cross_entropy", Config: registry.MustDefaults(core.Losses, "cross_entropy")}

	r := rand.New(rand.NewPCG(0, 1))
	images := func() ([]float32, error) { return randomImages(r, w), nil }
	if w.Data != "" {
		var p *data.Pipeline[[]float32]
		if p, err = realImages(w, files.DataDir); err != nil {
			return nil, nil, err
		}
		done = func() { p.Close() }
		images = func() ([]float32, error) {
			b, err := p.Next()
			if err != nil {
				return nil, err
			}
			pix := make([]float32, 0, w.Batch*w.Image*w.Image*3)
			for _, it := range b.Items {
				pix = append(pix, it...)
			}
			return pix, nil
		}
	}

	i := 0
	if w.Vocab > 0 {
		cfg := mim.DefaultConfig()
		cfg.Data.Augment.Size = w.Image
		cfg.Backbone, cfg.Loss, cfg.Optimizer = backbone, ce, optSpec
		if w.Loss != "" {
			lc, err := registry.DecodeComponent(core.Losses.Kind(), w.Loss, nil)
			if err != nil {
				return nil, done, fmt.Errorf("loss %s: %w", w.Loss, err)
			}
			cfg.Loss = registry.Spec[core.Loss]{Type: w.Loss, Config: lc}
		}
		// The targets are the workload's random ids, given to the step as
		// precomputed tokens; the tokenizer (of the workload's vocabulary)
		// is never run.
		tok := registry.MustDefaults(core.Tokenizers, "vqvae").(*tokenizers.VQVAEConfig)
		tok.CodebookSize = w.Vocab
		cfg.Target = registry.Spec[core.Target]{Type: "tokens", Config: &targets.TokensConfig{Tokenizer: registry.Spec[core.Tokenizer]{Type: "vqvae", Config: tok}}}
		cfg.Masker = registry.Spec[data.MaskerFactory]{Type: "random", Config: &data.RandomMaskConfig{NumMasked: w.Masked}}
		logDir, err := os.MkdirTemp("", "peco-bench") // a plugin's stderr
		if err != nil {
			return nil, done, err
		}
		ts, err := mim.NewTrainStep(&core.Env{Backend: backend, Dir: logDir}, cfg, 1000, !w.Online)
		if err != nil {
			os.RemoveAll(logDir)
			return nil, done, err
		}
		prev := done
		done = func() {
			ts.Close()
			os.RemoveAll(logDir)
			if prev != nil {
				prev()
			}
		}
		np := ts.Net.GridH * ts.Net.GridW
		step = func() (float64, error) {
			pix, err := images()
			if err != nil {
				return 0, err
			}
			b := mim.Batch{B: w.Batch, Images: pix}
			if w.Online {
				// The tokenizer's views: random too, at its size.
				b.View = randomImages(r, Workload{Batch: w.Batch, Image: ts.ViewSize})
			} else {
				b.Tokens = make([]int32, w.Batch*np)
			}
			for j := range w.Batch {
				b.Mask = append(b.Mask, ts.Masker.Mask(r)...)
				for k := range np {
					if b.Tokens != nil {
						b.Tokens[j*np+k] = int32(r.IntN(w.Vocab))
					}
				}
			}
			m, err := ts.Run(b, i)
			i++
			if err != nil {
				return 0, err
			}
			return m["mim_loss"], nil
		}
		return step, done, nil
	}
	cfg := classify.DefaultConfig()
	cfg.Data.Augment.Size = w.Image
	cfg.Backbone, cfg.Loss, cfg.Optimizer = backbone, ce, optSpec
	ts, err := classify.NewTrainStep(backend, cfg, 0, w.Classes, 1000)
	if err != nil {
		return nil, done, err
	}
	step = func() (float64, error) {
		pix, err := images()
		if err != nil {
			return 0, err
		}
		b := classify.Batch{B: w.Batch, Images: pix, Labels: make([]int32, w.Batch)}
		for j := range b.Labels {
			b.Labels[j] = int32(r.IntN(w.Classes))
		}
		m, err := ts.Run(b, i)
		i++
		if err != nil {
			return 0, err
		}
		return m["loss"], nil
	}
	return step, done, nil
}

// realImages starts the input pipeline of a real-data workload: the
// archive's training split, one worker per CPU, batches of w.Batch, with the
// pipeline workloads' augmentation (random-resized crop to w.Image, flip,
// ImageNet normalisation), shuffled from seed 0.
func realImages(w Workload, dataDir string) (*data.Pipeline[[]float32], error) {
	path := filepath.Join(dataDir, w.Data)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("training images: %w (pass --data DIR, the folder holding %s)", err, w.Data)
	}
	ds, err := data.OpenImageFolder(data.ImageFolderConfig{Root: path, Split: "train"})
	if err != nil {
		return nil, err
	}
	acfg := data.DefaultAugmentConfig()
	acfg.Size = w.Image
	aug, err := acfg.Compile()
	if err != nil {
		return nil, err
	}
	norm := aug.Normalizer()
	pcfg := data.DefaultPipelineConfig()
	pcfg.BatchSize = w.Batch
	p, err := data.NewPipeline(ds, func(s data.Sample, r *rand.Rand) ([]float32, error) {
		v, _, err := aug.Train(s.Image, r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Path, err)
		}
		return norm.Apply(v, nil), nil
	}, pcfg)
	if err != nil {
		return nil, err
	}
	if err := p.Start(data.Position{}, 0); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// tokenizerStep builds the tokenizer task's training step as the shipped
// config w.TokenizerConfig sets it up (tokenizer, loss terms, optimizer;
// seed 0), fed random images in [-1, 1]. Weight files of the config under
// ../shared/weights are read from files.WeightsDir; a missing one is an
// error naming it.
func tokenizerStep(backend compute.Backend, w Workload, files Files) (func() (float64, error), error) {
	cfg, err := TokenizerConfig(w.TokenizerConfig, files.WeightsDir)
	if err != nil {
		return nil, err
	}
	if w.Image != cfg.Data.Augment.Size {
		// Another image size: the perceptual network sees it at its own
		// size too (its usual strides).
		cfg.Data.Augment.Size = w.Image
		for _, l := range cfg.Losses {
			if pc, ok := l.Config.(*losses.PerceptualConfig); ok {
				if mc, ok := pc.Network.Config.(*mobilenet.Config); ok {
					mc.ImageSize = w.Image
				}
			}
		}
	}
	ts, err := tokenizer.NewTrainStep(backend, *cfg, 0)
	if err != nil {
		return nil, err
	}
	// The lr schedule runs over the config's epochs of CIFAR-10's 50,000
	// training images; the steps timed are its first ones.
	total := cfg.Epochs * (50000 / cfg.Data.BatchSize)
	r := rand.New(rand.NewPCG(0, 1))
	n, size := w.Batch, w.Image
	i := 0
	return func() (float64, error) {
		pix := make([]float32, n*size*size*3)
		for j := range pix {
			pix[j] = float32(2*r.Float64() - 1)
		}
		m, err := ts.Run(pix, n, size, 3, i, total)
		i++
		if err != nil {
			return 0, err
		}
		return m["loss"], nil
	}, nil
}

// TokenizerConfig decodes the tokenizer task config of the shipped config
// name (a path under configs/) and points its weight files under
// ../shared/weights (the perceptual network's) to weightsDir, checking that
// they exist.
//
// Configs that build on others (`_base_`, which configs.Load refuses) are
// read from the configs/ folder of the working directory (`peco bench` runs
// from the repository root) or, for tests, of its parent.
func TokenizerConfig(name, weightsDir string) (*tokenizer.Config, error) {
	tree, err := configs.Load(name)
	if err != nil && strings.Contains(err.Error(), "_base_") {
		for _, dir := range []string{"configs", filepath.Join("..", "configs")} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				tree, err = registry.LoadFile(filepath.Join(dir, name))
				break
			}
		}
	}
	if err != nil {
		return nil, err
	}
	spec, err := registry.DecodeSpecAt[core.Task](tree, "task")
	if err != nil {
		return nil, err
	}
	cfg, ok := spec.Config.(*tokenizer.Config)
	if !ok {
		return nil, fmt.Errorf("configs/%s: task %q is not the tokenizer task", name, spec.Type)
	}
	for i, l := range cfg.Losses {
		pc, ok := l.Config.(*losses.PerceptualConfig)
		if !ok {
			continue
		}
		mc, ok := pc.Network.Config.(*mobilenet.Config)
		if !ok {
			continue
		}
		if rel, err := filepath.Rel(configWeightsDir, mc.Weights); err == nil && !strings.HasPrefix(rel, "..") {
			mc.Weights = filepath.Join(weightsDir, rel)
		}
		if _, err := os.Stat(mc.Weights); err != nil {
			return nil, fmt.Errorf("configs/%s: losses.%d: perceptual network weights %s: %w (pass --weights DIR, the folder holding %s)",
				name, i, mc.Weights, err, filepath.Join("mobilenet-tflite", filepath.Base(mc.Weights)))
		}
	}
	return cfg, nil
}

func randomImages(r *rand.Rand, w Workload) []float32 {
	pix := make([]float32, w.Batch*w.Image*w.Image*3)
	for i := range pix {
		pix[i] = float32(r.NormFloat64())
	}
	return pix
}

// Table renders results as a Markdown table, one row per child process,
// with each of our results' ratio ours/peer against the peer's result of the
// same workload, round and thread count.
func Table(results []Result) string {
	var b strings.Builder
	b.WriteString("| workload | round | threads | impl | batch | s/step | img/s | ratio ours/peer | peak RSS MiB | compile s |\n|---|---|---|---|---|---|---|---|---|---|\n")
	type key struct {
		w        string
		round, t int
	}
	peer := map[key]float64{}
	for _, r := range results {
		if r.Impl != "peco" && r.ImgPerSec > 0 {
			peer[key{r.Workload, r.Round, r.Threads}] = r.ImgPerSec
		}
	}
	for _, r := range results {
		ratio := ""
		if p, ok := peer[key{r.Workload, r.Round, r.Threads}]; ok && r.Impl == "peco" && r.ImgPerSec > 0 {
			ratio = fmt.Sprintf("%.2fx", r.ImgPerSec/p)
		}
		impl := r.Impl
		if r.Impl == "peco" && r.Backend != "" {
			impl += " (" + r.Backend + ")"
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %d | %.3f | %.1f | %s | %.0f | %.1f |\n",
			r.Workload, r.Round+1, r.Threads, impl, r.Batch, r.SecPerStep, r.ImgPerSec, ratio, r.MaxRSSMiB, r.CompileSec)
	}
	return b.String()
}

// Pipeline is an input-pipeline workload: real training images decoded
// from a data archive and augmented (random-resized crop to Size, flip,
// normalisation) by data.NewPipeline with one worker per CPU; no model runs.
type Pipeline struct {
	Name    string
	Archive string // file name in the data folder
	Size    int    // crop side
	Batch   int
}

// Pipelines lists the input-pipeline workloads by name.
var Pipelines = map[string]Pipeline{
	"pipeline-cifar10-b64":    {Name: "pipeline-cifar10-b64", Archive: "cifar10.tar.gz", Size: 32, Batch: 64},
	"pipeline-imagenette-b64": {Name: "pipeline-imagenette-b64", Archive: "imagenette-160.tar.gz", Size: 128, Batch: 64},
}

// DefaultDataDir is where the pipeline workloads find their archives,
// relative to the repository root.
const DefaultDataDir = "../shared/data"

// RunPipeline times an input pipeline over its archive in dataDir: warmup
// batches, then iters timed batches; it reports the median seconds per batch
// (images/s = batch / that). Opening the archive is reported as CompileSec.
func RunPipeline(w Pipeline, dataDir string, warmup, iters int) (Result, error) {
	batch := w.Batch
	res := Result{Workload: w.Name, Impl: "peco", Batch: batch, Iters: iters}
	t0 := time.Now()
	ds, err := data.OpenImageFolder(data.ImageFolderConfig{Root: filepath.Join(dataDir, w.Archive), Split: "train"})
	if err != nil {
		return res, err
	}
	res.CompileSec = time.Since(t0).Seconds()
	acfg := data.DefaultAugmentConfig()
	acfg.Size = w.Size
	aug, err := acfg.Compile()
	if err != nil {
		return res, err
	}
	transform := func(s data.Sample, r *rand.Rand) (*data.Image, error) {
		v, _, err := aug.Train(s.Image, r)
		return v, err
	}
	pcfg := data.DefaultPipelineConfig()
	pcfg.BatchSize = batch
	p, err := data.NewPipeline(ds, transform, pcfg)
	if err != nil {
		return res, err
	}
	defer p.Close()
	if err := p.Start(data.Position{}, 1000); err != nil {
		return res, err
	}
	for range max(warmup, 1) {
		if _, err := p.Next(); err != nil {
			return res, err
		}
	}
	var times []float64
	iters = max(iters, 50) // single batches take milliseconds: time enough of them to drain the prefetch
	res.Iters = iters
	for range iters {
		t := time.Now()
		if _, err := p.Next(); err != nil {
			return res, err
		}
		times = append(times, time.Since(t).Seconds())
	}
	sort.Float64s(times)
	res.SecPerStep = times[len(times)/2]
	res.ImgPerSec = float64(batch) / res.SecPerStep
	res.Note = fmt.Sprintf("%d workers, decode + random-resized-crop %d + flip + normalize", p.Config().Workers, w.Size)
	return res, nil
}
