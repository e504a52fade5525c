package registry

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"
)

// Tree is a config as loaded from YAML files, before decoding: nested maps
// (map[string]any), lists ([]any) and scalars, plus the file each value came
// from, so that errors can name it.
//
// Merge rules, applied when a file is laid over its `_base_` files and when
// `--set` overrides are applied:
//   - maps merge key by key, recursively;
//   - lists and scalars replace the base value whole;
//   - a map whose `type:` differs from the base map's `type:` replaces the
//     base map whole (a different component keeps none of the old one's keys);
//   - a map holding `_delete_: true` replaces the base map whole (the key is
//     dropped), as in mmengine;
//   - a value of null (`key: ~`) is kept as null: decoding leaves the default.
type Tree struct {
	// Root is the merged config.
	Root map[string]any
	// File is the config file that was loaded (the top of the `_base_` chain).
	File string
	// origins maps a dotted key path to the file (or "--set") that set it.
	origins map[string]string
	// sets maps the key path of each --set override to its text
	// ("task.epochs=-3"), so that a Validate error it causes can name it.
	sets map[string]string
}

// Origin names the file that set the value at a dotted path, or that set its
// nearest parent; "" if unknown.
func (t *Tree) Origin(path string) string {
	for p := path; ; {
		if o, ok := t.origins[p]; ok {
			return o
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			return t.origins[""]
		}
		p = p[:i]
	}
}

// LoadFile reads a YAML config file and the chain of `_base_` files it names
// (a string or a list of paths, relative to the file's folder; later bases
// override earlier ones, the file overrides its bases). Cycles are errors.
func LoadFile(path string) (*Tree, error) {
	t := &Tree{File: path, origins: map[string]string{}}
	root, err := t.load(path, nil)
	if err != nil {
		return nil, err
	}
	t.Root = root
	return t, nil
}

// ParseTree builds a Tree from YAML text, as if read from a file called name.
// `_base_` paths are resolved relative to the current directory.
func ParseTree(name string, text []byte) (*Tree, error) {
	t := &Tree{File: name, origins: map[string]string{}}
	m, err := parseYAMLMap(name, text)
	if err != nil {
		return nil, err
	}
	root, err := t.applyBases(name, ".", m, nil)
	if err != nil {
		return nil, err
	}
	t.Root = root
	return t, nil
}

func (t *Tree) load(path string, stack []string) (map[string]any, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	for i, s := range stack {
		if s == abs {
			chain := append(append([]string{}, stack[i:]...), abs)
			return nil, fmt.Errorf("config %s: _base_ cycle: %s", path, strings.Join(chain, " -> "))
		}
	}
	text, err := os.ReadFile(path)
	if err != nil {
		if len(stack) > 0 {
			return nil, fmt.Errorf("config %s: reading _base_: %w", stack[len(stack)-1], err)
		}
		return nil, fmt.Errorf("reading config: %w", err)
	}
	m, err := parseYAMLMap(path, text)
	if err != nil {
		return nil, err
	}
	return t.applyBases(path, filepath.Dir(path), m, append(stack, abs))
}

// applyBases loads the `_base_` files of m (read from file, in dir) and lays m over them.
func (t *Tree) applyBases(file, dir string, m map[string]any, stack []string) (map[string]any, error) {
	var bases []string
	switch b := m["_base_"].(type) {
	case nil:
	case string:
		bases = []string{b}
	case []any:
		for i, e := range b {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("config %s: _base_[%d]: expected a file path, got %T", file, i, e)
			}
			bases = append(bases, s)
		}
	default:
		return nil, fmt.Errorf("config %s: _base_: expected a file path or a list of paths, got %T", file, b)
	}
	delete(m, "_base_")
	merged := map[string]any{}
	for _, b := range bases {
		p := b
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		bm, err := t.load(p, stack)
		if err != nil {
			return nil, err
		}
		merged = t.merge(merged, bm, "", "")
	}
	return t.merge(merged, m, "", file), nil
}

// parseYAMLMap parses YAML text whose top level must be a map.
func parseYAMLMap(name string, text []byte) (map[string]any, error) {
	var v any
	if err := yaml.Unmarshal(text, &v); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config %s: the top level must be a map of keys, got %T", name, v)
	}
	return normalize(m).(map[string]any), nil
}

