// Package fmnist is the Fashion-MNIST task plugin: Zalando's 70,000 28x28
// gray images of 10 clothing classes, read from the gzip IDX files of
// Debian's dataset-fashion-mnist package. The plugin serves the images (as
// float32 [n, size, size, channels] in [0, 1]) and scores the host's
// classification logits (top-1, mean per-class accuracy, macro F1).
//
// The main package next to it serves the task: sdk.Serve(&fmnist.Task{}).
package fmnist

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/peco-dev/peco/plugins/sdk"
)

// Dataset facts.
const (
	// Classes is the number of Fashion-MNIST classes.
	Classes = 10
	// Side is the height and width of the images in the files.
	Side = 28
	// TrainTotal and TestTotal are the images of the train and t10k files.
	TrainTotal = 60000
	TestTotal  = 10000

	// DefaultDir is where Debian's dataset-fashion-mnist installs the files.
	DefaultDir = "/usr/share/datasets/fashion-mnist"

	// MagicImages and MagicLabels are the IDX magic numbers: unsigned
	// bytes, 3 dimensions (images) or 1 (labels).
	MagicImages = 0x00000803
	MagicLabels = 0x00000801

	minSize, maxSize = 8, 256
)

// File names of the four IDX files in the dataset directory.
const (
	TrainImagesFile = "train-images-idx3-ubyte.gz"
	TrainLabelsFile = "train-labels-idx1-ubyte.gz"
	TestImagesFile  = "t10k-images-idx3-ubyte.gz"
	TestLabelsFile  = "t10k-labels-idx1-ubyte.gz"
)

// The split names.
const (
	SplitTrain = "train"
	SplitTest  = "test"
)

// ClassNames are the Fashion-MNIST class names, by label.
var ClassNames = [Classes]string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

// Metric names, as Describe lists them.
const (
	MetricTop1         = "top1"
	MetricMeanClassAcc = "mean_class_acc"
	MetricMacroF1      = "macro_f1"
)

// Task is the Fashion-MNIST task plugin. Its zero value is ready for
// Configure; it is safe for concurrent use once configured.
type Task struct {
	mu    sync.RWMutex
	state *state
}

// state is everything Configure sets up; it is not changed afterwards.
type state struct {
	seed     int64
	size     int
	channels int
	hflip    bool
	splits   map[string]*split
	resize   []tap // per output coordinate (rows and columns alike); nil when size == Side
}

// split is one split's raw data: n images of Side x Side bytes, n labels.
type split struct {
	images []uint8
	labels []uint8
}

func (s *split) len() int { return len(s.labels) }

// tap is one output coordinate of the separable resize filter: the input
// coordinates [start, start+len(w)) with weights w (summing to 1).
type tap struct {
	start int
	w     []float32
}

var _ sdk.Task = (*Task)(nil)

// Info implements sdk.Plugin.
func (t *Task) Info() sdk.Info {
	return sdk.Info{
		Name:    "fashion_mnist",
		Version: "1.0.0",
		Doc:     "Fashion-MNIST classification (Zalando, 10 classes) from Debian's dataset-fashion-mnist",
		Schema:  append([]sdk.Field(nil), schema...),
	}
}

var schema = []sdk.Field{
	{Key: "dir", Type: sdk.FieldString, Default: DefaultDir,
		Doc: "directory holding " + TrainImagesFile + ", " + TrainLabelsFile + ", " + TestImagesFile + " and " + TestLabelsFile + " (apt-get install dataset-fashion-mnist)"},
	{Key: "train_size", Type: sdk.FieldInt, Default: TrainTotal,
		Doc: "the train split is the first train_size of the 60000 training images (1..60000)"},
	{Key: "test_size", Type: sdk.FieldInt, Default: TestTotal,
		Doc: "the test split is the first test_size of the 10000 test images (1..10000)"},
	{Key: "size", Type: sdk.FieldInt, Default: Side,
		Doc: "images are served as size x size (8..256), resized bilinearly (antialiased when shrinking) when not 28"},
	{Key: "channels", Type: sdk.FieldInt, Default: 1,
		Doc: "1 (gray) or 3 (the gray channel replicated, for RGB backbones)"},
	{Key: "hflip", Type: sdk.FieldBool, Default: false,
		Doc: "flip train samples horizontally at random, deterministically from (seed, epoch, index)"},
}

