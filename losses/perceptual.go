package losses

import (
	"errors"
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/registry"
)

// PerceptualConfig configures the perceptual loss.
type PerceptualConfig struct {
	Weight        float64                      `mapstructure:"weight" doc:"weight of the term in a composite loss (PeCo's lambda)"`
	Network       registry.Spec[core.Backbone] `mapstructure:"network" doc:"frozen feature network, e.g. {type: mobilenet_v2} or {type: vit, ...}; its variables are never trained"`
	Layers        []int                        `mapstructure:"layers" doc:"indices into the network's per-block features (negative counts from the end); empty: the final features only"`
	LayerWeights  []float64                    `mapstructure:"layer_weights" doc:"weight per entry of layers (empty: 1 each)"`
	InputNorm     string                       `mapstructure:"input_norm" doc:"normalisation of the tokenizer's images: half ([-1,1]), imagenet or none ([0,1])"`
	NetworkNorm   string                       `mapstructure:"network_norm" doc:"normalisation the network expects: imagenet, half or none"`
	Scope         string                       `mapstructure:"scope" doc:"variable scope of the network under the scope the loss gets (the tokenizer task: the root, so /perceptual)"`
	From          string                       `mapstructure:"from" doc:"a run of this project whose /backbone weights the network takes (runs/<name>, a run directory or a .ckpt), e.g. a ViT trained by the classification or MIM task; empty: the network's own weights (mobilenet_v2 from TFLite)"`
	RandomWeights bool                         `mapstructure:"random_weights" doc:"allow a network without trained weights (no from, not a network that loads its own): a random-feature perceptual loss"`
}

// RetiredKeys names the former keys of the loss.
func (c *PerceptualConfig) RetiredKeys() map[string]string {
	return map[string]string{
		"checkpoint":       "the network's run is now `from: RUN` (its /backbone weights are loaded)",
		"checkpoint_scope": "the network's weights are read from the run's /backbone scope (`from: RUN`)",
	}
}

// Validate checks the keys.
func (c *PerceptualConfig) Validate() error {
	var errs []error
	if !c.Network.IsSet() {
		errs = append(errs, errors.New("network must be set, e.g. {type: vit, ...} or {type: mobilenet_v2}"))
	}
	if len(c.LayerWeights) > 0 && len(c.LayerWeights) != len(c.Layers) {
		errs = append(errs, fmt.Errorf("layer_weights has %d entries for %d layers", len(c.LayerWeights), len(c.Layers)))
	}
	for _, n := range []string{c.InputNorm, c.NetworkNorm} {
		if _, err := data.NewNormalizer(n); err != nil || n == "" {
			errs = append(errs, fmt.Errorf("input_norm and network_norm must be imagenet, half or none, got %q", n))
		}
	}
	if c.Scope == "" {
		errs = append(errs, errors.New("scope must be set"))
	}
	return errors.Join(errs...)
}

// Perceptual is PeCo's perceptual loss: the feature distance between the
// "input" images and their "reconstruction" through a frozen network f,
//
//	sum over the chosen layers l of w_l * ||f_l(x) - f_l(x^)||^2 / (C_l H_l W_l)
//
// (the mean over the layer's elements of the squared difference, averaged
// over the batch). Both images go through the network as one batch. The
// network's variables live in their own scope (Config.Scope under the
// scope passed to Compute, /perceptual in the tokenizer task) and are marked
// non-trainable after every graph build, so no optimizer updates them (and
// a checkpoint reload, which creates variables as trainable, cannot thaw
// them); gradients still flow through the network to the reconstruction.
type Perceptual struct {
	Config  PerceptualConfig
	network core.Backbone
	from    data.Normalizer
	to      data.Normalizer
	// run holds the network's weights when Config.From is set; loaded
	// records the stores they were loaded into.
	run    *ckpt.Run
	loaded map[*model.Store]bool
}

