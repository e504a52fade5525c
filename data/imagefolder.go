package data

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// ImageFolderConfig configures an ImageFolder.
type ImageFolderConfig struct {
	Root      string `mapstructure:"root" doc:"dataset root: a folder, or a .tar/.tar.gz/.tgz archive (a single top-level folder in it is stripped)"`
	Split     string `mapstructure:"split" doc:"sub-folder of root holding the class folders, e.g. train or val; empty: root itself"`
	SkipBad   bool   `mapstructure:"skip_bad" doc:"skip non-image files and report corrupt images as *BadSampleError instead of failing"`
	Grayscale bool   `mapstructure:"grayscale" doc:"decode to 1 channel (luma) instead of 3 channels RGB"`
}

// ImageFolder is a classification dataset in the ImageNet / torchvision
// ImageFolder layout: <root>/<split>/<class>/**/*.{jpg,jpeg,png,bmp}.
//
// Classes are the class folder names, sorted; a sample's label is the index
// of its folder. Samples are ordered by path. Files and folders whose names
// start with "." are ignored, as are plain files directly in the split folder
// (READMEs, label lists); any other non-image file is an error, or, with
// SkipBad, is left out and listed by Skipped. Images are decoded by Sample,
// to 3 channels RGB (or 1 channel with Grayscale).
type ImageFolder struct {
	src     *rootFS
	cfg     ImageFolderConfig
	classes []string
	files   []string // paths in src.fsys
	labels  []int
	skipped []*BadSampleError
}

// OpenImageFolder lists the class folders and image files of cfg's split.
func OpenImageFolder(cfg ImageFolderConfig) (*ImageFolder, error) {
	src, err := openRoot("image folder root", cfg.Root)
	if err != nil {
		return nil, err
	}
	splitDir, err := cleanSubdir(cfg.Split)
	if err != nil {
		return nil, fmt.Errorf("image folder split %q: %w", cfg.Split, err)
	}
	entries, err := fs.ReadDir(src.fsys, splitDir)
	if err != nil {
		return nil, fmt.Errorf("image folder split %s: %w", src.display(splitDir), pathErrorCause(err))
	}
	d := &ImageFolder{src: src, cfg: cfg}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			d.classes = append(d.classes, e.Name())
		}
	}
	if len(d.classes) == 0 {
		return nil, fmt.Errorf("image folder %s: no class folders", src.display(splitDir))
	}
	slices.Sort(d.classes)
	for label, class := range d.classes {
		classDir := path.Join(splitDir, class)
		var files []string
		err := fs.WalkDir(src.fsys, classDir, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("listing %s: %w", src.display(p), pathErrorCause(err))
			}
			if p != classDir && strings.HasPrefix(e.Name(), ".") {
				if e.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if e.IsDir() {
				return nil
			}
			if !IsImageFile(p) {
				bad := fmt.Errorf("%s is not an image file (want .jpg, .jpeg, .png or .bmp)", src.display(p))
				if !cfg.SkipBad {
					return withSkipHint(bad)
				}
				d.skipped = append(d.skipped, &BadSampleError{Path: src.display(p), Err: bad})
				return nil
			}
			files = append(files, p)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("image folder: %w", err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("image folder: class folder %s holds no images", src.display(classDir))
		}
		slices.Sort(files)
		d.files = append(d.files, files...)
		for range files {
			d.labels = append(d.labels, label)
		}
	}
	return d, nil
}

// cleanSubdir validates a folder path relative to a reader root; "" is the
// root itself.
func cleanSubdir(dir string) (string, error) {
	if dir == "" {
		return ".", nil
	}
	c := path.Clean(strings.ReplaceAll(dir, "\\", "/"))
	if !fs.ValidPath(c) {
		return "", errors.New("must be a relative path inside the root")
	}
	return c, nil
}

// Len is the number of images.
func (d *ImageFolder) Len() int { return len(d.files) }

// Classes returns the sorted class folder names.
func (d *ImageFolder) Classes() []string { return slices.Clone(d.classes) }

// Skipped lists the non-image files left out because of SkipBad.
func (d *ImageFolder) Skipped() []*BadSampleError { return slices.Clone(d.skipped) }

// Label returns the class index of sample i without decoding it.
func (d *ImageFolder) Label(i int) int { return d.labels[i] }

// Path returns the path of sample i as Sample reports it.
func (d *ImageFolder) Path(i int) string { return d.src.display(d.files[i]) }

// Sample reads and decodes image i. With SkipBad, an unreadable or corrupt
// image gives a *BadSampleError. On error the returned Sample still
// carries Path (and Label), for logging.
func (d *ImageFolder) Sample(i int) (Sample, error) {
	if i < 0 || i >= len(d.files) {
		return Sample{}, fmt.Errorf("image folder: sample index %d out of range [0, %d)", i, len(d.files))
	}
	p := d.src.display(d.files[i])
	failed := Sample{Label: d.labels[i], Path: p}
	b, err := d.src.readFile(d.files[i])
	if err != nil {
		return failed, badSample(d.cfg.SkipBad, p, err)
	}
	mode := ColorRGB
	if d.cfg.Grayscale {
		mode = ColorGray
	}
	im, err := DecodeImageMode(p, b, mode)
	if err != nil {
		return failed, badSample(d.cfg.SkipBad, p, err)
	}
	return Sample{Image: im, Label: d.labels[i], Path: p}, nil
}

// Shard returns the i-th of n disjoint, interleaved shards of ds: the samples
// i, i+n, i+2n, ... Together the n shards cover ds exactly once. The shard
// shares ds (no copy) and reports ds's classes.
func Shard(ds Dataset, i, n int) (Dataset, error) {
	if ds == nil {
		return nil, errors.New("shard: nil dataset")
	}
	if n < 1 {
		return nil, fmt.Errorf("shard: number of shards %d must be at least 1", n)
	}
	if i < 0 || i >= n {
		return nil, fmt.Errorf("shard: index %d out of range [0, %d)", i, n)
	}
	return &shard{ds: ds, i: i, n: n}, nil
}

// shard is a Dataset view of every n-th sample of ds starting at i.
type shard struct {
	ds   Dataset
	i, n int
}

func (s *shard) Len() int {
	l := s.ds.Len()
	if s.i >= l {
		return 0
	}
	return (l - s.i + s.n - 1) / s.n
}

func (s *shard) Sample(j int) (Sample, error) {
	if j < 0 || j >= s.Len() {
		return Sample{}, fmt.Errorf("shard %d/%d: sample index %d out of range [0, %d)", s.i, s.n, j, s.Len())
	}
	return s.ds.Sample(s.i + j*s.n)
}

func (s *shard) Classes() []string { return s.ds.Classes() }

// Unwrap returns the sharded dataset.
func (s *shard) Unwrap() Dataset { return s.ds }
