package data

import (
	"bytes"
	"errors"
	"image/color"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rdFolderFiles is an ImageFolder fixture: three classes whose folder names
// are not in creation order, PNG, JPEG and BMP images, a nested folder, dot
// files and a README in the split folder.
func rdFolderFiles(t testing.TB) map[string][]byte {
	t.Helper()
	red := rdSolid(4, 5, color.NRGBA{255, 0, 0, 255})
	green := rdSolid(4, 5, color.NRGBA{0, 255, 0, 255})
	blue := rdSolid(6, 3, color.NRGBA{0, 0, 255, 255})
	return map[string][]byte{
		"train/zebra/b.png":        rdPNG(t, red),
		"train/zebra/a.png":        rdPNG(t, green),
		"train/apple/x.bmp":        rdBMP(t, blue),
		"train/apple/sub/y.JPEG":   rdJPEG(t, red),
		"train/apple/.hidden.jpg":  []byte("junk"),
		"train/mango/only.png":     rdPNG(t, blue),
		"train/README.txt":         []byte("not a class"),
		"train/.cache/whatever":    []byte("x"),
		"val/apple/v.png":          rdPNG(t, green),
		"val/zebra/w.png":          rdPNG(t, red),
		"README.md":                []byte("top"),
		"train/zebra/.DS_Store":    []byte("mac"),
		"train/mango/sub/.ignored": []byte("dot"),
	}
}

func TestImageFolderLayoutAndForms(t *testing.T) {
	roots := rdRoots(t, rdFolderFiles(t))
	var ref []Sample
	for _, form := range []string{"dir", "tar", "tar.gz", "tgz"} {
		t.Run(form, func(t *testing.T) {
			d, err := OpenImageFolder(ImageFolderConfig{Root: roots[form], Split: "train"})
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"apple", "mango", "zebra"}; !slices.Equal(d.Classes(), want) {
				t.Fatalf("classes %v, want %v", d.Classes(), want)
			}
			wantPaths := []string{"apple/sub/y.JPEG", "apple/x.bmp", "mango/only.png", "zebra/a.png", "zebra/b.png"}
			wantLabels := []int{0, 0, 1, 2, 2}
			if d.Len() != len(wantPaths) {
				t.Fatalf("Len %d, want %d", d.Len(), len(wantPaths))
			}
			var got []Sample
			for i := 0; i < d.Len(); i++ {
				s, err := d.Sample(i)
				if err != nil {
					t.Fatal(err)
				}
				if want := roots[form] + "/train/" + wantPaths[i]; s.Path != want {
					t.Errorf("sample %d path %q, want %q", i, s.Path, want)
				}
				if s.Label != wantLabels[i] || d.Label(i) != wantLabels[i] {
					t.Errorf("sample %d label %d, want %d", i, s.Label, wantLabels[i])
				}
				if s.Image.C != 3 {
					t.Errorf("sample %d has %d channels", i, s.Image.C)
				}
				got = append(got, s)
			}
			// Spot-check pixels: zebra/a.png is green with a magenta corner.
			a := got[3].Image
			if a.H != 4 || a.W != 5 || a.At(1, 1, 1) != 255 || a.At(1, 1, 0) != 0 || a.At(0, 0, 0) != 255 || a.At(0, 0, 1) != 0 {
				t.Errorf("zebra/a.png decoded wrong: %v %v", a, a.Pix[:6])
			}
			if form == "dir" {
				ref = got
				return
			}
			for i := range got {
				if !bytes.Equal(got[i].Image.Pix, ref[i].Image.Pix) || got[i].Label != ref[i].Label {
					t.Errorf("sample %d differs from the folder form", i)
				}
			}
		})
	}
}

