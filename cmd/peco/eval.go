package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/metrics"
)

// newEvalCmd is `peco eval`: scoring saved predictions against ground truth
// with the metrics of package metrics.
func newEvalCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "score saved predictions against ground truth, as the standard tools do",
	}
	cmd.AddCommand(newEvalSegCmd(stdout), newEvalCOCOCmd(stdout))
	return cmd
}

// evalSegOptions are the flags of `peco eval seg`.
type evalSegOptions struct {
	predDir, gtDir  string
	classes         int
	reduceZeroLabel bool
	predOffset      int
	classNames      []string
}

func newEvalSegCmd(stdout io.Writer) *cobra.Command {
	var o evalSegOptions
	cmd := &cobra.Command{
		Use:   "seg --pred DIR --gt DIR --classes N",
		Short: "semantic segmentation: mIoU, mAcc and aAcc of PNG label maps, computed as mmsegmentation does",
		Long: `Seg scores every *.png label map in --gt against the --pred PNG of the same
name (8-bit gray or paletted PNGs; the gray value or palette index is the
label) and prints mmsegmentation's per-class IoU and Acc table and the summary
"mIoU  mAcc  aAcc" in percent.

Ground truth: with --reduce-zero-label (the default, ADE20k's convention) the
stored 0 ("other") is ignored and v is class v-1; without it v is class v.
The value 255 is always ignored. A label of --classes or more (after the
shift) is an error: --classes or --reduce-zero-label is wrong.

Predictions: the stored value v is class v - --pred-offset. The default 1 reads
predictions saved in the ground truth's 1..N convention (as mmseg saves ADE20k
results); use 0 for 0-based class maps. Values outside 0..N-1 count as wrong.

Areas are summed over all images before the ratios are taken, so a class
neither labelled nor predicted anywhere is "nan" and left out of the means.
Predictions without ground truth are ignored (and counted).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return evalSeg(stdout, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.predDir, "pred", "", "folder of predicted label maps (PNG)")
	f.StringVar(&o.gtDir, "gt", "", "folder of ground truth label maps (*.png)")
	f.IntVar(&o.classes, "classes", 0, "number of classes N (150 for ADE20k)")
	f.BoolVar(&o.reduceZeroLabel, "reduce-zero-label", true, "ground truth 0 is ignored and v is class v-1 (ADE20k); false: v is class v")
	f.IntVar(&o.predOffset, "pred-offset", 1, "a prediction value v is class v - offset (1: saved as 1..N like ADE20k ground truth; 0: 0-based)")
	f.StringSliceVar(&o.classNames, "class-names", nil, "comma-separated names of the N classes, for the table (default the class ids)")
	for _, name := range []string{"pred", "gt", "classes"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func evalSeg(w io.Writer, o evalSegOptions) error {
	if o.classes < 1 || o.classes > 255 {
		return fmt.Errorf("eval seg: --classes %d: want 1..255 (8-bit label maps)", o.classes)
	}
	if len(o.classNames) > 0 && len(o.classNames) != o.classes {
		return fmt.Errorf("eval seg: --class-names has %d names but --classes is %d", len(o.classNames), o.classes)
	}
	gts, err := pngNames(o.gtDir)
	if err != nil {
		return fmt.Errorf("eval seg: --gt: %w", err)
	}
	if len(gts) == 0 {
		return fmt.Errorf("eval seg: no *.png label maps in --gt %s", o.gtDir)
	}
	preds, err := pngNames(o.predDir)
	if err != nil {
		return fmt.Errorf("eval seg: --pred: %w", err)
	}
	extra := len(preds)
	for name := range gts {
		if preds[name] {
			extra--
		}
	}

	names := make([]string, 0, len(gts))
	for name := range gts {
		names = append(names, name)
	}
	sort.Strings(names)
	m := metrics.NewSegMeter(o.classes, o.reduceZeroLabel)
	var outOfRange int64
	var pred []int32
	for _, name := range names {
		gtPath, predPath := filepath.Join(o.gtDir, name), filepath.Join(o.predDir, name)
		if !preds[name] {
			return fmt.Errorf("eval seg: no prediction %s for ground truth %s", predPath, gtPath)
		}
		gt, err := readLabelMap(gtPath)
		if err != nil {
			return fmt.Errorf("eval seg: %w", err)
		}
		p, err := readLabelMap(predPath)
		if err != nil {
			return fmt.Errorf("eval seg: %w", err)
		}
		if p.W != gt.W || p.H != gt.H {
			return fmt.Errorf("eval seg: prediction %s is %dx%d but ground truth %s is %dx%d (width x height)", predPath, p.W, p.H, gtPath, gt.W, gt.H)
		}
		for k, v := range gt.Pix {
			if c := m.Label(v); c != metrics.SegIgnore && c >= o.classes {
				return fmt.Errorf("eval seg: ground truth %s: label %d at row %d, column %d is class %d, not in 0..%d (check --classes and --reduce-zero-label)",
					gtPath, v, k/gt.W, k%gt.W, c, o.classes-1)
			}
		}
		pred = pred[:0]
		for _, v := range p.Pix {
			c := int32(v) - int32(o.predOffset)
			if c < 0 || c >= int32(o.classes) {
				outOfRange++
			}
			pred = append(pred, c)
		}
		if err := m.Add(pred, gt.Pix); err != nil {
			return fmt.Errorf("eval seg: %s: %w", predPath, err)
		}
	}
	fmt.Fprint(w, m.Result().Table(o.classNames))
	if outOfRange > 0 {
		fmt.Fprintf(w, "%d predicted pixels are outside classes 0..%d (value - pred-offset %d); they count as wrong\n", outOfRange, o.classes-1, o.predOffset)
	}
	if extra > 0 {
		fmt.Fprintf(w, "%d predictions without ground truth ignored\n", extra)
	}
	return nil
}

// pngNames returns the names of the *.png files in dir (not in its
// subfolders).
func pngNames(dir string) (map[string]bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".png") {
			names[e.Name()] = true
		}
	}
	return names, nil
}

// readLabelMap reads an 8-bit gray or paletted PNG label map (1 channel).
func readLabelMap(path string) (*data.Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return data.DecodeLabelMap(path, b)
}

// evalCOCOOptions are the flags of `peco eval coco`.
type evalCOCOOptions struct {
	gt, dt, iouType, out string
}

func newEvalCOCOCmd(stdout io.Writer) *cobra.Command {
	var o evalCOCOOptions
	cmd := &cobra.Command{
		Use:   "coco --gt ANNOTATIONS.json --dt RESULTS.json [--iou-type bbox|segm] [--out STATS.json]",
		Short: "detection / instance segmentation: COCO box or mask AP and AR of a results file, computed as pycocotools does",
		Long: `Coco scores a COCO results file (--dt: a JSON list of {"image_id",
"category_id", "bbox" [x, y, w, h] and/or "segmentation" (compressed RLE),
"score"}) against a COCO instances file (--gt, e.g. instances_val2017.json;
the path may continue into a .tar/.tar.gz archive) and prints the 12 lines of
pycocotools' COCOeval.summarize: AP@[.50:.95], AP50, AP75, AP small, medium,
large, AR with 1, 10, 100 detections per image, AR small, medium, large.

Every ground truth image and category is evaluated; a number with no ground
truth to average is -1. Detections on images the ground truth lacks are an
error (pycocotools asserts); detections in categories it lacks are not
scored. --iou-type segm compares masks and needs a segmentation in every
detection; as in pycocotools, when the first detection has a bbox every
detection's area (for small / medium / large) is its box's.

--out writes the 12 numbers as JSON (keys AP AP50 AP75 APs APm APl AR1 AR10
AR100 ARs ARm ARl).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return evalCOCO(stdout, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.gt, "gt", "", "COCO instances JSON file (ground truth)")
	f.StringVar(&o.dt, "dt", "", "COCO results JSON file (detections)")
	f.StringVar(&o.iouType, "iou-type", "bbox", "bbox (box IoU) or segm (mask IoU)")
	f.StringVar(&o.out, "out", "", "write the stats as JSON to this file")
	for _, name := range []string{"gt", "dt"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func evalCOCO(w io.Writer, o evalCOCOOptions) error {
	if o.iouType != "bbox" && o.iouType != "segm" {
		return fmt.Errorf("eval coco: --iou-type %q: want bbox or segm", o.iouType)
	}
	gt, err := metrics.ReadCOCOGroundTruth(o.gt)
	if err != nil {
		return fmt.Errorf("eval coco: %w", err)
	}
	dets, err := metrics.ReadCOCODetections(o.dt)
	if err != nil {
		return fmt.Errorf("eval coco: %w", err)
	}
	st, err := metrics.EvaluateCOCO(gt, dets, metrics.COCOParams{IoUType: o.iouType})
	if err != nil {
		return fmt.Errorf("%s against %s: %w", o.dt, o.gt, err) // err begins "coco eval:"
	}
	fmt.Fprintf(w, "%s: %d images, %d detections", o.iouType, st.Images, st.Detections)
	if st.Unscored > 0 {
		fmt.Fprintf(w, " (%d more in categories the ground truth lacks, not scored)", st.Unscored)
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, st)
	if o.out != "" {
		b, err := json.MarshalIndent(st.Map(), "", "  ")
		if err != nil {
			return fmt.Errorf("eval coco: %w", err)
		}
		if err := ckpt.WriteFileAtomic(o.out, append(b, '\n')); err != nil {
			return fmt.Errorf("eval coco: --out: %w", err)
		}
	}
	return nil
}
