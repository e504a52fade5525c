package detect

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Level is one level of the feature pyramid as the targets see it: its
// stride, its grid and the range of regression distances it answers for.
type Level struct {
	Stride int
	H, W   int
	// A location of this level may be assigned a ground-truth box when
	// the largest of its four distances to the box's sides, max(l, t, r,
	// b), lies in (MinDist, MaxDist] (FCOS's per-level size ranges).
	MinDist, MaxDist float32
}

// Levels lays out the pyramid of a size x size input: one level per
// stride, with the regression range of level i running from bounds[i-1]
// to bounds[i] (0 below the first, +Inf above the last; len(bounds) =
// len(strides)-1).
func Levels(size int, strides []int, bounds []float64) ([]Level, error) {
	if len(bounds) != len(strides)-1 {
		return nil, fmt.Errorf("%d strides need %d size bounds, got %v", len(strides), len(strides)-1, bounds)
	}
	out := make([]Level, len(strides))
	for i, s := range strides {
		if s <= 0 || size%s != 0 {
			return nil, fmt.Errorf("stride %d does not divide the input size %d", s, size)
		}
		lo, hi := float32(0), float32(math.Inf(1))
		if i > 0 {
			lo = float32(bounds[i-1])
		}
		if i < len(bounds) {
			hi = float32(bounds[i])
		}
		if hi <= lo {
			return nil, fmt.Errorf("size bounds %v must increase", bounds)
		}
		out[i] = Level{Stride: s, H: size / s, W: size / s, MinDist: lo, MaxDist: hi}
	}
	return out, nil
}

// NumLocations is the number of locations over all levels (the N of the
// head's [B, N, ...] outputs, levels in order, each row-major).
func NumLocations(levels []Level) int {
	n := 0
	for _, l := range levels {
		n += l.H * l.W
	}
	return n
}

// Location is the centre, in input pixels, of location k (numbered as in
// NumLocations) and its level: column x, row y of a level of stride s
// sits at (x*s + s/2, y*s + s/2), as FCOS places them.
func Location(levels []Level, k int) (cx, cy float32, level int) {
	for i, l := range levels {
		if k < l.H*l.W {
			s := float32(l.Stride)
			return float32(k%l.W)*s + s/2, float32(k/l.W)*s + s/2, i
		}
		k -= l.H * l.W
	}
	panic(fmt.Sprintf("detect: location %d out of range", k))
}

// GTBox is one ground-truth object in input pixels: corners (X0, Y0) and
// (X1, Y1), its class index and whether it is a crowd region.
type GTBox struct {
	X0, Y0, X1, Y1 float32
	Class          int
	Crowd          bool
}

// Area is the box's area.
func (b GTBox) Area() float32 { return max(b.X1-b.X0, 0) * max(b.Y1-b.Y0, 0) }

// Targets are the FCOS training targets of one image, one entry per
// location.
type Targets struct {
	// Class is the class index of the box assigned to each location, -1
	// for background.
	Class []int32
	// Weight is 1, or 0 for a background location inside a crowd box,
	// which the classification loss ignores.
	Weight []float32
	// LTRB holds the distances [N*4] from each positive location to the
	// left, top, right and bottom sides of its box (0 elsewhere).
	LTRB []float32
	// Centerness is FCOS's centerness target of each positive location,
	// sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)) (0 elsewhere).
	Centerness []float32
	// GT is the index of the assigned box in the boxes given to Assign, -1
	// for background.
	GT []int32
}

// NumPositive counts the locations with a box.
func (t *Targets) NumPositive() int {
	n := 0
	for _, c := range t.Class {
		if c >= 0 {
			n++
		}
	}
	return n
}

