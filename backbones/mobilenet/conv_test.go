package mobilenet

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/backbones/tflite"
)

func randSlice(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// naiveConv is a direct NHWC convolution with TFLite padding: kernel
// [kh, kw, cin, cout], or depthwise [kh, kw, c] when depthwise.
func naiveConv(x []float32, b, h, w, cin int, k []float32, kh, kw, cout int, p Conv2DParams, depthwise bool) ([]float32, int, int) {
	p = p.norm()
	ho, pt, _ := Padding(p.Padding, h, kh, p.StrideH, p.DilationH)
	wo, pl, _ := Padding(p.Padding, w, kw, p.StrideW, p.DilationW)
	out := make([]float32, b*ho*wo*cout)
	for n := range b {
		for oy := range ho {
			for ox := range wo {
				for co := range cout {
					var s float64
					for ky := range kh {
						for kx := range kw {
							iy, ix := oy*p.StrideH-pt+ky*p.DilationH, ox*p.StrideW-pl+kx*p.DilationW
							if iy < 0 || iy >= h || ix < 0 || ix >= w {
								continue
							}
							base := ((n*h+iy)*w + ix) * cin
							if depthwise {
								s += float64(x[base+co]) * float64(k[(ky*kw+kx)*cout+co])
								continue
							}
							for ci := range cin {
								s += float64(x[base+ci]) * float64(k[((ky*kw+kx)*cin+ci)*cout+co])
							}
						}
					}
					out[((n*ho+oy)*wo+ox)*cout+co] = float32(s)
				}
			}
		}
	}
	return out, ho, wo
}

func TestPadding(t *testing.T) {
	for _, tc := range []struct {
		p                  tflite.Padding
		in, k, stride      int
		out, before, after int
	}{
		{tflite.Same, 224, 3, 2, 112, 0, 1}, // TFLite: the extra pixel goes after
		{tflite.Same, 7, 3, 2, 4, 1, 1},
		{tflite.Same, 8, 3, 1, 8, 1, 1},
		{tflite.Same, 8, 4, 1, 8, 1, 2},
		{tflite.Same, 5, 1, 2, 3, 0, 0},
		{tflite.Valid, 7, 7, 2, 1, 0, 0},
		{tflite.Valid, 9, 3, 2, 4, 0, 0},
	} {
		out, before, after := Padding(tc.p, tc.in, tc.k, tc.stride, 1)
		if out != tc.out || before != tc.before || after != tc.after {
			t.Errorf("Padding(%s, in=%d, k=%d, s=%d) = %d, %d, %d; want %d, %d, %d",
				tc.p, tc.in, tc.k, tc.stride, out, before, after, tc.out, tc.before, tc.after)
		}
	}
}

func TestConvAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	backend := gobackend.GetBackend()
	const b, h, w, cin, cout = 2, 7, 8, 3, 5
	for _, tc := range []struct {
		name      string
		k         int
		p         Conv2DParams
		depthwise bool
	}{
		{"3x3-same-s1", 3, Conv2DParams{Padding: tflite.Same}, false},
		{"3x3-same-s2", 3, Conv2DParams{Padding: tflite.Same, StrideH: 2, StrideW: 2}, false},
		{"3x3-valid-s2", 3, Conv2DParams{Padding: tflite.Valid, StrideH: 2, StrideW: 2}, false},
		{"4x4-same-s1-asymmetric", 4, Conv2DParams{Padding: tflite.Same}, false},
		{"3x3-same-dilation2", 3, Conv2DParams{Padding: tflite.Same, DilationH: 2, DilationW: 2}, false},
		{"1x1-s1-matmul", 1, Conv2DParams{Padding: tflite.Same}, false},
		{"1x1-s2", 1, Conv2DParams{Padding: tflite.Same, StrideH: 2, StrideW: 2}, false},
		{"dw-3x3-same-s1", 3, Conv2DParams{Padding: tflite.Same}, true},
		{"dw-3x3-same-s2", 3, Conv2DParams{Padding: tflite.Same, StrideH: 2, StrideW: 2}, true},
		{"dw-5x5-valid-s1", 5, Conv2DParams{Padding: tflite.Valid}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := randSlice(r, b*h*w*cin)
			co, kdims := cout, []int{tc.k, tc.k, cin, cout}
			if tc.depthwise {
				co, kdims = cin, []int{tc.k, tc.k, cin}
			}
			k := randSlice(r, prod(kdims))
			want, ho, wo := naiveConv(x, b, h, w, cin, k, tc.k, tc.k, co, tc.p, tc.depthwise)
			got := model.MustNewExec(backend, model.NewStore(), func(_ *model.Scope, xn, kn *Node) *Node {
				if tc.depthwise {
					return DepthwiseConv2D(xn, kn, tc.p)
				}
				return Conv2D(xn, kn, tc.p)
			}).MustCall1(tensors.FromFlatDataAndDimensions(x, b, h, w, cin), tensors.FromFlatDataAndDimensions(k, kdims...))
			if dims := got.Shape().Dimensions; dims[1] != ho || dims[2] != wo || dims[3] != co {
				t.Fatalf("shape %v, want [%d %d %d %d]", dims, b, ho, wo, co)
			}
			assertClose(t, tensors.MustCopyFlatData[float32](got), want, 1e-4)
		})
	}
}

func TestAveragePoolSame(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const h, w, c = 5, 6, 2
	x := randSlice(r, h*w*c)
	p := Conv2DParams{Padding: tflite.Same, StrideH: 2, StrideW: 2}
	got := model.MustNewExec(gobackend.GetBackend(), model.NewStore(), func(_ *model.Scope, xn *Node) *Node {
		return AveragePool2D(xn, 3, 3, p)
	}).MustCall1(tensors.FromFlatDataAndDimensions(x, 1, h, w, c))
	ho, pt, _ := Padding(tflite.Same, h, 3, 2, 1)
	wo, pl, _ := Padding(tflite.Same, w, 3, 2, 1)
	var want []float32
	for oy := range ho {
		for ox := range wo {
			for ch := range c {
				var s float64
				n := 0
				for ky := range 3 {
					for kx := range 3 {
						iy, ix := oy*2-pt+ky, ox*2-pl+kx
						if iy >= 0 && iy < h && ix >= 0 && ix < w {
							s += float64(x[(iy*w+ix)*c+ch])
							n++
						}
					}
				}
				want = append(want, float32(s/float64(n)))
			}
		}
	}
	assertClose(t, tensors.MustCopyFlatData[float32](got), want, 1e-5)
}

func shapesF32(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }

func assertClose(t *testing.T, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > tol*(1+math.Abs(float64(want[i]))) || math.IsNaN(float64(got[i])) {
			t.Fatalf("element %d: got %g, want %g", i, got[i], want[i])
		}
	}
}
