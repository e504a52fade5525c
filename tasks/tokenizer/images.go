package tokenizer

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
)

// GridPNG lays out rows of images (each H*W*C float32 in [-1, 1], HWC; C
// is 1 or 3) of side size as one PNG, 2-pixel gaps between cells: e.g. the
// inputs in the first row and their reconstructions in the second.
func GridPNG(rows [][][]float32, size, channels int) ([]byte, error) {
	if len(rows) == 0 || len(rows[0]) == 0 {
		return nil, errors.New("grid: no images")
	}
	if channels != 1 && channels != 3 {
		return nil, fmt.Errorf("grid: %d channels, want 1 or 3", channels)
	}
	const gap = 2
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	w := cols*(size+gap) + gap
	h := len(rows)*(size+gap) + gap
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	for ri, r := range rows {
		for ci, pix := range r {
			if len(pix) != size*size*channels {
				return nil, fmt.Errorf("grid: image has %d values, want %d", len(pix), size*size*channels)
			}
			x0, y0 := gap+ci*(size+gap), gap+ri*(size+gap)
			for y := range size {
				for x := range size {
					var c [3]uint8
					for k := range 3 {
						v := pix[(y*size+x)*channels+min(k, channels-1)]
						c[k] = uint8(min(max((float64(v)+1)/2, 0), 1)*255 + 0.5)
					}
					img.Set(x0+x, y0+y, color.RGBA{c[0], c[1], c[2], 255})
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("grid: %w", err)
	}
	return buf.Bytes(), nil
}
