package vit

import (
	"fmt"
	"math"
	"path"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/data"
)

// AdaptPosition resizes a position parameter of a checkpoint trained at
// another image size to this ViT's patch grid, as BEiT and timm do to
// fine-tune at a new resolution (core.PositionAdapter):
//
//	pos_embed           [1, (1+)g0*g0, D]      -> [1, (1+)g*g, D]: the grid part
//	                                              resized bilinearly (timm: bicubic),
//	                                              the [CLS] entry kept
//	rel_pos_bias_table  [(2g0-1)^2 + 3, heads] -> [(2g-1)^2 + 3, heads]: the table
//	                                              of offsets resized bilinearly (BEiT:
//	                                              a geometric interpolation), the 3
//	                                              [CLS] entries kept
//
// ok is false for other variables and for shapes that already fit.
func (m *ViT) AdaptPosition(name string, t *tensors.Tensor) (out *tensors.Tensor, ok bool, err error) {
	dims := t.Shape().Dimensions
	var vals []float32
	tensors.MustConstFlatData(t, func(f []float32) { vals = append(vals, f...) })
	switch path.Base(name) {
	case "pos_embed":
		if len(dims) != 3 || dims[1] == m.NumTokens() {
			return nil, false, nil
		}
		extra := m.NumTokens() - m.grid*m.grid // the [CLS] token, if any
		n0 := dims[1] - extra
		g0 := int(math.Round(math.Sqrt(float64(n0))))
		if g0*g0 != n0 || n0 <= 0 {
			return nil, false, fmt.Errorf("%s: %v holds no square grid of positions after %d extra tokens", name, dims, extra)
		}
		d := dims[2]
		grid := data.ResizeGrid(vals[extra*d:], g0, g0, d, m.grid, m.grid)
		return tensors.FromFlatDataAndDimensions(append(vals[:extra*d:extra*d], grid...), 1, m.NumTokens(), d), true, nil
	case "rel_pos_bias_table":
		want := (2*m.grid-1)*(2*m.grid-1) + 3
		if len(dims) != 2 || dims[0] == want {
			return nil, false, nil
		}
		heads := dims[1]
		s0 := int(math.Round(math.Sqrt(float64(dims[0] - 3))))
		if s0*s0 != dims[0]-3 {
			return nil, false, fmt.Errorf("%s: %v is no (2g-1)^2+3 table", name, dims)
		}
		n0 := s0 * s0
		table := data.ResizeGrid(vals[:n0*heads], s0, s0, heads, 2*m.grid-1, 2*m.grid-1)
		return tensors.FromFlatDataAndDimensions(append(table, vals[n0*heads:]...), want, heads), true, nil
	}
	return nil, false, nil
}
