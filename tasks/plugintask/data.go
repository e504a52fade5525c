package plugintask

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/peco-dev/peco/data"
	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
)

// samples fetches the samples of split at idx through the plugin's
// Samples call (epoch is passed on for the plugin's own augmentation; at is
// the optimizer step, for messages), assembling its chunks by offset and
// checking each against the head: images float32 [n, H, W, C] in [0, 1],
// labels as the head type says.
func (t *Task) samples(ctx context.Context, h Head, split string, idx []int, epoch int, at int64) (batch, error) {
	n := len(idx)
	req := &pb.SamplesRequest{Split: split, Indices: make([]int64, n), Epoch: int64(epoch)}
	for i, v := range idx {
		req.Indices[i] = int64(v)
	}
	var b batch
	err := t.proc.Call(ctx, "Samples", at, func(ctx context.Context, c *sdk.Clients) error {
		// A repeated call (after a restart) starts afresh.
		b = newBatch(h, n)
		stream, err := c.Task.Samples(ctx, req)
		if err != nil {
			return err
		}
		got := make([]bool, n)
		filled := 0
		for {
			chunk, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			rows, err := b.put(h, chunk, got)
			if err != nil {
				return fmt.Errorf("split %q, chunk at offset %d: %w", split, chunk.GetOffset(), err)
			}
			filled += rows
		}
		if filled != n {
			return fmt.Errorf("split %q: sent %d of the %d samples asked for", split, filled, n)
		}
		return nil
	})
	return b, err
}

func newBatch(h Head, n int) batch {
	b := batch{n: n, images: make([]float32, n*prod(h.imageDims()))}
	if h.labelDType() == sdk.Float32 {
		b.labelsF = make([]float32, n*prod(h.labelDims()))
	} else {
		b.labelsI = make([]int32, n*prod(h.labelDims()))
	}
	return b
}

// put checks one chunk of samples and copies it into the batch at its
// offset; got marks the rows filled so far. It returns the chunk's rows.
func (b *batch) put(h Head, chunk *pb.SampleChunk, got []bool) (int, error) {
	images, err := sdk.FromProto(chunk.Images)
	if err != nil {
		return 0, fmt.Errorf("images: %w", err)
	}
	labels, err := sdk.FromProto(chunk.Labels)
	if err != nil {
		return 0, fmt.Errorf("labels: %w", err)
	}
	off := int(chunk.Offset)
	if chunk.Offset < 0 || off >= b.n {
		return 0, fmt.Errorf("offset out of range for %d samples", b.n)
	}
	if len(images.Shape) == 0 || images.Shape[0] == 0 {
		return 0, fmt.Errorf("images %s hold no samples", images)
	}
	rows := images.Shape[0]
	if off+rows > b.n {
		return 0, fmt.Errorf("%d samples run past the %d asked for", rows, b.n)
	}
	if want := append([]int{rows}, h.imageDims()...); images.DType != sdk.Float32 || !slices.Equal(images.Shape, want) {
		return 0, fmt.Errorf("images are %s, want float32%v (the height, width and channels of Describe)", images, want)
	}
	if want := append([]int{rows}, h.labelDims()...); labels.DType != h.labelDType() || !slices.Equal(labels.Shape, want) {
		return 0, fmt.Errorf("labels are %s, want %s%v (%s)", labels, sdk.DTypeName(h.labelDType()), want, labelDoc(h))
	}
	for i := off; i < off+rows; i++ {
		if got[i] {
			return 0, fmt.Errorf("sample %d was already sent by an earlier chunk", i)
		}
		got[i] = true
	}
	for i, v := range images.F32 {
		if !(v >= 0 && v <= 1) { // NaN fails too
			return 0, fmt.Errorf("image of sample %d holds %v at flat index %d, want values in [0, 1]", off+i/prod(h.imageDims()), v, i%prod(h.imageDims()))
		}
	}
	per := max(1, prod(h.labelDims()))
	switch h.Type {
	case pb.HeadType_HEAD_TYPE_MULTILABEL:
		for i, v := range labels.F32 {
			if !(v >= 0 && v <= 1) {
				return 0, fmt.Errorf("label %d of sample %d is %v, want 0 or 1", i%per, off+i/per, v)
			}
		}
		copy(b.labelsF[off*per:], labels.F32)
	default:
		lo := int32(0)
		if h.Type == pb.HeadType_HEAD_TYPE_DENSE {
			lo = -1
		}
		for i, v := range labels.I32 {
			if v < lo || int(v) >= h.Classes {
				return 0, fmt.Errorf("label %d of sample %d is %d, want a class in [%d, %d)", i%per, off+i/per, v, lo, h.Classes)
			}
		}
		copy(b.labelsI[off*per:], labels.I32)
	}
	copy(b.images[off*prod(h.imageDims()):], images.F32)
	return rows, nil
}

