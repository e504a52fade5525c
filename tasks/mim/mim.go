// Package mim is BEiT/PeCo masked-image-modeling pre-training (task "mim"):
// each image is cropped once into two views (the model's and the
// tokenizer's, same crop and flip), a blockwise mask hides about 40% of the
// patches behind the backbone's [MASK] token, and a linear head on the
// masked patches' features predicts the frozen tokenizer's tokens of those
// patches (cross-entropy), or their pixels (L2) with the "pixels" tokenizer.
// The backbone's weights are checkpointed under scope "/backbone" for the
// classification task to load.
package mim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/backbones/vit"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/optim"
	"github.com/peco-dev/peco/registry"
	"github.com/peco-dev/peco/tokenizers"
)

// DataConfig selects the splits and their processing: the training tasks'
// shared data section (augment.second_size is the tokenizer view's side; 0:
// the model's view) plus the tokenizer view's normalisation.
type DataConfig struct {
	data.Splits `mapstructure:",squash"`
	// TargetNormalize is the normalization of the tokenizer's view.
	TargetNormalize string `mapstructure:"target_normalize" doc:"normalization of the tokenizer view: half ([-1,1], what the vqvae/dvae tokenizers take), none ([0,1]) or imagenet"`
}

// Config configures the MIM task.
type Config struct {
	core.LoopConfig `mapstructure:",squash"`
	Data            DataConfig                        `mapstructure:"data" doc:"datasets, two-view augmentation and batching"`
	Backbone        registry.Spec[core.Backbone]      `mapstructure:"backbone" doc:"the network pre-trained (a vit; its weights are saved under /backbone)"`
	Tokenizer       registry.Spec[core.Tokenizer]     `mapstructure:"tokenizer" doc:"the target: a frozen tokenizer (e.g. {type: pretrained, checkpoint: runs/...}: cross-entropy over its tokens) or pixels (L2 on patch pixels)"`
	Masker          registry.Spec[data.MaskerFactory] `mapstructure:"masker" doc:"masking generator; the number of masked patches must be exact (fixed graph shapes)"`
	PredictAll      bool                              `mapstructure:"predict_all" doc:"score every patch, not only the masked ones (BEiT's ablation)"`
	Optimizer       registry.Spec[optim.Optimizer]    `mapstructure:"optimizer" doc:"optimizer and lr schedule (BEiT: AdamW 1.5e-3, wd 0.05, clip 3, cosine)"`
}

// Validate checks the task-level keys.
func (c *Config) Validate() error {
	if err := c.LoopConfig.Validate(); err != nil {
		return err
	}
	if err := c.Data.Splits.Validate(); err != nil {
		return err
	}
	if !c.Backbone.IsSet() || !c.Tokenizer.IsSet() || !c.Masker.IsSet() {
		return errors.New("backbone, tokenizer and masker must be set")
	}
	if _, err := data.NewNormalizer(c.Data.TargetNormalize); err != nil {
		return fmt.Errorf("data.target_normalize: %w", err)
	}
	return nil
}

// DefaultConfig is BEiT's pre-training recipe at small scale: blockwise
// masking of 40% of the patches (exact count), AdamW lr 1.5e-3, betas (0.9,
// 0.999), weight decay 0.05 (not on biases, norms, cls/mask tokens, position
// embeddings, relative position tables), clipping 3.0, cosine schedule with
// warm-up, colour jitter 0.4; the tokenizer view in [-1, 1] (the
// tokenizers' convention); pixel targets until a tokenizer is named.
func DefaultConfig() Config {
	opt := optim.DefaultAdamW()
	aug := data.DefaultAugmentConfig()
	aug.ColorJitter = data.DefaultColorJitter()
	aug.Scale = [2]float64{0.08, 1}
	return Config{
		LoopConfig: core.DefaultLoop(),
		Data: DataConfig{
			Splits:          data.Splits{Augment: aug, BatchSize: 64, EvalBatch: 128, Cache: data.DefaultCacheConfig()},
			TargetNormalize: data.NormalizeHalf,
		},
		Tokenizer: registry.Spec[core.Tokenizer]{Type: "pixels", Config: registry.MustDefaults(core.Tokenizers, "pixels")},
		Masker:    registry.Spec[data.MaskerFactory]{Type: "blockwise", Config: registry.MustDefaults(data.Maskers, "blockwise")},
		Optimizer: registry.Spec[optim.Optimizer]{Type: "adamw", Config: &opt},
	}
}

// The default target, "pixels", is registered by package tokenizers.
var _ = tokenizers.DefaultPixels

