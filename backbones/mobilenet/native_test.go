package mobilenet

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/backbones/tflite"
	"github.com/peco-dev/peco/cpu"
)

// TestConv2DNativeMatchesIm2Col compares Conv2D on the cpu backend (one
// ConvGeneral) with Conv2D on the go backend (im2col): outputs and the
// gradients for the input and the kernel.
func TestConv2DNativeMatchesIm2Col(t *testing.T) {
	ours, err := cpu.New("")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(11, 12))
	const b, h, w, cin, cout = 2, 9, 8, 3, 5
	for _, tc := range []struct {
		name string
		k    int
		p    Conv2DParams
	}{
		{"3x3-same-s1", 3, Conv2DParams{Padding: tflite.Same}},
		{"3x3-same-s2", 3, Conv2DParams{Padding: tflite.Same, StrideH: 2, StrideW: 2}},
		{"3x3-valid-s2", 3, Conv2DParams{Padding: tflite.Valid, StrideH: 2, StrideW: 2}},
		{"3x3-same-dilation2", 3, Conv2DParams{Padding: tflite.Same, DilationH: 2, DilationW: 2}},
		{"5x5-same-s2", 5, Conv2DParams{Padding: tflite.Same, StrideH: 2, StrideW: 2}},
		{"4x4-same-s1 (im2col on both)", 4, Conv2DParams{Padding: tflite.Same}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := tensors.FromFlatDataAndDimensions(randSlice(r, b*h*w*cin), b, h, w, cin)
			k := tensors.FromFlatDataAndDimensions(randSlice(r, tc.k*tc.k*cin*cout), tc.k, tc.k, cin, cout)
			fn := func(x, k *Node) []*Node {
				y := Conv2D(x, k, tc.p)
				v := Sin(Iota(x.Graph(), y.Shape(), 1)) // fixed weights for the loss
				g := Gradient(ReduceAllSum(Mul(y, v)), x, k)
				return []*Node{y, g[0], g[1]}
			}
			run := func(be compute.Backend) []*tensors.Tensor {
				xc, err := x.LocalClone()
				if err != nil {
					t.Fatal(err)
				}
				kc, err := k.LocalClone()
				if err != nil {
					t.Fatal(err)
				}
				return MustNewExec(be, fn).MustExec(xc, kc)
			}
			want, got := run(gobackend.GetBackend()), run(ours)
			for i := range want {
				assertClose(t, tensors.MustCopyFlatData[float32](got[i]), tensors.MustCopyFlatData[float32](want[i]), 1e-4)
			}
		})
	}
}
