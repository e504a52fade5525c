package detect

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/core/run/runtest"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/metrics"
	"github.com/peco-dev/peco/registry"
)

// TestLossFunctions checks the focal, GIoU and BCE losses against values
// computed by hand.
func TestLossFunctions(t *testing.T) {
	backend := runtest.Backend(t, "cpu")
	near := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-5 {
				t.Errorf("%s: got %v, want %v", what, got, want)
				return
			}
		}
	}
	// Focal (alpha 0.25, gamma 2): x=0, y=1: 0.25 * 0.5^2 * ln 2; x=2, y=0:
	// p = sigmoid(2) = 0.880797, 0.75 * p^2 * (2 + ln(1 + e^-2)); x=-3,
	// y=0: 0.75 * sigmoid(-3)^2 * ln(1 + e^-3).
	x := []float32{0, 2, -3}
	y := []float32{1, 0, 0}
	out := MustExecOnce(backend, func(x, y *Node) *Node { return FocalLoss(x, y, 0.25, 2) },
		tensors.FromFlatDataAndDimensions(x, 3), tensors.FromFlatDataAndDimensions(y, 3))
	near("focal", tensors.MustCopyFlatData[float32](out), []float32{0.0433217, 1.2375586, 0.0000820})
	// gamma 0 and alpha 0.5 is half the plain BCE.
	out = MustExecOnce(backend, func(x, y *Node) *Node { return FocalLoss(x, y, 0.5, 0) },
		tensors.FromFlatDataAndDimensions(x, 3), tensors.FromFlatDataAndDimensions(y, 3))
	near("focal gamma 0", tensors.MustCopyFlatData[float32](out), []float32{0.3465736, 1.0634640, 0.0242937})

	// BCE with a soft target: x = 0 gives ln 2 whatever y; x = 1, y = 0.25:
	// ln(1 + e^-1) + 0.75.
	out = MustExecOnce(backend, func(x, y *Node) *Node { return BCEWithLogits(x, y) },
		tensors.FromFlatDataAndDimensions([]float32{0, 1}, 2), tensors.FromFlatDataAndDimensions([]float32{0.3, 0.25}, 2))
	near("bce", tensors.MustCopyFlatData[float32](out), []float32{0.6931472, 1.0632617})

	// GIoU from ltrb at one point: identical boxes 0; a 2x2 box inside a
	// 4x4 one IoU 1/4, enclosure = union: 0.75; two 2x2 boxes shifted by
	// half a pixel each way: IoU 2.25/5.75, enclosure 6.25: 1 - (0.391304
	// - 0.5/6.25).
	pred := []float32{1, 1, 1, 1, 1, 1, 1, 1, 0.5, 1, 1.5, 1}
	tgt := []float32{1, 1, 1, 1, 2, 2, 2, 2, 1, 0.5, 1, 1.5}
	out = MustExecOnce(backend, func(p, q *Node) *Node { return GIoULoss(p, q) },
		tensors.FromFlatDataAndDimensions(pred, 1, 3, 4), tensors.FromFlatDataAndDimensions(tgt, 1, 3, 4))
	near("giou", tensors.MustCopyFlatData[float32](out), []float32{0, 0.75, 0.6886957})
}

