package data

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"slices"
)

// COCOConfig configures a COCO instances dataset.
type COCOConfig struct {
	Root        string `mapstructure:"root" doc:"dataset root: a folder, or a .tar/.tar.gz/.tgz archive (a single top-level folder in it is stripped)"`
	Images      string `mapstructure:"images" doc:"sub-folder of root holding the images, e.g. val2017"`
	Annotations string `mapstructure:"annotations" doc:"instances JSON file relative to root; empty: annotations/instances_<images>.json"`
	SkipBad     bool   `mapstructure:"skip_bad" doc:"leave out bad annotations (listed by Skipped) and report missing or corrupt images as *BadSampleError instead of failing"`
}

// COCO is a detection / instance segmentation dataset read from a COCO
// instances JSON file and its image folder. There is one sample per entry of
// the JSON "images" list, in increasing image id order, with or without
// annotations. Sample fills Image (3 channels RGB), Instances (in the JSON's
// order) and Path; Label is -1.
//
// Category ids, which need not be contiguous (COCO's run 1..90 with gaps), are
// mapped to contiguous indices in increasing id order: Instance.Category is
// that index, Classes()[index] its name, CategoryID(index) the id.
//
// Instance masks are row-major, at the image's size: polygons are filled as
// RasterizePolygons documents, run-length masks (uncompressed counts lists
// and compressed strings, both column-major) decoded exactly.
//
// Problems found while opening (an annotation whose image id or category id
// is unknown, malformed boxes or segmentations, an image file that is
// missing) are errors that name the annotation id and file; with SkipBad, bad
// annotations are left out and listed by Skipped, and an image with a
// missing file stays in the dataset, its Sample returning a *BadSampleError.
type COCO struct {
	src      *rootFS
	cfg      COCOConfig
	annPath  string // display path of the JSON file
	images   []cocoImage
	catIDs   []int64
	catIndex map[int64]int
	names    []string
	nAnns    int
	skipped  []*BadSampleError
}

// cocoImage is one image of a COCO dataset.
type cocoImage struct {
	id   int64
	file string // path in src.fsys
	h, w int
	bad  error // with SkipBad: why the image cannot be used
	anns []cocoAnn
}

// cocoAnn is one parsed annotation.
type cocoAnn struct {
	id    int64
	cat   int
	box   Box
	area  float32
	crowd bool
	polys [][]float64 // polygon segmentation, or
	rle   *RLE        // run-length segmentation
}

// cocoJSON is the part of an instances file COCO reads.
type cocoJSON struct {
	Images []struct {
		ID       int64  `json:"id"`
		FileName string `json:"file_name"`
		Height   int    `json:"height"`
		Width    int    `json:"width"`
	} `json:"images"`
	Annotations []struct {
		ID           int64           `json:"id"`
		ImageID      int64           `json:"image_id"`
		CategoryID   int64           `json:"category_id"`
		BBox         []float64       `json:"bbox"`
		Area         float64         `json:"area"`
		IsCrowd      int             `json:"iscrowd"`
		Segmentation json.RawMessage `json:"segmentation"`
	} `json:"annotations"`
	Categories []cocoCategory `json:"categories"`
}

