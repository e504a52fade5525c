package data

import (
	"bytes"
	"math"
	"testing"
)

// imageFrom builds a single-channel image from rows.
func imageFrom(rows [][]uint8) *Image {
	im := NewImage(len(rows), len(rows[0]), 1)
	for y, row := range rows {
		copy(im.Pix[y*im.W:], row)
	}
	return im
}

func TestResizeHandComputed(t *testing.T) {
	// 4x4 -> 2x2 with a downscale factor of 2: the triangle filter's
	// support doubles to 2 source pixels; output 0 takes source pixels
	// 0,1,2 with weights 3/7,3/7,1/7, output 1 pixels 1,2,3 with 1/7,3/7,3/7.
	// For v = 7x + 70y the result is 7*E[x] + 70*E[y] with E = 5/7, 16/7.
	var rows4 [][]uint8
	for y := range 4 {
		var row []uint8
		for x := range 4 {
			row = append(row, uint8(7*x+70*y))
		}
		rows4 = append(rows4, row)
	}
	tests := []struct {
		name string
		in   *Image
		h, w int
		want []uint8
	}{
		{"2x2->1x1 is the mean", imageFrom([][]uint8{{10, 20}, {30, 41}}), 1, 1, []uint8{25}},
		{"4x4->2x2 antialiased", imageFrom(rows4), 2, 2, []uint8{55, 66, 165, 176}},
		{"1x2->1x4 upscale", imageFrom([][]uint8{{0, 100}}), 1, 4, []uint8{0, 25, 75, 100}},
		{"identity", imageFrom(rows4), 4, 4, imageFrom(rows4).Pix},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Resize(tc.in, tc.h, tc.w, Bilinear)
			if got.H != tc.h || got.W != tc.w || !bytes.Equal(got.Pix, tc.want) {
				t.Errorf("got %v %v, want %v", got, got.Pix, tc.want)
			}
		})
	}
}

func TestResizeConstantAllFilters(t *testing.T) {
	im := NewImage(37, 53, 3)
	for i := range im.Pix {
		im.Pix[i] = uint8(40 + i%3*50)
	}
	for _, f := range []Filter{Bilinear, Bicubic, Lanczos, Nearest} {
		for _, size := range [][2]int{{10, 13}, {37, 53}, {80, 100}} {
			out := Resize(im, size[0], size[1], f)
			for i, v := range out.Pix {
				if want := uint8(40 + i%3*50); v != want {
					t.Fatalf("%v %v: pixel %d = %d, want %d", f, size, i, v, want)
				}
			}
		}
	}
}

func TestFlipAndCrop(t *testing.T) {
	im := imageFrom([][]uint8{{1, 2, 3}, {4, 5, 6}})
	if got := FlipH(im).Pix; !bytes.Equal(got, []uint8{3, 2, 1, 6, 5, 4}) {
		t.Errorf("FlipH = %v", got)
	}
	if got := Crop(im, Rect{Top: 1, Left: 1, H: 2, W: 3}).Pix; !bytes.Equal(got, []uint8{5, 6, 0, 0, 0, 0}) {
		t.Errorf("Crop with padding = %v", got)
	}
	if got := CropMap(im.Pix, 2, 3, Rect{Top: -1, Left: 0, H: 2, W: 2}, 255); !bytes.Equal(got, []uint8{255, 255, 1, 2}) {
		t.Errorf("CropMap = %v", got)
	}
	rgb := NewImage(1, 2, 3)
	copy(rgb.Pix, []uint8{1, 2, 3, 4, 5, 6})
	if got := FlipH(rgb).Pix; !bytes.Equal(got, []uint8{4, 5, 6, 1, 2, 3}) {
		t.Errorf("FlipH RGB = %v", got)
	}
	flipInPlace(rgb)
	if !bytes.Equal(rgb.Pix, []uint8{4, 5, 6, 1, 2, 3}) {
		t.Errorf("flipInPlace RGB = %v", rgb.Pix)
	}
}

func TestResizeMapNearest(t *testing.T) {
	m := []uint8{1, 2, 3, 4}
	got := ResizeMapNearest(m, 2, 2, 4, 4)
	want := []uint8{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}
	if !bytes.Equal(got, want) {
		t.Errorf("upscale = %v", got)
	}
	if back := ResizeMapNearest(got, 4, 4, 2, 2); !bytes.Equal(back, m) {
		t.Errorf("downscale = %v", back)
	}
	// Only values present in the input may appear.
	big := make([]uint8, 30*40)
	for i := range big {
		big[i] = uint8(i % 7 * 10)
	}
	for _, v := range ResizeMapNearest(big, 30, 40, 17, 23) {
		if v%10 != 0 || v > 60 {
			t.Fatalf("nearest invented value %d", v)
		}
	}
}

func TestResizeShorterCenterCropMatchesTwoSteps(t *testing.T) {
	im := texture(90, 120, 3, 1)
	for _, f := range []Filter{Bilinear, Bicubic, Nearest} {
		got := ResizeShorterCenterCrop(im, 73, 64, f)
		r := ResizeShorter(im, 73, f)
		if r.H != 73 || r.W != 97 {
			t.Fatalf("ResizeShorter size %v", r)
		}
		want := Crop(r, Rect{Top: centerOffset(r.H, 64), Left: centerOffset(r.W, 64), H: 64, W: 64})
		if !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("%v: fused resize+crop differs from resize then crop", f)
		}
	}
}

func TestResizedCropMatchesCropThenResize(t *testing.T) {
	im := texture(50, 60, 3, 2)
	box := Rect{Top: 7, Left: 11, H: 30, W: 41}
	got, err := ResizedCrop(im, box, 16, 16, Bicubic)
	if err != nil {
		t.Fatal(err)
	}
	want := Resize(Crop(im, box), 16, 16, Bicubic)
	if !bytes.Equal(got.Pix, want.Pix) {
		t.Error("ResizedCrop differs from Crop+Resize")
	}
	if _, err := ResizedCrop(im, Rect{Top: 40, Left: 0, H: 20, W: 5}, 4, 4, Bilinear); err == nil {
		t.Error("crop outside the image accepted")
	}
}

func TestParseFilter(t *testing.T) {
	for _, name := range []string{"bilinear", "bicubic", "lanczos", "nearest"} {
		f, err := ParseFilter(name)
		if err != nil || f.String() != name {
			t.Errorf("ParseFilter(%q) = %v, %v", name, f, err)
		}
	}
	if _, err := ParseFilter("area"); err == nil {
		t.Error("unknown filter accepted")
	}
	if h, w := ShorterSideSize(300, 400, 256); h != 256 || w != 341 {
		t.Errorf("ShorterSideSize(300, 400, 256) = %d, %d", h, w)
	}
}

func TestResizeGrid(t *testing.T) {
	src := []float32{0, 1, 2, 3} // 2x2, one channel
	if got := ResizeGrid(src, 2, 2, 1, 2, 2); len(got) != 4 || got[3] != 3 {
		t.Errorf("identity: %v", got)
	}
	up := ResizeGrid(src, 2, 2, 1, 4, 4)
	// Half-pixel centres: the corners keep the corner values, the middle is the mean.
	if up[0] != 0 || up[15] != 3 || math.Abs(float64(up[5]+up[6]+up[9]+up[10])/4-1.5) > 1e-6 {
		t.Errorf("upsampled %v", up)
	}
}
