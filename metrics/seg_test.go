package metrics

import (
	"math"
	"slices"
	"strings"
	"testing"
)

var nan = math.NaN()

// image is one prediction and its stored label map.
type image struct {
	pred []int32
	gt   []uint8
}

func TestSegMeter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		k      int
		reduce bool
		images []image
		// Per-class areas, computed by hand in the comments.
		intersect, union, pred, label []int64
		iou, acc                      []float64
		mIoU, mAcc, aAcc              float64
	}{
		{
			// Every pixel right: I = P = L = U = [1 1 2].
			name: "perfect", k: 3,
			images:    []image{{pred: []int32{0, 1, 2, 2}, gt: []uint8{0, 1, 2, 2}}},
			intersect: []int64{1, 1, 2}, union: []int64{1, 1, 2}, pred: []int64{1, 1, 2}, label: []int64{1, 1, 2},
			iou: []float64{1, 1, 1}, acc: []float64{1, 1, 1},
			mIoU: 1, mAcc: 1, aAcc: 1,
		},
		{
			// Every pixel wrong: I = 0; P = [2 1 1], L = [1 1 2],
			// U = P + L = [3 2 3].
			name: "all wrong", k: 3,
			images:    []image{{pred: []int32{1, 2, 0, 0}, gt: []uint8{0, 1, 2, 2}}},
			intersect: []int64{0, 0, 0}, union: []int64{3, 2, 3}, pred: []int64{2, 1, 1}, label: []int64{1, 1, 2},
			iou: []float64{0, 0, 0}, acc: []float64{0, 0, 0},
		},
		{
			// reduce zero label: stored 0 and 255 are ignored, 1 -> class 0,
			// 2 -> class 1. The predictions at the ignored pixels 0 and 3
			// are wrong but not counted. Evaluated: pixel 1 (pred 0, label
			// 0: right), 2 (1, 1: right), 4 (0, 1: wrong).
			// I = [1 1], P = [2 1], L = [1 2], U = [2 2].
			// IoU = [1/2 1/2], Acc = [1 1/2], aAcc = 2/3.
			name: "reduce zero label ignores 0 and 255", k: 2, reduce: true,
			images:    []image{{pred: []int32{1, 0, 1, 0, 0}, gt: []uint8{0, 1, 2, 255, 2}}},
			intersect: []int64{1, 1}, union: []int64{2, 2}, pred: []int64{2, 1}, label: []int64{1, 2},
			iou: []float64{0.5, 0.5}, acc: []float64{1, 0.5},
			mIoU: 0.5, mAcc: 0.75, aAcc: 2.0 / 3,
		},
		{
			// Without reduce zero label, 0 is a class and 255 is ignored:
			// the wrong predictions at pixels 1 and 3 are not counted, the
			// other two are right.
			name: "255 ignored without reduce zero label", k: 2,
			images:    []image{{pred: []int32{0, 1, 1, 0}, gt: []uint8{0, 255, 1, 255}}},
			intersect: []int64{1, 1}, union: []int64{1, 1}, pred: []int64{1, 1}, label: []int64{1, 1},
			iou: []float64{1, 1}, acc: []float64{1, 1},
			mIoU: 1, mAcc: 1, aAcc: 1,
		},
		{
			// Class 2 is neither labelled nor predicted: its IoU and Acc are
			// 0/0 = NaN, left out of the means.
			// I = [1 2 0], P = [1 3 0], L = [2 2 0], U = [2 3 0].
			// IoU = [1/2 2/3 nan], mIoU = (1/2 + 2/3)/2 = 7/12;
			// Acc = [1/2 1 nan], mAcc = 3/4; aAcc = 3/4.
			name: "absent class is NaN and not averaged", k: 3,
			images:    []image{{pred: []int32{0, 1, 1, 1}, gt: []uint8{0, 0, 1, 1}}},
			intersect: []int64{1, 2, 0}, union: []int64{2, 3, 0}, pred: []int64{1, 3, 0}, label: []int64{2, 2, 0},
			iou: []float64{0.5, 2.0 / 3, nan}, acc: []float64{0.5, 1, nan},
			mIoU: 7.0 / 12, mAcc: 0.75, aAcc: 0.75,
		},
		{
			// Class 2 is predicted once but never labelled: IoU 0/1 = 0
			// counts in mIoU, Acc 0/0 = NaN does not count in mAcc.
			// I = [1 2 0], P = [1 2 1], L = [2 2 0], U = [2 2 1].
			// IoU = [1/2 1 0], mIoU = 1/2; Acc = [1/2 1 nan], mAcc = 3/4.
			name: "class only predicted", k: 3,
			images:    []image{{pred: []int32{0, 2, 1, 1}, gt: []uint8{0, 0, 1, 1}}},
			intersect: []int64{1, 2, 0}, union: []int64{2, 2, 1}, pred: []int64{1, 2, 1}, label: []int64{2, 2, 0},
			iou: []float64{0.5, 1, 0}, acc: []float64{0.5, 1, nan},
			mIoU: 0.5, mAcc: 0.75, aAcc: 0.75,
		},
		{
			// Predictions -1 and 7 are in no class: wrong for their labels
			// (0 and 1) and counted in no PredArea.
			// I = [1 1], P = [1 1], L = [2 2], U = [2 2].
			name: "predictions out of range", k: 2,
			images:    []image{{pred: []int32{-1, 0, 7, 1}, gt: []uint8{0, 0, 1, 1}}},
			intersect: []int64{1, 1}, union: []int64{2, 2}, pred: []int64{1, 1}, label: []int64{2, 2},
			iou: []float64{0.5, 0.5}, acc: []float64{0.5, 0.5},
			mIoU: 0.5, mAcc: 0.5, aAcc: 0.5,
		},
		{
			// A label out of range (5 with 2 classes) is not ignored, as in
			// mmseg: it counts in no LabelArea, but its prediction counts in
			// PredArea. I = [1 0], P = [2 0], L = [1 0], U = [2 0].
			name: "labels out of range count their predictions", k: 2,
			images:    []image{{pred: []int32{0, 0}, gt: []uint8{5, 0}}},
			intersect: []int64{1, 0}, union: []int64{2, 0}, pred: []int64{2, 0}, label: []int64{1, 0},
			iou: []float64{0.5, nan}, acc: []float64{1, nan},
			mIoU: 0.5, mAcc: 1, aAcc: 1,
		},
		{
			// Image A is perfect: I = P = L = [3 1].
			// Image B: I = [0 1], P = [1 1], L = [0 2].
			// Sums: I = [3 2], P = [4 2], L = [3 3], U = [4 3].
			// IoU = [3/4 2/3], mIoU = 17/24; Acc = [1 2/3], mAcc = 5/6;
			// aAcc = 5/6. (TestSegMeterSumsNotMeans checks that the mean
			// of the per-image mIoUs differs.)
			name: "two images are summed", k: 2,
			images: []image{
				{pred: []int32{0, 0, 0, 1}, gt: []uint8{0, 0, 0, 1}},
				{pred: []int32{0, 1}, gt: []uint8{1, 1}},
			},
			intersect: []int64{3, 2}, union: []int64{4, 3}, pred: []int64{4, 2}, label: []int64{3, 3},
			iou: []float64{0.75, 2.0 / 3}, acc: []float64{1, 2.0 / 3},
			mIoU: 17.0 / 24, mAcc: 5.0 / 6, aAcc: 5.0 / 6,
		},
		{
			// Nothing evaluated: every ratio is 0/0.
			name: "all ignored", k: 2, reduce: true,
			images:    []image{{pred: []int32{0, 1}, gt: []uint8{0, 255}}},
			intersect: []int64{0, 0}, union: []int64{0, 0}, pred: []int64{0, 0}, label: []int64{0, 0},
			iou: []float64{nan, nan}, acc: []float64{nan, nan},
			mIoU: nan, mAcc: nan, aAcc: nan,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewSegMeter(tc.k, tc.reduce)
			for _, im := range tc.images {
				if err := m.Add(im.pred, im.gt); err != nil {
					t.Fatal(err)
				}
			}
			r := m.Result()
			checkInts(t, "Intersect", r.Intersect, tc.intersect)
			checkInts(t, "Union", r.Union, tc.union)
			checkInts(t, "PredArea", r.PredArea, tc.pred)
			checkInts(t, "LabelArea", r.LabelArea, tc.label)
			checkFloats(t, "IoU", r.IoU, tc.iou)
			checkFloats(t, "Acc", r.Acc, tc.acc)
			checkFloats(t, "mIoU/mAcc/aAcc", []float64{r.MIoU, r.MAcc, r.AAcc}, []float64{tc.mIoU, tc.mAcc, tc.aAcc})
			if r.NumClasses != tc.k || r.Images != len(tc.images) {
				t.Errorf("NumClasses, Images = %d, %d; want %d, %d", r.NumClasses, r.Images, tc.k, len(tc.images))
			}
		})
	}
}