func init() {
	registry.Register(core.Tasks, "mim",
		"BEiT/PeCo masked image modeling: predict a frozen tokenizer's tokens (or pixels) of masked patches",
		DefaultConfig, func(c Config) (core.Task, error) { return &Task{cfg: c}, nil })
}

// Task is the MIM pre-training task.
type Task struct {
	cfg Config
}

// example is one transformed sample: both views, normalised, and its mask.
type example struct {
	pix, tpix []float32
	mask      []bool
}

// restorer is implemented by tokenizers trained elsewhere
// (core.PretrainedTokenizer): it loads their weights, frozen.
type restorer interface {
	Restore(store *model.Store, scope string) error
}

// gridder is implemented by backbones that know their patch grid (vit).
type gridder interface {
	Config() vit.Config
}

// setup is everything Run builds before training; tests use it too.
type setup struct {
	cfg                   Config
	net                   *Network
	opt                   optim.Optimizer
	adamw                 *optim.AdamW
	masker                data.Masker
	size, tsize, channels int
	trainDS, valDS        data.Dataset
	trainPipe, valPipe    *data.Pipeline[example]
	// restore loads a pre-trained tokenizer's weights; nil for pixels or a
	// tokenizer used as built (it stays frozen at its initialisation).
	restore restorer
}

func (s *setup) close() {
	if s.trainPipe != nil {
		s.trainPipe.Close()
	}
	if s.valPipe != nil {
		s.valPipe.Close()
	}
}

// newSetup opens the data and builds the components.
func newSetup(cfg Config, seed int64) (*setup, error) {
	s := &setup{cfg: cfg}
	var err error
	if s.trainDS, s.valDS, err = cfg.Data.Open(seed); err != nil {
		return nil, err
	}
	backbone, err := cfg.Backbone.Build()
	if err != nil {
		return nil, fmt.Errorf("backbone: %w", err)
	}
	gb, ok := backbone.(gridder)
	if !ok {
		return nil, fmt.Errorf("backbone %q does not report its patch grid (mim needs a vit)", cfg.Backbone.Type)
	}
	vc := gb.Config()
	grid := vc.GridSize()
	tok, err := cfg.Tokenizer.Build()
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	maskF, err := cfg.Masker.Build()
	if err != nil {
		return nil, fmt.Errorf("masker: %w", err)
	}
	if s.masker, err = maskF.New(grid, grid); err != nil {
		return nil, fmt.Errorf("masker: %w", err)
	}
	numMasked := maskF.Count(grid, grid)
	if s.opt, err = cfg.Optimizer.Build(); err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	aug, err := cfg.Data.Augment.Compile()
	if err != nil {
		return nil, fmt.Errorf("data.augment: %w", err)
	}
	if cfg.Data.Augment.Size != vc.ImageSize {
		return nil, fmt.Errorf("data.augment.size %d differs from the backbone's image_size %d", cfg.Data.Augment.Size, vc.ImageSize)
	}
	norm := aug.Normalizer()
	tnorm, _ := data.NewNormalizer(cfg.Data.TargetNormalize)
	s.size = cfg.Data.Augment.Size
	s.tsize = cfg.Data.Augment.SecondSize
	if s.tsize == 0 {
		s.tsize = s.size
	}
	probe, err := s.trainDS.Sample(0)
	if err != nil {
		return nil, fmt.Errorf("data.train: %w", err)
	}
	s.channels = probe.Image.C
	if s.channels != vc.InChannels {
		return nil, fmt.Errorf("data.train has %d channels, the backbone's in_channels is %d", s.channels, vc.InChannels)
	}
	target, err := NewTarget(tok, s.tsize, s.channels, grid, grid)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	s.net = &Network{Backbone: backbone, Target: target, GridH: grid, GridW: grid, NumMasked: numMasked, PredictAll: cfg.PredictAll}
	s.adamw = s.opt.New()
	s.adamw.Trainable = func(p string) bool { return !strings.HasPrefix(p, "/"+TokenizerScope+"/") }
	if r, ok := tok.(restorer); ok {
		s.restore = r
	}

	masker := s.masker
	build := func(s0 data.Sample, view, second *data.Image, mr *rand.Rand) (example, error) {
		if second == nil {
			second = view
		}
		mask := masker.Mask(mr)
		if !cfg.PredictAll {
			n := 0
			for _, m := range mask {
				if m {
					n++
				}
			}
			if n != numMasked {
				return example{}, fmt.Errorf("%s: the masker masked %d patches, want exactly %d (set exact: true)", s0.Path, n, numMasked)
			}
		}
		return example{pix: norm.Apply(view, nil), tpix: tnorm.Apply(second, nil), mask: mask}, nil
	}
	if s.trainPipe, err = data.NewPipeline(s.trainDS, func(smp data.Sample, r *rand.Rand) (example, error) {
		mr := data.SplitRNG(r) // masking does not depend on how much the augmentation draws
		v, second, err := aug.Train(smp.Image, r)
		if err != nil {
			return example{}, fmt.Errorf("%s: %w", smp.Path, err)
		}
		return build(smp, v, second, mr)
	}, cfg.Data.TrainPipeline(seed)); err != nil {
		return nil, fmt.Errorf("data.train: %w", err)
	}
	valCfg := cfg.Data.EvalPipeline(seed)
	valCfg.DropLast = true // every validation batch has the graph's fixed shape
	if s.valPipe, err = data.NewPipeline(s.valDS, func(smp data.Sample, r *rand.Rand) (example, error) {
		mr := data.SplitRNG(r)
		v, second, err := aug.Eval(smp.Image)
		if err != nil {
			return example{}, fmt.Errorf("%s: %w", smp.Path, err)
		}
		return build(smp, v, second, mr)
	}, valCfg); err != nil {
		s.close()
		return nil, fmt.Errorf("data.val: %w", err)
	}
	return s, nil
}