// normalize converts YAML maps with non-string keys into map[string]any.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	default:
		return v
	}
}

// merge lays over on top of base following the Tree's merge rules and records
// the origin of every value taken from over (when file is not empty).
func (t *Tree) merge(base, over map[string]any, prefix, file string) map[string]any {
	if del, _ := over["_delete_"].(bool); del {
		base = map[string]any{}
		delete(over, "_delete_")
	}
	if bt, ok := base["type"]; ok {
		if ot, ok := over["type"]; ok && fmt.Sprint(bt) != fmt.Sprint(ot) {
			base = map[string]any{}
		}
	}
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		path := joinPath(prefix, k)
		bm, bIsMap := out[k].(map[string]any)
		om, oIsMap := v.(map[string]any)
		if bIsMap && oIsMap {
			out[k] = t.merge(bm, om, path, file)
		} else {
			out[k] = deepCopy(v)
			if file != "" {
				t.setOrigins(path, v, file)
			}
		}
	}
	return out
}

// setOrigins records file as the origin of path and everything under it.
func (t *Tree) setOrigins(path string, v any, file string) {
	for p := range t.origins {
		if p == path || strings.HasPrefix(p, path+".") {
			delete(t.origins, p)
		}
	}
	t.origins[path] = file
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopy(e)
		}
		return l
	default:
		return v
	}
}

func joinPath(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// Set applies one `a.b.c=value` override. The value is parsed as YAML (so
// `3`, `0.1`, `true`, `[1, 2]` and `{type: l1}` have their YAML types). List
// elements are addressed by index (`losses.1.weight=2`) and must exist. A key
// the config file does not have yet (a default) may be set
// anywhere (missing parent maps are created): strict decoding then checks
// that every key is a real field, naming the --set that introduced it.
func (t *Tree) Set(override string) error {
	key, text, ok := strings.Cut(override, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return fmt.Errorf("--set %q: expected key.path=value", override)
	}
	var value any
	if err := yaml.Unmarshal([]byte(text), &value); err != nil {
		return fmt.Errorf("--set %s: parsing value %q: %w", key, text, err)
	}
	value = normalize(value)
	if t.sets == nil {
		t.sets = map[string]string{}
	}
	t.sets[key] = key + "=" + strings.TrimSpace(text)
	parts := strings.Split(key, ".")
	var cur any = t.Root
	for i, p := range parts {
		last := i == len(parts)-1
		here := strings.Join(parts[:i+1], ".")
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if om, ok := value.(map[string]any); ok {
					if bm, ok := c[p].(map[string]any); ok {
						c[p] = t.merge(bm, om, here, "--set "+key)
						return nil
					}
				}
				c[p] = value
				t.setOrigins(here, value, "--set "+key)
				return nil
			}
			next, ok := c[p]
			if !ok || next == nil {
				// A key the file leaves at its default: create the map; strict
				// decoding then checks every key against the config structs.
				next = map[string]any{}
				c[p] = next
				t.origins[here] = "--set " + key
			}
			cur = next
		case []any:
			idx, err := strconv.Atoi(p)
			if err != nil || idx < 0 || idx >= len(c) {
				return fmt.Errorf("--set %s: %s is a list of %d elements: %q is not an index in it", key, strings.Join(parts[:i], "."), len(c), p)
			}
			if last {
				c[idx] = value
				t.setOrigins(here, value, "--set "+key)
				return nil
			}
			cur = c[idx]
		default:
			return fmt.Errorf("--set %s: %s is a %s, not a map or list", key, strings.Join(parts[:i], "."), describe(cur))
		}
	}
	return nil
}

// SetAll applies overrides in order.
func (t *Tree) SetAll(overrides []string) error {
	var errs []error
	for _, o := range overrides {
		if err := t.Set(o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// YAML renders the merged tree, keys sorted.
func (t *Tree) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(t.Root); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "bool"
	case int, int64, uint64:
		return "integer"
	case float64:
		return "float"
	case []any:
		return "list"
	case map[string]any:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}

// sortedKeys returns a map's keys, sorted.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
