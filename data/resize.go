package data

import (
	"fmt"
	"math"
	"strings"
)

// Filter selects the interpolation of a resize.
//
// The convolution filters (Bilinear, Bicubic, Lanczos) follow Pillow's
// Image.resize, which is also what torchvision does for PIL images and for
// tensors with antialias=True: when downscaling by a factor s > 1 the filter's
// support is widened by s, so every source pixel contributes (an area-like,
// antialiased reduction) instead of only the 2x2 / 4x4 neighbours of the
// sample point. Nearest picks the source pixel under the output pixel's
// centre (Pillow's NEAREST); it is the filter for label maps and masks.
type Filter int

const (
	// Bilinear is the triangle filter (support 1), Pillow's BILINEAR.
	Bilinear Filter = iota
	// Bicubic is the cubic convolution filter with a = -0.5 (support 2),
	// Pillow's BICUBIC.
	Bicubic
	// Lanczos is the Lanczos-3 windowed sinc (support 3), Pillow's LANCZOS.
	Lanczos
	// Nearest copies the source pixel under each output pixel's centre.
	Nearest
)

// ParseFilter maps a configuration name ("bilinear", "bicubic", "lanczos",
// "nearest"; empty means bilinear) to a Filter.
func ParseFilter(name string) (Filter, error) {
	switch strings.ToLower(name) {
	case "", "bilinear", "linear":
		return Bilinear, nil
	case "bicubic", "cubic":
		return Bicubic, nil
	case "lanczos", "lanczos3":
		return Lanczos, nil
	case "nearest":
		return Nearest, nil
	}
	return 0, fmt.Errorf("data: unknown interpolation %q (want bilinear, bicubic, lanczos or nearest)", name)
}

// String returns the configuration name of f.
func (f Filter) String() string {
	switch f {
	case Bilinear:
		return "bilinear"
	case Bicubic:
		return "bicubic"
	case Lanczos:
		return "lanczos"
	case Nearest:
		return "nearest"
	}
	return fmt.Sprintf("Filter(%d)", int(f))
}

func (f Filter) support() float64 {
	switch f {
	case Bicubic:
		return 2
	case Lanczos:
		return 3
	}
	return 1
}

func (f Filter) kernel(x float64) float64 {
	if x < 0 {
		x = -x
	}
	switch f {
	case Bicubic:
		const a = -0.5
		if x < 1 {
			return ((a+2)*x-(a+3))*x*x + 1
		}
		if x < 2 {
			return (((x-5)*x+8)*x - 4) * a
		}
		return 0
	case Lanczos:
		if x < 3 {
			return sinc(x) * sinc(x/3)
		}
		return 0
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x *= math.Pi
	return math.Sin(x) / x
}

// Rect is an integer pixel region: rows [Top, Top+H), columns [Left, Left+W).
type Rect struct{ Top, Left, H, W int }

// Full returns the rectangle covering a whole h x w image.
func Full(h, w int) Rect { return Rect{H: h, W: w} }

// inside reports whether r lies within an h x w image and is non-empty.
func (r Rect) inside(h, w int) bool {
	return r.H > 0 && r.W > 0 && r.Top >= 0 && r.Left >= 0 && r.Top+r.H <= h && r.Left+r.W <= w
}

// axisCoeffs holds, for each output index along one axis, the first source
// index and the normalized filter weights.
type axisCoeffs struct {
	start []int
	n     []int
	ksize int
	w     []float32 // len(start)*ksize
}

// computeCoeffs computes the weights for resizing the source span
// [inStart, inStart+inLen) to outFull samples, returning only output indices
// [outOff, outOff+outN) (the rest of a resize-then-crop is never computed).
// Output indices outside [0, outFull) get no taps and come out as zero.
// Source taps are clamped to the span, as if it had been cropped first.
// This is Pillow's precompute_coeffs.
func computeCoeffs(inStart, inLen, outFull, outOff, outN int, f Filter) axisCoeffs {
	scale := float64(inLen) / float64(outFull)
	fscale := max(scale, 1)
	support := f.support() * fscale
	ksize := int(math.Ceil(support))*2 + 1
	c := axisCoeffs{start: make([]int, outN), n: make([]int, outN), ksize: ksize, w: make([]float32, outN*ksize)}
	ss := 1 / fscale
	tmp := make([]float64, ksize)
	for i := range outN {
		xx := outOff + i
		if xx < 0 || xx >= outFull {
			c.start[i] = inStart
			continue
		}
		center := (float64(xx) + 0.5) * scale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), inLen)
		var sum float64
		n := 0
		for x := xmin; x < xmax && n < ksize; x++ {
			v := f.kernel((float64(x) - center + 0.5) * ss)
			tmp[n] = v
			sum += v
			n++
		}
		for k := range n {
			if sum != 0 {
				tmp[k] /= sum
			}
			c.w[i*ksize+k] = float32(tmp[k])
		}
		c.start[i] = inStart + xmin
		c.n[i] = n
	}
	return c
}

