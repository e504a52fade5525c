// Package classify is the ImageNet-style classification task: a backbone
// (from scratch or a pre-trained checkpoint) with pooled features and a linear
// head, trained with cross-entropy and evaluated by top-1/top-5 accuracy on
// the validation split after each epoch.
package classify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/data"
	_ "github.com/peco-dev/peco/losses" // the default loss, cross_entropy
	"github.com/peco-dev/peco/optim"
	"github.com/peco-dev/peco/registry"
)

// DataConfig selects the splits and their processing (shared by the
// training tasks).
type DataConfig = data.Splits

// Config configures the classification task.
type Config struct {
	run.LoopConfig `mapstructure:",squash"`
	Data           DataConfig                     `mapstructure:"data" doc:"datasets, augmentation and batching"`
	Backbone       registry.Spec[core.Backbone]   `mapstructure:"backbone" doc:"feature network"`
	From           string                         `mapstructure:"from" doc:"an earlier run (a mim or classification run: runs/<name>, a run directory or a .ckpt) whose /backbone weights initialise the backbone; empty = from scratch"`
	LayerDecay     float64                        `mapstructure:"layer_decay" doc:"layer-wise lr decay (BEiT fine-tuning: 0.65; 1 = off; vit backbones)"`
	Pool           string                         `mapstructure:"pool" doc:"features fed to the head: mean (patch tokens, then LayerNorm, as BEiT) or cls"`
	Mode           string                         `mapstructure:"mode" doc:"finetune (train everything) or linear_probe (frozen backbone, linear head on one layer's features)"`
	ProbeLayer     int                            `mapstructure:"probe_layer" doc:"linear_probe: block whose output is probed (-1 = the final normed tokens)"`
	Mix            MixConfig                      `mapstructure:"mix" doc:"Mixup/CutMix on training batches"`
	Erasing        ErasingConfig                  `mapstructure:"erasing" doc:"random erasing on training images"`
	Loss           registry.Spec[core.Loss]       `mapstructure:"loss" doc:"classification loss"`
	Optimizer      registry.Spec[optim.Optimizer] `mapstructure:"optimizer" doc:"optimizer and lr schedule"`
}

// Validate checks the task-level keys.
func (c *Config) Validate() error {
	if err := c.LoopConfig.Validate(); err != nil {
		return err
	}
	if c.Pool != "mean" && c.Pool != "cls" {
		return fmt.Errorf("pool must be mean or cls, got %q", c.Pool)
	}
	if c.LayerDecay <= 0 || c.LayerDecay > 1 {
		return fmt.Errorf("layer_decay must be in (0, 1], got %v", c.LayerDecay)
	}
	if c.Mode != ModeFinetune && c.Mode != ModeLinearProbe {
		return fmt.Errorf("mode must be %s or %s, got %q", ModeFinetune, ModeLinearProbe, c.Mode)
	}
	if err := c.Mix.Validate(); err != nil {
		return err
	}
	if err := c.Erasing.Validate(); err != nil {
		return err
	}
	if err := c.Data.Validate(); err != nil {
		return err
	}
	if !c.Backbone.IsSet() {
		return errors.New("backbone must be set")
	}
	return nil
}

// RetiredKeys names the former keys of the task.
func (c *Config) RetiredKeys() map[string]string {
	return map[string]string{"pretrained": "the pre-trained run is now `from: RUN`"}
}

// DefaultConfig trains for one epoch with AdamW (lr 1e-3, cosine) and
// cross-entropy, mean pooling.
func DefaultConfig() Config {
	opt := optim.DefaultAdamW()
	opt.LR = 1e-3
	return Config{
		LoopConfig: run.DefaultLoop(),
		Data:       data.DefaultSplits(),
		Pool:       "mean",
		Mode:       ModeFinetune,
		LayerDecay: 1,
		ProbeLayer: -1,
		Mix:        MixConfig{Prob: 1, SwitchProb: 0.5},
		Erasing:    ErasingConfig{Area: [2]float64{0.02, 1.0 / 3}, MinRatio: 0.3},
		Loss:       registry.Spec[core.Loss]{Type: "cross_entropy", Config: registry.MustDefaults(core.Losses, "cross_entropy")},
		Optimizer:  registry.Spec[optim.Optimizer]{Type: "adamw", Config: &opt},
	}
}

