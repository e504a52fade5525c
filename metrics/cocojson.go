package metrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/data"
)

// COCOGroundTruth is a COCO instances file (instances_*.json) as the COCO
// evaluation reads it: images, categories and annotations in the file's
// order (the order matters for ties, as in pycocotools).
type COCOGroundTruth struct {
	Images      []COCOImage
	Categories  []COCOCategory
	Annotations []COCOAnnotation
}

// COCOImage is an entry of the "images" list.
type COCOImage struct {
	ID            int64
	Height, Width int
	FileName      string
}

// COCOCategory is an entry of the "categories" list.
type COCOCategory struct {
	ID   int64
	Name string
}

// COCOAnnotation is one ground truth object.
type COCOAnnotation struct {
	ID, ImageID, CategoryID int64
	// BBox is x, y, width, height in pixels.
	BBox [4]float64
	// Area is the annotation's "area" field; the area ranges (small, medium,
	// large) test it, as pycocotools does, not the box's or mask's area.
	Area    float64
	IsCrowd bool
	// Mask is the segmentation as an uncompressed, column-major RLE at the
	// image's size: polygons rasterised by PolygonRLE at load, RLE decoded;
	// nil when the annotation has no segmentation.
	Mask *data.RLE
}

// cocoGTJSON is the part of an instances file the evaluation reads.
type cocoGTJSON struct {
	Images []struct {
		ID       int64  `json:"id"`
		FileName string `json:"file_name"`
		Height   int    `json:"height"`
		Width    int    `json:"width"`
	} `json:"images"`
	Categories []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	} `json:"categories"`
	Annotations []struct {
		ID           int64           `json:"id"`
		ImageID      int64           `json:"image_id"`
		CategoryID   int64           `json:"category_id"`
		BBox         []float64       `json:"bbox"`
		Area         *float64        `json:"area"`
		IsCrowd      int             `json:"iscrowd"`
		Segmentation json.RawMessage `json:"segmentation"`
	} `json:"annotations"`
}

// ReadCOCOGroundTruth reads a COCO instances JSON file. path may continue
// into a .tar/.tar.gz/.tgz archive, as in
// data/coco-tiny.tar.gz/annotations/instances_val2017.json (read in place,
// see data.OpenFS). Polygon segmentations are rasterised as pycocotools
// does (PolygonRLE), RLE ones (counts as a list or a compressed string)
// decoded. Errors name the file and the annotation: duplicate image or
// category ids, an annotation whose image or category is not listed, a bbox
// that is not 4 finite numbers with non-negative size, a missing "area", a
// segmentation that cannot be read or whose size is not the image's.
func ReadCOCOGroundTruth(path string) (*COCOGroundTruth, error) {
	raw, err := readCOCOFile(path)
	if err != nil {
		return nil, err
	}
	gt, err := ParseCOCOGroundTruth(raw)
	if err != nil {
		return nil, fmt.Errorf("coco ground truth %s: %w", path, err)
	}
	return gt, nil
}

