package optim

import (
	"fmt"
	"math"
	"path"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/peco-dev/peco/registry"
)

// Optimizer is a configured optimizer: it makes the GoMLX optimizer that a
// train.Trainer applies, and exposes its learning-rate schedule so the
// training loop can set the lr before each step.
type Optimizer interface {
	// New makes the graph-level optimizer.
	New() *AdamW
	// BaseLR is the peak learning rate.
	BaseLR() float64
	// Schedule gives the lr factor per step.
	Schedule() Schedule
}

// Optimizers is the registry of optimizers.
var Optimizers = registry.NewRegistry[Optimizer]("optimizer", "optimizers with their lr schedule")

// AdamWConfig configures AdamW.
type AdamWConfig struct {
	LR          float64                 `mapstructure:"lr" doc:"peak learning rate"`
	Beta1       float64                 `mapstructure:"beta1" doc:"first-moment decay"`
	Beta2       float64                 `mapstructure:"beta2" doc:"second-moment decay"`
	Eps         float64                 `mapstructure:"eps" doc:"denominator epsilon"`
	WeightDecay float64                 `mapstructure:"weight_decay" doc:"decoupled weight decay (AdamW)"`
	NoDecay     []string                `mapstructure:"no_decay" doc:"variable names excluded from weight decay (besides every rank<2 variable: biases, norms)"`
	ClipGrad    float64                 `mapstructure:"clip_grad" doc:"global gradient-norm clipping threshold (0 = off)"`
	AccumSteps  int                     `mapstructure:"accum_steps" doc:"gradient accumulation: average the gradients of this many batches per update (1 = off)"`
	Schedule    registry.Spec[Schedule] `mapstructure:"schedule" doc:"learning-rate schedule"`
}

// Validate checks the ranges.
func (c *AdamWConfig) Validate() error {
	switch {
	case c.LR <= 0:
		return fmt.Errorf("lr must be > 0, got %v", c.LR)
	case c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("beta1 and beta2 must be in [0, 1)")
	case c.Eps <= 0:
		return fmt.Errorf("eps must be > 0")
	case c.WeightDecay < 0 || c.ClipGrad < 0:
		return fmt.Errorf("weight_decay and clip_grad must be >= 0")
	case c.AccumSteps < 0:
		return fmt.Errorf("accum_steps must be >= 1 (0 means 1)")
	}
	return nil
}

// DefaultAdamW is BEiT's pre-training recipe: lr 1.5e-3, betas (0.9, 0.999),
// weight decay 0.05, clipping 3.0, cosine schedule.
func DefaultAdamW() AdamWConfig {
	return AdamWConfig{
		LR: 1.5e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.05, ClipGrad: 3.0, AccumSteps: 1,
		NoDecay:  []string{"cls_token", "mask_token", "pos_embed", "rel_pos_bias_table"},
		Schedule: registry.Spec[Schedule]{Type: "cosine", Config: &CosineConfig{WarmupFrac: 0.05}},
	}
}

type adamWComponent struct {
	cfg      AdamWConfig
	schedule Schedule
}

func (a *adamWComponent) New() *AdamW        { return &AdamW{Config: a.cfg} }
func (a *adamWComponent) BaseLR() float64    { return a.cfg.LR }
func (a *adamWComponent) Schedule() Schedule { return a.schedule }

func init() {
	registry.Register(Optimizers, "adamw", "AdamW with weight-decay exclusions, global-norm clipping and an lr schedule",
		DefaultAdamW, func(c AdamWConfig) (Optimizer, error) {
			s, err := c.Schedule.Build()
			if err != nil {
				return nil, err
			}
			return &adamWComponent{cfg: c, schedule: s}, nil
		})
}

// Scope is the store scope of the optimizer's variables.
const Scope = "adamw"

// AdamW is the graph-level optimizer (it implements GoMLX's
// optimizer.Interface). The learning rate is a variable the host sets before
// each step (SetLR), so schedules are plain Go and logged exactly.
type AdamW struct {
	Config AdamWConfig
	// LRScale, when set, multiplies the lr of a variable by path (layer-wise
	// lr decay); nil means 1 for every variable.
	LRScale func(variablePath string) float64
	// Trainable, when set, restricts the update to variables for which it
	// returns true (e.g. a frozen backbone in linear probing).
	Trainable func(variablePath string) bool
}