// Configure implements sdk.Plugin: it checks the config and loads the
// splits into memory (as bytes). Keys the config lacks take the schema's
// defaults; keys the schema does not know are ignored.
func (t *Task) Configure(cfg sdk.Config, seed int64) error {
	t.mu.Lock()
	t.state = nil
	t.mu.Unlock()

	c, err := decode(cfg)
	if err != nil {
		return err
	}
	st := &state{seed: seed, size: c.size, channels: c.channels, hflip: c.hflip, splits: map[string]*split{}}
	for _, s := range []struct {
		name, images, labels string
		n                    int
		key                  string
	}{
		{SplitTrain, TrainImagesFile, TrainLabelsFile, c.trainSize, "train_size"},
		{SplitTest, TestImagesFile, TestLabelsFile, c.testSize, "test_size"},
	} {
		sp, err := loadSplit(filepath.Join(c.dir, s.images), filepath.Join(c.dir, s.labels), s.n, s.key)
		if err != nil {
			return err
		}
		st.splits[s.name] = sp
	}
	if c.size != Side {
		st.resize = resizeTaps(Side, c.size)
	}
	t.mu.Lock()
	t.state = st
	t.mu.Unlock()
	return nil
}

type config struct {
	dir                 string
	trainSize, testSize int
	size, channels      int
	hflip               bool
}

// decode reads and checks the config section.
func decode(cfg sdk.Config) (config, error) {
	get := func(f sdk.Field) any {
		if v, ok := cfg[f.Key]; ok && v != nil {
			return v
		}
		return f.Default
	}
	var c config
	var errs []string
	for _, f := range schema {
		v := get(f)
		switch f.Type {
		case sdk.FieldString:
			s, ok := v.(string)
			if !ok || s == "" {
				errs = append(errs, fmt.Sprintf("%s: want a non-empty string, got %v", f.Key, v))
				continue
			}
			c.dir = s // the only string key
		case sdk.FieldBool:
			b, ok := v.(bool)
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: want true or false, got %v", f.Key, v))
				continue
			}
			c.hflip = b // the only bool key
		case sdk.FieldInt:
			n, ok := asInt(v)
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: want an integer, got %v", f.Key, v))
				continue
			}
			lo, hi := 0, 0
			switch f.Key {
			case "train_size":
				c.trainSize, lo, hi = n, 1, TrainTotal
			case "test_size":
				c.testSize, lo, hi = n, 1, TestTotal
			case "size":
				c.size, lo, hi = n, minSize, maxSize
			case "channels":
				c.channels = n
				if n != 1 && n != 3 {
					errs = append(errs, fmt.Sprintf("channels: want 1 or 3, got %d", n))
				}
				continue
			}
			if n < lo || n > hi {
				errs = append(errs, fmt.Sprintf("%s: want %d..%d, got %d", f.Key, lo, hi, n))
			}
		}
	}
	if len(errs) > 0 {
		return config{}, fmt.Errorf("fashion_mnist config: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// asInt reads an integer config value (JSON numbers decode as float64).
func asInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<31 {
			return 0, false
		}
		return int(x), true
	}
	return 0, false
}

// loadSplit reads the first n images and labels of a pair of IDX files.
func loadSplit(imagesPath, labelsPath string, n int, key string) (*split, error) {
	images, count, err := readIDX(imagesPath, MagicImages, n, key)
	if err != nil {
		return nil, err
	}
	labels, lcount, err := readIDX(labelsPath, MagicLabels, n, key)
	if err != nil {
		return nil, err
	}
	if count != lcount {
		return nil, fmt.Errorf("fashion_mnist: %s holds %d images but %s holds %d labels", imagesPath, count, labelsPath, lcount)
	}
	for i, l := range labels {
		if l >= Classes {
			return nil, fmt.Errorf("fashion_mnist: %s: label %d of item %d is not a class (0..%d)", labelsPath, l, i, Classes-1)
		}
	}
	return &split{images: images, labels: labels}, nil
}

// readIDX reads the header of a gzip IDX file of unsigned bytes and the
// data of its first n items; it returns them and the item count of the
// header. For images (magic MagicImages) the items must be Side x Side.
func readIDX(path string, magic uint32, n int, key string) ([]uint8, int, error) {
	fail := func(format string, a ...any) ([]uint8, int, error) {
		return nil, 0, fmt.Errorf("fashion_mnist: %s: %s", path, fmt.Sprintf(format, a...))
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fail("missing (install Debian's dataset-fashion-mnist, or point dir at a directory holding the Fashion-MNIST .gz files)")
		}
		return nil, 0, fmt.Errorf("fashion_mnist: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return fail("not a gzip file: %v", err)
	}
	defer zr.Close()

	dims := 1
	if magic == MagicImages {
		dims = 3
	}
	hdr := make([]byte, 4*(1+dims))
	if _, err := io.ReadFull(zr, hdr[:4]); err != nil {
		return fail("truncated or corrupt IDX header: %v", err)
	}
	if got := binary.BigEndian.Uint32(hdr); got != magic {
		what := "labels: unsigned bytes, 1 dimension"
		if magic == MagicImages {
			what = "images: unsigned bytes, 3 dimensions"
		}
		return fail("bad IDX magic 0x%08x, want 0x%08x (%s)", got, magic, what)
	}
	if _, err := io.ReadFull(zr, hdr[4:]); err != nil {
		return fail("truncated or corrupt IDX header: %v", err)
	}
	count := int(binary.BigEndian.Uint32(hdr[4:]))
	item := 1
	if dims == 3 {
		h, w := binary.BigEndian.Uint32(hdr[8:]), binary.BigEndian.Uint32(hdr[12:])
		if h != Side || w != Side {
			return fail("images are %dx%d, want %dx%d", h, w, Side, Side)
		}
		item = Side * Side
	}
	if count < n {
		return fail("holds %d items, %s asks for %d", count, key, n)
	}
	data := make([]uint8, n*item)
	if got, err := io.ReadFull(zr, data); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fail("truncated: the header says %d items, the data ends after %d of them", count, got/item)
		}
		return fail("corrupt gzip data: %v", err)
	}
	return data, count, nil
}

