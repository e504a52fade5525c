package metrics

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/peco-dev/peco/data"
)

// rectRLE is the mask of the integer rectangle x, y, w, h in an ih x iw
// image.
func rectRLE(t *testing.T, ih, iw, x, y, w, h int) *data.RLE {
	t.Helper()
	m := make([]uint8, ih*iw)
	for r := y; r < y+h; r++ {
		for c := x; c < x+w; c++ {
			m[r*iw+c] = 1
		}
	}
	rle, err := data.EncodeRLE(m, ih, iw)
	if err != nil {
		t.Fatal(err)
	}
	return &rle
}

// gtAnn is a ground truth box with area w*h (its mask is set by
// cocoTestGT).
func gtAnn(img int64, x, y, w, h float64) COCOAnnotation {
	return COCOAnnotation{ImageID: img, CategoryID: 1, BBox: [4]float64{x, y, w, h}, Area: w * h}
}

func crowd(a COCOAnnotation) COCOAnnotation { a.IsCrowd = true; return a }

func inCat(cat int64, a COCOAnnotation) COCOAnnotation { a.CategoryID = cat; return a }

// cocoTestGT makes ground truth on 400x400 images 1..nImages, categories 1
// ("cat") and 2 ("dog"), numbering the annotations 1.. and giving each the
// mask of its (integer) box.
func cocoTestGT(t *testing.T, nImages int, anns ...COCOAnnotation) *COCOGroundTruth {
	t.Helper()
	gt := &COCOGroundTruth{Categories: []COCOCategory{{1, "cat"}, {2, "dog"}}}
	for i := 1; i <= nImages; i++ {
		gt.Images = append(gt.Images, COCOImage{ID: int64(i), Height: 400, Width: 400})
	}
	for k, a := range anns {
		a.ID = int64(k + 1)
		b := a.BBox
		a.Mask = rectRLE(t, 400, 400, int(b[0]), int(b[1]), int(b[2]), int(b[3]))
		gt.Annotations = append(gt.Annotations, a)
	}
	return gt
}

// det is a box detection in category 1.
func det(img int64, score, x, y, w, h float64) COCODetection {
	return COCODetection{ImageID: img, CategoryID: 1, BBox: []float64{x, y, w, h}, Score: score}
}

// withMasks gives every detection the mask of its integer box.
func withMasks(t *testing.T, dets []COCODetection, keepBoxes bool) []COCODetection {
	t.Helper()
	out := slices.Clone(dets)
	for k, d := range out {
		r := rectRLE(t, 400, 400, int(d.BBox[0]), int(d.BBox[1]), int(d.BBox[2]), int(d.BBox[3]))
		out[k].Segmentation = &COCOSegmentation{Size: [2]int{400, 400}, Counts: data.EncodeRLEString(r.Counts)}
		if !keepBoxes {
			out[k].BBox = nil
		}
	}
	return out
}

const na = -1 // a stat with nothing to average

func statsClose(got, want [12]float64) bool {
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			return false
		}
	}
	return true
}

