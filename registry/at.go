package registry

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// At returns the raw value at a dotted key path of the tree (e.g.
// "task.tokenizer"), and whether it is there.
func (t *Tree) At(key string) (any, bool) {
	var cur any = t.Root
	if key == "" {
		return cur, true
	}
	for _, k := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// DecodeSpecAt decodes the component at a dotted key path of the tree (e.g.
// the `task.tokenizer` of a run's resolved config.yaml) strictly into a
// Spec[T], as Decode would decode a Spec[T] field found there.
func DecodeSpecAt[T any](t *Tree, key string) (Spec[T], error) {
	var s Spec[T]
	v, ok := t.At(key)
	if !ok || v == nil {
		return s, fmt.Errorf("%s: no key %q", t.File, key)
	}
	d := decoder{tree: t}
	d.decodeSpec(v, reflect.ValueOf(&s).Elem(), key)
	if err := errors.Join(d.errs...); err != nil {
		return Spec[T]{}, err
	}
	return s, nil
}