func TestSegMeterSumsNotMeans(t *testing.T) {
	a := image{pred: []int32{0, 0, 0, 1}, gt: []uint8{0, 0, 0, 1}}
	b := image{pred: []int32{0, 1}, gt: []uint8{1, 1}}
	mIoU := func(ims ...image) float64 {
		m := NewSegMeter(2, false)
		for _, im := range ims {
			if err := m.Add(im.pred, im.gt); err != nil {
				t.Fatal(err)
			}
		}
		return m.Result().MIoU
	}
	// A alone: IoU [1 1], mIoU 1. B alone: I = [0 1], U = [1 2],
	// IoU [0 1/2], mIoU 1/4. Mean of the two: 5/8.
	// Both in one meter: IoU [3/4 2/3], mIoU 17/24.
	perImage := (mIoU(a) + mIoU(b)) / 2
	dataset := mIoU(a, b)
	checkFloats(t, "per-image mean, dataset mIoU", []float64{perImage, dataset}, []float64{5.0 / 8, 17.0 / 24})
}

func TestSegMeterDice(t *testing.T) {
	// I = [1 2 0], P = [1 2 1], L = [2 2 0], third class only predicted.
	// Dice = 2I/(P+L) = [2/3 1 0], mDice = 5/9.
	m := NewSegMeter(4, false)
	if err := m.Add([]int32{0, 2, 1, 1}, []uint8{0, 0, 1, 1}); err != nil {
		t.Fatal(err)
	}
	r := m.Result()
	checkFloats(t, "Dice", append(r.Dice, r.MDice), []float64{2.0 / 3, 1, 0, nan, 5.0 / 9})
}

