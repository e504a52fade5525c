package data

import (
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/peco-dev/peco/registry"
)

// OpenSplit builds the dataset a config names (key is its config path, for
// errors), keeps a seeded random subset of max samples when 0 < max < its
// length, and wraps it in the decoded-image cache the config asks for.
func OpenSplit(spec registry.Spec[Dataset], key string, max int, seed int64, cache CacheConfig) (Dataset, error) {
	ds, err := spec.Build()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if ds.Len() == 0 {
		return nil, fmt.Errorf("%s: the dataset is empty", key)
	}
	if max > 0 && max < ds.Len() {
		ds = Subset(ds, max, seed)
	}
	if ds, err = cache.Wrap(ds); err != nil {
		return nil, fmt.Errorf("%s.cache: %w", key, err)
	}
	return ds, nil
}

// Subset returns n samples of ds chosen by a seeded permutation, kept in
// their original order.
func Subset(ds Dataset, n int, seed int64) Dataset {
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	idx := r.Perm(ds.Len())[:n]
	sort.Ints(idx)
	return &subset{Dataset: ds, idx: idx}
}

type subset struct {
	Dataset
	idx []int
}

func (s *subset) Len() int                     { return len(s.idx) }
func (s *subset) Sample(i int) (Sample, error) { return s.Dataset.Sample(s.idx[i]) }

// Unwrap returns the dataset the subset is taken from.
func (s *subset) Unwrap() Dataset { return s.Dataset }
