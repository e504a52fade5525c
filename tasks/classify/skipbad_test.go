package classify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/core/run/runtest"
)

// skipBadConfig trains a tiny ViT on an 8x8 image folder for one epoch.
const skipBadConfig = `
name: skipbad
seed: 1
task:
  type: classification
  epochs: 1
  log_every: 1
  data:
    train: {type: image_folder, root: ROOT, split: train, skip_bad: SKIP}
    val: {type: image_folder, root: ROOT, split: val, skip_bad: SKIP}
    batch_size: 5 # 10 training images: every one is read
    eval_batch_size: 4
    workers: 1
    augment: {size: 8, scale: [1, 1], ratio: [1, 1], hflip: 0, normalize: half, crop_pct: 1.0}
  backbone: {type: vit, preset: "", image_size: 8, patch_size: 4, in_channels: 3, dim: 8, depth: 1, heads: 1}
  optimizer: {type: adamw, lr: 0.001}
`

// writeBadFolder writes an image folder of 8x8 PNGs with a truncated image
// and a zero-byte image in train, a non-image file in val; it returns the
// root.
func writeBadFolder(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "folder")
	m := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for i := range m.Pix {
		m.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	files := map[string][]byte{
		"train/a/trunc.png": good[:len(good)/2],
		"train/b/empty.png": {},
		"val/a/notes.txt":   []byte("not an image"),
	}
	for _, split := range []string{"train", "val"} {
		for _, c := range []string{"a", "b"} {
			for _, n := range []string{"1", "2", "3", "4"} {
				files[split+"/"+c+"/"+n+".png"] = good
			}
		}
	}
	for name, b := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestSkipBadRecordedInMeta runs a classification on a folder with a
// truncated, a zero-byte and a non-image file: without skip_bad the run
// fails naming the first bad file and skip_bad; with it the run completes,
// warns, and meta.json lists the three files with their reasons.
func TestSkipBadRecordedInMeta(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny model; skipped with -short")
	}
	root := writeBadFolder(t)
	cfgFor := func(skip string) string {
		p := filepath.Join(t.TempDir(), "skipbad.yaml")
		cfg := strings.ReplaceAll(strings.ReplaceAll(skipBadConfig, "ROOT", root), "SKIP", skip)
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, err := runtest.Run(context.Background(), t, cfgFor("false"), nil, run.RunOptions{
		Out: filepath.Join(t.TempDir(), "strict"), Stdout: io.Discard, Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "val/a/notes.txt")) || !strings.Contains(err.Error(), "skip_bad: true") {
		t.Fatalf("strict run: error %v, want it to name val/a/notes.txt and skip_bad: true", err)
	}

	var out bytes.Buffer
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := runtest.Run(context.Background(), t, cfgFor("true"), nil, run.RunOptions{
		Out: dir, Stdout: &out, Stderr: io.Discard}); err != nil {
		t.Fatalf("skip_bad run: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, core.MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	var meta run.Meta
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Status != run.StatusCompleted || meta.Skipped == nil || meta.Skipped.Count != 3 {
		t.Fatalf("meta.json: status %q, skipped %+v; want completed with 3 skipped", meta.Status, meta.Skipped)
	}
	want := map[string]string{
		"data.val " + root + "/val/a/notes.txt":     "not an image file",
		"data.train " + root + "/train/a/trunc.png": "PNG",
		"data.train " + root + "/train/b/empty.png": "empty file",
	}
	for _, in := range meta.Skipped.Inputs {
		reason, ok := want[in.Split+" "+in.Path]
		if !ok || !strings.Contains(in.Reason, reason) {
			t.Errorf("meta.json skipped %+v: unexpected, or its reason lacks %q", in, reason)
		}
		delete(want, in.Split+" "+in.Path)
	}
	if len(want) > 0 {
		t.Errorf("meta.json does not list %v", want)
	}
	if w := out.String(); !strings.Contains(w, "warning: skipped") || !strings.Contains(w, "trunc.png") || !strings.Contains(w, "notes.txt") {
		t.Errorf("output lacks the skip warnings:\n%s", w)
	}
}
