package losses

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// FocalConfig configures the softmax focal loss.
type FocalConfig struct {
	Weight         float64 `mapstructure:"weight" doc:"weight of the term in a composite loss"`
	Gamma          float64 `mapstructure:"gamma" doc:"focusing parameter: (1-p)^gamma down-weights well-classified rows (0 is cross-entropy)"`
	LabelSmoothing float64 `mapstructure:"label_smoothing" doc:"mass spread uniformly over all classes, as in cross_entropy"`
}

// Validate checks the ranges.
func (c *FocalConfig) Validate() error {
	if !(c.Gamma >= 0) || math.IsInf(c.Gamma, 1) {
		return fmt.Errorf("gamma must be a finite number >= 0, got %v", c.Gamma)
	}
	if c.LabelSmoothing < 0 || c.LabelSmoothing >= 1 {
		return fmt.Errorf("label_smoothing must be in [0, 1), got %v", c.LabelSmoothing)
	}
	return nil
}

// Focal is the softmax (multi-class) focal loss of Lin et al. 2017, "Focal
// Loss for Dense Object Detection": per row
//
//	FL = -sum_k t_k (1 - p_k)^gamma log p_k,  p = softmax(logits),
//
// averaged like CrossEntropy, whose inputs it takes: "logits" [N, K] and
// either "labels" [N] (int32 class ids, smoothed by label_smoothing) or
// "targets" [N, K]; an optional "weights" [N] gives sum(w FL) / max(sum(w), 1).
// With gamma 0 it is cross-entropy.
type Focal struct{ Config FocalConfig }

// Weight implements core.Loss.
func (l Focal) Weight() float64 { return l.Config.Weight }

// Compute implements core.Loss.
func (l Focal) Compute(_ *model.Scope, in map[string]*Node) (*Node, error) {
	logits := in["logits"]
	if logits == nil {
		return nil, fmt.Errorf("focal: missing input \"logits\"")
	}
	if logits.Rank() != 2 {
		return nil, fmt.Errorf("focal: logits must be [N, classes], got %s", logits.Shape())
	}
	k := logits.Shape().Dimensions[1]
	targets := in["targets"]
	if targets == nil {
		labels := in["labels"]
		if labels == nil {
			return nil, fmt.Errorf("focal: needs \"labels\" or \"targets\"")
		}
		targets = SmoothedOneHot(labels, k, l.Config.LabelSmoothing, logits.DType())
	}
	logp := LogSoftmax(logits, -1)
	terms := Mul(targets, logp)
	if g := l.Config.Gamma; g != 0 {
		terms = Mul(terms, focalModulation(OneMinus(Exp(logp)), g))
	}
	perRow := Neg(ReduceSum(terms, -1))
	if w := in["weights"]; w != nil {
		w = ConvertDType(w, perRow.DType())
		return Div(ReduceAllSum(Mul(perRow, w)), Max(ReduceAllSum(w), ScalarOne(w.Graph(), w.DType()))), nil
	}
	return ReduceAllMean(perRow), nil
}

// focalModulation is x^gamma for x = 1-p in [0, 1] and gamma > 0, with 0
// (and a zero gradient, the limit of the loss's) where x <= 0: Pow's own
// gradient gamma x^(gamma-1) is infinite there for gamma < 1, and the second
// Where keeps that branch out of the gradient.
func focalModulation(x *Node, gamma float64) *Node {
	pos := GreaterThan(x, ZerosLike(x))
	safe := Where(pos, x, OnesLike(x))
	return Where(pos, PowScalar(safe, gamma), ZerosLike(x))
}

func init() {
	registry.Register(core.Losses, "focal", "softmax focal loss (Lin et al. 2017): cross-entropy down-weighted by (1-p)^gamma",
		func() FocalConfig { return FocalConfig{Weight: 1, Gamma: 2} },
		func(c FocalConfig) (core.Loss, error) {
			if err := c.Validate(); err != nil {
				return nil, fmt.Errorf("focal: %w", err)
			}
			return Focal{c}, nil
		})
}

// LabelSmoothing is the label smoothing the loss applies to "labels"; a task
// that builds soft "targets" itself (Mixup/CutMix) applies the same
// (core.LabelSmoother).
func (l Focal) LabelSmoothing() float64 { return l.Config.LabelSmoothing }

var _ core.LabelSmoother = Focal{}
