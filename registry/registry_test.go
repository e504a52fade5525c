package registry

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Test components: a "widget" kind with two factories, one of which nests a
// widget (to test nested components and lists of components).
type widget interface{ Name() string }

type gear struct{ cfg GearConfig }

func (g gear) Name() string { return "gear" }

type GearConfig struct {
	Teeth  int           `mapstructure:"teeth" doc:"number of teeth"`
	Ratio  float64       `mapstructure:"ratio" doc:"gear ratio"`
	Label  string        `mapstructure:"label" doc:"a label"`
	Sizes  []int         `mapstructure:"sizes" doc:"sizes"`
	Period time.Duration `mapstructure:"period" doc:"a duration"`
}

func (c *GearConfig) Validate() error {
	if c.Teeth < 0 {
		return errors.New("teeth must be >= 0")
	}
	return nil
}

type BoxConfig struct {
	Inner  Spec[widget]   `mapstructure:"inner" doc:"the widget inside"`
	Extras []Spec[widget] `mapstructure:"extras" doc:"more widgets"`
	Opt    OptConfig      `mapstructure:"opt" doc:"options"`
}

type OptConfig struct {
	LR    float64 `mapstructure:"lr" doc:"learning rate"`
	Steps int     `mapstructure:"steps" doc:"steps"`
}

type box struct{ cfg BoxConfig }

func (b box) Name() string { return "box" }

var widgets = NewRegistry[widget]("widget", "test widgets")

func init() {
	Register(widgets, "gear", "a gear", func() GearConfig { return GearConfig{Teeth: 12, Ratio: 1.5, Label: "g"} },
		func(c GearConfig) (widget, error) { return gear{c}, nil })
	Register(widgets, "box", "a box holding widgets", func() BoxConfig {
		return BoxConfig{Opt: OptConfig{LR: 0.1, Steps: 10},
			Inner: Spec[widget]{Type: "gear", Config: &GearConfig{Teeth: 99, Ratio: 2.5, Label: "default-inner"}}}
	},
		func(c BoxConfig) (widget, error) { return box{c}, nil })
}

