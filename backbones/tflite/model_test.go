package tflite

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/peco-dev/peco/data"
)

// sharedDir returns the folder holding the MobileNet TFLite files: under
// $PECO_SHARED, else ../../../shared relative to this package. It skips the
// test when the files are absent.
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

func readV2(t testing.TB) *Model {
	t.Helper()
	m, err := ReadFile(filepath.Join(sharedDir(t), "mobilenet_v2_1.0_224_quant.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReadMobileNetV2(t *testing.T) {
	m := readV2(t)
	g := m.Main()
	if m.Version != 3 || len(m.Graphs) != 1 {
		t.Errorf("version %d, %d graphs; want 3, 1", m.Version, len(m.Graphs))
	}
	if len(g.Tensors) != 174 || len(g.Operators) != 66 {
		t.Errorf("%d tensors, %d operators; want 174, 66", len(g.Tensors), len(g.Operators))
	}
	in, out := g.Input(0), g.Output(0)
	if !slices.Equal(in.Shape, []int{1, 224, 224, 3}) || in.Type != Uint8 {
		t.Errorf("input %s, want uint8[1 224 224 3]", in)
	}
	if !slices.Equal(out.Shape, []int{1, 1001}) || out.Type != Uint8 {
		t.Errorf("output %s, want uint8[1 1001]", out)
	}
	if in.Quant == nil || in.Quant.Scale[0] != 1.0/128 || in.Quant.ZeroPoint[0] != 128 {
		t.Errorf("input quantization %+v, want scale 1/128, zero point 128", in.Quant)
	}
	if out.Quant == nil || out.Quant.Scale[0] != 1.0/256 || out.Quant.ZeroPoint[0] != 0 {
		t.Errorf("output quantization %+v, want scale 1/256, zero point 0", out.Quant)
	}
	counts := map[BuiltinOp]int{}
	for _, op := range g.Operators {
		counts[op.Code]++
	}
	want := map[BuiltinOp]int{OpConv2D: 36, OpDepthwiseConv2D: 17, OpAdd: 10, OpAveragePool2D: 1, OpReshape: 1, OpSoftmax: 1}
	for code, n := range want {
		if counts[code] != n {
			t.Errorf("%d %s operators, want %d", counts[code], code, n)
		}
	}
	// The first operator: 3x3 stride-2 SAME conv with RELU6, uint8 weights and int32 bias.
	op := g.Operators[0]
	w, b := g.Tensors[op.Inputs[1]], g.Tensors[op.Inputs[2]]
	if op.Code != OpConv2D || op.Options.StrideH != 2 || op.Options.StrideW != 2 || op.Options.Padding != Same ||
		op.Options.Activation != ActRelu6 {
		t.Errorf("operator 0: %s %+v", op.Code, op.Options)
	}
	if !slices.Equal(w.Shape, []int{32, 3, 3, 3}) || w.Type != Uint8 || len(w.Data) != 864 || w.Quant == nil {
		t.Errorf("operator 0 filter %s", w)
	}
	if b.Type != Int32 || len(b.Data) != 128 {
		t.Errorf("operator 0 bias %s", b)
	}
	// TFLite's bias scale is input scale * filter scale.
	if got, want := float64(b.Quant.Scale[0]), float64(in.Quant.Scale[0])*float64(w.Quant.Scale[0]); got/want-1 > 1e-6 || want/got-1 > 1e-6 {
		t.Errorf("bias scale %g, want %g", got, want)
	}
	if dw := g.Operators[1]; dw.Code != OpDepthwiseConv2D || dw.Options.DepthMultiplier != 1 {
		t.Errorf("operator 1: %s %+v", dw.Code, dw.Options)
	}
	if pool := g.Operators[62]; pool.Code != OpAveragePool2D || pool.Options.FilterH != 7 || pool.Options.Padding != Valid {
		t.Errorf("operator 62: %s %+v", pool.Code, pool.Options)
	}
	vals, err := w.Float32()
	if err != nil {
		t.Fatal(err)
	}
	q, _ := w.Ints()
	if want := float32(float64(q[5]-122) * float64(w.Quant.Scale[0])); vals[5] != want {
		t.Errorf("dequantized filter[5] = %g, want %g", vals[5], want)
	}
}

func TestReadMobileNetV1Embedding(t *testing.T) {
	m, err := ReadFile(filepath.Join(sharedDir(t), "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	g := m.Main()
	if len(g.Operators) != 28 || !slices.Equal(g.Output(0).Shape, []int{1, 1, 1, 1024}) {
		t.Errorf("%d operators, output %s; want 28, [1 1 1 1024]", len(g.Operators), g.Output(0))
	}
}

func TestReadErrors(t *testing.T) {
	valid, err := os.ReadFile(filepath.Join(sharedDir(t), "mobilenet_v2_1.0_224_quant.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	wrongID := bytes.Clone(valid[:4096])
	copy(wrongID[4:8], "ABCD")
	// A tiny FlatBuffer whose root offset points past the end.
	badRoot := []byte{0xff, 0xff, 0, 0, 'T', 'F', 'L', '3'}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"wrong-identifier", wrongID, `file identifier "ABCD", want "TFL3"`},
		{"jpeg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), "not a TFLite model"},
		{"root-out-of-range", badRoot, "outside the 8-byte file"},
		{"truncated-header", valid[:64], "truncated or corrupt"},
		{"truncated-half", valid[:len(valid)/2], "truncated or corrupt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.tflite", tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.tflite") {
				t.Fatalf("Parse error %v, want one naming bad.tflite and containing %q", err, tc.want)
			}
		})
	}
	_, err = ReadFile(filepath.Join(t.TempDir(), "missing.tflite"))
	if err == nil || !strings.Contains(err.Error(), "missing.tflite does not exist") {
		t.Errorf("missing file: %v", err)
	}
}

func TestShapeMismatchError(t *testing.T) {
	m := readV2(t)
	g := m.Main()
	// Make operator 2's filter claim 17 output channels: the interpreter must name it.
	op := g.Operators[2]
	w := g.Tensors[op.Inputs[1]]
	orig := w.Shape
	w.Shape = []int{17, 1, 1, 32}
	defer func() { w.Shape = orig }()
	it, err := NewInterpreter(m)
	if err != nil {
		t.Fatal(err)
	}
	_, err = it.Run(make([]int32, 224*224*3))
	if err == nil || !strings.Contains(err.Error(), "shape mismatch") || !strings.Contains(err.Error(), w.Name) {
		t.Fatalf("error %v, want a shape mismatch naming %q", err, w.Name)
	}
	g.Operators[5].Code = OpMean
	defer func() { g.Operators[5].Code = OpConv2D }()
	if _, err := NewInterpreter(m); err == nil || !strings.Contains(err.Error(), "unsupported operator 5 MEAN") {
		t.Fatalf("NewInterpreter error %v, want unsupported operator 5 MEAN", err)
	}
}

func TestFixedPoint(t *testing.T) {
	q, shift := quantizeMultiplier(0.25)
	if q != 1<<30 || shift != -1 {
		t.Errorf("quantizeMultiplier(0.25) = %d, %d; want 2^30, -1", q, shift)
	}
	for _, tc := range []struct {
		x    int32
		m    float64
		want int32
	}{{1000, 0.25, 250}, {1001, 0.5, 501}, {-1001, 0.5, -500} /* gemmlowp's nudge rounds negative ties toward zero */, {7, 3.0, 21}, {123456, 0.001, 123}} {
		q, s := quantizeMultiplier(tc.m)
		if got := multiplyByQuantizedMultiplier(tc.x, q, s); got != tc.want {
			t.Errorf("%d * %g = %d, want %d", tc.x, tc.m, got, tc.want)
		}
	}
}

// TestInterpreterClassifies runs the integer reference on the reference
// photos (resized to 224x224, as TFLite's label_image does) and checks the
// top-1 ImageNet label.
func TestInterpreterClassifies(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	dir := sharedDir(t)
	m := readV2(t)
	it, err := NewInterpreter(m)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := os.ReadFile(filepath.Join(dir, "imagenet_labels.txt"))
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Split(strings.TrimSpace(string(labels)), "\n")
	for _, tc := range []struct{ file, want string }{{"parrot.jpg", "macaw"}, {"grace_hopper.bmp", "military uniform"}} {
		b, err := os.ReadFile(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		im, err := data.DecodeImage(tc.file, b)
		if err != nil {
			t.Fatal(err)
		}
		im = data.Resize(im, 224, 224, data.Bilinear)
		in := make([]int32, len(im.Pix))
		for i, p := range im.Pix {
			in[i] = int32(p)
		}
		vals, err := it.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		probs := vals[m.Main().Outputs[0]]
		best := 0
		for i, p := range probs {
			if p > probs[best] {
				best = i
			}
		}
		if got := names[best]; got != tc.want {
			t.Errorf("%s: top-1 %q (%d/256), want %q", tc.file, got, probs[best], tc.want)
		}
	}
}
