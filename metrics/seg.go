// Package metrics holds evaluation metrics computed as the standard tools
// compute them, so that numbers reported by peco can be compared with the
// published ones.
//
// Semantic segmentation (SegMeter) follows mmsegmentation's IoUMetric
// (mmseg/evaluation/metrics/iou_metric.py: intersect_and_union and
// total_area_to_metrics): per-class areas are summed over the whole dataset
// and the ratios are taken once, at the end.
//
// COCO detection and instance segmentation AP/AR (EvaluateCOCO) follow
// pycocotools (github.com/cocodataset/cocoapi, PythonAPI/pycocotools:
// coco.py loadRes, cocoeval.py evaluate/accumulate/summarize, and
// common/maskApi.c for box and mask IoU, polygon rasterisation and
// toBbox), step for step, ties and thresholds included.
package metrics

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// SegIgnore is the label value that is not evaluated (mmseg's default
// ignore_index). With reduce-zero-label the stored label 0 becomes SegIgnore.
const SegIgnore = 255

// SegMeter accumulates the areas of semantic segmentation over a dataset.
//
// For each image and each class c it counts, over the pixels whose label is
// not ignored, the pixels predicted c (PredArea), labelled c (LabelArea) and
// both (Intersect); Result turns the dataset totals into IoU and accuracy.
// A SegMeter is not safe for concurrent use: give each goroutine its own and
// merge them with AddMeter.
type SegMeter struct {
	numClasses      int
	reduceZeroLabel bool
	images          int
	intersect       []int64
	predArea        []int64
	labelArea       []int64
}

// NewSegMeter returns an empty meter for classes 0..numClasses-1. With
// reduceZeroLabel (ADE20k's convention) the stored label 0 ("other") is
// ignored and every other stored label v is class v-1; without it labels are
// class ids. Either way the label SegIgnore (255) is ignored. It panics if
// numClasses < 1.
func NewSegMeter(numClasses int, reduceZeroLabel bool) *SegMeter {
	if numClasses < 1 {
		panic(fmt.Sprintf("metrics.NewSegMeter: numClasses %d < 1", numClasses))
	}
	return &SegMeter{
		numClasses:      numClasses,
		reduceZeroLabel: reduceZeroLabel,
		intersect:       make([]int64, numClasses),
		predArea:        make([]int64, numClasses),
		labelArea:       make([]int64, numClasses),
	}
}

// NumClasses returns the number of classes the meter was made for.
func (m *SegMeter) NumClasses() int { return m.numClasses }

// ReduceZeroLabel reports whether the meter shifts labels (0 ignored,
// v -> v-1).
func (m *SegMeter) ReduceZeroLabel() bool { return m.reduceZeroLabel }

// Images returns the number of images added (merged meters included).
func (m *SegMeter) Images() int { return m.images }

// Label returns the class id the stored label v stands for, or SegIgnore if
// the pixel is not evaluated. The result may be >= NumClasses when v is out
// of range; such a pixel is evaluated (its prediction counts in PredArea) but
// its label counts in no class, as in mmseg.
func (m *SegMeter) Label(v uint8) int {
	if m.reduceZeroLabel {
		// mmseg: 0 -> 255, then v -> v-1, then 254 -> 255; so the stored 0
		// and 255 are both ignored.
		if v == 0 || v == SegIgnore {
			return SegIgnore
		}
		return int(v) - 1
	}
	return int(v)
}

// Add adds one image: pred holds class ids 0..K-1 (any other value counts as
// a wrong prediction of no class), gt the label map as stored (with
// reduceZeroLabel: 0 ignored, v -> v-1; without: 255 ignored), both in the
// same pixel order. It fails, adding nothing, if len(pred) != len(gt).
func (m *SegMeter) Add(pred []int32, gt []uint8) error {
	if len(pred) != len(gt) {
		return fmt.Errorf("metrics: prediction has %d pixels but the label map has %d", len(pred), len(gt))
	}
	k := int64(m.numClasses)
	for i, v := range gt {
		l := m.Label(v)
		if l == SegIgnore {
			continue
		}
		// Like torch.histc(bins=K, min=0, max=K-1) on integer values:
		// values outside 0..K-1 fall in no bin.
		p := int64(pred[i])
		pIn := p >= 0 && p < k
		if pIn {
			m.predArea[p]++
		}
		if int64(l) < k {
			m.labelArea[l]++
			if pIn && p == int64(l) {
				m.intersect[p]++
			}
		}
	}
	m.images++
	return nil
}

// AddMeter adds o's areas and image count to m (to merge meters that
// evaluated parts of a dataset in parallel). Both must have the same number
// of classes and the same reduceZeroLabel setting.
func (m *SegMeter) AddMeter(o *SegMeter) error {
	if o.numClasses != m.numClasses {
		return fmt.Errorf("metrics: merging a meter of %d classes into one of %d", o.numClasses, m.numClasses)
	}
	if o.reduceZeroLabel != m.reduceZeroLabel {
		return fmt.Errorf("metrics: merging meters with different reduceZeroLabel (%v into %v)", o.reduceZeroLabel, m.reduceZeroLabel)
	}
	for c := range m.intersect {
		m.intersect[c] += o.intersect[c]
		m.predArea[c] += o.predArea[c]
		m.labelArea[c] += o.labelArea[c]
	}
	m.images += o.images
	return nil
}

