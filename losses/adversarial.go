package losses

import (
	"errors"
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/peco-dev/peco/backbones/conv"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/registry"
)

// AdversarialConfig configures VQGAN's adversarial term.
type AdversarialConfig struct {
	Weight    float64 `mapstructure:"weight" doc:"weight of the whole term (VQGAN's disc_weight)"`
	Width     int     `mapstructure:"width" doc:"channels of the discriminator's first layer (doubling per layer, capped at 8x)"`
	Layers    int     `mapstructure:"layers" doc:"stride-2 layers of the PatchGAN discriminator"`
	Start     int     `mapstructure:"start" doc:"global step from which the term is on (VQGAN switches the discriminator on late)"`
	LastLayer string  `mapstructure:"last_layer" doc:"store path of the decoder's last weight, for the adaptive weight"`
	Scope     string  `mapstructure:"scope" doc:"variable scope of the discriminator under the scope the loss gets"`
}

// Validate checks the ranges.
func (c *AdversarialConfig) Validate() error {
	if c.Width <= 0 || c.Layers <= 0 || c.Start < 0 || c.LastLayer == "" || c.Scope == "" {
		return errors.New("width and layers must be > 0, start >= 0, last_layer and scope set")
	}
	return nil
}

// Adversarial is VQGAN's adversarial loss with a PatchGAN discriminator D
// and hinge losses, in one term so that one optimizer trains both sides:
//
//	term = on * (lambda * L_G + L_D)
//	L_D = (mean(relu(1 - D(x))) + mean(relu(1 + D(sg(x^))))) / 2
//	L_G = -mean(D'(x^))     (D' = D with its weights held: only x^ gets gradient)
//	lambda = sg(||grad_last nll|| / (||grad_last L_G|| + 1e-4)), clipped to [0, 1e4]
//
// where nll is the L1 reconstruction error, "last" the decoder's last
// weight, and on = 1 from global step Start on (0 before: neither side
// trains). The discriminator uses no normalisation layers (BatchNorm cannot
// train on the pure-Go backend) and LeakyReLU(0.2). Inputs: "input",
// "reconstruction".
type Adversarial struct{ Config AdversarialConfig }

// Weight implements core.Loss.
func (l Adversarial) Weight() float64 { return l.Config.Weight }

// HingeD is the discriminator's hinge loss on logits for real and fake images.
func HingeD(real, fake *Node) *Node {
	relu := func(v *Node) *Node { return Max(v, ZerosLike(v)) }
	return MulScalar(Add(ReduceAllMean(relu(OneMinus(real))), ReduceAllMean(relu(AddScalar(fake, 1)))), 0.5)
}

// HingeG is the generator's loss on the discriminator's logits for its images.
func HingeG(fake *Node) *Node { return Neg(ReduceAllMean(fake)) }

// AdaptiveWeight is VQGAN's lambda: the ratio of the gradient norms of nll
// and g at last, without gradient, clipped to [0, 1e4].
func AdaptiveWeight(nll, g, last *Node) *Node {
	gn := Sqrt(ReduceAllSum(Square(Gradient(nll, last)[0])))
	gg := Sqrt(ReduceAllSum(Square(Gradient(g, last)[0])))
	w := Div(gn, AddScalar(gg, 1e-4))
	return StopGradient(ClipScalar(w, 0, 1e4))
}

// discriminator applies the PatchGAN to x; with held, its weights take no
// gradient.
func (l Adversarial) discriminator(scope *model.Scope, x *Node, held bool) *Node {
	g := x.Graph()
	h := x
	cin := x.Shape().Dim(-1)
	for i := 0; i <= l.Config.Layers; i++ {
		last := i == l.Config.Layers
		cout, stride := l.Config.Width*min(1<<i, 8), 2
		if last {
			cout, stride = 1, 1
		}
		s := scope.At("conv%d", i) // At: the discriminator runs three times in one graph
		bound := 1 / math.Sqrt(float64(16*cin))
		w := s.WithInitializer(initializer.RandomUniformFn(s, -bound, bound)).
			VariableWithShape("weight", shapes.Make(dtypes.Float32, 16*cin, cout)).NodeValue(g)
		b := s.WithInitializer(initializer.Zero).VariableWithShape("bias", shapes.Make(dtypes.Float32, cout)).NodeValue(g)
		if held {
			w, b = StopGradient(w), StopGradient(b)
		}
		if last { // keep the logits map at least 1x1
			h = conv.ZeroPad2D(h, 1)
		}
		h = Add(conv.Im2ColConv(h, w, 4, stride, 1), ExpandLeftToRank(b, 4))
		if !last {
			h = Max(h, MulScalar(h, 0.2))
		}
		cin = cout
	}
	return h
}

// Compute implements core.Loss.
func (l Adversarial) Compute(scope *model.Scope, in map[string]*Node) (*Node, error) {
	if scope == nil {
		return nil, errors.New("adversarial: needs a scope for the discriminator")
	}
	x, y, err := pair("adversarial", in, "input", "reconstruction")
	if err != nil {
		return nil, err
	}
	g := x.Graph()
	lastVar := scope.Store().GetVariable(l.Config.LastLayer)
	if lastVar == nil {
		return nil, fmt.Errorf("adversarial: last_layer %s is not a variable of the model", l.Config.LastLayer)
	}
	ds := scope.At("%s", l.Config.Scope)
	lossD := HingeD(l.discriminator(ds, StopGradient(x), false), l.discriminator(ds, StopGradient(y), false))
	lossG := HingeG(l.discriminator(ds, y, true))
	nll := ReduceAllMean(Abs(Sub(x, y)))
	lambda := AdaptiveWeight(nll, lossG, lastVar.NodeValue(g))
	step := ConvertDType(optimizer.GetGlobalStepVar(scope.Store()).NodeValue(g), dtypes.Float32)
	on := ConvertDType(GreaterOrEqual(step, Scalar(g, dtypes.Float32, float64(l.Config.Start))), dtypes.Float32)
	return Mul(on, Add(Mul(lambda, lossG), lossD)), nil
}

func init() {
	registry.Register(core.Losses, "adversarial",
		"VQGAN adversarial term: PatchGAN hinge losses, adaptive weight, start step (inputs: input, reconstruction)",
		func() AdversarialConfig {
			return AdversarialConfig{Weight: 0.8, Width: 64, Layers: 2, Start: 0,
				LastLayer: "/tokenizer/decoder/conv_out/weight", Scope: "discriminator"}
		},
		func(c AdversarialConfig) (core.Loss, error) { return Adversarial{c}, nil })
}
