package data

// Box is an axis-aligned box in pixel coordinates, COCO style: top-left corner
// (X, Y) and size (W, H).
type Box struct{ X, Y, W, H float32 }

// Instance is one annotated object of a detection/instance-segmentation sample.
type Instance struct {
	// Category is the contiguous category index in [0, NumClasses).
	Category int
	Box      Box
	// Mask is the instance's binary mask, H*W bytes (0 or 1) at the image's size;
	// nil when the annotation has no segmentation.
	Mask    []uint8
	IsCrowd bool
	Area    float32
}

// Sample is one element of a dataset. Classification datasets fill Label;
// detection datasets fill Instances; segmentation datasets fill LabelMap.
type Sample struct {
	Image *Image
	// Label is the class index for classification data, -1 when absent.
	Label int
	// Instances holds the objects of detection / instance-segmentation data.
	Instances []Instance
	// LabelMap holds per-pixel class ids (H*W bytes) for semantic segmentation.
	LabelMap []uint8
	// Path names the file the sample came from (for error messages and caching).
	Path string
	// Index is the sample's position in its dataset and Epoch the pass
	// over the data it is read in (both set by Pipeline).
	Index, Epoch int
}

// Dataset is a finite, indexable collection of samples. Implementations must be
// safe for concurrent calls to Sample from several goroutines.
type Dataset interface {
	// Len is the number of samples.
	Len() int
	// Sample decodes sample i (0 <= i < Len()).
	Sample(i int) (Sample, error)
	// Classes names the classes (sorted folder names, COCO category names, ...).
	Classes() []string
}
