// Package detect is the COCO object detection and instance segmentation
// task ("coco"): a ViT backbone with ViTDet's simple feature pyramid, an
// FCOS head (anchor-free: per-location class scores with the sigmoid focal
// loss, ltrb box distances with the GIoU loss, centerness) and YOLACT's
// prototype masks (model.go, loss.go). Targets are assigned on the host
// (targets.go); images are letterboxed (resized keeping their aspect ratio
// and padded to a square); predictions are decoded, suppressed per class
// and mapped back to the original images (postprocess.go), scored by COCO
// box and mask AP (metrics.EvaluateCOCO), written as COCO result JSON and
// drawn as overlays (eval.go).
//
// FCOS + prototype masks rather than the paper's Mask R-CNN: a real dense
// detector that needs no proposals or RoIAlign, so every graph keeps
// static shapes (a fixed number of sampled positives carries the mask
// loss), and light enough to train on a CPU.
package detect

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/optim"
	"github.com/peco-dev/peco/registry"
)

// DataConfig is the detection data: datasets, input size, augmentation
// and batching.
type DataConfig struct {
	Train     []registry.Spec[data.Dataset] `mapstructure:"train" doc:"training splits (coco datasets), concatenated; their categories are matched to data.val's by COCO category id"`
	Val       registry.Spec[data.Dataset]   `mapstructure:"val" doc:"validation split (a coco dataset): the categories, and the ground truth of the COCO evaluation"`
	Size      int                           `mapstructure:"size" doc:"input side S in pixels (the backbone's image size): images are resized, longer side S, and padded to S x S"`
	Scale     [2]float64                    `mapstructure:"scale" doc:"training crop area range as a fraction of the image ([1, 1] with ratio [r, r] for r the image's own aspect: no crop)"`
	Ratio     [2]float64                    `mapstructure:"ratio" doc:"training crop aspect-ratio range width/height"`
	HFlip     float64                       `mapstructure:"hflip" doc:"probability of a horizontal flip"`
	Normalize string                        `mapstructure:"normalize" doc:"image normalisation: imagenet, half or none"`
	BatchSize int                           `mapstructure:"batch_size" doc:"training batch size"`
	EvalBatch int                           `mapstructure:"eval_batch_size" doc:"images per evaluation batch"`
	Workers   int                           `mapstructure:"workers" doc:"decoding/augmentation goroutines (0 = number of CPUs)"`
	Repeat    int                           `mapstructure:"repeat" doc:"passes over the training images per epoch (an evaluation follows each epoch)"`
	MaxVal    int                           `mapstructure:"max_val" doc:"a seeded subset of this many validation images (0 = all)"`
}

// HeadConfig is the pyramid, the FCOS head and the prototype branch.
type HeadConfig struct {
	Strides      []int     `mapstructure:"strides" doc:"pyramid strides in input pixels, finest first, powers of two times or fractions of the patch size (ViTDet/FCOS: 8, 16, 32 for patch 16)"`
	SizeBounds   []float64 `mapstructure:"size_bounds" doc:"max(l, t, r, b) bounds between consecutive levels (FCOS's size ranges; one fewer than strides)"`
	CenterRadius float64   `mapstructure:"center_radius" doc:"center sampling: positives within this many strides of the box centre (FCOS: 1.5; 0: anywhere inside the box)"`
	Channels     int       `mapstructure:"channels" doc:"width of the pyramid and the head"`
	Groups       int       `mapstructure:"groups" doc:"GroupNorm groups"`
	TowerDepth   int       `mapstructure:"tower_depth" doc:"3x3 conv layers of each head tower (FCOS: 4)"`
	Prototypes   int       `mapstructure:"prototypes" doc:"prototype masks (YOLACT: 32)"`
	MaskSamples  int       `mapstructure:"mask_samples" doc:"positive locations per image sampled for the mask loss (padded, so shapes stay static)"`
	Prior        float64   `mapstructure:"prior" doc:"initial classifier foreground probability (FCOS: 0.01)"`
}

