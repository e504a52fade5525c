package detect

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/core/tensors"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/metrics"
)

// Files the evaluation writes into the run directory: the last
// evaluation's validation predictions as COCO result JSON.
const (
	BoxPredictionsFile  = "predictions_bbox.json"
	MaskPredictionsFile = "predictions_segm.json"
)

// evalResult is one evaluation: the COCO statistics of both IoU types.
type evalResult struct {
	bbox, segm map[string]float64
	dets       int
}

// metrics names the statistics val_bbox_<stat> and val_segm_<stat>.
func (r evalResult) metrics() map[string]float64 {
	m := map[string]float64{"val_detections": float64(r.dets)}
	for k, v := range r.bbox {
		m["val_bbox_"+k] = v
	}
	for k, v := range r.segm {
		m["val_segm_"+k] = v
	}
	return m
}

// prediction is one image's detections with their pasted masks.
type prediction struct {
	dets  []Detection // boxes in original pixels
	masks [][]uint8   // original resolution
}

// evaluate predicts the validation images, writes the COCO result files
// and the overlays of the first eval.overlays images, and scores box and
// mask AP over the evaluated images.
func evaluate(env *core.Env, st *step, cfg Config, val *valSet, gt *metrics.COCOGroundTruth, norm data.Normalizer, epoch int) (evalResult, error) {
	prog := env.StartProgress(len(val.idx), "eval")
	defer prog.Finish()
	var boxes, masks []metrics.COCODetection
	bs := cfg.Data.EvalBatch
	for start := 0; start < len(val.idx); start += bs {
		n := min(bs, len(val.idx)-start)
		samples := make([]data.Sample, n)
		lbs := make([]Letterbox, n)
		pix := make([]float32, 0, bs*st.size*st.size*st.channels)
		for j := range n {
			s, err := val.coco.Sample(val.idx[start+j])
			if err != nil {
				return evalResult{}, err
			}
			lb := NewLetterbox(s.Image.H, s.Image.W, st.size)
			r := data.Resize(s.Image, lb.NH, lb.NW, data.Bilinear)
			pix = append(pix, PadInput(norm.Apply(r, nil), lb.NH, lb.NW, r.C, st.size)...)
			samples[j], lbs[j] = s, lb
		}
		pix = append(pix, make([]float32, (bs-n)*st.size*st.size*st.channels)...)
		preds, err := st.predictBatch(pix, bs, lbs, cfg.Eval.PostConfig)
		if err != nil {
			return evalResult{}, fmt.Errorf("predicting validation images %d-%d: %w", start, start+n-1, err)
		}
		for j, p := range preds {
			k := val.idx[start+j]
			id := val.coco.ImageID(k)
			s := samples[j]
			for d, det := range p.dets {
				seg, err := metrics.MaskSegmentation(p.masks[d], s.Image.H, s.Image.W)
				if err != nil {
					return evalResult{}, fmt.Errorf("%s: mask of detection %d: %w", s.Path, d, err)
				}
				bbox := []float64{float64(det.X0), float64(det.Y0), float64(det.X1 - det.X0), float64(det.Y1 - det.Y0)}
				c := metrics.COCODetection{ImageID: id, CategoryID: val.coco.CategoryID(det.Class), BBox: bbox, Score: float64(det.Score)}
				boxes = append(boxes, c)
				c.Segmentation = seg
				masks = append(masks, c)
			}
			if start+j < cfg.Eval.Overlays {
				path := env.Path(core.ImagesDir, fmt.Sprintf("coco_epoch%03d_%03d.png", epoch, start+j))
				if err := writeOverlay(path, s, p, val.coco.Classes(), cfg.Eval.OverlayScore); err != nil {
					return evalResult{}, err
				}
			}
		}
		prog.Advance(n, n, "")
	}
	if err := metrics.WriteCOCODetections(env.Path(BoxPredictionsFile), boxes); err != nil {
		return evalResult{}, err
	}
	if err := metrics.WriteCOCODetections(env.Path(MaskPredictionsFile), masks); err != nil {
		return evalResult{}, err
	}
	res := evalResult{dets: len(boxes)}
	ids := val.imageIDs()
	for _, iou := range []string{"bbox", "segm"} {
		dets := boxes
		if iou == "segm" {
			dets = masks
		}
		stats, err := metrics.EvaluateCOCO(gt, dets, metrics.COCOParams{IoUType: iou, ImageIDs: ids})
		if err != nil {
			return evalResult{}, fmt.Errorf("COCO %s evaluation: %w", iou, err)
		}
		if iou == "bbox" {
			res.bbox = stats.Map()
		} else {
			res.segm = stats.Map()
		}
	}
	return res, nil
}

