// Package segment is the semantic segmentation task (ADE20k, CamVid in the
// ADE20k layout): a ViT backbone with BEiT's multi-scale pyramid and an FPN
// decoder (model.go), per-pixel cross-entropy ignoring unlabelled pixels,
// whole-image or sliding-window evaluation at the label maps' resolution,
// scored by metrics.SegMeter as mmsegmentation does (mIoU over the dataset's
// summed areas), and overlays of image, ground truth and prediction.
package segment

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/metrics"
	"github.com/peco-dev/peco/optim"
	"github.com/peco-dev/peco/registry"
)

// DataConfig is the segmentation data: datasets, crops and batching.
type DataConfig struct {
	Train     registry.Spec[data.Dataset] `mapstructure:"train" doc:"training split (a dataset with label maps, e.g. ade20k)"`
	Val       registry.Spec[data.Dataset] `mapstructure:"val" doc:"validation split"`
	Size      int                         `mapstructure:"size" doc:"training crop side in pixels (the backbone's image size; also the sliding window)"`
	Scale     [2]float64                  `mapstructure:"scale" doc:"random-resized-crop area range, as a fraction of the image"`
	Ratio     [2]float64                  `mapstructure:"ratio" doc:"random-resized-crop aspect-ratio range"`
	HFlip     float64                     `mapstructure:"hflip" doc:"probability of a horizontal flip"`
	Normalize string                      `mapstructure:"normalize" doc:"image normalisation: imagenet, half or none"`
	BatchSize int                         `mapstructure:"batch_size" doc:"training batch size"`
	EvalBatch int                         `mapstructure:"eval_batch_size" doc:"windows per evaluation batch"`
	Workers   int                         `mapstructure:"workers" doc:"decoding/augmentation goroutines (0 = number of CPUs)"`
	MaxTrain  int                         `mapstructure:"max_train" doc:"a seeded subset of this many training images (0 = all)"`
	MaxVal    int                         `mapstructure:"max_val" doc:"a seeded subset of this many validation images (0 = all)"`
}

// EvalConfig is how validation images are predicted.
type EvalConfig struct {
	Mode     string `mapstructure:"mode" doc:"whole (the image resized to the crop size) or slide (windows of the crop size over the image resized to height x width, logits averaged where they overlap)"`
	Height   int    `mapstructure:"height" doc:"slide: the image is resized to this height first (0: its own)"`
	Width    int    `mapstructure:"width" doc:"slide: the image is resized to this width first (0: its own)"`
	Stride   int    `mapstructure:"stride" doc:"slide: window stride in pixels (0: two thirds of the crop size)"`
	Overlays int    `mapstructure:"overlays" doc:"validation images drawn as image | ground truth | prediction PNGs after each evaluation"`
}

// DecoderConfig is the FPN decoder.
type DecoderConfig struct {
	Layers   []int `mapstructure:"layers" doc:"the four blocks (0-based) whose outputs form the pyramid (BEiT ViT-B: 3, 5, 7, 11); empty: evenly spaced, ending at the last"`
	Channels int   `mapstructure:"channels" doc:"decoder width"`
	Groups   int   `mapstructure:"groups" doc:"GroupNorm groups of the decoder"`
}

// Config configures the segmentation task.
type Config struct {
	run.LoopConfig  `mapstructure:",squash"`
	Data            DataConfig                     `mapstructure:"data" doc:"datasets, crops and batching"`
	Backbone        registry.Spec[core.Backbone]   `mapstructure:"backbone" doc:"the ViT (a core.PatchBackbone giving its block outputs)"`
	From            string                         `mapstructure:"from" doc:"an earlier run (mim or classification) whose /backbone weights initialise the backbone; empty = from scratch"`
	NumClasses      int                            `mapstructure:"num_classes" doc:"classes (150 for ADE20k, 11 for the CamVid copy)"`
	ReduceZeroLabel bool                           `mapstructure:"reduce_zero_label" doc:"label 0 is ignore and label k is class k-1 (ADE20k's convention)"`
	Decoder         DecoderConfig                  `mapstructure:"decoder" doc:"the FPN decoder"`
	Optimizer       registry.Spec[optim.Optimizer] `mapstructure:"optimizer" doc:"optimizer and lr schedule"`
	Eval            EvalConfig                     `mapstructure:"eval" doc:"validation prediction"`
}