// EvalConfig is the inference and the evaluation output.
type EvalConfig struct {
	PostConfig   `mapstructure:",squash"`
	Overlays     int     `mapstructure:"overlays" doc:"validation images drawn (ground truth | prediction, boxes, masks, class names) after each evaluation"`
	OverlayScore float64 `mapstructure:"overlay_score" doc:"detections drawn on overlays need this score"`
}

// Config configures the coco task.
type Config struct {
	run.LoopConfig `mapstructure:",squash"`
	Data           DataConfig                     `mapstructure:"data" doc:"datasets, input size, augmentation and batching"`
	Backbone       registry.Spec[core.Backbone]   `mapstructure:"backbone" doc:"the ViT (a core.PatchBackbone)"`
	From           string                         `mapstructure:"from" doc:"an earlier run (mim or classification) whose /backbone weights initialise the backbone; empty = from scratch"`
	Head           HeadConfig                     `mapstructure:"head" doc:"pyramid, FCOS head and prototype masks"`
	Loss           LossWeights                    `mapstructure:"loss" doc:"loss terms"`
	Optimizer      registry.Spec[optim.Optimizer] `mapstructure:"optimizer" doc:"optimizer and lr schedule"`
	Eval           EvalConfig                     `mapstructure:"eval" doc:"inference and evaluation output"`
}

// Validate checks the settings.
func (c *Config) Validate() error {
	h := c.Head
	switch {
	case len(c.Data.Train) == 0:
		return fmt.Errorf("data.train must list at least one dataset")
	case c.Data.Size < 32:
		return fmt.Errorf("data.size must be >= 32, got %d", c.Data.Size)
	case c.Data.BatchSize < 1 || c.Data.EvalBatch < 1 || c.Data.Repeat < 1:
		return fmt.Errorf("data.batch_size, data.eval_batch_size and data.repeat must be >= 1")
	case c.Data.Scale[0] <= 0 || c.Data.Scale[0] > c.Data.Scale[1] || c.Data.Scale[1] > 1:
		return fmt.Errorf("data.scale must be 0 < lo <= hi <= 1, got %v", c.Data.Scale)
	case c.Data.Ratio[0] <= 0 || c.Data.Ratio[0] > c.Data.Ratio[1]:
		return fmt.Errorf("data.ratio must be 0 < lo <= hi, got %v", c.Data.Ratio)
	case c.Data.HFlip < 0 || c.Data.HFlip > 1:
		return fmt.Errorf("data.hflip must be in [0, 1], got %v", c.Data.HFlip)
	case len(h.Strides) == 0 || h.Strides[0] < 2:
		return fmt.Errorf("head.strides must list strides >= 2, got %v", h.Strides)
	case !slices.IsSorted(h.Strides):
		return fmt.Errorf("head.strides must be finest first, got %v", h.Strides)
	case len(h.SizeBounds) != len(h.Strides)-1:
		return fmt.Errorf("head.size_bounds needs %d bounds for %d strides, got %v", len(h.Strides)-1, len(h.Strides), h.SizeBounds)
	case h.Channels < 1 || h.Groups < 1 || h.Channels%h.Groups != 0:
		return fmt.Errorf("head.channels must be a positive multiple of head.groups, got %d and %d", h.Channels, h.Groups)
	case h.TowerDepth < 0 || h.Prototypes < 1 || h.MaskSamples < 1:
		return fmt.Errorf("head.tower_depth must be >= 0, head.prototypes and head.mask_samples >= 1")
	case h.Prior <= 0 || h.Prior >= 1:
		return fmt.Errorf("head.prior must be in (0, 1), got %v", h.Prior)
	case h.CenterRadius < 0:
		return fmt.Errorf("head.center_radius must be >= 0, got %v", h.CenterRadius)
	case c.Loss.FocalAlpha < 0 || c.Loss.FocalAlpha > 1 || c.Loss.FocalGamma < 0:
		return fmt.Errorf("loss.focal_alpha must be in [0, 1] and loss.focal_gamma >= 0")
	case c.Eval.TopK < 1 || c.Eval.MaxDets < 1 || c.Eval.NMSThresh <= 0 || c.Eval.NMSThresh > 1 || c.Eval.ScoreThresh < 0:
		return fmt.Errorf("eval: top_k and max_dets must be >= 1, nms_thresh in (0, 1], score_thresh >= 0")
	}
	for i := 1; i < len(h.SizeBounds); i++ {
		if h.SizeBounds[i] <= h.SizeBounds[i-1] {
			return fmt.Errorf("head.size_bounds must increase, got %v", h.SizeBounds)
		}
	}
	if _, err := data.NewNormalizer(c.Data.Normalize); err != nil {
		return fmt.Errorf("data.normalize: %w", err)
	}
	return nil
}