// predictBatch runs the prediction graph on a padded batch of bs inputs
// and turns the first len(lbs) into detections in original coordinates
// with masks pasted at the original resolution.
func (st *step) predictBatch(pix []float32, bs int, lbs []Letterbox, pc PostConfig) ([]prediction, error) {
	out, err := st.predict.Exec(tensors.FromFlatDataAndDimensions(pix, bs, st.size, st.size, st.channels))
	if err != nil {
		return nil, err
	}
	cls := tensors.MustCopyFlatData[float32](out[0])
	ctr := tensors.MustCopyFlatData[float32](out[1])
	ltrb := tensors.MustCopyFlatData[float32](out[2])
	coeffs := tensors.MustCopyFlatData[float32](out[3])
	protos := tensors.MustCopyFlatData[float32](out[4])
	n, k, np := NumLocations(st.levels), st.net.NumClasses, st.net.Prototypes
	ph, f := st.protoH, st.net.ProtoStride()
	cells := ph * ph
	preds := make([]prediction, len(lbs))
	for j, lb := range lbs {
		dets := Decode(st.levels, cls[j*n*k:(j+1)*n*k], ctr[j*n:(j+1)*n], ltrb[j*n*4:(j+1)*n*4], k, float32(lb.NW), float32(lb.NH), pc)
		p := prediction{dets: make([]Detection, len(dets)), masks: make([][]uint8, len(dets))}
		for d, det := range dets {
			o := det
			o.X0, o.Y0 = lb.ToOriginal(det.X0, det.Y0)
			o.X1, o.Y1 = lb.ToOriginal(det.X1, det.Y1)
			prob := MaskProb(coeffs[(j*n+det.Loc)*np:(j*n+det.Loc+1)*np], protos[j*cells*np:(j+1)*cells*np])
			p.dets[d], p.masks[d] = o, PasteMask(prob, ph, ph, f, lb, o.X0, o.Y0, o.X1, o.Y1)
		}
		preds[j] = p
	}
	return preds, nil
}

// overlaySide is the longer side of each overlay panel in pixels, and
// overlayMaxDets the most detections an overlay draws (the best ones).
const (
	overlaySide    = 320
	overlayMaxDets = 20
)

