package data

import (
	"fmt"
	"math/rand/v2"
)

// ExampleFunc makes a task's example from one sample and its views: view
// is the model's view (augmented when train is true, the evaluation crop
// otherwise), second the second view of the same crop (nil unless
// augment.second_size is set), norm the augmentation's normalisation. r is
// the sample's own random stream (see LoaderOptions.SplitStream).
type ExampleFunc[T any] func(s Sample, view, second *Image, norm Normalizer, r *rand.Rand, train bool) (T, error)

// LoaderOptions tune OpenLoaders.
type LoaderOptions struct {
	// SplitStream splits the sample's random stream before augmenting it and
	// gives the split-off stream to the ExampleFunc, so that the task's
	// draws (e.g. masks) do not depend on how many draws the augmentation
	// makes; otherwise the ExampleFunc gets the augmentation's stream after
	// it.
	SplitStream bool
	// ValDropLast drops the last partial validation batch (for evaluation
	// graphs of one fixed batch shape that cannot pad).
	ValDropLast bool
	// TrainView, when set, makes the training views instead of the
	// augmentation's Train (e.g. views drawn from a per-sample stream that
	// does not depend on the epoch, for precomputed targets).
	TrainView func(s Sample, a *Augmenter, r *rand.Rand) (view, second *Image, err error)
}

// Loaders is what a training task reads its data through: both splits, the
// compiled augmentation, the images' channel count and a pipeline per split.
type Loaders[T any] struct {
	TrainSet, ValSet Dataset
	Augment          *Augmenter
	// Channels is the channel count of the training images.
	Channels int
	// Train and Val are the pipelines of the splits; Steps is the number of
	// training batches per epoch (at least 1).
	Train, Val *Pipeline[T]
	Steps      int
}

// Close stops both pipelines.
func (l *Loaders[T]) Close() {
	if l.Train != nil {
		l.Train.Close()
	}
	if l.Val != nil {
		l.Val.Close()
	}
}

// OpenLoaders opens the splits of c (seeded subsets, cache), compiles the
// augmentation and starts one pipeline per split whose items example makes.
// It fails, naming the split, when a split cannot be read or is smaller than
// one batch.
func OpenLoaders[T any](c Splits, seed int64, example ExampleFunc[T], opts LoaderOptions) (*Loaders[T], error) {
	l := &Loaders[T]{}
	var err error
	if l.TrainSet, l.ValSet, err = c.Open(seed); err != nil {
		return nil, err
	}
	if l.Augment, err = c.Augment.Compile(); err != nil {
		return nil, fmt.Errorf("data.augment: %w", err)
	}
	probe, err := firstGoodSample(l.TrainSet)
	if err != nil {
		return nil, fmt.Errorf("data.train: %w", err)
	}
	l.Channels = probe.Image.C
	aug, norm := l.Augment, l.Augment.Normalizer()
	trainView := opts.TrainView
	if trainView == nil {
		trainView = func(s Sample, a *Augmenter, r *rand.Rand) (*Image, *Image, error) { return a.Train(s.Image, r) }
	}
	if l.Train, err = NewPipeline(l.TrainSet, func(s Sample, r *rand.Rand) (T, error) {
		own := r
		if opts.SplitStream {
			own = SplitRNG(r)
		}
		v, second, err := trainView(s, aug, r)
		if err != nil {
			var zero T
			return zero, fmt.Errorf("%s: %w", s.Path, err)
		}
		return example(s, v, second, norm, own, true)
	}, c.TrainPipeline(seed)); err != nil {
		return nil, fmt.Errorf("data.train: %w", err)
	}
	valCfg := c.EvalPipeline(seed)
	valCfg.DropLast = opts.ValDropLast
	if l.Val, err = NewPipeline(l.ValSet, func(s Sample, r *rand.Rand) (T, error) {
		own := r
		if opts.SplitStream {
			own = SplitRNG(r)
		}
		v, second, err := aug.Eval(s.Image)
		if err != nil {
			var zero T
			return zero, fmt.Errorf("%s: %w", s.Path, err)
		}
		return example(s, v, second, norm, own, false)
	}, valCfg); err != nil {
		l.Close()
		return nil, fmt.Errorf("data.val: %w", err)
	}
	if l.Steps = l.Train.BatchesPerEpoch(); l.Steps == 0 {
		l.Close()
		return nil, fmt.Errorf("data.train: %d samples is less than one batch of %d", l.TrainSet.Len(), c.BatchSize)
	}
	if l.Val.BatchesPerEpoch() == 0 {
		l.Close()
		return nil, fmt.Errorf("data.val: %d samples is less than one batch of %d", l.ValSet.Len(), c.EvalBatch)
	}
	return l, nil
}