// nearestIndex returns the source indices of a nearest-neighbour resize of
// [inStart, inStart+inLen) to outFull samples, for outputs [outOff,
// outOff+outN); -1 marks outputs outside [0, outFull).
func nearestIndex(inStart, inLen, outFull, outOff, outN int) []int {
	idx := make([]int, outN)
	scale := float64(inLen) / float64(outFull)
	for i := range outN {
		xx := outOff + i
		if xx < 0 || xx >= outFull {
			idx[i] = -1
			continue
		}
		s := int((float64(xx) + 0.5) * scale)
		idx[i] = inStart + min(max(s, 0), inLen-1)
	}
	return idx
}

func clip8(v float32) uint8 {
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return uint8(v + 0.5)
}

// resample resizes the region src of im to a virtual fullH x fullW image and
// returns its window of outH x outW pixels at (offY, offX) — i.e. crop(src),
// resize to fullH x fullW, then crop (offY, offX, outH, outW), computing only
// the pixels that survive. Pixels of the window outside the resized image are
// zero. src must lie inside im.
func resample(im *Image, src Rect, fullH, fullW, offY, offX, outH, outW int, f Filter) *Image {
	out := NewImage(outH, outW, im.C)
	if f == Nearest {
		ys := nearestIndex(src.Top, src.H, fullH, offY, outH)
		xs := nearestIndex(src.Left, src.W, fullW, offX, outW)
		resampleNearest(im.Pix, im.W, im.C, ys, xs, out.Pix)
		return out
	}
	cy := computeCoeffs(src.Top, src.H, fullH, offY, outH, f)
	cx := computeCoeffs(src.Left, src.W, fullW, offX, outW, f)
	// Rows of the source the vertical pass needs.
	lo, hi := math.MaxInt, -1
	for i := range outH {
		if cy.n[i] > 0 {
			lo = min(lo, cy.start[i])
			hi = max(hi, cy.start[i]+cy.n[i])
		}
	}
	if hi < 0 {
		return out
	}
	C := im.C
	// Horizontal pass into a float buffer of (hi-lo) x outW x C.
	tmp := make([]float32, (hi-lo)*outW*C)
	acc := make([]float32, C)
	for y := lo; y < hi; y++ {
		row := im.Pix[y*im.W*C : (y+1)*im.W*C]
		trow := tmp[(y-lo)*outW*C : (y-lo+1)*outW*C]
		for x := range outW {
			n := cx.n[x]
			if n == 0 {
				continue
			}
			ws := cx.w[x*cx.ksize : x*cx.ksize+n]
			base := cx.start[x] * C
			if C == 3 {
				var a0, a1, a2 float32
				for k, w := range ws {
					p := row[base+k*3 : base+k*3+3]
					a0 += w * float32(p[0])
					a1 += w * float32(p[1])
					a2 += w * float32(p[2])
				}
				trow[x*3], trow[x*3+1], trow[x*3+2] = a0, a1, a2
				continue
			}
			clear(acc)
			for k, w := range ws {
				p := row[base+k*C : base+k*C+C]
				for c := range C {
					acc[c] += w * float32(p[c])
				}
			}
			copy(trow[x*C:x*C+C], acc)
		}
	}
	// Vertical pass.
	rowLen := outW * C
	accRow := make([]float32, rowLen)
	for y := range outH {
		n := cy.n[y]
		if n == 0 {
			continue
		}
		clear(accRow)
		ws := cy.w[y*cy.ksize : y*cy.ksize+n]
		base := cy.start[y] - lo
		for k, w := range ws {
			trow := tmp[(base+k)*rowLen : (base+k+1)*rowLen]
			for i, v := range trow {
				accRow[i] += w * v
			}
		}
		orow := out.Pix[y*rowLen : (y+1)*rowLen]
		for x := range outW {
			if cx.n[x] == 0 {
				continue
			}
			for c := range C {
				orow[x*C+c] = clip8(accRow[x*C+c])
			}
		}
	}
	return out
}

