// Package sweep runs a sweep: a pipeline of stages (each a config, e.g.
// tokenizer -> mim -> finetune) for every variant, grid point and seed,
// each run in its own directory under the sweep's folder, stages shared by
// several variants run once, finished runs skipped and killed ones
// resumed; it ends in a results table over the seeds (results.go).
package sweep

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/peco-dev/peco/registry"
)

// Spec is a sweep file.
type Spec struct {
	Name string `mapstructure:"name" doc:"the sweep's name (default: the file's base name)"`
	Doc  string `mapstructure:"doc" doc:"what the sweep compares, and its budget"`
	// Stages run in order; a stage names earlier ones in its from.
	Stages   []Stage   `mapstructure:"stages" doc:"the pipeline: each a config, run in order"`
	Variants []Variant `mapstructure:"variants" doc:"what is compared: each a name and overrides per stage (none: one variant, \"base\")"`
	Grid     []Axis    `mapstructure:"grid" doc:"axes crossed with every variant: a stage's key and its values"`
	Seeds    []int64   `mapstructure:"seeds" doc:"seeds; each run's config gets seed: N"`
	Metrics  []Metric  `mapstructure:"metrics" doc:"the table's columns (none: every final_ metric of every stage)"`
	// Scales are named budgets, each overrides per stage applied after the
	// stages' own; Scale picks one ("" for the stages as written).
	Scales map[string]map[string][]string `mapstructure:"scales" doc:"named budgets: scale -> stage -> overrides, e.g. paper: {tokenizer: [...]} for 224px, ViT-B/16, 8192 codes on a GPU"`
	Scale  string                         `mapstructure:"scale" doc:"the budget to run: a key of scales (\"\": the stages as written, the CPU budget)"`
}

// Stage is one step of the pipeline.
type Stage struct {
	Name   string `mapstructure:"name" doc:"the stage's name, used by later stages' from and by variants"`
	Config string `mapstructure:"config" doc:"its config file (relative to the sweep file's folder, or to the working directory if not found there)"`
	// From maps config keys to earlier stages: the key is set to that
	// stage's run directory of the same variant and seed.
	From map[string]string `mapstructure:"from" doc:"config key -> earlier stage whose run it names, e.g. {task.target.from: tokenizer}"`
	Set  []string          `mapstructure:"set" doc:"overrides of this stage for every variant (key=value, as --set), e.g. a budget"`
}

// Variant is one compared setting.
type Variant struct {
	Name string              `mapstructure:"name" doc:"the variant's name (a row of the table)"`
	Doc  string              `mapstructure:"doc" doc:"what it is"`
	Set  map[string][]string `mapstructure:"set" doc:"stage name -> overrides (key=value, as --set) of that stage"`
	// Config replaces a stage's config file for this variant.
	Config map[string]string `mapstructure:"config" doc:"stage name -> another config file for that stage (e.g. a dVAE tokenizer)"`
	// From adds from wiring to a stage for this variant.
	From map[string]map[string]string `mapstructure:"from" doc:"stage name -> {config key: earlier stage}, added to the stage's from"`
}

// Axis is a grid axis.
type Axis struct {
	Stage  string `mapstructure:"stage" doc:"the stage it changes"`
	Key    string `mapstructure:"key" doc:"the config key"`
	Values []any  `mapstructure:"values" doc:"its values"`
	Label  string `mapstructure:"label" doc:"short name in variant names (default: the key's last part)"`
}

