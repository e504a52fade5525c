package metrics

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/peco-dev/peco/data"
)

// The parameters of pycocotools' Params.setDetParams, the ones every COCO
// paper reports.
var (
	// cocoIoUThrs are .50:.05:.95 and cocoRecThrs 0:.01:1, computed as
	// np.linspace computes them (i*step + start, the last set to stop), so
	// that comparisons at exactly a threshold come out the same.
	cocoIoUThrs = linspace(0.5, 0.95, 10)
	cocoRecThrs = linspace(0, 1, 101)
	// cocoAreaRanges are all, small, medium, large, in pixels, both ends
	// included.
	cocoAreaRanges = [4][2]float64{{0, 1e10}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e10}}
	cocoAreaLabels = [4]string{"all", "small", "medium", "large"}
	cocoMaxDets    = [3]int{1, 10, 100}
)

// linspace is np.linspace(start, stop, num) with endpoint.
func linspace(start, stop float64, num int) []float64 {
	step := (stop - start) / float64(num-1)
	y := make([]float64, num)
	for i := range y {
		y[i] = float64(float64(i)*step) + start
	}
	y[num-1] = stop
	return y
}

// COCOParams chooses what EvaluateCOCO evaluates; the thresholds, area
// ranges and detection limits are COCO's standard ones.
type COCOParams struct {
	// IoUType is "bbox" (box IoU) or "segm" (mask IoU).
	IoUType string
	// ImageIDs are the images evaluated (duplicates and order do not
	// matter); nil evaluates every image of the ground truth.
	ImageIDs []int64
}

// COCOStats is the result of EvaluateCOCO.
type COCOStats struct {
	// Stats are pycocotools' 12 summary numbers (COCOeval.stats), in its
	// order: AP@[.50:.95], AP@.50, AP@.75, AP small, medium, large (100
	// detections per image), AR with 1, 10, 100 detections, AR small,
	// medium, large (100). A number with nothing to average (no ground
	// truth in the area range) is -1.
	Stats [12]float64
	// IoUType is "bbox" or "segm".
	IoUType string
	// Images is the number of images evaluated; Detections the number of
	// detections on them in ground truth categories (before the cut to 100
	// per image and category); Unscored the other detections (on images not
	// in COCOParams.ImageIDs or in categories the ground truth lacks), left
	// out as pycocotools leaves them out.
	Images, Detections, Unscored int
	// PerCategory is AP@[.50:.95] (all areas, 100 detections) of each
	// ground truth category in increasing id order, -1 for a category
	// without ground truth (it is left out of Stats).
	PerCategory []COCOCategoryAP
}

// COCOCategoryAP is the AP of one category.
type COCOCategoryAP struct {
	ID   int64
	Name string
	AP   float64
}

// cocoStatKeys are the names Map gives Stats.
var cocoStatKeys = [12]string{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}

// cocoStatLines are the arguments of pycocotools' _summarize for each stat:
// AP or AR, IoU threshold index (-1: all), area range index, maxDets index.
var cocoStatLines = [12]struct {
	ap          bool
	iou, a, det int
}{
	{true, -1, 0, 2}, {true, 0, 0, 2}, {true, 5, 0, 2}, {true, -1, 1, 2}, {true, -1, 2, 2}, {true, -1, 3, 2},
	{false, -1, 0, 0}, {false, -1, 0, 1}, {false, -1, 0, 2}, {false, -1, 1, 2}, {false, -1, 2, 2}, {false, -1, 3, 2},
}

// String returns the 12 lines pycocotools' COCOeval.summarize prints.
func (s *COCOStats) String() string {
	var b strings.Builder
	for i, l := range cocoStatLines {
		title, typ := "Average Precision", "(AP)"
		if !l.ap {
			title, typ = "Average Recall", "(AR)"
		}
		iou := fmt.Sprintf("%0.2f:%0.2f", cocoIoUThrs[0], cocoIoUThrs[len(cocoIoUThrs)-1])
		if l.iou >= 0 {
			iou = fmt.Sprintf("%0.2f", cocoIoUThrs[l.iou])
		}
		fmt.Fprintf(&b, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
			title, typ, iou, cocoAreaLabels[l.a], cocoMaxDets[l.det], s.Stats[i])
	}
	return b.String()
}

