package registry

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v4"
)

// ConfigError is one problem found while decoding a config: the dotted key
// path at fault, the file that set it, and what is wrong.
type ConfigError struct {
	// File is the config file (or "--set key") that set the value.
	File string
	// Path is the dotted key path, e.g. "task.backbone.depth".
	Path string
	// Msg says what is wrong, naming the component when inside one.
	Msg string
}

func (e *ConfigError) Error() string {
	where := e.Path
	if where == "" {
		where = "(top level)"
	}
	if e.File == "" {
		return fmt.Sprintf("%s: %s", where, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, where, e.Msg)
}

// Validator is implemented by config structs that check their values after
// decoding; the error is reported against the struct's key path.
type Validator interface {
	Validate() error
}

// Retired is implemented by config structs whose keys have changed: each
// key of RetiredKeys is a former key, mapped to what to write instead. The
// decoder reports a retired key with that message rather than as unknown.
type Retired interface {
	RetiredKeys() map[string]string
}

// Decode decodes the tree strictly into out, a pointer to a struct: every key
// must name a field (or the `type:` of a component), every value must have
// the field's type, every component's `type:` must be registered, and every
// config struct's Validate method must pass. All problems are reported
// together, each naming the key, the component and the file.
func Decode(t *Tree, out any) error {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("registry.Decode: want a pointer to a struct, got %T", out)
	}
	d := decoder{tree: t}
	d.decodeStruct(t.Root, v.Elem(), "", "")
	return errors.Join(d.errs...)
}

// DecodeComponent decodes one component's parameters (without `type:`) into
// the config of the factory kind/name, strictly; used by tools and tests that
// build a single component.
func DecodeComponent(kind Kind, name string, params map[string]any) (any, error) {
	r, ok := lookupKind(kind)
	if !ok {
		return nil, fmt.Errorf("unknown component kind %q", kind)
	}
	var e *Entry
	if p, short, provided := providerFor(name); provided {
		var err error
		if e, err = p.Lookup(kind, short, params); err != nil {
			return nil, err
		}
	} else if e, ok = r.Lookup(name); !ok {
		return nil, fmt.Errorf("unknown %s %q", kind, name)
	}
	cfg := e.NewConfig()
	d := decoder{tree: &Tree{origins: map[string]string{}}}
	d.decodeStruct(params, reflect.ValueOf(cfg).Elem(), "", fmt.Sprintf("%s %q", kind, name))
	return cfg, errors.Join(d.errs...)
}

// DecodeParams decodes a component's parameters (without `type:`) into
// cfg, a pointer to its config struct (e.g. from an Entry's NewConfig),
// as strictly as a config file; component names it in messages.
func DecodeParams(cfg any, params map[string]any, component string) error {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("registry.DecodeParams: want a pointer to a struct, got %T", cfg)
	}
	d := decoder{tree: &Tree{origins: map[string]string{}}}
	d.decodeStruct(params, v.Elem(), "", component)
	return errors.Join(d.errs...)
}

type decoder struct {
	tree *Tree
	errs []error
}

func (d *decoder) fail(path, component, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if component != "" {
		msg += " (in " + component + ")"
	}
	d.errs = append(d.errs, &ConfigError{File: d.tree.Origin(path), Path: path, Msg: msg})
}

// failValidate records the Validate error of the struct at path. The error
// is blamed on the --set overrides under path whose key (its last part, or
// its path below the struct) the message names, e.g. "--set task.epochs=-3"
// for "epochs must be > 0"; when it names none of them, on the file, with
// the overrides under path listed.
func (d *decoder) failValidate(path, component string, err error) {
	msg := err.Error()
	if component != "" {
		msg += " (in " + component + ")"
	}
	var named, under []string
	for key, text := range d.tree.sets {
		if path != "" && key != path && !strings.HasPrefix(key, path+".") {
			continue
		}
		under = append(under, "--set "+text)
		rel := strings.TrimPrefix(strings.TrimPrefix(key, path), ".")
		leaf := key[strings.LastIndexByte(key, '.')+1:]
		if _, err := strconv.Atoi(leaf); err == nil {
			leaf = "" // a list index names nothing
		}
		if mentions(msg, leaf) || mentions(msg, rel) {
			named = append(named, "--set "+text)
		}
	}
	sort.Strings(named)
	sort.Strings(under)
	file := d.tree.Origin(path)
	switch {
	case len(named) > 0:
		file = strings.Join(named, ", ")
	case len(under) > 0 && file != "" && !strings.HasPrefix(file, "--set "):
		file += " (with " + strings.Join(under, ", ") + ")"
	case len(under) > 0:
		file = strings.Join(under, ", ")
	}
	d.errs = append(d.errs, &ConfigError{File: file, Path: path, Msg: msg})
}