// TestCOCOEvaluateHandCases checks the 12 stats on small cases computed by
// hand (in the comments: tp/fp are cumulative over the detections sorted by
// score; precision is made non-increasing from the right and read at the
// 101 recall thresholds 0, .01, ..., 1; a box IoU of 1 passes every IoU
// threshold, so those cases have AP@[.5:.95] = AP50 = AP75). Every case also
// runs as masks (integer rectangles), which must give the same numbers.
func TestCOCOEvaluateHandCases(t *testing.T) {
	// 101 recall thresholds: r_i = i/100.
	for _, tc := range []struct {
		name string
		gt   []COCOAnnotation
		imgs int
		dets []COCODetection
		want [12]float64 // AP AP50 AP75 APs APm APl AR1 AR10 AR100 ARs ARm ARl
	}{
		{
			// Every object found exactly, in all three area ranges and two
			// categories, on four images; at most one object per image and
			// category, so that one detection per image finds all (AR1 1).
			name: "perfect", imgs: 4,
			gt: []COCOAnnotation{
				gtAnn(1, 0, 0, 10, 10), inCat(2, gtAnn(1, 100, 100, 50, 50)), gtAnn(2, 200, 200, 100, 100),
				inCat(2, gtAnn(3, 0, 0, 120, 130)), gtAnn(3, 300, 300, 20, 30), gtAnn(4, 10, 10, 40, 40),
			},
			dets: []COCODetection{
				det(1, .9, 0, 0, 10, 10), inCatDet(2, det(1, .8, 100, 100, 50, 50)), det(2, .3, 200, 200, 100, 100),
				inCatDet(2, det(3, .5, 0, 0, 120, 130)), det(3, .99, 300, 300, 20, 30), det(4, .1, 10, 10, 40, 40),
			},
			want: [12]float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
		},
		{
			// One large object (area 1e4). The higher-scored detection
			// covers 62% of it (IoU .62), the lower one all of it.
			// IoU .50, .55, .60: first TP, second a duplicate FP:
			//   tp [1 1] fp [0 1], precision [1 .5] -> 1 at every recall: AP_t 1.
			// IoU .65 ... .95 (7 thresholds): first FP, second TP:
			//   tp [0 1] fp [1 1], recall [0 1], precision [0 .5] -> [.5 .5]: AP_t .5.
			// AP = (3*1 + 7*.5)/10 = .65, AP50 = 1, AP75 = .5.
			// Large range: the unmatched first detection (area 6200,
			// medium) is ignored, so APl = 1. AR1 (only the first
			// detection): recall 1 at 3 thresholds, 0 at 7: .3.
			name: "duplicate and worse box ranked first", imgs: 1,
			gt:   []COCOAnnotation{gtAnn(1, 0, 0, 100, 100)},
			dets: []COCODetection{det(1, .9, 0, 0, 100, 62), det(1, .8, 0, 0, 100, 100)},
			want: [12]float64{.65, 1, .5, na, na, 1, .3, 1, 1, na, na, 1},
		},
		{
			// Two objects, the first detected twice: the duplicate (second)
			// is a FP. tp [1 1 2] fp [0 1 1], recall [.5 .5 1],
			// precision [1 .5 2/3] -> [1 2/3 2/3]: recall thresholds
			// 0..50 (51) read 1, 51..100 (50) read 2/3.
			// AP = (51 + 50*2/3)/101.
			name: "duplicate", imgs: 1,
			gt:   []COCOAnnotation{gtAnn(1, 0, 0, 50, 50), gtAnn(1, 100, 0, 50, 50)},
			dets: []COCODetection{det(1, .9, 0, 0, 50, 50), det(1, .8, 0, 0, 50, 50), det(1, .7, 100, 0, 50, 50)},
			want: [12]float64{
				(51 + 50*2.0/3) / 101, (51 + 50*2.0/3) / 101, (51 + 50*2.0/3) / 101, na, (51 + 50*2.0/3) / 101, na,
				.5, 1, 1, na, 1, na,
			},
		},
		{
			// Two objects, one found: recall .5, precision 1, so recall
			// thresholds 0..50 read 1: AP = 51/101, AR = .5.
			name: "miss", imgs: 1,
			gt:   []COCOAnnotation{gtAnn(1, 0, 0, 50, 50), gtAnn(1, 100, 0, 50, 50)},
			dets: []COCODetection{det(1, .9, 100, 0, 50, 50)},
			want: [12]float64{51.0 / 101, 51.0 / 101, 51.0 / 101, na, 51.0 / 101, na, .5, .5, .5, na, .5, na},
		},
		{
			// Three objects; ranked TP, FP, FP, TP (the third object
			// missed). tp [1 1 1 2] fp [0 1 2 2], recall [1/3 1/3 1/3 2/3],
			// precision [1 .5 1/3 .5] -> [1 .5 .5 .5]: thresholds 0..33
			// (34) read 1, 34..66 (33) read .5, 67..100 read 0.
			// AP = (34 + 33*.5)/101 = .5; AR1 = 1/3, AR10 = 2/3.
			name: "low-score FPs ranked above a TP", imgs: 1,
			gt: []COCOAnnotation{gtAnn(1, 0, 0, 50, 50), gtAnn(1, 100, 0, 50, 50), gtAnn(1, 200, 0, 50, 50)},
			dets: []COCODetection{
				det(1, .9, 0, 0, 50, 50), det(1, .8, 0, 300, 50, 50), det(1, .7, 300, 300, 50, 50), det(1, .6, 100, 0, 50, 50),
			},
			want: [12]float64{.5, .5, .5, na, .5, na, 1.0 / 3, 2.0 / 3, 2.0 / 3, na, 2.0 / 3, na},
		},
		{
			// A crowd region (100..300)^2 and one object. The two
			// best-scored detections lie inside the crowd (IoU with a crowd
			// is intersection / detection area = 1): both match it, and are
			// ignored, not FPs. Then the TP, then a FP. Without the ignored
			// ones: tp [1 1] fp [0 1] -> AP 1 (if either were a FP ranked
			// first, AP would be .5 or 1/3). The crowd does not count as an
			// object to find: AR 1, but AR1 is 0 (the one detection allowed
			// is the first, ignored). Large range: the object (2500) and the
			// crowd are ignored: -1.
			name: "crowd", imgs: 1,
			gt: []COCOAnnotation{gtAnn(1, 0, 0, 50, 50), crowd(gtAnn(1, 100, 100, 200, 200))},
			dets: []COCODetection{
				det(1, .95, 110, 110, 50, 50), det(1, .9, 150, 150, 60, 60), det(1, .8, 0, 0, 50, 50), det(1, .5, 320, 0, 50, 50),
			},
			want: [12]float64{1, 1, 1, na, 1, na, 0, 1, 1, na, 1, na},
		},
		{
			// A detection that overlaps an object (IoU .78) and a crowd
			// region (IoU 1, over its own area). The object is before the
			// crowd (ignored ground truth last) and, once it matches, the
			// search stops at the first ignored one: a TP at thresholds
			// .50 ... .75 (6 of 10). Above, the object fails and the crowd
			// matches: ignored, AP_t 0, recall 0. AP = AR = .6, AP75 1.
			// Medium: the object (1e4) is ignored too: -1.
			name: "regular match stops at ignored ground truth", imgs: 1,
			gt:   []COCOAnnotation{gtAnn(1, 0, 0, 100, 100), crowd(gtAnn(1, 0, 0, 100, 78))},
			dets: []COCODetection{det(1, .9, 0, 0, 100, 78)},
			want: [12]float64{.6, 1, 1, na, na, .6, .6, .6, .6, na, na, .6},
		},
		{
			// A small object s (area 100), a large one l (1e4), a large FP
			// ranked first. All: tp [0 1 2] fp [1 1 1], precision
			// [0 .5 2/3] -> 2/3 everywhere: AP 2/3; AR1 0 (the first
			// detection is the FP).
			// Small: l is ignored, the FP (large, unmatched) is ignored,
			// the detection of l matches the ignored l and is ignored:
			// AP 1. Medium: no object: -1. Large: s ignored, its detection
			// too; FP then TP: precision [0 .5] -> .5: AP .5.
			name: "area ranges", imgs: 1,
			gt: []COCOAnnotation{gtAnn(1, 0, 0, 10, 10), gtAnn(1, 200, 200, 100, 100)},
			dets: []COCODetection{
				det(1, .9, 0, 200, 100, 100), det(1, .8, 0, 0, 10, 10), det(1, .7, 200, 200, 100, 100),
			},
			want: [12]float64{2.0 / 3, 2.0 / 3, 2.0 / 3, 1, na, .5, 0, 1, 1, 1, na, 1},
		},
		{
			// Area exactly 32^2: both ends of a range are included, so it is
			// small and medium.
			name: "area on the small/medium boundary", imgs: 1,
			gt:   []COCOAnnotation{gtAnn(1, 0, 0, 32, 32)},
			dets: []COCODetection{det(1, .9, 0, 0, 32, 32)},
			want: [12]float64{1, 1, 1, 1, 1, na, 1, 1, 1, 1, 1, na},
		},
		{
			// Three objects found, scores .9 .8 .7: AR1 1/3, AR10 1.
			name: "maxDets 1 vs 10", imgs: 1,
			gt: []COCOAnnotation{gtAnn(1, 0, 0, 50, 50), gtAnn(1, 100, 0, 50, 50), gtAnn(1, 200, 0, 50, 50)},
			dets: []COCODetection{
				det(1, .7, 200, 0, 50, 50), det(1, .9, 0, 0, 50, 50), det(1, .8, 100, 0, 50, 50),
			},
			want: [12]float64{1, 1, 1, na, 1, na, 1.0 / 3, 1, 1, na, 1, na},
		},
		{
			// An object on image 1 found (score .8) and a detection on
			// image 2, which has no ground truth (score .9): a FP ranked
			// first. precision [0 .5] -> .5: AP .5, AR 1. Large: the
			// object is ignored and so is its detection; the FP (medium,
			// unmatched) too: no object, -1.
			name: "image without ground truth", imgs: 2,
			gt:   []COCOAnnotation{gtAnn(1, 0, 0, 50, 50)},
			dets: []COCODetection{det(2, .9, 0, 0, 50, 50), det(1, .8, 0, 0, 50, 50)},
			want: [12]float64{.5, .5, .5, na, .5, na, 1, 1, 1, na, 1, na},
		},
		{
			// Category 2 ("dog") has no ground truth: its FP is left out
			// of the means (its AP is -1), as is a detection in category 99,
			// which the ground truth does not list.
			name: "category without ground truth", imgs: 1,
			gt: []COCOAnnotation{gtAnn(1, 0, 0, 50, 50)},
			dets: []COCODetection{
				inCatDet(2, det(1, .9, 0, 0, 50, 50)), inCatDet(99, det(1, .95, 0, 0, 50, 50)), det(1, .5, 0, 0, 50, 50),
			},
			want: [12]float64{1, 1, 1, na, 1, na, 1, 1, 1, na, 1, na},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gt := cocoTestGT(t, tc.imgs, tc.gt...)
			for _, v := range []struct {
				name string
				typ  string
				dets []COCODetection
			}{
				{"bbox", "bbox", tc.dets},
				{"segm", "segm", withMasks(t, tc.dets, true)},
				{"segm without boxes", "segm", withMasks(t, tc.dets, false)},
				{"bbox from masks", "bbox", withMasks(t, tc.dets, false)},
			} {
				st, err := EvaluateCOCO(gt, v.dets, COCOParams{IoUType: v.typ})
				if err != nil {
					t.Fatalf("%s: %v", v.name, err)
				}
				if !statsClose(st.Stats, tc.want) {
					t.Errorf("%s: stats\n got %.6f\nwant %.6f", v.name, st.Stats, tc.want)
				}
			}
		})
	}
}

