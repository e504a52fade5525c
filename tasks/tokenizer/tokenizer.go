// Package tokenizer is the tokenizer-training task: a core.TrainableTokenizer
// (vqvae, dvae) trained on an image dataset with a composite loss (a list of
// weighted loss terms, each logged) and AdamW, with per-epoch reconstruction
// quality (PSNR, L1 on [0,1] pixels), codebook health (codes used,
// perplexity, dead codes) and reconstruction grids in the run's images/.
//
// Conventions the pre-training tasks rely on: the tokenizer's variables live
// under the store scope /tokenizer, its spec is at task.tokenizer in the
// run's config.yaml, and the run ends with checkpoints/last.ckpt
// (LoadTrained reads all three).
package tokenizer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/data"
	_ "github.com/peco-dev/peco/losses" // the loss terms
	"github.com/peco-dev/peco/optim"
	"github.com/peco-dev/peco/registry"
	_ "github.com/peco-dev/peco/tokenizers" // the default tokenizer, vqvae
)

// Scope is the store scope of the tokenizer's variables.
const Scope = "tokenizer"

// DataConfig selects the splits and their processing (shared by the
// training tasks); augment.normalize must be half (tokenizers take [-1, 1]).
type DataConfig = data.Splits

// Config configures the tokenizer task.
type Config struct {
	run.LoopConfig `mapstructure:",squash"`
	Data           DataConfig                     `mapstructure:"data" doc:"datasets, augmentation and batching"`
	Tokenizer      registry.Spec[core.Tokenizer]  `mapstructure:"tokenizer" doc:"the tokenizer to train (vqvae, dvae)"`
	Losses         []registry.Spec[core.Loss]     `mapstructure:"losses" doc:"weighted loss terms summed into the training loss, e.g. [{type: l1}, {type: vq, beta: 0.25}, {type: perceptual, weight: 0.1, network: {...}}]"`
	Optimizer      registry.Spec[optim.Optimizer] `mapstructure:"optimizer" doc:"optimizer and lr schedule"`
	GridImages     int                            `mapstructure:"grid_images" doc:"validation images shown in each epoch's reconstruction grid (images/recon_epoch<N>.png)"`
}

// Validate checks the task-level keys.
func (c *Config) Validate() error {
	if err := c.LoopConfig.Validate(); err != nil {
		return err
	}
	if err := c.Data.Validate(); err != nil {
		return err
	}
	if !c.Tokenizer.IsSet() {
		return errors.New("tokenizer must be set")
	}
	if len(c.Losses) == 0 {
		return errors.New("losses must list at least one term")
	}
	if c.GridImages < 0 {
		return errors.New("data.batch_size and data.eval_batch_size must be > 0; max_train, max_val and grid_images >= 0")
	}
	if c.Data.Augment.Normalize != core.TokenizerNorm {
		return fmt.Errorf("data.augment.normalize must be %q (tokenizers take images in [-1, 1]), got %q", core.TokenizerNorm, c.Data.Augment.Normalize)
	}
	return nil
}

// DefaultConfig trains a vqvae with l1 + vq on 32px images for one epoch
// with AdamW (lr 1e-3, no weight decay, cosine).
func DefaultConfig() Config {
	opt := optim.DefaultAdamW()
	opt.LR, opt.WeightDecay, opt.ClipGrad = 1e-3, 0, 1
	aug := data.DefaultAugmentConfig()
	aug.Size, aug.Scale, aug.Normalize, aug.CropPct = 32, [2]float64{0.8, 1}, data.NormalizeHalf, 1
	return Config{
		LoopConfig: run.DefaultLoop(),
		Data:       data.Splits{Augment: aug, BatchSize: 64, EvalBatch: 100, Cache: data.DefaultCacheConfig()},
		Tokenizer:  registry.Spec[core.Tokenizer]{Type: "vqvae", Config: registry.MustDefaults(core.Tokenizers, "vqvae")},
		Losses: []registry.Spec[core.Loss]{
			{Type: "l1", Config: registry.MustDefaults(core.Losses, "l1")},
			{Type: "vq", Config: registry.MustDefaults(core.Losses, "vq")},
		},
		Optimizer:  registry.Spec[optim.Optimizer]{Type: "adamw", Config: &opt},
		GridImages: 8,
	}
}

