package run

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"

	"github.com/peco-dev/peco/registry"
)

// computeDTypes maps the values of config keys named "dtype" to GoMLX dtypes.
var computeDTypes = map[string]dtypes.DType{
	"float32": dtypes.Float32, "float64": dtypes.Float64,
	"bfloat16": dtypes.BFloat16, "float16": dtypes.Float16,
}

// CheckDTypes refuses, before anything runs, a resolved config that asks a
// component to compute in a dtype the backend does not support (e.g.
// `dtype: bfloat16` on the cpu backend); the error names every such key.
func CheckDTypes(resolved []byte, backend compute.Backend) error {
	tree, err := registry.ParseTree("resolved config", resolved)
	if err != nil {
		return err
	}
	caps := backend.Capabilities()
	var bad []string
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				p := k
				if path != "" {
					p = path + "." + k
				}
				if s, ok := c.(string); ok && k == "dtype" {
					if dt, known := computeDTypes[s]; known && !caps.DTypes[dt] {
						bad = append(bad, fmt.Sprintf("%s: %s", p, s))
					}
					continue
				}
				walk(c, p)
			}
		case []any:
			for i, c := range x {
				walk(c, fmt.Sprintf("%s.%d", path, i))
			}
		}
	}
	walk(tree.Root, "")
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("the %s backend does not compute in the dtype the config asks for (%s): use float32, or a backend that supports it (--backend xla:cuda)",
		backend.Name(), strings.Join(bad, ", "))
}
