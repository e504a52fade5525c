package data

import (
	"bytes"
	"image"
	"image/color"
	"strings"
	"testing"
)

func TestDecodeImageFormats(t *testing.T) {
	rgb := rdSolid(3, 4, color.NRGBA{200, 100, 50, 255})
	gray := image.NewGray(image.Rect(0, 0, 4, 3))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(20 * i)
	}
	flat := rdSolid(3, 4, color.NRGBA{200, 100, 50, 255})
	flat.SetNRGBA(0, 0, color.NRGBA{200, 100, 50, 255}) // chroma subsampling would blur a single odd pixel
	pal := image.NewPaletted(image.Rect(0, 0, 4, 3), color.Palette{color.RGBA{1, 2, 3, 255}, color.RGBA{250, 0, 9, 255}})
	pal.Pix[5] = 1
	alpha := image.NewNRGBA(image.Rect(0, 0, 4, 3))
	for i := 0; i < len(alpha.Pix); i += 4 {
		copy(alpha.Pix[i:], []uint8{90, 180, 30, 128})
	}
	tests := []struct {
		name    string
		data    []byte
		mode    ColorMode
		c       int
		want    func(y, x, ch int) uint8
		lossTol int
	}{
		{"rgb.png", rdPNG(t, rgb), ColorNative, 3, func(y, x, ch int) uint8 { return nrgbaAt(rgb, y, x, ch) }, 0},
		{"rgb.bmp", rdBMP(t, rgb), ColorNative, 3, func(y, x, ch int) uint8 { return nrgbaAt(rgb, y, x, ch) }, 0},
		{"rgb.jpg", rdJPEG(t, flat), ColorNative, 3, func(y, x, ch int) uint8 { return nrgbaAt(flat, y, x, ch) }, 4},
		{"gray.png", rdPNG(t, gray), ColorNative, 1, func(y, x, _ int) uint8 { return gray.GrayAt(x, y).Y }, 0},
		{"gray-rgb.png", rdPNG(t, gray), ColorRGB, 3, func(y, x, _ int) uint8 { return gray.GrayAt(x, y).Y }, 0},
		{"gray.jpg", rdJPEG(t, gray), ColorNative, 1, func(y, x, _ int) uint8 { return gray.GrayAt(x, y).Y }, 12},
		{"rgb-gray.png", rdPNG(t, rgb), ColorGray, 1, func(y, x, _ int) uint8 {
			return color.GrayModel.Convert(rgb.NRGBAAt(x, y)).(color.Gray).Y
		}, 0},
		{"pal.png", rdPNG(t, pal), ColorNative, 3, func(y, x, ch int) uint8 {
			c := pal.Palette[pal.ColorIndexAt(x, y)].(color.RGBA)
			return []uint8{c.R, c.G, c.B}[ch]
		}, 0},
		{"alpha.png", rdPNG(t, alpha), ColorNative, 3, func(y, x, ch int) uint8 { return nrgbaAt(alpha, y, x, ch) }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			im, err := DecodeImageMode(tc.name, tc.data, tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			if im.H != 3 || im.W != 4 || im.C != tc.c || len(im.Pix) != 12*tc.c {
				t.Fatalf("got %v with %d bytes, want 3x4x%d", im, len(im.Pix), tc.c)
			}
			for y := 0; y < 3; y++ {
				for x := 0; x < 4; x++ {
					for ch := 0; ch < tc.c; ch++ {
						got, want := int(im.At(y, x, ch)), int(tc.want(y, x, ch))
						if got-want > tc.lossTol || want-got > tc.lossTol {
							t.Fatalf("(%d,%d,%d) = %d, want %d (±%d)", y, x, ch, got, want, tc.lossTol)
						}
					}
				}
			}
		})
	}
}

// nrgbaAt returns channel ch of an NRGBA image at row y, column x.
func nrgbaAt(m *image.NRGBA, y, x, ch int) uint8 { return m.Pix[m.PixOffset(x, y)+ch] }

func TestDecodeImageErrors(t *testing.T) {
	png := rdPNG(t, rdSolid(8, 8, color.NRGBA{1, 2, 3, 255}))
	jpg := rdJPEG(t, rdSolid(16, 16, color.NRGBA{1, 2, 3, 255}))
	hugePNG := bytes.Clone(png)
	copy(hugePNG[16:24], []byte{0, 1, 0, 0, 0, 1, 0, 0}) // IHDR 65536 x 65536 (CRC now wrong too)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty.png", nil, "empty file"},
		{"text.jpg", []byte("hello, I am not an image"), "unknown image format"},
		{"trunc.png", png[:len(png)/2], "PNG"},
		{"trunc.jpg", jpg[:len(jpg)/2], "JPEG"},
		{"header.jpg", jpg[:3], "JPEG"},
		{"huge.png", hugePNG, "PNG"},
		{"bmp.bmp", []byte("BM garbage"), "BMP"},
	}
	for _, tc := range tests {
		im, err := DecodeImage("dir/"+tc.name, tc.data)
		if err == nil {
			t.Errorf("%s: decoded %v, want an error", tc.name, im)
			continue
		}
		if !strings.HasPrefix(err.Error(), "decoding dir/"+tc.name+": ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to name the file and mention %q", tc.name, err, tc.want)
		}
	}
}

func TestToRGBAndToGray(t *testing.T) {
	g := &Image{H: 1, W: 2, C: 1, Pix: []uint8{10, 20}}
	if got := ToRGB(g); !bytes.Equal(got.Pix, []uint8{10, 10, 10, 20, 20, 20}) || got.C != 3 {
		t.Errorf("ToRGB(gray) = %v %v", got, got.Pix)
	}
	rgba := &Image{H: 1, W: 1, C: 4, Pix: []uint8{1, 2, 3, 4}}
	if got := ToRGB(rgba); !bytes.Equal(got.Pix, []uint8{1, 2, 3}) {
		t.Errorf("ToRGB(rgba) = %v", got.Pix)
	}
	rgb := &Image{H: 1, W: 2, C: 3, Pix: []uint8{255, 255, 255, 255, 0, 0}}
	if ToRGB(rgb) != rgb {
		t.Error("ToRGB copied a 3-channel image")
	}
	if got := ToGray(rgb); !bytes.Equal(got.Pix, []uint8{255, 76}) {
		t.Errorf("ToGray = %v, want [255 76]", got.Pix)
	}
	if ToGray(g) != g {
		t.Error("ToGray copied a 1-channel image")
	}
}

func TestIsImageFile(t *testing.T) {
	for name, want := range map[string]bool{
		"a.jpg": true, "a.JPEG": true, "b/c.png": true, "x.Bmp": true, "a.gif": false, "jpg": false, "a.txt": false,
	} {
		if got := IsImageFile(name); got != want {
			t.Errorf("IsImageFile(%q) = %v", name, got)
		}
	}
}
