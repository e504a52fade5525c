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