// Assign computes FCOS's targets: a location is a candidate for a
// non-crowd box when it lies strictly inside it, and, with centerRadius >
// 0 (center sampling), within centerRadius strides of the box's centre
// (that square clipped to the box); the candidate's max(l, t, r, b) must
// fall in its level's range. Among several candidate boxes the one of
// smallest area wins. Crowd boxes are never assigned; a background
// location inside one gets weight 0.
func Assign(levels []Level, boxes []GTBox, centerRadius float64) Targets {
	n := NumLocations(levels)
	t := Targets{Class: make([]int32, n), Weight: make([]float32, n), LTRB: make([]float32, 4*n),
		Centerness: make([]float32, n), GT: make([]int32, n)}
	for k := range n {
		cx, cy, li := Location(levels, k)
		lv := levels[li]
		t.Class[k], t.GT[k], t.Weight[k] = -1, -1, 1
		best, bestArea := -1, float32(math.Inf(1))
		var bl, bt, br, bb float32
		for j, b := range boxes {
			if b.Crowd {
				continue
			}
			l, tp, r, bo := cx-b.X0, cy-b.Y0, b.X1-cx, b.Y1-cy
			if min(l, tp, r, bo) <= 0 {
				continue
			}
			if centerRadius > 0 {
				rad := float32(centerRadius) * float32(lv.Stride)
				mx, my := (b.X0+b.X1)/2, (b.Y0+b.Y1)/2
				x0, y0 := max(mx-rad, b.X0), max(my-rad, b.Y0)
				x1, y1 := min(mx+rad, b.X1), min(my+rad, b.Y1)
				if cx <= x0 || cx >= x1 || cy <= y0 || cy >= y1 {
					continue
				}
			}
			if m := max(l, tp, r, bo); m <= lv.MinDist || m > lv.MaxDist {
				continue
			}
			if a := b.Area(); a < bestArea {
				best, bestArea = j, a
				bl, bt, br, bb = l, tp, r, bo
			}
		}
		if best < 0 {
			for _, b := range boxes {
				if b.Crowd && cx > b.X0 && cx < b.X1 && cy > b.Y0 && cy < b.Y1 {
					t.Weight[k] = 0
					break
				}
			}
			continue
		}
		t.Class[k], t.GT[k] = int32(boxes[best].Class), int32(best)
		copy(t.LTRB[4*k:], []float32{bl, bt, br, bb})
		t.Centerness[k] = float32(math.Sqrt(float64(min(bl, br) / max(bl, br) * min(bt, bb) / max(bt, bb))))
	}
	return t
}

// SamplePositives picks up to p positive locations of t whose box has a
// mask (usable[gt]; nil: every box) for the mask loss, uniformly without
// replacement when there are more; the result always has p entries,
// padded with location 0 and weight 0, so batches keep one shape.
func SamplePositives(t *Targets, p int, usable []bool, r *rand.Rand) (idx []int32, weight []float32) {
	var pos []int32
	for k, c := range t.Class {
		if c >= 0 && (usable == nil || usable[t.GT[k]]) {
			pos = append(pos, int32(k))
		}
	}
	if len(pos) > p {
		r.Shuffle(len(pos), func(i, j int) { pos[i], pos[j] = pos[j], pos[i] })
		pos = pos[:p]
	}
	idx, weight = make([]int32, p), make([]float32, p)
	for i, k := range pos {
		idx[i], weight[i] = k, 1
	}
	return idx, weight
}

// DownsampleMask averages a binary h x w mask (h, w multiples of f) over f
// x f cells: the fraction of each cell covered, the soft target of a
// prototype-resolution mask.
func DownsampleMask(m []uint8, h, w, f int) []float32 {
	oh, ow := h/f, w/f
	out := make([]float32, oh*ow)
	inv := 1 / float32(f*f)
	for y := range h {
		for x := range w {
			if m[y*w+x] != 0 {
				out[(y/f)*ow+x/f] += inv
			}
		}
	}
	return out
}

// BoxCrop is the indicator [h*w] of the cells of an h x w grid of cell
// size f whose centres lie inside the box (x0, y0)-(x1, y1) given in input
// pixels; at least the cell holding the box's centre is set, so a tiny box
// still crops one cell.
func BoxCrop(x0, y0, x1, y1 float32, h, w, f int) []float32 {
	out := make([]float32, h*w)
	fs := float32(f)
	hit := false
	for y := range h {
		cy := (float32(y) + 0.5) * fs
		if cy < y0 || cy > y1 {
			continue
		}
		for x := range w {
			cx := (float32(x) + 0.5) * fs
			if cx >= x0 && cx <= x1 {
				out[y*w+x], hit = 1, true
			}
		}
	}
	if !hit {
		cx := min(max(int((x0+x1)/2/fs), 0), w-1)
		cy := min(max(int((y0+y1)/2/fs), 0), h-1)
		out[cy*w+cx] = 1
	}
	return out
}
