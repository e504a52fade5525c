package data

import (
	"slices"
	"testing"
)

func TestSampleRNGDeterministic(t *testing.T) {
	draw := func(seed int64, epoch, index int) []uint64 {
		r := SampleRNG(seed, epoch, index)
		return []uint64{r.Uint64(), r.Uint64(), r.Uint64()}
	}
	a := draw(7, 1, 2)
	if !slices.Equal(a, draw(7, 1, 2)) {
		t.Fatal("same arguments gave different sequences")
	}
	seen := map[uint64]bool{a[0]: true}
	for _, args := range [][3]int{{7, 1, 3}, {7, 2, 2}, {8, 1, 2}, {7, 2, 1}, {7, 0, 0}, {0, 0, 0}} {
		v := draw(int64(args[0]), args[1], args[2])[0]
		if seen[v] {
			t.Errorf("%v repeats an earlier first value", args)
		}
		seen[v] = true
	}
	if StreamRNG(7, StreamShuffle, 1, 2).Uint64() == a[0] {
		t.Error("streams not independent")
	}
	c1, c2 := SplitRNG(SampleRNG(7, 1, 2)), SplitRNG(SampleRNG(7, 1, 2))
	if c1.Uint64() != c2.Uint64() {
		t.Error("SplitRNG not deterministic")
	}
}

func TestEpochPermutation(t *testing.T) {
	p := EpochPermutation(1, 0, 100)
	if !slices.Equal(p, EpochPermutation(1, 0, 100)) {
		t.Error("permutation not deterministic")
	}
	if slices.Equal(p, EpochPermutation(1, 1, 100)) {
		t.Error("epochs share a permutation")
	}
	s := slices.Clone(p)
	slices.Sort(s)
	for i, v := range s {
		if v != i {
			t.Fatal("not a permutation")
		}
	}
}