func init() {
	registry.Register(core.Tasks, "classification",
		"image classification: backbone + pooled linear head, top-1/top-5 on the validation split each epoch",
		DefaultConfig, func(c Config) (core.Task, error) { return &Task{cfg: c}, nil })
}

// Modes of the classification task.
const (
	ModeFinetune    = "finetune"
	ModeLinearProbe = "linear_probe"
)

// Task is the classification task.
type Task struct {
	cfg Config
}

// example is one transformed sample.
type example struct {
	pix   []float32
	label int32
}

// Run implements core.Task.
func (t *Task) Run(ctx context.Context, env *core.Env) error {
	cfg := t.cfg
	l, err := data.OpenLoaders(cfg.Data, env.Seed, func(s data.Sample, v, _ *data.Image, norm data.Normalizer, r *rand.Rand, train bool) (example, error) {
		pix := norm.Apply(v, nil)
		if train {
			cfg.Erasing.Apply(r, pix, v.H, v.W, v.C)
		}
		return example{pix: pix, label: int32(s.Label)}, nil
	}, data.LoaderOptions{})
	if err != nil {
		return err
	}
	defer l.Close()
	if err := env.ReportSkipped(l.SkipReport()); err != nil { // files skip_bad left out: meta.json
		return err
	}
	numClasses := len(l.TrainSet.Classes())
	if numClasses < 2 {
		return fmt.Errorf("data.train: %d classes, need at least 2", numClasses)
	}
	size, channels, steps := cfg.Data.Augment.Size, l.Channels, l.Steps
	ts, err := NewTrainStep(env.Backend, cfg, env.Seed, numClasses, cfg.Epochs*steps)
	if err != nil {
		return err
	}
	if ts.FromReport != nil {
		env.Printf("%s\n", ts.FromReport)
	}
	store, net := ts.Store, ts.Net
	evalExec, err := model.NewExec(env.Backend, store, func(scope *model.Scope, images *Node) *Node {
		return net.Logits(scope, images, false)
	})
	if err != nil {
		return fmt.Errorf("building the evaluation graph: %w", err)
	}

	env.Printf("classification: %d classes, %d train / %d val images, %dx%dx%d input, %d steps/epoch x %d epochs\n",
		numClasses, l.TrainSet.Len(), l.ValSet.Len(), size, size, channels, steps, cfg.Epochs)
	loop := &run.Loop{Config: cfg.LoopConfig, Env: env, Store: store, StepsPerEpoch: steps, BatchSize: cfg.Data.BatchSize}
	st, err := loop.Restore()
	if err != nil {
		return err
	}
	loop.Step = func(s *run.LoopState) (map[string]float64, error) {
		b, err := l.Train.BatchAt(data.Position{Epoch: s.Epoch, Batch: s.Batch}, cfg.Epochs)
		if err != nil {
			return nil, err
		}
		batch := Batch{B: len(b.Items)}
		for _, it := range b.Items {
			batch.Images = append(batch.Images, it.pix...)
			batch.Labels = append(batch.Labels, it.label)
		}
		if ts.Mixing() {
			r := data.StreamRNG(env.Seed, mixStream, s.Epoch, s.Batch)
			batch.Targets = cfg.Mix.MixBatch(r, batch.Images, batch.Labels, size, size, channels, numClasses, ts.Smoothing)
		}
		return ts.Run(batch, int(s.Step))
	}
	loop.Status = func(m map[string]float64) string { return fmt.Sprintf("loss %.4f", m["loss"]) }
	var last map[string]float64
	loop.EndEpoch = func(epoch int) (map[string]float64, float64, error) {
		l.Train.Stop() // free the workers for evaluation
		t0 := time.Now()
		top1, top5, conf, err := evaluate(evalExec, l.Val, size, channels, numClasses)
		if err != nil {
			return nil, 0, err
		}
		if numClasses <= maxConfusionClasses {
			if err := writeConfusion(env.Path(core.ImagesDir, fmt.Sprintf("confusion_epoch%03d.png", epoch)), conf); err != nil {
				return nil, 0, err
			}
		}
		m := map[string]float64{"top1": top1, "top5": top5, "eval_seconds": time.Since(t0).Seconds()}
		for k, v := range l.Train.Stats().Metrics("data_") {
			m[k] = v
		}
		if err := env.ReportSkipped(l.SkipReport()); err != nil { // bad samples the pipelines replaced
			return nil, 0, err
		}
		env.Printf("epoch %d: val top-1 %.2f%%  top-5 %.2f%%\n", epoch, 100*top1, 100*top5)
		last = m
		return m, top1, nil
	}
	t0 := time.Now()
	st, err = loop.Run(ctx, st)
	if err != nil {
		return err
	}
	summary := map[string]any{"steps": st.Step, "train_seconds": time.Since(t0).Seconds()}
	if st.HasBest() {
		summary["best_top1"], summary["best_epoch"] = st.Best, st.BestEpoch
	}
	for k, v := range last {
		summary["final_"+k] = v
	}
	env.Printf("done: best val top-1 %.2f%% (epoch %d), run directory %s\n", 100*st.Best, st.BestEpoch, env.Dir)
	return env.Record.SetSummary(summary)
}