// Map returns Stats by name: AP AP50 AP75 APs APm APl AR1 AR10 AR100 ARs
// ARm ARl.
func (s *COCOStats) Map() map[string]float64 {
	m := make(map[string]float64, len(cocoStatKeys))
	for i, k := range cocoStatKeys {
		m[k] = s.Stats[i]
	}
	return m
}

// cocoDet is a detection prepared as pycocotools' loadRes prepares it.
type cocoDet struct {
	id    int64 // index in the results + 1, loadRes's id
	score float64
	area  float64
	box   [4]float64
	mask  *data.RLE
}

// cocoGT is a ground truth object of an evaluated image.
type cocoGT struct {
	id    int64
	area  float64
	crowd bool
	box   [4]float64
	mask  *data.RLE
}

// cocoEvalImg is pycocotools' evaluateImg result for one image, category
// and area range: the image's detections (sorted, at most 100) with, per
// IoU threshold, the id of the matched ground truth (0: none) and whether
// the detection is ignored; npig counts the ground truth not ignored.
type cocoEvalImg struct {
	scores []float64
	dtm    [][]int64
	dtIg   [][]bool
	npig   int
}

// EvaluateCOCO scores detections against ground truth exactly as
// pycocotools' COCO.loadRes, COCOeval.evaluate, accumulate and summarize
// do with the default parameters for p.IoUType.
//
// Detections are prepared as loadRes prepares them, which depends on the
// first one: if it has a bbox, every detection must have one and its area
// (for the area ranges) is w*h, even for "segm"; otherwise every detection
// must have a segmentation, its area is the mask's and a missing bbox is the
// mask's (RLEBBox). For "segm" every detection needs a segmentation at its
// image's size, and every evaluated ground truth object a mask.
//
// Errors: a detection on an image the ground truth lacks (pycocotools
// asserts), a missing bbox or segmentation, a mask of the wrong size, a
// non-finite score, image ids in p that the ground truth lacks, ground
// truth annotation ids that are 0 or repeated, and ground truth that
// ReadCOCOGroundTruth would refuse. Errors name the detection by its index
// in dets, the ground truth by its annotation id.
func EvaluateCOCO(gt *COCOGroundTruth, dets []COCODetection, p COCOParams) (*COCOStats, error) {
	var segm bool
	switch p.IoUType {
	case "bbox":
	case "segm":
		segm = true
	default:
		return nil, fmt.Errorf("coco eval: iou type %q: want bbox or segm", p.IoUType)
	}
	images := make(map[int64]COCOImage, len(gt.Images))
	for _, im := range gt.Images {
		if _, dup := images[im.ID]; dup {
			return nil, fmt.Errorf("coco eval: duplicate ground truth image id %d", im.ID)
		}
		images[im.ID] = im
	}
	var imgIDs []int64
	if p.ImageIDs == nil {
		for _, im := range gt.Images {
			imgIDs = append(imgIDs, im.ID)
		}
	} else {
		for _, id := range p.ImageIDs {
			if _, ok := images[id]; !ok {
				return nil, fmt.Errorf("coco eval: image id %d to evaluate is not in the ground truth", id)
			}
		}
		imgIDs = slices.Clone(p.ImageIDs)
	}
	slices.Sort(imgIDs)
	imgIDs = slices.Compact(imgIDs)
	imgPos := make(map[int64]int, len(imgIDs))
	for i, id := range imgIDs {
		imgPos[id] = i
	}
	cats := slices.Clone(gt.Categories)
	slices.SortFunc(cats, func(a, b COCOCategory) int { return cmp.Compare(a.ID, b.ID) })
	catPos := make(map[int64]int, len(cats))
	for k, c := range cats {
		if _, dup := catPos[c.ID]; dup {
			return nil, fmt.Errorf("coco eval: duplicate ground truth category id %d", c.ID)
		}
		catPos[c.ID] = k
	}
	nI, nK := len(imgIDs), len(cats)

	// Ground truth of the evaluated images, grouped by category and image
	// in the file's order.
	gts := make([][]cocoGT, nK*nI)
	annIDs := make(map[int64]bool, len(gt.Annotations))
	for _, a := range gt.Annotations {
		// pycocotools reads a match to annotation id 0 as no match, and
		// evaluates the last annotation of a repeated id in place of each.
		if a.ID == 0 || annIDs[a.ID] {
			return nil, fmt.Errorf("coco eval: ground truth annotation id %d is 0 or repeated (pycocotools mis-scores such files; number annotations 1, 2, ...)", a.ID)
		}
		annIDs[a.ID] = true
		im, ok := images[a.ImageID]
		if !ok {
			return nil, fmt.Errorf("coco eval: ground truth annotation %d: image id %d not in the images list", a.ID, a.ImageID)
		}
		k, ok := catPos[a.CategoryID]
		if !ok {
			return nil, fmt.Errorf("coco eval: ground truth annotation %d: category id %d not in the categories list", a.ID, a.CategoryID)
		}
		i, ok := imgPos[a.ImageID]
		if !ok {
			continue
		}
		g := cocoGT{id: a.ID, area: a.Area, crowd: a.IsCrowd, box: a.BBox, mask: a.Mask}
		if segm {
			if a.Mask == nil {
				return nil, fmt.Errorf("coco eval: ground truth annotation %d has no segmentation (iou type segm)", a.ID)
			}
			if a.Mask.H != im.Height || a.Mask.W != im.Width {
				return nil, fmt.Errorf("coco eval: ground truth annotation %d: mask is %dx%d but image %d is %dx%d (height x width)", a.ID, a.Mask.H, a.Mask.W, im.ID, im.Height, im.Width)
			}
		}
		gts[k*nI+i] = append(gts[k*nI+i], g)
	}

	// Detections, prepared as loadRes does.
	st := &COCOStats{IoUType: p.IoUType, Images: nI}
	dts := make([][]cocoDet, nK*nI)
	boxResults := len(dets) > 0 && len(dets[0].BBox) > 0
	for n, d := range dets {
		im, ok := images[d.ImageID]
		if !ok {
			return nil, fmt.Errorf("coco eval: detection %d: image id %d is not in the ground truth", n, d.ImageID)
		}
		if math.IsNaN(d.Score) || math.IsInf(d.Score, 0) {
			return nil, fmt.Errorf("coco eval: detection %d: score %v is not finite", n, d.Score)
		}
		c := cocoDet{id: int64(n) + 1, score: d.Score}
		if len(d.BBox) > 0 {
			b, err := cocoBox(d.BBox)
			if err != nil {
				return nil, fmt.Errorf("coco eval: detection %d: %w", n, err)
			}
			c.box = b
		}
		if segm && d.Segmentation == nil {
			return nil, fmt.Errorf("coco eval: detection %d has no segmentation (iou type segm)", n)
		}
		if d.Segmentation != nil && (segm || !boxResults) {
			r, err := d.Segmentation.RLE()
			if err != nil {
				return nil, fmt.Errorf("coco eval: detection %d: segmentation: %w", n, err)
			}
			if r.H != im.Height || r.W != im.Width {
				return nil, fmt.Errorf("coco eval: detection %d: segmentation size [%d %d] differs from image %d's [%d %d]", n, r.H, r.W, im.ID, im.Height, im.Width)
			}
			c.mask = r
		}
		if boxResults {
			if len(d.BBox) == 0 {
				return nil, fmt.Errorf("coco eval: detection %d has no bbox, but detection 0 has one (results are read as box results then, as pycocotools' loadRes reads them)", n)
			}
			c.area = c.box[2] * c.box[3]
		} else {
			if c.mask == nil {
				return nil, fmt.Errorf("coco eval: detection %d has neither bbox nor segmentation", n)
			}
			c.area = float64(c.mask.Area())
			if len(d.BBox) == 0 {
				c.box = RLEBBox(c.mask)
			}
		}
		k, okK := catPos[d.CategoryID]
		i, okI := imgPos[d.ImageID]
		if !okK || !okI {
			st.Unscored++
			continue
		}
		st.Detections++
		dts[k*nI+i] = append(dts[k*nI+i], c)
	}

	// evaluate: match per category, area range and image.
	const nT, nA, nM = 10, 4, 3
	evals := make([]*cocoEvalImg, nK*nA*nI) // [k][a][i]
	for k := 0; k < nK; k++ {
		for i := 0; i < nI; i++ {
			g, d := gts[k*nI+i], dts[k*nI+i]
			if len(g) == 0 && len(d) == 0 {
				continue
			}
			slices.SortStableFunc(d, func(a, b cocoDet) int { return cmp.Compare(b.score, a.score) })
			d = d[:min(len(d), cocoMaxDets[nM-1])]
			ious := cocoIoUs(d, g, segm)
			for a := 0; a < nA; a++ {
				evals[(k*nA+a)*nI+i] = cocoEvaluateImg(d, g, ious, cocoAreaRanges[a])
			}
		}
	}

	// accumulate: precision [t][r][k][a][m], recall [t][k][a][m].
	nR := len(cocoRecThrs)
	precision := make([]float64, nT*nR*nK*nA*nM)
	recall := make([]float64, nT*nK*nA*nM)
	for j := range precision {
		precision[j] = -1
	}
	for j := range recall {
		recall[j] = -1
	}
	pIdx := func(t, r, k, a, m int) int { return (((t*nR+r)*nK+k)*nA+a)*nM + m }
	rIdx := func(t, k, a, m int) int { return ((t*nK+k)*nA+a)*nM + m }
	type ref struct{ e, j int } // evalImg and detection in it
	var e []*cocoEvalImg
	var refs []ref
	var rc, pr []float64
	for k := 0; k < nK; k++ {
		for a := 0; a < nA; a++ {
			e = e[:0]
			npig := 0
			for i := 0; i < nI; i++ {
				if ev := evals[(k*nA+a)*nI+i]; ev != nil {
					e = append(e, ev)
					npig += ev.npig
				}
			}
			if len(e) == 0 || npig == 0 {
				continue
			}
			for m, maxDet := range cocoMaxDets {
				refs = refs[:0]
				for ei, ev := range e {
					for j := 0; j < min(maxDet, len(ev.scores)); j++ {
						refs = append(refs, ref{ei, j})
					}
				}
				slices.SortStableFunc(refs, func(x, y ref) int {
					return cmp.Compare(e[y.e].scores[y.j], e[x.e].scores[x.j])
				})
				nd := len(refs)
				for t := 0; t < nT; t++ {
					rc, pr = rc[:0], pr[:0]
					var tp, fp float64
					for _, r := range refs {
						ev := e[r.e]
						if !ev.dtIg[t][r.j] {
							if ev.dtm[t][r.j] != 0 {
								tp++
							} else {
								fp++
							}
						}
						rc = append(rc, tp/float64(npig))
						pr = append(pr, tp/(fp+tp+eps))
					}
					if nd > 0 {
						recall[rIdx(t, k, a, m)] = rc[nd-1]
					} else {
						recall[rIdx(t, k, a, m)] = 0
					}
					for j := nd - 1; j > 0; j-- {
						if pr[j] > pr[j-1] {
							pr[j-1] = pr[j]
						}
					}
					for r, thr := range cocoRecThrs {
						q := 0.0
						if j := sort.SearchFloat64s(rc, thr); j < nd {
							q = pr[j]
						}
						precision[pIdx(t, r, k, a, m)] = q
					}
				}
			}
		}
	}

	// summarize.
	mean := func(vals func(yield func(float64))) float64 {
		var sum float64
		n := 0
		vals(func(v float64) {
			if v > -1 {
				sum += v
				n++
			}
		})
		if n == 0 {
			return -1
		}
		return sum / float64(n)
	}
	for s, l := range cocoStatLines {
		ts := []int{l.iou}
		if l.iou < 0 {
			ts = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
		}
		st.Stats[s] = mean(func(yield func(float64)) {
			for _, t := range ts {
				for k := 0; k < nK; k++ {
					if l.ap {
						for r := 0; r < nR; r++ {
							yield(precision[pIdx(t, r, k, l.a, l.det)])
						}
					} else {
						yield(recall[rIdx(t, k, l.a, l.det)])
					}
				}
			}
		})
	}
	for k, c := range cats {
		ap := mean(func(yield func(float64)) {
			for t := 0; t < nT; t++ {
				for r := 0; r < nR; r++ {
					yield(precision[pIdx(t, r, k, 0, nM-1)])
				}
			}
		})
		st.PerCategory = append(st.PerCategory, COCOCategoryAP{ID: c.ID, Name: c.Name, AP: ap})
	}
	return st, nil
}

