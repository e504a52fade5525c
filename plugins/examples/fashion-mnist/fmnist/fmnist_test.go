package fmnist_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/peco-dev/peco/plugins/examples/fashion-mnist/fmnist"
	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
)

// ---------------------------------------------------------------- synthetic IDX files

// idxBytes encodes an IDX file of unsigned bytes (uncompressed).
func idxBytes(magic uint32, dims []int, data []byte) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, magic)
	for _, d := range dims {
		_ = binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(data)
	return b.Bytes()
}

// writeGz writes raw gzip-compressed to path.
func writeGz(t *testing.T, path string, raw []byte) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pix is the synthetic pixel (y, x) of image i: asymmetric in x, so flips show.
func pix(i, y, x int) byte { return byte((i*37 + y*5 + x*3) % 256) }

func synthImages(n int) []byte {
	data := make([]byte, n*28*28)
	for i := range n {
		for y := range 28 {
			for x := range 28 {
				data[(i*28+y)*28+x] = pix(i, y, x)
			}
		}
	}
	return data
}

// Synthetic labels: the train split is i%10; the test split starts with
// the labels the hand-made confusion of TestMetrics needs.
var synthTestLabels = []byte{0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 9}

const synthTrain = 40

func synthTrainLabels() []byte {
	l := make([]byte, synthTrain)
	for i := range l {
		l[i] = byte(i % 10)
	}
	return l
}

// writeSynth writes a synthetic dataset into a new temp dir.
func writeSynth(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	nTest := len(synthTestLabels)
	writeGz(t, filepath.Join(dir, fmnist.TrainImagesFile), idxBytes(fmnist.MagicImages, []int{synthTrain, 28, 28}, synthImages(synthTrain)))
	writeGz(t, filepath.Join(dir, fmnist.TrainLabelsFile), idxBytes(fmnist.MagicLabels, []int{synthTrain}, synthTrainLabels()))
	writeGz(t, filepath.Join(dir, fmnist.TestImagesFile), idxBytes(fmnist.MagicImages, []int{nTest, 28, 28}, synthImages(nTest)))
	writeGz(t, filepath.Join(dir, fmnist.TestLabelsFile), idxBytes(fmnist.MagicLabels, []int{nTest}, synthTestLabels))
	return dir
}

// cfg is a config over dir with the synthetic sizes, plus overrides.
func cfg(dir string, kv ...any) sdk.Config {
	c := sdk.Config{"dir": dir, "train_size": float64(synthTrain), "test_size": float64(len(synthTestLabels))}
	for i := 0; i < len(kv); i += 2 {
		v := kv[i+1]
		if n, ok := v.(int); ok {
			v = float64(n)
		}
		c[kv[i].(string)] = v
	}
	return c
}

func configured(t *testing.T, c sdk.Config) *fmnist.Task {
	t.Helper()
	task := &fmnist.Task{}
	if err := task.Configure(c, 7); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return task
}