func TestImageFolderGrayscale(t *testing.T) {
	roots := rdRoots(t, rdFolderFiles(t))
	d, err := OpenImageFolder(ImageFolderConfig{Root: roots["tar"], Split: "val", Grayscale: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := d.Sample(0) // apple/v.png, green
	if err != nil {
		t.Fatal(err)
	}
	if s.Image.C != 1 || s.Image.At(1, 1, 0) != 150 {
		t.Errorf("gray sample %v value %d, want 1 channel, 150", s.Image, s.Image.At(1, 1, 0))
	}
}

func TestImageFolderErrors(t *testing.T) {
	good := rdPNG(t, rdSolid(2, 2, color.NRGBA{9, 9, 9, 255}))
	tests := []struct {
		name  string
		files map[string][]byte
		split string
		want  []string
	}{
		{"missing split", map[string][]byte{"train/a/x.png": good}, "val", []string{"image folder split", "/val", "no such file"}},
		{"no classes", map[string][]byte{"train/x.png": good}, "train", []string{"/train: no class folders"}},
		{"empty class", map[string][]byte{"train/a/x.png": good, "train/b": nil}, "train", []string{"class folder", "/train/b holds no images"}},
		{"non-image", map[string][]byte{"train/a/x.png": good, "train/a/notes.txt": []byte("hi")}, "train", []string{"/train/a/notes.txt is not an image file"}},
		{"bad split", map[string][]byte{"train/a/x.png": good}, "../train", []string{"split", "relative path"}},
	}
	for _, tc := range tests {
		for _, form := range []string{"dir", "tar.gz"} {
			roots := rdRoots(t, tc.files)
			_, err := OpenImageFolder(ImageFolderConfig{Root: roots[form], Split: tc.split})
			if err == nil {
				t.Errorf("%s (%s): no error", tc.name, form)
				continue
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s (%s): error %q does not mention %q", tc.name, form, err, w)
				}
			}
		}
	}
	missing := filepath.Join(t.TempDir(), "x", "y")
	_, err := OpenImageFolder(ImageFolderConfig{Root: missing, Split: "train"})
	if want := "image folder root " + missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing root: error %v, want %q", err, want)
	}
}

