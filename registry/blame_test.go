package registry

import (
	"strings"
	"testing"
)

// TestValidateBlamesOverride checks that a Validate error is blamed on the
// --set override that caused it, with its value, and on the file otherwise.
func TestValidateBlamesOverride(t *testing.T) {
	tests := []struct {
		name string
		file string
		sets []string
		want string
	}{
		{"file", "widget: {type: gear, teeth: -1}\n", nil,
			`cfg.yaml: widget: teeth must be >= 0 (in widget "gear")`},
		{"override", "widget: {type: gear}\n", []string{"widget.teeth=-3"},
			`--set widget.teeth=-3: widget: teeth must be >= 0 (in widget "gear")`},
		{"override of a nested component", "widget: {type: box}\n", []string{"widget.inner.teeth=-4", "widget.opt.lr=2"},
			`--set widget.inner.teeth=-4: widget.inner: teeth must be >= 0 (in widget "gear")`},
		{"unrelated override under the component", "widget: {type: gear, teeth: -1}\n", []string{"widget.label=x"},
			`cfg.yaml (with --set widget.label=x): widget: teeth must be >= 0 (in widget "gear")`},
		{"override elsewhere", "widget: {type: gear, teeth: -1}\n", []string{"seed=4"},
			`cfg.yaml: widget: teeth must be >= 0 (in widget "gear")`},
		{"whole component overridden", "widget: {type: box}\n", []string{"widget={type: gear, teeth: -2}"},
			`--set widget={type: gear, teeth: -2}: widget: teeth must be >= 0 (in widget "gear")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := ParseTree("cfg.yaml", []byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.SetAll(tc.sets); err != nil {
				t.Fatal(err)
			}
			var cfg topConfig
			err = Decode(tr, &cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestFieldsDefaultsAsYAML checks that listings show defaults as they are
// written in a config (flow YAML), not as Go values with pointers.
func TestFieldsDefaultsAsYAML(t *testing.T) {
	cfg := &BoxConfig{Extras: []Spec[widget]{{Type: "gear", Config: &GearConfig{Teeth: 3, Ratio: 0.5, Label: "a b", Sizes: []int{1, 2}}}},
		Inner: Spec[widget]{Type: "gear", Config: &GearConfig{}}}
	want := map[string][2]string{
		"inner":  {"widget", "gear"},
		"extras": {"a list of widget components", `[{type: gear, teeth: 3, ratio: 0.5, label: a b, sizes: [1, 2], period: 0s}]`},
		"opt.lr": {"a number", "0"},
	}
	for _, f := range Fields(cfg) {
		w, ok := want[f.Key]
		if !ok {
			continue
		}
		delete(want, f.Key)
		if f.Type != w[0] || f.Default != w[1] {
			t.Errorf("%s: type %q default %q, want %q %q", f.Key, f.Type, f.Default, w[0], w[1])
		}
		if strings.Contains(f.Default, "0x") {
			t.Errorf("%s: default %q shows a pointer", f.Key, f.Default)
		}
	}
	if len(want) > 0 {
		t.Errorf("fields missing: %v", want)
	}
	gear := Fields(&GearConfig{Sizes: []int{4}, Label: "x"})
	for _, f := range gear {
		if f.Key == "sizes" && (f.Type != "a list of integers" || f.Default != "[4]") {
			t.Errorf("sizes: %q %q", f.Type, f.Default)
		}
		if f.Key == "label" && f.Default != `"x"` {
			t.Errorf("label default %q", f.Default)
		}
	}
}