type topConfig struct {
	Seed   int64        `mapstructure:"seed"`
	Widget Spec[widget] `mapstructure:"widget"`
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBaseChains(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"base/a.yaml":   "seed: 1\nwidget: {type: gear, teeth: 20, label: from-a}\nlist: [1, 2, 3]\n",
		"base/b.yaml":   "_base_: a.yaml\nwidget: {ratio: 2.5}\n",
		"c.yaml":        "_base_: [base/b.yaml, extra.yaml]\nwidget: {label: from-c}\nlist: [9]\n",
		"extra.yaml":    "seed: 7\n",
		"cycle1.yaml":   "_base_: cycle2.yaml\n",
		"cycle2.yaml":   "_base_: cycle1.yaml\n",
		"self.yaml":     "_base_: self.yaml\n",
		"missing.yaml":  "_base_: nothere.yaml\n",
		"badbase.yaml":  "_base_: 3\n",
		"notamap.yaml":  "- 1\n- 2\n",
		"badyaml.yaml":  "a: [1, 2\n",
		"typeswap.yaml": "_base_: base/a.yaml\nwidget: {type: box}\n",
		"delete.yaml":   "_base_: base/a.yaml\nwidget: {_delete_: true, type: gear, ratio: 3}\n",
	})
	tr, err := LoadFile(filepath.Join(dir, "c.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	w := tr.Root["widget"].(map[string]any)
	want := map[string]any{"type": "gear", "teeth": 20, "label": "from-c", "ratio": 2.5}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("widget = %v, want %v", w, want)
	}
	if got := tr.Root["seed"]; got != 7 {
		t.Errorf("seed = %v, want 7 (later base overrides earlier)", got)
	}
	if got := tr.Root["list"]; !reflect.DeepEqual(got, []any{9}) {
		t.Errorf("list = %v, want [9] (lists replace)", got)
	}
	if o := tr.Origin("widget.teeth"); !strings.HasSuffix(o, "a.yaml") {
		t.Errorf("origin of widget.teeth = %q, want a.yaml", o)
	}
	if o := tr.Origin("widget.label"); !strings.HasSuffix(o, "c.yaml") {
		t.Errorf("origin of widget.label = %q, want c.yaml", o)
	}

	tr, err = LoadFile(filepath.Join(dir, "typeswap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Root["widget"]; !reflect.DeepEqual(got, map[string]any{"type": "box"}) {
		t.Errorf("a changed type must replace the component, got %v", got)
	}
	tr, err = LoadFile(filepath.Join(dir, "delete.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Root["widget"]; !reflect.DeepEqual(got, map[string]any{"type": "gear", "ratio": 3}) {
		t.Errorf("_delete_ must replace the map, got %v", got)
	}

	for _, tc := range []struct{ file, want string }{
		{"cycle1.yaml", "_base_ cycle"},
		{"self.yaml", "_base_ cycle"},
		{"missing.yaml", "nothere.yaml"},
		{"badbase.yaml", "expected a file path"},
		{"notamap.yaml", "top level must be a map"},
		{"badyaml.yaml", "badyaml.yaml"},
		{"absent.yaml", "absent.yaml"},
	} {
		_, err := LoadFile(filepath.Join(dir, tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.file, err, tc.want)
		}
	}
}

func TestSetOverrides(t *testing.T) {
	const text = "seed: 1\nwidget:\n  type: box\n  inner: {type: gear, teeth: 5}\n  extras:\n    - {type: gear}\n    - {type: gear, label: x}\n  opt: {lr: 0.5}\n"
	for _, tc := range []struct {
		set     string
		path    []any
		want    any
		wantErr string
	}{
		{set: "seed=42", path: []any{"seed"}, want: 42},
		{set: "widget.inner.teeth=9", path: []any{"widget", "inner", "teeth"}, want: 9},
		{set: "widget.opt.lr=1e-3", path: []any{"widget", "opt", "lr"}, want: 1e-3},
		{set: "widget.extras.1.label=yes", path: []any{"widget", "extras", 1, "label"}, want: "yes"},
		{set: "widget.extras.0={type: gear, teeth: 3}", path: []any{"widget", "extras", 0, "teeth"}, want: 3},
		{set: "widget.inner.sizes=[1, 2]", path: []any{"widget", "inner", "sizes"}, want: []any{1, 2}},
		{set: "widget.inner.label='007'", path: []any{"widget", "inner", "label"}, want: "007"},
		{set: "widget.inner.newkey=1", path: []any{"widget", "inner", "newkey"}, want: 1},
		{set: "widget.fresh.x=1", path: []any{"widget", "fresh", "x"}, want: 1},
		{set: "widget.extras.5.label=1", wantErr: "not an index"},
		{set: "seed.x=1", wantErr: "not a map or list"},
		{set: "noequals", wantErr: "expected key.path=value"},
		{set: "widget.opt.lr=[1", wantErr: "parsing value"},
	} {
		tr, err := ParseTree("t.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		err = tr.Set(tc.set)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("--set %s: error %v, want %q", tc.set, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("--set %s: %v", tc.set, err)
			continue
		}
		var cur any = tr.Root
		for _, p := range tc.path {
			switch k := p.(type) {
			case string:
				cur = cur.(map[string]any)[k]
			case int:
				cur = cur.([]any)[k]
			}
		}
		if !reflect.DeepEqual(cur, tc.want) {
			t.Errorf("--set %s: value %#v, want %#v", tc.set, cur, tc.want)
		}
	}
}

func TestDecodeStrict(t *testing.T) {
	tr, err := ParseTree("ok.yaml", []byte("seed: 3\nwidget:\n  type: box\n  inner: {type: gear, teeth: 7, period: 90s}\n  extras: [gear, {type: gear, sizes: [1, 2]}]\n  opt: {steps: 5}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg topConfig
	if err := Decode(tr, &cfg); err != nil {
		t.Fatal(err)
	}
	b := cfg.Widget.Config.(*BoxConfig)
	inner := b.Inner.Config.(*GearConfig)
	if inner.Teeth != 7 || inner.Ratio != 2.5 || inner.Label != "default-inner" || inner.Period != 90*time.Second {
		t.Errorf("inner gear = %+v: want teeth 7 over the default inner gear's ratio 2.5", inner)
	}
	// Parameters without a type refine the default component; another type
	// starts from that factory's own defaults.
	for _, tc := range []struct {
		text         string
		teeth        int
		ratio        float64
		label, typed string
	}{
		{"widget: {type: box, inner: {teeth: 5}}\n", 5, 2.5, "default-inner", "gear"},
		{"widget: {type: box}\n", 99, 2.5, "default-inner", "gear"},
		{"widget: {type: box, inner: {type: gear}}\n", 99, 2.5, "default-inner", "gear"},
	} {
		tr, err := ParseTree("t.yaml", []byte(tc.text))
		if err != nil {
			t.Fatal(err)
		}
		var c topConfig
		if err := Decode(tr, &c); err != nil {
			t.Fatalf("%q: %v", tc.text, err)
		}
		in := c.Widget.Config.(*BoxConfig).Inner
		g := in.Config.(*GearConfig)
		if in.Type != tc.typed || g.Teeth != tc.teeth || g.Ratio != tc.ratio || g.Label != tc.label {
			t.Errorf("%q: inner = %s %+v", tc.text, in.Type, g)
		}
	}
	if len(b.Extras) != 2 || b.Extras[0].Type != "gear" || !reflect.DeepEqual(b.Extras[1].Config.(*GearConfig).Sizes, []int{1, 2}) {
		t.Errorf("extras = %+v", b.Extras)
	}
	if b.Opt.LR != 0.1 || b.Opt.Steps != 5 {
		t.Errorf("opt = %+v: want default lr 0.1 and steps 5", b.Opt)
	}
	w, err := cfg.Widget.Build()
	if err != nil || w.Name() != "box" {
		t.Errorf("Build = %v, %v", w, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"base.yaml": "widget: {type: gear, teeth: 3}\n",
		"typo.yaml": "_base_: base.yaml\nwidget: {teth: 4}\n",
	})
	for _, tc := range []struct {
		name, text string
		set        []string
		want       []string
	}{
		{"unknown top key", "sede: 1\n", nil, []string{"t.yaml: sede: unknown key \"sede\"", "did you mean \"seed\""}},
		{"unknown component key", "widget: {type: gear, teth: 4}\n", nil,
			[]string{"t.yaml: widget.teth: unknown key \"teth\"", "(in widget \"gear\")", "did you mean \"teeth\"", "valid keys: teeth, ratio"}},
		{"unknown nested struct key", "widget: {type: box, opt: {lrr: 1}}\n", nil, []string{"widget.opt.lrr", "in widget \"box\""}},
		{"unknown type", "widget: {type: gaer}\n", nil, []string{"widget.type: unknown widget \"gaer\"", "did you mean \"gear\"", "registered: box, gear"}},
		{"missing type", "widget: {teeth: 3}\n", nil, []string{"widget: widget needs a `type:`"}},
		{"wrong type int", "widget: {type: gear, teeth: many}\n", nil, []string{"widget.teeth: expected an integer, got string \"many\" (in widget \"gear\")"}},
		{"fraction into int", "widget: {type: gear, teeth: 2.5}\n", nil, []string{"widget.teeth: expected an integer, got float 2.5"}},
		{"string into float", "widget: {type: gear, ratio: fast}\n", nil, []string{"widget.ratio: expected a number"}},
		{"wrong list elem", "widget: {type: gear, sizes: [1, x]}\n", nil, []string{"widget.sizes: expected a list of integers"}},
		{"map expected", "widget: {type: box, opt: 3}\n", nil, []string{"widget.opt: expected a map"}},
		{"list expected", "widget: {type: box, extras: 3}\n", nil, []string{"widget.extras: expected a list"}},
		{"nested list component", "widget: {type: box, extras: [{type: gear, bad: 1}]}\n", nil, []string{"widget.extras.0.bad: unknown key"}},
		{"validate", "widget: {type: gear, teeth: -1}\n", nil, []string{"widget: teeth must be >= 0 (in widget \"gear\")"}},
		{"set typo names --set", "widget: {type: gear}\n", []string{"widget.teth=3"}, []string{"--set widget.teth: widget.teth: unknown key \"teth\""}},
		{"set under a missing parent names --set", "widget: {type: box}\n", []string{"widget.nothere.x=1"}, []string{"--set widget.nothere.x: widget.nothere: unknown key \"nothere\""}},
		{"list element without type", "widget: {type: box, extras: [{teeth: 1}]}\n", nil, []string{"widget.extras.0: widget needs a `type:`"}},
		{"several errors at once", "sede: 1\nwidget: {type: gear, teeth: x}\n", nil, []string{"sede", "widget.teeth"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := ParseTree("t.yaml", []byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.SetAll(tc.set); err != nil {
				t.Fatal(err)
			}
			var cfg topConfig
			err = Decode(tr, &cfg)
			if err == nil {
				t.Fatalf("no error for %q", tc.text)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\nshould contain %q", err, w)
				}
			}
		})
	}
	// The file named is the one that set the misspelled key, not its child.
	tr, err := LoadFile(filepath.Join(dir, "typo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg topConfig
	err = Decode(tr, &cfg)
	if err == nil || !strings.Contains(err.Error(), "typo.yaml: widget.teth") {
		t.Errorf("error %v should name typo.yaml", err)
	}
}

func TestResolvedRoundTrip(t *testing.T) {
	tr, err := ParseTree("t.yaml", []byte("seed: 3\nwidget: {type: box, inner: {type: gear, teeth: 9}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg topConfig
	if err := Decode(tr, &cfg); err != nil {
		t.Fatal(err)
	}
	out, err := Resolved(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{"seed: 3", "type: box", "inner:\n    type: gear\n    teeth: 9\n    ratio: 2.5", "lr: 0.1"} {
		if !strings.Contains(text, want) {
			t.Errorf("resolved config\n%s\nlacks %q", text, want)
		}
	}
	// The resolved config decodes to the same values.
	tr2, err := ParseTree("resolved.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	var cfg2 topConfig
	if err := Decode(tr2, &cfg2); err != nil {
		t.Fatalf("resolved config does not decode: %v\n%s", err, text)
	}
	out2, err := Resolved(&cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if string(out2) != text {
		t.Errorf("resolving twice differs:\n%s\nvs\n%s", text, out2)
	}
}

func TestCatalogListing(t *testing.T) {
	var found bool
	for _, k := range Catalog() {
		if k.Kind != "widget" {
			continue
		}
		found = true
		if len(k.Entries) != 2 || k.Entries[0].Name != "box" || k.Entries[1].Name != "gear" {
			t.Fatalf("entries = %v", k.Entries)
		}
		fields := Fields(k.Entries[1].NewConfig())
		if len(fields) != 5 || fields[0] != (FieldInfo{Key: "teeth", Type: "an integer", Default: "12", Doc: "number of teeth"}) {
			t.Errorf("gear fields = %+v", fields)
		}
		bf := Fields(k.Entries[0].NewConfig())
		if bf[0].Type != "widget" {
			t.Errorf("box.inner type = %q, want the kind name", bf[0].Type)
		}
	}
	if !found {
		t.Fatal("widget kind not listed")
	}
	if _, err := widgets.Build("nope", nil); err == nil || !strings.Contains(err.Error(), "registered: box, gear") {
		t.Errorf("Build unknown: %v", err)
	}
}

// movedConfig has a retired key and a section naming an earlier run.
type movedConfig struct {
	From    string `mapstructure:"from"`
	Section struct {
		From string `mapstructure:"from"`
	} `mapstructure:"section"`
}

func (c *movedConfig) RetiredKeys() map[string]string {
	return map[string]string{"checkpoint": "write from: RUN"}
}

// TestRetiredKeys: a retired key is reported with its replacement, not as
// unknown; a bare string where a {from: ...} section is expected says how
// to write it.
func TestRetiredKeys(t *testing.T) {
	for _, tc := range []struct {
		yaml, want string
	}{
		{"checkpoint: runs/x\n", `checkpoint: key "checkpoint" is no longer used: write from: RUN`},
		{"section: runs/x\n", "an earlier run is written {from: runs/x}"},
		{"chekpoint: runs/x\n", `unknown key "chekpoint"`},
	} {
		tree, err := ParseTree("moved.yaml", []byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		var c movedConfig
		if err := Decode(tree, &c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
}