func init() {
	registry.Register(core.Tasks, "tokenizer",
		"train a visual tokenizer (vqvae, dvae) with a composite loss; PSNR, L1 and codebook health on the validation split each epoch",
		DefaultConfig, func(c Config) (core.Task, error) { return &Task{cfg: c}, nil })
}

// Task is the tokenizer-training task.
type Task struct{ cfg Config }

// term is one built loss term with its log name.
type term struct {
	name string
	loss core.Loss
}

// buildLosses builds the terms, naming each by its type (suffixed by its
// index when a type repeats).
func buildLosses(specs []registry.Spec[core.Loss]) ([]term, error) {
	count := map[string]int{}
	for _, s := range specs {
		count[s.Type]++
	}
	var out []term
	for i, s := range specs {
		l, err := s.Build()
		if err != nil {
			return nil, fmt.Errorf("losses.%d: %w", i, err)
		}
		if _, external := l.(core.ExternalLoss); external {
			return nil, fmt.Errorf("losses.%d: %s runs outside the graph (a plugin); the tokenizer task computes its losses in the graph (the mim task's loss takes plugins)", i, s.Type)
		}
		name := s.Type
		if count[s.Type] > 1 {
			name = fmt.Sprintf("%s_%d", s.Type, i)
		}
		out = append(out, term{name: name, loss: l})
	}
	return out, nil
}

// LossGraph runs the tokenizer forward on images and sums the weighted
// terms. It returns the total, the unweighted terms (in order) and the
// forward output. scope is the root scope: the tokenizer runs in
// scope.In("tokenizer"), the losses get the root (the perceptual network
// lives in /perceptual).
func lossGraph(scope *model.Scope, tok core.TrainableTokenizer, terms []term, images *Node, training bool) (*Node, []*Node, core.TokenizerOutput) {
	out := tok.Forward(scope.In(Scope), images, training)
	in := map[string]*Node{"input": images, "reconstruction": out.Reconstruction}
	for k, v := range out.Terms {
		in[k] = v
	}
	var total *Node
	vals := make([]*Node, len(terms))
	for i, t := range terms {
		v, err := t.loss.Compute(scope, in)
		if err != nil {
			panic(fmt.Errorf("loss %s: %w", t.name, err))
		}
		vals[i] = v
		w := MulScalar(v, t.loss.Weight())
		if total == nil {
			total = w
		} else {
			total = Add(total, w)
		}
	}
	return total, vals, out
}

