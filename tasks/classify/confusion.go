package classify

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/peco-dev/peco/core/ckpt"
)

// maxConfusionClasses is the largest class count drawn as a confusion matrix.
const maxConfusionClasses = 50

// writeConfusion draws the confusion matrix (rows: true class, columns:
// predicted class, each row normalised to its class count) as a heat map PNG,
// 16 pixels per cell, white = 0, dark blue = the whole row.
func writeConfusion(path string, conf [][]int) error {
	const cell = 16
	k := len(conf)
	img := image.NewRGBA(image.Rect(0, 0, k*cell, k*cell))
	for i, row := range conf {
		total := 0
		for _, c := range row {
			total += c
		}
		for j, c := range row {
			f := 0.0
			if total > 0 {
				f = float64(c) / float64(total)
			}
			col := color.RGBA{uint8(255 * (1 - f)), uint8(255 * (1 - 0.8*f)), 255, 255}
			for y := i * cell; y < (i+1)*cell-1; y++ {
				for x := j * cell; x < (j+1)*cell-1; x++ {
					img.Set(x, y, col)
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return ckpt.WriteFileAtomic(path, buf.Bytes())
}
