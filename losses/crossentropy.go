// Package losses holds the loss terms of PeCo/BEiT experiments, each a
// registered core.Loss component with a weight: classification and
// masked-token cross-entropy here; reconstruction, VQ, perceptual,
// adversarial and KL terms for the tokenizers.
package losses

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// CrossEntropyConfig configures softmax cross-entropy.
type CrossEntropyConfig struct {
	Weight         float64 `mapstructure:"weight" doc:"weight of the term in a composite loss"`
	LabelSmoothing float64 `mapstructure:"label_smoothing" doc:"mass spread uniformly over all classes (0.1 in BEiT fine-tuning)"`
}

// Validate checks the ranges.
func (c *CrossEntropyConfig) Validate() error {
	if c.LabelSmoothing < 0 || c.LabelSmoothing >= 1 {
		return fmt.Errorf("label_smoothing must be in [0, 1), got %v", c.LabelSmoothing)
	}
	return nil
}

// CrossEntropy is softmax cross-entropy averaged over the batch. Inputs:
// "logits" [N, K] and either "labels" [N] (int32 class ids, smoothed by
// label_smoothing) or "targets" [N, K] (a probability per class, e.g. from
// Mixup/CutMix). An optional "weights" [N] (float) averages a subset, e.g.
// masked positions only.
type CrossEntropy struct{ Config CrossEntropyConfig }

// Weight implements core.Loss.
func (l CrossEntropy) Weight() float64 { return l.Config.Weight }

// Compute implements core.Loss.
func (l CrossEntropy) Compute(_ *model.Scope, in map[string]*Node) (*Node, error) {
	logits := in["logits"]
	if logits == nil {
		return nil, fmt.Errorf("cross_entropy: missing input \"logits\"")
	}
	if logits.Rank() != 2 {
		return nil, fmt.Errorf("cross_entropy: logits must be [N, classes], got %s", logits.Shape())
	}
	k := logits.Shape().Dimensions[1]
	targets := in["targets"]
	if targets == nil {
		labels := in["labels"]
		if labels == nil {
			return nil, fmt.Errorf("cross_entropy: needs \"labels\" or \"targets\"")
		}
		targets = SmoothedOneHot(labels, k, l.Config.LabelSmoothing, logits.DType())
	}
	logp := LogSoftmax(logits, -1)
	perRow := Neg(ReduceSum(Mul(targets, logp), -1))
	if w := in["weights"]; w != nil {
		w = ConvertDType(w, perRow.DType())
		return Div(ReduceAllSum(Mul(perRow, w)), Max(ReduceAllSum(w), ScalarOne(w.Graph(), w.DType()))), nil
	}
	return ReduceAllMean(perRow), nil
}

// SmoothedOneHot maps class ids [N] to targets [N, k]: 1-eps+eps/k on the
// class, eps/k elsewhere (timm's LabelSmoothingCrossEntropy).
func SmoothedOneHot(labels *Node, k int, eps float64, dtype dtypes.DType) *Node {
	oh := OneHot(labels, k, dtype)
	if eps == 0 {
		return oh
	}
	return AddScalar(MulScalar(oh, 1-eps), eps/float64(k))
}

func init() {
	registry.Register(core.Losses, "cross_entropy", "softmax cross-entropy with label smoothing (classification, masked tokens)",
		func() CrossEntropyConfig { return CrossEntropyConfig{Weight: 1} },
		func(c CrossEntropyConfig) (core.Loss, error) { return CrossEntropy{c}, nil })
}

// LabelSmoothing is the label smoothing the loss applies to "labels"; a task
// that builds soft "targets" itself (Mixup/CutMix) applies the same
// (core.LabelSmoother).
func (l CrossEntropy) LabelSmoothing() float64 { return l.Config.LabelSmoothing }

var _ core.LabelSmoother = CrossEntropy{}