func TestImageFolderSkipBad(t *testing.T) {
	good := rdPNG(t, rdSolid(2, 2, color.NRGBA{9, 9, 9, 255}))
	files := map[string][]byte{
		"train/a/1.png":      good,
		"train/a/2.png":      good[:len(good)-20], // truncated
		"train/a/3.jpg":      []byte("not really a jpeg"),
		"train/a/labels.csv": []byte("x,y"),
		"train/b/4.png":      good,
	}
	for _, form := range []string{"dir", "tar"} {
		roots := rdRoots(t, files)
		// Without SkipBad: opening fails on the csv file.
		if _, err := OpenImageFolder(ImageFolderConfig{Root: roots[form], Split: "train"}); err == nil || !strings.Contains(err.Error(), "labels.csv") {
			t.Errorf("%s: error %v, want one naming labels.csv", form, err)
		}
		d, err := OpenImageFolder(ImageFolderConfig{Root: roots[form], Split: "train", SkipBad: true})
		if err != nil {
			t.Fatal(err)
		}
		if sk := d.Skipped(); len(sk) != 1 || !strings.HasSuffix(sk[0].Path, "train/a/labels.csv") {
			t.Errorf("%s: skipped %v, want labels.csv", form, sk)
		}
		var _ SkipReporter = d
		if d.Len() != 4 {
			t.Fatalf("%s: Len %d, want 4", form, d.Len())
		}
		for i, wantBad := range []bool{false, true, true, false} {
			_, err := d.Sample(i)
			var bad *BadSampleError
			if isBad := errors.As(err, &bad); isBad != wantBad || (err != nil && !wantBad) {
				t.Errorf("%s: sample %d error %v, want bad=%v", form, i, err, wantBad)
				continue
			}
			if wantBad && (bad.Path != d.Path(i) || !strings.Contains(err.Error(), "decoding "+d.Path(i))) {
				t.Errorf("%s: sample %d: bad sample %q does not name %s", form, i, err, d.Path(i))
			}
		}
		// Without SkipBad the corrupt image is a plain error naming the file.
		files2 := map[string][]byte{"train/a/1.png": good, "train/a/2.png": good[:len(good)-20]}
		roots2 := rdRoots(t, files2)
		d2, err := OpenImageFolder(ImageFolderConfig{Root: roots2[form], Split: "train"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = d2.Sample(1)
		var bad *BadSampleError
		if err == nil || errors.As(err, &bad) || !strings.Contains(err.Error(), "2.png") {
			t.Errorf("%s: strict corrupt sample error %v", form, err)
		}
	}
}

func TestImageFolderSampleRange(t *testing.T) {
	roots := rdRoots(t, rdFolderFiles(t))
	d, err := OpenImageFolder(ImageFolderConfig{Root: roots["dir"], Split: "val"})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{-1, d.Len()} {
		if _, err := d.Sample(i); err == nil {
			t.Errorf("Sample(%d): no error", i)
		}
	}
}

// rdCounting is a Dataset of n samples whose labels are their indices.
type rdCounting int

func (c rdCounting) Len() int          { return int(c) }
func (c rdCounting) Classes() []string { return []string{"k"} }
func (c rdCounting) Sample(i int) (Sample, error) {
	if i < 0 || i >= int(c) {
		return Sample{}, errors.New("out of range")
	}
	return Sample{Label: i}, nil
}

func TestShard(t *testing.T) {
	for _, total := range []int{0, 1, 7, 10, 11} {
		for _, n := range []int{1, 2, 3, 4, 12} {
			seen := make([]int, total)
			for i := 0; i < n; i++ {
				s, err := Shard(rdCounting(total), i, n)
				if err != nil {
					t.Fatal(err)
				}
				for j := 0; j < s.Len(); j++ {
					smp, err := s.Sample(j)
					if err != nil {
						t.Fatalf("total %d shard %d/%d sample %d: %v", total, i, n, j, err)
					}
					if smp.Label != i+j*n {
						t.Errorf("total %d shard %d/%d sample %d is %d, want %d", total, i, n, j, smp.Label, i+j*n)
					}
					seen[smp.Label]++
				}
				if _, err := s.Sample(s.Len()); err == nil {
					t.Errorf("shard sample past the end: no error")
				}
				if !slices.Equal(s.Classes(), []string{"k"}) {
					t.Errorf("shard classes %v", s.Classes())
				}
			}
			for k, c := range seen {
				if c != 1 {
					t.Errorf("total %d n %d: sample %d covered %d times", total, n, k, c)
				}
			}
		}
	}
	for _, bad := range [][2]int{{0, 0}, {-1, 2}, {2, 2}, {0, -3}} {
		if _, err := Shard(rdCounting(5), bad[0], bad[1]); err == nil {
			t.Errorf("Shard(%d, %d): no error", bad[0], bad[1])
		}
	}
	if _, err := Shard(nil, 0, 1); err == nil {
		t.Error("Shard(nil): no error")
	}
}

func TestImageFolderRealCIFAR10(t *testing.T) {
	root := rdSharedData(t, "cifar10.tar.gz")
	d, err := OpenImageFolder(ImageFolderConfig{Root: root, Split: "train"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 50000 || len(d.Classes()) != 10 {
		t.Fatalf("cifar10 train: %d samples, %d classes; want 50000, 10", d.Len(), len(d.Classes()))
	}
	if want := []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}; !slices.Equal(d.Classes(), want) {
		t.Errorf("classes %v", d.Classes())
	}
	counts := make([]int, 10)
	for i := 0; i < d.Len(); i++ {
		counts[d.Label(i)]++
	}
	for k, c := range counts {
		if c != 5000 {
			t.Errorf("class %d has %d samples, want 5000", k, c)
		}
	}
	for _, i := range []int{0, 12345, 49999} {
		s, err := d.Sample(i)
		if err != nil {
			t.Fatal(err)
		}
		if s.Image.H != 32 || s.Image.W != 32 || s.Image.C != 3 {
			t.Errorf("sample %d is %v", i, s.Image)
		}
	}
	sh, err := Shard(d, 3, 8)
	if err != nil || sh.Len() != 6250 {
		t.Errorf("shard 3/8 of cifar10: Len %d, %v", sh.Len(), err)
	}
	// The root may name the archive's top folder, as in root/cifar10.
	test, err := OpenImageFolder(ImageFolderConfig{Root: root + "/cifar10", Split: "test"})
	if err != nil || test.Len() != 10000 {
		t.Fatalf("cifar10 test via %s/cifar10: %v", root, err)
	}
	if s, err := test.Sample(9999); err != nil || !strings.HasPrefix(s.Path, root+"/cifar10/test/truck/") {
		t.Errorf("last test sample %q, %v", s.Path, err)
	}
}

func TestReadersConcurrentSample(t *testing.T) {
	folder := rdRoots(t, rdFolderFiles(t))
	coco := rdRoots(t, rdCOCOFiles(t, nil))
	ade := rdRoots(t, rdADEFiles(t))
	var sets []Dataset
	for _, form := range []string{"dir", "tgz"} {
		f, err1 := OpenImageFolder(ImageFolderConfig{Root: folder[form], Split: "train"})
		c, err2 := OpenCOCO(COCOConfig{Root: coco[form], Images: "val2017"})
		a, err3 := OpenADE20k(ADE20kConfig{Root: ade[form], Split: "training", NumClasses: 4})
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		sets = append(sets, f, c, a)
	}
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			var err error
			for _, ds := range sets {
				for i := 0; i < ds.Len(); i++ {
					if _, e := ds.Sample((i + g) % ds.Len()); e != nil {
						err = e
					}
				}
			}
			done <- err
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