// Validate checks the settings.
func (c *Config) Validate() error {
	switch {
	case c.NumClasses < 1 || c.NumClasses > 254:
		return fmt.Errorf("num_classes must be in [1, 254], got %d", c.NumClasses)
	case c.Data.Size < 16:
		return fmt.Errorf("data.size must be >= 16, got %d", c.Data.Size)
	case c.Eval.Mode != "whole" && c.Eval.Mode != "slide":
		return fmt.Errorf("eval.mode must be whole or slide, got %q", c.Eval.Mode)
	case len(c.Decoder.Layers) != 0 && len(c.Decoder.Layers) != 4:
		return fmt.Errorf("decoder.layers must list 4 blocks, got %v", c.Decoder.Layers)
	case c.Decoder.Channels < 1 || c.Decoder.Groups < 1 || c.Decoder.Channels%c.Decoder.Groups != 0:
		return fmt.Errorf("decoder.channels must be a positive multiple of decoder.groups, got %d and %d", c.Decoder.Channels, c.Decoder.Groups)
	case c.Data.BatchSize < 1 || c.Data.EvalBatch < 1:
		return fmt.Errorf("data.batch_size and data.eval_batch_size must be >= 1")
	}
	if _, err := data.NewNormalizer(c.Data.Normalize); err != nil {
		return fmt.Errorf("data.normalize: %w", err)
	}
	return nil
}

// DefaultConfig is 1 epoch of 128-pixel crops in batches of 8 on the vit
// defaults, a 128-wide decoder, AdamW 1e-3 with cosine decay, ADE20k's label
// convention, whole-image evaluation.
func DefaultConfig() Config {
	opt := optim.DefaultAdamW()
	opt.LR = 1e-3
	return Config{
		LoopConfig: run.DefaultLoop(),
		Data: DataConfig{Size: 128, Scale: [2]float64{0.25, 1}, Ratio: [2]float64{0.75, 1.3333}, HFlip: 0.5,
			Normalize: "imagenet", BatchSize: 8, EvalBatch: 8},
		Backbone:        registry.Spec[core.Backbone]{Type: "vit", Config: registry.MustDefaults(core.Backbones, "vit")},
		NumClasses:      150,
		ReduceZeroLabel: true,
		Decoder:         DecoderConfig{Channels: 128, Groups: 16},
		Optimizer:       registry.Spec[optim.Optimizer]{Type: "adamw", Config: &opt},
		Eval:            EvalConfig{Mode: "whole", Overlays: 4},
	}
}

func init() {
	registry.Register(core.Tasks, "segmentation",
		"semantic segmentation (ADE20k layout): ViT + multi-scale pyramid + FPN decoder, mIoU as mmsegmentation",
		DefaultConfig, func(c Config) (core.Task, error) { return &Task{cfg: c}, nil })
}

// Task is the segmentation task.
type Task struct{ cfg Config }

// item is one transformed training crop.
type item struct {
	pix    []float32
	labels []int32
}

