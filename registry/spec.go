package registry

import (
	"fmt"
	"reflect"
)

// Spec is a component chosen by config: the registered factory name (the
// `type:` key) and its decoded, typed config. A config struct field of type
// Spec[T] is decoded strictly against the factory registered under that name
// in T's registry.
type Spec[T any] struct {
	// Type is the registered factory name.
	Type string
	// Config points to the factory's config struct, defaults filled in and
	// overridden by the config file.
	Config any
}

// Build makes the component.
func (s Spec[T]) Build() (T, error) {
	var zero T
	r, ok := registryForType(reflect.TypeFor[T]())
	if !ok {
		return zero, fmt.Errorf("no registry for component type %s", reflect.TypeFor[T]())
	}
	return r.(*Registry[T]).Build(s.Type, s.Config)
}

// IsSet reports whether the spec names a component.
func (s Spec[T]) IsSet() bool { return s.Type != "" }

// componentType returns T; it marks Spec types for the decoder.
func (s Spec[T]) componentType() reflect.Type { return reflect.TypeFor[T]() }

// specValue is implemented by every Spec[T].
type specValue interface {
	componentType() reflect.Type
}

var specValueType = reflect.TypeFor[specValue]()

// isSpecType reports whether t is some Spec[T].
func isSpecType(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t.Implements(specValueType)
}