// mentions reports whether msg contains word as a whole word (not inside a
// longer identifier).
func mentions(msg, word string) bool {
	if word == "" {
		return false
	}
	isIdent := func(r byte) bool {
		return r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
	}
	for i := 0; ; {
		j := strings.Index(msg[i:], word)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(word)
		if (start == 0 || !isIdent(msg[start-1])) && (end == len(msg) || !isIdent(msg[end])) {
			return true
		}
		i = start + 1
	}
}

// structField is a config key bound to a (possibly embedded) struct field.
type structField struct {
	key   string
	index []int
	typ   reflect.Type
	doc   string
}

// fieldsOf lists the config keys of a struct type: exported fields named by
// their `mapstructure` tag (or lower-cased name), with embedded structs and
// `,squash` fields flattened into the parent.
func fieldsOf(t reflect.Type) []structField {
	var out []structField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if (f.Anonymous || strings.Contains(opts, "squash")) && f.Type.Kind() == reflect.Struct && !isSpecType(f.Type) {
			for _, sf := range fieldsOf(f.Type) {
				sf.index = append([]int{i}, sf.index...)
				out = append(out, sf)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, structField{key: name, index: []int{i}, typ: f.Type, doc: f.Tag.Get("doc")})
	}
	return out
}

func (d *decoder) decodeStruct(data map[string]any, dst reflect.Value, path, component string) {
	fields := fieldsOf(dst.Type())
	known := make(map[string]structField, len(fields))
	var keys []string
	for _, f := range fields {
		known[f.key] = f
		keys = append(keys, f.key)
	}
	dyn, isDynamic := asDynamic(dst)
	dynKeys := map[string]DynamicKey{}
	if isDynamic {
		for _, k := range dyn.DynamicKeys() {
			dynKeys[k.Key] = k
			keys = append(keys, k.Key)
		}
	}
	for _, k := range sortedKeys(data) {
		if dk, ok := dynKeys[k]; ok {
			if data[k] == nil {
				continue
			}
			target := reflect.New(dk.Type).Elem()
			before := len(d.errs)
			d.decodeLeaf(data[k], target, joinPath(path, k), component)
			if len(d.errs) == before {
				dyn.SetDynamic(k, target.Interface())
			}
			continue
		}
		f, ok := known[k]
		if !ok {
			if r, isRetired := dst.Addr().Interface().(Retired); isRetired {
				if msg, was := r.RetiredKeys()[k]; was {
					d.fail(joinPath(path, k), component, "key %q is no longer used: %s", k, msg)
					continue
				}
			}
			d.fail(joinPath(path, k), component, "unknown key %q%s; valid keys: %s", k, suggest(k, keys), strings.Join(keys, ", "))
			continue
		}
		v := data[k]
		if v == nil {
			continue // null keeps the default
		}
		d.decodeValue(v, dst.FieldByIndex(f.index), joinPath(path, k), component)
	}
	if isDynamic && len(d.errs) == 0 {
		values := dyn.DynamicValues()
		for _, k := range dyn.DynamicKeys() {
			if values[k.Key] == nil {
				d.fail(joinPath(path, k.Key), component, "key %q is required (%s)", k.Key, k.Doc)
			}
		}
	}
	if val, ok := dst.Addr().Interface().(Validator); ok && len(d.errs) == 0 {
		if err := val.Validate(); err != nil {
			d.failValidate(path, component, err)
		}
	}
}

// hasKey reports whether struct type t has the config key k.
func hasKey(t reflect.Type, k string) bool {
	for _, f := range fieldsOf(t) {
		if f.key == k {
			return true
		}
	}
	return false
}

func (d *decoder) decodeValue(v any, dst reflect.Value, path, component string) {
	t := dst.Type()
	switch {
	case isSpecType(t):
		d.decodeSpec(v, dst, path)
	case t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Time]():
		m, ok := v.(map[string]any)
		if !ok {
			hint := ""
			if str, isStr := v.(string); isStr && hasKey(t, "from") {
				hint = fmt.Sprintf("; an earlier run is written {from: %s}", str)
			}
			d.fail(path, component, "expected a map, got %s %s%s", describe(v), show(v), hint)
			return
		}
		d.decodeStruct(m, dst, path, component)
	case t.Kind() == reflect.Slice && needsWalk(t.Elem()):
		l, ok := v.([]any)
		if !ok {
			d.fail(path, component, "expected a list, got %s %s", describe(v), show(v))
			return
		}
		s := reflect.MakeSlice(t, len(l), len(l))
		for i, e := range l {
			d.decodeValue(e, s.Index(i), fmt.Sprintf("%s.%d", path, i), component)
		}
		dst.Set(s)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && needsWalk(t.Elem()):
		m, ok := v.(map[string]any)
		if !ok {
			d.fail(path, component, "expected a map, got %s %s", describe(v), show(v))
			return
		}
		out := reflect.MakeMapWithSize(t, len(m))
		for _, k := range sortedKeys(m) {
			e := reflect.New(t.Elem()).Elem()
			d.decodeValue(m[k], e, joinPath(path, k), component)
			out.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), e)
		}
		dst.Set(out)
	default:
		d.decodeLeaf(v, dst, path, component)
	}
}