// Network is a backbone with a pooled linear classification head.
type Network struct {
	Backbone   core.Backbone
	NumClasses int
	Pool       string
	// Frozen makes a linear probe: the backbone's variables are not trained
	// and no gradient flows into it; the head reads layer ProbeLayer (-1:
	// the final tokens) through a parameter-free normalisation.
	Frozen     bool
	ProbeLayer int
}

// Logits builds images [B,H,W,C] -> logits [B, NumClasses].
func (n *Network) Logits(scope *model.Scope, images *Node, training bool) *Node {
	bs := scope.In("backbone")
	f := n.Backbone.Forward(bs, images, core.ForwardOptions{Training: training && !n.Frozen})
	x := f.Tokens
	if n.Frozen {
		if n.ProbeLayer >= 0 && n.ProbeLayer < len(f.Layers) {
			x = f.Layers[n.ProbeLayer]
		}
		x = StopGradient(x)
		for v := range bs.IterVariables() {
			v.SetTrainable(false)
		}
	}
	var feat *Node
	switch {
	case n.Pool == "cls" && f.HasCLS:
		feat = Squeeze(Slice(x, AxisRange(), AxisElem(0), AxisRange()), 1)
	case f.HasCLS:
		feat = ReduceMean(Slice(x, AxisRange(), AxisRange(1), AxisRange()), 1)
	default:
		feat = ReduceMean(x, 1)
	}
	hs := scope.In("head")
	switch {
	case n.Frozen:
		feat = standardize(feat)
	case n.Pool == "mean":
		feat = LayerNorm(hs.In("fc_norm"), feat)
	}
	g := images.Graph()
	d := feat.Shape().Dimensions[1]
	w := hs.WithInitializer(initializer.RandomNormalFn(hs, 0.02)).VariableWithShape("weight", shapes.Make(dtypes.Float32, d, n.NumClasses)).NodeValue(g)
	b := hs.WithInitializer(initializer.Zero).VariableWithShape("bias", shapes.Make(dtypes.Float32, n.NumClasses)).NodeValue(g)
	return Add(MatMul(feat, w), ExpandLeftToRank(b, 2))
}

