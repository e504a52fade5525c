package mobilenet

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/backbones/tflite"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/data"
)

// sharedDir returns the folder holding the MobileNet TFLite files: under
// $PECO_SHARED, else ../../../shared relative to this package. It skips the
// test when they are absent.
func sharedDir(t testing.TB) string {
	t.Helper()
	root := os.Getenv("PECO_SHARED")
	if root == "" {
		root = filepath.Join("..", "..", "..", "shared")
	}
	dir := filepath.Join(root, "weights", "mobilenet-tflite")
	if _, err := os.Stat(filepath.Join(dir, "mobilenet_v2_1.0_224_quant.tflite")); err != nil {
		t.Skipf("MobileNet TFLite weights not found in %s (set PECO_SHARED to the shared folder): %v", dir, err)
	}
	return dir
}

func loadV2(t testing.TB) *Network {
	t.Helper()
	cfg := DefaultConfigV2()
	cfg.Weights = filepath.Join(sharedDir(t), "mobilenet_v2_1.0_224_quant.tflite")
	n, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// photo reads a reference photo resized to 224x224 (plain bilinear resize of
// the whole image, as TFLite's label_image).
func photo(t testing.TB, name string) *data.Image {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	im, err := data.DecodeImage(name, b)
	if err != nil {
		t.Fatal(err)
	}
	return data.Resize(im, 224, 224, data.Bilinear)
}

func labels(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedDir(t), "imagenet_labels.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

var photos = []string{"parrot.jpg", "cat.bmp", "grace_hopper.bmp", "owl.jpg"}

// TestAgainstQuantizedModel classifies the four reference photos with the
// float network and with tflite.Interpreter (the integer-arithmetic
// reference of the uint8 model): the float network must find the expected
// labels, agree with the reference's top-1 and have close logits.
func TestAgainstQuantizedModel(t *testing.T) {
	n := loadV2(t)
	names := labels(t)
	it, err := tflite.NewInterpreter(n.Model())
	if err != nil {
		t.Fatal(err)
	}
	logitT := n.Model().Main().Tensors[n.logits]
	var batch []float32
	var refs [][]float32
	for _, f := range photos {
		im := photo(t, f)
		batch = append(batch, n.Pixels(im)...)
		in := make([]int32, len(im.Pix))
		for i, p := range im.Pix {
			in[i] = int32(p)
		}
		vals, err := it.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, logitT.Dequantize(vals[n.logits]))
	}
	exec := model.MustNewExec(gobackend.GetBackend(), model.NewStore(), func(scope *model.Scope, x *Node) *Node {
		return n.Logits(scope, x)
	})
	input := func() *tensors.Tensor {
		return tensors.FromFlatDataAndDimensions(slices.Clone(batch), len(photos), 224, 224, 3)
	}
	exec.MustCall1(input()) // compile
	start := time.Now()
	out := exec.MustCall1(input())
	t.Logf("float forward: %v per 224px image (batch %d, pure-Go backend)", time.Since(start)/time.Duration(len(photos)), len(photos))
	logits := tensors.MustCopyFlatData[float32](out)
	want := map[string]string{"parrot.jpg": "macaw", "cat.bmp": "Egyptian cat", "grace_hopper.bmp": "military uniform"}
	scale := float64(logitT.Quant.Scale[0])
	for i, f := range photos {
		row := logits[i*1001 : (i+1)*1001]
		got, ref := argmax(row), argmax(refs[i])
		if w, ok := want[f]; ok && names[got] != w {
			t.Errorf("%s: float top-1 %q, want %q", f, names[got], w)
		}
		if got != ref {
			t.Errorf("%s: float top-1 %q, quantized reference %q", f, names[got], names[ref])
		}
		var maxDiff, sumDiff float64
		for j := range row {
			d := math.Abs(float64(row[j] - refs[i][j]))
			maxDiff = max(maxDiff, d)
			sumDiff += d
		}
		t.Logf("%s: top-1 %q (float logit %.3f, quantized %.3f); logits |diff| max %.3f, mean %.3f (quantization step %.3f)",
			f, names[got], row[got], refs[i][ref], maxDiff, sumDiff/1001, scale)
		if maxDiff > 8*scale || sumDiff/1001 > 1.5*scale {
			t.Errorf("%s: logits differ from the quantized model: max %.3f, mean %.3f (step %.3f)", f, maxDiff, sumDiff/1001, scale)
		}
	}
}

// TestOperatorsMatchIntegerKernels feeds every operator of the float
// network (with fake quantization of its output) the integer reference's
// own input values and compares its output with the reference's, in units
// of the output's quantization step: this checks each translated operator
// (layouts, padding, bias, activation, residual add, pooling) against the
// quantized kernel's semantics without error accumulation.
func TestOperatorsMatchIntegerKernels(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	n := loadV2(t)
	g := n.Model().Main()
	it, err := tflite.NewInterpreter(n.Model())
	if err != nil {
		t.Fatal(err)
	}
	im := photo(t, "parrot.jpg")
	in := make([]int32, len(im.Pix))
	for i, p := range im.Pix {
		in[i] = int32(p)
	}
	ref, err := it.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	layers := n.layers[:len(n.layers)-1] // SOFTMAX's reference is float
	// One small executable per operator: a single graph with all of them
	// (many independent matmuls) deadlocks the pure-Go backend's worker pool.
	store := model.NewStore()
	var outs []*tensors.Tensor
	for _, l := range layers {
		out := model.MustNewExec(gobackend.GetBackend(), store, func(scope *model.Scope, dummy *Node) *Node {
			vals := map[int]*Node{}
			for _, i := range l.op.Inputs {
				if i >= 0 && ref[i] != nil {
					vals[i] = Const(dummy.Graph(), tensors.FromFlatDataAndDimensions(g.Tensors[i].Dequantize(ref[i]), g.Tensors[i].Shape...))
				}
			}
			return fakeQuant(n.apply(scope, l, vals), g.Tensors[l.op.Outputs[0]])
		}).MustCall1(float32(0))
		outs = append(outs, out)
	}
	worstFrac, worstLSB := 1.0, 0.0
	for i, l := range layers {
		tt := g.Tensors[l.op.Outputs[0]]
		want := tt.Dequantize(ref[tt.Index])
		got := tensors.MustCopyFlatData[float32](outs[i])
		exact, maxLSB := 0, 0.0
		for j := range want {
			d := math.Abs(float64(got[j]-want[j])) / float64(tt.Quant.Scale[0])
			if d < 0.5 {
				exact++
			}
			maxLSB = max(maxLSB, d)
		}
		frac := float64(exact) / float64(len(want))
		worstFrac, worstLSB = min(worstFrac, frac), max(worstLSB, maxLSB)
		// TFLite rescales the accumulator with two roundings (the Q31
		// multiply, then the power-of-two shift), so where the first lands
		// on a half step the integer result is one step above the exactly
		// rounded float value: up to ~12% of a layer's outputs differ by
		// one step, never more.
		if frac < 0.85 || maxLSB > 1.01 {
			t.Errorf("operator %d %s (%s): %.2f%% of outputs equal, max difference %.1f steps", l.op.Index, l.op.Code, l.name, 100*frac, maxLSB)
		}
	}
	t.Logf("%d operators: worst %.2f%% of outputs identical to the integer kernels, max difference %.0f quantization step(s)",
		len(layers), 100*worstFrac, worstLSB)
}

// TestFeatureTaps checks the documented feature shapes of V2 and V1 and that
// the variables are frozen.
func TestFeatureTaps(t *testing.T) {
	dir := sharedDir(t)
	for _, tc := range []struct {
		name, file string
		channels   []int
		classes    int
	}{
		{"v2", "mobilenet_v2_1.0_224_quant.tflite", []int{96, 144, 192, 576, 1280}, 1001},
		{"v1", "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", []int{64, 128, 256, 512, 1024}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfigV2()
			cfg.Weights, cfg.ImageSize = filepath.Join(dir, tc.file), 64
			n, err := Load(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if n.NumClasses() != tc.classes || n.Dim() != tc.channels[4] {
				t.Errorf("classes %d, dim %d; want %d, %d", n.NumClasses(), n.Dim(), tc.classes, tc.channels[4])
			}
			store := model.NewStore()
			outs := model.MustNewExec(gobackend.GetBackend(), store, func(scope *model.Scope, x *Node) []*Node {
				f := n.Forward(scope.At("perceptual"), x, core.ForwardOptions{})
				if f.GridH != 2 || f.GridW != 2 || f.HasCLS {
					t.Errorf("grid %dx%d cls %v, want 2x2 without [CLS]", f.GridH, f.GridW, f.HasCLS)
				}
				return append(f.Layers, f.Tokens)
			}).MustCall(tensors.FromShape(shapesF32(2, 64, 64, 3)))
			for i, s := range n.Stages() {
				side := 64 / (2 << i)
				want := []int{2, side * side, tc.channels[i]}
				if got := outs[i].Shape().Dimensions; !slices.Equal(got, want) || s.Stride != 2<<i || s.H != side {
					t.Errorf("stage %d %s (stride %d): shape %v, want %v", i, s.Name, s.Stride, got, want)
				}
			}
			if got := outs[5].Shape().Dimensions; !slices.Equal(got, []int{2, 4, tc.channels[4]}) {
				t.Errorf("tokens %v", got)
			}
			nvars := 0
			for v := range store.IterVariables() {
				nvars++
				if v.Trainable {
					t.Errorf("variable %s is trainable", v.Path())
				}
			}
			if v := store.GetVariable("/perceptual/Conv2d_0/weights"); tc.name == "v1" && (v == nil || !slices.Equal(v.Shape().Dimensions, []int{3, 3, 3, 32})) {
				t.Errorf("v1 first conv variable: %v", v)
			}
			if v := store.GetVariable("/perceptual/expanded_conv_1/depthwise/weights"); tc.name == "v2" && (v == nil || !slices.Equal(v.Shape().Dimensions, []int{3, 3, 96})) {
				t.Errorf("v2 depthwise variable: %v", v)
			}
			t.Logf("%d variables", nvars)
		})
	}
}

// TestPerceptualDistance checks that the feature distance is 0 between an
// image and itself and grows with blur and with noise.
func TestPerceptualDistance(t *testing.T) {
	n := loadV2(t)
	im := photo(t, "cat.bmp")
	r := rand.New(rand.NewPCG(7, 8))
	variants := [][]float32{n.Pixels(im), n.Pixels(im)}
	for _, sigma := range []float64{0.7, 1.5, 3} {
		variants = append(variants, n.Pixels(gaussianBlur(im, sigma)))
	}
	clean := n.Pixels(im)
	for _, std := range []float64{0.05, 0.15, 0.4} {
		v := slices.Clone(clean)
		for i := range v {
			v[i] += float32(std * r.NormFloat64())
		}
		variants = append(variants, v)
	}
	var batch []float32
	for _, v := range variants {
		batch = append(batch, v...)
	}
	k := len(variants)
	dist := model.MustNewExec(gobackend.GetBackend(), model.NewStore(), func(scope *model.Scope, x *Node) *Node {
		f := n.Forward(scope, x, core.ForwardOptions{})
		var total *Node
		for _, l := range f.Layers {
			// Mean squared distance of each image's features to image 0's.
			d := ReduceMean(Square(Sub(l, Slice(l, AxisElem(0)))), 1, 2)
			if total == nil {
				total = d
			} else {
				total = Add(total, d)
			}
		}
		return total
	}).MustCall1(tensors.FromFlatDataAndDimensions(batch, k, 224, 224, 3))
	d := tensors.MustCopyFlatData[float32](dist)
	t.Logf("distance to itself %g; blur sigma 0.7/1.5/3: %.4f %.4f %.4f; noise 0.05/0.15/0.4: %.4f %.4f %.4f", d[1], d[2], d[3], d[4], d[5], d[6], d[7])
	if d[1] != 0 {
		t.Errorf("distance of an image to itself = %g, want 0", d[1])
	}
	for _, group := range [][]float32{d[2:5], d[5:8]} {
		if !(0 < group[0] && group[0] < group[1] && group[1] < group[2]) {
			t.Errorf("distances %v do not grow with degradation strength", group)
		}
	}
}

// gaussianBlur blurs an 8-bit image with a separable Gaussian (edges clamped).
func gaussianBlur(im *data.Image, sigma float64) *data.Image {
	rad := int(math.Ceil(3 * sigma))
	k := make([]float64, 2*rad+1)
	var sum float64
	for i := range k {
		x := float64(i - rad)
		k[i] = math.Exp(-x * x / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	pass := func(src []float64, horizontal bool) []float64 {
		dst := make([]float64, len(src))
		for y := range im.H {
			for x := range im.W {
				for c := range im.C {
					var s float64
					for i, w := range k {
						yy, xx := y, x
						if horizontal {
							xx = min(max(x+i-rad, 0), im.W-1)
						} else {
							yy = min(max(y+i-rad, 0), im.H-1)
						}
						s += w * src[(yy*im.W+xx)*im.C+c]
					}
					dst[(y*im.W+x)*im.C+c] = s
				}
			}
		}
		return dst
	}
	f := make([]float64, len(im.Pix))
	for i, p := range im.Pix {
		f[i] = float64(p)
	}
	f = pass(pass(f, true), false)
	out := data.NewImage(im.H, im.W, im.C)
	for i, v := range f {
		out.Pix[i] = uint8(min(max(math.Round(v), 0), 255))
	}
	return out
}

func TestNormalize(t *testing.T) {
	pix := []float32{0, 0.5, 1} // [0, 1] ("none") -> [-1, 0, 1]
	got := model.MustNewExec(gobackend.GetBackend(), model.NewStore(), func(_ *model.Scope, x *Node) *Node {
		return Concatenate([]*Node{Normalize(x, "none"), Normalize(MulScalar(AddScalar(x, -0.5), 2), "half"),
			Normalize(Div(Sub(x, ExpandLeftToRank(Const(x.Graph(), []float32{0.485, 0.456, 0.406}), 2)), ExpandLeftToRank(Const(x.Graph(), []float32{0.229, 0.224, 0.225}), 2)), "imagenet")}, 0)
	}).MustCall1(tensors.FromFlatDataAndDimensions(pix, 1, 3))
	assertClose(t, tensors.MustCopyFlatData[float32](got), []float32{-1, 0, 1, -1, 0, 1, -1, 0, 1}, 1e-6)
}

func TestLoadErrors(t *testing.T) {
	dir := sharedDir(t)
	tmp := t.TempDir()
	notTFLite := filepath.Join(tmp, "labels.tflite")
	if err := os.WriteFile(notTFLite, []byte("background\ntench\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(tmp, "nope.tflite"), "nope.tflite does not exist"},
		{"not-tflite", notTFLite, "is not a TFLite model"},
	} {
		cfg := DefaultConfigV2()
		cfg.Weights = tc.path
		if _, err := Load(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	cfg := DefaultConfigV2()
	cfg.ImageSize, cfg.Normalization, cfg.Weights = 100, "sepia", ""
	err := cfg.Validate()
	for _, key := range []string{"weights", "image_size", "normalization"} {
		if err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("Validate: %v, want an error naming %s", err, key)
		}
	}

	path := filepath.Join(dir, "mobilenet_v2_1.0_224_quant.tflite")
	m, err := tflite.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg = DefaultConfigV2()
	op := m.Main().Operators[5]
	op.Code = tflite.OpMean
	if _, err := FromModel(m, cfg); err == nil || !strings.Contains(err.Error(), "unsupported operator 5 MEAN") {
		t.Errorf("unsupported op: %v", err)
	}
	op.Code = tflite.OpConv2D
	w := m.Main().Tensors[op.Inputs[1]]
	w.Shape = []int{24, 1, 1, 95}
	if _, err := FromModel(m, cfg); err == nil || !strings.Contains(err.Error(), "shape mismatch") || !strings.Contains(err.Error(), w.Name) {
		t.Errorf("shape mismatch: %v", err)
	}
}

func TestRegistered(t *testing.T) {
	for _, name := range []string{"mobilenet_v2", "mobilenet_v1"} {
		e, ok := core.Backbones.Lookup(name)
		if !ok {
			t.Fatalf("%s not registered", name)
		}
		cfg := e.NewConfig().(*Config)
		cfg.Weights = filepath.Join(t.TempDir(), "absent.tflite")
		if _, err := core.Backbones.Build(name, cfg); err == nil || !strings.Contains(err.Error(), "absent.tflite") {
			t.Errorf("%s with a missing file: %v", name, err)
		}
	}
}