// Run implements core.Task.
func (t *Task) Run(ctx context.Context, env *core.Env) error {
	cfg := t.cfg
	l, err := data.OpenLoaders(cfg.Data, env.Seed, func(_ data.Sample, v, _ *data.Image, norm data.Normalizer, _ *rand.Rand, _ bool) ([]float32, error) {
		return norm.Apply(v, nil), nil
	}, data.LoaderOptions{})
	if err != nil {
		return err
	}
	defer l.Close()
	if err := env.ReportSkipped(l.SkipReport()); err != nil { // files skip_bad left out: meta.json
		return err
	}
	ts, err := NewTrainStep(env.Backend, cfg, env.Seed)
	if err != nil {
		return err
	}
	tok, store := ts.Tokenizer, ts.Store
	size, channels, steps := cfg.Data.Augment.Size, l.Channels, l.Steps
	trainDS, valDS, trainPipe, valPipe := l.TrainSet, l.ValSet, l.Train, l.Val
	gh, gw := tok.Grid(size)

	evalExec, err := model.NewExec(env.Backend, store, func(scope *model.Scope, images *Node) []*Node {
		out := tok.Forward(scope.In(Scope), images, false)
		return []*Node{out.Reconstruction, ConvertDType(out.Tokens, dtypes.Int32)}
	})
	if err != nil {
		return fmt.Errorf("building the evaluation graph: %w", err)
	}

	env.Printf("tokenizer %s: %d codes, %dx%d tokens per %dx%dx%d image, %d train / %d val images, %d steps/epoch x %d epochs, losses %v\n",
		cfg.Tokenizer.Type, tok.VocabSize(), gh, gw, size, size, channels, trainDS.Len(), valDS.Len(), steps, cfg.Epochs, ts.TermNames())
	loop := &run.Loop{Config: cfg.LoopConfig, Env: env, Store: store, StepsPerEpoch: steps, BatchSize: cfg.Data.BatchSize}
	st, err := loop.Restore()
	if err != nil {
		return err
	}
	total := cfg.Epochs * steps
	if st.Step > 0 {
		ts.SkipInit() // a resumed run keeps its codebook
	}
	loop.Step = func(s *run.LoopState) (map[string]float64, error) {
		b, err := trainPipe.BatchAt(data.Position{Epoch: s.Epoch, Batch: s.Batch}, cfg.Epochs)
		if err != nil {
			return nil, err
		}
		return ts.Run(pack(b.Items, size*size*channels), len(b.Items), size, channels, int(s.Step), total)
	}
	loop.Status = func(m map[string]float64) string {
		return fmt.Sprintf("loss %.4f codes %.0f", m["loss"], m["batch_codes_used"])
	}
	var last map[string]float64
	loop.EndEpoch = func(epoch int) (map[string]float64, float64, error) {
		trainPipe.Stop() // free the workers for evaluation
		t0 := time.Now()
		ev, grid, err := evaluate(evalExec, valPipe, size, channels, tok.VocabSize(), cfg.GridImages)
		if err != nil {
			return nil, 0, err
		}
		if err := env.ReportSkipped(l.SkipReport()); err != nil { // bad samples the pipelines replaced
			return nil, 0, err
		}
		m := ev.metrics()
		m["eval_seconds"] = time.Since(t0).Seconds()
		if grid != nil {
			p := env.Path(core.ImagesDir, fmt.Sprintf("recon_epoch%03d.png", epoch))
			if err := ckpt.WriteFileAtomic(p, grid); err != nil {
				return nil, 0, fmt.Errorf("writing the reconstruction grid: %w", err)
			}
		}
		env.Printf("epoch %d: val PSNR %.2f dB  L1 %.4f  codes used %d/%d  perplexity %.1f  dead %d\n",
			epoch, m["psnr"], m["l1"], int(m["codes_used"]), tok.VocabSize(), m["perplexity"], int(m["dead_codes"]))
		last = m
		return m, m["psnr"], nil
	}
	t0 := time.Now()
	st, err = loop.Run(ctx, st)
	if err != nil {
		return err
	}
	summary := map[string]any{"steps": st.Step, "best_psnr": st.Best, "best_epoch": st.BestEpoch,
		"train_seconds": time.Since(t0).Seconds()}
	for k, v := range last {
		summary["final_"+k] = v
	}
	env.Printf("done: best val PSNR %.2f dB (epoch %d), run directory %s\n", st.Best, st.BestEpoch, env.Dir)
	return env.Record.SetSummary(summary)
}

func termNames(terms []term) []string {
	var out []string
	for _, t := range terms {
		out = append(out, t.name)
	}
	return out
}

// initFromBatch runs the tokenizer's first-batch initialisation.
func initFromBatch(backend compute.Backend, store *model.Store, bi core.BatchInitializer, pix []float32, n, size, channels int) error {
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, images *Node) *Node {
		bi.InitFromBatch(scope.In(Scope), images)
		return ScalarZero(images.Graph(), dtypes.Float32)
	})
	if err != nil {
		return fmt.Errorf("building the codebook initialisation: %w", err)
	}
	if _, err := exec.Exec(tensors.FromFlatDataAndDimensions(append([]float32{}, pix...), n, size, size, channels)); err != nil {
		return fmt.Errorf("initialising the codebook: %w", err)
	}
	return nil
}