// newStore makes the model store, with the pre-trained tokenizer's weights
// loaded (frozen) under /tokenizer.
func (s *setup) newStore(seed int64) (*model.Store, error) {
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, seed)
	if s.restore != nil {
		if err := s.restore.Restore(store, "/"+TokenizerScope); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}
	return store, nil
}

// trainExec builds the training step: loss and masked-token hits, with the
// AdamW update.
func (s *setup) trainExec(env *core.Env, store *model.Store) (*model.Exec, error) {
	return model.NewExec(env.Backend, store, func(scope *model.Scope, in []*Node) []*Node {
		loss, correct := s.net.Loss(scope, in[0], in[1], in[2], in[3], true)
		s.adamw.UpdateGraph(scope, loss.Graph(), loss)
		return []*Node{loss, correct}
	})
}

// evalExec builds the evaluation step (no update, no drop path).
func (s *setup) evalExec(env *core.Env, store *model.Store) (*model.Exec, error) {
	return model.NewExec(env.Backend, store, func(scope *model.Scope, in []*Node) []*Node {
		loss, correct := s.net.Loss(scope, in[0], in[1], in[2], in[3], false)
		return []*Node{loss, correct}
	})
}

// Run implements core.Task.
func (t *Task) Run(ctx context.Context, env *core.Env) error {
	cfg := t.cfg
	s, err := newSetup(cfg, env.Seed)
	if err != nil {
		return err
	}
	defer s.close()
	steps := s.trainPipe.BatchesPerEpoch()
	if steps == 0 {
		return fmt.Errorf("data.train: %d samples is less than one batch of %d", s.trainDS.Len(), cfg.Data.BatchSize)
	}
	if s.valPipe.BatchesPerEpoch() == 0 {
		return fmt.Errorf("data.val: %d samples is less than one batch of %d", s.valDS.Len(), cfg.Data.EvalBatch)
	}
	store, err := s.newStore(env.Seed)
	if err != nil {
		return err
	}
	trainExec, err := s.trainExec(env, store)
	if err != nil {
		return fmt.Errorf("building the training graph: %w", err)
	}
	evalExec, err := s.evalExec(env, store)
	if err != nil {
		return fmt.Errorf("building the evaluation graph: %w", err)
	}
	tokens := s.net.Target.Kind() == TargetTokens
	env.Printf("mim: %s targets (dim %d), %d train / %d val images, %dx%dx%d view, %d-pixel tokenizer view, %dx%d patches, %d masked, %d steps/epoch x %d epochs\n",
		s.net.Target.Kind(), s.net.Target.Dim(), s.trainDS.Len(), s.valDS.Len(), s.size, s.size, s.channels, s.tsize,
		s.net.GridH, s.net.GridW, s.net.NumMasked, steps, cfg.Epochs)

	loop := &core.Loop{Config: cfg.LoopConfig, Env: env, Store: store, StepsPerEpoch: steps, BatchSize: cfg.Data.BatchSize}
	st, err := loop.Restore()
	if err != nil {
		return err
	}
	total := cfg.Epochs * steps
	loop.Step = func(ls *core.LoopState) (map[string]float64, error) {
		b, err := s.trainPipe.BatchAt(data.Position{Epoch: ls.Epoch, Batch: ls.Batch}, cfg.Epochs)
		if err != nil {
			return nil, err
		}
		lr := s.opt.BaseLR() * s.opt.Schedule().Factor(int(ls.Step), total)
		if err := optim.SetLR(store, lr); err != nil {
			return nil, err
		}
		out, err := trainExec.Exec(s.toTensors(b.Items)...)
		if err != nil {
			return nil, err
		}
		loss := float64(tensors.ToScalar[float32](out[0]))
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil, fmt.Errorf("the MIM loss is %v", loss)
		}
		m := map[string]float64{"mim_loss": loss, "lr": lr, "grad_norm": optim.GradNorm(store)}
		if tokens {
			m["mim_acc"] = float64(tensors.ToScalar[float32](out[1])) / float64(len(b.Items)*s.net.NumMasked)
		}
		return m, nil
	}
	loop.Status = func(m map[string]float64) string {
		if tokens {
			return fmt.Sprintf("mim loss %.4f acc %.3f", m["mim_loss"], m["mim_acc"])
		}
		return fmt.Sprintf("mim loss %.4f", m["mim_loss"])
	}
	var last map[string]float64
	loop.EndEpoch = func(epoch int) (map[string]float64, float64, error) {
		s.trainPipe.Stop() // free the workers for evaluation
		t0 := time.Now()
		loss, acc, n, err := s.evaluate(evalExec)
		if err != nil {
			return nil, 0, err
		}
		m := map[string]float64{"val_mim_loss": loss, "val_images": float64(n), "eval_seconds": time.Since(t0).Seconds()}
		score := -loss
		if tokens {
			m["val_mim_acc"] = acc
			score = acc
			env.Printf("epoch %d: val MIM loss %.4f, masked-token accuracy %.2f%% (chance %.2f%%)\n", epoch, loss, 100*acc, 100/float64(s.net.Target.Dim()))
		} else {
			env.Printf("epoch %d: val MIM loss %.4f\n", epoch, loss)
		}
		last = m
		return m, score, nil
	}
	t0 := time.Now()
	st, err = loop.Run(ctx, st)
	if err != nil {
		return err
	}
	summary := map[string]any{"steps": st.Step, "best_epoch": st.BestEpoch, "train_seconds": time.Since(t0).Seconds(),
		"target": s.net.Target.Kind()}
	for k, v := range last {
		summary["final_"+k] = v
	}
	env.Printf("done: run directory %s (backbone weights under /%s in checkpoints/last.ckpt)\n", env.Run.Dir, BackboneScope)
	return env.Run.SetSummary(summary)
}