func inCatDet(cat int64, d COCODetection) COCODetection { d.CategoryID = cat; return d }

// TestCOCOEvaluateMaxDets100 checks the cut to 100 detections per image and
// category: 101 objects, 101 exact detections. The lowest-scored is cut, so
// AR100 = AP = 100/101 (recall thresholds 0..99 read precision 1), AR10 =
// 10/101, AR1 = 1/101.
func TestCOCOEvaluateMaxDets100(t *testing.T) {
	var anns []COCOAnnotation
	var dets []COCODetection
	for k := 0; k < 101; k++ {
		x, y := float64(20*(k%20)), float64(20*(k/20))
		anns = append(anns, gtAnn(1, x, y, 10, 10))
		dets = append(dets, det(1, 1-float64(k)/1000, x, y, 10, 10))
	}
	st, err := EvaluateCOCO(cocoTestGT(t, 1, anns...), dets, COCOParams{IoUType: "bbox"})
	if err != nil {
		t.Fatal(err)
	}
	f := 100.0 / 101
	want := [12]float64{f, f, f, f, na, na, 1.0 / 101, 10.0 / 101, f, f, na, na}
	if !statsClose(st.Stats, want) {
		t.Errorf("stats\n got %.6f\nwant %.6f", st.Stats, want)
	}
}

