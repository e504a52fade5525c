package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peco-dev/peco/metrics"
)

// writeLabelPNG writes a w x h label map holding vals (row-major) as an
// 8-bit PNG: paletted (the index is the label) or gray.
func writeLabelPNG(t *testing.T, path string, w, h int, paletted bool, vals ...uint8) {
	t.Helper()
	if len(vals) != w*h {
		t.Fatalf("%s: %d values for %dx%d", path, len(vals), w, h)
	}
	var m image.Image
	if paletted {
		pal := make(color.Palette, 256)
		for i := range pal {
			// Colors unrelated to the index, as in real label palettes.
			pal[i] = color.RGBA{uint8(i * 37), uint8(255 - i), uint8(i * 11), 255}
		}
		p := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		copy(p.Pix, vals)
		m = p
	} else {
		g := image.NewGray(image.Rect(0, 0, w, h))
		copy(g.Pix, vals)
		m = g
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, m); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// evalDirs makes a gt and a pred folder for 3 classes, ADE20k conventions
// (ground truth 0 ignored, v is class v-1; predictions saved as class+1).
//
// a.png, 3x2: gt stored [1 1 2 / 0 3 255] = classes [0 0 1 / - 2 -];
// pred stored [1 2 2 / 3 3 1] = classes [0 1 1 / 2 2 0].
// Evaluated pixels: (0,0) 0=0 right, (0,1) 1 for 0 wrong, (0,2) 1=1 right,
// (1,1) 2=2 right. I = [1 1 1], P = [1 2 1], L = [2 1 1].
//
// b.png, 2x2: gt stored [2 2 / 2 1] = classes [1 1 / 1 0];
// pred stored [2 0 / 2 2] = classes [1 -1 / 1 1] (-1: out of range, wrong).
// I = [0 2 0], P = [0 3 0], L = [1 3 0].
//
// Total: I = [1 3 1], P = [1 5 1], L = [3 4 1], U = P+L-I = [3 6 1].
// IoU = [1/3 1/2 1], mIoU = 11/18 = 61.11%; Acc = [1/3 3/4 1],
// mAcc = 25/36 = 69.44%; aAcc = 5/8 = 62.50%.
func evalDirs(t *testing.T) (gtDir, predDir string) {
	dir := t.TempDir()
	gtDir, predDir = filepath.Join(dir, "gt"), filepath.Join(dir, "pred")
	for _, d := range []string{gtDir, predDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeLabelPNG(t, filepath.Join(gtDir, "a.png"), 3, 2, true, 1, 1, 2, 0, 3, 255)
	writeLabelPNG(t, filepath.Join(predDir, "a.png"), 3, 2, false, 1, 2, 2, 3, 3, 1)
	writeLabelPNG(t, filepath.Join(gtDir, "b.png"), 2, 2, false, 2, 2, 2, 1)
	writeLabelPNG(t, filepath.Join(predDir, "b.png"), 2, 2, true, 2, 0, 2, 2)
	// A prediction without ground truth and a file that is not a PNG.
	writeLabelPNG(t, filepath.Join(predDir, "c.png"), 1, 1, false, 1)
	if err := os.WriteFile(filepath.Join(gtDir, "README.txt"), []byte("not a label map"), 0o644); err != nil {
		t.Fatal(err)
	}
	return gtDir, predDir
}

func TestCLIEvalSeg(t *testing.T) {
	gtDir, predDir := evalDirs(t)
	out, _, err := runCLI(t, "eval", "seg", "--gt", gtDir, "--pred", predDir, "--classes", "3", "--class-names", "wall,floor,tree")
	if err != nil {
		t.Fatal(err)
	}

	// The same images through SegMeter (classes as computed in evalDirs).
	m := metrics.NewSegMeter(3, true)
	for _, im := range []struct {
		pred []int32
		gt   []uint8
	}{
		{[]int32{0, 1, 1, 2, 2, 0}, []uint8{1, 1, 2, 0, 3, 255}},
		{[]int32{1, -1, 1, 1}, []uint8{2, 2, 2, 1}},
	} {
		if err := m.Add(im.pred, im.gt); err != nil {
			t.Fatal(err)
		}
	}
	r := m.Result()
	if got := metrics.Percent(r.MIoU); got != "61.11" {
		t.Errorf("SegMeter mIoU = %s%%, want 61.11%% (11/18, by hand)", got)
	}
	summary := "mIoU " + metrics.Percent(r.MIoU) + "  mAcc " + metrics.Percent(r.MAcc) + "  aAcc " + metrics.Percent(r.AAcc) + " (2 images)"
	for _, want := range []string{
		"mIoU 61.11  mAcc 69.44  aAcc 62.50 (2 images)", // by hand
		summary, // by SegMeter
		"|  wall | 33.33  | 33.33  |",
		"| floor | 50.00  | 75.00  |",
		"|  tree | 100.00 | 100.00 |",
		"1 predicted pixels are outside classes 0..2",
		"1 predictions without ground truth ignored",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, r.Table([]string{"wall", "floor", "tree"})) {
		t.Errorf("output lacks SegMeter's table:\n%s", out)
	}

	// 0-based predictions: the same maps with every prediction one lower
	// score the same, except that b's out-of-range pixel is now 255.
	for _, p := range []struct {
		name string
		w, h int
		vals []uint8
	}{
		{"a.png", 3, 2, []uint8{0, 1, 1, 2, 2, 0}},
		{"b.png", 2, 2, []uint8{1, 255, 1, 1}},
	} {
		writeLabelPNG(t, filepath.Join(predDir, p.name), p.w, p.h, false, p.vals...)
	}
	out, _, err = runCLI(t, "eval", "seg", "--gt", gtDir, "--pred", predDir, "--classes", "3", "--pred-offset", "0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, summary) {
		t.Errorf("--pred-offset 0: output lacks %q:\n%s", summary, out)
	}
}

func TestCLIEvalSegErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, gtDir, predDir string)
		args  []string
		want  func(gtDir, predDir string) []string
	}{
		{name: "missing prediction",
			setup: func(t *testing.T, gtDir, predDir string) {
				writeLabelPNG(t, filepath.Join(gtDir, "d.png"), 1, 1, false, 1)
			},
			args: []string{"--classes", "3"},
			want: func(gtDir, predDir string) []string {
				return []string{"no prediction " + filepath.Join(predDir, "d.png"), "ground truth " + filepath.Join(gtDir, "d.png")}
			}},
		{name: "size mismatch",
			setup: func(t *testing.T, gtDir, predDir string) {
				writeLabelPNG(t, filepath.Join(predDir, "a.png"), 2, 3, false, 1, 1, 1, 1, 1, 1)
			},
			args: []string{"--classes", "3"},
			want: func(gtDir, predDir string) []string {
				return []string{filepath.Join(predDir, "a.png") + " is 2x3", filepath.Join(gtDir, "a.png") + " is 3x2"}
			}},
		{name: "label beyond --classes",
			args: []string{"--classes", "2"},
			want: func(gtDir, predDir string) []string {
				return []string{filepath.Join(gtDir, "a.png"), "label 3 at row 1, column 1 is class 2", "--classes"}
			}},
		{name: "class names count",
			args: []string{"--classes", "3", "--class-names", "wall,floor"},
			want: func(string, string) []string { return []string{"2 names", "--classes is 3"} }},
		{name: "no ground truth",
			setup: func(t *testing.T, gtDir, predDir string) {
				for _, name := range []string{"a.png", "b.png"} {
					if err := os.Remove(filepath.Join(gtDir, name)); err != nil {
						t.Fatal(err)
					}
				}
			},
			args: []string{"--classes", "3"},
			want: func(gtDir, _ string) []string { return []string{"no *.png label maps in --gt " + gtDir} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gtDir, predDir := evalDirs(t)
			if tc.setup != nil {
				tc.setup(t, gtDir, predDir)
			}
			_, _, err := runCLI(t, append([]string{"eval", "seg", "--gt", gtDir, "--pred", predDir}, tc.args...)...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tc.want(gtDir, predDir) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
	_, _, err := runCLI(t, "eval", "seg", "--gt", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "required") || !strings.Contains(err.Error(), "pred") {
		t.Errorf("without --pred and --classes: err = %v, want a required-flag error", err)
	}
}