func TestNMS(t *testing.T) {
	box := func(x0, y0, x1, y1 float32, c int, s float32, l int) Detection {
		return Detection{X0: x0, Y0: y0, X1: x1, Y1: y1, Class: c, Score: s, Loc: l}
	}
	a := box(0, 0, 10, 10, 0, 0.9, 1)
	b := box(1, 0, 11, 10, 0, 0.8, 2) // IoU with a: 90/110 = 0.818
	c := box(1, 0, 11, 10, 1, 0.7, 3) // b's box, another class
	d := box(5, 0, 15, 10, 0, 0.6, 4) // IoU with a: 50/150 = 0.333
	for _, tc := range []struct {
		name   string
		in     []Detection
		thresh float32
		want   []int // Loc of the kept, in order
	}{
		{"overlap of one class suppressed", []Detection{b, a}, 0.6, []int{1}},
		{"other classes kept", []Detection{c, b, a}, 0.6, []int{1, 3}},
		{"low overlap kept", []Detection{d, a}, 0.6, []int{1, 4}},
		{"threshold below the overlap", []Detection{d, a, b}, 0.3, []int{1}},
		{"empty", nil, 0.5, nil},
	} {
		var got []int
		for _, k := range NMS(tc.in, tc.thresh) {
			got = append(got, k.Loc)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: kept %v, want %v", tc.name, got, tc.want)
		}
	}
	if iou := IoU(a, b); math.Abs(float64(iou)-90.0/110) > 1e-6 {
		t.Errorf("IoU %v", iou)
	}
}

func TestLetterbox(t *testing.T) {
	for _, tc := range []struct {
		h, w, size, nh, nw int
	}{
		{480, 640, 160, 120, 160},
		{640, 427, 160, 160, 107},
		{100, 100, 64, 64, 64},
		{10, 1000, 32, 1, 32}, // never 0 rows
	} {
		lb := NewLetterbox(tc.h, tc.w, tc.size)
		if lb.NH != tc.nh || lb.NW != tc.nw {
			t.Errorf("%dx%d into %d: %dx%d, want %dx%d", tc.h, tc.w, tc.size, lb.NH, lb.NW, tc.nh, tc.nw)
		}
		// The valid region's far corner is the image's far corner.
		if x, y := lb.ToOriginal(float32(lb.NW), float32(lb.NH)); x != float32(tc.w) || y != float32(tc.h) {
			t.Errorf("%dx%d: corner maps to %v, %v", tc.h, tc.w, x, y)
		}
		x, y := lb.ToOriginal(lb.FromOriginal(17.5, 3.25))
		if math.Abs(float64(x-17.5)) > 1e-4 || math.Abs(float64(y-3.25)) > 1e-4 {
			t.Errorf("%dx%d: round trip gives %v, %v", tc.h, tc.w, x, y)
		}
	}
	// PadInput puts the image top-left, zeros elsewhere.
	got := PadInput([]float32{1, 2, 3, 4, 5, 6}, 1, 3, 2, 4)
	want := make([]float32, 4*4*2)
	copy(want, []float32{1, 2, 3, 4, 5, 6})
	if !slices.Equal(got, want) {
		t.Errorf("PadInput %v", got)
	}
}