// resizeTaps builds the separable bilinear filter from in to out samples,
// as PIL's BILINEAR: a triangle filter on half-pixel centers, widened by
// the scale when shrinking (antialiasing), weights normalized.
func resizeTaps(in, out int) []tap {
	scale := float64(in) / float64(out)
	fs := max(scale, 1)
	taps := make([]tap, out)
	for i := range out {
		center := (float64(i) + 0.5) * scale
		lo := max(int(center-fs+0.5), 0)
		hi := min(int(center+fs+0.5), in)
		ws := make([]float64, hi-lo)
		var sum float64
		for x := lo; x < hi; x++ {
			v := max(0, 1-math.Abs((float64(x)-center+0.5)/fs))
			ws[x-lo] = v
			sum += v
		}
		w := make([]float32, len(ws))
		for k := range ws {
			w[k] = float32(ws[k] / sum)
		}
		taps[i] = tap{start: lo, w: w}
	}
	return taps
}

func (t *Task) get() (*state, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.state == nil {
		return nil, errors.New("fashion_mnist: not configured")
	}
	return t.state, nil
}

// Describe implements sdk.Task.
func (t *Task) Describe() (sdk.TaskSpec, error) {
	st, err := t.get()
	if err != nil {
		return sdk.TaskSpec{}, err
	}
	return sdk.TaskSpec{
		Splits: []sdk.Split{
			{Name: SplitTrain, Size: st.splits[SplitTrain].len()},
			{Name: SplitTest, Size: st.splits[SplitTest].len()},
		},
		TrainSplit:    SplitTrain,
		EvalSplit:     SplitTest,
		Height:        st.size,
		Width:         st.size,
		Channels:      st.channels,
		Head:          sdk.HeadClassification,
		Classes:       Classes,
		Metrics:       []string{MetricTop1, MetricMeanClassAcc, MetricMacroF1},
		PrimaryMetric: MetricTop1,
	}, nil
}

// lookup finds a split and checks indices against it.
func (st *state) lookup(name string, indices []int) (*split, error) {
	sp, ok := st.splits[name]
	if !ok {
		return nil, fmt.Errorf("fashion_mnist: unknown split %q (the splits are %q and %q)", name, SplitTrain, SplitTest)
	}
	for i, idx := range indices {
		if idx < 0 || idx >= sp.len() {
			return nil, fmt.Errorf("fashion_mnist: index %d (position %d) out of range for split %q of %d samples", idx, i, name, sp.len())
		}
	}
	return sp, nil
}

// Samples implements sdk.Task: images float32 [n, size, size, channels] in
// [0, 1] and labels int32 [n]. Train samples are flipped horizontally, when
// hflip is set, by a coin drawn from (seed, epoch, index).
func (t *Task) Samples(ctx context.Context, splitName string, indices []int, epoch int) (images, labels *sdk.Tensor, err error) {
	st, err := t.get()
	if err != nil {
		return nil, nil, err
	}
	sp, err := st.lookup(splitName, indices)
	if err != nil {
		return nil, nil, err
	}
	n, s, c := len(indices), st.size, st.channels
	per := s * s * c
	img := make([]float32, n*per)
	lab := make([]int32, n)
	var scratch []float32
	if st.resize != nil {
		scratch = make([]float32, Side*s)
	}
	for k, idx := range indices {
		if k%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
		}
		lab[k] = int32(sp.labels[idx])
		flip := st.hflip && splitName == SplitTrain && coin(st.seed, epoch, idx)
		st.render(sp.images[idx*Side*Side:(idx+1)*Side*Side], img[k*per:(k+1)*per], flip, scratch)
	}
	return sdk.NewFloat32(img, n, s, s, c), sdk.NewInt32(lab, n), nil
}

