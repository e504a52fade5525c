package mim

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/optim"
	"github.com/peco-dev/peco/tasks/split"
)

// Batch is one MIM batch as the step takes it, B images of the model's
// view and their masks, with either the target view or precomputed token
// ids.
type Batch struct {
	// B is the number of images.
	B int
	// Images holds the model's views, B x Size x Size x Channels.
	Images []float32
	// View holds the target views, B x ViewSize x ViewSize x Channels
	// (targets computed in the step).
	View []float32
	// Tokens holds precomputed token ids, B x N (TrainStep.TokensGiven).
	Tokens []int32
	// Mask holds B x N flags, true for masked patches.
	Mask []bool
}

// TrainStep is the MIM task's training and evaluation step on its own,
// without data, loop or logging: the task runs its steps through it, and
// `peco bench` times it.
type TrainStep struct {
	Net   *Network
	Store *model.Store
	// Size, ViewSize and Channels are the views' geometry.
	Size, ViewSize, Channels int
	// TokensGiven makes the targets inputs (Batch.Tokens) instead of
	// computing them from Batch.View in the step.
	TokensGiven bool
	// Masker draws masks of exactly Net.NumMasked patches on the grid
	// (unless the masker is inexact and PredictAll is set).
	Masker data.Masker

	opt        optim.Optimizer
	train, ev  *model.Exec
	totalSteps int
	// external is the loss when it is computed outside the graph; fwd and
	// fwdEval then run the forward pass to its inputs.
	external     core.ExternalLoss
	fwd, fwdEval *model.Exec
	fwdReady     bool
	backend      compute.Backend
	// hostTok is the target's tokenizer when it runs outside the graph (a
	// plugin): batches without Tokens get them from it.
	hostTok core.ExternalTokenizer
	stop    func()
}