// needsWalk reports whether values of type t are decoded by the walker
// (structs and components) rather than by mapstructure.
func needsWalk(t reflect.Type) bool {
	return isSpecType(t) || (t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Time]())
}

func (d *decoder) decodeSpec(v any, dst reflect.Value, path string) {
	ct := dst.Addr().Interface().(interface{ componentType() reflect.Type })
	r, ok := registryForType(ct.componentType())
	if !ok {
		d.fail(path, "", "no registry holds components of type %s", ct.componentType())
		return
	}
	var params map[string]any
	switch x := v.(type) {
	case string:
		params = map[string]any{"type": x}
	case map[string]any:
		params = x
	default:
		d.fail(path, "", "expected a %s: a map with a `type:` key (or just its name), got %s %s", r.Kind(), describe(v), show(v))
		return
	}
	current := dst.Field(0).String()
	name, ok := params["type"].(string)
	if _, has := params["type"]; !has && current != "" {
		// Parameters without a type refine the default component.
		name, ok = current, true
	}
	if !ok || name == "" {
		d.fail(path, "", "%s needs a `type:` naming one of: %s", r.Kind(), strings.Join(entryNames(r), ", "))
		return
	}
	rest := make(map[string]any, len(params))
	for k, x := range params {
		if k != "type" {
			rest[k] = x
		}
	}
	var e *Entry
	if p, short, provided := providerFor(name); provided {
		var err error
		if e, err = p.Lookup(r.Kind(), short, rest); err != nil {
			d.fail(joinPath(path, "type"), "", "%v", err)
			return
		}
	} else if e, ok = r.Lookup(name); !ok {
		d.fail(joinPath(path, "type"), "", "unknown %s %q%s; registered: %s", r.Kind(), name, suggest(name, entryNames(r)), strings.Join(entryNames(r), ", "))
		return
	}
	cfg := e.NewConfig()
	if prev := dst.Field(1); name == current && !prev.IsNil() && prev.Elem().Type() == reflect.TypeOf(cfg) {
		// Same component as the default: start from the default's values.
		reflect.ValueOf(cfg).Elem().Set(prev.Elem().Elem())
	}
	d.decodeStruct(rest, reflect.ValueOf(cfg).Elem(), path, fmt.Sprintf("%s %q", r.Kind(), name))
	dst.Field(0).SetString(name)
	dst.Field(1).Set(reflect.ValueOf(cfg))
}

func entryNames(r registryView) []string {
	var out []string
	for _, e := range r.Entries() {
		out = append(out, e.Name)
	}
	return out
}

// decodeLeaf decodes a scalar, or a list/map of scalars, with mapstructure
// and no weak typing: a string is never silently read as a number, nor a
// fractional number as an integer.
func (d *decoder) decodeLeaf(v any, dst reflect.Value, path, component string) {
	target := reflect.New(dst.Type())
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:      target.Interface(),
		ErrorUnused: true,
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			exactIntegerHook,
			mapstructure.StringToTimeDurationHookFunc(),
		),
	})
	if err != nil {
		d.fail(path, component, "%v", err)
		return
	}
	if err := dec.Decode(v); err != nil {
		d.fail(path, component, "expected %s, got %s %s", typeName(dst.Type()), describe(v), show(v))
		return
	}
	dst.Set(target.Elem())
}

// exactIntegerHook refuses to truncate a fractional number into an integer field.
func exactIntegerHook(from, to reflect.Type, data any) (any, error) {
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if f, ok := data.(float64); ok && f != math.Trunc(f) {
			return nil, fmt.Errorf("%v is not an integer", f)
		}
		if to.Kind() >= reflect.Uint && to.Kind() <= reflect.Uint64 {
			if i, ok := data.(int); ok && i < 0 {
				return nil, fmt.Errorf("%v is negative", i)
			}
		}
	}
	return data, nil
}