// resampleNearest gathers dst[y][x] = src[ys[y]][xs[x]] for c-channel pixels
// (width w in src); negative indices leave zeros.
func resampleNearest(src []uint8, w, c int, ys, xs []int, dst []uint8) {
	outW := len(xs)
	for y, sy := range ys {
		if sy < 0 {
			continue
		}
		for x, sx := range xs {
			if sx < 0 {
				continue
			}
			copy(dst[(y*outW+x)*c:(y*outW+x+1)*c], src[(sy*w+sx)*c:(sy*w+sx+1)*c])
		}
	}
}

// Resize returns im resized to h x w with filter f.
func Resize(im *Image, h, w int, f Filter) *Image {
	return resample(im, Full(im.H, im.W), h, w, 0, 0, h, w, f)
}

// ResizedCrop crops region r of im and resizes it to h x w (torchvision's
// resized_crop); only pixels inside r contribute. r must lie inside im.
func ResizedCrop(im *Image, r Rect, h, w int, f Filter) (*Image, error) {
	if !r.inside(im.H, im.W) {
		return nil, fmt.Errorf("data: crop %+v outside %v", r, im)
	}
	return resample(im, r, h, w, 0, 0, h, w, f), nil
}

// ShorterSideSize returns the size torchvision's Resize(size) gives an h x w
// image: the shorter side becomes size and the longer one
// int(size * long / short), truncated.
func ShorterSideSize(h, w, size int) (int, int) {
	if h <= w {
		return size, int(float64(size) * float64(w) / float64(h))
	}
	return int(float64(size) * float64(h) / float64(w)), size
}

// ResizeShorter resizes im so that its shorter side is size, keeping the
// aspect ratio (torchvision's Resize(int)).
func ResizeShorter(im *Image, size int, f Filter) *Image {
	h, w := ShorterSideSize(im.H, im.W, size)
	return Resize(im, h, w, f)
}

// ResizeShorterCenterCrop resizes im so its shorter side is resize and then
// takes the central size x size crop, computing only the kept pixels. It
// equals torchvision's Compose([Resize(resize), CenterCrop(size)]).
func ResizeShorterCenterCrop(im *Image, resize, size int, f Filter) *Image {
	h, w := ShorterSideSize(im.H, im.W, resize)
	top, left := centerOffset(h, size), centerOffset(w, size)
	return resample(im, Full(im.H, im.W), h, w, top, left, size, size, f)
}

// centerOffset is torchvision's center_crop offset: int(round((n - crop) / 2)),
// with Python's round-half-to-even.
func centerOffset(n, crop int) int {
	return int(math.RoundToEven(float64(n-crop) / 2))
}

