package detect

import (
	"cmp"
	"math"
	"slices"

	"github.com/peco-dev/peco/data"
)

// Letterbox is how an H x W image is fit into the detector's Size x Size
// input: resized, keeping its aspect ratio, to NH x NW (the longer side
// Size), placed at the top-left corner and padded with zeros.
type Letterbox struct {
	H, W   int
	NH, NW int
	Size   int
}

// NewLetterbox fits an h x w image into size x size.
func NewLetterbox(h, w, size int) Letterbox {
	s := float64(size) / float64(max(h, w))
	nh := min(max(int(math.Round(float64(h)*s)), 1), size)
	nw := min(max(int(math.Round(float64(w)*s)), 1), size)
	return Letterbox{H: h, W: w, NH: nh, NW: nw, Size: size}
}

// ToOriginal maps a point from input pixels to the original image's.
func (l Letterbox) ToOriginal(x, y float32) (float32, float32) {
	return x * float32(l.W) / float32(l.NW), y * float32(l.H) / float32(l.NH)
}

// FromOriginal maps a point from the original image's pixels to input
// pixels.
func (l Letterbox) FromOriginal(x, y float32) (float32, float32) {
	return x * float32(l.NW) / float32(l.W), y * float32(l.NH) / float32(l.H)
}

// PadInput writes the normalised nh x nw x c image pix into the top-left corner
// of a zeroed size x size x c input.
func PadInput(pix []float32, nh, nw, c, size int) []float32 {
	out := make([]float32, size*size*c)
	for y := range nh {
		copy(out[y*size*c:y*size*c+nw*c], pix[y*nw*c:(y+1)*nw*c])
	}
	return out
}

// LetterboxSample resizes a dense sample (image, boxes, masks) into the
// valid region of its letterbox (eval: the whole image; training: crop,
// flip) with data.TransformDense.
func LetterboxSample(s data.Sample, crop data.Rect, flip bool, size int) (data.Sample, Letterbox, error) {
	lb := NewLetterbox(crop.H, crop.W, size)
	out, err := data.TransformDense(s, data.DenseParams{Crop: crop, Flip: flip, H: lb.NH, W: lb.NW, Filter: data.Bilinear})
	return out, lb, err
}

// Detection is one predicted object: a box (X0, Y0)-(X1, Y1), its class
// index, score and the location that predicted it.
type Detection struct {
	X0, Y0, X1, Y1 float32
	Class          int
	Score          float32
	Loc            int
}

// IoU is the intersection over union of two detections' boxes.
func IoU(a, b Detection) float32 {
	w := min(a.X1, b.X1) - max(a.X0, b.X0)
	h := min(a.Y1, b.Y1) - max(a.Y0, b.Y0)
	if w <= 0 || h <= 0 {
		return 0
	}
	inter := w * h
	union := (a.X1-a.X0)*(a.Y1-a.Y0) + (b.X1-b.X0)*(b.Y1-b.Y0) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// NMS is greedy non-maximum suppression per class: in decreasing score
// order (ties by location), a detection is kept unless a kept one of its
// class overlaps it with IoU > thresh.
func NMS(dets []Detection, thresh float32) []Detection {
	d := slices.Clone(dets)
	sortByScore(d)
	var kept []Detection
	for _, c := range d {
		ok := true
		for _, k := range kept {
			if k.Class == c.Class && IoU(k, c) > thresh {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, c)
		}
	}
	return kept
}

// sortByScore orders detections by decreasing score, then location and
// class, so equal scores keep a fixed order.
func sortByScore(d []Detection) {
	slices.SortStableFunc(d, func(a, b Detection) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Loc, b.Loc); c != 0 {
			return c
		}
		return cmp.Compare(a.Class, b.Class)
	})
}

// PostConfig is FCOS's inference: score threshold, candidates per level,
// NMS threshold and detections kept per image.
type PostConfig struct {
	ScoreThresh float64 `mapstructure:"score_thresh" doc:"candidates need sqrt(class probability x centerness) above this"`
	TopK        int     `mapstructure:"top_k" doc:"candidates kept per pyramid level before NMS"`
	NMSThresh   float64 `mapstructure:"nms_thresh" doc:"per-class NMS IoU threshold"`
	MaxDets     int     `mapstructure:"max_dets" doc:"detections kept per image after NMS (COCO scores 100)"`
}

