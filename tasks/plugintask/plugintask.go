// Package plugintask is the host side of task plugins (`type:
// plugin:<name>` where a task is allowed). A task plugin provides data and
// metrics over the plugin protocol: it describes its splits, image shape,
// head and metrics (Describe), streams samples (Samples) and scores
// predictions (Evaluate). The host owns the model — a backbone of peco's
// registry with one of the built-in heads the plugin asks for
// (classification, multi-label or dense per-patch classification) — and the
// training loop (run.Loop: logging, checkpoints, best.ckpt by the plugin's
// primary metric, exact --resume).
//
// A config names the plugin's own keys beside `type:` and the host's keys
// under `train:`:
//
//	task:
//	  type: plugin:fashion_mnist
//	  train_size: 2000          # the plugin's keys (its schema)
//	  size: 32
//	  train:                    # the host's keys (TrainConfig)
//	    epochs: 5
//	    batch_size: 64
//	    backbone: {type: vit, image_size: 32, patch_size: 4, in_channels: 1, dim: 64, depth: 4, heads: 4}
//
// The backbone's weights are checkpointed under scope "/backbone" (as the
// mim and classification tasks do), so a later run can start from them with
// `from:`.
package plugintask

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/optim"
	"github.com/peco-dev/peco/plugins/host"
	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
	"github.com/peco-dev/peco/registry"
)

// TrainConfig holds the host's keys of a task plugin, under `train:`.
type TrainConfig struct {
	run.LoopConfig `mapstructure:",squash"`
	Backbone       registry.Spec[core.Backbone]   `mapstructure:"backbone" doc:"feature network; a vit's image_size and in_channels must match the plugin's images (its height, width and channels)"`
	From           string                         `mapstructure:"from" doc:"an earlier run (a mim, classification or plugin-task run: runs/<name>, a run directory or a .ckpt) whose /backbone weights initialise the backbone; empty = from scratch"`
	Pool           string                         `mapstructure:"pool" doc:"features of the classification and multi-label heads: mean (patch tokens, then LayerNorm, as BEiT) or cls"`
	Optimizer      registry.Spec[optim.Optimizer] `mapstructure:"optimizer" doc:"optimizer and lr schedule"`
	BatchSize      int                            `mapstructure:"batch_size" doc:"training batch size (the last partial batch of an epoch is dropped)"`
	EvalBatchSize  int                            `mapstructure:"eval_batch_size" doc:"evaluation batch size"`
	Normalize      string                         `mapstructure:"normalize" doc:"normalisation of the plugin's [0, 1] images before the backbone: imagenet, half ([-1, 1]) or none"`
	MaxTrain       int                            `mapstructure:"max_train" doc:"train on a seeded subset of this many samples of the train split (0 = all)"`
	MaxEval        int                            `mapstructure:"max_eval" doc:"evaluate on a seeded subset of this many samples of the eval split (0 = all)"`
}

// Validate checks the host's keys.
func (c *TrainConfig) Validate() error {
	if err := c.LoopConfig.Validate(); err != nil {
		return err
	}
	switch {
	case !c.Backbone.IsSet():
		return errors.New("backbone must be set")
	case !c.Optimizer.IsSet():
		return errors.New("optimizer must be set")
	case c.Pool != "mean" && c.Pool != "cls":
		return fmt.Errorf("pool must be mean or cls, got %q", c.Pool)
	case c.BatchSize <= 0 || c.EvalBatchSize <= 0:
		return fmt.Errorf("batch_size and eval_batch_size must be > 0, got %d and %d", c.BatchSize, c.EvalBatchSize)
	case c.MaxTrain < 0 || c.MaxEval < 0:
		return fmt.Errorf("max_train and max_eval must be >= 0 (0 = all), got %d and %d", c.MaxTrain, c.MaxEval)
	}
	if _, err := data.NewNormalizer(c.Normalize); err != nil {
		return fmt.Errorf("normalize: %w", err)
	}
	return nil
}

// DefaultTrain is one epoch of batches of 64 (evaluation 256) on a ViT
// (the vit backbone's defaults: ViT-Tiny, 224x224x3, patch 16) with AdamW
// (lr 1e-3, cosine), mean pooling and ImageNet normalisation.
func DefaultTrain() TrainConfig {
	opt := optim.DefaultAdamW()
	opt.LR = 1e-3
	return TrainConfig{
		LoopConfig:    run.DefaultLoop(),
		Backbone:      registry.Spec[core.Backbone]{Type: "vit", Config: registry.MustDefaults(core.Backbones, "vit")},
		Pool:          "mean",
		Optimizer:     registry.Spec[optim.Optimizer]{Type: "adamw", Config: &opt},
		BatchSize:     64,
		EvalBatchSize: 256,
		Normalize:     data.NormalizeImageNet,
	}
}

