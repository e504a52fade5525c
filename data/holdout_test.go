package data

import (
	"strings"
	"testing"

	"github.com/peco-dev/peco/registry"
)

func TestHoldoutIndicesPartition(t *testing.T) {
	for _, tc := range []struct{ n, k int }{{10, 1}, {10, 9}, {1000, 100}} {
		held, rest := HoldoutIndices(tc.n, tc.k, 7)
		if len(held) != tc.k || len(rest) != tc.n-tc.k {
			t.Fatalf("n=%d k=%d: %d held, %d rest", tc.n, tc.k, len(held), len(rest))
		}
		seen := make([]bool, tc.n)
		for _, part := range [][]int{held, rest} {
			for j, i := range part {
				if seen[i] {
					t.Fatalf("n=%d k=%d: index %d in both parts", tc.n, tc.k, i)
				}
				seen[i] = true
				if j > 0 && part[j-1] >= i {
					t.Fatalf("n=%d k=%d: part not sorted at %d", tc.n, tc.k, j)
				}
			}
		}
		again, _ := HoldoutIndices(tc.n, tc.k, 7)
		other, _ := HoldoutIndices(tc.n, tc.k, 8)
		if !equalInts(held, again) {
			t.Errorf("n=%d k=%d: the same seed gave another partition", tc.n, tc.k)
		}
		if tc.k < tc.n-1 && equalInts(held, other) {
			t.Errorf("n=%d k=%d: seeds 7 and 8 gave the same partition", tc.n, tc.k)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHoldoutDataset(t *testing.T) {
	mnist := map[string]any{"type": "mnist", "split": "test"}
	build := func(part string) Dataset {
		t.Helper()
		cfg, err := registry.DecodeComponent("dataset", "holdout", map[string]any{"dataset": mnist, "held_out": 1000, "part": part, "seed": 3})
		if err != nil {
			t.Fatal(err)
		}
		ds, err := Datasets.Build("holdout", cfg)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	train, held := build("train"), build("held_out")
	if train.Len() != 9000 || held.Len() != 1000 || len(held.Classes()) != 10 {
		t.Fatalf("train %d, held out %d samples, %d classes", train.Len(), held.Len(), len(held.Classes()))
	}
	hs, err := held.Sample(0)
	if err != nil {
		t.Fatal(err)
	}
	full, err := OpenMNIST(MNISTConfig{Split: "test"})
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := HoldoutIndices(10000, 1000, 3)
	fs, err := full.Sample(idx[0])
	if err != nil {
		t.Fatal(err)
	}
	if hs.Label != fs.Label || string(hs.Image.Pix) != string(fs.Image.Pix) {
		t.Errorf("held-out sample 0 is not sample %d of the dataset", idx[0])
	}
}

func TestHoldoutConfigErrors(t *testing.T) {
	mnist := map[string]any{"type": "mnist", "split": "test"}
	for _, tc := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"held_out": 10, "part": "train"}, "dataset is not set"},
		{map[string]any{"dataset": mnist, "held_out": 0}, "held_out 0 must be positive"},
		{map[string]any{"dataset": mnist, "held_out": 10, "part": "val"}, `part "val"`},
		{map[string]any{"dataset": mnist, "held_out": 10000}, "smaller than the dataset's 10000"},
	} {
		cfg, err := registry.DecodeComponent("dataset", "holdout", tc.params)
		if err == nil {
			_, err = Datasets.Build("holdout", cfg)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error with %q", tc.params, err, tc.want)
		}
	}
	if _, err := registry.DecodeComponent("dataset", "holdout", map[string]any{"dataset": mnist, "held_out": 10, "heldout": 3}); err == nil {
		t.Error("a misspelled key was accepted")
	}
}
