package registry

import (
	"bytes"
	"fmt"
	"reflect"
	"time"

	"go.yaml.in/yaml/v4"
)

// Resolved renders a decoded config (a struct or a pointer to one) as YAML
// with every default filled in: the fully resolved config that a run records
// and that `peco config print` shows. Keys follow struct order; a component
// lists `type:` first, then its parameters.
func Resolved(cfg any) ([]byte, error) {
	n, err := encodeNode(reflect.ValueOf(cfg))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("rendering config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("rendering config: %w", err)
	}
	return buf.Bytes(), nil
}

func encodeNode(v reflect.Value) (*yaml.Node, error) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		v = v.Elem()
	}
	t := v.Type()
	switch {
	case isSpecType(t):
		m := &yaml.Node{Kind: yaml.MappingNode}
		name := v.Field(0).String()
		if name == "" {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		m.Content = append(m.Content, scalar("type"), scalar(name))
		if cfg := v.Field(1); !cfg.IsNil() {
			inner, err := encodeNode(cfg)
			if err != nil {
				return nil, err
			}
			m.Content = append(m.Content, inner.Content...)
		}
		return m, nil
	case t == reflect.TypeFor[time.Duration]():
		return scalar(time.Duration(v.Int()).String()), nil
	case t.Kind() == reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range fieldsOf(t) {
			child, err := encodeNode(v.FieldByIndex(f.index))
			if err != nil {
				return nil, err
			}
			m.Content = append(m.Content, scalar(f.key), child)
		}
		if dyn, ok := asDynamic(v); ok {
			values := dyn.DynamicValues()
			for _, k := range dyn.DynamicKeys() {
				x := values[k.Key]
				if x == nil {
					m.Content = append(m.Content, scalar(k.Key), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"})
					continue
				}
				child, err := encodeNode(reflect.ValueOf(x))
				if err != nil {
					return nil, err
				}
				m.Content = append(m.Content, scalar(k.Key), child)
			}
		}
		return m, nil
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		s := &yaml.Node{Kind: yaml.SequenceNode}
		if v.Len() <= 8 && !needsWalk(t.Elem()) {
			s.Style = yaml.FlowStyle
		}
		for i := 0; i < v.Len(); i++ {
			child, err := encodeNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			s.Content = append(s.Content, child)
		}
		return s, nil
	case t.Kind() == reflect.Map:
		m := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		sortValues(keys)
		for _, k := range keys {
			child, err := encodeNode(v.MapIndex(k))
			if err != nil {
				return nil, err
			}
			m.Content = append(m.Content, scalar(fmt.Sprint(k.Interface())), child)
		}
		return m, nil
	default:
		n := &yaml.Node{}
		if err := n.Encode(v.Interface()); err != nil {
			return nil, fmt.Errorf("rendering %v: %w", v.Interface(), err)
		}
		return n, nil
	}
}

func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func sortValues(keys []reflect.Value) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && fmt.Sprint(keys[j].Interface()) < fmt.Sprint(keys[j-1].Interface()); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}