// LayerNorm normalises the last axis of x with a learned scale and offset
// (variables "scale" and "offset" under scope), eps 1e-6: the heads' fc_norm.
func LayerNorm(scope *model.Scope, x *Node) *Node {
	g := x.Graph()
	d := x.Shape().Dimensions[x.Rank()-1]
	gamma := scope.WithInitializer(initializer.One).VariableWithShape("scale", shapes.Make(x.DType(), d)).NodeValue(g)
	beta := scope.WithInitializer(initializer.Zero).VariableWithShape("offset", shapes.Make(x.DType(), d)).NodeValue(g)
	mean := ReduceAndKeep(x, ReduceMean, -1)
	xc := Sub(x, mean)
	variance := ReduceAndKeep(Square(xc), ReduceMean, -1)
	return Add(Mul(Div(xc, Sqrt(AddScalar(variance, 1e-6))), ExpandLeftToRank(gamma, x.Rank())), ExpandLeftToRank(beta, x.Rank()))
}

// standardize normalises each feature vector to zero mean and unit variance
// without learned parameters (the BatchNorm-free normalisation of the linear probe).
func standardize(x *Node) *Node {
	mean := ReduceAndKeep(x, ReduceMean, -1)
	xc := Sub(x, mean)
	return Div(xc, Sqrt(AddScalar(ReduceAndKeep(Square(xc), ReduceMean, -1), 1e-6)))
}

func argmax(row []float32) int {
	best := 0
	for j, v := range row {
		if v > row[best] {
			best = j
		}
	}
	return best
}

// mixStream separates the Mixup/CutMix random stream from the per-sample ones.
const mixStream = 0x6d6978

// toTensors packs a batch into images [B,H,W,C] float32 and labels [B] int32.
func toTensors(items []example, size, channels int) (*tensors.Tensor, *tensors.Tensor) {
	per := size * size * channels
	pix := make([]float32, len(items)*per)
	labels := make([]int32, len(items))
	for i, it := range items {
		copy(pix[i*per:], it.pix)
		labels[i] = it.label
	}
	return tensors.FromFlatDataAndDimensions(pix, len(items), size, size, channels),
		tensors.FromFlatDataAndDimensions(labels, len(items))
}

// evaluate computes top-1 and top-5 accuracy over the validation pipeline.
// The last, partial batch is padded to the full batch size so that one
// compiled graph serves every batch.
func evaluate(exec *model.Exec, pipe *data.Pipeline[example], size, channels, numClasses int) (top1, top5 float64, confusion [][]int, err error) {
	bs := pipe.Config().BatchSize
	var n, c1, c5 int
	confusion = make([][]int, numClasses)
	for i := range confusion {
		confusion[i] = make([]int, numClasses)
	}
	for b, err := range pipe.Epoch(0) {
		if err != nil {
			return 0, 0, nil, err
		}
		items := b.Items
		for len(items) < bs {
			items = append(items, example{pix: make([]float32, size*size*channels)})
		}
		images, _ := toTensors(items, size, channels)
		out, err := exec.Exec(images)
		if err != nil {
			return 0, 0, nil, err
		}
		logits := tensors.MustCopyFlatData[float32](out[0])
		for i, it := range b.Items {
			row := logits[i*numClasses : (i+1)*numClasses]
			r := Rank(row, int(it.label))
			confusion[it.label][argmax(row)]++
			if r < 1 {
				c1++
			}
			if r < 5 {
				c5++
			}
			n++
		}
	}
	if n == 0 {
		return 0, 0, nil, errors.New("validation split produced no batches")
	}
	return float64(c1) / float64(n), float64(c5) / float64(n), confusion, nil
}

// Rank is the number of classes scored strictly higher than class label (0
// means the label is the top-1 prediction; ties count in the label's favour).
// NaN scores rank first, as torch.topk puts them: a NaN label score ranks
// last (a diverged model is never right), a NaN elsewhere ranks ahead of it.
func Rank(logits []float32, label int) int {
	if math.IsNaN(float64(logits[label])) {
		return len(logits)
	}
	r := 0
	for j, v := range logits {
		if j != label && (v > logits[label] || math.IsNaN(float64(v))) {
			r++
		}
	}
	return r
}
