package conv

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// naiveConv is a direct loop convolution over NHWC with weight rows in
// (ky, kx, cin) order.
func naiveConv(x []float32, b, h, w, cin int, wt []float32, cout, k, stride, pad int) ([]float32, int, int) {
	ho := (h+2*pad-k)/stride + 1
	wo := (w+2*pad-k)/stride + 1
	out := make([]float32, b*ho*wo*cout)
	for n := range b {
		for oy := range ho {
			for ox := range wo {
				for co := range cout {
					var s float64
					for ky := range k {
						for kx := range k {
							iy, ix := oy*stride+ky-pad, ox*stride+kx-pad
							if iy < 0 || iy >= h || ix < 0 || ix >= w {
								continue
							}
							for ci := range cin {
								s += float64(x[((n*h+iy)*w+ix)*cin+ci]) * float64(wt[((ky*k+kx)*cin+ci)*cout+co])
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

func TestIm2ColConvMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name                        string
		b, h, w, cin, cout, k, s, p int
	}{
		{"3x3 stride1 pad1", 2, 5, 6, 3, 4, 3, 1, 1},
		{"3x3 stride2 pad1", 2, 8, 8, 3, 5, 3, 2, 1},
		{"3x3 stride2 pad1 odd", 1, 7, 9, 2, 3, 3, 2, 1},
		{"1x1", 2, 4, 4, 6, 2, 1, 1, 0},
		{"4x4 stride2 pad0", 1, 8, 6, 2, 2, 4, 2, 0},
		{"5x5 stride1 pad2", 1, 6, 6, 2, 3, 5, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := make([]float32, tc.b*tc.h*tc.w*tc.cin)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			wt := make([]float32, tc.k*tc.k*tc.cin*tc.cout)
			for i := range wt {
				wt[i] = float32(r.NormFloat64())
			}
			want, ho, wo := naiveConv(x, tc.b, tc.h, tc.w, tc.cin, wt, tc.cout, tc.k, tc.s, tc.p)
			out := MustExecOnce(gobackend.GetBackend(), func(x, w *Node) *Node {
				return Im2ColConv(x, w, tc.k, tc.s, tc.p)
			}, tensors.FromFlatDataAndDimensions(x, tc.b, tc.h, tc.w, tc.cin),
				tensors.FromFlatDataAndDimensions(wt, tc.k*tc.k*tc.cin, tc.cout))
			if got := out.Shape().Dimensions; got[1] != ho || got[2] != wo || got[3] != tc.cout {
				t.Fatalf("shape %v, want [%d %d %d %d]", got, tc.b, ho, wo, tc.cout)
			}
			got := tensors.MustCopyFlatData[float32](out)
			for i := range want {
				if math.Abs(float64(got[i]-want[i])) > 1e-4 {
					t.Fatalf("element %d: got %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestGroupNormNormalisesGroups(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const b, h, w, c, groups = 2, 3, 3, 4, 2
	x := make([]float32, b*h*w*c)
	for i := range x {
		x[i] = float32(r.NormFloat64()*3 + float64(i%c))
	}
	out := model.MustNewExec(gobackend.GetBackend(), model.NewStore(), func(scope *model.Scope, x *Node) *Node {
		return GroupNorm(scope.In("gn"), x, groups)
	}).MustExec(tensors.FromFlatDataAndDimensions(x, b, h, w, c))[0]
	got := tensors.MustCopyFlatData[float32](out)
	// Each (sample, group) has mean 0 and variance ~1 over its H*W*(C/groups) values.
	for n := range b {
		for gi := range groups {
			var s, s2 float64
			cnt := 0
			for p := range h * w {
				for cc := gi * c / groups; cc < (gi+1)*c/groups; cc++ {
					v := float64(got[(n*h*w+p)*c+cc])
					s += v
					s2 += v * v
					cnt++
				}
			}
			mean := s / float64(cnt)
			if v := s2/float64(cnt) - mean*mean; math.Abs(mean) > 1e-4 || math.Abs(v-1) > 1e-3 {
				t.Errorf("sample %d group %d: mean %v variance %v, want 0 and 1", n, gi, mean, v)
			}
		}
	}
}

func TestUpsample2x(t *testing.T) {
	x := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 4}, 1, 2, 2, 1)
	out := MustExecOnce(gobackend.GetBackend(), Upsample2x, x)
	got := tensors.MustCopyFlatData[float32](out)
	want := []float32{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestReLUAndMaxPool2x(t *testing.T) {
	// 1 x 4 x 4 x 2: channel 0 counts up, channel 1 is its negation.
	vals := make([]float32, 32)
	for i := range 16 {
		vals[2*i], vals[2*i+1] = float32(i), -float32(i)
	}
	x := tensors.FromFlatDataAndDimensions(vals, 1, 4, 4, 2)
	got := tensors.MustCopyFlatData[float32](MustExecOnce(gobackend.GetBackend(), MaxPool2x, x))
	var want []float32
	for by := 0; by < 2; by++ {
		for bx := 0; bx < 2; bx++ {
			for c := 0; c < 2; c++ {
				m := float32(math.Inf(-1))
				for dy := 0; dy < 2; dy++ {
					for dx := 0; dx < 2; dx++ {
						m = max(m, vals[((2*by+dy)*4+2*bx+dx)*2+c])
					}
				}
				want = append(want, m)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("MaxPool2x = %v, want %v", got, want)
	}
	r := tensors.MustCopyFlatData[float32](MustExecOnce(gobackend.GetBackend(), ReLU,
		tensors.FromFlatDataAndDimensions([]float32{-2, -0.5, 0, 0.5, 3}, 5)))
	if fmt.Sprint(r) != fmt.Sprint([]float32{0, 0, 0, 0.5, 3}) {
		t.Errorf("ReLU = %v", r)
	}
}

func TestEncoderDecoderShapesAndGradient(t *testing.T) {
	for _, tc := range []struct {
		mults []int
		attn  bool
	}{{[]int{1, 2}, false}, {[]int{1, 1, 2}, true}} {
		cfg := Config{Width: 8, Mults: tc.mults, Blocks: 1, Attention: tc.attn, Groups: 4}
		f := cfg.Factor()
		pix := make([]float32, 2*16*16*3)
		for i := range pix {
			pix[i] = float32(math.Sin(float64(i)))
		}
		x := tensors.FromFlatDataAndDimensions(pix, 2, 16, 16, 3)
		outs := model.MustNewExec(gobackend.GetBackend(), model.NewStore(), func(scope *model.Scope, x *Node) []*Node {
			z := Encoder(scope.In("enc"), x, cfg, 5)
			y := Decoder(scope.In("dec"), z, cfg, 3)
			loss := ReduceAllMean(Square(Sub(y, x)))
			grad := Gradient(loss, z)[0]
			return []*Node{z, y, ReduceAllSum(Abs(grad))}
		}).MustExec(x)
		if d := outs[0].Shape().Dimensions; d[1] != 16/f || d[2] != 16/f || d[3] != 5 {
			t.Errorf("mults %v: z shape %v, want [2 %d %d 5]", tc.mults, d, 16/f, 16/f)
		}
		if d := outs[1].Shape().Dimensions; d[1] != 16 || d[2] != 16 || d[3] != 3 {
			t.Errorf("mults %v: reconstruction shape %v", tc.mults, d)
		}
		if g := tensors.ToScalar[float32](outs[2]); !(g > 0) {
			t.Errorf("mults %v: gradient wrt z is %v, want > 0", tc.mults, g)
		}
	}
}
