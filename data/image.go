// Package data holds the image data layer shared by every task: dataset readers
// (ImageNet-style folders and archives, MNIST idx files, COCO instances, ADE20k
// segmentation), decoding with a cache, augmentation, masking generators and a
// prefetching batch pipeline.
package data

import "fmt"

// Image is a decoded 8-bit image in height x width x channels (HWC) layout,
// the layout every reader produces and every augmentation consumes.
type Image struct {
	H, W, C int
	// Pix holds H*W*C bytes, row-major, channels interleaved.
	Pix []uint8
}

// NewImage allocates a zeroed image of the given size.
func NewImage(h, w, c int) *Image {
	return &Image{H: h, W: w, C: c, Pix: make([]uint8, h*w*c)}
}

// At returns the value of channel ch at row y, column x.
func (im *Image) At(y, x, ch int) uint8 { return im.Pix[(y*im.W+x)*im.C+ch] }

// Set sets the value of channel ch at row y, column x.
func (im *Image) Set(y, x, ch int, v uint8) { im.Pix[(y*im.W+x)*im.C+ch] = v }

// String describes the image's shape.
func (im *Image) String() string { return fmt.Sprintf("Image(%dx%dx%d)", im.H, im.W, im.C) }
