package segment

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"

	_ "github.com/peco-dev/peco/backbones/vit"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/core/run/runtest"
	_ "github.com/peco-dev/peco/data"
	_ "github.com/peco-dev/peco/optim"
)

// TestPixelLossIgnores: ignored pixels (-1) do not count; the loss is the
// mean cross-entropy of the others.
func TestPixelLossIgnores(t *testing.T) {
	backend := runtest.Backend(t, "cpu")
	logits := []float32{2, 0, 0, 1, 5, -5, 1, 1} // 1 image, 2x2 pixels, 2 classes
	labels := []int32{0, -1, 1, 1}
	out := MustExecOnce(backend, func(l, y *Node) *Node { return PixelLoss(l, y) },
		tensors.FromFlatDataAndDimensions(logits, 1, 2, 2, 2), tensors.FromFlatDataAndDimensions(labels, 1, 2, 2))
	ce := func(a, b float64, y int) float64 {
		lse := math.Log(math.Exp(a) + math.Exp(b))
		return lse - []float64{a, b}[y]
	}
	want := (ce(2, 0, 0) + ce(5, -5, 1) + ce(1, 1, 1)) / 3
	if got := float64(tensors.ToScalar[float32](out)); math.Abs(got-want) > 1e-5 {
		t.Errorf("loss %v, want %v", got, want)
	}
}

func TestArgmaxAndInterpMatrix(t *testing.T) {
	if got := argmax([]float32{0, 2, 1, 5, -1, 0}, 3); got[0] != 1 || got[1] != 0 {
		t.Errorf("argmax %v", got)
	}
	// The graph's interpolation matrix resizes like the host's ResizeGrid:
	// x2 with half-pixel centres, rows summing to 1.
	m := interpMatrix(4, 2)
	want := []float32{1, 0, 0.75, 0.25, 0.25, 0.75, 0, 1}
	for i := range want {
		if math.Abs(float64(m[i]-want[i])) > 1e-6 {
			t.Fatalf("interpMatrix(4, 2) = %v, want %v", m, want)
		}
	}
}

// writeADE writes a tiny ADE20k-layout dataset: 64x48 frames whose left half
// is class 1 (dark) and right half class 2 (bright), a band of label 0
// (ignored) at the top.
func writeADE(t *testing.T, root string, n int) {
	t.Helper()
	for _, split := range []string{"training", "validation"} {
		for _, sub := range []string{"images", "annotations"} {
			if err := os.MkdirAll(filepath.Join(root, sub, split), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			w, h := 64, 48
			cut := 24 + (i*5)%16
			im := image.NewRGBA(image.Rect(0, 0, w, h))
			lab := image.NewGray(image.Rect(0, 0, w, h))
			for y := range h {
				for x := range w {
					v, c := uint8(40), uint8(1)
					if x >= cut {
						v, c = 220, 2
					}
					if y < 4 {
						c = 0
					}
					im.Set(x, y, color.RGBA{v, v, uint8(255 - int(v)), 255})
					lab.SetGray(x, y, color.Gray{c})
				}
			}
			var jb, pb bytes.Buffer
			if err := jpeg.Encode(&jb, im, &jpeg.Options{Quality: 95}); err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(&pb, lab); err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("f%03d", i)
			if err := os.WriteFile(filepath.Join(root, "images", split, name+".jpg"), jb.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "annotations", split, name+".png"), pb.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

const tinyConfig = `
name: seg-test
seed: 1
task:
  type: segmentation
  epochs: 3
  log_every: 4
  num_classes: 2
  data:
    train: {type: ade20k, root: %q, split: training, num_classes: 2}
    val: {type: ade20k, root: %q, split: validation, num_classes: 2}
    size: 32
    scale: [0.5, 1.0]
    ratio: [1.0, 1.5]
    batch_size: 8
    eval_batch_size: 4
    workers: 2
    normalize: half
  backbone: {type: vit, preset: "", image_size: 32, patch_size: 8, in_channels: 3, dim: 32, depth: 2, heads: 2}
  decoder: {channels: 16, groups: 4}
  optimizer: {type: adamw, lr: 3.0e-3, schedule: {type: cosine, warmup_frac: 0.1}}
  eval: {mode: %s, height: 48, width: 64, stride: 16, overlays: 2}
`

// TestEndToEnd trains on the tiny dataset with both evaluation modes: the
// two-class split is learnt (mIoU well above a constant prediction's),
// metrics, overlays and checkpoints land in the run directory.
func TestEndToEnd(t *testing.T) {
	root := filepath.Join(t.TempDir(), "ade")
	writeADE(t, root, 24)
	for _, mode := range []string{"whole", "slide"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "seg.yaml")
			if err := os.WriteFile(p, []byte(fmt.Sprintf(tinyConfig, root, root, mode)), 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "run")
			if _, err := runtest.Run(context.Background(), t, p, nil, run.RunOptions{Out: out, Stdout: io.Discard, Stderr: io.Discard}); err != nil {
				t.Fatal(err)
			}
			recs, err := run.ReadMetrics(filepath.Join(out, core.MetricsFile))
			if err != nil {
				t.Fatal(err)
			}
			var miou float64
			for _, r := range recs {
				if r["phase"] == "eval" {
					miou = r["val_miou"].(float64)
				}
			}
			// A constant prediction scores at most ~0.3 mIoU here.
			if miou < 0.6 {
				t.Errorf("%s: final val mIoU %.3f, want the two halves learnt (>= 0.6)", mode, miou)
			}
			for _, f := range []string{"images/seg_epoch002_000.png", "images/seg_epoch002_001.png", "checkpoints/last.ckpt"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Error(err)
				}
			}
			b, _ := os.ReadFile(filepath.Join(out, "images/seg_epoch002_000.png"))
			if im, err := png.Decode(bytes.NewReader(b)); err != nil || im.Bounds().Dx() != 3*64 || im.Bounds().Dy() != 48 {
				t.Errorf("overlay: %v, %v", err, im)
			}
		})
	}
}

// TestFromOtherResolution initialises a 48-pixel model from a 32-pixel
// run: the position embedding and relative position bias are resized.
func TestFromOtherResolution(t *testing.T) {
	root := filepath.Join(t.TempDir(), "ade")
	writeADE(t, root, 8)
	dir := t.TempDir()
	p := filepath.Join(dir, "seg.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(tinyConfig, root, root, "whole")), 0o644); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(dir, "first")
	if _, err := runtest.Run(context.Background(), t, p, []string{"task.epochs=1", "task.backbone.rel_pos_bias=shared"}, run.RunOptions{Out: first, Stdout: io.Discard, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	sets := []string{"task.epochs=1", "task.backbone.rel_pos_bias=shared", "task.data.size=48", "task.backbone.image_size=48", "task.from=" + first}
	if _, err := runtest.Run(context.Background(), t, p, sets, run.RunOptions{Out: filepath.Join(dir, "second"), Stdout: &log, Stderr: io.Discard}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"resized to this image size: /backbone/pos_embed [1 17 32] -> [1 37 32]", "/backbone/rel_pos_bias/rel_pos_bias_table [52 2] -> [124 2]"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}