// TestDecodeRoundTrip letterboxes a 60x80 image with two boxes, assigns
// targets, feeds them back as perfect predictions and decodes: the boxes
// come back in the original image's coordinates, with their classes.
func TestDecodeRoundTrip(t *testing.T) {
	img := data.NewImage(60, 80, 3)
	boxes := []data.Box{{X: 8, Y: 4, W: 40, H: 30}, {X: 50, Y: 30, W: 24, H: 28}}
	s := data.Sample{Image: img, Instances: []data.Instance{{Category: 1, Box: boxes[0]}, {Category: 0, Box: boxes[1]}}}
	d, lb, err := LetterboxSample(s, data.Full(60, 80), false, 64)
	if err != nil {
		t.Fatal(err)
	}
	if lb.NH != 48 || lb.NW != 64 || d.Image.H != 48 || d.Image.W != 64 {
		t.Fatalf("letterbox %+v, image %v", lb, d.Image)
	}
	if b := d.Instances[0].Box; b != (data.Box{X: 6.4, Y: 3.2, W: 32, H: 24}) {
		t.Errorf("box in input pixels %+v", b)
	}
	lv, err := Levels(64, []int{8, 16}, []float64{12})
	if err != nil {
		t.Fatal(err)
	}
	var gts []GTBox
	for _, in := range d.Instances {
		gts = append(gts, GTBox{X0: in.Box.X, Y0: in.Box.Y, X1: in.Box.X + in.Box.W, Y1: in.Box.Y + in.Box.H, Class: in.Category})
	}
	tg := Assign(lv, gts, 1.5)
	n, k := NumLocations(lv), 2
	cls, ctr := make([]float32, n*k), make([]float32, n)
	for i, c := range tg.Class {
		if c >= 0 {
			cls[i*k+int(c)], ctr[i] = 1, tg.Centerness[i]
		}
	}
	dets := Decode(lv, cls, ctr, tg.LTRB, k, float32(lb.NW), float32(lb.NH), PostConfig{ScoreThresh: 0.05, TopK: 100, NMSThresh: 0.5, MaxDets: 100})
	if len(dets) != 2 {
		t.Fatalf("%d detections, want the 2 boxes: %+v", len(dets), dets)
	}
	for _, det := range dets {
		in := s.Instances[1-det.Class] // instance 0 has class 1, instance 1 class 0
		x0, y0 := lb.ToOriginal(det.X0, det.Y0)
		x1, y1 := lb.ToOriginal(det.X1, det.Y1)
		got := []float32{x0, y0, x1 - x0, y1 - y0}
		want := []float32{in.Box.X, in.Box.Y, in.Box.W, in.Box.H}
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-3 {
				t.Errorf("class %d: box %v in the original, want %v", det.Class, got, want)
				break
			}
		}
	}
	// A score threshold above every score leaves nothing.
	if got := Decode(lv, cls, ctr, tg.LTRB, k, 64, 48, PostConfig{ScoreThresh: 1, TopK: 100, NMSThresh: 0.5, MaxDets: 100}); len(got) != 0 {
		t.Errorf("threshold 1 kept %d", len(got))
	}
}

// TestPasteMask maps prototype-resolution masks back to a 20x40 image
// letterboxed into 16x16 (valid 8x16, prototype cells of 2 input pixels,
// 5 original pixels).
func TestPasteMask(t *testing.T) {
	lb := NewLetterbox(20, 40, 16)
	if lb.NH != 8 || lb.NW != 16 {
		t.Fatalf("letterbox %+v", lb)
	}
	const ph, pw, f = 8, 8, 2
	// Cell rows 1-2 set across all columns: original row y samples grid
	// row (y+0.5)/5 - 0.5, which interpolates to >= 0.5 for y = 5..14.
	rows := make([]float32, ph*pw)
	for i := pw; i < 3*pw; i++ {
		rows[i] = 1
	}
	m := PasteMask(rows, ph, pw, f, lb, 8, 0, 30, 20)
	for y := range 20 {
		for x := range 40 {
			want := uint8(0)
			if y >= 5 && y <= 14 && x >= 8 && x <= 29 { // pixel centres inside the box's x range [8, 30]
				want = 1
			}
			if m[y*40+x] != want {
				t.Fatalf("pixel (%d, %d) = %d, want %d", y, x, m[y*40+x], want)
			}
		}
	}
	// A constant probability: the threshold at 0.5 and the box crop alone
	// (pixel centres 2.5, 3.5, 4.5 inside x in [2.2, 5]).
	for _, tc := range []struct {
		p    float32
		want int
	}{{0.7, 3 * 20}, {0.5, 3 * 20}, {0.3, 0}} {
		c := make([]float32, ph*pw)
		for i := range c {
			c[i] = tc.p
		}
		got := PasteMask(c, ph, pw, f, lb, 2.2, 0, 5, 20)
		n := 0
		for y := range 20 {
			for x := range 40 {
				if got[y*40+x] != 0 {
					n++
					if x < 2 || x > 4 {
						t.Errorf("p %v: pixel (%d, %d) outside the box set", tc.p, y, x)
					}
				}
			}
		}
		if n != tc.want {
			t.Errorf("p %v: %d pixels set, want %d", tc.p, n, tc.want)
		}
	}
	// MaskProb is the sigmoid of coefficients . prototypes.
	if p := MaskProb([]float32{1, -2}, []float32{0, 0, 1, 0, 1, 1}); math.Abs(float64(p[0]-0.5)) > 1e-6 ||
		math.Abs(float64(p[1])-1/(1+math.Exp(-1))) > 1e-6 || math.Abs(float64(p[2])-1/(1+math.Exp(1))) > 1e-6 {
		t.Errorf("MaskProb %v", p)
	}
}

