package data

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// rdMask4x5 is the row-major 4x5 mask of RLE counts [3 2 10 1 4]
// (column-major runs: rows 3 and 0 of columns 0 and 1, row 3 of column 3).
var rdMask4x5 = []uint8{
	0, 1, 0, 0, 0,
	0, 0, 0, 0, 0,
	0, 0, 0, 0, 0,
	1, 0, 0, 1, 0,
}

func TestRLEMaskColumnMajor(t *testing.T) {
	r := RLE{H: 4, W: 5, Counts: []uint32{3, 2, 10, 1, 4}}
	m, err := r.Mask()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m, rdMask4x5) {
		t.Errorf("mask %v, want %v", m, rdMask4x5)
	}
	if r.Area() != 3 {
		t.Errorf("area %d", r.Area())
	}
	back, err := EncodeRLE(m, 4, 5)
	if err != nil || !slices.Equal(back.Counts, r.Counts) {
		t.Errorf("EncodeRLE = %v, %v", back.Counts, err)
	}
	// A mask starting with a 1 starts with a zero count.
	first, _ := EncodeRLE([]uint8{1, 0, 0, 1}, 2, 2)
	if !slices.Equal(first.Counts, []uint32{0, 1, 2, 1}) {
		t.Errorf("counts %v, want [0 1 2 1]", first.Counts)
	}
	for _, bad := range []RLE{{H: 4, W: 5, Counts: []uint32{3, 2}}, {H: 2, W: 2, Counts: []uint32{5}}} {
		if _, err := bad.Mask(); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestRLEString(t *testing.T) {
	// Computed by hand with pycocotools' rleToString: 3 -> '3', 2 -> '2',
	// 10 -> ':', 1-2 = -1 -> 31 (sign bit set) -> 'O', 4-10 = -6 -> 26 -> 'J';
	// 100 = 4 + 3<<5 -> 4|0x20 = 36 -> 'T', 3 -> '3'.
	tests := []struct {
		s      string
		counts []uint32
	}{
		{"32:OJ", []uint32{3, 2, 10, 1, 4}},
		{"T3", []uint32{100}},
		{"", nil},
		{"0", []uint32{0}},
		{"0T30", []uint32{0, 100, 0}},
	}
	for _, tc := range tests {
		got, err := DecodeRLEString(tc.s)
		if err != nil || !slices.Equal(got, tc.counts) && len(got)+len(tc.counts) > 0 {
			t.Errorf("DecodeRLEString(%q) = %v, %v; want %v", tc.s, got, err, tc.counts)
		}
		if enc := EncodeRLEString(tc.counts); enc != tc.s {
			t.Errorf("EncodeRLEString(%v) = %q, want %q", tc.counts, enc, tc.s)
		}
	}
	// Round trip of random masks, including large counts and negative deltas.
	rng := rand.New(rand.NewPCG(1, 2))
	for k := 0; k < 200; k++ {
		counts := make([]uint32, 1+rng.IntN(20))
		for i := range counts {
			counts[i] = uint32(rng.IntN(1 << uint(1+rng.IntN(24))))
		}
		s := EncodeRLEString(counts)
		got, err := DecodeRLEString(s)
		if err != nil || !slices.Equal(got, counts) {
			t.Fatalf("round trip of %v via %q: %v, %v", counts, s, got, err)
		}
	}
	for _, bad := range []string{"T", "3 ", "\x01", "3O"} {
		if c, err := DecodeRLEString(bad); err == nil {
			t.Errorf("DecodeRLEString(%q) = %v, want an error", bad, c)
		}
	}
}

func TestRasterizePolygons(t *testing.T) {
	tests := []struct {
		name  string
		polys [][]float64
		h, w  int
		want  []uint8
	}{
		{"rectangle", [][]float64{{1, 1, 4, 1, 4, 3, 1, 3}}, 4, 5, []uint8{
			0, 0, 0, 0, 0,
			0, 1, 1, 1, 0,
			0, 1, 1, 1, 0,
			0, 0, 0, 0, 0,
		}},
		// Centres (x+.5, y+.5) with x+y < 3 are inside x+y < 4.
		{"triangle", [][]float64{{0, 0, 4, 0, 0, 4}}, 4, 4, []uint8{
			1, 1, 1, 0,
			1, 1, 0, 0,
			1, 0, 0, 0,
			0, 0, 0, 0,
		}},
		// Edges through pixel centres: the centre on the left edge x=0.5 is
		// in, on the right edge x=2.5 out; on the top edge y=0.5 in, bottom out.
		{"centre edges", [][]float64{{0.5, 0.5, 2.5, 0.5, 2.5, 2.5, 0.5, 2.5}}, 3, 3, []uint8{
			1, 1, 0,
			1, 1, 0,
			0, 0, 0,
		}},
		{"clipped union", [][]float64{{-2, -2, 2, -2, 2, 2, -2, 2}, {1, 1, 9, 1, 9, 9, 1, 9}}, 3, 3, []uint8{
			1, 1, 0,
			1, 1, 1,
			0, 1, 1,
		}},
		// Fewer than three vertices fill nothing.
		{"degenerate", [][]float64{{0, 0, 3, 3}, {}}, 3, 3, make([]uint8, 9)},
	}
	for _, tc := range tests {
		got, err := RasterizePolygons(tc.polys, tc.h, tc.w)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s: mask\n%v\nwant\n%v", tc.name, got, tc.want)
		}
	}
	if _, err := RasterizePolygons([][]float64{{1, 2, 3}}, 4, 4); err == nil {
		t.Error("odd coordinate count: no error")
	}
	if _, err := RasterizePolygons([][]float64{{1, 2, 3, math.NaN(), 0, 0}}, 4, 4); err == nil {
		t.Error("NaN coordinate: no error")
	}
}

func TestRasterizePolygonArea(t *testing.T) {
	// For a large random star-shaped polygon the filled pixel count is close
	// to its area (within the perimeter's width in pixels).
	rng := rand.New(rand.NewPCG(3, 4))
	for k := 0; k < 20; k++ {
		const n = 24
		poly := make([]float64, 0, 2*n)
		for i := 0; i < n; i++ {
			a := 2 * math.Pi * float64(i) / n
			r := 20 + 25*rng.Float64()
			poly = append(poly, 50+r*math.Cos(a), 50+r*math.Sin(a))
		}
		area, perim := 0.0, 0.0
		for i := 0; i < n; i++ {
			x0, y0, x1, y1 := poly[2*i], poly[2*i+1], poly[2*((i+1)%n)], poly[2*((i+1)%n)+1]
			area += x0*y1 - x1*y0
			perim += math.Hypot(x1-x0, y1-y0)
		}
		area = math.Abs(area) / 2
		m, err := RasterizePolygons([][]float64{poly}, 100, 100)
		if err != nil {
			t.Fatal(err)
		}
		filled := 0
		for _, v := range m {
			filled += int(v)
		}
		if math.Abs(float64(filled)-area) > perim/2 {
			t.Errorf("filled %d pixels, area %.1f, perimeter %.1f", filled, area, perim)
		}
	}
}