// labelDoc says what the labels of a head are.
func labelDoc(h Head) string {
	switch h.Type {
	case pb.HeadType_HEAD_TYPE_MULTILABEL:
		return "multilabel head: one 0/1 per class"
	case pb.HeadType_HEAD_TYPE_DENSE:
		return fmt.Sprintf("dense head: one class id per patch of the backbone's %dx%d grid, -1 ignored", h.GridH, h.GridW)
	}
	return "classification head: one class id per sample"
}

// evalChunkBytes bounds the prediction bytes of one Evaluate message.
const evalChunkBytes = 2 << 20

// evaluate predicts the eval split's samples at idx in batches of
// eval_batch_size (the last one padded, so one graph serves all), streams
// the predictions to the plugin's Evaluate and checks its metrics: finite,
// the primary metric among them.
func (t *Task) evaluate(ctx context.Context, s *step, h Head, spec taskSpec, idx []int, norm data.Normalizer, epoch int, at int64) (map[string]float64, error) {
	n := len(idx)
	bs := min(t.cfg.EvalBatchSize, n)
	pper := prod(h.predDims())
	preds := make([]float32, 0, n*pper)
	for off := 0; off < n; off += bs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(off+bs, n)
		b, err := t.samples(ctx, h, spec.EvalSplit, idx[off:end], epoch, at)
		if err != nil {
			return nil, err
		}
		normalize(b.images, h.Channels, norm)
		pix := b.images
		if b.n < bs {
			pix = append(pix, make([]float32, (bs-b.n)*prod(h.imageDims()))...)
		}
		logits, err := s.predict(pix, bs)
		if err != nil {
			return nil, err
		}
		preds = append(preds, logits[:b.n*pper]...)
	}
	rows := max(1, evalChunkBytes/(pper*4+8))
	var metrics *pb.Metrics
	err := t.proc.Call(ctx, "Evaluate", at, func(ctx context.Context, c *sdk.Clients) error {
		stream, err := c.Task.Evaluate(ctx)
		if err != nil {
			return err
		}
		for off := 0; off < n; off += rows {
			end := min(off+rows, n)
			p, err := sdk.NewFloat32(preds[off*pper:end*pper], append([]int{end - off}, h.predDims()...)...).ToProto("predictions")
			if err != nil {
				return err
			}
			chunk := &pb.PredictionChunk{Indices: make([]int64, end-off), Predictions: p}
			for i, v := range idx[off:end] {
				chunk.Indices[i] = int64(v)
			}
			if off == 0 {
				chunk.Split = spec.EvalSplit
			}
			if err := stream.Send(chunk); err != nil {
				if errors.Is(err, io.EOF) {
					// The plugin ended the stream: its status says why.
					_, err = stream.CloseAndRecv()
				}
				return err
			}
		}
		metrics, err = stream.CloseAndRecv()
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for k, v := range metrics.GetValues() {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, t.proc.Errorf("Evaluate", at, "returned metric %q = %v, want a finite number", k, v)
		}
		out[k] = v
	}
	if _, ok := out[spec.PrimaryMetric]; !ok {
		return nil, t.proc.Errorf("Evaluate", at, "returned no %q, its primary_metric (it returned: %s)", spec.PrimaryMetric, strings.Join(sortedKeys(out), ", "))
	}
	return out, nil
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		return []string{"nothing"}
	}
	return keys
}
