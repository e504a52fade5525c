// Package registry holds the typed registries of named component factories
// (tokenizers, losses, backbones, tasks and the small parts they use), the
// YAML config loader with `_base_` inheritance and `--set` overrides, and the
// strict decoder that turns a config tree into each component's typed config.
//
// A component is named in config as a map with a `type:` key naming a
// registered factory, plus that factory's parameters:
//
//	backbone:
//	  type: vit
//	  depth: 6
//
// Factories register in an init function of their package:
//
//	func init() {
//		registry.Register(registry.Backbones, "vit", "Vision Transformer (BEiT options)",
//			DefaultConfig, New)
//	}
//
// where DefaultConfig returns the config struct with its defaults and New
// builds the component from a decoded config. Config structs name their keys
// with `mapstructure:"key"` tags and document them with `doc:"..."` tags.
package registry

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Kind names a family of components, e.g. "backbone".
type Kind string

// Entry describes one registered factory, independent of the component type.
type Entry struct {
	Kind Kind
	Name string
	// Doc is a one-line description.
	Doc string
	// NewConfig returns a pointer to a fresh config struct holding the defaults.
	NewConfig func() any
	build     func(cfg any) (any, error)
}

// Registry is a typed registry of factories for components of type T.
type Registry[T any] struct {
	kind    Kind
	doc     string
	mu      sync.RWMutex
	entries map[string]*Entry
}

// kinds maps component interface types and kind names to their registries;
// it is filled by NewRegistry, in package init order.
var kinds = struct {
	sync.RWMutex
	byType map[reflect.Type]registryView
	byKind map[Kind]registryView
}{byType: map[reflect.Type]registryView{}, byKind: map[Kind]registryView{}}

// registryView is the untyped face of a Registry, used by the decoder and listings.
type registryView interface {
	Kind() Kind
	Doc() string
	Lookup(name string) (*Entry, bool)
	Entries() []*Entry
}

// NewRegistry creates the registry for components of type T under the given
// kind name. Each component type has exactly one registry.
func NewRegistry[T any](kind Kind, doc string) *Registry[T] {
	r := &Registry[T]{kind: kind, doc: doc, entries: map[string]*Entry{}}
	t := reflect.TypeFor[T]()
	kinds.Lock()
	defer kinds.Unlock()
	if _, dup := kinds.byKind[kind]; dup {
		panic(fmt.Sprintf("registry: kind %q registered twice", kind))
	}
	if _, dup := kinds.byType[t]; dup {
		panic(fmt.Sprintf("registry: component type %s registered twice", t))
	}
	kinds.byType[t] = r
	kinds.byKind[kind] = r
	return r
}

// Kind returns the registry's kind name.
func (r *Registry[T]) Kind() Kind { return r.kind }

// Doc returns the registry's one-line description.
func (r *Registry[T]) Doc() string { return r.doc }

// Lookup returns the entry registered under name.
func (r *Registry[T]) Lookup(name string) (*Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[name]
	return e, ok
}

// Entries lists the registered entries sorted by name.
func (r *Registry[T]) Entries() []*Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Entry, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names lists the registered names, sorted.
func (r *Registry[T]) Names() []string {
	var names []string
	for _, e := range r.Entries() {
		names = append(names, e.Name)
	}
	return names
}

// Build builds the component registered under name from a config value (a
// pointer to the factory's config struct, as produced by decoding).
func (r *Registry[T]) Build(name string, cfg any) (T, error) {
	var zero T
	if _, _, provided := providerFor(name); provided {
		b, ok := cfg.(Builder)
		if !ok {
			return zero, fmt.Errorf("building %s %q: config %T cannot build it", r.kind, name, cfg)
		}
		v, err := b.BuildComponent()
		if err != nil {
			return zero, fmt.Errorf("building %s %q: %w", r.kind, name, err)
		}
		c, ok := v.(T)
		if !ok {
			return zero, fmt.Errorf("building %s %q: got %T, which is not a %s", r.kind, name, v, r.kind)
		}
		return c, nil
	}
	e, ok := r.Lookup(name)
	if !ok {
		return zero, fmt.Errorf("unknown %s %q (registered: %s)", r.kind, name, strings.Join(r.Names(), ", "))
	}
	v, err := e.build(cfg)
	if err != nil {
		return zero, fmt.Errorf("building %s %q: %w", r.kind, name, err)
	}
	return v.(T), nil
}

// Register adds a factory to r. defaults returns the config struct C with its
// default values; build makes the component from a decoded config. C must be a
// struct type whose fields carry `mapstructure` tags. Registering a name twice
// panics: it is a programming error found at start-up.
func Register[T any, C any](r *Registry[T], name, doc string, defaults func() C, build func(C) (T, error)) {
	if reflect.TypeFor[C]().Kind() != reflect.Struct {
		panic(fmt.Sprintf("registry: %s %q: config type %s is not a struct", r.kind, name, reflect.TypeFor[C]()))
	}
	e := &Entry{
		Kind: r.kind,
		Name: name,
		Doc:  doc,
		NewConfig: func() any {
			c := defaults()
			return &c
		},
		build: func(cfg any) (any, error) {
			c, ok := cfg.(*C)
			if !ok {
				return nil, fmt.Errorf("config is %T, want *%s", cfg, reflect.TypeFor[C]())
			}
			return build(*c)
		},
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.entries[name]; dup {
		panic(fmt.Sprintf("registry: %s %q registered twice", r.kind, name))
	}
	r.entries[name] = e
}

// Kinds lists every registry's kind, sorted.
func Kinds() []Kind {
	kinds.RLock()
	defer kinds.RUnlock()
	out := make([]Kind, 0, len(kinds.byKind))
	for k := range kinds.byKind {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// lookupKind returns the registry of a kind name.
func lookupKind(k Kind) (registryView, bool) {
	kinds.RLock()
	defer kinds.RUnlock()
	r, ok := kinds.byKind[k]
	return r, ok
}

// registryForType returns the registry for component type t.
func registryForType(t reflect.Type) (registryView, bool) {
	kinds.RLock()
	defer kinds.RUnlock()
	r, ok := kinds.byType[t]
	return r, ok
}

// MustDefaults returns a fresh default config of a registered factory, for
// building default Specs inside other components' defaults. It panics when the
// name is not registered (a programming error found at start-up).
func MustDefaults[T any](r *Registry[T], name string) any {
	e, ok := r.Lookup(name)
	if !ok {
		panic(fmt.Sprintf("registry: %s %q is not registered", r.kind, name))
	}
	return e.NewConfig()
}
