package tokenizer

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/optim"
)

// TrainStep is the task's training step on its own, without data, loop or
// evaluation: the task runs its steps through it, and `peco bench` times it.
// One compiled graph runs the tokenizer's forward pass, the weighted loss
// terms and the optimizer update; Run adds the host side of a step (the
// first batch's codebook initialisation, the learning rate from the
// schedule, the tokenizer's scheduled scalars) and returns the step's
// metrics.
type TrainStep struct {
	// Tokenizer is the tokenizer being trained (variables under /tokenizer).
	Tokenizer core.TrainableTokenizer
	// Store holds every variable: tokenizer, loss networks, optimizer.
	Store *model.Store

	backend compute.Backend
	opt     optim.Optimizer
	terms   []term
	exec    *model.Exec
	// initDone is set once the first-batch initialisation ran (or is not
	// wanted: SkipInit).
	initDone bool
}

// NewTrainStep builds cfg's tokenizer, loss terms and optimizer (cfg.Data is
// not used) over a fresh store seeded with seed; the graph compiles on the
// first Run.
func NewTrainStep(backend compute.Backend, cfg Config, seed int64) (*TrainStep, error) {
	built, err := cfg.Tokenizer.Build()
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	tok, ok := built.(core.TrainableTokenizer)
	if !ok {
		return nil, fmt.Errorf("tokenizer %q (%T) cannot be trained: it does not implement core.TrainableTokenizer", cfg.Tokenizer.Type, built)
	}
	terms, err := buildLosses(cfg.Losses)
	if err != nil {
		return nil, err
	}
	opt, err := cfg.Optimizer.Build()
	if err != nil {
		return nil, err
	}
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, seed)
	if err := store.SetRNGStateFromSeed(seed); err != nil {
		return nil, err
	}
	s := &TrainStep{Tokenizer: tok, Store: store, backend: backend, opt: opt, terms: terms}
	adamw := opt.New()
	s.exec, err = model.NewExec(backend, store, func(scope *model.Scope, images *Node) []*Node {
		g := images.Graph()
		store.SetTraining(g, true)
		total, vals, out := lossGraph(scope, tok, terms, images, true)
		adamw.UpdateGraph(scope, g, total)
		return append(append([]*Node{total}, vals...), ConvertDType(out.Tokens, dtypes.Int32))
	})
	if err != nil {
		return nil, fmt.Errorf("building the training graph: %w", err)
	}
	return s, nil
}

// TermNames lists the loss terms' log names (metrics loss_<name>), in order.
func (s *TrainStep) TermNames() []string { return termNames(s.terms) }

// SkipInit marks the first-batch initialisation as done: for a store
// restored from a checkpoint.
func (s *TrainStep) SkipInit() { s.initDone = true }

// Run trains on one batch pix (n images of size x size x channels, HWC,
// float32 in [-1, 1]) as step of total steps (they set the learning rate
// from the optimizer's schedule and the tokenizer's scheduled scalars). The
// first Run of a fresh store first initialises the tokenizer from the batch
// (a VQ-VAE's codebook). It returns loss, loss_<term> (unweighted), lr,
// grad_norm, the tokenizer's scalars and batch_codes_used.
func (s *TrainStep) Run(pix []float32, n, size, channels, step, total int) (map[string]float64, error) {
	tok := s.Tokenizer
	if !s.initDone {
		s.initDone = true
		if bi, ok := tok.(core.BatchInitializer); ok {
			if err := initFromBatch(s.backend, s.Store, bi, pix, n, size, channels); err != nil {
				return nil, err
			}
		}
	}
	lr := s.opt.BaseLR() * s.opt.Schedule().Factor(step, total)
	if err := optim.SetLR(s.Store, lr); err != nil {
		return nil, err
	}
	sched, err := tok.Prepare(s.Store.Scope("/"+Scope), step, total)
	if err != nil {
		return nil, err
	}
	outs, err := s.exec.Exec(tensors.FromFlatDataAndDimensions(pix, n, size, size, channels))
	if err != nil {
		return nil, err
	}
	m := map[string]float64{"loss": float64(tensors.ToScalar[float32](outs[0])), "lr": lr, "grad_norm": optim.GradNorm(s.Store)}
	for i, tm := range s.terms {
		m["loss_"+tm.name] = float64(tensors.ToScalar[float32](outs[1+i]))
	}
	for k, v := range sched {
		m[k] = v
	}
	m["batch_codes_used"] = float64(countUsed(tensors.MustCopyFlatData[int32](outs[len(outs)-1]), tok.VocabSize()))
	return m, nil
}
