package data

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/peco-dev/peco/registry"
)

// HoldoutConfig configures a seeded partition of a dataset into a training
// part and a held-out part, for choosing a recipe without touching the test
// split: two configs that differ only in Part see disjoint samples whose union
// is the whole dataset.
type HoldoutConfig struct {
	Dataset registry.Spec[Dataset] `mapstructure:"dataset" doc:"the dataset to partition"`
	HeldOut int                    `mapstructure:"held_out" doc:"number of samples held out (0 < held_out < the dataset's length)"`
	Part    string                 `mapstructure:"part" doc:"which part this dataset is: train (the rest) or held_out"`
	Seed    int64                  `mapstructure:"seed" doc:"seed of the partition; independent of the run's seed, so every run holds out the same samples"`
}

// Validate checks the configuration (the dataset's length is checked by OpenHoldout).
func (c HoldoutConfig) Validate() error {
	if !c.Dataset.IsSet() {
		return fmt.Errorf("data: holdout: dataset is not set")
	}
	if c.HeldOut <= 0 {
		return fmt.Errorf("data: holdout: held_out %d must be positive", c.HeldOut)
	}
	if c.Part != "train" && c.Part != "held_out" {
		return fmt.Errorf("data: holdout: part %q must be train or held_out", c.Part)
	}
	return nil
}

// OpenHoldout builds c.Dataset and returns the part c.Part of its seeded
// partition: a seeded permutation's first c.HeldOut indices are held out, the
// rest is the training part; both keep the original order.
func OpenHoldout(c HoldoutConfig) (Dataset, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ds, err := c.Dataset.Build()
	if err != nil {
		return nil, fmt.Errorf("data: holdout: dataset: %w", err)
	}
	n := ds.Len()
	if c.HeldOut >= n {
		return nil, fmt.Errorf("data: holdout: held_out %d must be smaller than the dataset's %d samples", c.HeldOut, n)
	}
	held, rest := HoldoutIndices(n, c.HeldOut, c.Seed)
	idx := rest
	if c.Part == "held_out" {
		idx = held
	}
	return &subset{Dataset: ds, idx: idx}, nil
}

// HoldoutIndices partitions 0..n-1 by a seeded permutation into k held-out
// indices and the n-k others, each sorted.
func HoldoutIndices(n, k int, seed int64) (held, rest []int) {
	r := rand.New(rand.NewPCG(uint64(seed), 0x401d0a7))
	perm := r.Perm(n)
	held, rest = perm[:k:k], perm[k:]
	sort.Ints(held)
	sort.Ints(rest)
	return held, rest
}

func init() {
	registry.Register(Datasets, "holdout",
		"a seeded partition of another dataset: part train (the rest) or held_out (held_out samples), for recipe search off the test split",
		func() HoldoutConfig { return HoldoutConfig{Part: "train"} },
		OpenHoldout)
}