// Decays reports whether weight decay applies to a variable: not to rank<2
// variables (biases, norm scales) nor to the names in no_decay.
func (o *AdamW) Decays(v *model.Variable) bool {
	if v.Shape().Rank() < 2 {
		return false
	}
	for _, n := range o.Config.NoDecay {
		if v.Name() == n {
			return false
		}
	}
	return true
}

// UpdateGraph implements optimizer.Interface.
func (o *AdamW) UpdateGraph(scope *model.Scope, g *Graph, loss *Node) {
	if !loss.Shape().IsScalar() {
		exceptions.Panicf("AdamW needs a scalar loss, got shape %s", loss.Shape())
	}
	var vars []*model.Variable
	for v := range scope.IterVariables() {
		if v.Trainable && v.InUseByGraph(g) {
			vars = append(vars, v)
		}
	}
	grads := scope.BuildTrainableVariablesGradientsGraph(loss)
	if len(grads) != len(vars) {
		exceptions.Panicf("AdamW: %d gradients for %d trainable variables", len(grads), len(vars))
	}
	dtype := dtypes.Float32
	for i := range grads {
		if grads[i].DType() != dtype {
			grads[i] = ConvertDType(grads[i], dtype)
		}
	}
	// Global gradient norm of this batch, logged and used for clipping.
	var sq *Node
	for _, gr := range grads {
		s := ReduceAllSum(Square(gr))
		if sq == nil {
			sq = s
		} else {
			sq = Add(sq, s)
		}
	}
	norm := Sqrt(sq)
	normVar := scope.Store().Scope("/"+Scope).WithInitializer(initializer.Zero).
		VariableWithShape("grad_norm", shapes.Make(dtype)).SetTrainable(false)
	normVar.SetNodeValue(norm)
	// A batch whose loss or gradient norm is NaN or infinite changes no
	// state (weights, moments, step, accumulators): it is counted in
	// SkippedVar and the training loop decides what to do (run.LoopConfig's
	// nan_policy); a diverged step never reaches a checkpoint.
	finite := LogicalAnd(isFinite(ConvertDType(loss, dtype)), isFinite(norm))
	skippedVar := SkippedVar(scope.Store())
	skippedVar.SetNodeValue(Where(finite, skippedVar.NodeValue(g), AddScalar(skippedVar.NodeValue(g), 1)))
	apply := finite
	// Gradient accumulation: add this batch's gradients to accumulators and
	// update the weights (with their mean) only on every AccumSteps-th call;
	// on the other calls every state keeps its value.
	if n := o.Config.AccumSteps; n > 1 {
		accScope := scope.Store().Scope("/" + Scope).WithInitializer(initializer.Zero)
		countVar := accScope.VariableWithShape("accum_count", shapes.Make(dtype)).SetTrainable(false)
		oldCount := countVar.NodeValue(g)
		count := AddScalar(oldCount, 1)
		apply = LogicalAnd(finite, GreaterOrEqual(count, Scalar(g, dtype, float64(n))))
		countVar.SetNodeValue(Where(finite, Where(apply, ScalarZero(g, dtype), count), oldCount))
		for i, v := range vars {
			av := scope.Store().Scope(path.Join("/", Scope, v.Scope())).WithInitializer(initializer.Zero).
				VariableWithShape(v.Name()+"_acc", v.Shape()).SetTrainable(false)
			old := av.NodeValue(g)
			acc := Add(old, grads[i])
			av.SetNodeValue(Where(finite, Where(apply, ZerosLike(acc), acc), old))
			grads[i] = DivScalar(acc, float64(n))
		}
	}
	// keep returns next on update steps and old otherwise.
	keep := func(next, old *Node) *Node { return Where(apply, next, old) }
	if c := o.Config.ClipGrad; c > 0 {
		scale := Min(ScalarOne(g, dtype), Div(Scalar(g, dtype, c), AddScalar(norm, 1e-6)))
		for i := range grads {
			grads[i] = Mul(grads[i], scale)
		}
	}
	_ = optimizer.IncrementGlobalStep(g, dtype)
	stepVar := scope.Store().Scope("/"+Scope).WithInitializer(initializer.Zero).
		VariableWithShape("step", shapes.Make(dtype)).SetTrainable(false)
	step := AddScalar(stepVar.NodeValue(g), 1)
	stepVar.SetNodeValue(keep(step, stepVar.NodeValue(g)))
	lr := LRVar(scope.Store()).NodeValue(g)
	b1 := Scalar(g, dtype, o.Config.Beta1)
	b2 := Scalar(g, dtype, o.Config.Beta2)
	debias1 := OneMinus(Pow(b1, step))
	debias2 := OneMinus(Pow(b2, step))
	for i, v := range vars {
		if o.Trainable != nil && !o.Trainable(v.Path()) {
			continue
		}
		gr := grads[i]
		mScope := scope.Store().Scope(path.Join("/", Scope, v.Scope())).WithInitializer(initializer.Zero)
		m1v := mScope.VariableWithShape(v.Name()+"_m1", v.Shape()).SetTrainable(false)
		m2v := mScope.VariableWithShape(v.Name()+"_m2", v.Shape()).SetTrainable(false)
		m1 := Add(MulScalar(m1v.NodeValue(g), o.Config.Beta1), MulScalar(gr, 1-o.Config.Beta1))
		m2 := Add(MulScalar(m2v.NodeValue(g), o.Config.Beta2), MulScalar(Square(gr), 1-o.Config.Beta2))
		m1v.SetNodeValue(keep(m1, m1v.NodeValue(g)))
		m2v.SetNodeValue(keep(m2, m2v.NodeValue(g)))
		update := Div(Div(m1, debias1), AddScalar(Sqrt(Div(m2, debias2)), o.Config.Eps))
		p := v.NodeValue(g)
		if o.Decays(v) && o.Config.WeightDecay > 0 {
			update = Add(update, MulScalar(p, o.Config.WeightDecay))
		}
		vlr := lr
		if o.LRScale != nil {
			if s := o.LRScale(v.Path()); s != 1 {
				vlr = MulScalar(lr, s)
			}
		}
		v.SetNodeValue(keep(Sub(p, Mul(vlr, update)), p))
	}
}