// Run implements core.Task.
func (t *Task) Run(ctx context.Context, env *core.Env) error {
	cfg := t.cfg
	train, err := openSplit(cfg.Data.Train, cfg.Data.MaxTrain, env.Seed, "data.train")
	if err != nil {
		return err
	}
	val, err := openSplit(cfg.Data.Val, cfg.Data.MaxVal, env.Seed+1, "data.val")
	if err != nil {
		return err
	}
	st, err := newStep(env, cfg)
	if err != nil {
		return err
	}
	norm, _ := data.NewNormalizer(cfg.Data.Normalize)
	size := cfg.Data.Size
	crop := data.RandomResizedCrop{Scale: cfg.Data.Scale, Ratio: cfg.Data.Ratio}
	flip := data.HorizontalFlip{P: cfg.Data.HFlip}
	reduce := cfg.ReduceZeroLabel
	meter := metrics.NewSegMeter(cfg.NumClasses, reduce)
	pipe, err := data.NewPipeline(train, func(s data.Sample, r *rand.Rand) (item, error) {
		if s.LabelMap == nil {
			return item{}, fmt.Errorf("%s: no label map (is data.train a segmentation dataset?)", s.Path)
		}
		d, err := data.TransformDense(s, data.DenseParams{Crop: crop.Params(s.Image.H, s.Image.W, r), Flip: flip.Draw(r), H: size, W: size, Filter: data.Bilinear})
		if err != nil {
			return item{}, err
		}
		if d.Image.C != st.channels {
			return item{}, fmt.Errorf("%s: %d channels, the backbone takes %d", s.Path, d.Image.C, st.channels)
		}
		lab := make([]int32, len(d.LabelMap))
		for i, v := range d.LabelMap {
			lab[i] = classOf(meter, v)
		}
		return item{pix: norm.Apply(d.Image, nil), labels: lab}, nil
	}, data.PipelineConfig{BatchSize: cfg.Data.BatchSize, Shuffle: true, DropLast: true, Workers: cfg.Data.Workers, Seed: env.Seed, World: 1})
	if err != nil {
		return err
	}
	defer pipe.Close()
	steps := pipe.BatchesPerEpoch()
	if steps == 0 {
		return fmt.Errorf("data.train has %d images, fewer than a batch of %d", train.Len(), cfg.Data.BatchSize)
	}
	st.totalSteps = steps * cfg.Epochs
	if err := env.ReportSkipped(append(data.SkipReport("data.train", train), data.SkipReport("data.val", val)...)); err != nil {
		return err
	}
	env.Printf("segmentation: %d classes, %d train / %d val images, %dx%d crops, %dx%d patches, decoder on blocks %v, %d steps/epoch x %d epochs, eval %s\n",
		cfg.NumClasses, train.Len(), val.Len(), size, size, st.gh, st.gw, st.net.Layers, steps, cfg.Epochs, cfg.Eval.Mode)
	if st.fromReport != nil {
		env.Printf("%s\n", st.fromReport)
	}
	loop := &run.Loop{Config: cfg.LoopConfig, Env: env, Store: st.store, StepsPerEpoch: steps, BatchSize: cfg.Data.BatchSize}
	state, err := loop.Restore()
	if err != nil {
		return err
	}
	loop.Step = func(ls *run.LoopState) (map[string]float64, error) {
		b, err := pipe.BatchAt(data.Position{Epoch: ls.Epoch, Batch: ls.Batch}, cfg.Epochs)
		if err != nil {
			return nil, err
		}
		return st.run(b.Items, int(ls.Step))
	}
	loop.Status = func(m map[string]float64) string { return fmt.Sprintf("loss %.4f", m["loss"]) }
	var last map[string]float64
	loop.EndEpoch = func(epoch int) (map[string]float64, float64, error) {
		t0 := time.Now()
		res, err := evaluate(env, st, cfg, val, norm, epoch)
		if err != nil {
			return nil, 0, err
		}
		if err := env.ReportSkipped(data.SkipReport("data.train", train, pipe.SkippedSamples())); err != nil {
			return nil, 0, err
		}
		m := map[string]float64{"val_miou": res.MIoU, "val_macc": res.MAcc, "val_aacc": res.AAcc, "eval_seconds": time.Since(t0).Seconds()}
		env.Printf("epoch %d: val mIoU %s  mAcc %s  aAcc %s (%d images, %s)\n%s", epoch, metrics.Percent(res.MIoU), metrics.Percent(res.MAcc),
			metrics.Percent(res.AAcc), res.Images, cfg.Eval.Mode, res.Table(val.Classes()))
		last = m
		return m, res.MIoU, nil
	}
	t0 := time.Now()
	if state, err = loop.Run(ctx, state); err != nil {
		return err
	}
	summary := map[string]any{"steps": state.Step, "best_miou": state.Best, "best_epoch": state.BestEpoch, "train_seconds": time.Since(t0).Seconds()}
	for k, v := range last {
		summary["final_"+k] = v
	}
	env.Printf("done: best val mIoU %s (epoch %d), run directory %s\n", metrics.Percent(state.Best), state.BestEpoch, env.Dir)
	return env.Record.SetSummary(summary)
}

// classOf maps a stored label value to a class id, -1 for ignored pixels.
func classOf(m *metrics.SegMeter, v uint8) int32 {
	c := m.Label(v)
	if c == metrics.SegIgnore || c >= m.NumClasses() {
		return -1
	}
	return int32(c)
}

// openSplit builds a dataset and takes a seeded subset.
func openSplit(spec registry.Spec[data.Dataset], max int, seed int64, what string) (data.Dataset, error) {
	ds, err := spec.Build()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if max > 0 && max < ds.Len() {
		ds = data.Subset(ds, max, seed)
	}
	return ds, nil
}

