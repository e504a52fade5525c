package probe

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/peco-dev/peco/core/ckpt"
)

// writeCodeGrid draws probe (c): one row per frequent code, holding the
// image patches (the pixels of one token cell, upscaled 4x) that the
// tokenizer maps to that code, first occurrences in evaluation order.
func writeCodeGrid(path string, c *coded, size, codes, perRow, vocab int) error {
	top := frequentCodes(c.tokens, vocab, codes)
	if len(top) == 0 {
		return fmt.Errorf("patch grid: no codes")
	}
	ph, pw := size/c.h, size/c.w // patch size in pixels
	ch := len(c.pix) / (len(c.labels) * size * size)
	const zoom, gap = 4, 2
	cellW, cellH := pw*zoom+gap, ph*zoom+gap
	img := image.NewRGBA(image.Rect(0, 0, perRow*cellW, len(top)*cellH))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	per := c.h * c.w
	for row, code := range top {
		col := 0
		for t, id := range c.tokens {
			if col == perRow {
				break
			}
			if int(id) != code {
				continue
			}
			n, cell := t/per, t%per
			y0, x0 := (cell/c.w)*ph, (cell%c.w)*pw
			for y := 0; y < ph*zoom; y++ {
				for x := 0; x < pw*zoom; x++ {
					base := ((n*size+y0+y/zoom)*size + x0 + x/zoom) * ch
					px := func(k int) uint8 {
						v := (c.pix[base+min(k, ch-1)] + 1) / 2 * 255
						return uint8(max(0, min(255, v+0.5)))
					}
					img.Set(col*cellW+x, row*cellH+y, color.RGBA{px(0), px(1), px(2), 255})
				}
			}
			col++
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return ckpt.WriteFileAtomic(path, buf.Bytes())
}
