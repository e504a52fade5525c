package data

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"strings"
	"testing"
)

// rdGrayLabels returns an h x w gray label map with value (y*w+x) % mod.
func rdGrayLabels(h, w, mod int) *image.Gray {
	m := image.NewGray(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = uint8(i % mod)
	}
	return m
}

// rdPalettedLabels returns an h x w paletted label map with index
// (y*w+x) % mod and a palette of colors unrelated to the indices.
func rdPalettedLabels(h, w, mod int) *image.Paletted {
	pal := make(color.Palette, 256)
	for k := range pal {
		pal[k] = color.RGBA{uint8(255 - k), uint8(3 * k), 7, 255}
	}
	m := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	for i := range m.Pix {
		m.Pix[i] = uint8(i % mod)
	}
	return m
}

// rdADEFiles is an ADE20k-layout fixture with 3 training pairs (gray and
// paletted label maps) and 1 validation pair; labels go up to 4.
func rdADEFiles(t testing.TB) map[string][]byte {
	t.Helper()
	img := func(h, w int) []byte { return rdJPEG(t, rdSolid(h, w, color.NRGBA{100, 150, 200, 255})) }
	return map[string][]byte{
		"images/training/ADE_train_2.jpg":          img(4, 5),
		"images/training/ADE_train_1.jpg":          img(3, 6),
		"images/training/ADE_train_3.jpg":          img(2, 2),
		"annotations/training/ADE_train_1.png":     rdPNG(t, rdGrayLabels(3, 6, 5)),
		"annotations/training/ADE_train_2.png":     rdPNG(t, rdPalettedLabels(4, 5, 5)),
		"annotations/training/ADE_train_3.png":     rdPNG(t, rdGrayLabels(2, 2, 2)),
		"annotations/training/ADE_train_extra.png": rdPNG(t, rdGrayLabels(2, 2, 2)),
		"images/validation/ADE_val_1.jpg":          img(2, 3),
		"annotations/validation/ADE_val_1.png":     rdPNG(t, rdGrayLabels(2, 3, 3)),
	}
}

func TestADE20kFixture(t *testing.T) {
	roots := rdRoots(t, rdADEFiles(t))
	for _, form := range []string{"dir", "tar", "tar.gz"} {
		d, err := OpenADE20k(ADE20kConfig{Root: roots[form], Split: "training", NumClasses: 4})
		if err != nil {
			t.Fatalf("%s: %v", form, err)
		}
		if d.Len() != 3 || len(d.Classes()) != 4 || d.Classes()[0] != "1" || d.NumClasses() != 4 {
			t.Fatalf("%s: Len %d classes %v", form, d.Len(), d.Classes())
		}
		for i, want := range []struct {
			name string
			h, w int
			mod  int
		}{{"ADE_train_1", 3, 6, 5}, {"ADE_train_2", 4, 5, 5}, {"ADE_train_3", 2, 2, 2}} {
			s, err := d.Sample(i)
			if err != nil {
				t.Fatalf("%s: sample %d: %v", form, i, err)
			}
			if !strings.HasSuffix(s.Path, "images/training/"+want.name+".jpg") || !strings.HasSuffix(d.LabelMapPath(i), "annotations/training/"+want.name+".png") {
				t.Errorf("%s: sample %d paths %s, %s", form, i, s.Path, d.LabelMapPath(i))
			}
			if s.Image.H != want.h || s.Image.W != want.w || s.Image.C != 3 || len(s.LabelMap) != want.h*want.w || s.Label != -1 {
				t.Fatalf("%s: sample %d: image %v, %d labels", form, i, s.Image, len(s.LabelMap))
			}
			for k, v := range s.LabelMap {
				if int(v) != k%want.mod {
					t.Fatalf("%s: sample %d label %d = %d, want %d", form, i, k, v, k%want.mod)
				}
			}
		}
	}
	val, err := OpenADE20k(ADE20kConfig{Root: roots["tgz"], Split: "validation"})
	if err != nil || val.Len() != 1 || val.NumClasses() != DefaultADE20kClasses {
		t.Errorf("validation: %v", err)
	}
}