func seq(from, to int) []int {
	s := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func mean(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s / float64(len(v))
}

// ---------------------------------------------------------------- tests on synthetic files

func TestInfo(t *testing.T) {
	info := (&fmnist.Task{}).Info()
	if info.Name != "fashion_mnist" || info.Version != "1.0.0" || !strings.Contains(info.Doc, "dataset-fashion-mnist") {
		t.Fatalf("info = %+v", info)
	}
	want := map[string]struct {
		typ sdk.FieldType
		def any
	}{
		"dir":        {sdk.FieldString, "/usr/share/datasets/fashion-mnist"},
		"train_size": {sdk.FieldInt, 60000},
		"test_size":  {sdk.FieldInt, 10000},
		"size":       {sdk.FieldInt, 28},
		"channels":   {sdk.FieldInt, 1},
		"hflip":      {sdk.FieldBool, false},
	}
	if len(info.Schema) != len(want) {
		t.Fatalf("schema has %d keys, want %d", len(info.Schema), len(want))
	}
	for _, f := range info.Schema {
		w, ok := want[f.Key]
		if !ok || f.Type != w.typ || f.Default != w.def || f.Doc == "" {
			t.Errorf("schema key %+v, want %+v", f, w)
		}
	}
}

func TestDescribe(t *testing.T) {
	dir := writeSynth(t)
	for _, tc := range []struct {
		name                  string
		c                     sdk.Config
		train, test, size, ch int
	}{
		{"synthetic sizes", cfg(dir), synthTrain, len(synthTestLabels), 28, 1},
		{"subsets, 32, rgb", cfg(dir, "train_size", 10, "test_size", 5, "size", 32, "channels", 3), 10, 5, 32, 3},
		{"shrunk", cfg(dir, "size", 8), synthTrain, len(synthTestLabels), 8, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := configured(t, tc.c).Describe()
			if err != nil {
				t.Fatal(err)
			}
			want := sdk.TaskSpec{
				Splits:     []sdk.Split{{Name: "train", Size: tc.train}, {Name: "test", Size: tc.test}},
				TrainSplit: "train", EvalSplit: "test",
				Height: tc.size, Width: tc.size, Channels: tc.ch,
				Head: sdk.HeadClassification, Classes: 10,
				Metrics:       []string{"top1", "mean_class_acc", "macro_f1"},
				PrimaryMetric: "top1",
			}
			if got, w := jsonOf(spec), jsonOf(want); got != w {
				t.Fatalf("Describe = %s\nwant       %s", got, w)
			}
		})
	}
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestSamples(t *testing.T) {
	dir := writeSynth(t)
	for _, tc := range []struct {
		name    string
		c       sdk.Config
		split   string
		indices []int
	}{
		{"train gray", cfg(dir), "train", []int{3, 0, 39, 3}},
		{"test rgb", cfg(dir, "channels", 3), "test", []int{11, 10, 0}},
		{"train rgb 32", cfg(dir, "channels", 3, "size", 32), "train", seq(0, 12)},
		{"test 8", cfg(dir, "size", 8), "test", seq(0, 12)},
		{"empty", cfg(dir), "train", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := configured(t, tc.c)
			spec, _ := task.Describe()
			s, ch, n := spec.Height, spec.Channels, len(tc.indices)
			im, lb, err := task.Samples(context.Background(), tc.split, tc.indices, 0)
			if err != nil {
				t.Fatal(err)
			}
			if im.DType != sdk.Float32 || jsonOf(im.Shape) != jsonOf([]int{n, s, s, ch}) || im.Check() != nil {
				t.Fatalf("images %s, want float32[%d %d %d %d]", im, n, s, s, ch)
			}
			if lb.DType != sdk.Int32 || jsonOf(lb.Shape) != jsonOf([]int{n}) || lb.Check() != nil {
				t.Fatalf("labels %s, want int32[%d]", lb, n)
			}
			for k, idx := range tc.indices {
				want := int32(idx % 10)
				if tc.split == "test" {
					want = int32(synthTestLabels[idx])
				}
				if lb.I32[k] != want {
					t.Errorf("label of %s[%d] = %d, want %d", tc.split, idx, lb.I32[k], want)
				}
			}
			for i, v := range im.F32 {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("pixel %d = %v, not in [0, 1]", i, v)
				}
			}
			if ch == 3 {
				for p := 0; p < len(im.F32); p += 3 {
					if im.F32[p] != im.F32[p+1] || im.F32[p] != im.F32[p+2] {
						t.Fatalf("pixel %d: channels differ: %v", p/3, im.F32[p:p+3])
					}
				}
			}
			if s == 28 {
				for k, idx := range tc.indices {
					for y := range 28 {
						for x := range 28 {
							got := im.F32[((k*28+y)*28+x)*ch]
							if want := float32(pix(idx, y, x)) / 255; got != want {
								t.Fatalf("%s[%d] pixel (%d, %d) = %v, want %v", tc.split, idx, y, x, got, want)
							}
						}
					}
				}
			}
		})
	}
}