func TestSegMeterAddMeter(t *testing.T) {
	// Deterministic pseudo-random images, some pixels ignored, some
	// predictions out of range.
	var ims []image
	seed := uint32(1)
	next := func(n uint32) uint32 {
		seed = seed*1664525 + 1013904223
		return (seed >> 8) % n
	}
	for i := 0; i < 7; i++ {
		n := 10 + int(next(50))
		im := image{pred: make([]int32, n), gt: make([]uint8, n)}
		for j := 0; j < n; j++ {
			im.gt[j] = uint8(next(6)) // 0 ignored, 1..5 -> classes 0..4
			if next(10) == 0 {
				im.gt[j] = 255
			}
			im.pred[j] = int32(next(7)) - 1 // -1..5: out of range at both ends
		}
		ims = append(ims, im)
	}
	all := NewSegMeter(5, true)
	parts := []*SegMeter{NewSegMeter(5, true), NewSegMeter(5, true), NewSegMeter(5, true)}
	for i, im := range ims {
		if err := all.Add(im.pred, im.gt); err != nil {
			t.Fatal(err)
		}
		if err := parts[i%len(parts)].Add(im.pred, im.gt); err != nil {
			t.Fatal(err)
		}
	}
	merged := NewSegMeter(5, true)
	for _, p := range parts {
		if err := merged.AddMeter(p); err != nil {
			t.Fatal(err)
		}
	}
	want, got := all.Result(), merged.Result()
	checkInts(t, "Intersect", got.Intersect, want.Intersect)
	checkInts(t, "Union", got.Union, want.Union)
	checkInts(t, "PredArea", got.PredArea, want.PredArea)
	checkInts(t, "LabelArea", got.LabelArea, want.LabelArea)
	checkFloats(t, "IoU", got.IoU, want.IoU)
	checkFloats(t, "mIoU/mAcc/aAcc", []float64{got.MIoU, got.MAcc, got.AAcc}, []float64{want.MIoU, want.MAcc, want.AAcc})
	if got.Images != len(ims) {
		t.Errorf("Images = %d, want %d", got.Images, len(ims))
	}
	if slices.Equal(got.Intersect, make([]int64, 5)) {
		t.Error("test data has no correct prediction")
	}

	if err := merged.AddMeter(NewSegMeter(4, true)); err == nil || !strings.Contains(err.Error(), "4 classes") {
		t.Errorf("merging 4 classes into 5: err = %v", err)
	}
	if err := merged.AddMeter(NewSegMeter(5, false)); err == nil || !strings.Contains(err.Error(), "reduceZeroLabel") {
		t.Errorf("merging different reduceZeroLabel: err = %v", err)
	}
}