// pack concatenates the per-image pixels of a batch.
func pack(items [][]float32, per int) []float32 {
	out := make([]float32, 0, len(items)*per)
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func countUsed(ids []int32, k int) int {
	seen := make([]bool, k)
	n := 0
	for _, id := range ids {
		if id >= 0 && int(id) < k && !seen[id] {
			seen[id] = true
			n++
		}
	}
	return n
}

// evalStats accumulates reconstruction quality and the code histogram.
type evalStats struct {
	images     int
	l1, psnr   float64
	histogram  []int64
	totalCodes int64
}

// metrics returns psnr (mean over images, dB, on [0,1] pixels), l1 (mean
// absolute error on [0,1] pixels), codes_used, dead_codes (codes never used
// over the split), usage (codes_used / K) and perplexity (exp of the
// entropy of the split's code histogram).
func (e *evalStats) metrics() map[string]float64 {
	used := 0
	var h float64
	for _, c := range e.histogram {
		if c > 0 {
			used++
			p := float64(c) / float64(e.totalCodes)
			h -= p * math.Log(p)
		}
	}
	k := len(e.histogram)
	return map[string]float64{
		"psnr": e.psnr / float64(e.images), "l1": e.l1 / float64(e.images),
		"codes_used": float64(used), "dead_codes": float64(k - used), "usage": float64(used) / float64(k),
		"perplexity": math.Exp(h),
	}
}

// add scores one image: x and y in [-1, 1], compared on [0,1] pixels with
// the reconstruction clipped.
func (e *evalStats) add(x, y []float32) {
	var l1, se float64
	for i := range x {
		a := (float64(x[i]) + 1) / 2
		b := min(max((float64(y[i])+1)/2, 0), 1)
		d := a - b
		l1 += math.Abs(d)
		se += d * d
	}
	n := float64(len(x))
	mse := math.Max(se/n, 1e-10)
	e.l1 += l1 / n
	e.psnr += 10 * math.Log10(1/mse)
	e.images++
}

// evaluate reconstructs the validation split. The last, partial batch is
// padded so that one compiled graph serves every batch.
func evaluate(exec *model.Exec, pipe *data.Pipeline[[]float32], size, channels, k, gridN int) (*evalStats, []byte, error) {
	bs := pipe.Config().BatchSize
	per := size * size * channels
	st := &evalStats{histogram: make([]int64, k)}
	var gridIn, gridOut [][]float32
	for b, err := range pipe.Epoch(0) {
		if err != nil {
			return nil, nil, err
		}
		items := b.Items
		for len(items) < bs {
			items = append(items, make([]float32, per))
		}
		outs, err := exec.Exec(tensors.FromFlatDataAndDimensions(pack(items, per), bs, size, size, channels))
		if err != nil {
			return nil, nil, err
		}
		rec := tensors.MustCopyFlatData[float32](outs[0])
		ids := tensors.MustCopyFlatData[int32](outs[1])
		cells := len(ids) / bs
		for i, x := range b.Items {
			y := rec[i*per : (i+1)*per]
			st.add(x, y)
			for _, id := range ids[i*cells : (i+1)*cells] {
				st.histogram[id]++
				st.totalCodes++
			}
			if len(gridIn) < gridN {
				gridIn = append(gridIn, x)
				gridOut = append(gridOut, append([]float32{}, y...))
			}
		}
	}
	if st.images == 0 {
		return nil, nil, errors.New("validation split produced no batches")
	}
	var grid []byte
	if len(gridIn) > 0 {
		var err error
		if grid, err = GridPNG([][][]float32{gridIn, gridOut}, size, channels); err != nil {
			return nil, nil, err
		}
	}
	return st, grid, nil
}