// eps is np.spacing(1), the 1e-16 pycocotools adds to tp+fp.
const eps = 2.220446049250313e-16

// cocoIoUs is maskUtils.iou(dt, gt, iscrowd): ious[d][g], box or mask IoU;
// for a crowd ground truth the union is the detection's area.
func cocoIoUs(d []cocoDet, g []cocoGT, segm bool) [][]float64 {
	if len(d) == 0 || len(g) == 0 {
		return nil
	}
	ious := make([][]float64, len(d))
	for i := range d {
		ious[i] = make([]float64, len(g))
		for j := range g {
			if segm {
				ious[i][j] = maskIoU(d[i].mask, g[j].mask, g[j].crowd)
			} else {
				ious[i][j] = boxIoU(d[i].box, g[j].box, g[j].crowd)
			}
		}
	}
	return ious
}

// boxIoU is bbIou of maskApi.c (boxes x, y, w, h; no +1), with its order of
// operations; the conversions keep multiply-adds unfused.
func boxIoU(d, g [4]float64, crowd bool) float64 {
	w := math.Min(d[2]+d[0], g[2]+g[0]) - math.Max(d[0], g[0])
	if w <= 0 {
		return 0
	}
	h := math.Min(d[3]+d[1], g[3]+g[1]) - math.Max(d[1], g[1])
	if h <= 0 {
		return 0
	}
	i := float64(w * h)
	da := float64(d[2] * d[3])
	u := da
	if !crowd {
		u = da + float64(g[2]*g[3]) - i
	}
	return i / u
}

