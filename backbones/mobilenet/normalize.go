package mobilenet

import (
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/peco-dev/peco/data"
)

// Normalize converts images [B, H, W, 3] normalised with the data preset
// named from ("imagenet", "none" = [0, 1], or "half" = [-1, 1]) to the
// [-1, 1] range MobileNet expects: x01 = x*std + mean, then 2*x01 - 1.
// It panics on an unknown preset (configs are validated before).
func Normalize(images *Node, from string) *Node {
	n, err := data.NewNormalizer(from)
	if err != nil {
		exceptions.Panicf("mobilenet: %v", err)
	}
	c := images.Shape().Dim(-1)
	scale, bias := make([]float32, c), make([]float32, c)
	for i := range c {
		m, s := n.Mean[min(i, 2)], n.Std[min(i, 2)]
		scale[i], bias[i] = 2*s, 2*m-1
	}
	g := images.Graph()
	x := ConvertDType(images, dtypes.Float32)
	return Add(Mul(x, ExpandLeftToRank(Const(g, scale), x.Rank())), ExpandLeftToRank(Const(g, bias), x.Rank()))
}

// Pixels converts an 8-bit RGB image (HWC) to the network's input values
// exactly as the quantized model reads them: (p - zero_point) * scale with
// the file's input quantization ((p - 128)/128 for the MobileNet files).
// Float files (no input quantization) get the "half" mapping p/127.5 - 1.
func (n *Network) Pixels(im *data.Image) []float32 {
	out := make([]float32, len(im.Pix))
	q := n.model.Main().Input(0).Quant
	if q == nil {
		for i, p := range im.Pix {
			out[i] = float32(p)/127.5 - 1
		}
		return out
	}
	s, z := float64(q.ScaleAt(0)), float64(q.ZeroPointAt(0))
	for i, p := range im.Pix {
		out[i] = float32((float64(p) - z) * s)
	}
	return out
}