// step is the model and its training and prediction executions.
type step struct {
	net            *Network
	store          *model.Store
	opt            optim.Optimizer
	train, predict *model.Exec
	from           *ckpt.Run
	fromReport     *ckpt.LoadReport // what was loaded from the from run
	size, channels int
	gh, gw         int
	totalSteps     int
}

func newStep(env *core.Env, cfg Config) (*step, error) {
	built, err := cfg.Backbone.Build()
	if err != nil {
		return nil, fmt.Errorf("backbone: %w", err)
	}
	bb, ok := built.(core.PatchBackbone)
	if !ok {
		return nil, fmt.Errorf("backbone %q does not report its patch grid (core.PatchBackbone): segmentation needs a ViT", cfg.Backbone.Type)
	}
	h, w, c := bb.InputShape()
	if h != cfg.Data.Size || w != cfg.Data.Size {
		return nil, fmt.Errorf("data.size %d differs from the backbone's image size %dx%d", cfg.Data.Size, h, w)
	}
	layers := cfg.Decoder.Layers
	if len(layers) == 0 {
		lb, ok := built.(core.LayeredBackbone)
		if !ok {
			return nil, fmt.Errorf("decoder.layers must be given for backbone %q", cfg.Backbone.Type)
		}
		n := lb.NumLayers()
		for i := 1; i <= 4; i++ {
			layers = append(layers, max(0, i*n/4-1))
		}
	}
	gh, gw := bb.PatchGrid()
	if gh%2 != 0 || gw%2 != 0 {
		return nil, fmt.Errorf("the backbone's patch grid %dx%d must be even (the pyramid pools it x2)", gh, gw)
	}
	opt, err := cfg.Optimizer.Build()
	if err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	s := &step{net: &Network{Backbone: bb, Layers: [4]int(layers), Channels: cfg.Decoder.Channels, NumClasses: cfg.NumClasses, Groups: cfg.Decoder.Groups},
		store: model.NewStore(), opt: opt, size: h, channels: c, gh: gh, gw: gw}
	s.store.SetParam(model.ParamInitialSeed, env.Seed)
	if cfg.From != "" {
		if s.from, err = ckpt.OpenRun(cfg.From); err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
		adapter, _ := built.(core.PositionAdapter)
		if s.fromReport, err = s.from.LoadBackbone(env.Backend, s.store, built, ckpt.BackboneScope, ckpt.BackboneScope, adapter); err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
	}
	adamw := opt.New()
	if s.train, err = model.NewExec(env.Backend, s.store, func(scope *model.Scope, images, labels *Node) []*Node {
		loss := PixelLoss(s.net.Logits(scope, images, true), labels)
		adamw.UpdateGraph(scope, loss.Graph(), loss)
		return []*Node{loss}
	}); err != nil {
		return nil, fmt.Errorf("building the training graph: %w", err)
	}
	if s.predict, err = model.NewExec(env.Backend, s.store, func(scope *model.Scope, images *Node) *Node {
		return s.net.Logits(scope, images, false)
	}); err != nil {
		return nil, fmt.Errorf("building the prediction graph: %w", err)
	}
	return s, nil
}

// run trains on one batch at optimizer step.
func (s *step) run(items []item, step int) (map[string]float64, error) {
	lr := s.opt.BaseLR() * s.opt.Schedule().Factor(step, s.totalSteps)
	if err := optim.SetLR(s.store, lr); err != nil {
		return nil, err
	}
	n, per := len(items), s.size*s.size
	pix := make([]float32, 0, n*per*s.channels)
	lab := make([]int32, 0, n*per)
	for _, it := range items {
		pix = append(pix, it.pix...)
		lab = append(lab, it.labels...)
	}
	out, err := s.train.Exec(tensors.FromFlatDataAndDimensions(pix, n, s.size, s.size, s.channels), tensors.FromFlatDataAndDimensions(lab, n, s.size, s.size))
	if err != nil {
		return nil, err
	}
	loss := float64(tensors.ToScalar[float32](out[0]))
	if loss != loss {
		return nil, fmt.Errorf("the segmentation loss is NaN")
	}
	return map[string]float64{"loss": loss, "lr": lr, "grad_norm": optim.GradNorm(s.store)}, nil
}
