package segment

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/metrics"
)

// evaluate predicts every validation image at its label map's resolution
// (whole image, or sliding windows) and scores the predictions over the
// dataset; the first eval.overlays images are drawn.
func evaluate(env *core.Env, st *step, cfg Config, val data.Dataset, norm data.Normalizer, epoch int) (metrics.SegResult, error) {
	meter := metrics.NewSegMeter(cfg.NumClasses, cfg.ReduceZeroLabel)
	prog := env.StartProgress(val.Len(), "eval")
	defer prog.Finish()
	var skipped []core.SkippedInput
	for i := range val.Len() {
		s, err := val.Sample(i)
		if in, bad := data.SkippedInputOf("data.val", err); bad { // skip_bad: left out of the scores
			skipped = append(skipped, in)
			prog.Advance(1, 1, "")
			continue
		}
		if err != nil {
			return metrics.SegResult{}, err
		}
		if s.LabelMap == nil {
			return metrics.SegResult{}, fmt.Errorf("%s: no label map", s.Path)
		}
		logits, err := st.predictImage(s, cfg, norm)
		if err != nil {
			return metrics.SegResult{}, fmt.Errorf("%s: %w", s.Path, err)
		}
		pred := argmax(logits, cfg.NumClasses)
		if err := meter.Add(pred, s.LabelMap); err != nil {
			return metrics.SegResult{}, fmt.Errorf("%s: %w", s.Path, err)
		}
		if i < cfg.Eval.Overlays {
			p := env.Path(core.ImagesDir, fmt.Sprintf("seg_epoch%03d_%03d.png", epoch, i))
			if err := writeOverlay(p, s, pred, meter); err != nil {
				return metrics.SegResult{}, err
			}
		}
		prog.Advance(1, 1, "")
	}
	if err := env.ReportSkipped(skipped); err != nil {
		return metrics.SegResult{}, err
	}
	return meter.Result(), nil
}

// predictImage returns the logits [H*W*K] of a sample at its own size.
func (st *step) predictImage(s data.Sample, cfg Config, norm data.Normalizer) ([]float32, error) {
	k, size := cfg.NumClasses, st.size
	h, w := s.Image.H, s.Image.W
	if cfg.Eval.Mode == "whole" {
		r, err := data.DenseResize(data.Sample{Image: s.Image, Path: s.Path}, size, size, data.Bilinear)
		if err != nil {
			return nil, err
		}
		out, err := st.windows([][]float32{norm.Apply(r.Image, nil)}, cfg.Data.EvalBatch)
		if err != nil {
			return nil, err
		}
		return data.ResizeGrid(out[0], size, size, k, h, w), nil
	}
	eh, ew := cfg.Eval.Height, cfg.Eval.Width
	if eh == 0 {
		eh = h
	}
	if ew == 0 {
		ew = w
	}
	if eh < size || ew < size {
		return nil, fmt.Errorf("slide: the %dx%d image is smaller than the %d-pixel window", eh, ew, size)
	}
	img := s.Image
	if eh != h || ew != w {
		r, err := data.DenseResize(data.Sample{Image: s.Image, Path: s.Path}, eh, ew, data.Bilinear)
		if err != nil {
			return nil, err
		}
		img = r.Image
	}
	stride := cfg.Eval.Stride
	if stride <= 0 {
		stride = max(1, size*2/3)
	}
	starts := func(n int) []int {
		var out []int
		for p := 0; ; p += stride {
			if p+size >= n {
				return append(out, n-size)
			}
			out = append(out, p)
		}
	}
	full := norm.Apply(img, nil)
	c := img.C
	var wins [][]float32
	var at [][2]int
	for _, y := range starts(eh) {
		for _, x := range starts(ew) {
			win := make([]float32, 0, size*size*c)
			for yy := y; yy < y+size; yy++ {
				win = append(win, full[(yy*ew+x)*c:(yy*ew+x+size)*c]...)
			}
			wins = append(wins, win)
			at = append(at, [2]int{y, x})
		}
	}
	outs, err := st.windows(wins, cfg.Data.EvalBatch)
	if err != nil {
		return nil, err
	}
	sum := make([]float32, eh*ew*k)
	count := make([]float32, eh*ew)
	for i, o := range outs {
		y0, x0 := at[i][0], at[i][1]
		for yy := range size {
			for xx := range size {
				dst := (y0+yy)*ew + x0 + xx
				count[dst]++
				for j := range k {
					sum[dst*k+j] += o[(yy*size+xx)*k+j]
				}
			}
		}
	}
	for p, n := range count {
		for j := range k {
			sum[p*k+j] /= n
		}
	}
	if eh == h && ew == w {
		return sum, nil
	}
	return data.ResizeGrid(sum, eh, ew, k, h, w), nil
}

// windows predicts normalised crops of the step's size in batches of bs
// (the last padded, so one graph serves all).
func (st *step) windows(wins [][]float32, bs int) ([][]float32, error) {
	per := st.size * st.size * st.channels
	var out [][]float32
	for i := 0; i < len(wins); i += bs {
		pix := make([]float32, bs*per)
		n := min(bs, len(wins)-i)
		for j := range n {
			copy(pix[j*per:], wins[i+j])
		}
		res, err := st.predict.Exec(tensors.FromFlatDataAndDimensions(pix, bs, st.size, st.size, st.channels))
		if err != nil {
			return nil, err
		}
		flat := tensors.MustCopyFlatData[float32](res[0])
		m := len(flat) / bs
		for j := range n {
			out = append(out, flat[j*m:(j+1)*m])
		}
	}
	return out, nil
}

// argmax picks each pixel's class from [P, k] logits.
func argmax(logits []float32, k int) []int32 {
	out := make([]int32, len(logits)/k)
	for p := range out {
		row := logits[p*k : (p+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out[p] = int32(best)
	}
	return out
}

// Palette colours class c (ignored pixels are black).
func Palette(c int) color.RGBA {
	base := []color.RGBA{{128, 128, 128, 255}, {128, 0, 0, 255}, {192, 192, 128, 255}, {128, 64, 128, 255}, {60, 40, 222, 255},
		{128, 128, 0, 255}, {192, 128, 128, 255}, {64, 64, 128, 255}, {64, 0, 128, 255}, {64, 64, 0, 255}, {0, 128, 192, 255}}
	if c < len(base) {
		return base[c]
	}
	// Beyond the base colours: a fixed hash of the class id.
	h := uint32(c)*2654435761 + 12345
	return color.RGBA{uint8(h >> 24), uint8(h >> 16), uint8(h >> 8), 255}
}

// writeOverlay writes image | ground truth | prediction side by side.
func writeOverlay(path string, s data.Sample, pred []int32, m *metrics.SegMeter) error {
	h, w := s.Image.H, s.Image.W
	out := image.NewRGBA(image.Rect(0, 0, 3*w, h))
	for y := range h {
		for x := range w {
			p := (y*w + x) * s.Image.C
			r, g, b := s.Image.Pix[p], s.Image.Pix[p], s.Image.Pix[p]
			if s.Image.C >= 3 {
				g, b = s.Image.Pix[p+1], s.Image.Pix[p+2]
			}
			out.SetRGBA(x, y, color.RGBA{r, g, b, 255})
			gt := color.RGBA{0, 0, 0, 255}
			if c := m.Label(s.LabelMap[y*w+x]); c != metrics.SegIgnore && c < m.NumClasses() {
				gt = Palette(c)
			}
			out.SetRGBA(w+x, y, gt)
			out.SetRGBA(2*w+x, y, Palette(int(pred[y*w+x])))
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