// cocoCategory is an entry of the JSON "categories" list.
type cocoCategory struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// OpenCOCO reads and checks the instances JSON and the presence of every
// image file; images are decoded by Sample.
func OpenCOCO(cfg COCOConfig) (*COCO, error) {
	src, err := openRoot("coco root", cfg.Root)
	if err != nil {
		return nil, err
	}
	imgDir, err := cleanSubdir(cfg.Images)
	if err != nil {
		return nil, fmt.Errorf("coco images folder %q: %w", cfg.Images, err)
	}
	annRel := cfg.Annotations
	if annRel == "" {
		if cfg.Images == "" {
			return nil, errors.New("coco: neither annotations nor images set")
		}
		annRel = "annotations/instances_" + path.Base(imgDir) + ".json"
	}
	if annRel, err = cleanSubdir(annRel); err != nil {
		return nil, fmt.Errorf("coco annotations %q: %w", cfg.Annotations, err)
	}
	if st, err := fs.Stat(src.fsys, imgDir); err != nil || !st.IsDir() {
		if err == nil {
			err = errors.New("not a folder")
		}
		return nil, fmt.Errorf("coco images folder %s: %w", src.display(imgDir), pathErrorCause(err))
	}
	raw, err := src.readFile(annRel)
	if err != nil {
		return nil, fmt.Errorf("coco annotations: %w", err)
	}
	d := &COCO{src: src, cfg: cfg, annPath: src.display(annRel), catIndex: map[int64]int{}}
	var js cocoJSON
	if err := json.Unmarshal(raw, &js); err != nil {
		return nil, fmt.Errorf("coco annotations %s: %w", d.annPath, err)
	}
	raw = nil

	// Categories, sorted by id.
	slices.SortFunc(js.Categories, func(a, b cocoCategory) int { return cmp.Compare(a.ID, b.ID) })
	for k, c := range js.Categories {
		if k > 0 && c.ID == js.Categories[k-1].ID {
			return nil, fmt.Errorf("coco annotations %s: duplicate category id %d", d.annPath, c.ID)
		}
		d.catIndex[c.ID] = k
		d.catIDs = append(d.catIDs, c.ID)
		d.names = append(d.names, c.Name)
	}

	// Images, sorted by id.
	imgIndex := make(map[int64]int, len(js.Images))
	for _, im := range js.Images {
		if _, dup := imgIndex[im.ID]; dup {
			return nil, fmt.Errorf("coco annotations %s: duplicate image id %d", d.annPath, im.ID)
		}
		imgIndex[im.ID] = 0
		d.images = append(d.images, cocoImage{id: im.ID, file: path.Join(imgDir, im.FileName), h: im.Height, w: im.Width})
	}
	slices.SortFunc(d.images, func(a, b cocoImage) int { return cmp.Compare(a.id, b.id) })
	for k, im := range d.images {
		imgIndex[im.id] = k
	}

	// Annotations.
	for _, a := range js.Annotations {
		fail := func(err error) error {
			err = fmt.Errorf("annotation %d: %w", a.ID, err)
			if !cfg.SkipBad {
				return withSkipHint(fmt.Errorf("coco annotations %s: %w", d.annPath, err))
			}
			d.skipped = append(d.skipped, &BadSampleError{Path: d.annPath, Err: err})
			return nil
		}
		k, ok := imgIndex[a.ImageID]
		if !ok {
			if err := fail(fmt.Errorf("image id %d not in the images list", a.ImageID)); err != nil {
				return nil, err
			}
			continue
		}
		im := &d.images[k]
		ann, err := d.parseAnn(a.ID, a.CategoryID, a.BBox, a.Area, a.IsCrowd, a.Segmentation, im)
		if err != nil {
			if err := fail(fmt.Errorf("image %d (%s): %w", im.id, src.display(im.file), err)); err != nil {
				return nil, err
			}
			continue
		}
		im.anns = append(im.anns, ann)
		d.nAnns++
	}

	// Image files.
	for k := range d.images {
		im := &d.images[k]
		var bad error
		if im.h <= 0 || im.w <= 0 {
			bad = fmt.Errorf("image %d (%s): invalid size %dx%d in %s", im.id, src.display(im.file), im.w, im.h, d.annPath)
		} else if st, err := fs.Stat(src.fsys, im.file); err != nil || st.IsDir() {
			if err == nil {
				err = errors.New("is a folder")
			}
			bad = fmt.Errorf("image %d file %s%s: %w", im.id, src.display(im.file), annotationsNote(im.anns), pathErrorCause(err))
		}
		if bad != nil {
			if !cfg.SkipBad {
				return nil, withSkipHint(fmt.Errorf("coco annotations %s: %w", d.annPath, bad))
			}
			im.bad = bad
		}
	}
	return d, nil
}

// annotationsNote names the annotations of an image for an error message.
func annotationsNote(anns []cocoAnn) string {
	switch len(anns) {
	case 0:
		return " (no annotations)"
	case 1:
		return fmt.Sprintf(" (annotation %d)", anns[0].id)
	default:
		return fmt.Sprintf(" (annotation %d and %d more)", anns[0].id, len(anns)-1)
	}
}

