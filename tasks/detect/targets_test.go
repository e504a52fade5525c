package detect

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// testLevels is a 64-pixel input with strides 8 (8x8 locations at 4, 12,
// ..., 60; max distance in (0, 16]) and 16 (4x4 at 8, 24, 40, 56; above 16).
func testLevels(t *testing.T) []Level {
	t.Helper()
	lv, err := Levels(64, []int{8, 16}, []float64{16})
	if err != nil {
		t.Fatal(err)
	}
	return lv
}

// loc numbers location (x, y) of level li of testLevels.
func loc(li, x, y int) int {
	if li == 0 {
		return y*8 + x
	}
	return 64 + y*4 + x
}

func TestLevelsAndLocations(t *testing.T) {
	lv := testLevels(t)
	if NumLocations(lv) != 80 || lv[0].MaxDist != 16 || lv[1].MinDist != 16 || !math.IsInf(float64(lv[1].MaxDist), 1) {
		t.Fatalf("levels %+v", lv)
	}
	for _, tc := range []struct {
		k          int
		cx, cy     float32
		wantLevel  int
		descriptor string
	}{
		{0, 4, 4, 0, "first of level 0"},
		{9, 12, 12, 0, "(1,1) of level 0"},
		{63, 60, 60, 0, "last of level 0"},
		{64, 8, 8, 1, "first of level 1"},
		{64 + 6, 40, 24, 1, "(2,1) of level 1"},
	} {
		cx, cy, l := Location(lv, tc.k)
		if cx != tc.cx || cy != tc.cy || l != tc.wantLevel {
			t.Errorf("%s: Location(%d) = %v, %v, %d", tc.descriptor, tc.k, cx, cy, l)
		}
	}
	for _, bad := range []struct {
		strides []int
		bounds  []float64
	}{{[]int{8, 16}, nil}, {[]int{8, 24}, []float64{16}}, {[]int{8, 16, 32}, []float64{32, 16}}} {
		if _, err := Levels(64, bad.strides, bad.bounds); err == nil {
			t.Errorf("Levels(64, %v, %v) accepted", bad.strides, bad.bounds)
		}
	}
}

