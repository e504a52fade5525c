package main

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peco-dev/peco/data"
)

// pngBomb returns a PNG holding only a valid IHDR (correct CRC) declaring
// w x h RGB pixels, and IEND.
func pngBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(data))))
		body := append([]byte(typ), data...)
		b.Write(body)
		b.Write(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(body)))
	}
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h)
	chunk("IHDR", append(ihdr, 8, 2, 0, 0, 0))
	chunk("IEND", nil)
	return b.Bytes()
}

// encodePNG encodes m, failing the test on error.
func encodePNG(t *testing.T, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// badImages writes the faulty inputs the commands are given and returns
// their paths by name: missing, zero-byte, text, truncated, bomb; and good
// RGB and gray images.
func badImages(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	rgb := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for i := range rgb.Pix {
		rgb.Pix[i] = uint8(i * 13)
	}
	gray := image.NewGray(image.Rect(0, 0, 28, 28))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i)
	}
	good := encodePNG(t, rgb)
	files := map[string][]byte{
		"empty.png": {}, "text.jpg": []byte("GIF89a? no: plain text"), "trunc.png": good[:len(good)/2],
		"bomb.png": pngBomb(100000, 100000), "rgb.png": good, "gray.png": encodePNG(t, gray),
	}
	paths := map[string]string{"missing.png": filepath.Join(dir, "missing.png")}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths[name] = p
	}
	return paths
}

// imageFaults are the bad images every command must refuse with an error
// naming the file and saying what is wrong (want, in any letter case).
var imageFaults = []struct{ name, want string }{
	{"missing.png", "no such file"},
	{"empty.png", "empty file"},
	{"text.jpg", "unknown image format"},
	{"trunc.png", "png"},
	{"bomb.png", "100000x100000 pixels (width x height), more than the 64 Mpx limit"},
}

// TestCLITokenizeInputs trains a tiny MNIST tokenizer (1 channel), then
// tokenizes an RGB image (converted to grayscale, with a note), a gray one,
// and each bad image (an error naming it, never a panic).
func TestCLITokenizeInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny tokenizer; skipped with -short")
	}
	runDir := filepath.Join(t.TempDir(), "tok")
	if _, _, err := runCLI(t, "run", shipped("quickstart/1_tokenizer.yaml"), "--out", runDir,
		"--set", "task.data.max_train=64", "--set", "task.data.max_val=32", "--set", "task.data.eval_batch_size=32",
		"--set", "task.tokenizer.encoder.blocks=0", "--set", "task.tokenizer.decoder.blocks=0", "--set", "task.grid_images=0"); err != nil {
		t.Fatalf("training the tokenizer: %v", err)
	}
	imgs := badImages(t)
	out := t.TempDir()
	stdout, stderr, err := runCLI(t, "tokenize", runDir, imgs["rgb.png"], imgs["gray.png"], "--out", out)
	if err != nil {
		t.Fatalf("tokenize RGB and gray images: %v", err)
	}
	if !strings.Contains(stderr, "note: "+imgs["rgb.png"]+" is a color image; converted to grayscale") {
		t.Errorf("stderr %q: want a note that the RGB image was converted", stderr)
	}
	if strings.Contains(stderr, "gray.png") {
		t.Errorf("stderr %q: a gray image needs no note", stderr)
	}
	for _, name := range []string{"rgb_recon.png", "gray_recon.png"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil || !strings.Contains(stdout, "7x7 tokens") {
			t.Errorf("%s: %v; stdout:\n%s", name, err, stdout)
		}
	}
	for _, f := range imageFaults {
		t.Run(f.name, func(t *testing.T) {
			_, _, err := runCLI(t, "tokenize", runDir, imgs["gray.png"], imgs[f.name], "--out", out)
			if err == nil || !strings.Contains(err.Error(), imgs[f.name]) || !containsFold(err.Error(), f.want) {
				t.Errorf("error %v, want one naming %s and saying %q", err, imgs[f.name], f.want)
			}
		})
	}
	if _, _, err := runCLI(t, "tokenize", filepath.Join(out, "no-run"), imgs["gray.png"]); err == nil || !strings.Contains(err.Error(), "no-run") {
		t.Errorf("missing run: error %v, want it named", err)
	}
}

