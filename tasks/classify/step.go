package classify

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/optim"
)

// Batch is one classification batch as the step takes it.
type Batch struct {
	// B is the number of images.
	B int
	// Images holds B x Size x Size x Channels values.
	Images []float32
	// Labels holds the B class ids.
	Labels []int32
	// Targets, when set, holds B x classes soft targets (Mixup/CutMix),
	// used instead of Labels.
	Targets []float32
}

// TrainStep is the classification task's training step on its own, without
// data, loop or evaluation: the task runs its steps through it, and `peco
// bench` times it. It owns the network, its store and the optimizer.
type TrainStep struct {
	Net   *Network
	Store *model.Store
	// From is the run the backbone was initialised from (nil: scratch);
	// FromReport says what was loaded from it.
	From       *ckpt.Run
	FromReport *ckpt.LoadReport
	// Smoothing is the loss's label smoothing (for soft targets).
	Smoothing float64

	size, channels, classes, totalSteps int
	opt                                 optim.Optimizer
	mixing                              bool
	trainer                             *train.Trainer
}

// NewTrainStep builds cfg's backbone, head, loss and optimizer for
// numClasses classes on a fresh store seeded with seed, initialising the
// backbone from cfg.From when set; totalSteps is the schedule's length.
func NewTrainStep(backend compute.Backend, cfg Config, seed int64, numClasses, totalSteps int) (*TrainStep, error) {
	backbone, err := cfg.Backbone.Build()
	if err != nil {
		return nil, fmt.Errorf("backbone: %w", err)
	}
	loss, err := cfg.Loss.Build()
	if err != nil {
		return nil, fmt.Errorf("loss: %w", err)
	}
	if _, external := loss.(core.ExternalLoss); external {
		return nil, fmt.Errorf("loss: %s runs outside the graph (a plugin); classification computes its loss in the graph (the mim task's loss takes plugins)", cfg.Loss.Type)
	}
	opt, err := cfg.Optimizer.Build()
	if err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	s := &TrainStep{
		Net:   &Network{Backbone: backbone, NumClasses: numClasses, Pool: cfg.Pool, Frozen: cfg.Mode == ModeLinearProbe, ProbeLayer: cfg.ProbeLayer},
		Store: model.NewStore(), size: cfg.Data.Augment.Size, classes: numClasses, totalSteps: totalSteps,
		opt: opt, mixing: cfg.Mix.Enabled(),
	}
	s.Store.SetParam(model.ParamInitialSeed, seed)
	adamw := opt.New()
	if cfg.LayerDecay != 1 {
		lb, ok := backbone.(core.LayeredBackbone)
		if !ok {
			return nil, fmt.Errorf("layer_decay needs a backbone made of blocks (core.LayeredBackbone, e.g. vit), got %s", cfg.Backbone.Type)
		}
		adamw.LRScale = optim.LayerDecay(cfg.LayerDecay, lb.NumLayers(), lb.LayerID)
	}
	if cfg.From != "" {
		if s.From, err = ckpt.OpenRun(cfg.From); err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
		adapter, _ := backbone.(core.PositionAdapter)
		if s.FromReport, err = s.From.LoadBackbone(backend, s.Store, backbone, ckpt.BackboneScope, ckpt.BackboneScope, adapter); err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
	}
	if s.Net.Frozen {
		adamw.Trainable = func(p string) bool { return strings.HasPrefix(p, "/head/") }
	}
	if sm, ok := loss.(core.LabelSmoother); ok {
		s.Smoothing = sm.LabelSmoothing()
	}
	net, mixing := s.Net, s.mixing
	s.trainer = train.NewTrainer(backend, s.Store,
		func(scope *model.Scope, images *Node) *Node {
			return net.Logits(scope, images, scope.IsTraining(images.Graph()))
		},
		func(labels, preds []*Node) *Node {
			in := map[string]*Node{"logits": preds[0], "labels": labels[0]}
			if mixing {
				in = map[string]*Node{"logits": preds[0], "targets": labels[0]}
			}
			l, err := loss.Compute(nil, in)
			if err != nil {
				panic(err)
			}
			return MulScalar(l, loss.Weight())
		}, adamw, nil, nil)
	return s, nil
}

// Mixing reports whether the step takes soft targets (Mixup/CutMix on).
func (s *TrainStep) Mixing() bool { return s.mixing }

// Run trains on one batch at optimizer step `step` (the learning rate
// follows the schedule) and returns loss, lr and grad_norm.
func (s *TrainStep) Run(b Batch, step int) (map[string]float64, error) {
	if len(b.Images) == 0 || len(b.Images)%(b.B*s.size*s.size) != 0 {
		return nil, fmt.Errorf("classify: batch of %d has %d image values", b.B, len(b.Images))
	}
	ch := len(b.Images) / (b.B * s.size * s.size)
	images := tensors.FromFlatDataAndDimensions(b.Images, b.B, s.size, s.size, ch)
	labels := tensors.FromFlatDataAndDimensions(b.Labels, b.B)
	if s.mixing {
		if len(b.Targets) != b.B*s.classes {
			return nil, fmt.Errorf("classify: Mixup/CutMix is on: the batch needs %d soft targets, has %d", b.B*s.classes, len(b.Targets))
		}
		labels = tensors.FromFlatDataAndDimensions(b.Targets, b.B, s.classes)
	}
	lr := s.opt.BaseLR() * s.opt.Schedule().Factor(step, s.totalSteps)
	if err := optim.SetLR(s.Store, lr); err != nil {
		return nil, err
	}
	m, err := s.trainer.TrainStep(train.Batch{Inputs: []*tensors.Tensor{images}, Labels: []*tensors.Tensor{labels}})
	if err != nil {
		return nil, err
	}
	return map[string]float64{"loss": float64(tensors.ToScalar[float32](m[0])), "lr": lr, "grad_norm": optim.GradNorm(s.Store)}, nil
}