// DefaultConfig is 1 epoch of 160-pixel letterboxed inputs in batches of
// 8 on the vit defaults, FCOS's strides 8/16/32 with center sampling, a
// 96-wide head of 2-conv towers, 16 prototypes, AdamW 1e-3 with cosine
// decay, FCOS's inference settings (score 0.05, 1000 per level, NMS 0.6,
// 100 per image).
func DefaultConfig() Config {
	opt := optim.DefaultAdamW()
	opt.LR = 1e-3
	return Config{
		LoopConfig: run.DefaultLoop(),
		Data: DataConfig{Size: 160, Scale: [2]float64{0.5, 1}, Ratio: [2]float64{0.75, 1.3333}, HFlip: 0.5,
			Normalize: "imagenet", BatchSize: 8, EvalBatch: 8, Repeat: 1},
		Backbone: registry.Spec[core.Backbone]{Type: "vit", Config: registry.MustDefaults(core.Backbones, "vit")},
		Head: HeadConfig{Strides: []int{8, 16, 32}, SizeBounds: []float64{16, 48}, CenterRadius: 1.5, Channels: 96, Groups: 8,
			TowerDepth: 2, Prototypes: 16, MaskSamples: 16, Prior: 0.01},
		Loss:      LossWeights{Class: 1, Box: 1, Centerness: 1, Mask: 1, FocalAlpha: 0.25, FocalGamma: 2},
		Optimizer: registry.Spec[optim.Optimizer]{Type: "adamw", Config: &opt},
		Eval: EvalConfig{PostConfig: PostConfig{ScoreThresh: 0.05, TopK: 1000, NMSThresh: 0.6, MaxDets: 100},
			Overlays: 4, OverlayScore: 0.2},
	}
}

func init() {
	registry.Register(core.Tasks, "coco",
		"COCO detection + instance segmentation: ViT + simple feature pyramid + FCOS head + YOLACT prototype masks, box and mask AP",
		DefaultConfig, func(c Config) (core.Task, error) { return &Task{cfg: c}, nil })
}

// Task is the coco task.
type Task struct{ cfg Config }

// item is one transformed training image and its targets.
type item struct {
	pix        []float32
	t          Targets
	maskLoc    []int32
	maskWeight []float32
	maskTarget []float32
	maskCrop   []float32
}