// ParseCOCOGroundTruth parses the contents of an instances JSON file, as
// ReadCOCOGroundTruth.
func ParseCOCOGroundTruth(raw []byte) (*COCOGroundTruth, error) {
	var js cocoGTJSON
	if err := json.Unmarshal(raw, &js); err != nil {
		return nil, err
	}
	gt := &COCOGroundTruth{}
	images := make(map[int64]int, len(js.Images))
	for _, im := range js.Images {
		if _, dup := images[im.ID]; dup {
			return nil, fmt.Errorf("duplicate image id %d", im.ID)
		}
		images[im.ID] = len(gt.Images)
		gt.Images = append(gt.Images, COCOImage{ID: im.ID, Height: im.Height, Width: im.Width, FileName: im.FileName})
	}
	cats := map[int64]bool{}
	for _, c := range js.Categories {
		if cats[c.ID] {
			return nil, fmt.Errorf("duplicate category id %d", c.ID)
		}
		cats[c.ID] = true
		gt.Categories = append(gt.Categories, COCOCategory{ID: c.ID, Name: c.Name})
	}
	gt.Annotations = make([]COCOAnnotation, 0, len(js.Annotations))
	for i, a := range js.Annotations {
		fail := func(err error) error {
			return fmt.Errorf("annotation %d (entry %d): %w", a.ID, i, err)
		}
		k, ok := images[a.ImageID]
		if !ok {
			return nil, fail(fmt.Errorf("image id %d not in the images list", a.ImageID))
		}
		if !cats[a.CategoryID] {
			return nil, fail(fmt.Errorf("category id %d not in the categories list", a.CategoryID))
		}
		box, err := cocoBox(a.BBox)
		if err != nil {
			return nil, fail(err)
		}
		if a.Area == nil {
			return nil, fail(errors.New(`no "area" (the area ranges need it)`))
		}
		im := gt.Images[k]
		mask, err := parseGTSegmentation(a.Segmentation, im.Height, im.Width)
		if err != nil {
			return nil, fail(fmt.Errorf("image %d: %w", im.ID, err))
		}
		gt.Annotations = append(gt.Annotations, COCOAnnotation{
			ID: a.ID, ImageID: a.ImageID, CategoryID: a.CategoryID,
			BBox: box, Area: *a.Area, IsCrowd: a.IsCrowd != 0, Mask: mask,
		})
	}
	return gt, nil
}

// cocoBox checks a JSON bbox: 4 finite numbers, width and height >= 0.
func cocoBox(b []float64) ([4]float64, error) {
	if len(b) != 4 {
		return [4]float64{}, fmt.Errorf("bbox %v has %d numbers, want 4 (x, y, width, height)", b, len(b))
	}
	for _, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return [4]float64{}, fmt.Errorf("bbox %v: non-finite value", b)
		}
	}
	if b[2] < 0 || b[3] < 0 {
		return [4]float64{}, fmt.Errorf("bbox %v: negative width or height", b)
	}
	return [4]float64{b[0], b[1], b[2], b[3]}, nil
}

// parseGTSegmentation converts a ground truth segmentation as pycocotools'
// annToRLE does: polygons (merged into one mask), an uncompressed RLE
// (counts a list) or a compressed one (counts a string). An absent, null or
// empty segmentation gives nil.
func parseGTSegmentation(seg json.RawMessage, h, w int) (*data.RLE, error) {
	seg = bytes.TrimSpace(seg)
	switch {
	case len(seg) == 0 || string(seg) == "null":
		return nil, nil
	case seg[0] == '[':
		var polys [][]float64
		if err := json.Unmarshal(seg, &polys); err != nil {
			return nil, fmt.Errorf("polygon segmentation: %w", err)
		}
		if len(polys) == 0 {
			return nil, nil
		}
		if h <= 0 || w <= 0 {
			return nil, fmt.Errorf("polygon segmentation on an image of invalid size %dx%d (width x height)", w, h)
		}
		return PolygonRLE(polys, h, w)
	case seg[0] == '{':
		r, err := parseRLEObject(seg)
		if err != nil {
			return nil, err
		}
		if r.H != h || r.W != w {
			return nil, fmt.Errorf("rle segmentation: size [%d %d] differs from the image's [%d %d]", r.H, r.W, h, w)
		}
		return r, nil
	default:
		return nil, fmt.Errorf("segmentation %.40s: want polygons or an rle object", seg)
	}
}

