// Package mim is BEiT/PeCo masked-image-modeling pre-training (task "mim"):
// each image is cropped once into two views (the model's and the target's,
// same crop and flip), a blockwise mask hides about 40% of the patches
// behind the backbone's [MASK] token, and a linear head on the masked
// patches' features predicts the target of those patches: the `target:`
// component (the tokens of a frozen tokenizer run, or pixels), scored by
// the `loss:` component (cross_entropy for tokens, l2 for pixels unless
// set). Token targets are computed in each training step, or once before
// training and cached (target precompute). The backbone's weights are
// checkpointed under scope "/backbone" for the classification task to load.
package mim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/data"
	_ "github.com/peco-dev/peco/losses" // the default losses: cross_entropy, l2
	"github.com/peco-dev/peco/optim"
	"github.com/peco-dev/peco/registry"
	_ "github.com/peco-dev/peco/targets" // the targets: tokens, pixels
)

// DataConfig selects the splits and their processing: the training tasks'
// shared data section (augment.second_size is the target view's side; 0:
// the model's view) plus the target view's normalisation.
type DataConfig struct {
	data.Splits `mapstructure:",squash"`
	// TargetNormalize is the normalization of the target view.
	TargetNormalize string `mapstructure:"target_normalize" doc:"normalization of the target view: half ([-1,1], what the vqvae/dvae tokenizers take), none ([0,1]) or imagenet"`
}

// Config configures the MIM task.
type Config struct {
	run.LoopConfig `mapstructure:",squash"`
	Data           DataConfig                        `mapstructure:"data" doc:"datasets, two-view augmentation and batching"`
	Backbone       registry.Spec[core.Backbone]      `mapstructure:"backbone" doc:"the network pre-trained (a vit; its weights are saved under /backbone)"`
	Target         registry.Spec[core.Target]        `mapstructure:"target" doc:"what is predicted per masked patch: {type: tokens, from: RUN} (a tokenizer run's tokens) or {type: pixels}"`
	Loss           registry.Spec[core.Loss]          `mapstructure:"loss" doc:"the MIM loss; unset: cross_entropy for token targets, l2 for pixels"`
	Masker         registry.Spec[data.MaskerFactory] `mapstructure:"masker" doc:"masking generator; the number of masked patches must be exact (fixed graph shapes)"`
	PredictAll     bool                              `mapstructure:"predict_all" doc:"score every patch, not only the masked ones (BEiT's ablation)"`
	Optimizer      registry.Spec[optim.Optimizer]    `mapstructure:"optimizer" doc:"optimizer and lr schedule (BEiT: AdamW 1.5e-3, wd 0.05, clip 3, cosine)"`
}

// Validate checks the task-level keys.
func (c *Config) Validate() error {
	if err := c.LoopConfig.Validate(); err != nil {
		return err
	}
	if err := c.Data.Splits.Validate(); err != nil {
		return err
	}
	if !c.Backbone.IsSet() || !c.Target.IsSet() || !c.Masker.IsSet() {
		return errors.New("backbone, target and masker must be set")
	}
	if _, err := data.NewNormalizer(c.Data.TargetNormalize); err != nil {
		return fmt.Errorf("data.target_normalize: %w", err)
	}
	return nil
}

// RetiredKeys names the former keys of the task.
func (c *Config) RetiredKeys() map[string]string {
	return map[string]string{
		"tokenizer": "the MIM target is now `target:` — {type: tokens, from: RUN} for the tokens of a tokenizer run, {type: pixels} for pixels",
	}
}

// DefaultConfig is BEiT's pre-training recipe at small scale: blockwise
// masking of 40% of the patches (exact count), AdamW lr 1.5e-3, betas (0.9,
// 0.999), weight decay 0.05 (not on biases, norms, cls/mask tokens, position
// embeddings, relative position tables), clipping 3.0, cosine schedule with
// warm-up, colour jitter 0.4; the target view in [-1, 1] (the tokenizers'
// convention); pixel targets until a tokenizer run is named.
func DefaultConfig() Config {
	opt := optim.DefaultAdamW()
	aug := data.DefaultAugmentConfig()
	aug.ColorJitter = data.DefaultColorJitter()
	aug.Scale = [2]float64{0.08, 1}
	return Config{
		LoopConfig: run.DefaultLoop(),
		Data: DataConfig{
			Splits:          data.Splits{Augment: aug, BatchSize: 64, EvalBatch: 128, Cache: data.DefaultCacheConfig()},
			TargetNormalize: data.NormalizeHalf,
		},
		Target:    registry.Spec[core.Target]{Type: "pixels", Config: registry.MustDefaults(core.Targets, "pixels")},
		Masker:    registry.Spec[data.MaskerFactory]{Type: "blockwise", Config: registry.MustDefaults(data.Maskers, "blockwise")},
		Optimizer: registry.Spec[optim.Optimizer]{Type: "adamw", Config: &opt},
	}
}