// TestOracleAP runs the evaluation chain on perfect predictions: targets
// of the letterboxed validation images fed back as the head's outputs,
// decoded, mapped to the original images, masks pasted (a probability of
// 1 cropped to the box, and the objects are rectangles) and scored: box AP
// is 1 and mask AP50 is 1.
func TestOracleAP(t *testing.T) {
	root := filepath.Join(t.TempDir(), "coco")
	writeCOCO(t, root, "val", 101, 4)
	spec := registry.Spec[data.Dataset]{Type: "coco", Config: &data.COCOConfig{Root: root, Images: "val"}}
	val, err := openVal(spec, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	gt, err := val.groundTruth()
	if err != nil {
		t.Fatal(err)
	}
	lv, err := Levels(64, []int{8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const f, ph = 4, 16
	ones := make([]float32, ph*ph)
	for i := range ones {
		ones[i] = 1
	}
	var boxes, masks []metrics.COCODetection
	for _, i := range val.idx {
		s, err := val.coco.Sample(i)
		if err != nil {
			t.Fatal(err)
		}
		d, lb, err := LetterboxSample(s, data.Full(s.Image.H, s.Image.W), false, 64)
		if err != nil {
			t.Fatal(err)
		}
		var gts []GTBox
		for _, in := range d.Instances {
			gts = append(gts, GTBox{X0: in.Box.X, Y0: in.Box.Y, X1: in.Box.X + in.Box.W, Y1: in.Box.Y + in.Box.H, Class: in.Category, Crowd: in.IsCrowd})
		}
		tg := Assign(lv, gts, 0)
		n, k := NumLocations(lv), 2
		cls, ctr := make([]float32, n*k), make([]float32, n)
		for j, c := range tg.Class {
			if c >= 0 {
				cls[j*k+int(c)], ctr[j] = 1, tg.Centerness[j]
			}
		}
		for _, det := range Decode(lv, cls, ctr, tg.LTRB, k, float32(lb.NW), float32(lb.NH), PostConfig{ScoreThresh: 0.01, TopK: 1000, NMSThresh: 0.6, MaxDets: 100}) {
			x0, y0 := lb.ToOriginal(det.X0, det.Y0)
			x1, y1 := lb.ToOriginal(det.X1, det.Y1)
			seg, err := metrics.MaskSegmentation(PasteMask(ones, ph, ph, f, lb, x0, y0, x1, y1), lb.H, lb.W)
			if err != nil {
				t.Fatal(err)
			}
			c := metrics.COCODetection{ImageID: val.coco.ImageID(i), CategoryID: val.coco.CategoryID(det.Class),
				BBox: []float64{float64(x0), float64(y0), float64(x1 - x0), float64(y1 - y0)}, Score: float64(det.Score)}
			boxes = append(boxes, c)
			c.Segmentation = seg
			masks = append(masks, c)
		}
	}
	for _, tc := range []struct {
		iou  string
		dets []metrics.COCODetection
		stat string
	}{{"bbox", boxes, "AP"}, {"segm", masks, "AP50"}} {
		st, err := metrics.EvaluateCOCO(gt, tc.dets, metrics.COCOParams{IoUType: tc.iou, ImageIDs: val.imageIDs()})
		if err != nil {
			t.Fatal(err)
		}
		if v := st.Map()[tc.stat]; math.Abs(v-1) > 1e-9 {
			t.Errorf("%s %s of perfect predictions = %v, want 1\n%s", tc.iou, tc.stat, v, st)
		}
	}
}
