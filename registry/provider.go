package registry

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Provider supplies components that are not compiled in, such as
// out-of-process plugins: a component whose `type:` starts with the
// provider's prefix (e.g. "plugin:focal") is looked up through it.
type Provider interface {
	// Lookup returns the entry of the component name (the prefix removed)
	// of the given kind. params are the component's raw config keys (the
	// provider may need some, e.g. a plugin's path, to find it).
	Lookup(kind Kind, name string, params map[string]any) (*Entry, error)
	// Entries lists the components the provider can find now, for
	// listings; errors are reported per entry in its Doc.
	Entries(kind Kind) []*Entry
}

// providers maps type prefixes to providers; filled in init functions.
var providers = struct {
	sync.RWMutex
	byPrefix map[string]Provider
}{byPrefix: map[string]Provider{}}

// RegisterProvider makes p answer for the `type:` names starting with
// prefix (which ends with ':'). Registering a prefix twice panics.
func RegisterProvider(prefix string, p Provider) {
	if !strings.HasSuffix(prefix, ":") {
		panic(fmt.Sprintf("registry: provider prefix %q must end with ':'", prefix))
	}
	providers.Lock()
	defer providers.Unlock()
	if _, dup := providers.byPrefix[prefix]; dup {
		panic(fmt.Sprintf("registry: provider prefix %q registered twice", prefix))
	}
	providers.byPrefix[prefix] = p
}

// providerFor returns the provider of a prefixed name and the name without
// its prefix.
func providerFor(name string) (Provider, string, bool) {
	prefix, rest, ok := strings.Cut(name, ":")
	if !ok {
		return nil, "", false
	}
	providers.RLock()
	defer providers.RUnlock()
	p, ok := providers.byPrefix[prefix+":"]
	return p, rest, ok
}

// providerEntries lists the entries every provider finds for a kind.
func providerEntries(kind Kind) []*Entry {
	providers.RLock()
	var ps []Provider
	for _, p := range providers.byPrefix {
		ps = append(ps, p)
	}
	providers.RUnlock()
	var out []*Entry
	for _, p := range ps {
		out = append(out, p.Entries(kind)...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NewEntry makes an entry for a provider. newConfig returns a fresh config
// (a pointer to a struct, possibly implementing Dynamic); the config must
// implement Builder, which builds the component.
func NewEntry(kind Kind, name, doc string, newConfig func() any) *Entry {
	return &Entry{Kind: kind, Name: name, Doc: doc, NewConfig: newConfig, build: func(cfg any) (any, error) {
		b, ok := cfg.(Builder)
		if !ok {
			return nil, fmt.Errorf("config %T of provided component %q cannot build it", cfg, name)
		}
		return b.BuildComponent()
	}}
}

// Builder is implemented by the configs of provided components: the config
// holds all it needs to build its component.
type Builder interface {
	BuildComponent() (any, error)
}

// DynamicKey is one config key known only at run time, e.g. from a plugin's
// schema.
type DynamicKey struct {
	Key string
	// Type is the Go type the value decodes to: string, int, float64, bool,
	// []string, []int or []float64.
	Type reflect.Type
	// Default is the value when the config does not set the key; nil makes
	// the key required.
	Default any
	Doc     string
}

// Dynamic is implemented by configs whose keys beyond their struct fields
// are known only at run time (a plugin's schema). The decoder checks those
// keys as strictly as struct fields: unknown keys ("did you mean"), types,
// required keys.
type Dynamic interface {
	// DynamicKeys lists the run-time keys.
	DynamicKeys() []DynamicKey
	// SetDynamic stores a decoded value of a run-time key.
	SetDynamic(key string, value any)
	// DynamicValues returns every run-time key's value (defaults filled in),
	// for the resolved config.
	DynamicValues() map[string]any
}

// asDynamic returns v's Dynamic view when its address implements it.
func asDynamic(v reflect.Value) (Dynamic, bool) {
	if !v.CanAddr() {
		p := reflect.New(v.Type())
		p.Elem().Set(v)
		v = p.Elem()
	}
	d, ok := v.Addr().Interface().(Dynamic)
	return d, ok
}

// Collect returns every value of type T (or implementing T) found in a
// decoded config, not looking inside the values it returns: in struct fields, components' configs, lists and maps.
// Run machinery uses it, e.g. to record the plugins an experiment uses.
func Collect[T any](cfg any) []T {
	var out []T
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		if !v.IsValid() {
			return
		}
		if v.Kind() == reflect.Pointer {
			if v.IsNil() || seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
		}
		if v.CanInterface() {
			if x, ok := v.Interface().(T); ok {
				out = append(out, x)
				return
			} else if v.CanAddr() && v.Addr().CanInterface() {
				if x, ok := v.Addr().Interface().(T); ok {
					out = append(out, x)
					return
				}
			}
		}
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				walk(v.MapIndex(k))
			}
		}
	}
	walk(reflect.ValueOf(cfg))
	return out
}
