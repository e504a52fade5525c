package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/image/bmp"
)

// Test fixtures of the reader tests. Helper names carry an "rd" prefix so
// that they cannot clash with other test files of the package.

// rdSharedData returns the path of a file of the shared real data set, or
// skips the test when the data is absent.
func rdSharedData(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "shared", "data", name)
	if _, err := os.Stat(filepath.Join("..", "..", "shared", "data", "cifar10.tar.gz")); err != nil {
		t.Skip("real data test: /work/shared/data not present")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real data test: %s not present", p)
	}
	return p
}

// rdSolid returns an h x w RGB image filled with c, with pixel (0, 0) set to
// the complement so that orientation errors show.
func rdSolid(h, w int, c color.NRGBA) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetNRGBA(x, y, c)
		}
	}
	m.SetNRGBA(0, 0, color.NRGBA{255 - c.R, 255 - c.G, 255 - c.B, 255})
	return m
}

// rdPNG encodes m as PNG.
func rdPNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rdJPEG encodes m as JPEG at quality 95.
func rdJPEG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rdBMP encodes m as BMP.
func rdBMP(t testing.TB, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := bmp.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rdTree writes files (slash paths relative to dir) under dir.
func rdTree(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if b == nil { // a folder
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rdTar builds a tar archive (gzipped when gz) of files, in sorted order,
// with explicit folder entries; a nil value is an empty folder.
func rdTar(t testing.TB, files map[string][]byte, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var zw *gzip.Writer
	tw := tar.NewWriter(&buf)
	if gz {
		zw = gzip.NewWriter(&buf)
		tw = tar.NewWriter(zw)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	dirs := map[string]bool{}
	mod := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, n := range names {
		parts := strings.Split(n, "/")
		for k := 1; k < len(parts); k++ {
			d := strings.Join(parts[:k], "/") + "/"
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if files[n] == nil {
			if err := tw.WriteHeader(&tar.Header{Name: n + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n])), ModTime: mod}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// rdPrefix returns files with every path prefixed by dir + "/".
func rdPrefix(dir string, files map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(files))
	for n, b := range files {
		out[dir+"/"+n] = b
	}
	return out
}

// rdRoots lays files out as a folder, a .tar, a .tar.gz and a .tgz (the
// archives with a single top-level folder "ds", as the shared archives have)
// and returns the four roots by name.
func rdRoots(t testing.TB, files map[string][]byte) map[string]string {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "ds")
	rdTree(t, dir, files)
	roots := map[string]string{"dir": dir}
	for _, f := range []struct {
		kind string
		gz   bool
	}{{"tar", false}, {"tar.gz", true}, {"tgz", true}} {
		p := filepath.Join(base, "ds."+f.kind)
		if err := os.WriteFile(p, rdTar(t, rdPrefix("ds", files), f.gz), 0o644); err != nil {
			t.Fatal(err)
		}
		roots[f.kind] = p
	}
	return roots
}

func TestArchiveFSConformance(t *testing.T) {
	files := map[string][]byte{
		"a.txt":        []byte("alpha"),
		"sub/b.txt":    []byte("beta"),
		"sub/c/d.bin":  {0, 1, 2},
		"sub/empty":    nil,
		"z/deep/e.txt": []byte(""),
	}
	for _, gz := range []bool{false, true} {
		p := filepath.Join(t.TempDir(), "x.tar")
		if err := os.WriteFile(p, rdTar(t, files, gz), 0o644); err != nil {
			t.Fatal(err)
		}
		afs, err := loadArchive(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := fstest.TestFS(afs, "a.txt", "sub/b.txt", "sub/c/d.bin", "sub/empty", "z/deep/e.txt"); err != nil {
			t.Errorf("gz=%v: %v", gz, err)
		}
		b, err := fs.ReadFile(afs, "sub/c/d.bin")
		if err != nil || !bytes.Equal(b, []byte{0, 1, 2}) {
			t.Errorf("gz=%v: ReadFile = %v, %v", gz, b, err)
		}
	}
}

func TestOpenFSForms(t *testing.T) {
	files := map[string][]byte{
		"train/x/1.txt": []byte("one"),
		"README":        []byte("r"),
	}
	roots := rdRoots(t, files)
	extra := map[string]string{
		"archive/ds":       roots["tar.gz"] + "/ds",
		"archive/stripped": roots["tgz"],
	}
	for name, root := range roots {
		extra[name] = root
	}
	for name, root := range extra {
		t.Run(name, func(t *testing.T) {
			fsys, err := OpenFS(root)
			if err != nil {
				t.Fatal(err)
			}
			b, err := fs.ReadFile(fsys, "train/x/1.txt")
			if err != nil || string(b) != "one" {
				t.Fatalf("ReadFile = %q, %v", b, err)
			}
			ents, err := fs.ReadDir(fsys, ".")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			if want := []string{"README", "train"}; !slices.Equal(got, want) {
				t.Errorf("root entries %v, want %v", got, want)
			}
		})
	}
	// A path past the archive into a folder of it.
	fsys, err := OpenFS(roots["tar"] + "/train")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(fsys, "x/1.txt"); err != nil || string(b) != "one" {
		t.Errorf("inside archive: ReadFile = %q, %v", b, err)
	}
}

func TestOpenFSNoStripWithSeveralTopLevelEntries(t *testing.T) {
	p := filepath.Join(t.TempDir(), "flat.tar")
	if err := os.WriteFile(p, rdTar(t, map[string][]byte{"train/a.txt": []byte("a"), "val/b.txt": []byte("b")}, false), 0o644); err != nil {
		t.Fatal(err)
	}
	fsys, err := OpenFS(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(fsys, "val/b.txt"); err != nil {
		t.Error(err)
	}
}

func TestOpenFSErrors(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"plain.txt": []byte("not an archive"),
		"bad.tar":   []byte(strings.Repeat("garbage!", 100)),
		"bad.tgz":   {0x1f, 0x8b, 8, 0, 0, 0},
		"trunc.tar.gz": func() []byte {
			b := rdTar(t, map[string][]byte{"d/a.txt": bytes.Repeat([]byte("abc"), 5000)}, true)
			return b[:len(b)/2]
		}(),
		"ok.tar": rdTar(t, map[string][]byte{"d/a.txt": []byte("a")}, false),
	}
	rdTree(t, dir, files)
	tests := []struct {
		root string
		want []string
		is   error
	}{
		{filepath.Join(dir, "missing"), []string{"missing", "no such file or directory"}, fs.ErrNotExist},
		{filepath.Join(dir, "missing", "deeper"), []string{"missing/deeper", "no such file or directory"}, fs.ErrNotExist},
		{filepath.Join(dir, "plain.txt"), []string{"plain.txt", "not a directory or a .tar"}, nil},
		{filepath.Join(dir, "bad.tar"), []string{"bad.tar", "reading archive"}, nil},
		{filepath.Join(dir, "bad.tgz"), []string{"bad.tgz", "reading archive"}, nil},
		{filepath.Join(dir, "trunc.tar.gz"), []string{"trunc.tar.gz", "unexpected EOF"}, nil},
		{filepath.Join(dir, "ok.tar", "nope"), []string{"ok.tar", "no folder nope"}, fs.ErrNotExist},
		{"", []string{"not set"}, nil},
	}
	for _, tc := range tests {
		_, err := OpenFS(tc.root)
		if err == nil {
			t.Errorf("OpenFS(%q): no error", tc.root)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("OpenFS(%q) error %q does not mention %q", tc.root, err, w)
			}
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("OpenFS(%q) error %q is not %v", tc.root, err, tc.is)
		}
	}
}

func TestIsArchive(t *testing.T) {
	for name, want := range map[string]bool{
		"a.tar": true, "a.tar.gz": true, "a.TGZ": true, "a.gz": false, "a.zip": false, "tar": false,
	} {
		if got := IsArchive(name); got != want {
			t.Errorf("IsArchive(%q) = %v", name, got)
		}
	}
}