// DefaultLoss is the MIM loss used when the config sets none:
// cross_entropy for discrete targets, l2 for continuous ones.
func DefaultLoss(discrete bool) registry.Spec[core.Loss] {
	name := "l2"
	if discrete {
		name = "cross_entropy"
	}
	return registry.Spec[core.Loss]{Type: name, Config: registry.MustDefaults(core.Losses, name)}
}

func init() {
	registry.Register(core.Tasks, "mim",
		"BEiT/PeCo masked image modeling: predict the target (a frozen tokenizer's tokens, or pixels) of masked patches",
		DefaultConfig, func(c Config) (core.Task, error) { return &Task{cfg: c}, nil })
}

// Task is the MIM pre-training task.
type Task struct {
	cfg Config
}

// example is one transformed sample: the model's view, the target view
// (or the sample's precomputed tokens) and its mask.
type example struct {
	pix, tpix []float32
	tokens    []int32
	mask      []bool
}

// setup is everything Run builds before training; tests use it too.
type setup struct {
	cfg     Config
	step    *TrainStep
	loaders *data.Loaders[example]
	// cache holds precomputed tokens (nil: computed in the step).
	cache *tokenCache
}

func (s *setup) close() {
	if s.step != nil {
		s.step.Close()
	}
	if s.loaders != nil {
		s.loaders.Close()
	}
}

// newSetup builds the components and opens the data.
func newSetup(env *core.Env, cfg Config) (_ *setup, err error) {
	s := &setup{cfg: cfg}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	// The schedule's length needs the number of steps, set once the data is
	// open.
	if s.step, err = NewTrainStep(env, cfg, 0, false); err != nil {
		return nil, err
	}
	views := 0
	src, precomputed := s.step.Net.Target.(core.TokenSource)
	if precomputed {
		views = src.PrecomputedViews()
	}
	tnorm, _ := data.NewNormalizer(cfg.Data.TargetNormalize)
	masker, numMasked := s.step.Masker, s.step.Net.NumMasked
	opts := data.LoaderOptions{SplitStream: true, ValDropLast: true}
	if views > 0 {
		seed := env.Seed
		opts.TrainView = func(smp data.Sample, a *data.Augmenter, _ *rand.Rand) (*data.Image, *data.Image, error) {
			return a.Train(smp.Image, data.StreamRNG(seed, data.StreamFixedView, smp.Epoch%views, smp.Index))
		}
	}
	build := func(smp data.Sample, view, second *data.Image, norm data.Normalizer, mr *rand.Rand, train bool) (example, error) {
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
				return example{}, fmt.Errorf("%s: the masker masked %d patches, want exactly %d (set exact: true)", smp.Path, n, numMasked)
			}
		}
		ex := example{pix: norm.Apply(view, nil), mask: mask}
		// s.cache is set below, before any batch is read: the pipelines
		// start on the first BatchAt.
		if s.cache == nil {
			ex.tpix = tnorm.Apply(second, nil)
			return ex, nil
		}
		var err error
		if train {
			ex.tokens, err = s.cache.train.tokensOf(smp.Epoch%views, smp.Index)
		} else {
			ex.tokens, err = s.cache.val.tokensOf(0, smp.Index)
		}
		if err != nil {
			return example{}, fmt.Errorf("%s: %w", smp.Path, err)
		}
		return ex, nil
	}
	if s.loaders, err = data.OpenLoaders(cfg.Data.Splits, env.Seed, build, opts); err != nil {
		return nil, err
	}
	if s.loaders.Channels != s.step.Channels {
		return nil, fmt.Errorf("data.train has %d channels, the backbone takes %d", s.loaders.Channels, s.step.Channels)
	}
	s.step.totalSteps = cfg.Epochs * s.loaders.Steps
	if views > 0 {
		if s.cache, err = precompute(env, cfg, src, s.loaders, s.step, views); err != nil {
			return nil, fmt.Errorf("target: precompute: %w", err)
		}
	}
	return s, nil
}

