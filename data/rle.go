package data

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// RLE is a COCO run-length encoded binary mask. Counts are run lengths of
// alternating 0s and 1s, starting with 0s (a mask starting with a 1 has a
// first count of 0), over the pixels in column-major order (Fortran order,
// as pycocotools stores masks): pixel (y, x) is at position x*H + y.
type RLE struct {
	H, W   int
	Counts []uint32
}

// Validate checks that the counts cover exactly H*W pixels.
func (r RLE) Validate() error {
	if r.H < 0 || r.W < 0 {
		return fmt.Errorf("rle: negative size %dx%d", r.H, r.W)
	}
	var sum uint64
	for _, c := range r.Counts {
		sum += uint64(c)
	}
	if sum != uint64(r.H)*uint64(r.W) {
		return fmt.Errorf("rle: counts cover %d pixels, size %dx%d has %d", sum, r.H, r.W, r.H*r.W)
	}
	return nil
}

// Mask decodes r into a row-major H*W mask of 0s and 1s, after Validate.
func (r RLE) Mask() ([]uint8, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	m := make([]uint8, r.H*r.W)
	pos := 0
	for k, c := range r.Counts {
		if k%2 == 1 {
			for p := pos; p < pos+int(c); p++ {
				m[(p%r.H)*r.W+p/r.H] = 1
			}
		}
		pos += int(c)
	}
	return m, nil
}

// Area is the number of 1 pixels.
func (r RLE) Area() int {
	a := 0
	for k := 1; k < len(r.Counts); k += 2 {
		a += int(r.Counts[k])
	}
	return a
}

// EncodeRLE run-length encodes a row-major h*w mask (any nonzero byte is a 1)
// the way pycocotools' encode does.
func EncodeRLE(mask []uint8, h, w int) (RLE, error) {
	if len(mask) != h*w {
		return RLE{}, fmt.Errorf("rle: mask has %d bytes, size %dx%d needs %d", len(mask), h, w, h*w)
	}
	r := RLE{H: h, W: w}
	var cur uint8
	var run uint32
	for x := 0; x < w; x++ {
		for y := 0; y < h; y++ {
			v := uint8(0)
			if mask[y*w+x] != 0 {
				v = 1
			}
			if v != cur {
				r.Counts = append(r.Counts, run)
				run, cur = 0, v
			}
			run++
		}
	}
	r.Counts = append(r.Counts, run)
	return r, nil
}

// DecodeRLEString decodes the compressed counts string of a COCO RLE
// ({"counts": "...", "size": [h, w]}) exactly as pycocotools' rleFrString:
// each count is a little-endian sequence of 5-bit groups stored as
// characters 48+group, bit 0x20 marking that more groups follow and bit 0x10
// of the last group the sign; from the fourth count on, the stored value is
// the difference to the count two places earlier.
func DecodeRLEString(s string) ([]uint32, error) {
	counts := make([]uint32, 0, len(s))
	p := 0
	for p < len(s) {
		var x int64
		k := 0
		for more := true; more; k++ {
			if p >= len(s) {
				return nil, errors.New("rle string: truncated count")
			}
			c := int64(s[p]) - 48
			if c < 0 || c > 63 {
				return nil, fmt.Errorf("rle string: invalid character %q at %d", s[p], p)
			}
			if k >= 12 {
				return nil, fmt.Errorf("rle string: count too long at %d", p)
			}
			x |= (c & 0x1f) << (5 * k)
			more = c&0x20 != 0
			p++
			if !more && c&0x10 != 0 {
				x |= -1 << (5 * (k + 1))
			}
		}
		if m := len(counts); m > 2 {
			x += int64(counts[m-2])
		}
		if x < 0 || x > math.MaxUint32 {
			return nil, fmt.Errorf("rle string: count %d of run %d out of range", x, len(counts))
		}
		counts = append(counts, uint32(x))
	}
	return counts, nil
}

// EncodeRLEString is the inverse of DecodeRLEString, pycocotools'
// rleToString.
func EncodeRLEString(counts []uint32) string {
	var s []byte
	for i, c := range counts {
		x := int64(c)
		if i > 2 {
			x -= int64(counts[i-2])
		}
		for more := true; more; {
			b := x & 0x1f
			x >>= 5
			if b&0x10 != 0 {
				more = x != -1
			} else {
				more = x != 0
			}
			if more {
				b |= 0x20
			}
			s = append(s, byte(b+48))
		}
	}
	return string(s)
}

// RasterizePolygons fills COCO polygons (each a flat list x0, y0, x1, y1, ...
// in pixel coordinates, pixel (x, y) covering [x, x+1) x [y, y+1)) into a
// row-major h*w mask of 0s and 1s, the union of the polygons.
//
// Each polygon is filled by scanline with the even-odd rule, sampling at
// pixel centres: pixel (x, y) is set when (x+0.5, y+0.5) is inside. An edge
// crosses a scanline when its end points lie on different sides, an end
// point exactly on the line counting as above it, so that shared vertices
// are counted once; a centre exactly on a left edge is inside, on a right
// edge outside. pycocotools (rleFrPoly) instead quantises the polygon to a
// 1/5 pixel grid and marks the pixels whose centres the quantised boundary
// encloses; the two agree except, at most, for pixels whose centre lies
// within about 0.2 pixel of the boundary. Polygons with fewer than three
// vertices fill nothing.
func RasterizePolygons(polys [][]float64, h, w int) ([]uint8, error) {
	mask := make([]uint8, h*w)
	var xs []float64
	for pi, poly := range polys {
		if len(poly)%2 != 0 {
			return nil, fmt.Errorf("polygon %d has an odd number (%d) of coordinates", pi, len(poly))
		}
		for _, v := range poly {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("polygon %d has a non-finite coordinate", pi)
			}
		}
		n := len(poly) / 2
		if n < 3 {
			continue
		}
		minY, maxY := math.Inf(1), math.Inf(-1)
		for k := 0; k < n; k++ {
			minY = math.Min(minY, poly[2*k+1])
			maxY = math.Max(maxY, poly[2*k+1])
		}
		y0 := int(math.Floor(clampFloat(minY-0.5, -1, float64(h))))
		y1 := int(math.Ceil(clampFloat(maxY-0.5, -1, float64(h))))
		y0, y1 = max(0, y0), min(h-1, y1)
		for y := y0; y <= y1; y++ {
			yc := float64(y) + 0.5
			xs = xs[:0]
			for k := 0; k < n; k++ {
				ax, ay := poly[2*k], poly[2*k+1]
				bx, by := poly[2*((k+1)%n)], poly[2*((k+1)%n)+1]
				if (ay <= yc) == (by <= yc) {
					continue
				}
				xs = append(xs, ax+(yc-ay)*(bx-ax)/(by-ay))
			}
			slices.Sort(xs)
			row := mask[y*w : (y+1)*w]
			for k := 0; k+1 < len(xs); k += 2 {
				// pixels with xa <= x+0.5 < xb
				xa := max(0, int(math.Ceil(clampFloat(xs[k]-0.5, -1, float64(w)))))
				xb := min(w, int(math.Ceil(clampFloat(xs[k+1]-0.5, -1, float64(w)))))
				for x := xa; x < xb; x++ {
					row[x] = 1
				}
			}
		}
	}
	return mask, nil
}

// clampFloat limits v to [lo, hi], so that converting it to int is safe.
func clampFloat(v, lo, hi float64) float64 {
	return math.Max(lo, math.Min(hi, v))
}