// maskIoU is rleIou of maskApi.c: intersection over union of the pixel
// sets, over the detection's area for a crowd ground truth, 0 without
// intersection.
func maskIoU(d, g *data.RLE, crowd bool) float64 {
	i, u := rleInterUnion(d, g)
	if i == 0 {
		return 0
	}
	if crowd {
		u = uint64(d.Area())
	}
	return float64(i) / float64(u)
}

// cocoEvaluateImg is pycocotools' evaluateImg for one image, category and
// area range: d sorted by score (at most 100), g in the file's order, ious
// as cocoIoUs.
func cocoEvaluateImg(d []cocoDet, g []cocoGT, ious [][]float64, rng [2]float64) *cocoEvalImg {
	outside := func(area float64) bool { return area < rng[0] || area > rng[1] }
	// Ground truth ignored (crowd, or outside the range) goes last.
	order := make([]int, len(g))
	ign := make([]bool, len(g))
	for j := range g {
		order[j] = j
		ign[j] = g[j].crowd || outside(g[j].area)
	}
	slices.SortStableFunc(order, func(x, y int) int {
		return cmp.Compare(b2i(ign[x]), b2i(ign[y]))
	})
	ev := &cocoEvalImg{scores: make([]float64, len(d))}
	for j := range d {
		ev.scores[j] = d[j].score
	}
	for _, j := range order {
		if !ign[j] {
			ev.npig++
		}
	}
	nT := len(cocoIoUThrs)
	ev.dtm = make([][]int64, nT)
	ev.dtIg = make([][]bool, nT)
	gtm := make([]int64, len(g))
	for t, thr := range cocoIoUThrs {
		dtm, dtIg := make([]int64, len(d)), make([]bool, len(d))
		clear(gtm)
		if ious != nil {
			for di := range d {
				iou := math.Min(thr, 1-1e-10)
				m := -1
				for _, gi := range order {
					// A matched ground truth is taken unless it is a crowd.
					if gtm[gi] > 0 && !g[gi].crowd {
						continue
					}
					// Matched to a regular one, and the ignored ones begin.
					if m > -1 && !ign[m] && ign[gi] {
						break
					}
					if ious[di][gi] < iou {
						continue
					}
					iou, m = ious[di][gi], gi
				}
				if m == -1 {
					continue
				}
				dtIg[di] = ign[m]
				dtm[di] = g[m].id
				gtm[m] = d[di].id
			}
		}
		// Unmatched detections outside the range are ignored. (As in
		// pycocotools, "matched" is a nonzero ground truth id.)
		for di := range d {
			if dtm[di] == 0 && outside(d[di].area) {
				dtIg[di] = true
			}
		}
		ev.dtm[t], ev.dtIg[t] = dtm, dtIg
	}
	return ev
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