// TestCLIClassifyInputs gives `peco classify` each bad image (needs the
// shared MobileNet weights) and a missing weights file.
func TestCLIClassifyInputs(t *testing.T) {
	imgs := badImages(t)
	if _, _, err := runCLI(t, "classify", filepath.Join(t.TempDir(), "none.tflite"), imgs["rgb.png"]); err == nil || !strings.Contains(err.Error(), "none.tflite") {
		t.Errorf("missing weights: error %v, want it named", err)
	}
	weights := filepath.Join(sharedDir(), "weights", "mobilenet-tflite", "mobilenet_v2_1.0_224_quant.tflite")
	if _, err := os.Stat(weights); err != nil {
		t.Skipf("MobileNet TFLite weights not found (set PECO_SHARED to the shared folder): %v", err)
	}
	for _, f := range imageFaults {
		t.Run(f.name, func(t *testing.T) {
			_, _, err := runCLI(t, "classify", weights, imgs["rgb.png"], imgs[f.name])
			if err == nil || !strings.Contains(err.Error(), imgs[f.name]) || !containsFold(err.Error(), f.want) {
				t.Errorf("error %v, want one naming %s and saying %q", err, imgs[f.name], f.want)
			}
		})
	}
}

// TestCLIEvalSegInputs gives `peco eval seg` bad ground truth and prediction
// files: each error names the file.
func TestCLIEvalSegInputs(t *testing.T) {
	imgs := badImages(t)
	gray := image.NewGray(image.Rect(0, 0, 4, 4))
	for _, f := range imageFaults {
		if f.name == "missing.png" {
			continue // a missing prediction has its own message, tested with eval seg
		}
		t.Run(f.name, func(t *testing.T) {
			gt, pred := t.TempDir(), t.TempDir()
			b, err := os.ReadFile(imgs[f.name])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(gt, "a.png"), encodePNG(t, gray), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(pred, "a.png"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			want := f.want
			if f.name == "text.jpg" {
				want = "not a PNG file"
			}
			_, _, err = runCLI(t, "eval", "seg", "--gt", gt, "--pred", pred, "--classes", "3")
			if p := filepath.Join(pred, "a.png"); err == nil || !strings.Contains(err.Error(), p) || !containsFold(err.Error(), want) {
				t.Errorf("error %v, want one naming %s and saying %q", err, p, want)
			}
		})
	}
}

// sharedDir is the shared folder seen from this package's directory.
func sharedDir() string { return data.SharedDir(filepath.Join("..", "..")) }

// containsFold reports whether s contains substr, ignoring letter case.
func containsFold(s, substr string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(substr))
}

// TestCLISetBlameAndDefaults checks that a value an override makes invalid
// is blamed on the override, and that `peco components` prints list
// defaults as YAML.
func TestCLISetBlameAndDefaults(t *testing.T) {
	_, _, err := runCLI(t, "config", "print", shipped("quickstart.yaml"), "--set", "task.epochs=-3")
	if err == nil || !strings.Contains(err.Error(), "--set task.epochs=-3: task: epochs must be > 0, got -3") {
		t.Errorf("--set task.epochs=-3: error %v, want it blamed on the override", err)
	}
	out, _, err := runCLI(t, "components", "task")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "a list of loss components  = [{type: l1, weight: 1}, {type: vq, weight: 1, beta: 0.25}]") {
		t.Errorf("components task: tokenizer losses not shown as YAML:\n%s", out)
	}
	if strings.Contains(out, " 0x") || strings.Contains(out, "registry.Spec") {
		t.Errorf("components task shows Go values:\n%s", out)
	}
}