// TestResize: resizing keeps constant images constant and the mean of a
// smooth image; it matches the bilinear value at a known point.
func TestResize(t *testing.T) {
	dir := t.TempDir()
	const n = 3
	img := make([]byte, n*28*28)
	for y := range 28 {
		for x := range 28 {
			img[(0*28+y)*28+x] = 200                                                               // constant
			img[(1*28+y)*28+x] = byte(8 * x)                                                       // ramp
			img[(2*28+y)*28+x] = byte(127 + 120*math.Sin(float64(x)/4.0)*math.Cos(float64(y)/5.0)) // smooth
		}
	}
	for _, f := range [][2]string{{fmnist.TrainImagesFile, fmnist.TrainLabelsFile}, {fmnist.TestImagesFile, fmnist.TestLabelsFile}} {
		writeGz(t, filepath.Join(dir, f[0]), idxBytes(fmnist.MagicImages, []int{n, 28, 28}, img))
		writeGz(t, filepath.Join(dir, f[1]), idxBytes(fmnist.MagicLabels, []int{n}, []byte{1, 2, 3}))
	}
	base := configured(t, sdk.Config{"dir": dir, "train_size": 3.0, "test_size": 3.0})
	orig, _, err := base.Samples(context.Background(), "test", seq(0, n), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{32, 64, 14, 8} {
		task := configured(t, sdk.Config{"dir": dir, "train_size": 3.0, "test_size": 3.0, "size": float64(size)})
		im, _, err := task.Samples(context.Background(), "test", seq(0, n), 0)
		if err != nil {
			t.Fatal(err)
		}
		per := size * size
		for i := range n {
			o := orig.F32[i*784 : (i+1)*784]
			r := im.F32[i*per : (i+1)*per]
			if d := math.Abs(mean(r) - mean(o)); d > 0.01 {
				t.Errorf("size %d image %d: mean %.4f, at 28 %.4f", size, i, mean(r), mean(o))
			}
		}
		for _, v := range im.F32[:per] {
			if math.Abs(float64(v)-200.0/255) > 1e-5 {
				t.Fatalf("size %d: constant image resized to %v", size, v)
			}
		}
		if size == 14 {
			// Halving: each output column averages a 4-wide triangle window
			// centred between two input columns: (1*a + 3*b + 3*c + 1*d) / 8.
			x := 5
			want := (1*8.0*float64(2*x-1) + 3*8.0*float64(2*x) + 3*8.0*float64(2*x+1) + 1*8.0*float64(2*x+2)) / 8 / 255
			if got := float64(im.F32[per+3*size+x]); math.Abs(got-want) > 1e-5 {
				t.Errorf("size 14 ramp at x=%d: %v, want %v", x, got, want)
			}
		}
		if size == 64 {
			// Upscaling is plain bilinear on half-pixel centres: output x
			// sits at input (x+0.5)*28/64-0.5.
			x := 20
			pos := (float64(x)+0.5)*28/64 - 0.5
			want := 8 * pos / 255
			if got := float64(im.F32[per+3*size+x]); math.Abs(got-want) > 1e-5 {
				t.Errorf("size 64 ramp at x=%d: %v, want %v", x, got, want)
			}
		}
	}
}

func TestHFlip(t *testing.T) {
	dir := writeSynth(t)
	ctx := context.Background()
	idx := seq(0, synthTrain)
	flipped := func(task *fmnist.Task, split string, epoch int) []bool {
		t.Helper()
		im, _, err := task.Samples(ctx, split, idx[:min(len(idx), map[string]int{"train": synthTrain, "test": len(synthTestLabels)}[split])], epoch)
		if err != nil {
			t.Fatal(err)
		}
		var out []bool
		for k := range im.Shape[0] {
			i := idx[k]
			a, b := im.F32[k*784+0], im.F32[k*784+27] // row 0, first and last column
			switch {
			case a == float32(pix(i, 0, 0))/255 && b == float32(pix(i, 0, 27))/255:
				out = append(out, false)
			case a == float32(pix(i, 0, 27))/255 && b == float32(pix(i, 0, 0))/255:
				out = append(out, true)
			default:
				t.Fatalf("sample %d is neither the image nor its mirror", i)
			}
		}
		return out
	}
	count := func(v []bool) (n int) {
		for _, b := range v {
			if b {
				n++
			}
		}
		return n
	}
	on := configured(t, cfg(dir, "hflip", true))
	e0, e0again, e1 := flipped(on, "train", 0), flipped(on, "train", 0), flipped(on, "train", 1)
	if jsonOf(e0) != jsonOf(e0again) {
		t.Error("flips of epoch 0 differ between calls")
	}
	if jsonOf(e0) == jsonOf(e1) {
		t.Error("epochs 0 and 1 flip the same samples")
	}
	if c := count(e0); c < 8 || c > 32 {
		t.Errorf("%d of %d train samples flipped", c, synthTrain)
	}
	again := configured(t, cfg(dir, "hflip", true)) // same seed 7
	if jsonOf(flipped(again, "train", 0)) != jsonOf(e0) {
		t.Error("the same seed flips differently")
	}
	if c := count(flipped(on, "test", 0)); c != 0 {
		t.Errorf("%d test samples flipped", c)
	}
	if c := count(flipped(configured(t, cfg(dir)), "train", 0)); c != 0 {
		t.Errorf("%d train samples flipped without hflip", c)
	}
}

// logits returns float32 [len(pred), 10] logits whose argmax is pred.
func logits(pred []int) *sdk.Tensor {
	l := make([]float32, 10*len(pred))
	for i, p := range pred {
		for k := range 10 {
			l[i*10+k] = -float32(k) * 0.1
		}
		l[i*10+p] = 3
	}
	return sdk.NewFloat32(l, len(pred), 10)
}

func TestMetrics(t *testing.T) {
	task := configured(t, cfg(writeSynth(t)))
	// Test labels at 0..9: 0 0 0 0 1 1 2 2 2 2.
	for _, tc := range []struct {
		name          string
		indices, pred []int
		top1, mca, f1 float64
	}{
		{"perfect", seq(0, 12), []int{0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 9}, 100, 100, 100},
		{"perfect, shuffled", []int{11, 3, 7, 0}, []int{9, 0, 2, 0}, 100, 100, 100},
		{"all wrong", seq(0, 4), []int{5, 6, 7, 8}, 0, 0, 0},
		// Truth    0 0 0 0 | 1 1 | 2 2 2 2
		// Predict  0 0 0 1 | 1 2 | 2 2 5 0
		// class 0: TP 3, FN 1, FP 1 -> acc 3/4, F1 6/8
		// class 1: TP 1, FN 1, FP 1 -> acc 1/2, F1 2/4
		// class 2: TP 2, FN 2, FP 1 -> acc 2/4, F1 4/7
		// (class 5 is predicted once but absent from the truth: not averaged)
		// top1 6/10; mean_class_acc (75+50+50)/3; macro_f1 (75+50+400/7)/3.
		{"confusion", seq(0, 10), []int{0, 0, 0, 1, 1, 2, 2, 2, 5, 0},
			60, 175.0 / 3, (125 + 400.0/7) / 3},
		// The same samples in another order give the same metrics.
		{"confusion, reversed", []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, []int{0, 5, 2, 2, 2, 1, 1, 0, 0, 0},
			60, 175.0 / 3, (125 + 400.0/7) / 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := task.Evaluate(context.Background(), "test", tc.indices, logits(tc.pred))
			if err != nil {
				t.Fatal(err)
			}
			if len(m) != 3 {
				t.Errorf("metrics %v, want 3", m)
			}
			for k, want := range map[string]float64{"top1": tc.top1, "mean_class_acc": tc.mca, "macro_f1": tc.f1} {
				if math.Abs(m[k]-want) > 1e-9 {
					t.Errorf("%s = %v, want %v", k, m[k], want)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	dir := writeSynth(t)
	for _, tc := range []struct {
		name string
		c    sdk.Config
		want string
	}{
		{"train_size 0", cfg(dir, "train_size", 0), "train_size: want 1..60000, got 0"},
		{"train_size 60001", cfg(dir, "train_size", 60001), "train_size: want 1..60000"},
		{"test_size 10001", cfg(dir, "test_size", 10001), "test_size: want 1..10000"},
		{"size 7", cfg(dir, "size", 7), "size: want 8..256, got 7"},
		{"size 257", cfg(dir, "size", 257), "size: want 8..256"},
		{"channels 2", cfg(dir, "channels", 2), "channels: want 1 or 3, got 2"},
		{"size not an integer", cfg(dir, "size", 31.5), "size: want an integer"},
		{"hflip not a bool", cfg(dir, "hflip", "yes"), "hflip: want true or false"},
		{"dir empty", cfg("", "size", 32), "dir: want a non-empty string"},
		{"more train than the file", cfg(dir, "train_size", synthTrain+1), "holds 40 items, train_size asks for 41"},
		{"missing dir names the file", cfg(filepath.Join(dir, "nope")), filepath.Join(dir, "nope", "train-images-idx3-ubyte.gz") + ": missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := &fmnist.Task{}
			err := task.Configure(tc.c, 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Configure: %v, want an error with %q", err, tc.want)
			}
			if _, err := task.Describe(); err == nil || !strings.Contains(err.Error(), "not configured") {
				t.Fatalf("Describe after a failed Configure: %v", err)
			}
		})
	}
}

func TestCorruptFiles(t *testing.T) {
	images := idxBytes(fmnist.MagicImages, []int{5, 28, 28}, synthImages(5))
	labels := idxBytes(fmnist.MagicLabels, []int{5}, []byte{1, 2, 3, 4, 5})
	gz := func(raw []byte) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(raw)
		zw.Close()
		return b.Bytes()
	}
	for _, tc := range []struct {
		name string
		file string // the test-split file replaced
		data []byte // written as is
		want string
	}{
		{"not gzip", fmnist.TestImagesFile, images, "t10k-images-idx3-ubyte.gz: not a gzip file"},
		{"bad magic (labels as images)", fmnist.TestImagesFile, gz(labels), "bad IDX magic 0x00000801, want 0x00000803"},
		{"bad magic (images as labels)", fmnist.TestLabelsFile, gz(images), "t10k-labels-idx1-ubyte.gz: bad IDX magic 0x00000803, want 0x00000801"},
		{"truncated data", fmnist.TestImagesFile, gz(images[:len(images)-100]), "t10k-images-idx3-ubyte.gz: truncated: the header says 5 items, the data ends after 4"},
		{"truncated header", fmnist.TestLabelsFile, gz(labels[:6]), "truncated or corrupt IDX header"},
		{"truncated gzip stream", fmnist.TestImagesFile, gz(images)[:300], "t10k-images-idx3-ubyte.gz: truncated"},
		{"corrupt gzip stream", fmnist.TestImagesFile, func() []byte {
			b := gz(images)
			for i := 20; i < 60; i++ {
				b[i] ^= 0xa5
			}
			return b
		}(), "t10k-images-idx3-ubyte.gz: "},
		{"wrong image size", fmnist.TestImagesFile, gz(idxBytes(fmnist.MagicImages, []int{5, 32, 32}, make([]byte, 5*32*32))), "images are 32x32, want 28x28"},
		{"counts differ", fmnist.TestLabelsFile, gz(idxBytes(fmnist.MagicLabels, []int{6}, []byte{1, 2, 3, 4, 5, 6})), "holds 5 images but"},
		{"label out of range", fmnist.TestLabelsFile, gz(idxBytes(fmnist.MagicLabels, []int{5}, []byte{1, 2, 10, 4, 5})), "label 10 of item 2 is not a class"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeSynth(t)
			writeGz(t, filepath.Join(dir, fmnist.TestImagesFile), images)
			writeGz(t, filepath.Join(dir, fmnist.TestLabelsFile), labels)
			if err := os.WriteFile(filepath.Join(dir, tc.file), tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			err := (&fmnist.Task{}).Configure(cfg(dir, "test_size", 5), 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Configure: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestCallErrors(t *testing.T) {
	task := configured(t, cfg(writeSynth(t)))
	ctx := context.Background()
	samples := func(split string, idx []int) error { _, _, err := task.Samples(ctx, split, idx, 0); return err }
	eval := func(split string, idx []int, p *sdk.Tensor) error {
		_, err := task.Evaluate(ctx, split, idx, p)
		return err
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"samples: bad split", samples("val", []int{0}), `unknown split "val"`},
		{"samples: index too big", samples("train", []int{0, 40}), `index 40 (position 1) out of range for split "train" of 40 samples`},
		{"samples: negative index", samples("test", []int{-1}), `index -1 (position 0) out of range for split "test" of 12 samples`},
		{"evaluate: bad split", eval("validation", []int{0}, logits([]int{0})), `unknown split "validation"`},
		{"evaluate: index too big", eval("test", []int{12}, logits([]int{0})), `index 12 (position 0) out of range for split "test"`},
		{"evaluate: duplicate index", eval("test", []int{1, 2, 1}, logits([]int{0, 0, 0})), `index 1 of split "test" appears twice (positions 0 and 2)`},
		{"evaluate: too few rows", eval("test", []int{1, 2}, logits([]int{0})), "predictions are float32[1 10], want float32[2 10]"},
		{"evaluate: wrong classes", eval("test", []int{1}, sdk.NewFloat32(make([]float32, 9), 1, 9)), "predictions are float32[1 9], want float32[1 10]"},
		{"evaluate: rank 1", eval("test", []int{1}, sdk.NewFloat32(make([]float32, 10), 10)), "predictions are float32[10]"},
		{"evaluate: int32", eval("test", []int{1}, sdk.NewInt32(make([]int32, 10), 1, 10)), "predictions are int32[1 10]"},
		{"evaluate: short data", eval("test", []int{1}, sdk.NewFloat32(make([]float32, 5), 1, 10)), "holds 5 elements"},
		{"evaluate: nil", eval("test", []int{1}, nil), "no predictions"},
		{"evaluate: empty", eval("test", nil, sdk.NewFloat32(nil, 0, 10)), "got no samples"},
		{"unconfigured", func() error { _, _, err := (&fmnist.Task{}).Samples(ctx, "train", []int{0}, 0); return err }(), "not configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", tc.err, tc.want)
			}
		})
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := task.Samples(cancelled, "train", []int{0}, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Samples on a cancelled context: %v", err)
	}
}

// TestGRPC serves the task in process through the sdk's servers and
// drives it as the host would: Configure, Describe, streamed Samples and
// Evaluate.
func TestGRPC(t *testing.T) {
	dir := writeSynth(t)
	lis := bufconn.Listen(1 << 20)
	srv := sdk.NewGRPCServer(nil)
	sdk.RegisterServices(srv, &fmnist.Task{})
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	plug, task := pb.NewPluginClient(conn), pb.NewTaskClient(conn)

	info, err := plug.Info(ctx, &pb.InfoRequest{HostApiVersions: []int32{1}})
	if err != nil || info.Name != "fashion_mnist" || info.Kind != pb.Kind_KIND_TASK {
		t.Fatalf("Info: %v %v", info, err)
	}
	cj, _ := json.Marshal(map[string]any{"dir": dir, "train_size": synthTrain, "test_size": 12, "size": 32, "channels": 3, "hflip": false})
	if _, err := plug.Configure(ctx, &pb.ConfigureRequest{ConfigJson: string(cj), Seed: 3, ApiVersion: 1}); err != nil {
		t.Fatal(err)
	}
	spec, err := task.Describe(ctx, &pb.DescribeRequest{})
	if err != nil || spec.Height != 32 || spec.Channels != 3 || spec.Classes != 10 || spec.PrimaryMetric != "top1" || len(spec.Splits) != 2 {
		t.Fatalf("Describe: %v %v", spec, err)
	}
	idx := []int64{5, 1, 39, 0, 22}
	stream, err := task.Samples(ctx, &pb.SamplesRequest{Split: "train", Indices: idx, Epoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	var labels []int32
	var pixels int
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		im, err := sdk.FromProto(c.Images)
		if err != nil {
			t.Fatal(err)
		}
		lb, err := sdk.FromProto(c.Labels)
		if err != nil {
			t.Fatal(err)
		}
		if int(c.Offset) != len(labels) {
			t.Fatalf("chunk offset %d after %d samples", c.Offset, len(labels))
		}
		labels = append(labels, lb.I32...)
		pixels += len(im.F32)
	}
	if jsonOf(labels) != "[5,1,9,0,2]" || pixels != len(idx)*32*32*3 {
		t.Fatalf("streamed labels %v and %d pixels", labels, pixels)
	}

	// A server-streaming call's error surfaces on Recv.
	bad, _ := task.Samples(ctx, &pb.SamplesRequest{Split: "val", Indices: []int64{0}})
	if _, err := bad.Recv(); err == nil || !strings.Contains(err.Error(), `unknown split "val"`) {
		t.Fatalf("Samples of split val: %v", err)
	}

	ev, err := task.Evaluate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Two chunks: truth 0 0 0 0 1 | 1 2 2 2 2, as the confusion of TestMetrics.
	pred := []int{0, 0, 0, 1, 1, 2, 2, 2, 5, 0}
	for _, part := range [][2]int{{0, 5}, {5, 10}} {
		p, _ := logits(pred[part[0]:part[1]]).ToProto("predictions")
		c := &pb.PredictionChunk{Predictions: p}
		if part[0] == 0 {
			c.Split = "test"
		}
		for i := part[0]; i < part[1]; i++ {
			c.Indices = append(c.Indices, int64(i))
		}
		if err := ev.Send(c); err != nil {
			t.Fatal(err)
		}
	}
	m, err := ev.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m.Values["top1"]-60) > 1e-9 || math.Abs(m.Values["mean_class_acc"]-175.0/3) > 1e-9 || math.Abs(m.Values["macro_f1"]-(125+400.0/7)/3) > 1e-9 {
		t.Fatalf("metrics %v", m.Values)
	}
}

// ---------------------------------------------------------------- Debian's files

// debianDir returns the Debian dataset directory, or skips the test.
func debianDir(t *testing.T) string {
	t.Helper()
	for _, f := range []string{fmnist.TrainImagesFile, fmnist.TrainLabelsFile, fmnist.TestImagesFile, fmnist.TestLabelsFile} {
		if _, err := os.Stat(filepath.Join(fmnist.DefaultDir, f)); err != nil {
			t.Skipf("Debian's Fashion-MNIST is not installed (%v): apt-get install dataset-fashion-mnist to run this test", err)
		}
	}
	return fmnist.DefaultDir
}

// rawIDX reads a whole gzip IDX file, skipping a header of hdr bytes.
func rawIDX(t *testing.T, path string, hdr int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b[hdr:]
}

func TestDebian(t *testing.T) {
	dir := debianDir(t)
	ctx := context.Background()
	const nTrain, nTest = 2000, 1000
	trainLabels := rawIDX(t, filepath.Join(dir, fmnist.TrainLabelsFile), 8)
	testLabels := rawIDX(t, filepath.Join(dir, fmnist.TestLabelsFile), 8)
	if len(trainLabels) != 60000 || len(testLabels) != 10000 {
		t.Fatalf("raw label files hold %d and %d labels", len(trainLabels), len(testLabels))
	}

	task := configured(t, sdk.Config{"dir": dir, "train_size": float64(nTrain), "test_size": float64(nTest)})
	spec, err := task.Describe()
	if err != nil {
		t.Fatal(err)
	}
	if jsonOf(spec.Splits) != jsonOf([]sdk.Split{{Name: "train", Size: nTrain}, {Name: "test", Size: nTest}}) || spec.Height != 28 || spec.Channels != 1 {
		t.Fatalf("Describe = %+v", spec)
	}
	for _, sp := range []struct {
		name string
		n    int
		raw  []byte
	}{{"train", nTrain, trainLabels}, {"test", nTest, testLabels}} {
		im, lb, err := task.Samples(ctx, sp.name, seq(0, sp.n), 0)
		if err != nil {
			t.Fatal(err)
		}
		var hist [10]int
		for i, l := range lb.I32 {
			if l != int32(sp.raw[i]) {
				t.Fatalf("%s label %d = %d, the file says %d", sp.name, i, l, sp.raw[i])
			}
			hist[l]++
		}
		for k, c := range hist {
			if c < sp.n/20 {
				t.Errorf("%s: class %d has %d of %d samples", sp.name, k, c, sp.n)
			}
		}
		if m := mean(im.F32); m < 0.2 || m > 0.4 { // Fashion-MNIST's mean is about 0.286
			t.Errorf("%s: mean pixel %.3f", sp.name, m)
		}
	}
	// First test image's pixels against the raw file.
	rawTest := rawIDX(t, filepath.Join(dir, fmnist.TestImagesFile), 16)
	im, _, err := task.Samples(ctx, "test", []int{0, 999}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for k, i := range []int{0, 999} {
		for p := range 784 {
			if want := float32(rawTest[i*784+p]) / 255; im.F32[k*784+p] != want {
				t.Fatalf("test image %d pixel %d = %v, the file says %v", i, p, im.F32[k*784+p], want)
			}
		}
	}

	// Resized to 32, each image keeps its mean intensity.
	big := configured(t, sdk.Config{"dir": dir, "train_size": 1.0, "test_size": 200.0, "size": 32.0, "channels": 3.0})
	orig, _, _ := task.Samples(ctx, "test", seq(0, 200), 0)
	im32, _, err := big.Samples(ctx, "test", seq(0, 200), 0)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range 200 {
		d := math.Abs(mean(im32.F32[i*32*32*3:(i+1)*32*32*3]) - mean(orig.F32[i*784:(i+1)*784]))
		worst = max(worst, d)
	}
	if worst > 0.01 {
		t.Errorf("resizing to 32 moves an image's mean by %.4f", worst)
	}
}