// Close ends the processes of the step's components (plugins).
func (s *TrainStep) Close() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// NewTrainStep builds the step of cfg's components on a fresh store seeded
// with seed: the backbone (a core.PatchBackbone), the target, the loss
// (cross_entropy for token targets, l2 for continuous ones when cfg.Loss is
// unset), the masker and the optimizer. A target that carries
// trained weights (a tokenizer run) loads them, frozen. totalSteps is the
// schedule's length. The target's tokens are an input (Batch.Tokens) with
// tokensGiven or when the target precomputes them (core.TokenSource).
//
// The step runs on env's backend with env's seed; components that run in
// processes of their own (plugins) are started for env (their stderr goes
// to env's run directory) and ended by Close.
func NewTrainStep(env *core.Env, cfg Config, totalSteps int, tokensGiven bool) (_ *TrainStep, err error) {
	backend, seed := env.Backend, env.Seed
	built, err := cfg.Backbone.Build()
	if err != nil {
		return nil, fmt.Errorf("backbone: %w", err)
	}
	backbone, ok := built.(core.PatchBackbone)
	if !ok {
		return nil, fmt.Errorf("backbone %q (%T) does not report its patch grid (core.PatchBackbone): MIM needs one, e.g. a vit", cfg.Backbone.Type, built)
	}
	gh, gw := backbone.PatchGrid()
	size, _, channels := backbone.InputShape()
	if cfg.Data.Augment.Size != size {
		return nil, fmt.Errorf("data.augment.size %d differs from the backbone's image size %d", cfg.Data.Augment.Size, size)
	}
	target, err := cfg.Target.Build()
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	lossSpec := cfg.Loss
	if !lossSpec.IsSet() {
		lossSpec = DefaultLoss(target.Discrete())
	}
	loss, err := lossSpec.Build()
	if err != nil {
		return nil, fmt.Errorf("loss: %w", err)
	}
	stop, err := core.StartProcesses(env, loss, target)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	maskF, err := cfg.Masker.Build()
	if err != nil {
		return nil, fmt.Errorf("masker: %w", err)
	}
	masker, err := maskF.New(gh, gw)
	if err != nil {
		return nil, fmt.Errorf("masker: %w", err)
	}
	if src, ok := target.(core.TokenSource); ok && src.PrecomputedViews() > 0 {
		tokensGiven = true
	}
	var hostTok core.ExternalTokenizer
	if h, ok := target.(interface{ External() core.ExternalTokenizer }); ok && h.External() != nil {
		hostTok, tokensGiven = h.External(), true
	}
	if tokensGiven && !target.Discrete() {
		return nil, fmt.Errorf("target %q: only token targets can be precomputed", cfg.Target.Type)
	}
	viewSize := cfg.Data.Augment.SecondSize
	if viewSize == 0 {
		viewSize = size
	}
	dim, err := target.Dim(viewSize, viewSize, channels, gh, gw)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	opt, err := cfg.Optimizer.Build()
	if err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	s := &TrainStep{
		Net: &Network{Backbone: backbone, Target: target, Loss: loss, Dim: dim, GridH: gh, GridW: gw,
			NumMasked: maskF.Count(gh, gw), PredictAll: cfg.PredictAll},
		Store: model.NewStore(), Size: size, ViewSize: viewSize, Channels: channels,
		TokensGiven: tokensGiven, Masker: masker, opt: opt, totalSteps: totalSteps, stop: stop, hostTok: hostTok,
	}
	s.Store.SetParam(model.ParamInitialSeed, seed)
	if r, ok := target.(core.Restorer); ok {
		if err := r.Restore(s.Store, "/"+TokenizerScope); err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
	}
	adamw := opt.New()
	adamw.Trainable = func(p string) bool { return !strings.HasPrefix(p, "/"+TokenizerScope+"/") }
	if ext, ok := loss.(core.ExternalLoss); ok {
		return s, s.buildExternal(backend, ext, adamw)
	}
	if s.train, err = model.NewExec(backend, s.Store, func(scope *model.Scope, in []*Node) []*Node {
		loss, correct := s.Net.Objective(scope, in[0], in[1], in[2], in[3], true)
		adamw.UpdateGraph(scope, loss.Graph(), loss)
		return []*Node{loss, correct}
	}); err != nil {
		return nil, fmt.Errorf("building the training graph: %w", err)
	}
	if s.ev, err = model.NewExec(backend, s.Store, func(scope *model.Scope, in []*Node) []*Node {
		loss, correct := s.Net.Objective(scope, in[0], in[1], in[2], in[3], false)
		return []*Node{loss, correct}
	}); err != nil {
		return nil, fmt.Errorf("building the evaluation graph: %w", err)
	}
	return s, nil
}

// Run trains on one batch at optimizer step `step` (the learning rate
// follows the schedule) and returns the step's metrics: mim_loss, lr,
// grad_norm and, for token targets, mim_acc (masked tokens predicted right).
func (s *TrainStep) Run(b Batch, step int) (map[string]float64, error) {
	lr := s.opt.BaseLR() * s.opt.Schedule().Factor(step, s.totalSteps)
	if err := optim.SetLR(s.Store, lr); err != nil {
		return nil, err
	}
	in, err := s.inputs(b)
	if err != nil {
		return nil, err
	}
	if s.external != nil {
		if in, err = s.externalInputs(in, int64(step)); err != nil {
			return nil, err
		}
	}
	out, err := s.train.Exec(in...)
	if err != nil {
		return nil, err
	}
	loss := float64(tensors.ToScalar[float32](out[0]))
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return nil, fmt.Errorf("the MIM loss is %v", loss)
	}
	m := map[string]float64{"mim_loss": loss, "lr": lr, "grad_norm": optim.GradNorm(s.Store)}
	if s.Net.Target.Discrete() {
		m["mim_acc"] = float64(tensors.ToScalar[float32](out[1])) / float64(b.B*s.Net.NumMasked)
	}
	return m, nil
}

