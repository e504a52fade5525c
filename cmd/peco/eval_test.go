package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peco-dev/peco/data"
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

// cocoEvalFiles writes a COCO ground truth (one 200x200 image, one object:
// the polygon square (0,0)-(100,100), area 1e4) and results: a box covering
// 62% of it (score .9) and the exact box (score .8), each with the mask of
// its box. By hand (metrics' "duplicate and worse box ranked first" case):
// at IoU .50-.60 the first is a TP and the second a duplicate, above it
// the first is a FP ranked above the TP: AP .65, AP50 1, AP75 .5, AR1 .3;
// the same for boxes and masks.
func cocoEvalFiles(t *testing.T) (gtPath, dtPath string) {
	t.Helper()
	dir := t.TempDir()
	gtPath, dtPath = filepath.Join(dir, "instances_val.json"), filepath.Join(dir, "results.json")
	gt := `{"images": [{"id": 1, "file_name": "a.jpg", "height": 200, "width": 200}],
		"categories": [{"id": 1, "name": "box"}],
		"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": 10000, "iscrowd": 0,
			"segmentation": [[0, 0, 0, 100, 100, 100, 100, 0]]}]}`
	if err := os.WriteFile(gtPath, []byte(gt), 0o644); err != nil {
		t.Fatal(err)
	}
	rect := func(h int) *metrics.COCOSegmentation {
		m := make([]uint8, 200*200)
		for y := 0; y < h; y++ {
			for x := 0; x < 100; x++ {
				m[y*200+x] = 1
			}
		}
		s, err := metrics.MaskSegmentation(m, 200, 200)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	dets := []metrics.COCODetection{
		{ImageID: 1, CategoryID: 1, BBox: []float64{0, 0, 100, 62}, Segmentation: rect(62), Score: .9},
		{ImageID: 1, CategoryID: 1, BBox: []float64{0, 0, 100, 100}, Segmentation: rect(100), Score: .8},
	}
	if err := metrics.WriteCOCODetections(dtPath, dets); err != nil {
		t.Fatal(err)
	}
	return gtPath, dtPath
}

func TestCLIEvalCOCO(t *testing.T) {
	gtPath, dtPath := cocoEvalFiles(t)
	for _, typ := range []string{"bbox", "segm"} {
		statsPath := filepath.Join(t.TempDir(), "stats.json")
		out, _, err := runCLI(t, "eval", "coco", "--gt", gtPath, "--dt", dtPath, "--iou-type", typ, "--out", statsPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			typ + ": 1 images, 2 detections\n",
			" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.650\n",
			" Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 1.000\n",
			" Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.500\n",
			" Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000\n",
			" Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.300\n",
			" Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 1.000\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", typ, want, out)
			}
		}
		if n := strings.Count(out, "\n"); n != 13 {
			t.Errorf("%s: %d lines, want 13:\n%s", typ, n, out)
		}
		b, err := os.ReadFile(statsPath)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]float64
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", statsPath, err)
		}
		if len(m) != 12 || math.Abs(m["AP"]-.65) > 1e-9 || math.Abs(m["AP75"]-.5) > 1e-9 || m["APs"] != -1 || math.Abs(m["AR1"]-.3) > 1e-9 {
			t.Errorf("%s: stats file %s", typ, b)
		}
	}
}

func TestCLIEvalCOCOErrors(t *testing.T) {
	gtPath, dtPath := cocoEvalFiles(t)
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknownImage := write("unknown.json", `[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1},
		{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]`)
	truncated := write("truncated.json", `[{"image_id": 1, "category_id": 1, "bbox": [0, 0,`)
	boxOnly := write("boxes.json", `[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]`)
	shortBox := write("short.json", `[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1},
		{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 1}]`)
	missing := filepath.Join(dir, "missing.json")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing ground truth", []string{"--gt", missing, "--dt", dtPath}, []string{missing, "no such file"}},
		{"missing results", []string{"--gt", gtPath, "--dt", missing}, []string{missing, "no such file"}},
		{"truncated results", []string{"--gt", gtPath, "--dt", truncated}, []string{truncated}},
		{"bbox of 3 numbers", []string{"--gt", gtPath, "--dt", shortBox}, []string{shortBox, "detection 1", "bbox"}},
		{"image not in the ground truth", []string{"--gt", gtPath, "--dt", unknownImage}, []string{unknownImage, "detection 1", "image id 7"}},
		{"segm of box results", []string{"--gt", gtPath, "--dt", boxOnly, "--iou-type", "segm"}, []string{boxOnly, "detection 0", "no segmentation"}},
		{"iou type", []string{"--gt", gtPath, "--dt", dtPath, "--iou-type", "keypoints"}, []string{"--iou-type", "keypoints"}},
		{"required flags", []string{"--gt", gtPath}, []string{"required", "dt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCLI(t, append([]string{"eval", "coco"}, tc.args...)...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestCLIEvalCOCOTiny scores coco-tiny's val ground truth, read in place
// from the archive in ../shared/data, against itself: AP 1 for boxes and
// masks (skipped when the archive is absent).
func TestCLIEvalCOCOTiny(t *testing.T) {
	archive := filepath.Join("..", "..", "..", "shared", "data", "coco-tiny.tar.gz")
	if _, err := os.Stat(archive); err != nil {
		t.Skipf("real data test: %s not present", archive)
	}
	gtPath := filepath.Join(archive, "annotations", "instances_val2017.json")
	gt, err := metrics.ReadCOCOGroundTruth(gtPath)
	if err != nil {
		t.Fatal(err)
	}
	var dets []metrics.COCODetection
	for _, a := range gt.Annotations {
		if !a.IsCrowd {
			dets = append(dets, metrics.COCODetection{ImageID: a.ImageID, CategoryID: a.CategoryID, BBox: a.BBox[:], Score: 1,
				Segmentation: &metrics.COCOSegmentation{Size: [2]int{a.Mask.H, a.Mask.W}, Counts: data.EncodeRLEString(a.Mask.Counts)}})
		}
	}
	dtPath := filepath.Join(t.TempDir(), "self.json")
	if err := metrics.WriteCOCODetections(dtPath, dets); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"bbox", "segm"} {
		out, _, err := runCLI(t, "eval", "coco", "--gt", gtPath, "--dt", dtPath, "--iou-type", typ)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%s: 80 images, %d detections\n Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000\n", typ, len(dets))
		if !strings.HasPrefix(out, want) {
			t.Errorf("output does not begin with %q:\n%s", want, out)
		}
	}
}
