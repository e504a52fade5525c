// Package configs embeds the experiment configs shipped in this folder, so
// that tools can use one exactly as the file says from any working
// directory: `peco bench` times the training step of
// tokenizer/cifar10_peco.yaml.
package configs

import (
	"embed"
	"fmt"
	"regexp"

	"github.com/peco-dev/peco/registry"
)

// FS holds every shipped config, by its path under configs/ (e.g.
// "tokenizer/cifar10_peco.yaml").
//
//go:embed *.yaml */*.yaml
var FS embed.FS

var baseKey = regexp.MustCompile(`(?m)^_base_\s*:`)

// Load parses the shipped config name (a path under configs/). Configs that
// build on others with `_base_` are refused: their bases would be looked up
// relative to the working directory, not in FS.
func Load(name string) (*registry.Tree, error) {
	b, err := FS.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("configs: %w", err)
	}
	if baseKey.Match(b) {
		return nil, fmt.Errorf("configs: %s uses _base_, which Load does not follow", name)
	}
	return registry.ParseTree("configs/"+name, b)
}