// Eval scores one batch without updating: the loss and the number of
// masked tokens predicted right.
func (s *TrainStep) Eval(b Batch) (loss, correct float64, err error) {
	in, err := s.inputs(b)
	if err != nil {
		return 0, 0, err
	}
	if s.external != nil {
		return s.evalExternal(in)
	}
	out, err := s.ev.Exec(in...)
	if err != nil {
		return 0, 0, err
	}
	return float64(tensors.ToScalar[float32](out[0])), float64(tensors.ToScalar[float32](out[1])), nil
}

// inputs packs a batch into the graph's inputs: images [B,S,S,C], the target
// view [B,T,T,C] or the tokens [B,N] (int32), the mask [B,N] (float32 0/1)
// and the flat indices b*N+patch of the masked patches [B*NumMasked]
// (int32; with predict_all and an inexact masker, padded with index 0 —
// unused).
func (s *TrainStep) inputs(b Batch) ([]any, error) {
	n, m := s.Net.GridH*s.Net.GridW, s.Net.NumMasked
	if len(b.Images) != b.B*s.Size*s.Size*s.Channels || len(b.Mask) != b.B*n {
		return nil, fmt.Errorf("mim: batch of %d has %d image values and %d mask flags, want %d and %d",
			b.B, len(b.Images), len(b.Mask), b.B*s.Size*s.Size*s.Channels, b.B*n)
	}
	mask := make([]float32, b.B*n)
	idx := make([]int32, b.B*m)
	for i := range b.B {
		k := 0
		for j, v := range b.Mask[i*n : (i+1)*n] {
			if v {
				mask[i*n+j] = 1
				if k < m {
					idx[i*m+k] = int32(i*n + j)
					k++
				}
			}
		}
	}
	if s.hostTok != nil && len(b.Tokens) == 0 {
		tok, err := s.hostTokens(b)
		if err != nil {
			return nil, err
		}
		b.Tokens = tok
	}
	var target any
	if s.TokensGiven {
		if len(b.Tokens) != b.B*n {
			return nil, fmt.Errorf("mim: batch of %d has %d tokens, want %d", b.B, len(b.Tokens), b.B*n)
		}
		target = tensors.FromFlatDataAndDimensions(b.Tokens, b.B, n)
	} else {
		if len(b.View) != b.B*s.ViewSize*s.ViewSize*s.Channels {
			return nil, fmt.Errorf("mim: batch of %d has %d target-view values, want %d", b.B, len(b.View), b.B*s.ViewSize*s.ViewSize*s.Channels)
		}
		target = tensors.FromFlatDataAndDimensions(b.View, b.B, s.ViewSize, s.ViewSize, s.Channels)
	}
	return []any{
		tensors.FromFlatDataAndDimensions(b.Images, b.B, s.Size, s.Size, s.Channels),
		target,
		tensors.FromFlatDataAndDimensions(mask, b.B, n),
		tensors.FromFlatDataAndDimensions(idx, b.B*m),
	}, nil
}

// buildExternal builds the graphs of a step whose loss is computed outside
// the graph (package split): the forward pass to the predictions, for
// training (random numbers kept) and evaluation, and the training graph on
// the surrogate of the loss's value and gradient.
func (s *TrainStep) buildExternal(backend compute.Backend, ext core.ExternalLoss, adamw *optim.AdamW) error {
	s.external, s.backend = ext, backend
	forward := func(training bool) func(scope *model.Scope, in []*Node) []*Node {
		return func(scope *model.Scope, in []*Node) []*Node {
			pred, targets, rowMask := s.Net.Predict(scope, in[0], in[1], in[2], in[3], training)
			return []*Node{pred, ConvertDType(targets, lossTargetDType(s.Net.Target.Discrete())), s.Net.Correct(pred, targets, rowMask)}
		}
	}
	var err error
	if s.fwd, err = model.NewExec(backend, s.Store, forward(true)); err != nil {
		return fmt.Errorf("building the forward graph: %w", err)
	}
	if s.fwdEval, err = model.NewExec(backend, s.Store, forward(false)); err != nil {
		return fmt.Errorf("building the evaluation graph: %w", err)
	}
	if s.train, err = model.NewExec(backend, s.Store, func(scope *model.Scope, in []*Node) []*Node {
		pred, targets, rowMask := s.Net.Predict(scope, in[0], in[1], in[2], in[3], true)
		loss := MulScalar(split.Surrogate(pred, in[4], in[5]), s.Net.Loss.Weight())
		adamw.UpdateGraph(scope, loss.Graph(), loss)
		return []*Node{loss, s.Net.Correct(pred, targets, rowMask)}
	}); err != nil {
		return fmt.Errorf("building the training graph: %w", err)
	}
	return nil
}

