package vit

// Preset is a named model size: token width, number of blocks and heads.
type Preset struct {
	Dim, Depth, Heads int
}

// presetNames lists the known presets, smallest first.
var presetNames = []string{"tiny", "small", "base", "large"}

// PresetByName returns the standard ViT size of the given name: tiny
// (192, 12, 3), small (384, 12, 6), base (768, 12, 12) or large (1024, 24, 16).
func PresetByName(name string) (Preset, bool) {
	switch name {
	case "tiny":
		return Preset{Dim: 192, Depth: 12, Heads: 3}, true
	case "small":
		return Preset{Dim: 384, Depth: 12, Heads: 6}, true
	case "base":
		return Preset{Dim: 768, Depth: 12, Heads: 12}, true
	case "large":
		return Preset{Dim: 1024, Depth: 24, Heads: 16}, true
	}
	return Preset{}, false
}