// batch packs examples into the step's input.
func (s *setup) batch(items []example) Batch {
	b := Batch{B: len(items)}
	for _, it := range items {
		b.Images = append(b.Images, it.pix...)
		b.View = append(b.View, it.tpix...)
		b.Tokens = append(b.Tokens, it.tokens...)
		b.Mask = append(b.Mask, it.mask...)
	}
	return b
}

// Run implements core.Task.
func (t *Task) Run(ctx context.Context, env *core.Env) error {
	cfg := t.cfg
	s, err := newSetup(env, cfg)
	if err != nil {
		return err
	}
	defer s.close()
	net, l := s.step.Net, s.loaders
	tokens := net.Target.Discrete()
	kind := "pixels"
	if tokens {
		kind = "tokens"
		if s.cache != nil {
			kind = fmt.Sprintf("precomputed tokens (%d views/image)", s.cache.train.views)
		}
	}
	env.Printf("mim: %s targets (dim %d), loss %s, %d train / %d val images, %dx%dx%d view, %d-pixel target view, %dx%d patches, %d masked, %d steps/epoch x %d epochs\n",
		kind, net.Dim, lossName(cfg, tokens), l.TrainSet.Len(), l.ValSet.Len(), s.step.Size, s.step.Size, s.step.Channels, s.step.ViewSize,
		net.GridH, net.GridW, net.NumMasked, l.Steps, cfg.Epochs)

	if err := env.ReportSkipped(l.SkipReport()); err != nil { // files skip_bad left out: meta.json
		return err
	}
	loop := &run.Loop{Config: cfg.LoopConfig, Env: env, Store: s.step.Store, StepsPerEpoch: l.Steps, BatchSize: cfg.Data.BatchSize,
		Stateful: core.StatefulOf(s.step.Net.Loss, s.step.Net.Target)}
	st, err := loop.Restore()
	if err != nil {
		return err
	}
	loop.Step = func(ls *run.LoopState) (map[string]float64, error) {
		b, err := l.Train.BatchAt(data.Position{Epoch: ls.Epoch, Batch: ls.Batch}, cfg.Epochs)
		if err != nil {
			return nil, err
		}
		return s.step.Run(s.batch(b.Items), int(ls.Step))
	}
	loop.Status = func(m map[string]float64) string {
		if tokens {
			return fmt.Sprintf("mim loss %.4f acc %.3f", m["mim_loss"], m["mim_acc"])
		}
		return fmt.Sprintf("mim loss %.4f", m["mim_loss"])
	}
	var last map[string]float64
	loop.EndEpoch = func(epoch int) (map[string]float64, float64, error) {
		l.Train.Stop() // free the workers for evaluation
		t0 := time.Now()
		loss, acc, n, err := s.evaluate()
		if err != nil {
			return nil, 0, err
		}
		if err := env.ReportSkipped(l.SkipReport()); err != nil { // bad samples the pipelines replaced
			return nil, 0, err
		}
		m := map[string]float64{"val_mim_loss": loss, "val_images": float64(n), "eval_seconds": time.Since(t0).Seconds()}
		score := -loss
		if tokens {
			m["val_mim_acc"] = acc
			score = acc
			env.Printf("epoch %d: val MIM loss %.4f, masked-token accuracy %.2f%% (chance %.2f%%)\n", epoch, loss, 100*acc, 100/float64(net.Dim))
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
		"target": cfg.Target.Type, "loss": lossName(cfg, tokens)}
	for k, v := range last {
		summary["final_"+k] = v
	}
	env.Printf("done: run directory %s (backbone weights under /%s in checkpoints/last.ckpt)\n", env.Dir, BackboneScope)
	return env.Record.SetSummary(summary)
}

// lossName is the MIM loss's type, the default's when unset.
func lossName(cfg Config, discrete bool) string {
	if cfg.Loss.IsSet() {
		return cfg.Loss.Type
	}
	return DefaultLoss(discrete).Type
}

// evaluate returns the mean MIM loss and masked-token accuracy over the
// validation split (its complete batches), with each sample's fixed mask.
func (s *setup) evaluate() (loss, acc float64, images int, err error) {
	var sumLoss, hits float64
	var batches int
	for b, err := range s.loaders.Val.Epoch(0) {
		if err != nil {
			return 0, 0, 0, err
		}
		l, c, err := s.step.Eval(s.batch(b.Items))
		if err != nil {
			return 0, 0, 0, err
		}
		sumLoss += l
		hits += c
		batches++
		images += len(b.Items)
	}
	if batches == 0 {
		return 0, 0, 0, errors.New("validation split produced no batches")
	}
	return sumLoss / float64(batches), hits / float64(images*s.step.Net.NumMasked), images, nil
}