// Config is the config of a task plugin: the host's `plugin:` settings and
// the plugin's own keys (host.Params), and the training settings under
// `train:`.
type Config struct {
	host.Params `mapstructure:",squash"`
	Train       TrainConfig `mapstructure:"train" doc:"the host's side: backbone, optimizer, batches, epochs, normalisation"`
}

// Validate checks the host's keys.
func (c *Config) Validate() error {
	if err := c.Plugin.Validate(); err != nil {
		return fmt.Errorf("plugin: %w", err)
	}
	if err := c.Train.Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

// BuildComponent implements registry.Builder: the task, its plugin process
// prepared (Run starts it).
func (c *Config) BuildComponent() (any, error) {
	proc, err := c.NewProcess()
	if err != nil {
		return nil, err
	}
	bin := c.Binary()
	return &Task{cfg: c.Train, proc: proc, name: bin.Name}, nil
}

func init() {
	host.RegisterAdapter(core.Tasks.Kind(), host.Adapter{Kind: pb.Kind_KIND_TASK, Reserved: []string{"train"},
		NewConfig: func(p host.Params) any { return &Config{Params: p, Train: DefaultTrain()} }})
}

// Task is a task plugin as a core.Task.
type Task struct {
	cfg  TrainConfig
	proc *host.Process
	name string
}

var _ core.Task = (*Task)(nil)

// Process returns the plugin's process (for tests and diagnostics).
func (t *Task) Process() *host.Process { return t.proc }

// Streams of the random decisions of the task (beside data.StreamShuffle).
const (
	streamTrainSubset = 0x7074_7375_6274 // "ptsubt"
	streamEvalSubset  = 0x7074_7375_6265 // "ptsube"
)

// Run implements core.Task.
func (t *Task) Run(ctx context.Context, env *core.Env) error {
	cfg := t.cfg
	if err := t.proc.Start(env.Seed, env.Path(core.PluginLogFile)); err != nil {
		return err
	}
	defer t.proc.Close()

	spec, err := t.describe(ctx)
	if err != nil {
		return err
	}
	backbone, err := cfg.Backbone.Build()
	if err != nil {
		return fmt.Errorf("train.backbone: %w", err)
	}
	head, err := t.checkSpec(spec, backbone)
	if err != nil {
		return err
	}
	trainIdx := subset(spec.size(spec.TrainSplit), cfg.MaxTrain, env.Seed, streamTrainSubset)
	evalIdx := subset(spec.size(spec.EvalSplit), cfg.MaxEval, env.Seed, streamEvalSubset)
	steps := len(trainIdx) / cfg.BatchSize
	if steps == 0 {
		return fmt.Errorf("plugin %q: the train split %q has %d samples (train.max_train %d), fewer than train.batch_size %d",
			t.name, spec.TrainSplit, len(trainIdx), cfg.MaxTrain, cfg.BatchSize)
	}
	norm, _ := data.NewNormalizer(cfg.Normalize) // checked by Validate
	opt, err := cfg.Optimizer.Build()
	if err != nil {
		return fmt.Errorf("train.optimizer: %w", err)
	}

	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, env.Seed)
	if cfg.From != "" {
		from, err := ckpt.OpenRun(cfg.From)
		if err != nil {
			return fmt.Errorf("train.from: %w", err)
		}
		adapter, _ := backbone.(core.PositionAdapter)
		rep, err := from.LoadBackbone(env.Backend, store, backbone, ckpt.BackboneScope, ckpt.BackboneScope, adapter)
		if err != nil {
			return fmt.Errorf("train.from: %w", err)
		}
		env.Printf("%s\n", rep)
	}
	net := &Network{Backbone: backbone, Head: head, Pool: cfg.Pool}
	ts, err := newStep(env.Backend, store, net, opt, cfg.Epochs*steps)
	if err != nil {
		return err
	}

	env.Printf("plugin task %s: %s head, %d classes, %d train (%s) / %d eval (%s) samples, %dx%dx%d images, %d steps/epoch x %d epochs\n",
		t.name, headName(head.Type), head.Classes, len(trainIdx), spec.TrainSplit, len(evalIdx), spec.EvalSplit,
		head.Height, head.Width, head.Channels, steps, cfg.Epochs)

	loop := &run.Loop{Config: cfg.LoopConfig, Env: env, Store: store, StepsPerEpoch: steps, BatchSize: cfg.BatchSize}
	st, err := loop.Restore()
	if err != nil {
		return err
	}
	var order []int
	orderEpoch := -1
	loop.Step = func(s *run.LoopState) (map[string]float64, error) {
		if orderEpoch != s.Epoch {
			order = epochOrder(trainIdx, env.Seed, s.Epoch)
			orderEpoch = s.Epoch
		}
		idx := order[s.Batch*cfg.BatchSize : (s.Batch+1)*cfg.BatchSize]
		b, err := t.samples(ctx, head, spec.TrainSplit, idx, s.Epoch, s.Step)
		if err != nil {
			return nil, err
		}
		normalize(b.images, head.Channels, norm)
		return ts.runTrain(b, int(s.Step))
	}
	loop.Status = func(m map[string]float64) string { return fmt.Sprintf("loss %.4f", m["loss"]) }
	var last map[string]float64
	loop.EndEpoch = func(epoch int) (map[string]float64, float64, error) {
		t0 := time.Now()
		atStep := int64((epoch + 1) * steps)
		metrics, err := t.evaluate(ctx, ts, head, spec, evalIdx, norm, epoch, atStep)
		if err != nil {
			return nil, 0, err
		}
		m := map[string]float64{"eval_seconds": time.Since(t0).Seconds()}
		for k, v := range metrics {
			m["val_"+k] = v
		}
		env.Printf("epoch %d: %s\n", epoch, formatMetrics(metrics, spec.Metrics))
		last = m
		return m, metrics[spec.PrimaryMetric], nil
	}
	t0 := time.Now()
	st, err = loop.Run(ctx, st)
	if err != nil {
		return err
	}
	if last == nil {
		// A resumed run that had finished trains nothing: its final metrics
		// are the last evaluation it logged.
		last = lastEval(env.Path(core.MetricsFile))
	}
	summary := map[string]any{"steps": st.Step, "best_" + spec.PrimaryMetric: st.Best, "best_epoch": st.BestEpoch,
		"train_seconds": time.Since(t0).Seconds(), "plugin": t.name}
	for k, v := range last {
		summary["final_"+k] = v
	}
	env.Printf("done: best %s %.4g (epoch %d), run directory %s\n", spec.PrimaryMetric, st.Best, st.BestEpoch, env.Dir)
	return env.Record.SetSummary(summary)
}

