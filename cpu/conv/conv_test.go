package conv

import (
	"math"
	"math/rand/v2"
	"testing"
)

// unravel writes the row-major multi-index of flat in dims into idx.
func unravel(idx []int, flat int, dims []int) {
	for d := len(dims) - 1; d >= 0; d-- {
		idx[d] = flat % dims[d]
		flat /= dims[d]
	}
}

// sourcePosition is the flat input position that output position oi reads
// through kernel tap ti, straight from the semantics (stride, kernel and
// input dilation, low padding); false where it falls in the padding or
// between dilated input elements.
func sourcePosition(p *Params, oi, ti []int) (int, bool) {
	src := 0
	for d := range p.InSpatial {
		x := oi[d]*at(p.Strides, d, 1) + ti[d]*at(p.KernelDilations, d, 1) - at(p.PadLow, d, 0)
		id := at(p.InputDilations, d, 1)
		if x < 0 || x > (p.InSpatial[d]-1)*id || x%id != 0 {
			return 0, false
		}
		src = src*p.InSpatial[d] + x/id
	}
	return src, true
}

// naive is a direct loop over the semantics in the package documentation,
// in float64.
func naive(in, kernel []float32, p *Params) []float64 {
	n := len(p.InSpatial)
	cgc, bgc := max(p.ChannelGroups, 1), max(p.BatchGroups, 1)
	g := max(cgc, bgc)
	cg, og, bo := p.Channels/cgc, p.OutChannels/g, p.Batch/bgc
	taps, positions := prod(p.KernelSpatial), prod(p.OutSpatial)
	out := make([]float64, bo*positions*p.OutChannels)
	oi, ti := make([]int, n), make([]int, n)
	for b := range bo {
		for pos := range positions {
			unravel(oi, pos, p.OutSpatial)
			for co := range p.OutChannels {
				grp := co / og
				var s float64
				for t := range taps {
					unravel(ti, t, p.KernelSpatial)
					src, ok := sourcePosition(p, oi, ti)
					if !ok {
						continue
					}
					bi := b
					if bgc > 1 {
						bi += grp * bo
					}
					for c := range cg {
						ci := c
						if cgc > 1 {
							ci += grp * cg
						}
						s += float64(in[(bi*prod(p.InSpatial)+src)*p.Channels+ci]) * float64(kernel[(t*cg+c)*p.OutChannels+co])
					}
				}
				out[(b*positions+pos)*p.OutChannels+co] = s
			}
		}
	}
	return out
}

// outDim is the output size of one axis.
func outDim(in, k, stride, lo, hi, idil, kdil int) int {
	return ((in-1)*idil+1+lo+hi-((k-1)*kdil+1))/stride + 1
}

