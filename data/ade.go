package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// ADE20kConfig configures an ADE20k-layout semantic segmentation dataset.
type ADE20kConfig struct {
	Root       string `mapstructure:"root" doc:"dataset root holding images/ and annotations/: a folder, or a .tar/.tar.gz/.tgz archive (a single top-level folder in it is stripped)"`
	Split      string `mapstructure:"split" doc:"training or validation"`
	NumClasses int    `mapstructure:"num_classes" doc:"number of classes, labels 1..num_classes (0 = ignore): 150 for ADE20k, 11 for CamVid; 0 means 150"`
	SkipBad    bool   `mapstructure:"skip_bad" doc:"leave out images without a label map (listed by Skipped) and report corrupt pairs as *BadSampleError instead of failing"`
}

// ADE20k is a semantic segmentation dataset in the ADEChallengeData2016
// layout: images/<split>/*.jpg paired by base name with 8-bit label maps
// annotations/<split>/*.png. Samples are ordered by image file name.
//
// LabelMap holds the PNG's values unchanged (the palette index of a paletted
// PNG, the gray value of a gray one): 0 = ignore, 1..NumClasses the classes.
// Classes()[k-1] names label k; names are the label values ("1", "2", ...).
// A label above NumClasses, a label map whose size differs from its image's,
// or a missing label map is an error naming the files.
type ADE20k struct {
	src       *rootFS
	cfg       ADE20kConfig
	images    []string // paths in src.fsys
	labels    []string // paths in src.fsys, parallel to images
	skipped   []*BadSampleError
	numLabels int
}

// DefaultADE20kClasses is the number of ADE20k (SceneParsing 150) classes.
const DefaultADE20kClasses = 150

// OpenADE20k lists and pairs the images and label maps of cfg's split.
func OpenADE20k(cfg ADE20kConfig) (*ADE20k, error) {
	if cfg.NumClasses == 0 {
		cfg.NumClasses = DefaultADE20kClasses
	}
	if cfg.NumClasses < 1 || cfg.NumClasses > 255 {
		return nil, fmt.Errorf("ade20k: num_classes %d must be in [1, 255] (8-bit labels, 0 = ignore)", cfg.NumClasses)
	}
	src, err := openRoot("ade20k root", cfg.Root)
	if err != nil {
		return nil, err
	}
	split, err := cleanSubdir(cfg.Split)
	if err != nil || split == "." {
		return nil, fmt.Errorf("ade20k split %q: want a folder name such as training or validation", cfg.Split)
	}
	imgDir, annDir := path.Join("images", split), path.Join("annotations", split)
	imgEntries, err := fs.ReadDir(src.fsys, imgDir)
	if err != nil {
		return nil, fmt.Errorf("ade20k images %s: %w", src.display(imgDir), pathErrorCause(err))
	}
	annEntries, err := fs.ReadDir(src.fsys, annDir)
	if err != nil {
		return nil, fmt.Errorf("ade20k annotations %s: %w", src.display(annDir), pathErrorCause(err))
	}
	anns := map[string]string{}
	for _, e := range annEntries {
		n := e.Name()
		if !e.IsDir() && strings.EqualFold(path.Ext(n), ".png") && !strings.HasPrefix(n, ".") {
			anns[strings.TrimSuffix(n, path.Ext(n))] = path.Join(annDir, n)
		}
	}
	d := &ADE20k{src: src, cfg: cfg}
	skip := func(p string, err error) error {
		if !cfg.SkipBad {
			return withSkipHint(fmt.Errorf("ade20k: %w", err))
		}
		d.skipped = append(d.skipped, &BadSampleError{Path: p, Err: err})
		return nil
	}
	for _, e := range imgEntries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") {
			continue
		}
		p := path.Join(imgDir, n)
		if !IsImageFile(n) {
			if err := skip(src.display(p), fmt.Errorf("%s is not an image file (want .jpg, .jpeg, .png or .bmp)", src.display(p))); err != nil {
				return nil, err
			}
			continue
		}
		ann, ok := anns[strings.TrimSuffix(n, path.Ext(n))]
		if !ok {
			err := fmt.Errorf("image %s has no label map %s: %w", src.display(p),
				src.display(path.Join(annDir, strings.TrimSuffix(n, path.Ext(n))+".png")), errNoSuchFile)
			if err := skip(src.display(p), err); err != nil {
				return nil, err
			}
			continue
		}
		d.images = append(d.images, p)
		d.labels = append(d.labels, ann)
	}
	if len(d.images) == 0 {
		return nil, fmt.Errorf("ade20k: no images in %s", src.display(imgDir))
	}
	return d, nil
}