// lossTargetDType is the dtype targets go to an external loss in: int32
// token ids, float32 values.
func lossTargetDType(discrete bool) dtypes.DType {
	if discrete {
		return dtypes.Int32
	}
	return dtypes.Float32
}

// externalInputs runs the forward pass (keeping the RNG state), has the
// external loss score it, and returns the training graph's inputs: in,
// the gradient of the predictions and the loss.
func (s *TrainStep) externalInputs(in []any, step int64) ([]any, error) {
	if !s.fwdReady {
		if err := split.Prepare(s.backend, s.Store, s.fwd, in); err != nil {
			return nil, err
		}
		s.fwdReady = true
	}
	var out []*tensors.Tensor
	if err := split.KeepRNG(s.Store, func() error {
		var err error
		out, err = s.fwd.Exec(in...)
		return err
	}); err != nil {
		return nil, err
	}
	name, _ := s.Net.LossInputNames()
	l, grads, err := s.external.Evaluate(context.Background(), step, s.lossInputs(out), []string{name}, true)
	if err != nil {
		return nil, err
	}
	return append(in, grads[name], split.LossValue(l)), nil
}

// evalExternal scores a batch with the external loss, without gradients.
func (s *TrainStep) evalExternal(in []any) (loss, correct float64, err error) {
	out, err := s.fwdEval.Exec(in...)
	if err != nil {
		return 0, 0, err
	}
	l, _, err := s.external.Evaluate(context.Background(), -1, s.lossInputs(out), nil, false)
	if err != nil {
		return 0, 0, err
	}
	return l * s.Net.Loss.Weight(), float64(tensors.ToScalar[float32](out[2])), nil
}

// lossInputs names the forward pass's outputs (predictions, targets) as
// the loss reads them.
func (s *TrainStep) lossInputs(out []*tensors.Tensor) map[string]*tensors.Tensor {
	p, t := s.Net.LossInputNames()
	return map[string]*tensors.Tensor{p: out[0], t: out[1]}
}

// hostTokens has the target's external tokenizer encode the batch's target
// views, checking its grid is the backbone's.
func (s *TrainStep) hostTokens(b Batch) ([]int32, error) {
	if len(b.View) != b.B*s.ViewSize*s.ViewSize*s.Channels {
		return nil, fmt.Errorf("mim: batch of %d has %d target-view values, want %d", b.B, len(b.View), b.B*s.ViewSize*s.ViewSize*s.Channels)
	}
	out, err := s.hostTok.EncodeImages(context.Background(), tensors.FromFlatDataAndDimensions(b.View, b.B, s.ViewSize, s.ViewSize, s.Channels))
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if d := out.Shape().Dimensions; out.DType() != dtypes.Int32 || len(d) != 3 || d[0] != b.B || d[1] != s.Net.GridH || d[2] != s.Net.GridW {
		return nil, fmt.Errorf("target: the tokenizer maps the %dx%d view to tokens %s, the backbone's patch grid is %dx%d (int32): "+
			"set data.augment.second_size so that the tokenizer's grid matches", s.ViewSize, s.ViewSize, out.Shape(), s.Net.GridH, s.Net.GridW)
	}
	ids := tensors.MustCopyFlatData[int32](out)
	for i, id := range ids {
		if id < 0 || int(id) >= s.Net.Dim {
			return nil, fmt.Errorf("target: the tokenizer gave token %d (image %d) outside its vocabulary of %d", id, i/(s.Net.GridH*s.Net.GridW), s.Net.Dim)
		}
	}
	return ids, nil
}