func TestFloat32MatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	type tc struct {
		name                      string
		batch, ch, out            int
		in, k                     []int
		stride, lo, hi, idil, kdl []int
		cgc, bgc                  int
	}
	cases := []tc{
		{"3x3 pad1", 2, 5, 7, []int{6, 5}, []int{3, 3}, nil, []int{1, 1}, []int{1, 1}, nil, nil, 1, 1},
		{"3x3 stride2", 2, 4, 6, []int{9, 8}, []int{3, 3}, []int{2, 2}, []int{1, 1}, []int{1, 0}, nil, nil, 1, 1},
		{"1x1 pointwise", 3, 6, 5, []int{4, 4}, []int{1, 1}, nil, nil, nil, nil, nil, 1, 1},
		{"1x1 stride2", 1, 6, 5, []int{5, 4}, []int{1, 1}, []int{2, 2}, nil, nil, nil, nil, 1, 1},
		{"kernel dilation", 2, 3, 4, []int{9, 9}, []int{3, 2}, nil, []int{2, 1}, []int{2, 1}, nil, []int{2, 3}, 1, 1},
		{"input dilation", 2, 3, 4, []int{5, 4}, []int{3, 3}, nil, []int{2, 2}, []int{2, 1}, []int{2, 3}, nil, 1, 1},
		{"negative padding", 1, 3, 2, []int{8, 7}, []int{2, 2}, []int{1, 2}, []int{-1, 0}, []int{1, -2}, nil, nil, 1, 1},
		{"channel groups", 2, 6, 9, []int{5, 5}, []int{3, 3}, nil, []int{1, 1}, []int{1, 1}, nil, nil, 3, 1},
		{"depthwise", 2, 4, 8, []int{6, 6}, []int{3, 3}, []int{2, 1}, []int{1, 1}, []int{1, 1}, nil, nil, 4, 1},
		{"batch groups", 6, 3, 4, []int{5, 6}, []int{2, 3}, nil, []int{0, 1}, []int{0, 1}, nil, nil, 1, 2},
		{"1d", 3, 4, 5, []int{11}, []int{4}, []int{3}, []int{2}, []int{1}, nil, nil, 1, 1},
		{"3d", 2, 3, 4, []int{4, 5, 3}, []int{2, 3, 2}, []int{1, 2, 1}, []int{1, 0, 1}, []int{0, 1, 0}, nil, nil, 1, 1},
		{"many taps", 2, 300, 3, []int{12, 12}, []int{12, 12}, nil, nil, nil, nil, nil, 1, 1},
		{"k blocks", 2, 512, 20, []int{10, 10}, []int{3, 3}, nil, []int{1, 1}, []int{1, 1}, nil, nil, 1, 1},
		{"weight-grad like", 16, 8, 16, []int{16, 16}, []int{16, 16}, nil, []int{1, 1}, []int{1, 1}, nil, nil, 1, 1},
		{"big rows", 4, 16, 24, []int{40, 40}, []int{3, 3}, nil, []int{1, 1}, []int{1, 1}, nil, nil, 1, 1},
		{"grouped k blocks", 2, 600, 4, []int{6, 6}, []int{5, 5}, nil, []int{2, 2}, []int{2, 2}, nil, nil, 2, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := len(c.in)
			p := &Params{Batch: c.batch, Channels: c.ch, InSpatial: c.in, KernelSpatial: c.k, OutChannels: c.out,
				Strides: c.stride, PadLow: c.lo, InputDilations: c.idil, KernelDilations: c.kdl,
				ChannelGroups: c.cgc, BatchGroups: c.bgc}
			p.OutSpatial = make([]int, n)
			for d := range n {
				p.OutSpatial[d] = outDim(c.in[d], c.k[d], at(c.stride, d, 1), at(c.lo, d, 0), at(c.hi, d, 0), at(c.idil, d, 1), at(c.kdl, d, 1))
			}
			in := make([]float32, c.batch*prod(c.in)*c.ch)
			for i := range in {
				in[i] = float32(r.NormFloat64())
			}
			kernel := make([]float32, prod(c.k)*c.ch/max(c.cgc, 1)*c.out)
			for i := range kernel {
				kernel[i] = float32(r.NormFloat64())
			}
			out := make([]float32, c.batch/max(c.bgc, 1)*prod(p.OutSpatial)*c.out)
			for i := range out {
				out[i] = float32(math.NaN()) // stale contents must be overwritten
			}
			if err := Float32(out, in, kernel, p); err != nil {
				t.Fatal(err)
			}
			want := naive(in, kernel, p)
			for i := range want {
				if d := math.Abs(float64(out[i]) - want[i]); !(d <= 1e-4*(math.Abs(want[i])+math.Sqrt(float64(prod(c.k)*c.ch)))) {
					t.Fatalf("element %d of %d: got %v, want %v", i, len(want), out[i], want[i])
				}
			}
		})
	}
}

func TestFloat32Errors(t *testing.T) {
	p := &Params{Batch: 1, Channels: 2, InSpatial: []int{3}, KernelSpatial: []int{2}, OutChannels: 1, OutSpatial: []int{2}}
	if err := Float32(make([]float32, 2), make([]float32, 5), make([]float32, 4), p); err == nil {
		t.Error("wrong input size: no error")
	}
	p.ChannelGroups, p.BatchGroups = 2, 2
	if err := Float32(make([]float32, 2), make([]float32, 6), make([]float32, 2), p); err == nil {
		t.Error("both group counts: no error")
	}
}

// naiveKernelGrad is the kernel gradient of the convolution p (one group)
// by a direct loop, in float64: out[t, c, co] = sum over b and output
// positions o of in[b, pos(o, t), c] * dy[b, o, co].
func naiveKernelGrad(in, dy []float32, p *Params) []float64 {
	n := len(p.InSpatial)
	taps, positions := prod(p.KernelSpatial), prod(p.OutSpatial)
	out := make([]float64, taps*p.Channels*p.OutChannels)
	oi, ti := make([]int, n), make([]int, n)
	for t := range taps {
		unravel(ti, t, p.KernelSpatial)
		for b := range p.Batch {
			for pos := range positions {
				unravel(oi, pos, p.OutSpatial)
				src, ok := sourcePosition(p, oi, ti)
				if !ok {
					continue
				}
				row := in[(b*prod(p.InSpatial)+src)*p.Channels:]
				g := dy[(b*positions+pos)*p.OutChannels:]
				for c := range p.Channels {
					for co := range p.OutChannels {
						out[(t*p.Channels+c)*p.OutChannels+co] += float64(row[c]) * float64(g[co])
					}
				}
			}
		}
	}
	return out
}

func TestKernelGradMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	type tc struct {
		name                      string
		batch, ch, out            int
		in, k                     []int
		stride, lo, hi, idil, kdl []int
	}
	cases := []tc{
		{"3x3 pad1", 2, 5, 7, []int{6, 5}, []int{3, 3}, nil, []int{1, 1}, []int{1, 1}, nil, nil},
		{"3x3 stride2", 2, 4, 6, []int{9, 8}, []int{3, 3}, []int{2, 2}, []int{1, 1}, []int{1, 0}, nil, nil},
		{"1x1 pointwise", 3, 6, 5, []int{4, 4}, []int{1, 1}, nil, nil, nil, nil, nil},
		{"1x1 stride2", 1, 6, 5, []int{5, 4}, []int{1, 1}, []int{2, 2}, nil, nil, nil, nil},
		{"5x5 valid", 2, 3, 4, []int{9, 7}, []int{5, 5}, nil, nil, nil, nil, nil},
		{"kernel dilation", 2, 3, 4, []int{9, 9}, []int{3, 2}, nil, []int{2, 1}, []int{2, 1}, nil, []int{2, 3}},
		{"input dilation", 2, 3, 4, []int{5, 4}, []int{3, 3}, nil, []int{2, 2}, []int{2, 1}, []int{2, 3}, nil},
		{"negative padding", 1, 3, 2, []int{8, 7}, []int{2, 2}, []int{1, 2}, []int{-1, 0}, []int{1, -2}, nil, nil},
		{"1d", 3, 4, 5, []int{11}, []int{4}, []int{3}, []int{2}, []int{1}, nil, nil},
		{"3d", 2, 3, 4, []int{4, 5, 3}, []int{2, 3, 2}, []int{1, 2, 1}, []int{1, 0, 1}, []int{0, 1, 0}, nil, nil},
		{"stride and dilation", 2, 3, 4, []int{11, 10}, []int{3, 2}, []int{2, 3}, []int{2, 0}, []int{1, 2}, nil, []int{3, 2}},
		{"row blocks", 16, 40, 24, []int{24, 24}, []int{3, 3}, nil, []int{1, 1}, []int{1, 1}, nil, nil},
		{"tap blocks", 2, 700, 3, []int{8, 7}, []int{7, 7}, nil, []int{3, 3}, []int{3, 3}, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := len(c.in)
			p := &Params{Batch: c.batch, Channels: c.ch, InSpatial: c.in, KernelSpatial: c.k, OutChannels: c.out,
				Strides: c.stride, PadLow: c.lo, InputDilations: c.idil, KernelDilations: c.kdl}
			p.OutSpatial = make([]int, n)
			for d := range n {
				p.OutSpatial[d] = outDim(c.in[d], c.k[d], at(c.stride, d, 1), at(c.lo, d, 0), at(c.hi, d, 0), at(c.idil, d, 1), at(c.kdl, d, 1))
			}
			in := make([]float32, c.batch*prod(c.in)*c.ch)
			for i := range in {
				in[i] = float32(r.NormFloat64())
			}
			dy := make([]float32, c.batch*prod(p.OutSpatial)*c.out)
			for i := range dy {
				dy[i] = float32(r.NormFloat64())
			}
			out := make([]float32, prod(c.k)*c.ch*c.out)
			for i := range out {
				out[i] = float32(math.NaN())
			}
			if err := KernelGradFloat32(out, in, dy, p); err != nil {
				t.Fatal(err)
			}
			want := naiveKernelGrad(in, dy, p)
			depth := float64(c.batch * prod(p.OutSpatial))
			for i := range want {
				if d := math.Abs(float64(out[i]) - want[i]); !(d <= 1e-4*(math.Abs(want[i])+math.Sqrt(depth))) {
					t.Fatalf("element %d of %d: got %v, want %v", i, len(want), out[i], want[i])
				}
			}
		})
	}
	p := &Params{Batch: 1, Channels: 2, InSpatial: []int{3}, KernelSpatial: []int{2}, OutChannels: 2, OutSpatial: []int{2}, ChannelGroups: 2}
	if err := KernelGradFloat32(make([]float32, 4), make([]float32, 6), make([]float32, 4), p); err == nil {
		t.Error("grouped: no error")
	}
}