// parseAnn checks and converts one annotation of image im.
func (d *COCO) parseAnn(id, catID int64, bbox []float64, area float64, crowd int, seg json.RawMessage, im *cocoImage) (cocoAnn, error) {
	cat, ok := d.catIndex[catID]
	if !ok {
		return cocoAnn{}, fmt.Errorf("category id %d not in the categories list", catID)
	}
	if len(bbox) != 4 {
		return cocoAnn{}, fmt.Errorf("bbox %v: want [x, y, width, height]", bbox)
	}
	for _, v := range bbox {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return cocoAnn{}, fmt.Errorf("bbox %v: non-finite value", bbox)
		}
	}
	if bbox[2] < 0 || bbox[3] < 0 {
		return cocoAnn{}, fmt.Errorf("bbox %v: negative size", bbox)
	}
	ann := cocoAnn{
		id:    id,
		cat:   cat,
		box:   Box{X: float32(bbox[0]), Y: float32(bbox[1]), W: float32(bbox[2]), H: float32(bbox[3])},
		area:  float32(area),
		crowd: crowd != 0,
	}
	seg = bytes.TrimSpace(seg)
	switch {
	case len(seg) == 0 || string(seg) == "null":
	case seg[0] == '[':
		var polys [][]float64
		if err := json.Unmarshal(seg, &polys); err != nil {
			return cocoAnn{}, fmt.Errorf("polygon segmentation: %w", err)
		}
		for k, p := range polys {
			if len(p)%2 != 0 {
				return cocoAnn{}, fmt.Errorf("polygon %d has an odd number (%d) of coordinates", k, len(p))
			}
			for _, v := range p {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return cocoAnn{}, fmt.Errorf("polygon %d: non-finite coordinate", k)
				}
			}
		}
		if len(polys) > 0 {
			ann.polys = polys
		}
	case seg[0] == '{':
		var r struct {
			Counts json.RawMessage `json:"counts"`
			Size   []int           `json:"size"`
		}
		if err := json.Unmarshal(seg, &r); err != nil {
			return cocoAnn{}, fmt.Errorf("rle segmentation: %w", err)
		}
		if len(r.Size) != 2 {
			return cocoAnn{}, fmt.Errorf("rle segmentation: size %v: want [height, width]", r.Size)
		}
		if r.Size[0] != im.h || r.Size[1] != im.w {
			return cocoAnn{}, fmt.Errorf("rle segmentation: size %v differs from the image's [%d %d]", r.Size, im.h, im.w)
		}
		rle := &RLE{H: r.Size[0], W: r.Size[1]}
		counts := bytes.TrimSpace(r.Counts)
		switch {
		case len(counts) > 0 && counts[0] == '"':
			var s string
			if err := json.Unmarshal(counts, &s); err != nil {
				return cocoAnn{}, fmt.Errorf("rle segmentation: %w", err)
			}
			c, err := DecodeRLEString(s)
			if err != nil {
				return cocoAnn{}, err
			}
			rle.Counts = c
		case len(counts) > 0 && counts[0] == '[':
			if err := json.Unmarshal(counts, &rle.Counts); err != nil {
				return cocoAnn{}, fmt.Errorf("rle segmentation counts: %w", err)
			}
		default:
			return cocoAnn{}, errors.New("rle segmentation: counts must be a list or a string")
		}
		if err := rle.Validate(); err != nil {
			return cocoAnn{}, err
		}
		ann.rle = rle
	default:
		return cocoAnn{}, fmt.Errorf("segmentation %.40s: want polygons or an rle object", seg)
	}
	return ann, nil
}

// Len is the number of images.
func (d *COCO) Len() int { return len(d.images) }

// Classes returns the category names in contiguous index order.
func (d *COCO) Classes() []string { return slices.Clone(d.names) }

// CategoryID returns the COCO category id of contiguous index k.
func (d *COCO) CategoryID(k int) int64 { return d.catIDs[k] }

// CategoryIndex returns the contiguous index of COCO category id, and whether
// the id exists.
func (d *COCO) CategoryIndex(id int64) (int, bool) {
	k, ok := d.catIndex[id]
	return k, ok
}

// ImageID returns the COCO image id of sample i.
func (d *COCO) ImageID(i int) int64 { return d.images[i].id }

// NumInstances is the number of annotations kept, over all images.
func (d *COCO) NumInstances() int { return d.nAnns }

// Skipped lists the annotations left out because of SkipBad.
func (d *COCO) Skipped() []*BadSampleError { return slices.Clone(d.skipped) }

// Sample decodes image i and its instances and masks. With SkipBad, a missing,
// unreadable or corrupt image, or one whose size differs from the JSON's,
// gives a *BadSampleError. On error the returned Sample still
// carries Path (and Label), for logging.
func (d *COCO) Sample(i int) (Sample, error) {
	if i < 0 || i >= len(d.images) {
		return Sample{}, fmt.Errorf("coco: sample index %d out of range [0, %d)", i, len(d.images))
	}
	im := &d.images[i]
	p := d.src.display(im.file)
	failed := Sample{Label: -1, Path: p}
	if im.bad != nil {
		return failed, &BadSampleError{Path: p, Err: im.bad}
	}
	b, err := d.src.readFile(im.file)
	if err != nil {
		return failed, badSample(d.cfg.SkipBad, p, err)
	}
	img, err := DecodeImageMode(p, b, ColorRGB)
	if err != nil {
		return failed, badSample(d.cfg.SkipBad, p, err)
	}
	if img.H != im.h || img.W != im.w {
		err := fmt.Errorf("image %s is %dx%d but %s says %dx%d (width x height)", p, img.W, img.H, d.annPath, im.w, im.h)
		return failed, badSample(d.cfg.SkipBad, p, err)
	}
	s := Sample{Image: img, Label: -1, Path: p, Instances: make([]Instance, len(im.anns))}
	for k, a := range im.anns {
		inst := Instance{Category: a.cat, Box: a.box, IsCrowd: a.crowd, Area: a.area}
		switch {
		case a.rle != nil:
			inst.Mask, err = a.rle.Mask()
		case a.polys != nil:
			inst.Mask, err = RasterizePolygons(a.polys, im.h, im.w)
		}
		if err != nil {
			err = fmt.Errorf("annotation %d of %s: %w", a.id, p, err)
			return failed, badSample(d.cfg.SkipBad, p, err)
		}
		s.Instances[k] = inst
	}
	return s, nil
}