// SegResult holds the metrics of a SegMeter, as fractions (not percentages).
type SegResult struct {
	// IoU is Intersect/Union per class, NaN where Union is 0 (the class is
	// neither labelled nor predicted).
	IoU []float64
	// Acc is Intersect/LabelArea per class (recall), NaN where LabelArea is 0.
	Acc []float64
	// Dice is 2*Intersect/(PredArea+LabelArea) per class (mmseg's mDice
	// metric), NaN where the denominator is 0.
	Dice []float64
	// MIoU, MAcc and MDice are the means of IoU, Acc and Dice over the
	// classes where they are not NaN (numpy's nanmean); NaN if all are.
	MIoU, MAcc, MDice float64
	// AAcc is the pixel accuracy: sum(Intersect)/sum(LabelArea), NaN if no
	// pixel was evaluated.
	AAcc float64
	// Intersect, Union, PredArea and LabelArea are the dataset's per-class
	// pixel counts; Union = PredArea + LabelArea - Intersect.
	Intersect, Union, PredArea, LabelArea []int64
	// NumClasses is the number of classes; Images the number of images.
	NumClasses, Images int
}

// Result computes the metrics of the areas accumulated so far.
func (m *SegMeter) Result() SegResult {
	k := m.numClasses
	r := SegResult{
		IoU:        make([]float64, k),
		Acc:        make([]float64, k),
		Dice:       make([]float64, k),
		Intersect:  append([]int64(nil), m.intersect...),
		Union:      make([]int64, k),
		PredArea:   append([]int64(nil), m.predArea...),
		LabelArea:  append([]int64(nil), m.labelArea...),
		NumClasses: k,
		Images:     m.images,
	}
	var sumI, sumL int64
	for c := 0; c < k; c++ {
		i, p, l := r.Intersect[c], r.PredArea[c], r.LabelArea[c]
		r.Union[c] = p + l - i
		r.IoU[c] = ratio(i, r.Union[c])
		r.Acc[c] = ratio(i, l)
		r.Dice[c] = ratio(2*i, p+l)
		sumI += i
		sumL += l
	}
	r.AAcc = ratio(sumI, sumL)
	r.MIoU, r.MAcc, r.MDice = nanMean(r.IoU), nanMean(r.Acc), nanMean(r.Dice)
	return r
}

// ratio is a/b, NaN when b is 0 (as 0/0 is in numpy and torch).
func ratio(a, b int64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// nanMean is numpy's nanmean: the mean of the non-NaN values, NaN if none.
func nanMean(xs []float64) float64 {
	var sum float64
	n := 0
	for _, x := range xs {
		if !math.IsNaN(x) {
			sum += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// Percent formats a fraction as mmseg reports it: x*100 rounded to 2
// decimals (half to even, like np.round), "nan" for NaN.
func Percent(x float64) string {
	if math.IsNaN(x) {
		return "nan"
	}
	return strconv.FormatFloat(math.RoundToEven(x*100*100)/100, 'f', 2, 64)
}

// Table returns the per-class results as mmseg logs them ("per class
// results:" and a table of Class, IoU and Acc in percent, NaN shown as
// "nan"), followed by the summary line
// "mIoU xx.xx  mAcc xx.xx  aAcc xx.xx (N images)". Class c is named
// classNames[c], or its id where classNames is too short.
func (r SegResult) Table(classNames []string) string {
	rows := [][]string{{"Class", "IoU", "Acc"}}
	for c := 0; c < r.NumClasses; c++ {
		name := strconv.Itoa(c)
		if c < len(classNames) {
			name = classNames[c]
		}
		rows = append(rows, []string{name, Percent(r.IoU[c]), Percent(r.Acc[c])})
	}
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for j, cell := range row {
			widths[j] = max(widths[j], len(cell))
		}
	}
	var b strings.Builder
	rule := func() {
		for _, w := range widths {
			b.WriteString("+" + strings.Repeat("-", w+2))
		}
		b.WriteString("+\n")
	}
	b.WriteString("per class results:\n")
	rule()
	for i, row := range rows {
		for j, cell := range row {
			b.WriteString("| " + center(cell, widths[j]) + " ")
		}
		b.WriteString("|\n")
		if i == 0 {
			rule()
		}
	}
	rule()
	fmt.Fprintf(&b, "mIoU %s  mAcc %s  aAcc %s (%d images)\n", Percent(r.MIoU), Percent(r.MAcc), Percent(r.AAcc), r.Images)
	return b.String()
}

// center pads s to width w as PrettyTable centers a cell: with an odd
// excess, the extra space goes right of odd-length text, left of even-length
// text.
func center(s string, w int) string {
	excess := w - len(s)
	if excess <= 0 {
		return s
	}
	left, right := excess/2, excess/2
	if excess%2 == 1 {
		if len(s)%2 == 1 {
			right++
		} else {
			left++
		}
	}
	return strings.Repeat(" ", left) + s + strings.Repeat(" ", right)
}
