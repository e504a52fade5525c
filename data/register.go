package data

import "github.com/peco-dev/peco/registry"

// Datasets is the registry of dataset readers, chosen in config as
// `{type: image_folder, root: ..., split: train}` and the like.
var Datasets = registry.NewRegistry[Dataset]("dataset", "dataset readers: classification folders, MNIST, COCO, ADE20k")

func init() {
	registry.Register(Datasets, "image_folder",
		"ImageNet-style <root>/<split>/<class>/*.jpg from a folder or a .tar/.tar.gz archive",
		func() ImageFolderConfig { return ImageFolderConfig{Split: "train"} },
		func(c ImageFolderConfig) (Dataset, error) { return OpenImageFolder(c) })
	registry.Register(Datasets, "mnist",
		"MNIST / Fashion-MNIST idx files (default: the copy in the GoMNIST Go module)",
		func() MNISTConfig { return MNISTConfig{Split: "train"} },
		func(c MNISTConfig) (Dataset, error) { return OpenMNIST(c) })
	registry.Register(Datasets, "coco",
		"COCO instances JSON: boxes, categories, polygon and RLE masks",
		func() COCOConfig { return COCOConfig{Images: "val2017"} },
		func(c COCOConfig) (Dataset, error) { return OpenCOCO(c) })
	registry.Register(Datasets, "ade20k",
		"ADE20k-layout semantic segmentation (images/ + annotations/ PNG class ids, 0 = ignore)",
		func() ADE20kConfig { return ADE20kConfig{Split: "training", NumClasses: 150} },
		func(c ADE20kConfig) (Dataset, error) { return OpenADE20k(c) })
}

// MaskerFactory makes the masking generator for a model's patch grid; it is
// the component type of the "masker" registry.
type MaskerFactory interface {
	// New returns the Masker for an h x w patch grid.
	New(h, w int) (Masker, error)
	// Count is the number of patches masked on an h x w grid.
	Count(h, w int) int
}

// Maskers is the registry of masking generators for masked image modeling.
var Maskers = registry.NewRegistry[MaskerFactory]("masker", "masking generators for masked image modeling (patch grid from the model)")

// BlockwiseMaskConfig configures BEiT's blockwise masking.
type BlockwiseMaskConfig struct {
	NumMasked  int     `mapstructure:"num_masked" doc:"number of masked patches; 0 means round(ratio * patches)"`
	Ratio      float64 `mapstructure:"ratio" doc:"fraction of patches masked when num_masked is 0"`
	MinPatches int     `mapstructure:"min_patches" doc:"smallest block area in patches"`
	MaxPatches int     `mapstructure:"max_patches" doc:"largest block area in patches, 0 = num_masked"`
	MinAspect  float64 `mapstructure:"min_aspect" doc:"smallest block aspect ratio; the largest is its inverse"`
	Exact      bool    `mapstructure:"exact" doc:"top up BEiT's blocks with random patches to mask exactly num_masked"`
}

// RandomMaskConfig configures uniformly random masking.
type RandomMaskConfig struct {
	NumMasked int     `mapstructure:"num_masked" doc:"number of masked patches; 0 means round(ratio * patches)"`
	Ratio     float64 `mapstructure:"ratio" doc:"fraction of patches masked when num_masked is 0"`
}

func init() {
	registry.Register(Maskers, "blockwise", "BEiT blockwise masking: blocks of >= min_patches, aspect in [min_aspect, 1/min_aspect]",
		func() BlockwiseMaskConfig {
			d := DefaultMaskConfig()
			return BlockwiseMaskConfig{Ratio: d.Ratio, MinPatches: d.MinPatches, MinAspect: d.MinAspect, Exact: d.Exact}
		},
		func(c BlockwiseMaskConfig) (MaskerFactory, error) {
			return MaskConfig{Kind: "block", NumMasked: c.NumMasked, Ratio: c.Ratio, MinPatches: c.MinPatches,
				MaxPatches: c.MaxPatches, MinAspect: c.MinAspect, Exact: c.Exact}, nil
		})
	registry.Register(Maskers, "random", "uniformly random masking of exactly num_masked patches (BEiT's ablation)",
		func() RandomMaskConfig { return RandomMaskConfig{Ratio: 0.4} },
		func(c RandomMaskConfig) (MaskerFactory, error) {
			return MaskConfig{Kind: "random", NumMasked: c.NumMasked, Ratio: c.Ratio}, nil
		})
}