// parseRLEObject reads {"size": [h, w], "counts": "..." or [...]}, checking
// that the counts cover h*w pixels.
func parseRLEObject(seg json.RawMessage) (*data.RLE, error) {
	var o struct {
		Size   []int           `json:"size"`
		Counts json.RawMessage `json:"counts"`
	}
	if err := json.Unmarshal(seg, &o); err != nil {
		return nil, fmt.Errorf("rle segmentation: %w", err)
	}
	if len(o.Size) != 2 || o.Size[0] < 0 || o.Size[1] < 0 {
		return nil, fmt.Errorf("rle segmentation: size %v: want [height, width]", o.Size)
	}
	r := &data.RLE{H: o.Size[0], W: o.Size[1]}
	counts := bytes.TrimSpace(o.Counts)
	switch {
	case len(counts) > 0 && counts[0] == '"':
		var s string
		if err := json.Unmarshal(counts, &s); err != nil {
			return nil, fmt.Errorf("rle segmentation: %w", err)
		}
		c, err := data.DecodeRLEString(s)
		if err != nil {
			return nil, err
		}
		r.Counts = c
	case len(counts) > 0 && counts[0] == '[':
		if err := json.Unmarshal(counts, &r.Counts); err != nil {
			return nil, fmt.Errorf("rle segmentation counts: %w", err)
		}
	default:
		return nil, errors.New("rle segmentation: counts must be a list or a string")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// COCOSegmentation is a mask in COCO's compressed RLE format, as detection
// results carry it: Size is [height, width], Counts the compressed counts
// string of the column-major runs (data.EncodeRLEString).
type COCOSegmentation struct {
	Size   [2]int `json:"size"`
	Counts string `json:"counts"`
}

// RLE decodes s, checking that the counts cover its size.
func (s *COCOSegmentation) RLE() (*data.RLE, error) {
	c, err := data.DecodeRLEString(s.Counts)
	if err != nil {
		return nil, err
	}
	r := &data.RLE{H: s.Size[0], W: s.Size[1], Counts: c}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// MaskSegmentation encodes a row-major h*w mask (any nonzero byte is set)
// as a COCO compressed RLE, in COCO's column-major pixel order, as
// pycocotools' mask.encode does.
func MaskSegmentation(mask []uint8, h, w int) (*COCOSegmentation, error) {
	r, err := data.EncodeRLE(mask, h, w)
	if err != nil {
		return nil, err
	}
	return &COCOSegmentation{Size: [2]int{h, w}, Counts: data.EncodeRLEString(r.Counts)}, nil
}

// COCODetection is one entry of a COCO results file. Box results carry
// BBox, instance segmentation results Segmentation (and usually BBox).
type COCODetection struct {
	ImageID      int64             `json:"image_id"`
	CategoryID   int64             `json:"category_id"`
	BBox         []float64         `json:"bbox,omitempty"` // x, y, w, h
	Segmentation *COCOSegmentation `json:"segmentation,omitempty"`
	Score        float64           `json:"score"`
}

// cocoDetJSON is an entry of a results file as read, to tell missing
// fields from zeros.
type cocoDetJSON struct {
	ImageID      *int64          `json:"image_id"`
	CategoryID   *int64          `json:"category_id"`
	BBox         []float64       `json:"bbox"`
	Segmentation json.RawMessage `json:"segmentation"`
	Score        *float64        `json:"score"`
}

// ReadCOCODetections reads a COCO results file: a JSON list of
// {"image_id", "category_id", "bbox" and/or "segmentation", "score"}.
// Segmentations are compressed RLE objects; uncompressed ones (counts a
// list) are accepted and compressed. path may continue into an archive, as
// for ReadCOCOGroundTruth. Errors name the file and the entry's index: a
// missing image_id, category_id or score, a bbox that is not 4 numbers, a
// segmentation that is not an RLE object.
func ReadCOCODetections(path string) ([]COCODetection, error) {
	raw, err := readCOCOFile(path)
	if err != nil {
		return nil, err
	}
	dets, err := ParseCOCODetections(raw)
	if err != nil {
		return nil, fmt.Errorf("coco results %s: %w", path, err)
	}
	return dets, nil
}

// ParseCOCODetections parses the contents of a results file, as
// ReadCOCODetections.
func ParseCOCODetections(raw []byte) ([]COCODetection, error) {
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("want a JSON list of detections: %w", err)
	}
	dets := make([]COCODetection, len(entries))
	for i, e := range entries {
		var d cocoDetJSON
		if err := json.Unmarshal(e, &d); err != nil {
			return nil, fmt.Errorf("detection %d: %w", i, err)
		}
		switch {
		case d.ImageID == nil:
			return nil, fmt.Errorf("detection %d: no image_id", i)
		case d.CategoryID == nil:
			return nil, fmt.Errorf("detection %d: no category_id", i)
		case d.Score == nil:
			return nil, fmt.Errorf("detection %d: no score", i)
		}
		out := COCODetection{ImageID: *d.ImageID, CategoryID: *d.CategoryID, Score: *d.Score}
		if len(d.BBox) > 0 {
			if _, err := cocoBox(d.BBox); err != nil {
				return nil, fmt.Errorf("detection %d: %w", i, err)
			}
			out.BBox = d.BBox
		}
		if seg := bytes.TrimSpace(d.Segmentation); len(seg) > 0 && string(seg) != "null" {
			if seg[0] != '{' {
				return nil, fmt.Errorf("detection %d: segmentation %.40s: want an rle object {\"size\": [h, w], \"counts\": ...} (polygon results are not read, as in pycocotools)", i, seg)
			}
			r, err := parseRLEObject(seg)
			if err != nil {
				return nil, fmt.Errorf("detection %d: %w", i, err)
			}
			out.Segmentation = &COCOSegmentation{Size: [2]int{r.H, r.W}, Counts: data.EncodeRLEString(r.Counts)}
		}
		dets[i] = out
	}
	return dets, nil
}

// WriteCOCODetections writes dets as a COCO results file (a JSON list),
// atomically (ckpt.WriteFileAtomic).
func WriteCOCODetections(path string, dets []COCODetection) error {
	if dets == nil {
		dets = []COCODetection{}
	}
	b, err := json.Marshal(dets)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return ckpt.WriteFileAtomic(path, append(b, '\n'))
}

// readCOCOFile reads path, which may continue into an archive
// (data.OpenFS), with an error naming it.
func readCOCOFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return b, nil
	}
	if inArchive(path) {
		fsys, ferr := data.OpenFS(filepath.Dir(path))
		if ferr != nil {
			return nil, fmt.Errorf("reading %s: %w", path, ferr)
		}
		b, ferr = fs.ReadFile(fsys, filepath.Base(path))
		if ferr == nil {
			return b, nil
		}
		err = ferr
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return nil, fmt.Errorf("reading %s: %w", path, err)
}

// inArchive reports whether a proper ancestor of path is an archive file.
func inArchive(path string) bool {
	for dir := filepath.Dir(filepath.Clean(path)); ; dir = filepath.Dir(dir) {
		if st, err := os.Stat(dir); err == nil {
			return st.Mode().IsRegular() && data.IsArchive(dir)
		}
		if next := filepath.Dir(dir); next == dir {
			return false
		}
	}
}

// PolygonRLE rasterises COCO polygons (each a flat list x0, y0, x1, y1, ...)
// into the union of their masks at size h x w, exactly as pycocotools does
// for a ground truth segmentation (frPyObjects, rleFrPoly in maskApi.c, then
// merge). rleFrPoly quantises the vertices to a 1/5 pixel grid (rounding
// half up), draws the boundary through the grid points, and at each column
// centre x+0.5 marks the pixels whose rows lie between the boundary
// crossings, a crossing at grid height v starting the run at row
// ceil((v+0.5)/5-0.5). This differs from data.RasterizePolygons (exact
// pixel centres) for pixels within about 0.2 pixel of the boundary. As in
// pycocotools, when the first polygon has exactly 4 numbers every polygon
// is read as a box x, y, w, h. A polygon with an odd number of
// coordinates, or a non-finite or huge (beyond 1e6) coordinate, is an error.
func PolygonRLE(polys [][]float64, h, w int) (*data.RLE, error) {
	if h <= 0 || w <= 0 {
		return nil, fmt.Errorf("polygons: invalid size %dx%d (height x width)", h, w)
	}
	boxes := len(polys) > 0 && len(polys[0]) == 4
	var out *data.RLE
	for k, p := range polys {
		if len(p)%2 != 0 {
			return nil, fmt.Errorf("polygon %d has an odd number (%d) of coordinates", k, len(p))
		}
		for _, v := range p {
			if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e6 {
				return nil, fmt.Errorf("polygon %d: coordinate %v not finite or beyond 1e6", k, v)
			}
		}
		if boxes {
			if len(p) != 4 {
				return nil, fmt.Errorf("polygon %d has %d coordinates; polygon 0 has 4, which makes them boxes (as in pycocotools)", k, len(p))
			}
			xs, ys := p[0], p[1]
			xe, ye := xs+p[2], ys+p[3]
			p = []float64{xs, ys, xs, ye, xe, ye, xe, ys}
		}
		r := polyRLE(p, h, w)
		if out == nil {
			out = r
		} else {
			out = rleUnion(out, r)
		}
	}
	if out == nil {
		out = &data.RLE{H: h, W: w, Counts: []uint32{uint32(h * w)}}
	}
	return out, nil
}

// polyRLE is rleFrPoly of maskApi.c for one polygon xy (x, y pairs); see
// PolygonRLE. Float expressions are written with explicit conversions so
// that no multiply-add is fused, matching the C code's rounding.
func polyRLE(xy []float64, h, w int) *data.RLE {
	const scale = 5.0
	k := len(xy) / 2
	if k == 0 {
		return &data.RLE{H: h, W: w, Counts: []uint32{uint32(h * w)}}
	}
	// Upsample the vertices and walk the boundary through every grid point.
	x, y := make([]int, k+1), make([]int, k+1)
	for j := 0; j < k; j++ {
		x[j] = int(float64(scale*xy[2*j]) + 0.5)
		y[j] = int(float64(scale*xy[2*j+1]) + 0.5)
	}
	x[k], y[k] = x[0], y[0]
	m := 0
	for j := 0; j < k; j++ {
		m += max(absInt(x[j]-x[j+1]), absInt(y[j]-y[j+1])) + 1
	}
	u, v := make([]int, 0, m), make([]int, 0, m)
	for j := 0; j < k; j++ {
		xs, xe, ys, ye := x[j], x[j+1], y[j], y[j+1]
		dx, dy := absInt(xe-xs), absInt(ys-ye)
		if dx == 0 && dy == 0 {
			// A repeated vertex: one point (the C code computes 0/0 for its
			// row, a value the next pass never reads).
			u, v = append(u, xs), append(v, ys)
			continue
		}
		flip := (dx >= dy && xs > xe) || (dx < dy && ys > ye)
		if flip {
			xs, xe = xe, xs
			ys, ye = ye, ys
		}
		if dx >= dy {
			s := float64(ye-ys) / float64(dx)
			for d := 0; d <= dx; d++ {
				t := d
				if flip {
					t = dx - d
				}
				u = append(u, t+xs)
				v = append(v, int(float64(ys)+float64(s*float64(t))+0.5))
			}
		} else {
			s := float64(xe-xs) / float64(dy)
			for d := 0; d <= dy; d++ {
				t := d
				if flip {
					t = dy - d
				}
				v = append(v, t+ys)
				u = append(u, int(float64(xs)+float64(s*float64(t))+0.5))
			}
		}
	}
	// Keep the boundary points where it crosses a column centre, downsampled.
	var a []uint32
	for j := 1; j < len(u); j++ {
		if u[j] == u[j-1] {
			continue
		}
		xi := u[j] - 1
		if u[j] < u[j-1] {
			xi = u[j]
		}
		xd := (float64(xi)+0.5)/scale - 0.5
		if math.Floor(xd) != xd || xd < 0 || xd > float64(w-1) {
			continue
		}
		yi := min(v[j], v[j-1])
		yd := (float64(yi)+0.5)/scale - 0.5
		if yd < 0 {
			yd = 0
		} else if yd > float64(h) {
			yd = float64(h)
		}
		yd = math.Ceil(yd)
		a = append(a, uint32(int(xd)*h+int(yd)))
	}
	// Each point toggles the mask from its column-major position on.
	a = append(a, uint32(h*w))
	slices.Sort(a)
	var prev uint32
	for j, t := range a {
		a[j] -= prev
		prev = t
	}
	counts := []uint32{a[0]}
	for j := 1; j < len(a); {
		if a[j] > 0 {
			counts = append(counts, a[j])
			j++
			continue
		}
		// Two toggles at one position cancel: join the runs around them.
		j++
		if j < len(a) {
			counts[len(counts)-1] += a[j]
			j++
		}
	}
	return &data.RLE{H: h, W: w, Counts: counts}
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// rleRuns walks the runs of two RLEs of the same size together, calling f
// with the length of each stretch where both values are constant.
func rleRuns(a, b []uint32, f func(n uint64, va, vb bool)) {
	ia, ib := 0, 0
	var ra, rb uint64
	if len(a) > 0 {
		ra = uint64(a[0])
	}
	if len(b) > 0 {
		rb = uint64(b[0])
	}
	for {
		for ra == 0 && ia+1 < len(a) {
			ia++
			ra = uint64(a[ia])
		}
		for rb == 0 && ib+1 < len(b) {
			ib++
			rb = uint64(b[ib])
		}
		if ra == 0 || rb == 0 {
			return
		}
		n := min(ra, rb)
		f(n, ia%2 == 1, ib%2 == 1)
		ra -= n
		rb -= n
	}
}

// rleUnion returns the union of two masks of the same size (pycocotools'
// merge with intersect false).
func rleUnion(a, b *data.RLE) *data.RLE {
	out := &data.RLE{H: a.H, W: a.W}
	cur := false
	var run uint32
	rleRuns(a.Counts, b.Counts, func(n uint64, va, vb bool) {
		if v := va || vb; v != cur {
			out.Counts = append(out.Counts, run)
			run, cur = 0, v
		}
		run += uint32(n)
	})
	out.Counts = append(out.Counts, run)
	return out
}

// rleInterUnion returns the pixels set in both masks and in either.
func rleInterUnion(a, b *data.RLE) (inter, union uint64) {
	rleRuns(a.Counts, b.Counts, func(n uint64, va, vb bool) {
		if va || vb {
			union += n
			if va && vb {
				inter += n
			}
		}
	})
	return inter, union
}

// RLEBBox returns the bounding box x, y, w, h of a mask as pycocotools'
// toBbox (rleToBbox in maskApi.c): the columns of the first and last set
// pixel, and the rows spanned by the set pixels (the full height when a run
// continues into the next column); all zeros for an empty mask.
func RLEBBox(r *data.RLE) [4]float64 {
	m := len(r.Counts) / 2 * 2
	if m == 0 || r.H <= 0 {
		return [4]float64{}
	}
	h, w := uint32(r.H), uint32(r.W)
	xs, ys, xe, ye := w, h, uint32(0), uint32(0)
	var cc, xp uint32
	for j := 0; j < m; j++ {
		cc += r.Counts[j]
		t := cc - uint32(j%2)
		y := t % h
		x := (t - y) / h
		if j%2 == 0 {
			xp = x
		} else if xp < x {
			ys, ye = 0, h-1
		}
		xs, xe = min(xs, x), max(xe, x)
		ys, ye = min(ys, y), max(ye, y)
	}
	return [4]float64{float64(xs), float64(ys), float64(xe - xs + 1), float64(ye - ys + 1)}
}