func TestADE20kErrors(t *testing.T) {
	rgbLabel := image.NewRGBA(image.Rect(0, 0, 2, 2))
	tests := []struct {
		name   string
		change func(f map[string][]byte)
		want   []string
		// atOpen: the problem is found when opening (SkipBad leaves the file
		// out, left samples remaining), otherwise by Sample (SkipBad gives a
		// *BadSampleError).
		atOpen bool
		left   int
	}{
		{"label above num_classes", func(f map[string][]byte) {
			m := rdGrayLabels(2, 2, 2)
			m.Pix[3] = 5
			f["annotations/training/ADE_train_3.png"] = rdPNG(t, m)
		}, []string{"ADE_train_3.png", "label 5 at row 1, column 1 exceeds num_classes 4"}, false, 0},
		{"size mismatch", func(f map[string][]byte) {
			f["annotations/training/ADE_train_3.png"] = rdPNG(t, rdGrayLabels(3, 2, 2))
		}, []string{"label map", "annotations/training/ADE_train_3.png is 2x3", "images/training/ADE_train_3.jpg is 2x2"}, false, 0},
		{"rgb label map", func(f map[string][]byte) {
			f["annotations/training/ADE_train_3.png"] = rdPNG(t, rgbLabel)
		}, []string{"ADE_train_3.png", "8-bit gray or paletted"}, false, 0},
		{"label map not png", func(f map[string][]byte) {
			f["annotations/training/ADE_train_3.png"] = f["images/training/ADE_train_3.jpg"]
		}, []string{"ADE_train_3.png", "not a PNG"}, false, 0},
		{"corrupt image", func(f map[string][]byte) {
			f["images/training/ADE_train_3.jpg"] = []byte{0xff, 0xd8, 0xff, 0}
		}, []string{"decoding", "ADE_train_3.jpg"}, false, 0},
		{"missing label map", func(f map[string][]byte) {
			delete(f, "annotations/training/ADE_train_3.png")
		}, []string{"images/training/ADE_train_3.jpg has no label map", "annotations/training/ADE_train_3.png", "no such file"}, true, 2},
		{"non-image", func(f map[string][]byte) {
			f["images/training/list.txt"] = []byte("x")
		}, []string{"images/training/list.txt is not an image file"}, true, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := rdADEFiles(t)
			tc.change(files)
			roots := rdRoots(t, files)
			check := func(err error) {
				t.Helper()
				for _, w := range tc.want {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v does not mention %q", err, w)
					}
				}
			}
			for _, form := range []string{"dir", "tgz"} {
				cfg := ADE20kConfig{Root: roots[form], Split: "training", NumClasses: 4}
				d, err := OpenADE20k(cfg)
				if tc.atOpen {
					check(err)
				} else {
					if err != nil {
						t.Fatal(err)
					}
					_, err = d.Sample(2)
					var bad *BadSampleError
					if errors.As(err, &bad) {
						t.Errorf("strict Sample gave a BadSampleError")
					}
					check(err)
				}
				cfg.SkipBad = true
				d, err = OpenADE20k(cfg)
				if err != nil {
					t.Fatal(err)
				}
				if tc.atOpen {
					if sk := d.Skipped(); len(sk) != 1 || d.Len() != tc.left {
						t.Errorf("skipped %v, Len %d; want 1 skipped, %d left", sk, d.Len(), tc.left)
					} else {
						check(sk[0])
					}
					continue
				}
				_, err = d.Sample(2)
				var bad *BadSampleError
				if !errors.As(err, &bad) {
					t.Errorf("SkipBad: error %v is not a *BadSampleError", err)
				}
				check(err)
			}
		})
	}
}

func TestADE20kConfigErrors(t *testing.T) {
	roots := rdRoots(t, rdADEFiles(t))
	tests := []struct {
		cfg  ADE20kConfig
		want string
	}{
		{ADE20kConfig{Root: roots["dir"], Split: "test"}, "ade20k images"},
		{ADE20kConfig{Root: roots["dir"], Split: ""}, "split"},
		{ADE20kConfig{Root: roots["dir"], Split: "training", NumClasses: 300}, "num_classes 300"},
		{ADE20kConfig{Root: roots["dir"] + "/nope", Split: "training"}, "ade20k root"},
	}
	for _, tc := range tests {
		if _, err := OpenADE20k(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.cfg, err, tc.want)
		}
	}
}

func TestDecodeLabelMapLowBitDepth(t *testing.T) {
	// A 2-bit gray PNG holding class ids 0..3, which image/png scales to 0,
	// 85, 170, 255; built by hand since image/png only writes 8 or 16 bits.
	chunk := func(buf *bytes.Buffer, typ string, data []byte) {
		binary.Write(buf, binary.BigEndian, uint32(len(data)))
		buf.WriteString(typ)
		buf.Write(data)
		binary.Write(buf, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	chunk(&buf, "IHDR", []byte{0, 0, 0, 4, 0, 0, 0, 1, 2, 0, 0, 0, 0}) // 4x1, depth 2, gray
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte{0, 0b00_01_10_11}) // filter none, pixels 0 1 2 3
	zw.Close()
	chunk(&buf, "IDAT", z.Bytes())
	chunk(&buf, "IEND", nil)
	lm, err := DecodeLabelMap("x.png", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(lm.Pix, []uint8{0, 1, 2, 3}) {
		t.Errorf("labels %v, want [0 1 2 3]", lm.Pix)
	}
	lm8, err := DecodeLabelMap("y.png", rdPNG(t, rdGrayLabels(1, 4, 200)))
	if err != nil || !bytes.Equal(lm8.Pix, []uint8{0, 1, 2, 3}) {
		t.Errorf("8-bit labels %v, %v", lm8, err)
	}
}

func TestADE20kRealCamVid(t *testing.T) {
	root := rdSharedData(t, "camvid-ade.tar.gz")
	d, err := OpenADE20k(ADE20kConfig{Root: root, Split: "training", NumClasses: 11})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 367 {
		t.Fatalf("camvid training: %d samples, want 367", d.Len())
	}
	seen := make([]int, 12)
	for i := 0; i < d.Len(); i++ {
		b, err := d.src.readFile(d.labels[i])
		if err != nil {
			t.Fatal(err)
		}
		lm, err := DecodeLabelMap(d.LabelMapPath(i), b)
		if err != nil {
			t.Fatal(err)
		}
		if lm.H != 360 || lm.W != 480 {
			t.Errorf("%s is %v", d.LabelMapPath(i), lm)
		}
		for _, v := range lm.Pix {
			if v > 11 {
				t.Fatalf("%s: label %d > 11", d.LabelMapPath(i), v)
			}
			seen[v]++
		}
	}
	for k := 1; k <= 11; k++ {
		if seen[k] == 0 {
			t.Errorf("class %d never seen", k)
		}
	}
	for i := 0; i < d.Len(); i += 40 {
		s, err := d.Sample(i)
		if err != nil {
			t.Fatal(err)
		}
		if s.Image.H != 360 || s.Image.W != 480 || len(s.LabelMap) != 360*480 {
			t.Errorf("%s is %v", s.Path, s.Image)
		}
	}
	val, err := OpenADE20k(ADE20kConfig{Root: root, Split: "validation", NumClasses: 11})
	if err != nil || val.Len() != 101 {
		t.Errorf("camvid validation: %v", err)
	}
}