// render writes one Side x Side byte image into dst as size x size x
// channels floats in [0, 1], resized and flipped as configured.
func (st *state) render(src []uint8, dst []float32, flip bool, scratch []float32) {
	s, c := st.size, st.channels
	put := func(y, x int, v float32) {
		if flip {
			x = s - 1 - x
		}
		o := (y*s + x) * c
		for ch := range c {
			dst[o+ch] = v
		}
	}
	if st.resize == nil {
		for y := range Side {
			for x := range Side {
				put(y, x, float32(src[y*Side+x])/255)
			}
		}
		return
	}
	taps := st.resize
	// Horizontal pass: Side rows of s columns.
	for y := range Side {
		row := src[y*Side : (y+1)*Side]
		for x, tp := range taps {
			var v float32
			for k, w := range tp.w {
				v += w * float32(row[tp.start+k])
			}
			scratch[y*s+x] = v
		}
	}
	// Vertical pass.
	for y, tp := range taps {
		for x := range s {
			var v float32
			for k, w := range tp.w {
				v += w * scratch[(tp.start+k)*s+x]
			}
			v /= 255
			put(y, x, min(max(v, 0), 1))
		}
	}
}

// coin is a fair coin drawn from (seed, epoch, index): splitmix64 of a mix
// of the three.
func coin(seed int64, epoch, index int) bool {
	z := uint64(seed)
	z = mix(z ^ 0x9e3779b97f4a7c15*uint64(epoch+1))
	z = mix(z ^ 0xbf58476d1ce4e5b9*uint64(index+1))
	return z>>63 == 1
}

func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Evaluate implements sdk.Task: predictions are float32 logits [n, 10] for
// the samples at indices of split (distinct, in range). It returns, in
// percent: top1 (accuracy of the argmax), mean_class_acc (the mean over the
// classes present in those samples of each class's accuracy) and macro_f1
// (the mean over the same classes of 2TP / (2TP + FP + FN)).
func (t *Task) Evaluate(ctx context.Context, splitName string, indices []int, predictions *sdk.Tensor) (map[string]float64, error) {
	st, err := t.get()
	if err != nil {
		return nil, err
	}
	sp, err := st.lookup(splitName, indices)
	if err != nil {
		return nil, err
	}
	n := len(indices)
	if n == 0 {
		return nil, fmt.Errorf("fashion_mnist: Evaluate of split %q got no samples", splitName)
	}
	if predictions == nil {
		return nil, errors.New("fashion_mnist: Evaluate got no predictions")
	}
	if predictions.DType != sdk.Float32 || len(predictions.Shape) != 2 || predictions.Shape[0] != n || predictions.Shape[1] != Classes {
		return nil, fmt.Errorf("fashion_mnist: predictions are %s, want float32[%d %d] (logits for %d samples)", predictions, n, Classes, n)
	}
	if err := predictions.Check(); err != nil {
		return nil, fmt.Errorf("fashion_mnist: predictions: %w", err)
	}
	seen := make(map[int]int, n)
	for i, idx := range indices {
		if j, dup := seen[idx]; dup {
			return nil, fmt.Errorf("fashion_mnist: index %d of split %q appears twice (positions %d and %d)", idx, splitName, j, i)
		}
		seen[idx] = i
	}
	var conf [Classes][Classes]int // conf[truth][predicted]
	for i, idx := range indices {
		conf[sp.labels[idx]][argmax(predictions.F32[i*Classes:(i+1)*Classes])]++
	}
	return Metrics(&conf), nil
}

// argmax is the first index of the largest value (NaN never wins).
func argmax(v []float32) int {
	best, bi := float32(math.Inf(-1)), 0
	for i, x := range v {
		if x > best {
			best, bi = x, i
		}
	}
	return bi
}

// Metrics computes the three metrics, in percent, from a confusion matrix
// conf[truth][predicted]. Only the classes present in the truth are
// averaged in mean_class_acc and macro_f1; a prediction of an absent class
// still counts as a miss (a false negative) of the sample's true class.
func Metrics(conf *[Classes][Classes]int) map[string]float64 {
	var total, correct, present int
	var accSum, f1Sum float64
	for k := range Classes {
		tp, fn, fp := conf[k][k], 0, 0
		for j := range Classes {
			if j != k {
				fn += conf[k][j]
				fp += conf[j][k]
			}
		}
		total += tp + fn
		correct += tp
		if tp+fn == 0 {
			continue
		}
		present++
		accSum += float64(tp) / float64(tp+fn)
		if d := 2*tp + fp + fn; d > 0 {
			f1Sum += 2 * float64(tp) / float64(d)
		}
	}
	m := map[string]float64{MetricTop1: 0, MetricMeanClassAcc: 0, MetricMacroF1: 0}
	if total > 0 {
		m[MetricTop1] = 100 * float64(correct) / float64(total)
	}
	if present > 0 {
		m[MetricMeanClassAcc] = 100 * accSum / float64(present)
		m[MetricMacroF1] = 100 * f1Sum / float64(present)
	}
	return m
}
