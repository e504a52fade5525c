package bench

import (
	"slices"
	"strings"
	"testing"
)

func TestNamesListsEveryWorkload(t *testing.T) {
	names := Names()
	for n := range Workloads {
		if !slices.Contains(names, n) {
			t.Errorf("Names() lacks %s", n)
		}
	}
	for n := range Pipelines {
		if !slices.Contains(names, n) {
			t.Errorf("Names() lacks %s", n)
		}
	}
}

func TestTableRatios(t *testing.T) {
	tab := Table([]Result{
		{Workload: "w", Impl: "peco", Batch: 32, SecPerStep: 1, ImgPerSec: 32},
		{Workload: "w", Impl: "torch", Batch: 32, SecPerStep: 2, ImgPerSec: 16},
	})
	if !strings.Contains(tab, "| 2.00x |") {
		t.Errorf("ratio ours/peer missing:\n%s", tab)
	}
}