// typeName describes a Go type in config words.
func typeName(t reflect.Type) string {
	if isSpecType(t) {
		kind := "component"
		if r, ok := registryForType(reflect.New(t).Interface().(interface{ componentType() reflect.Type }).componentType()); ok {
			kind = string(r.Kind()) + " component"
		}
		return "a " + kind
	}
	switch t.Kind() {
	case reflect.Struct:
		if t != reflect.TypeFor[time.Time]() {
			return "a map"
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if t == reflect.TypeFor[time.Duration]() {
			return "a duration (e.g. 90s, 5m)"
		}
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean (true/false)"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(typeName(t.Elem()), "an "), "a ") + "s"
	case reflect.Map:
		return "a map of " + strings.TrimPrefix(strings.TrimPrefix(typeName(t.Elem()), "an "), "a ") + "s"
	}
	return t.String()
}

// show renders a config value briefly for an error message.
func show(v any) string {
	s := fmt.Sprintf("%v", v)
	if _, ok := v.(string); ok {
		s = fmt.Sprintf("%q", v)
	}
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// suggest returns `; did you mean "x"?` for the closest candidate within a
// small edit distance, or "".
func suggest(key string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if dd := editDistance(key, c); dd < bestD {
			best, bestD = c, dd
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// FieldInfo documents one config key of a component, for listings.
type FieldInfo struct {
	Key, Type, Default, Doc string
}

// Fields lists the config keys of a config struct value (a pointer or a
// struct) with their types, current values (the defaults, for a fresh config)
// and docs.
func Fields(cfg any) []FieldInfo {
	return fieldsWithPrefix(reflect.Indirect(reflect.ValueOf(cfg)), "")
}

func fieldsWithPrefix(v reflect.Value, prefix string) []FieldInfo {
	var out []FieldInfo
	if dyn, ok := asDynamic(v); ok {
		values := dyn.DynamicValues()
		for _, k := range dyn.DynamicKeys() {
			def := "(required)"
			if x := values[k.Key]; x != nil {
				def = fmt.Sprintf("%v", x)
				if s, isStr := x.(string); isStr {
					def = fmt.Sprintf("%q", s)
				}
			}
			out = append(out, FieldInfo{Key: prefix + k.Key, Type: typeName(k.Type), Default: def, Doc: k.Doc})
		}
	}
	for _, f := range fieldsOf(v.Type()) {
		fv := v.FieldByIndex(f.index)
		f.key = prefix + f.key
		if f.typ.Kind() == reflect.Struct && !isSpecType(f.typ) && f.typ != reflect.TypeFor[time.Time]() {
			out = append(out, fieldsWithPrefix(fv, f.key+".")...)
			continue
		}
		var def string
		if isSpecType(f.typ) {
			ct := fv.Addr().Interface().(interface{ componentType() reflect.Type })
			kind := "component"
			if r, ok := registryForType(ct.componentType()); ok {
				kind = string(r.Kind())
			}
			def = fmt.Sprint(fv.Field(0).Interface())
			out = append(out, FieldInfo{Key: f.key, Type: kind, Default: def, Doc: f.doc})
			continue
		}
		def = defaultText(fv)
		out = append(out, FieldInfo{Key: f.key, Type: typeName(f.typ), Default: def, Doc: f.doc})
	}
	return out
}

// defaultText renders a default value for listings as it would be written in
// a config: strings quoted, lists, maps and components in YAML flow style
// (`[{type: l1, weight: 1}, {type: vq, weight: 1, beta: 0.25}]`).
func defaultText(v reflect.Value) string {
	switch v.Kind() {
	case reflect.String:
		return fmt.Sprintf("%q", v.Interface())
	case reflect.Slice, reflect.Array, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Struct:
	default:
		return fmt.Sprintf("%v", v.Interface())
	}
	n, err := encodeNode(v)
	if err != nil {
		return fmt.Sprintf("%v", v.Interface())
	}
	var flow func(*yaml.Node)
	flow = func(n *yaml.Node) {
		n.Style |= yaml.FlowStyle
		for _, c := range n.Content {
			flow(c)
		}
	}
	flow(n)
	b, err := yaml.Marshal(n)
	if err != nil {
		return fmt.Sprintf("%v", v.Interface())
	}
	return strings.TrimSpace(string(b))
}

// KindInfo describes a registry for listings.
type KindInfo struct {
	Kind    Kind
	Doc     string
	Entries []*Entry
}

// Catalog lists every registry and its entries, kinds sorted by name.
func Catalog() []KindInfo {
	var out []KindInfo
	for _, k := range Kinds() {
		r, _ := lookupKind(k)
		out = append(out, KindInfo{Kind: k, Doc: r.Doc(), Entries: append(r.Entries(), providerEntries(k)...)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}