// writeOverlay draws ground truth | prediction side by side, each the
// image scaled to overlaySide with instance masks blended in their class
// colour, boxes and class names (predictions with scores: the best
// overlayMaxDets of at least minScore).
func writeOverlay(path string, s data.Sample, p prediction, classes []string, minScore float64) error {
	h, w := s.Image.H, s.Image.W
	scale := min(1, float64(overlaySide)/float64(max(h, w)))
	oh, ow := max(1, int(float64(h)*scale)), max(1, int(float64(w)*scale))
	img := data.Resize(s.Image, oh, ow, data.Bilinear)
	out := image.NewRGBA(image.Rect(0, 0, 2*ow, oh))
	for panel := range 2 {
		for y := range oh {
			for x := range ow {
				q := (y*ow + x) * img.C
				r, g, b := img.Pix[q], img.Pix[q], img.Pix[q]
				if img.C >= 3 {
					g, b = img.Pix[q+1], img.Pix[q+2]
				}
				out.SetRGBA(panel*ow+x, y, color.RGBA{r, g, b, 255})
			}
		}
	}
	sx, sy := float32(ow)/float32(w), float32(oh)/float32(h)
	type obj struct {
		x0, y0, x1, y1 float32
		mask           []uint8
		class          int
		label          string
	}
	var gts, preds []obj
	for _, in := range s.Instances {
		gts = append(gts, obj{in.Box.X, in.Box.Y, in.Box.X + in.Box.W, in.Box.Y + in.Box.H, in.Mask, in.Category, className(classes, in.Category)})
	}
	for d, det := range p.dets {
		if float64(det.Score) >= minScore && len(preds) < overlayMaxDets {
			preds = append(preds, obj{det.X0, det.Y0, det.X1, det.Y1, p.masks[d], det.Class, fmt.Sprintf("%s %.2f", className(classes, det.Class), det.Score)})
		}
	}
	for panel, objs := range [][]obj{gts, preds} {
		dx := panel * ow
		for _, o := range objs {
			col := classColor(o.class)
			if o.mask != nil {
				m := data.ResizeMapNearest(o.mask, h, w, oh, ow)
				for y := range oh {
					for x := range ow {
						if m[y*ow+x] != 0 {
							out.SetRGBA(dx+x, y, blend(out.RGBAAt(dx+x, y), col, 0.45))
						}
					}
				}
			}
		}
		for _, o := range objs {
			col := classColor(o.class)
			x0, y0 := dx+int(o.x0*sx), int(o.y0*sy)
			x1, y1 := dx+min(int(o.x1*sx), ow-1), min(int(o.y1*sy), oh-1)
			drawRect(out, x0, y0, x1, y1, col)
			drawLabel(out, x0, y0, o.label, col)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, out); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return ckpt.WriteFileAtomic(path, buf.Bytes())
}

// className names class c.
func className(classes []string, c int) string {
	if c >= 0 && c < len(classes) {
		return classes[c]
	}
	return fmt.Sprintf("class %d", c)
}

// classColor is a fixed bright colour per class.
func classColor(c int) color.RGBA {
	h := uint32(c+1) * 2654435761
	return color.RGBA{uint8(64 + h>>24%192), uint8(64 + h>>16%192), uint8(64 + h>>8%192), 255}
}

// blend mixes c into base with weight a.
func blend(base, c color.RGBA, a float64) color.RGBA {
	mix := func(x, y uint8) uint8 { return uint8(float64(x)*(1-a) + float64(y)*a) }
	return color.RGBA{mix(base.R, c.R), mix(base.G, c.G), mix(base.B, c.B), 255}
}

// drawRect draws a 1-pixel rectangle outline.
func drawRect(im *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		im.SetRGBA(x, y0, c)
		im.SetRGBA(x, y1, c)
	}
	for y := y0; y <= y1; y++ {
		im.SetRGBA(x0, y, c)
		im.SetRGBA(x1, y, c)
	}
}

// drawLabel writes text in black on a box of colour c at the top-left
// corner (x, y) of a box, above it when there is room.
func drawLabel(im *image.RGBA, x, y int, text string, c color.RGBA) {
	face := basicfont.Face7x13
	tw := font.MeasureString(face, text).Ceil()
	th := face.Height
	top := y - th
	if top < 0 {
		top = y
	}
	bg := image.Rect(x, top, x+tw+2, top+th).Intersect(im.Bounds())
	for yy := bg.Min.Y; yy < bg.Max.Y; yy++ {
		for xx := bg.Min.X; xx < bg.Max.X; xx++ {
			im.SetRGBA(xx, yy, c)
		}
	}
	d := &font.Drawer{Dst: im, Src: image.NewUniform(color.RGBA{0, 0, 0, 255}), Face: face,
		Dot: fixed.P(x+1, top+face.Ascent)}
	d.DrawString(text)
}