// Run implements core.Task.
func (t *Task) Run(ctx context.Context, env *core.Env) error {
	cfg := t.cfg
	val, err := openVal(cfg.Data.Val, cfg.Data.MaxVal, env.Seed+1)
	if err != nil {
		return err
	}
	train, err := openTrain(cfg.Data.Train, val)
	if err != nil {
		return err
	}
	st, err := newStep(env, cfg, len(val.coco.Classes()))
	if err != nil {
		return err
	}
	norm, _ := data.NewNormalizer(cfg.Data.Normalize)
	crop := data.RandomResizedCrop{Scale: cfg.Data.Scale, Ratio: cfg.Data.Ratio}
	flip := data.HorizontalFlip{P: cfg.Data.HFlip}
	epochData := repeated{Dataset: train, n: cfg.Data.Repeat}
	pipe, err := data.NewPipeline(&epochData, func(s data.Sample, r *rand.Rand) (item, error) {
		return st.trainItem(s, crop.Params(s.Image.H, s.Image.W, r), flip.Draw(r), norm, r)
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
	env.Printf("coco: %d classes, %d train (%s) / %d val images, %dx%d letterboxed inputs, %dx%d patches, strides %v (%d locations), %d steps/epoch x %d epochs\n",
		st.net.NumClasses, train.Len(), train.describe(), len(val.idx), st.size, st.size, st.gh, st.gw, cfg.Head.Strides, NumLocations(st.levels), steps, cfg.Epochs)
	if st.from != nil {
		env.Printf("backbone initialised from %s\n", st.from.Checkpoint)
		for _, r := range st.resized {
			env.Printf("  resized to this image size: %s\n", r)
		}
	}
	gt, err := val.groundTruth()
	if err != nil {
		return err
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
	loop.Status = func(m map[string]float64) string {
		return fmt.Sprintf("loss %.3f (cls %.3f box %.3f ctr %.3f mask %.3f)", m["loss"], m["loss_cls"], m["loss_box"], m["loss_ctr"], m["loss_mask"])
	}
	var last map[string]float64
	loop.EndEpoch = func(epoch int) (map[string]float64, float64, error) {
		t0 := time.Now()
		res, err := evaluate(env, st, cfg, val, gt, norm, epoch)
		if err != nil {
			return nil, 0, err
		}
		m := res.metrics()
		m["eval_seconds"] = time.Since(t0).Seconds()
		env.Printf("epoch %d: val box AP %.2f AP50 %.2f | mask AP %.2f AP50 %.2f (%d images, %d detections)\n", epoch,
			100*m["val_bbox_AP"], 100*m["val_bbox_AP50"], 100*m["val_segm_AP"], 100*m["val_segm_AP50"], len(val.idx), res.dets)
		last = m
		return m, m["val_bbox_AP"], nil
	}
	t0 := time.Now()
	if state, err = loop.Run(ctx, state); err != nil {
		return err
	}
	summary := map[string]any{"steps": state.Step, "best_box_ap": state.Best, "best_epoch": state.BestEpoch, "train_seconds": time.Since(t0).Seconds()}
	for k, v := range last {
		summary["final_"+k] = v
	}
	env.Printf("done: best val box AP %.2f (epoch %d), run directory %s\n", 100*state.Best, state.BestEpoch, env.Dir)
	return env.Record.SetSummary(summary)
}

// step is the model, its pyramid layout and its executions.
type step struct {
	net            *Network
	levels         []Level
	store          *model.Store
	opt            optim.Optimizer
	train, predict *model.Exec
	from           *ckpt.Run
	resized        []string // position parameters resized from the from run
	size, channels int
	gh, gw         int
	protoH         int // prototype grid side
	cfg            Config
	totalSteps     int
}

func newStep(env *core.Env, cfg Config, numClasses int) (*step, error) {
	built, err := cfg.Backbone.Build()
	if err != nil {
		return nil, fmt.Errorf("backbone: %w", err)
	}
	bb, ok := built.(core.PatchBackbone)
	if !ok {
		return nil, fmt.Errorf("backbone %q does not report its patch grid (core.PatchBackbone): the coco task needs a ViT", cfg.Backbone.Type)
	}
	h, w, c := bb.InputShape()
	if h != cfg.Data.Size || w != cfg.Data.Size {
		return nil, fmt.Errorf("data.size %d differs from the backbone's image size %dx%d", cfg.Data.Size, h, w)
	}
	gh, gw := bb.PatchGrid()
	patch := h / gh
	for _, s := range cfg.Head.Strides {
		if s%patch != 0 && patch%s != 0 || !isPow2(max(s/patch, patch/s)) {
			return nil, fmt.Errorf("head.strides %v: stride %d is not the patch size %d times or divided by a power of two", cfg.Head.Strides, s, patch)
		}
		if s > patch && gh%(s/patch) != 0 {
			return nil, fmt.Errorf("head.strides %v: the %dx%d patch grid cannot be pooled to stride %d", cfg.Head.Strides, gh, gw, s)
		}
	}
	levels, err := Levels(h, cfg.Head.Strides, cfg.Head.SizeBounds)
	if err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	opt, err := cfg.Optimizer.Build()
	if err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	net := &Network{Backbone: bb, PatchSize: patch, Strides: cfg.Head.Strides, Channels: cfg.Head.Channels, Groups: cfg.Head.Groups,
		NumClasses: numClasses, TowerDepth: cfg.Head.TowerDepth, Prototypes: cfg.Head.Prototypes, Prior: cfg.Head.Prior}
	if cfg.Head.Strides[0]%2 != 0 || h%net.ProtoStride() != 0 {
		return nil, fmt.Errorf("head.strides: the finest stride %d must be even and its half divide the input size %d (prototypes)", cfg.Head.Strides[0], h)
	}
	s := &step{net: net, levels: levels, store: model.NewStore(), opt: opt, size: h, channels: c, gh: gh, gw: gw,
		protoH: h / net.ProtoStride(), cfg: cfg}
	s.store.SetParam(model.ParamInitialSeed, env.Seed)
	if cfg.From != "" {
		if s.from, err = ckpt.OpenRun(cfg.From); err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
		adapter, _ := built.(core.PositionAdapter)
		if s.resized, err = s.from.LoadAdapted(s.store, ckpt.BackboneScope, ckpt.BackboneScope, adapter); err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
	}
	adamw := opt.New()
	if s.train, err = model.NewExec(env.Backend, s.store, func(scope *model.Scope, in []*Node) []*Node {
		o := net.Forward(scope, in[0], true)
		l := Loss(o, Batch{Class: in[1], Weight: in[2], LTRB: in[3], Centerness: in[4], MaskLoc: in[5], MaskWeight: in[6], MaskTarget: in[7], MaskCrop: in[8]}, cfg.Loss)
		adamw.UpdateGraph(scope, l.Total.Graph(), l.Total)
		return []*Node{l.Total, l.Class, l.Box, l.Centerness, l.Mask}
	}); err != nil {
		return nil, fmt.Errorf("building the training graph: %w", err)
	}
	if s.predict, err = model.NewExec(env.Backend, s.store, func(scope *model.Scope, images *Node) []*Node {
		o := net.Forward(scope, images, false)
		return []*Node{Sigmoid(o.ClassLogits), Sigmoid(o.CenternessLogits), o.LTRB, o.Coeffs, o.Protos}
	}); err != nil {
		return nil, fmt.Errorf("building the prediction graph: %w", err)
	}
	return s, nil
}

func isPow2(v int) bool { return v > 0 && v&(v-1) == 0 }

// trainItem letterboxes the crop of s (flipped or not) into the input and
// computes its targets; the mask targets are the sampled positives' GT
// masks at prototype resolution.
func (st *step) trainItem(s data.Sample, crop data.Rect, flip bool, norm data.Normalizer, r *rand.Rand) (item, error) {
	d, lb, err := LetterboxSample(s, crop, flip, st.size)
	if err != nil {
		return item{}, err
	}
	if d.Image.C != st.channels {
		return item{}, fmt.Errorf("%s: %d channels, the backbone takes %d", s.Path, d.Image.C, st.channels)
	}
	it := item{pix: PadInput(norm.Apply(d.Image, nil), lb.NH, lb.NW, d.Image.C, st.size)}
	boxes := make([]GTBox, len(d.Instances))
	hasMask := make([]bool, len(d.Instances))
	for i, in := range d.Instances {
		boxes[i] = GTBox{X0: in.Box.X, Y0: in.Box.Y, X1: in.Box.X + in.Box.W, Y1: in.Box.Y + in.Box.H, Class: in.Category, Crowd: in.IsCrowd}
		hasMask[i] = in.Mask != nil
	}
	it.t = Assign(st.levels, boxes, st.cfg.Head.CenterRadius)
	it.maskLoc, it.maskWeight = SamplePositives(&it.t, st.cfg.Head.MaskSamples, hasMask, r)
	f, ph := st.net.ProtoStride(), st.protoH
	cells := ph * ph
	it.maskTarget = make([]float32, len(it.maskLoc)*cells)
	it.maskCrop = make([]float32, len(it.maskLoc)*cells)
	canvas := make([]uint8, st.size*st.size)
	for p, loc := range it.maskLoc {
		if it.maskWeight[p] == 0 {
			continue
		}
		in := d.Instances[it.t.GT[loc]]
		clear(canvas)
		for y := range lb.NH {
			copy(canvas[y*st.size:y*st.size+lb.NW], in.Mask[y*lb.NW:(y+1)*lb.NW])
		}
		copy(it.maskTarget[p*cells:], DownsampleMask(canvas, st.size, st.size, f))
		b := boxes[it.t.GT[loc]]
		copy(it.maskCrop[p*cells:], BoxCrop(b.X0, b.Y0, b.X1, b.Y1, ph, ph, f))
	}
	return it, nil
}

// run trains on one batch at optimizer step.
func (st *step) run(items []item, step int) (map[string]float64, error) {
	lr := st.opt.BaseLR() * st.opt.Schedule().Factor(step, st.totalSteps)
	if err := optim.SetLR(st.store, lr); err != nil {
		return nil, err
	}
	in := st.batchTensors(items)
	out, err := st.train.Exec(in...)
	if err != nil {
		return nil, err
	}
	m := map[string]float64{"lr": lr, "grad_norm": optim.GradNorm(st.store)}
	for i, k := range []string{"loss", "loss_cls", "loss_box", "loss_ctr", "loss_mask"} {
		m[k] = float64(tensors.ToScalar[float32](out[i]))
	}
	if m["loss"] != m["loss"] {
		return nil, fmt.Errorf("the detection loss is NaN (cls %v box %v ctr %v mask %v)", m["loss_cls"], m["loss_box"], m["loss_ctr"], m["loss_mask"])
	}
	pos := 0
	for _, it := range items {
		pos += it.t.NumPositive()
	}
	m["positives_per_image"] = float64(pos) / float64(len(items))
	return m, nil
}

// batchTensors stacks the items into the training graph's inputs.
func (st *step) batchTensors(items []item) []any {
	b, n, p := len(items), NumLocations(st.levels), st.cfg.Head.MaskSamples
	ph := st.protoH
	var pix, weight, ltrb, ctr, mw, mt, mc []float32
	var cls, ml []int32
	for _, it := range items {
		pix = append(pix, it.pix...)
		cls = append(cls, it.t.Class...)
		weight = append(weight, it.t.Weight...)
		ltrb = append(ltrb, it.t.LTRB...)
		ctr = append(ctr, it.t.Centerness...)
		ml = append(ml, it.maskLoc...)
		mw = append(mw, it.maskWeight...)
		mt = append(mt, it.maskTarget...)
		mc = append(mc, it.maskCrop...)
	}
	return []any{
		tensors.FromFlatDataAndDimensions(pix, b, st.size, st.size, st.channels),
		tensors.FromFlatDataAndDimensions(cls, b, n),
		tensors.FromFlatDataAndDimensions(weight, b, n),
		tensors.FromFlatDataAndDimensions(ltrb, b, n, 4),
		tensors.FromFlatDataAndDimensions(ctr, b, n),
		tensors.FromFlatDataAndDimensions(ml, b, p),
		tensors.FromFlatDataAndDimensions(mw, b, p),
		tensors.FromFlatDataAndDimensions(mt, b, p, ph, ph),
		tensors.FromFlatDataAndDimensions(mc, b, p, ph, ph),
	}
}
