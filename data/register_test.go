package data

import (
	"math/rand/v2"
	"testing"

	"github.com/peco-dev/peco/registry"
)

func TestRegisteredMaskers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]any
		want   int
	}{
		{"blockwise", map[string]any{"num_masked": 75}, 75},
		{"blockwise", map[string]any{}, 78}, // 40% of 196
		{"random", map[string]any{"ratio": 0.5}, 98},
	} {
		cfg, err := registry.DecodeComponent("masker", tc.name, tc.params)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Maskers.Build(tc.name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		m, err := f.New(14, 14)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range m.Mask(rand.New(rand.NewPCG(1, 2))) {
			if v {
				n++
			}
		}
		if n != tc.want || f.Count(14, 14) != tc.want {
			t.Errorf("%s %v: masked %d (Count %d), want %d", tc.name, tc.params, n, f.Count(14, 14), tc.want)
		}
	}
	if _, err := registry.DecodeComponent("masker", "blockwise", map[string]any{"ratoi": 0.3}); err == nil {
		t.Error("a misspelled masker key was accepted")
	}
}

func TestRegisteredDatasetsMNIST(t *testing.T) {
	cfg, err := registry.DecodeComponent("dataset", "mnist", map[string]any{"split": "test"})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := Datasets.Build("mnist", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 10000 || len(ds.Classes()) != 10 {
		t.Errorf("mnist test: %d samples, %d classes", ds.Len(), len(ds.Classes()))
	}
}