// Validate checks names and references.
func (s *Spec) Validate() error {
	var errs []error
	if len(s.Stages) == 0 {
		errs = append(errs, errors.New("stages: a sweep needs at least one stage"))
	}
	stages := map[string]int{}
	for i, st := range s.Stages {
		switch {
		case st.Name == "" || strings.ContainsAny(st.Name, "/ ,="):
			errs = append(errs, fmt.Errorf("stages.%d: a name without '/', ' ', ',' or '=' is needed", i))
		case st.Config == "":
			errs = append(errs, fmt.Errorf("stages.%d (%s): config is missing", i, st.Name))
		}
		if _, dup := stages[st.Name]; dup {
			errs = append(errs, fmt.Errorf("stages.%d: stage %q twice", i, st.Name))
		}
		for key, from := range st.From {
			j, ok := stages[from]
			if !ok {
				errs = append(errs, fmt.Errorf("stages.%d (%s): from.%s names %q, which is not an earlier stage", i, st.Name, key, from))
			}
			_ = j
		}
		stages[st.Name] = i
	}
	seen := map[string]bool{}
	for i, v := range s.Variants {
		if v.Name == "" || strings.ContainsAny(v.Name, "/ ,=") || seen[v.Name] {
			errs = append(errs, fmt.Errorf("variants.%d: a unique name without '/', ' ', ',' or '=' is needed, got %q", i, v.Name))
		}
		seen[v.Name] = true
		for what, names := range map[string][]string{"set": keysOf(v.Set), "config": keysOf(v.Config), "from": keysOf(v.From)} {
			for _, st := range names {
				if _, ok := stages[st]; !ok {
					errs = append(errs, fmt.Errorf("variants.%d (%s): %s names stage %q; stages: %s", i, v.Name, what, st, strings.Join(s.stageNames(), ", ")))
				}
			}
		}
		for st, from := range v.From {
			for key, up := range from {
				if j, ok := stages[up]; !ok || j >= stages[st] {
					errs = append(errs, fmt.Errorf("variants.%d (%s): from.%s.%s names %q, which is not a stage before %s", i, v.Name, st, key, up, st))
				}
			}
		}
	}
	for i, a := range s.Grid {
		if _, ok := stages[a.Stage]; !ok {
			errs = append(errs, fmt.Errorf("grid.%d: stage %q is not a stage", i, a.Stage))
		}
		if a.Key == "" || len(a.Values) == 0 {
			errs = append(errs, fmt.Errorf("grid.%d: key and values are needed", i))
		}
	}
	if _, ok := s.Scales[s.Scale]; s.Scale != "" && !ok {
		var names []string
		for n := range s.Scales {
			names = append(names, n)
		}
		errs = append(errs, fmt.Errorf("scale %q is not one of scales (%s)", s.Scale, strings.Join(names, ", ")))
	}
	for name, sets := range s.Scales {
		for st := range sets {
			if _, ok := stages[st]; !ok {
				errs = append(errs, fmt.Errorf("scales.%s names stage %q; stages: %s", name, st, strings.Join(s.stageNames(), ", ")))
			}
		}
	}
	for i, m := range s.Metrics {
		if _, ok := stages[m.Stage]; !ok {
			errs = append(errs, fmt.Errorf("metrics.%d (%s): stage %q is not a stage", i, m.Name, m.Stage))
		}
		if m.Key == "" {
			errs = append(errs, fmt.Errorf("metrics.%d: key is missing", i))
		}
	}
	return errors.Join(errs...)
}

func (s *Spec) stageNames() []string {
	var out []string
	for _, st := range s.Stages {
		out = append(out, st.Name)
	}
	return out
}

// Load reads a sweep file strictly (a typo is an error naming the key),
// applying overrides (key=value, as --set) to it.
func Load(path string, overrides []string) (*Spec, error) {
	tree, err := registry.LoadFile(path)
	if err != nil {
		return nil, err
	}
	if err := tree.SetAll(overrides); err != nil {
		return nil, err
	}
	s := &Spec{Seeds: []int64{0}}
	if err := registry.Decode(tree, s); err != nil {
		return nil, fmt.Errorf("sweep %s is invalid:\n%w", path, err)
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if s.Scale != "" {
		s.Name += "-" + s.Scale // its own folder and table
	}
	if len(s.Variants) == 0 {
		s.Variants = []Variant{{Name: "base"}}
	}
	return s, nil
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