// TestCOCOEvaluateCounts checks the counts and the per-category AP of the
// "category without ground truth" case, and that ImageIDs restricts the
// evaluation.
func TestCOCOEvaluateCounts(t *testing.T) {
	gt := cocoTestGT(t, 2, gtAnn(1, 0, 0, 50, 50), gtAnn(2, 0, 0, 50, 50))
	dets := []COCODetection{
		inCatDet(2, det(1, .9, 0, 0, 50, 50)), inCatDet(99, det(1, .95, 0, 0, 50, 50)),
		det(1, .5, 0, 0, 50, 50), det(2, .99, 200, 200, 50, 50),
	}
	st, err := EvaluateCOCO(gt, dets, COCOParams{IoUType: "bbox"})
	if err != nil {
		t.Fatal(err)
	}
	// Image 2's object is missed and its FP is ranked first overall:
	// tp [0 0 1] fp [1 1 1]... in category 1 only: [FP(.99, img 2), TP(.5, img 1)]:
	// precision [0 .5] -> .5 up to recall .5 (thresholds 0..50): AP 51/202.
	if st.Images != 2 || st.Detections != 3 || st.Unscored != 1 {
		t.Errorf("images %d, detections %d, unscored %d; want 2, 3, 1", st.Images, st.Detections, st.Unscored)
	}
	wantCat := []COCOCategoryAP{{1, "cat", 51.0 / 202}, {2, "dog", -1}}
	if len(st.PerCategory) != 2 || st.PerCategory[0].ID != 1 || st.PerCategory[1] != wantCat[1] ||
		math.Abs(st.PerCategory[0].AP-wantCat[0].AP) > 1e-9 || math.Abs(st.Stats[0]-51.0/202) > 1e-9 {
		t.Errorf("per category %v, AP %v; want %v", st.PerCategory, st.Stats[0], wantCat)
	}
	// Only image 1: the FP on image 2 and its object are out; AP 1.
	st, err = EvaluateCOCO(gt, dets, COCOParams{IoUType: "bbox", ImageIDs: []int64{1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Images != 1 || st.Detections != 2 || st.Unscored != 2 || math.Abs(st.Stats[0]-1) > 1e-9 {
		t.Errorf("image 1 only: images %d, detections %d, unscored %d, AP %v; want 1, 2, 2, 1", st.Images, st.Detections, st.Unscored, st.Stats[0])
	}
	if _, err := EvaluateCOCO(gt, dets, COCOParams{IoUType: "bbox", ImageIDs: []int64{3}}); err == nil || !strings.Contains(err.Error(), "image id 3") {
		t.Errorf("unknown image to evaluate: error %v", err)
	}
}

// TestCOCOStatsString checks the summary lines against pycocotools'
// format, and Map.
func TestCOCOStatsString(t *testing.T) {
	gt := cocoTestGT(t, 1, gtAnn(1, 0, 0, 100, 100))
	st, err := EvaluateCOCO(gt, []COCODetection{det(1, .9, 0, 0, 100, 62), det(1, .8, 0, 0, 100, 100)}, COCOParams{IoUType: "bbox"})
	if err != nil {
		t.Fatal(err)
	}
	want := ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.650
 Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 1.000
 Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.500
 Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000
 Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000
 Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.300
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000
 Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 1.000
`
	if got := st.String(); got != want {
		t.Errorf("String:\n%s\nwant:\n%s", got, want)
	}
	m := st.Map()
	if len(m) != 12 || math.Abs(m["AP"]-.65) > 1e-9 || m["AP50"] != st.Stats[1] || m["AR1"] != st.Stats[6] || m["ARl"] != st.Stats[11] || m["APs"] != -1 {
		t.Errorf("Map %v", m)
	}
}

// TestCOCOThresholds checks the thresholds against np.linspace's values at
// the points the summary reads (.50, .75 must be exact) and a detection
// whose IoU is exactly .75, which passes the .75 threshold.
func TestCOCOThresholds(t *testing.T) {
	if cocoIoUThrs[0] != .5 || cocoIoUThrs[5] != .75 || cocoIoUThrs[9] != .95 || len(cocoRecThrs) != 101 || cocoRecThrs[50] != .5 || cocoRecThrs[100] != 1 {
		t.Fatalf("thresholds %v / %v", cocoIoUThrs, cocoRecThrs)
	}
	// Box 100x75 inside 100x100: IoU .75 exactly, so AP_t = 1 for t <= .75
	// (6 thresholds) and 0 above: AP .6.
	st, err := EvaluateCOCO(cocoTestGT(t, 1, gtAnn(1, 0, 0, 100, 100)), []COCODetection{det(1, 1, 0, 0, 100, 75)}, COCOParams{IoUType: "bbox"})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(st.Stats[0]-.6) > 1e-9 || math.Abs(st.Stats[2]-1) > 1e-9 {
		t.Errorf("IoU .75: AP %v, AP75 %v; want .6, 1", st.Stats[0], st.Stats[2])
	}
}

// TestCOCOBoxesAndMasksAgree scores random integer rectangles as boxes and
// as masks (ground truth read from JSON: polygons for the objects, an
// uncompressed RLE for a crowd); mask IoU of rectangles is their box IoU,
// so the stats must agree, and be neither 0 nor 1.
func TestCOCOBoxesAndMasksAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	const ih, iw = 60, 80
	type jsAnn struct {
		ID           int64     `json:"id"`
		ImageID      int64     `json:"image_id"`
		CategoryID   int64     `json:"category_id"`
		BBox         []float64 `json:"bbox"`
		Area         float64   `json:"area"`
		IsCrowd      int       `json:"iscrowd"`
		Segmentation any       `json:"segmentation"`
	}
	var anns []jsAnn
	var dets []COCODetection
	for img := int64(1); img <= 4; img++ {
		for k := 0; k < 6; k++ {
			x, y := rng.IntN(iw-10), rng.IntN(ih-10)
			w, h := 1+rng.IntN(iw-x-1), 1+rng.IntN(ih-y-1)
			cat := int64(1 + rng.IntN(2))
			fx, fy, fw, fh := float64(x), float64(y), float64(w), float64(h)
			poly := [][]float64{{fx, fy, fx, fy + fh, fx + fw, fy + fh, fx + fw, fy}}
			anns = append(anns, jsAnn{int64(len(anns) + 1), img, cat, []float64{fx, fy, fw, fh}, fw * fh, 0, poly})
			// One to three detections around it, shifted and resized.
			for n := rng.IntN(3); n >= 0; n-- {
				dx, dy := max(0, min(iw-1, x+rng.IntN(9)-4)), max(0, min(ih-1, y+rng.IntN(9)-4))
				dw, dh := max(1, min(iw-dx, w+rng.IntN(9)-4)), max(1, min(ih-dy, h+rng.IntN(9)-4))
				dets = append(dets, COCODetection{ImageID: img, CategoryID: cat, Score: rng.Float64(),
					BBox: []float64{float64(dx), float64(dy), float64(dw), float64(dh)}})
			}
		}
		// A crowd region covering the bottom right quarter, column-major
		// uncompressed RLE, and two detections in it.
		cr := rectRLE(t, ih, iw, iw/2, ih/2, iw/2, ih/2)
		anns = append(anns, jsAnn{int64(len(anns) + 1), img, 1, []float64{iw / 2, ih / 2, iw / 2, ih / 2}, iw * ih / 4, 1,
			map[string]any{"size": []int{ih, iw}, "counts": cr.Counts}})
		dets = append(dets, COCODetection{ImageID: img, CategoryID: 1, Score: rng.Float64(), BBox: []float64{iw/2 + 2, ih/2 + 2, 10, 10}},
			COCODetection{ImageID: img, CategoryID: 1, Score: rng.Float64(), BBox: []float64{iw/2 - 5, ih/2 - 5, 10, 10}})
	}
	var images []map[string]any
	for img := 1; img <= 4; img++ {
		images = append(images, map[string]any{"id": img, "height": ih, "width": iw, "file_name": "x.jpg"})
	}
	raw, err := json.Marshal(map[string]any{
		"images": images, "annotations": anns,
		"categories": []map[string]any{{"id": 1, "name": "a"}, {"id": 2, "name": "b"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	gt, err := ParseCOCOGroundTruth(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range gt.Annotations {
		if a.Mask == nil || float64(a.Mask.Area()) != a.Area {
			t.Fatalf("annotation %d: mask %v, area %v", a.ID, a.Mask, a.Area)
		}
	}
	segDets := slices.Clone(dets)
	for k, d := range segDets {
		b := d.BBox
		r := rectRLE(t, ih, iw, int(b[0]), int(b[1]), int(b[2]), int(b[3]))
		segDets[k].Segmentation = &COCOSegmentation{Size: [2]int{ih, iw}, Counts: data.EncodeRLEString(r.Counts)}
	}
	box, err := EvaluateCOCO(gt, dets, COCOParams{IoUType: "bbox"})
	if err != nil {
		t.Fatal(err)
	}
	mask, err := EvaluateCOCO(gt, segDets, COCOParams{IoUType: "segm"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d objects, %d detections:\n%s", len(anns), len(dets), box)
	if box.Stats != mask.Stats {
		t.Errorf("box stats %v\nmask stats %v", box.Stats, mask.Stats)
	}
	if box.Stats[0] <= 0.05 || box.Stats[0] >= 0.95 {
		t.Errorf("AP %v: the case should be neither trivial nor hopeless", box.Stats[0])
	}
}

// TestCOCOPolygonRLE checks the rasterisation of pycocotools' rleFrPoly on
// polygons traced by hand (comments: (x, y) of the set pixels).
func TestCOCOPolygonRLE(t *testing.T) {
	type px struct{ x, y int }
	for _, tc := range []struct {
		name  string
		polys [][]float64
		h, w  int
		want  []px
	}{
		{
			// The 3x2 rectangle at the origin, upsampled to (0,0)-(15,10).
			// Its bottom edge crosses the column centres x = 0.5, 1.5, 2.5
			// (grid x 2, 7, 12) at grid y 10: row ceil(10.5/5-.5) = 2; the
			// top edge at grid y 0: row 0. Columns 0..2, rows 0..1.
			name: "rectangle", polys: [][]float64{{0, 0, 0, 2, 3, 2, 3, 0}}, h: 3, w: 4,
			want: []px{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}, {2, 1}},
		},
		{
			// Triangle (0,0) (4,0) (0,4). The hypotenuse, grid points
			// (t, 20-t), crosses the column centres at t = 2, 7, 12, 17
			// with the lower point's grid y 17, 12, 7, 2: rows 3, 2, 1, 0;
			// the top edge starts every column at row 0. Column 3 gets two
			// toggles at row 0, which cancel. Exactly the pixels whose
			// centre is strictly inside (x+y < 3).
			name: "triangle", polys: [][]float64{{0, 0, 4, 0, 0, 4}}, h: 5, w: 5,
			want: []px{{0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}, {2, 0}},
		},
		{
			// (0,0) (0,1.45) (1,1.65) (1,0): the exact bottom edge passes
			// x = 0.5 at y = 1.55, below pixel (0, 1)'s centre (0.5, 1.5),
			// so centre sampling would set it. Upsampled, the edge runs
			// from grid (0,7) to (5,8) with y = int(7 + .2t + .5) = 7, 7,
			// 7, 8, 8, 8; at the column centre (grid x 2 -> 3) the lower
			// y is 7: row ceil(7.5/5-.5) = 1, so only row 0 is set.
			name: "quantised edge", polys: [][]float64{{0, 0, 0, 1.45, 1, 1.65, 1, 0}}, h: 3, w: 2,
			want: []px{{0, 0}},
		},
		{
			// Two overlapping 2x2 squares: their union, 7 pixels.
			name: "union", polys: [][]float64{{0, 0, 0, 2, 2, 2, 2, 0}, {1, 1, 1, 3, 3, 3, 3, 1}}, h: 4, w: 4,
			want: []px{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {1, 2}, {2, 1}, {2, 2}},
		},
		{
			// A first "polygon" of 4 numbers makes them boxes x, y, w, h
			// (pycocotools' frPyObjects): the square (1,1)-(3,3).
			name: "boxes", polys: [][]float64{{1, 1, 2, 2}}, h: 4, w: 4,
			want: []px{{1, 1}, {1, 2}, {2, 1}, {2, 2}},
		},
		{
			// A square beyond the image's right edge is clipped.
			name: "clipped", polys: [][]float64{{2, 1, 2, 2, 6, 2, 6, 1}}, h: 3, w: 3,
			want: []px{{2, 1}},
		},
		{
			name: "empty list", polys: [][]float64{{}}, h: 2, w: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := PolygonRLE(tc.polys, tc.h, tc.w)
			if err != nil {
				t.Fatal(err)
			}
			m, err := r.Mask()
			if err != nil {
				t.Fatal(err)
			}
			var got []px
			for x := 0; x < tc.w; x++ {
				for y := 0; y < tc.h; y++ {
					if m[y*tc.w+x] != 0 {
						got = append(got, px{x, y})
					}
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("pixels %v, want %v (counts %v)", got, tc.want, r.Counts)
			}
		})
	}
	for _, bad := range [][][]float64{{{0, 0, 1}}, {{0, 0, 1, 1, math.NaN(), 2}}, {{0, 0, 1, 1}, {0, 0, 1, 1, 2, 2}}} {
		if _, err := PolygonRLE(bad, 4, 4); err == nil {
			t.Errorf("polygons %v: no error", bad)
		}
	}
}

// TestCOCOMaskSegmentation checks the compressed RLE of a hand-encoded mask
// and the round trip of a random one through DecodeRLEString, and RLEBBox.
func TestCOCOMaskSegmentation(t *testing.T) {
	// Row-major [0 1 1 / 0 1 0]; column-major 0 0 1 1 1 0: counts 2 3 1,
	// each one character 48+count.
	seg, err := MaskSegmentation([]uint8{0, 1, 1, 0, 1, 0}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if *seg != (COCOSegmentation{Size: [2]int{2, 3}, Counts: "231"}) {
		t.Errorf("segmentation %+v, want size [2 3] counts \"231\"", *seg)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const h, w = 37, 23
	mask := make([]uint8, h*w)
	for k := range mask {
		if rng.IntN(3) == 0 {
			mask[k] = 1
		}
	}
	seg, err = MaskSegmentation(mask, h, w)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := data.DecodeRLEString(seg.Counts)
	if err != nil {
		t.Fatal(err)
	}
	back, err := (data.RLE{H: seg.Size[0], W: seg.Size[1], Counts: counts}).Mask()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back, mask) {
		t.Error("mask -> MaskSegmentation -> DecodeRLEString -> Mask differs")
	}
	if _, err := MaskSegmentation(mask, h, w+1); err == nil {
		t.Error("wrong size: no error")
	}

	// RLEBBox: pixels (x 1, y 2) and (x 3, y 1) in 5x5 -> [1 1 3 2].
	m := make([]uint8, 25)
	m[2*5+1], m[1*5+3] = 1, 1
	r, _ := data.EncodeRLE(m, 5, 5)
	if got := RLEBBox(&r); got != [4]float64{1, 1, 3, 2} {
		t.Errorf("RLEBBox %v, want [1 1 3 2]", got)
	}
	if got := RLEBBox(&data.RLE{H: 5, W: 5, Counts: []uint32{25}}); got != [4]float64{} {
		t.Errorf("RLEBBox of an empty mask %v", got)
	}
}

// TestCOCODetectionsJSON writes results (boxes and masks) and reads them
// back; a file with an uncompressed RLE reads as the compressed one.
func TestCOCODetectionsJSON(t *testing.T) {
	dir := t.TempDir()
	seg, err := MaskSegmentation([]uint8{0, 1, 1, 0, 1, 0}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	dets := []COCODetection{
		{ImageID: 1, CategoryID: 3, BBox: []float64{1.5, 2, 3.25, 4}, Score: 0.75},
		{ImageID: 2, CategoryID: 1, BBox: []float64{0, 0, 3, 2}, Segmentation: seg, Score: 0.5},
		{ImageID: 2, CategoryID: 1, Segmentation: seg, Score: 0.25},
	}
	path := filepath.Join(dir, "results.json")
	if err := WriteCOCODetections(path, dets); err != nil {
		t.Fatal(err)
	}
	back, err := ReadCOCODetections(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, dets) {
		t.Errorf("read back %+v\nwrote %+v", back, dets)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), `"bbox":null`) || !strings.Contains(string(raw), `"counts":"231"`) {
		t.Errorf("file %s", raw)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	unc := `[{"image_id": 2, "category_id": 1, "score": 0.25, "segmentation": {"size": [2, 3], "counts": [2, 3, 1]}}]`
	got, err := ParseCOCODetections([]byte(unc))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], dets[2]) {
		t.Errorf("uncompressed: %+v, want %+v", got, dets[2])
	}
	if err := WriteCOCODetections(filepath.Join(dir, "empty.json"), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadCOCODetections(filepath.Join(dir, "empty.json")); err != nil || len(got) != 0 {
		t.Errorf("empty results: %v, %v", got, err)
	}
}

// TestCOCOBadInput checks that bad files and detections give errors naming
// the file and the entry.
func TestCOCOBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gtJSON := `{"images": [{"id": 1, "height": 10, "width": 10}], "categories": [{"id": 1, "name": "a"}],
		"annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": %s, "area": 4, "iscrowd": 0}]}`
	for _, tc := range []struct {
		name, path string
		gt         bool
		want       []string
	}{
		{"missing results", filepath.Join(dir, "nope.json"), false, []string{"nope.json", "no such file"}},
		{"missing ground truth", filepath.Join(dir, "nogt.json"), true, []string{"nogt.json", "no such file"}},
		{"malformed results", write("bad.json", `[{"image_id": 1,`), false, []string{"bad.json"}},
		{"results not a list", write("obj.json", `{"image_id": 1}`), false, []string{"obj.json", "list"}},
		{"bbox of 3", write("b3.json", `[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 1},
			{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3], "score": 1}]`), false, []string{"b3.json", "detection 1", "bbox"}},
		{"no score", write("ns.json", `[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}]`), false, []string{"ns.json", "detection 0", "score"}},
		{"polygon result", write("poly.json", `[{"image_id": 1, "category_id": 1, "segmentation": [[1, 2, 3, 4, 5, 6]], "score": 1}]`), false, []string{"poly.json", "detection 0", "rle"}},
		{"bad rle", write("rle.json", `[{"image_id": 1, "category_id": 1, "segmentation": {"size": [2, 3], "counts": "23"}, "score": 1}]`), false, []string{"rle.json", "detection 0", "counts cover 5 pixels"}},
		{"ground truth bbox of 5", write("g5.json", strings.Replace(gtJSON, "%s", "[1, 2, 3, 4, 5]", 1)), true, []string{"g5.json", "annotation 5", "bbox"}},
		{"ground truth malformed", write("gm.json", `{"images": [`), true, []string{"gm.json"}},
		{"ground truth without area", write("ga.json", strings.Replace(strings.Replace(gtJSON, "%s", "[1, 2, 3, 4]", 1), `"area": 4,`, "", 1)), true, []string{"ga.json", "annotation 5", "area"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.gt {
				_, err = ReadCOCOGroundTruth(tc.path)
			} else {
				_, err = ReadCOCODetections(tc.path)
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	gt := cocoTestGT(t, 1, gtAnn(1, 0, 0, 10, 10))
	seg, _ := MaskSegmentation(make([]uint8, 400*400), 400, 400)
	small, _ := MaskSegmentation(make([]uint8, 6), 2, 3)
	for _, tc := range []struct {
		name string
		typ  string
		dets []COCODetection
		want []string
	}{
		{"unknown image", "bbox", []COCODetection{det(1, 1, 0, 0, 1, 1), det(7, 1, 0, 0, 1, 1)}, []string{"detection 1", "image id 7"}},
		{"segm without segmentation", "segm", []COCODetection{{ImageID: 1, CategoryID: 1, BBox: []float64{0, 0, 1, 1}, Segmentation: seg, Score: 1}, det(1, 1, 0, 0, 1, 1)},
			[]string{"detection 1", "no segmentation"}},
		{"box results, one without bbox", "bbox", []COCODetection{det(1, 1, 0, 0, 1, 1), {ImageID: 1, CategoryID: 1, Segmentation: seg, Score: 1}}, []string{"detection 1", "no bbox"}},
		{"neither", "bbox", []COCODetection{{ImageID: 1, CategoryID: 1, Score: 1}}, []string{"detection 0", "neither"}},
		{"mask size", "segm", []COCODetection{{ImageID: 1, CategoryID: 1, Segmentation: small, Score: 1}}, []string{"detection 0", "size [2 3]"}},
		{"bbox of 2", "bbox", []COCODetection{{ImageID: 1, CategoryID: 1, BBox: []float64{1, 2}, Score: 1}}, []string{"detection 0", "bbox"}},
		{"nan score", "bbox", []COCODetection{det(1, math.NaN(), 0, 0, 1, 1)}, []string{"detection 0", "score"}},
		{"iou type", "keypoints", nil, []string{"keypoints"}},
		{"annotation id 0", "bbox", nil, []string{"annotation id 0"}},
		{"repeated annotation id", "bbox", nil, []string{"annotation id 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gt := gt
			switch tc.name {
			case "annotation id 0":
				gt = cocoTestGT(t, 1, gtAnn(1, 0, 0, 10, 10))
				gt.Annotations[0].ID = 0
			case "repeated annotation id":
				gt = cocoTestGT(t, 1, gtAnn(1, 0, 0, 10, 10), gtAnn(1, 20, 0, 10, 10))
				gt.Annotations[1].ID = 1
			}
			_, err := EvaluateCOCO(gt, tc.dets, COCOParams{IoUType: tc.typ})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// cocoTinyVal is coco-tiny's val annotations, read in place from the
// archive in ../shared/data; the test skips when it is absent.
func cocoTinyVal(t *testing.T) string {
	t.Helper()
	archive := filepath.Join("..", "..", "shared", "data", "coco-tiny.tar.gz")
	if _, err := os.Stat(archive); err != nil {
		t.Skipf("real data test: %s not present", archive)
	}
	return filepath.Join(archive, "annotations", "instances_val2017.json")
}

// TestCOCOTinySelf scores coco-tiny's val ground truth against itself (every
// non-crowd object a detection of score 1, with its box and mask): AP 1 for
// boxes and masks.
func TestCOCOTinySelf(t *testing.T) {
	gt, err := ReadCOCOGroundTruth(cocoTinyVal(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(gt.Images) != 80 || len(gt.Annotations) != 815 || len(gt.Categories) != 80 {
		t.Fatalf("%d images, %d annotations, %d categories; want 80, 815, 80", len(gt.Images), len(gt.Annotations), len(gt.Categories))
	}
	var dets []COCODetection
	crowds := 0
	for _, a := range gt.Annotations {
		if a.Mask == nil {
			t.Fatalf("annotation %d has no mask", a.ID)
		}
		if a.IsCrowd {
			crowds++
			continue
		}
		dets = append(dets, COCODetection{
			ImageID: a.ImageID, CategoryID: a.CategoryID, BBox: a.BBox[:], Score: 1,
			Segmentation: &COCOSegmentation{Size: [2]int{a.Mask.H, a.Mask.W}, Counts: data.EncodeRLEString(a.Mask.Counts)},
		})
	}
	if crowds == 0 {
		t.Error("no crowd annotation: the case does not test crowds")
	}
	// The "area" of a polygon annotation is the polygon's area; the
	// rasterised mask's pixel count is close to it (a transposed or shifted
	// rasterisation is not): median relative difference under 1%.
	var rel []float64
	for _, a := range gt.Annotations {
		if !a.IsCrowd {
			rel = append(rel, math.Abs(float64(a.Mask.Area())-a.Area)/a.Area)
		}
	}
	slices.Sort(rel)
	if med := rel[len(rel)/2]; med > 0.01 {
		t.Errorf("median |mask area - area| / area = %.4f, want < 0.01", med)
	}
	for _, typ := range []string{"bbox", "segm"} {
		st, err := EvaluateCOCO(gt, dets, COCOParams{IoUType: typ})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s, %d detections (%d crowd regions left out):\n%s", typ, st.Detections, crowds, st)
		for _, k := range []int{0, 1, 2, 8} {
			if math.Abs(st.Stats[k]-1) > 1e-9 {
				t.Errorf("%s: %s = %v, want 1", typ, cocoStatKeys[k], st.Stats[k])
			}
		}
	}
}