// Len is the number of image / label map pairs.
func (d *ADE20k) Len() int { return len(d.images) }

// Classes names labels 1..NumClasses: Classes()[k-1] is label k.
func (d *ADE20k) Classes() []string {
	out := make([]string, d.cfg.NumClasses)
	for k := range out {
		out[k] = strconv.Itoa(k + 1)
	}
	return out
}

// NumClasses is the number of classes, the largest valid label.
func (d *ADE20k) NumClasses() int { return d.cfg.NumClasses }

// Skipped lists the files left out because of SkipBad.
func (d *ADE20k) Skipped() []*BadSampleError { return slices.Clone(d.skipped) }

// LabelMapPath returns the label map file paired with sample i.
func (d *ADE20k) LabelMapPath(i int) string { return d.src.display(d.labels[i]) }

// Sample decodes image i (3 channels RGB) and its label map. With SkipBad,
// a corrupt file, a size mismatch or an out-of-range label gives a
// *BadSampleError. On error the returned Sample still
// carries Path (and Label), for logging.
func (d *ADE20k) Sample(i int) (Sample, error) {
	if i < 0 || i >= len(d.images) {
		return Sample{}, fmt.Errorf("ade20k: sample index %d out of range [0, %d)", i, len(d.images))
	}
	p, lp := d.src.display(d.images[i]), d.src.display(d.labels[i])
	failed := Sample{Label: -1, Path: p}
	b, err := d.src.readFile(d.images[i])
	if err != nil {
		return failed, badSample(d.cfg.SkipBad, p, err)
	}
	img, err := DecodeImageMode(p, b, ColorRGB)
	if err != nil {
		return failed, badSample(d.cfg.SkipBad, p, err)
	}
	lb, err := d.src.readFile(d.labels[i])
	if err != nil {
		return failed, badSample(d.cfg.SkipBad, lp, err)
	}
	lm, err := DecodeLabelMap(lp, lb)
	if err != nil {
		return failed, badSample(d.cfg.SkipBad, lp, err)
	}
	if lm.H != img.H || lm.W != img.W {
		err := fmt.Errorf("label map %s is %dx%d but image %s is %dx%d (width x height)", lp, lm.W, lm.H, p, img.W, img.H)
		return failed, badSample(d.cfg.SkipBad, lp, err)
	}
	for k, v := range lm.Pix {
		if int(v) > d.cfg.NumClasses {
			err := fmt.Errorf("label map %s: label %d at row %d, column %d exceeds num_classes %d", lp, v, k/lm.W, k%lm.W, d.cfg.NumClasses)
			return failed, badSample(d.cfg.SkipBad, lp, err)
		}
	}
	return Sample{Image: img, Label: -1, LabelMap: lm.Pix, Path: p}, nil
}

// DecodeLabelMap decodes an 8-bit PNG label map, gray or paletted, into a
// 1-channel image holding the gray values or palette indices unchanged
// (DecodeImage would map palette indices to colors). name only labels errors.
func DecodeLabelMap(name string, b []byte) (*Image, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("decoding label map %s: empty file", name)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		return nil, fmt.Errorf("decoding label map %s: not a PNG file", name)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decoding label map %s: %w", name, err)
	}
	if err := checkDecodeSize("PNG", cfg.Width, cfg.Height); err != nil {
		return nil, fmt.Errorf("decoding label map %s: %w", name, err)
	}
	m, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decoding label map %s: %w", name, err)
	}
	var pix []uint8
	var stride int
	switch m := m.(type) {
	case *image.Gray:
		pix, stride = m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y):], m.Stride
	case *image.Paletted:
		pix, stride = m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y):], m.Stride
	default:
		return nil, fmt.Errorf("decoding label map %s: %w", name, errors.New("want an 8-bit gray or paletted PNG (class ids), got a color or 16-bit image"))
	}
	r := m.Bounds()
	out := NewImage(r.Dy(), r.Dx(), 1)
	for y := 0; y < out.H; y++ {
		copy(out.Pix[y*out.W:(y+1)*out.W], pix[y*stride:y*stride+out.W])
	}
	// image/png scales 1-, 2- and 4-bit gray to 0..255; undo it to get the
	// stored class ids. (IHDR: bit depth at byte 24, color type at 25.)
	if _, gray := m.(*image.Gray); gray && len(b) > 25 && b[25] == 0 && b[24] < 8 {
		scale := 255 / (1<<b[24] - 1)
		for k, v := range out.Pix {
			out.Pix[k] = v / uint8(scale)
		}
	}
	return out, nil
}
