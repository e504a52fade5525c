package data

import (
	"errors"

	"github.com/peco-dev/peco/registry"
)

// Splits is the data section every training task shares: its training and
// validation datasets (components), their augmentation, batching, optional
// seeded subsets and the decoded-image cache.
type Splits struct {
	Train     registry.Spec[Dataset] `mapstructure:"train" doc:"training split"`
	Val       registry.Spec[Dataset] `mapstructure:"val" doc:"validation split"`
	Augment   AugmentConfig          `mapstructure:"augment" doc:"training augmentation (second_size: BEiT's second view) and evaluation crop"`
	BatchSize int                    `mapstructure:"batch_size" doc:"training batch size"`
	EvalBatch int                    `mapstructure:"eval_batch_size" doc:"evaluation batch size"`
	Workers   int                    `mapstructure:"workers" doc:"decoding/augmentation goroutines (0 = number of CPUs)"`
	MaxTrain  int                    `mapstructure:"max_train" doc:"use a seeded random subset of this many training samples (0 = all)"`
	MaxVal    int                    `mapstructure:"max_val" doc:"use a seeded random subset of this many validation samples (0 = all)"`
	Cache     CacheConfig            `mapstructure:"cache" doc:"in-memory cache of decoded images"`
}

// DefaultSplits returns batches of 64 (128 for evaluation), the default
// augmentation and an enabled cache; the datasets are left to the config.
func DefaultSplits() Splits {
	return Splits{Augment: DefaultAugmentConfig(), BatchSize: 64, EvalBatch: 128, Cache: DefaultCacheConfig()}
}

// Validate checks the keys.
func (c *Splits) Validate() error {
	if !c.Train.IsSet() || !c.Val.IsSet() {
		return errors.New("data.train and data.val must be set")
	}
	if c.BatchSize <= 0 || c.EvalBatch <= 0 || c.MaxTrain < 0 || c.MaxVal < 0 {
		return errors.New("data.batch_size and data.eval_batch_size must be > 0, max_train and max_val >= 0")
	}
	return nil
}

// Open builds both splits (seeded subsets, cache): the training split with
// seed, the validation split with seed+1.
func (c Splits) Open(seed int64) (train, val Dataset, err error) {
	if train, err = OpenSplit(c.Train, "data.train", c.MaxTrain, seed, c.Cache); err != nil {
		return nil, nil, err
	}
	if val, err = OpenSplit(c.Val, "data.val", c.MaxVal, seed+1, c.Cache); err != nil {
		return nil, nil, err
	}
	return train, val, nil
}

// TrainPipeline is the pipeline configuration of the training split: batches
// of BatchSize, shuffled per epoch from seed, the last partial batch dropped
// (so every step has the same shape).
func (c Splits) TrainPipeline(seed int64) PipelineConfig {
	return PipelineConfig{BatchSize: c.BatchSize, Shuffle: true, DropLast: true, Workers: c.Workers, Seed: seed, World: 1}
}

// EvalPipeline is the pipeline configuration of the validation split:
// batches of EvalBatch in dataset order, the last partial batch kept.
func (c Splits) EvalPipeline(seed int64) PipelineConfig {
	return PipelineConfig{BatchSize: c.EvalBatch, Workers: c.Workers, Seed: seed, World: 1}
}