// TestAssign checks FCOS's assignment on hand-built boxes: which
// locations are positive, on which level, their ltrb and centerness
// targets, smallest-area-wins, center sampling and crowd ignores.
func TestAssign(t *testing.T) {
	lv := testLevels(t)
	small := GTBox{X0: 0, Y0: 0, X1: 16, Y1: 16, Class: 1}
	big := GTBox{X0: 0, Y0: 0, X1: 64, Y1: 64, Class: 2}
	mid := GTBox{X0: 0, Y0: 0, X1: 48, Y1: 48, Class: 4}
	crowd := GTBox{X0: 32, Y0: 32, X1: 64, Y1: 64, Class: 3, Crowd: true}
	type want struct {
		k     int
		class int32
		ltrb  [4]float32
		ctr   float32
	}
	for _, tc := range []struct {
		name    string
		boxes   []GTBox
		radius  float64
		pos     []want // every positive location
		ignored []int  // locations of weight 0
	}{
		{name: "small box on the fine level", boxes: []GTBox{small}, pos: []want{
			{loc(0, 0, 0), 1, [4]float32{4, 4, 12, 12}, 1.0 / 3},
			{loc(0, 1, 0), 1, [4]float32{12, 4, 4, 12}, 1.0 / 3},
			{loc(0, 0, 1), 1, [4]float32{4, 12, 12, 4}, 1.0 / 3},
			{loc(0, 1, 1), 1, [4]float32{12, 12, 4, 4}, 1.0 / 3},
		}},
		{name: "big box on the coarse level, center sampling keeps the middle 2x2", boxes: []GTBox{big}, radius: 1.5, pos: []want{
			{loc(1, 1, 1), 2, [4]float32{24, 24, 40, 40}, 0.6},
			{loc(1, 2, 1), 2, [4]float32{40, 24, 24, 40}, 0.6},
			{loc(1, 1, 2), 2, [4]float32{24, 40, 40, 24}, 0.6},
			{loc(1, 2, 2), 2, [4]float32{40, 40, 24, 24}, 0.6},
		}},
		{name: "overlap: the smaller box wins", boxes: []GTBox{big, mid}, radius: 0, pos: func() []want {
			var w []want
			for y := range 4 {
				for x := range 4 {
					cx, cy := float32(8+16*x), float32(8+16*y)
					if x < 3 && y < 3 {
						l, t, r, b := cx, cy, 48-cx, 48-cy
						w = append(w, want{loc(1, x, y), 4, [4]float32{l, t, r, b},
							float32(math.Sqrt(float64(min(l, r) / max(l, r) * min(t, b) / max(t, b))))})
					} else {
						l, t, r, b := cx, cy, 64-cx, 64-cy
						w = append(w, want{loc(1, x, y), 2, [4]float32{l, t, r, b},
							float32(math.Sqrt(float64(min(l, r) / max(l, r) * min(t, b) / max(t, b))))})
					}
				}
			}
			return w
		}()},
		{name: "crowd box: no positives, the locations inside ignored", boxes: []GTBox{crowd}, ignored: func() []int {
			var k []int
			for y := 4; y < 8; y++ {
				for x := 4; x < 8; x++ {
					k = append(k, loc(0, x, y))
				}
			}
			for y := 2; y < 4; y++ {
				for x := 2; x < 4; x++ {
					k = append(k, loc(1, x, y))
				}
			}
			slices.Sort(k)
			return k
		}()},
		{name: "crowd next to a box: the box's positives keep weight 1", boxes: []GTBox{small, {X0: 0, Y0: 0, X1: 10, Y1: 10, Crowd: true}}, pos: []want{
			{loc(0, 0, 0), 1, [4]float32{4, 4, 12, 12}, 1.0 / 3},
			{loc(0, 1, 0), 1, [4]float32{12, 4, 4, 12}, 1.0 / 3},
			{loc(0, 0, 1), 1, [4]float32{4, 12, 12, 4}, 1.0 / 3},
			{loc(0, 1, 1), 1, [4]float32{12, 12, 4, 4}, 1.0 / 3},
		}, ignored: []int{loc(1, 0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Assign(lv, tc.boxes, tc.radius)
			if got.NumPositive() != len(tc.pos) {
				t.Errorf("%d positives, want %d: classes %v", got.NumPositive(), len(tc.pos), got.Class)
			}
			for _, w := range tc.pos {
				k := w.k
				if got.Class[k] != w.class || got.Weight[k] != 1 {
					t.Errorf("location %d: class %d weight %v, want %d, 1", k, got.Class[k], got.Weight[k], w.class)
				}
				if l := [4]float32(got.LTRB[4*k : 4*k+4]); l != w.ltrb {
					t.Errorf("location %d: ltrb %v, want %v", k, l, w.ltrb)
				}
				if math.Abs(float64(got.Centerness[k]-w.ctr)) > 1e-6 {
					t.Errorf("location %d: centerness %v, want %v", k, got.Centerness[k], w.ctr)
				}
				if b := tc.boxes[got.GT[k]]; int32(b.Class) != w.class {
					t.Errorf("location %d: GT %d has class %d", k, got.GT[k], b.Class)
				}
			}
			var ign []int
			for k, w := range got.Weight {
				if w == 0 {
					ign = append(ign, k)
				}
				if got.Class[k] < 0 && (got.GT[k] != -1 || got.Centerness[k] != 0) {
					t.Errorf("background location %d: GT %d centerness %v", k, got.GT[k], got.Centerness[k])
				}
			}
			if !slices.Equal(ign, tc.ignored) {
				t.Errorf("ignored %v, want %v", ign, tc.ignored)
			}
		})
	}
}

func TestSamplePositives(t *testing.T) {
	tg := Targets{Class: []int32{-1, 2, 2, -1, 0, 1}, GT: []int32{-1, 0, 1, -1, 2, 3}}
	r := rand.New(rand.NewPCG(1, 2))
	idx, w := SamplePositives(&tg, 6, nil, r)
	if !slices.Equal(idx, []int32{1, 2, 4, 5, 0, 0}) || !slices.Equal(w, []float32{1, 1, 1, 1, 0, 0}) {
		t.Errorf("padded: %v %v", idx, w)
	}
	idx, w = SamplePositives(&tg, 6, []bool{true, false, true, false}, r)
	if !slices.Equal(idx, []int32{1, 4, 0, 0, 0, 0}) || !slices.Equal(w, []float32{1, 1, 0, 0, 0, 0}) {
		t.Errorf("boxes without masks left out: %v %v", idx, w)
	}
	idx, w = SamplePositives(&tg, 2, nil, r)
	if len(idx) != 2 || w[0] != 1 || w[1] != 1 || idx[0] == idx[1] || tg.Class[idx[0]] < 0 || tg.Class[idx[1]] < 0 {
		t.Errorf("subsampled: %v %v", idx, w)
	}
}

func TestDownsampleMaskAndBoxCrop(t *testing.T) {
	m := []uint8{
		1, 1, 0, 0,
		1, 0, 0, 0,
		0, 0, 1, 1,
		0, 0, 1, 1,
	}
	if got := DownsampleMask(m, 4, 4, 2); !slices.Equal(got, []float32{0.75, 0, 0, 1}) {
		t.Errorf("DownsampleMask %v", got)
	}
	// Cells of 4 pixels with centres 2, 6, 10, 14: the box (3, 3)-(11, 7)
	// holds columns 1-2 (6, 10) and row 1 (6).
	want := []float32{0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if got := BoxCrop(3, 3, 11, 7, 4, 4, 4); !slices.Equal(got, want) {
		t.Errorf("BoxCrop %v", got)
	}
	// A box between cell centres still crops the cell of its centre.
	tiny := BoxCrop(8.5, 8.5, 9.5, 9.5, 4, 4, 4)
	if tiny[2*4+2] != 1 || slices.Index(tiny, 1) != 10 || slices.Max(tiny[11:]) != 0 {
		t.Errorf("BoxCrop of a tiny box %v", tiny)
	}
}