// Clear implements optimizer.Interface: it deletes the optimizer's state.
func (o *AdamW) Clear(scope *model.Scope) error {
	return scope.Store().DeleteVariablesInScope("/" + Scope)
}

// isFinite is true for a finite scalar (false for NaN and +-Inf: NaN
// compares false), in ops every backend has.
func isFinite(x *Node) *Node {
	return LessOrEqual(Abs(x), Scalar(x.Graph(), x.DType(), math.MaxFloat32))
}

// SkippedVar counts the batches whose update AdamW skipped because their
// loss or gradient norm was NaN or infinite.
func SkippedVar(store *model.Store) *model.Variable {
	return store.Scope("/"+Scope).VariableWithValue("skipped", float32(0)).SetTrainable(false)
}

// Skipped reads SkippedVar: the batches skipped so far (0 before the first
// step).
func Skipped(store *model.Store) int64 {
	v := store.GetVariable(path.Join("/", Scope, "skipped"))
	if v == nil || !v.HasValue() {
		return 0
	}
	f, _ := v.MustValue().Value().(float32)
	return int64(f)
}

// LRVar is the learning-rate variable the host sets before each step.
func LRVar(store *model.Store) *model.Variable {
	return store.Scope("/"+Scope).VariableWithValue("lr", float32(0)).SetTrainable(false)
}

// SetLR sets the learning rate used by the next step.
func SetLR(store *model.Store, lr float64) error {
	return LRVar(store).SetValue(tensors.FromScalar(float32(lr)))
}

// GradNorm reads the global gradient norm of the last step (before clipping).
func GradNorm(store *model.Store) float64 {
	v := store.GetVariable(path.Join("/", Scope, "grad_norm"))
	if v == nil || !v.HasValue() {
		return 0
	}
	f, _ := v.MustValue().Value().(float32)
	return float64(f)
}

// LayerDecay returns an AdamW.LRScale for BEiT's layer-wise learning-rate
// decay: a variable in layer group id (layerID(path), from 0 for the
// embeddings to numLayers+1 for the head) gets
// decay^(numLayers + 1 - id) times the lr, so the head keeps the full lr
// and each block below it decay times less. For a vit backbone, numLayers
// is its depth and layerID is vit.LayerID with that depth.
func LayerDecay(decay float64, numLayers int, layerID func(variablePath string) int) func(variablePath string) float64 {
	return func(p string) float64 {
		return math.Pow(decay, float64(numLayers+1-layerID(p)))
	}
}
