package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/peco-dev/peco/backbones/vit"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/core/run/runtest"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/metrics"
	_ "github.com/peco-dev/peco/optim"
)

// writeCOCO writes a tiny COCO dataset under root: images/<split> holds n
// 64x48 JPEGs (ids from firstID) on a grey background with one or two
// rectangles, red (category 3) or blue (category 7), annotated by box and
// rectangle polygon; the first image also has a crowd region (an
// uncompressed RLE) over its bottom-right corner.
func writeCOCO(t testing.TB, root, split string, firstID, n int) {
	t.Helper()
	dir := filepath.Join(root, split)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "annotations"), 0o755); err != nil {
		t.Fatal(err)
	}
	const w, h = 64, 48
	var images, anns []map[string]any
	annID := firstID * 100
	for i := range n {
		id := firstID + i
		im := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				im.Set(x, y, color.RGBA{128, 128, 128, 255})
			}
		}
		type rect struct {
			x, y, rw, rh int
			cat          int
		}
		rects := []rect{{4 + 3*(i%5), 4 + 2*(i%4), 20 + i%3*4, 16 + i%2*6, 3}}
		if i%2 == 1 {
			rects = append(rects, rect{38 - i%3, 20 + i%3, 22, 24, 7})
		}
		for _, r := range rects {
			col := color.RGBA{220, 30, 30, 255}
			if r.cat == 7 {
				col = color.RGBA{30, 30, 220, 255}
			}
			for y := r.y; y < r.y+r.rh; y++ {
				for x := r.x; x < r.x+r.rw; x++ {
					im.Set(x, y, col)
				}
			}
			x0, y0, x1, y1 := float64(r.x), float64(r.y), float64(r.x+r.rw), float64(r.y+r.rh)
			anns = append(anns, map[string]any{"id": annID, "image_id": id, "category_id": r.cat, "iscrowd": 0,
				"area": float64(r.rw * r.rh), "bbox": []float64{x0, y0, x1 - x0, y1 - y0},
				"segmentation": [][]float64{{x0, y0, x1, y0, x1, y1, x0, y1}}})
			annID++
		}
		if i == 0 {
			// Crowd: columns 56-63, rows 40-47 (column-major runs).
			var counts []int
			counts = append(counts, 56*h+40)
			for c := 56; c < w; c++ {
				counts = append(counts, 8)
				if c < w-1 {
					counts = append(counts, 40)
				}
			}
			anns = append(anns, map[string]any{"id": annID, "image_id": id, "category_id": 3, "iscrowd": 1, "area": 64.0,
				"bbox": []float64{56, 40, 8, 8}, "segmentation": map[string]any{"counts": counts, "size": []int{h, w}}})
			annID++
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, im, &jpeg.Options{Quality: 95}); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%012d.jpg", id)
		if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		images = append(images, map[string]any{"id": id, "file_name": name, "width": w, "height": h})
	}
	js, err := json.Marshal(map[string]any{"images": images, "annotations": anns,
		"categories": []map[string]any{{"id": 3, "name": "red"}, {"id": 7, "name": "blue"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "annotations", "instances_"+split+".json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
}

const tinyConfig = `
name: coco-test
seed: 1
task:
  type: coco
  epochs: 2
  log_every: 2
  data:
    train:
      - {type: coco, root: %[1]q, images: train}
      - {type: coco, root: %[1]q, images: extra}
    val: {type: coco, root: %[1]q, images: val}
    size: 64
    scale: [0.6, 1.0]
    normalize: half
    batch_size: 4
    eval_batch_size: 3
    workers: 2
  backbone: {type: vit, preset: "", image_size: 64, patch_size: 16, in_channels: 3, dim: 32, depth: 2, heads: 2}
  head: {strides: [8, 16, 32], size_bounds: [8, 16], channels: 16, groups: 4, tower_depth: 1, prototypes: 4, mask_samples: 4}
  optimizer: {type: adamw, lr: 3.0e-3, schedule: {type: cosine, warmup_frac: 0}}
  eval: {overlays: 2, overlay_score: 0.0}
`

// writeTinyConfig writes the synthetic dataset (8 + 4 training images in
// two splits, 4 validation images) and the config using it.
func writeTinyConfig(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "coco")
	writeCOCO(t, root, "train", 1, 8)
	writeCOCO(t, root, "extra", 21, 4)
	writeCOCO(t, root, "val", 101, 4)
	p := filepath.Join(dir, "coco.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(tinyConfig, root)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEndToEnd trains the detector for two short epochs on the synthetic
// dataset: COCO statistics of both IoU types in the log, result JSON
// files in the run directory that the metrics package reads back, and
// overlays; then a second run starts from the first's backbone.
func TestEndToEnd(t *testing.T) {
	p := writeTinyConfig(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "run")
	if _, err := runtest.Run(context.Background(), t, p, nil, run.RunOptions{Out: out, Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	recs, err := run.ReadMetrics(filepath.Join(out, core.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	evals := 0
	for _, r := range recs {
		if r["phase"] != "eval" {
			continue
		}
		evals++
		for _, iou := range []string{"bbox", "segm"} {
			for _, k := range []string{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"} {
				v, ok := r["val_"+iou+"_"+k].(float64)
				if !ok || v < -1 || v > 1 {
					t.Errorf("eval %d: val_%s_%s = %v", evals, iou, k, r["val_"+iou+"_"+k])
				}
				if (k == "AP" || k == "AP50") && (v < 0 || v > 1) {
					t.Errorf("eval %d: val_%s_%s = %v, want in [0, 1]", evals, iou, k, v)
				}
			}
		}
	}
	if evals != 2 {
		t.Errorf("%d evaluations logged, want 2", evals)
	}
	for _, f := range []string{BoxPredictionsFile, MaskPredictionsFile} {
		dets, err := metrics.ReadCOCODetections(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if len(dets) == 0 || len(dets) > 4*100 {
			t.Errorf("%s: %d detections", f, len(dets))
		}
		for _, d := range dets {
			if d.ImageID < 101 || d.ImageID > 104 || (d.CategoryID != 3 && d.CategoryID != 7) || len(d.BBox) != 4 {
				t.Fatalf("%s: detection %+v", f, d)
			}
			if d.BBox[0] < 0 || d.BBox[1] < 0 || d.BBox[0]+d.BBox[2] > 64+1e-3 || d.BBox[1]+d.BBox[3] > 48+1e-3 {
				t.Fatalf("%s: box %v outside the 64x48 image", f, d.BBox)
			}
			if (f == MaskPredictionsFile) != (d.Segmentation != nil) {
				t.Fatalf("%s: segmentation %v", f, d.Segmentation)
			}
			if d.Segmentation != nil && d.Segmentation.Size != [2]int{48, 64} {
				t.Fatalf("%s: mask size %v, want the original 48x64", f, d.Segmentation.Size)
			}
		}
	}
	for _, f := range []string{"images/coco_epoch001_000.png", "images/coco_epoch001_001.png"} {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if im, err := png.Decode(bytes.NewReader(b)); err != nil || im.Bounds().Dx() != 2*64 || im.Bounds().Dy() != 48 {
			t.Errorf("%s: %v, %v", f, err, im)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "images/coco_epoch001_002.png")); err == nil {
		t.Error("a third overlay, eval.overlays is 2")
	}

	var log bytes.Buffer
	if _, err := runtest.Run(context.Background(), t, p, []string{"task.epochs=1", "task.from=" + out},
		run.RunOptions{Out: filepath.Join(dir, "from"), Stdout: &log, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "backbone initialised from "+filepath.Join(out, "checkpoints")) {
		t.Errorf("log of the run from the first:\n%s", log.String())
	}
}

// TestLossDecreasesOnFixedBatch trains a few steps on one batch: the loss
// and its classification, box and mask terms go down.
func TestLossDecreasesOnFixedBatch(t *testing.T) {
	exp, _, err := run.LoadExperiment(writeTinyConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := *exp.Task.Config.(*Config)
	val, err := openVal(cfg.Data.Val, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	train, err := openTrain(cfg.Data.Train, val)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 12 || train.Classes()[1] != "blue" {
		t.Fatalf("train: %d images, classes %v", train.Len(), train.Classes())
	}
	st, err := newStep(&core.Env{Backend: runtest.Backend(t, "cpu"), Seed: 1}, cfg, 2)
	if err != nil {
		t.Fatal(err)
	}
	st.totalSteps = 1000
	norm, _ := data.NewNormalizer("half")
	r := rand.New(rand.NewPCG(1, 1))
	var items []item
	pos := 0
	for i := range 4 {
		s, err := train.Sample(i)
		if err != nil {
			t.Fatal(err)
		}
		it, err := st.trainItem(s, data.Full(s.Image.H, s.Image.W), false, norm, r)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
		pos += it.t.NumPositive()
	}
	if pos < 4 {
		t.Fatalf("%d positive locations in the batch", pos)
	}
	var first, last map[string]float64
	for step := range 12 {
		m, err := st.run(items, step)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = m
		}
		last = m
	}
	for _, k := range []string{"loss", "loss_cls", "loss_box", "loss_mask"} {
		if last[k] >= 0.9*first[k] {
			t.Errorf("%s: %.4f after 12 steps, %.4f at the first", k, last[k], first[k])
		}
	}
	t.Logf("first %v\nlast %v", first, last)
}

// TestRefusals: configs the task cannot run are refused with the key at
// fault.
func TestRefusals(t *testing.T) {
	p := writeTinyConfig(t)
	root := filepath.Join(filepath.Dir(p), "coco")
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{fmt.Sprintf("task.data.val={type: coco, root: %q, images: extra}", root)}, "data.train.1: image id 21 is also in data.val"},
		{[]string{"task.head.size_bounds=[8]"}, "head.size_bounds needs 2 bounds"},
		{[]string{"task.data.train=[]"}, "data.train must list at least one dataset"},
		{[]string{"task.head.strides=[8, 16, 128]", "task.head.size_bounds=[8, 16]"}, "cannot be pooled to stride 128"},
		{[]string{"task.data.val={type: image_folder, root: /nonexistent}"}, "data.val: the coco task needs a dataset of type coco"},
	} {
		exp, resolved, err := run.LoadExperiment(p, tc.set)
		if err == nil {
			_, err = run.RunExperiment(context.Background(), exp, resolved, run.RunOptions{Out: t.TempDir(), Backend: runtest.Backend(t, "cpu"), Stdout: io.Discard, Stderr: io.Discard})
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.set, err, tc.want)
		}
	}
}

// TestSharedData opens the data of configs/detect/coco_vit.yaml (real COCO
// in ../shared/data; skipped when absent): 208 training images, 80
// held-out validation images sharing no image id, the ground truth read
// from inside the archive, and a real training image's targets.
func TestSharedData(t *testing.T) {
	if _, err := os.Stat(filepath.Join("..", "..", "..", "shared", "data", "coco-tiny.tar.gz")); err != nil {
		t.Skip("real data test: ../shared/data/coco-tiny.tar.gz not present")
	}
	if _, err := os.Stat(filepath.Join("..", "..", "..", "shared", "data", "coco128.tar.gz")); err != nil {
		t.Skip("real data test: ../shared/data/coco128.tar.gz not present")
	}
	t.Chdir(filepath.Join("..", "..")) // the config's data paths are relative to the repository
	exp, _, err := run.LoadExperiment(filepath.Join("configs", "detect", "coco_vit.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := *exp.Task.Config.(*Config)
	val, err := openVal(cfg.Data.Val, cfg.Data.MaxVal, 1)
	if err != nil {
		t.Fatal(err)
	}
	train, err := openTrain(cfg.Data.Train, val)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 208 || len(val.idx) != 80 || len(train.Classes()) != 80 {
		t.Fatalf("%d train / %d val images, %d classes; want 208 / 80, 80", train.Len(), len(val.idx), len(train.Classes()))
	}
	gt, err := val.groundTruth()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.EvaluateCOCO(gt, nil, metrics.COCOParams{IoUType: "bbox", ImageIDs: val.imageIDs()}); err != nil {
		t.Fatal(err)
	}
	st, err := newStep(&core.Env{Backend: runtest.Backend(t, "cpu"), Seed: 1}, cfg, 80)
	if err != nil {
		t.Fatal(err)
	}
	s, err := train.Sample(0)
	if err != nil {
		t.Fatal(err)
	}
	norm, _ := data.NewNormalizer(cfg.Data.Normalize)
	it, err := st.trainItem(s, data.Full(s.Image.H, s.Image.W), false, norm, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(it.pix) != 160*160*3 || it.t.NumPositive() == 0 || it.maskWeight[0] != 1 {
		t.Errorf("%s: %d input values, %d positives, mask weights %v", s.Path, len(it.pix), it.t.NumPositive(), it.maskWeight)
	}
}