// NewPerceptual builds the loss and its network.
func NewPerceptual(c PerceptualConfig) (*Perceptual, error) {
	net, err := c.Network.Build()
	if err != nil {
		return nil, fmt.Errorf("perceptual: network: %w", err)
	}
	from, err := data.NewNormalizer(c.InputNorm)
	if err != nil {
		return nil, err
	}
	to, err := data.NewNormalizer(c.NetworkNorm)
	if err != nil {
		return nil, err
	}
	l := &Perceptual{Config: c, network: net, from: from, to: to, loaded: map[*model.Store]bool{}}
	if c.From != "" {
		if l.run, err = ckpt.OpenRun(c.From); err != nil {
			return nil, fmt.Errorf("perceptual: from: %w", err)
		}
		ck, err := l.run.Weights()
		if err != nil {
			return nil, fmt.Errorf("perceptual: from: %w", err)
		}
		if !ck.HasScope(ckpt.BackboneScope) {
			return nil, fmt.Errorf("perceptual: from: run %s (task %q) holds no network weights under %s", c.From, l.run.TaskType(), ckpt.BackboneScope)
		}
		return l, nil
	}
	if wc, ok := net.(core.WeightCarrier); (!ok || !wc.HasWeights()) && !c.RandomWeights {
		return nil, fmt.Errorf("perceptual: the %s network has random weights: load trained ones with from: RUN (a classification or MIM run), "+
			"use a network that brings its own (mobilenet_v2), or set random_weights: true to use random features", c.Network.Type)
	}
	return l, nil
}

// Weight implements core.Loss.
func (l *Perceptual) Weight() float64 { return l.Config.Weight }

// renormalise converts images [B, H, W, C] from one channel normalisation to
// another: x01 = x*std_from + mean_from; out = (x01 - mean_to) / std_to.
func renormalise(x *Node, from, to data.Normalizer) *Node {
	c := x.Shape().Dim(-1)
	if from == to {
		return x
	}
	scale := make([]float32, c)
	bias := make([]float32, c)
	for i := range c {
		j := min(i, 2)
		scale[i] = from.Std[j] / to.Std[j]
		bias[i] = (from.Mean[j] - to.Mean[j]) / to.Std[j]
	}
	g := x.Graph()
	return Add(Mul(x, ExpandLeftToRank(Const(g, scale), x.Rank())), ExpandLeftToRank(Const(g, bias), x.Rank()))
}

// Compute implements core.Loss.
func (l *Perceptual) Compute(scope *model.Scope, in map[string]*Node) (*Node, error) {
	if scope == nil {
		return nil, errors.New("perceptual: needs a scope for its network's variables")
	}
	x, y, err := pair("perceptual", in, "input", "reconstruction")
	if err != nil {
		return nil, err
	}
	if x.Rank() != 4 {
		return nil, fmt.Errorf("perceptual: images must be [B, H, W, C], got %s", x.Shape())
	}
	b := x.Shape().Dim(0)
	both := Concatenate([]*Node{StopGradient(x), y}, 0)
	both = renormalise(both, l.from, l.to)
	ns := scope.At("%s", l.Config.Scope)
	if l.run != nil && !l.loaded[ns.Store()] {
		if err := l.run.Load(ns.Store(), ckpt.BackboneScope, ns.Scope(), true); err != nil {
			return nil, fmt.Errorf("perceptual: %w", err)
		}
		l.loaded[ns.Store()] = true
	}
	f := l.network.Forward(ns, both, core.ForwardOptions{})
	for v := range ns.IterVariables() {
		v.SetTrainable(false)
	}
	feats := []*Node{f.Tokens}
	if len(l.Config.Layers) > 0 {
		feats = feats[:0]
		for _, i := range l.Config.Layers {
			j := i
			if j < 0 {
				j += len(f.Layers)
			}
			if j < 0 || j >= len(f.Layers) {
				return nil, fmt.Errorf("perceptual: layer %d out of range: the network has %d layers", i, len(f.Layers))
			}
			feats = append(feats, f.Layers[j])
		}
	}
	var total *Node
	for i, ft := range feats {
		fx := StopGradient(SliceAxis(ft, 0, AxisRange(0, b)))
		fy := SliceAxis(ft, 0, AxisRange(b, 2*b))
		d := ReduceAllMean(Square(Sub(fx, fy)))
		if len(l.Config.LayerWeights) > 0 {
			d = MulScalar(d, l.Config.LayerWeights[i])
		}
		if total == nil {
			total = d
		} else {
			total = Add(total, d)
		}
	}
	return total, nil
}

func init() {
	registry.Register(core.Losses, "perceptual", "feature distance through a frozen network (inputs: input, reconstruction)",
		func() PerceptualConfig {
			return PerceptualConfig{Weight: 0.1, InputNorm: data.NormalizeHalf, NetworkNorm: data.NormalizeImageNet, Scope: "perceptual"}
		},
		func(c PerceptualConfig) (core.Loss, error) { return NewPerceptual(c) })
}