// toTensors packs a batch into the graph's inputs: images [B,S,S,C], the
// tokenizer view [B,T,T,C], the mask [B,N] (float32 0/1) and the flat
// indices b*N+patch of the masked patches [B*NumMasked] (int32; with
// predict_all and an inexact masker, padded with index 0 — unused).
func (s *setup) toTensors(items []example) []any {
	b := len(items)
	per, tper := s.size*s.size*s.channels, s.tsize*s.tsize*s.channels
	n, m := s.net.GridH*s.net.GridW, s.net.NumMasked
	pix := make([]float32, b*per)
	tpix := make([]float32, b*tper)
	mask := make([]float32, b*n)
	idx := make([]int32, b*m)
	for i, it := range items {
		copy(pix[i*per:], it.pix)
		copy(tpix[i*tper:], it.tpix)
		k := 0
		for j, v := range it.mask {
			if v {
				mask[i*n+j] = 1
				if k < m {
					idx[i*m+k] = int32(i*n + j)
					k++
				}
			}
		}
	}
	return []any{
		tensors.FromFlatDataAndDimensions(pix, b, s.size, s.size, s.channels),
		tensors.FromFlatDataAndDimensions(tpix, b, s.tsize, s.tsize, s.channels),
		tensors.FromFlatDataAndDimensions(mask, b, n),
		tensors.FromFlatDataAndDimensions(idx, b*m),
	}
}

// evaluate returns the mean MIM loss and masked-token accuracy over the
// validation split (its complete batches), with each sample's fixed mask.
func (s *setup) evaluate(exec *model.Exec) (loss, acc float64, images int, err error) {
	var sumLoss, hits float64
	var batches int
	for b, err := range s.valPipe.Epoch(0) {
		if err != nil {
			return 0, 0, 0, err
		}
		out, err := exec.Exec(s.toTensors(b.Items)...)
		if err != nil {
			return 0, 0, 0, err
		}
		sumLoss += float64(tensors.ToScalar[float32](out[0]))
		hits += float64(tensors.ToScalar[float32](out[1]))
		batches++
		images += len(b.Items)
	}
	if batches == 0 {
		return 0, 0, 0, errors.New("validation split produced no batches")
	}
	return sumLoss / float64(batches), hits / float64(images*s.net.NumMasked), images, nil
}