// Crop returns region r of im; parts of r outside im are zero (torchvision
// pads the same way when a crop is larger than the image).
func Crop(im *Image, r Rect) *Image {
	out := NewImage(r.H, r.W, im.C)
	cropInto(im.Pix, im.H, im.W, im.C, r, out.Pix)
	return out
}

func cropInto(src []uint8, h, w, c int, r Rect, dst []uint8) {
	x0, x1 := max(r.Left, 0), min(r.Left+r.W, w)
	if x1 <= x0 {
		return
	}
	for y := max(r.Top, 0); y < min(r.Top+r.H, h); y++ {
		d := ((y-r.Top)*r.W + x0 - r.Left) * c
		copy(dst[d:d+(x1-x0)*c], src[(y*w+x0)*c:(y*w+x1)*c])
	}
}

// FlipH returns im mirrored left to right.
func FlipH(im *Image) *Image {
	out := NewImage(im.H, im.W, im.C)
	flipHInto(im.Pix, im.H, im.W, im.C, out.Pix)
	return out
}

func flipHInto(src []uint8, h, w, c int, dst []uint8) {
	for y := range h {
		for x := range w {
			s := (y*w + x) * c
			d := (y*w + w - 1 - x) * c
			copy(dst[d:d+c], src[s:s+c])
		}
	}
}

// ResizeMapNearest resizes a single-channel h x w map (label map, instance
// mask) to outH x outW with nearest-neighbour sampling, so class ids are never
// blended.
func ResizeMapNearest(m []uint8, h, w, outH, outW int) []uint8 {
	return ResizedCropMap(m, w, Full(h, w), outH, outW)
}

// ResizedCropMap crops region r of a single-channel map of width w and resizes
// it to outH x outW with nearest-neighbour sampling. r must lie inside the map.
func ResizedCropMap(m []uint8, w int, r Rect, outH, outW int) []uint8 {
	out := make([]uint8, outH*outW)
	ys := nearestIndex(r.Top, r.H, outH, 0, outH)
	xs := nearestIndex(r.Left, r.W, outW, 0, outW)
	resampleNearest(m, w, 1, ys, xs, out)
	return out
}

// CropMap returns region r of a single-channel h x w map; parts outside the
// map are set to fill (use 255, the usual ignore index, for label maps).
func CropMap(m []uint8, h, w int, r Rect, fill uint8) []uint8 {
	out := make([]uint8, r.H*r.W)
	if fill != 0 {
		for i := range out {
			out[i] = fill
		}
	}
	cropInto(m, h, w, 1, r, out)
	return out
}

// FlipMapH returns a single-channel h x w map mirrored left to right.
func FlipMapH(m []uint8, h, w int) []uint8 {
	out := make([]uint8, len(m))
	flipHInto(m, h, w, 1, out)
	return out
}

// ResizeGrid resizes a [h, w, c] float grid (logits, position embeddings)
// bilinearly to [oh, ow, c] with half-pixel centres (PyTorch's
// align_corners=False).
func ResizeGrid(src []float32, h, w, c, oh, ow int) []float32 {
	if h == oh && w == ow {
		return src
	}
	out := make([]float32, oh*ow*c)
	coord := func(o, n, on int) (int, int, float32) {
		f := max((float32(o)+0.5)*float32(n)/float32(on)-0.5, 0)
		i0 := min(int(f), n-1)
		return i0, min(i0+1, n-1), f - float32(i0)
	}
	for y := range oh {
		y0, y1, fy := coord(y, h, oh)
		for x := range ow {
			x0, x1, fx := coord(x, w, ow)
			d := out[(y*ow+x)*c : (y*ow+x+1)*c]
			a, b := src[(y0*w+x0)*c:], src[(y0*w+x1)*c:]
			e, f := src[(y1*w+x0)*c:], src[(y1*w+x1)*c:]
			for j := range c {
				d[j] = (a[j]*(1-fx)+b[j]*fx)*(1-fy) + (e[j]*(1-fx)+f[j]*fx)*fy
			}
		}
	}
	return out
}