// Decode turns one image's head outputs into detections in input pixels:
// scores sqrt(cls * centerness) for every location and class (cls [N*K]
// and centerness [N] probabilities), the best TopK above ScoreThresh per
// level, boxes from the location and its ltrb distances [N*4] clipped to
// the valid w x h region, per-class NMS, the MaxDets best.
func Decode(levels []Level, cls, ctr, ltrb []float32, k int, w, h float32, pc PostConfig) []Detection {
	var all []Detection
	base := 0
	for _, lv := range levels {
		n := lv.H * lv.W
		var cand []Detection
		for loc := base; loc < base+n; loc++ {
			for c := range k {
				s := float32(math.Sqrt(float64(cls[loc*k+c] * ctr[loc])))
				if float64(s) > pc.ScoreThresh {
					cand = append(cand, Detection{Class: c, Score: s, Loc: loc})
				}
			}
		}
		sortByScore(cand)
		if len(cand) > pc.TopK {
			cand = cand[:pc.TopK]
		}
		for _, d := range cand {
			cx, cy, _ := Location(levels, d.Loc)
			l, t, r, b := ltrb[4*d.Loc], ltrb[4*d.Loc+1], ltrb[4*d.Loc+2], ltrb[4*d.Loc+3]
			d.X0, d.Y0 = min(max(cx-l, 0), w), min(max(cy-t, 0), h)
			d.X1, d.Y1 = min(max(cx+r, 0), w), min(max(cy+b, 0), h)
			if d.X1 > d.X0 && d.Y1 > d.Y0 {
				all = append(all, d)
			}
		}
		base += n
	}
	kept := NMS(all, float32(pc.NMSThresh))
	if len(kept) > pc.MaxDets {
		kept = kept[:pc.MaxDets]
	}
	return kept
}

// MaskProb is a detection's mask at prototype resolution: sigmoid of its
// coefficients [K] times the prototypes [P*K] (P cells).
func MaskProb(coeffs, protos []float32) []float32 {
	k := len(coeffs)
	out := make([]float32, len(protos)/k)
	for p := range out {
		var s float32
		for j, c := range coeffs {
			s += c * protos[p*k+j]
		}
		out[p] = float32(1 / (1 + math.Exp(-float64(s))))
	}
	return out
}

// PasteMask maps a mask predicted on the ph x pw prototype grid (cells of
// f input pixels) back to the original image of lb: every original pixel
// inside box (x0, y0)-(x1, y1) (original pixels) takes the probability
// sampled bilinearly at its centre's input position (half-pixel centres,
// edges clamped) and is set when it is at least 0.5; the rest is 0.
func PasteMask(prob []float32, ph, pw, f int, lb Letterbox, x0, y0, x1, y1 float32) []uint8 {
	out := make([]uint8, lb.H*lb.W)
	sx := float64(lb.NW) / float64(lb.W) / float64(f)
	sy := float64(lb.NH) / float64(lb.H) / float64(f)
	ya, yb := max(int(math.Floor(float64(y0))), 0), min(int(math.Ceil(float64(y1))), lb.H)
	xa, xb := max(int(math.Floor(float64(x0))), 0), min(int(math.Ceil(float64(x1))), lb.W)
	for y := ya; y < yb; y++ {
		fy := float64(y) + 0.5
		if fy < float64(y0) || fy > float64(y1) {
			continue
		}
		gy := fy*sy - 0.5
		iy := int(math.Floor(gy))
		ty := float32(gy - float64(iy))
		r0, r1 := min(max(iy, 0), ph-1), min(max(iy+1, 0), ph-1)
		for x := xa; x < xb; x++ {
			fx := float64(x) + 0.5
			if fx < float64(x0) || fx > float64(x1) {
				continue
			}
			gx := fx*sx - 0.5
			ix := int(math.Floor(gx))
			tx := float32(gx - float64(ix))
			c0, c1 := min(max(ix, 0), pw-1), min(max(ix+1, 0), pw-1)
			v := (1-ty)*((1-tx)*prob[r0*pw+c0]+tx*prob[r0*pw+c1]) + ty*((1-tx)*prob[r1*pw+c0]+tx*prob[r1*pw+c1])
			if v >= 0.5 {
				out[y*lb.W+x] = 1
			}
		}
	}
	return out
}