func TestSegMeterLengthMismatch(t *testing.T) {
	m := NewSegMeter(3, false)
	err := m.Add([]int32{0, 1, 2}, []uint8{0, 1})
	if err == nil || !strings.Contains(err.Error(), "3 pixels") || !strings.Contains(err.Error(), "2") {
		t.Fatalf("err = %v, want a length mismatch error", err)
	}
	r := m.Result()
	if r.Images != 0 || !slices.Equal(r.PredArea, []int64{0, 0, 0}) {
		t.Errorf("a failed Add changed the meter: %+v", r)
	}
}

func TestSegTable(t *testing.T) {
	// The "absent class" case: IoU [1/2 2/3 nan], Acc [1/2 1 nan].
	m := NewSegMeter(3, false)
	if err := m.Add([]int32{0, 1, 1, 1}, []uint8{0, 0, 1, 1}); err != nil {
		t.Fatal(err)
	}
	got := m.Result().Table([]string{"wall", "sky"}) // class 2 unnamed: its id
	want := `per class results:
+-------+-------+--------+
| Class |  IoU  |  Acc   |
+-------+-------+--------+
|  wall | 50.00 | 50.00  |
|  sky  | 66.67 | 100.00 |
|   2   |  nan  |  nan   |
+-------+-------+--------+
mIoU 58.33  mAcc 75.00  aAcc 75.00 (1 images)
`
	if got != want {
		t.Errorf("Table:\n%s\nwant:\n%s", got, want)
	}
}

func TestPercent(t *testing.T) {
	for x, want := range map[float64]string{
		1: "100.00", 0: "0.00", 0.5: "50.00", 2.0 / 3: "66.67", 0.123449: "12.34", 0.99996: "100.00", nan: "nan",
	} {
		if got := Percent(x); got != want {
			t.Errorf("Percent(%v) = %q, want %q", x, got, want)
		}
	}
}

func TestNewSegMeterPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewSegMeter(0, false) did not panic")
		}
	}()
	NewSegMeter(0, false)
}

func checkInts(t *testing.T, what string, got, want []int64) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func checkFloats(t *testing.T, what string, got, want []float64) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		if math.IsNaN(want[i]) {
			ok = math.IsNaN(got[i])
		} else {
			ok = math.Abs(got[i]-want[i]) <= 1e-12
		}
	}
	if !ok {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