// lastEval returns the metrics of the last eval record of a metrics log
// (nil when there is none).
func lastEval(path string) map[string]float64 {
	recs, err := run.ReadMetrics(path)
	if err != nil {
		return nil
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i]["phase"] != "eval" {
			continue
		}
		m := map[string]float64{}
		for k, v := range recs[i] {
			if f, ok := v.(float64); ok && k != "step" && k != "epoch" {
				m[k] = f
			}
		}
		return m
	}
	return nil
}

// formatMetrics writes metrics in the plugin's order, then any others.
func formatMetrics(m map[string]float64, order []string) string {
	var parts []string
	seen := map[string]bool{}
	for _, k := range order {
		if v, ok := m[k]; ok && !seen[k] {
			parts = append(parts, fmt.Sprintf("%s %.4g", k, v))
			seen[k] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !seen[k] {
			parts = append(parts, fmt.Sprintf("%s %.4g", k, m[k]))
		}
	}
	return strings.Join(parts, "  ")
}

// taskSpec is the plugin's TaskSpec with its split sizes by name (filled
// in by checkSpec).
type taskSpec struct {
	*pb.TaskSpec
	sizes map[string]int
}

func (s taskSpec) size(split string) int { return s.sizes[split] }

// describe asks the plugin for its TaskSpec.
func (t *Task) describe(ctx context.Context) (taskSpec, error) {
	var spec *pb.TaskSpec
	err := t.proc.Call(ctx, "Describe", -1, func(ctx context.Context, c *sdk.Clients) error {
		var err error
		spec, err = c.Task.Describe(ctx, &pb.DescribeRequest{})
		return err
	})
	if err != nil {
		return taskSpec{}, err
	}
	return taskSpec{TaskSpec: spec, sizes: map[string]int{}}, nil
}

// checkSpec checks the plugin's TaskSpec against itself and the backbone,
// and returns the head to build.
func (t *Task) checkSpec(spec taskSpec, backbone core.Backbone) (Head, error) {
	bad := func(format string, args ...any) (Head, error) {
		return Head{}, t.proc.Errorf("Describe", -1, format, args...)
	}
	h := Head{Type: spec.Head, Classes: int(spec.Classes), Height: int(spec.Height), Width: int(spec.Width), Channels: int(spec.Channels)}
	switch spec.Head {
	case pb.HeadType_HEAD_TYPE_CLASSIFICATION, pb.HeadType_HEAD_TYPE_MULTILABEL, pb.HeadType_HEAD_TYPE_DENSE:
	default:
		return bad("asks for head %v, which this peco does not have (it has classification, multilabel and dense)", spec.Head)
	}
	if h.Classes <= 0 {
		return bad("declares %d classes, want > 0", h.Classes)
	}
	if h.Height <= 0 || h.Width <= 0 || h.Channels <= 0 {
		return bad("declares images of %dx%dx%d, want positive height, width and channels", h.Height, h.Width, h.Channels)
	}
	var names []string
	for _, sp := range spec.Splits {
		if sp.Name == "" {
			return bad("declares a split without a name")
		}
		if _, dup := spec.sizes[sp.Name]; dup {
			return bad("declares split %q twice", sp.Name)
		}
		if sp.Size < 0 || sp.Size > math.MaxInt32 {
			return bad("declares split %q of %d samples", sp.Name, sp.Size)
		}
		spec.sizes[sp.Name] = int(sp.Size)
		names = append(names, sp.Name)
	}
	for _, s := range []struct{ role, name string }{{"train_split", spec.TrainSplit}, {"eval_split", spec.EvalSplit}} {
		n, ok := spec.sizes[s.name]
		switch {
		case s.name == "":
			return bad("declares no %s", s.role)
		case !ok:
			return bad("its %s %q is not one of its splits (%s)", s.role, s.name, strings.Join(names, ", "))
		case n == 0:
			return bad("its %s %q has no samples", s.role, s.name)
		}
	}
	if spec.PrimaryMetric == "" {
		return bad("declares no primary_metric (the metric that picks best.ckpt)")
	}
	if !slices.Contains(spec.Metrics, spec.PrimaryMetric) {
		return bad("its primary_metric %q is not one of its metrics (%s)", spec.PrimaryMetric, strings.Join(spec.Metrics, ", "))
	}
	pbb, isPatch := backbone.(core.PatchBackbone)
	if isPatch {
		bh, bw, bc := pbb.InputShape()
		if bh != h.Height || bw != h.Width || bc != h.Channels {
			return Head{}, fmt.Errorf("plugin %q serves %dx%dx%d images (height x width x channels) but the backbone %q takes %dx%dx%d: set train.backbone's input size and channels to match (a vit's image_size and in_channels), or the plugin's keys that set its images",
				t.name, h.Height, h.Width, h.Channels, t.cfg.Backbone.Type, bh, bw, bc)
		}
		h.GridH, h.GridW = pbb.PatchGrid()
	}
	if h.Type == pb.HeadType_HEAD_TYPE_DENSE && !isPatch {
		return Head{}, fmt.Errorf("plugin %q asks for the dense head (one prediction per patch), which needs a backbone with a patch grid (core.PatchBackbone, e.g. a vit); %q (%T) is not one",
			t.name, t.cfg.Backbone.Type, backbone)
	}
	return h, nil
}

func headName(h pb.HeadType) string {
	switch h {
	case pb.HeadType_HEAD_TYPE_CLASSIFICATION:
		return "classification"
	case pb.HeadType_HEAD_TYPE_MULTILABEL:
		return "multilabel"
	case pb.HeadType_HEAD_TYPE_DENSE:
		return "dense"
	}
	return h.String()
}

// subset returns the sample indices of a split of n samples: all of them,
// or a seeded subset of max of them (in increasing order).
func subset(n, max int, seed int64, stream uint64) []int {
	if max <= 0 || max >= n {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	idx := data.StreamRNG(seed, stream, 0, 0).Perm(n)[:max]
	slices.Sort(idx)
	return idx
}

// epochOrder is the training order of an epoch: a permutation of idx drawn
// from (seed, epoch), the same in a resumed run.
func epochOrder(idx []int, seed int64, epoch int) []int {
	perm := data.StreamRNG(seed, data.StreamShuffle, epoch, 0).Perm(len(idx))
	out := make([]int, len(idx))
	for i, p := range perm {
		out[i] = idx[p]
	}
	return out
}

// normalize applies a normalisation preset in place to HWC images in [0,
// 1] of ch channels, as data.Normalizer.Apply does to 8-bit images: one
// channel uses the mean of the three statistics, channels beyond the third
// reuse the third's.
func normalize(pix []float32, ch int, n data.Normalizer) {
	scale := make([]float32, ch)
	bias := make([]float32, ch)
	for c := range ch {
		m, s := n.Mean[min(c, 2)], n.Std[min(c, 2)]
		if ch == 1 {
			m = (n.Mean[0] + n.Mean[1] + n.Mean[2]) / 3
			s = (n.Std[0] + n.Std[1] + n.Std[2]) / 3
		}
		scale[c], bias[c] = 1/s, -m/s
	}
	for i := range pix {
		c := i % ch
		pix[i] = pix[i]*scale[c] + bias[c]
	}
}
