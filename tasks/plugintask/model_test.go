package plugintask

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/backbones/vit"
	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/run/runtest"
	"github.com/peco-dev/peco/optim"
	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
	"github.com/peco-dev/peco/registry"
)

func tinyViT(t *testing.T, size, patch, ch int) core.Backbone {
	t.Helper()
	c := vit.DefaultConfig()
	c.Preset, c.ImageSize, c.PatchSize, c.InChannels, c.Dim, c.Depth, c.Heads = "", size, patch, ch, 32, 1, 2
	b, err := vit.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func adamw(t *testing.T, lr float64) optim.Optimizer {
	t.Helper()
	c := optim.DefaultAdamW()
	c.LR = lr
	c.Schedule = registry.Spec[optim.Schedule]{Type: "constant", Config: registry.MustDefaults(optim.Schedules, "constant")}
	o, err := registry.Spec[optim.Optimizer]{Type: "adamw", Config: &c}.Build()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// learnable makes a batch whose labels are a function of the images: a
// bright block at one of the patches per class (classification), per
// label set (multi-label), or per patch (dense).
func learnable(h Head, n int, r *rand.Rand) batch {
	b := newBatch(h, n)
	per := h.Height * h.Width * h.Channels
	ph, pw := h.Height/h.GridH, h.Width/h.GridW
	fill := func(img []float32, gy, gx int, v float32) {
		for y := gy * ph; y < (gy+1)*ph; y++ {
			for x := gx * pw; x < (gx+1)*pw; x++ {
				for c := range h.Channels {
					img[(y*h.Width+x)*h.Channels+c] = v
				}
			}
		}
	}
	for i := range n {
		img := b.images[i*per : (i+1)*per]
		for j := range img {
			img[j] = 0.2 * r.Float32()
		}
		switch h.Type {
		case pb.HeadType_HEAD_TYPE_CLASSIFICATION:
			k := r.IntN(h.Classes)
			b.labelsI[i] = int32(k)
			fill(img, k/h.GridW, k%h.GridW, 1)
		case pb.HeadType_HEAD_TYPE_MULTILABEL:
			for k := range h.Classes {
				if r.IntN(2) == 1 {
					b.labelsF[i*h.Classes+k] = 1
					fill(img, k/h.GridW, k%h.GridW, 1)
				}
			}
		case pb.HeadType_HEAD_TYPE_DENSE:
			for gy := range h.GridH {
				for gx := range h.GridW {
					k := r.IntN(h.Classes + 1) // Classes = ignored
					lab := int32(k)
					if k == h.Classes {
						lab = -1
					}
					b.labelsI[(i*h.GridH+gy)*h.GridW+gx] = lab
					fill(img, gy, gx, float32(k)/float32(h.Classes))
				}
			}
		}
	}
	return b
}

// TestHeadsLearn trains each head on a learnable toy problem: the loss
// falls, and predictions have the head's shape.
func TestHeadsLearn(t *testing.T) {
	backend := runtest.Backend(t, "cpu")
	for _, tc := range []struct {
		head    pb.HeadType
		classes int
	}{
		{pb.HeadType_HEAD_TYPE_CLASSIFICATION, 4},
		{pb.HeadType_HEAD_TYPE_MULTILABEL, 4},
		{pb.HeadType_HEAD_TYPE_DENSE, 3},
	} {
		t.Run(headName(tc.head), func(t *testing.T) {
			h := Head{Type: tc.head, Classes: tc.classes, Height: 8, Width: 8, Channels: 1, GridH: 2, GridW: 2}
			store := model.NewStore()
			store.SetParam(model.ParamInitialSeed, int64(1))
			net := &Network{Backbone: tinyViT(t, 8, 4, 1), Head: h, Pool: "mean"}
			s, err := newStep(backend, store, net, adamw(t, 3e-3), 60)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			var losses []float64
			for i := range 60 {
				m, err := s.runTrain(learnable(h, 32, r), i)
				if err != nil {
					t.Fatal(err)
				}
				losses = append(losses, m["loss"])
			}
			first, last := mean(losses[:5]), mean(losses[len(losses)-5:])
			t.Logf("loss %.4f -> %.4f", first, last)
			if !(last < 0.7*first) {
				t.Errorf("loss did not fall: %.4f -> %.4f", first, last)
			}
			b := learnable(h, 3, r)
			logits, err := s.predict(b.images, 3)
			if err != nil {
				t.Fatal(err)
			}
			if want := 3 * prod(h.predDims()); len(logits) != want {
				t.Errorf("%d logits, want %d", len(logits), want)
			}
		})
	}
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// TestLossValues checks the losses on hand-computed cases.
func TestLossValues(t *testing.T) {
	backend := runtest.Backend(t, "cpu")
	// Multi-label: logits 0 give log 2 per label whatever the labels;
	// dense: ignored patches do not count.
	ln2 := math.Log(2)
	cases := []struct {
		name string
		h    Head
		want float64
	}{
		{"multilabel at zero logits", Head{Type: pb.HeadType_HEAD_TYPE_MULTILABEL, Classes: 3}, ln2},
		{"classification at zero logits", Head{Type: pb.HeadType_HEAD_TYPE_CLASSIFICATION, Classes: 4}, math.Log(4)},
		{"dense at zero logits", Head{Type: pb.HeadType_HEAD_TYPE_DENSE, Classes: 5, GridH: 1, GridW: 2}, math.Log(5)},
	}
	for _, c := range cases {
		if got := lossAtZero(t, backend, c.h); math.Abs(got-c.want) > 1e-5 {
			t.Errorf("%s: loss %v, want %v", c.name, got, c.want)
		}
	}
}

// lossAtZero is the head's loss of zero logits for two samples (dense: one
// patch of each ignored).
func lossAtZero(t *testing.T, backend compute.Backend, h Head) float64 {
	t.Helper()
	net := &Network{Head: h}
	logits := tensors.FromFlatDataAndDimensions(make([]float32, 2*prod(h.predDims())), append([]int{2}, h.predDims()...)...)
	var labels *tensors.Tensor
	switch h.Type {
	case pb.HeadType_HEAD_TYPE_MULTILABEL:
		labels = tensors.FromFlatDataAndDimensions([]float32{1, 0, 1, 0, 0, 1}, 2, 3)
	case pb.HeadType_HEAD_TYPE_DENSE:
		labels = tensors.FromFlatDataAndDimensions([]int32{-1, 4, 2, -1}, 2, 1, 2)
	default:
		labels = tensors.FromFlatDataAndDimensions([]int32{3, 0}, 2)
	}
	e, err := model.NewExec(backend, model.NewStore(), func(_ *model.Scope, l, y *Node) *Node { return net.Loss(l, y) })
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Exec(logits, labels)
	if err != nil {
		t.Fatal(err)
	}
	return float64(tensors.ToScalar[float32](out[0]))
}

// TestChunkChecks feeds bad sample chunks to batch.put.
func TestChunkChecks(t *testing.T) {
	h := Head{Type: pb.HeadType_HEAD_TYPE_CLASSIFICATION, Classes: 10, Height: 2, Width: 2, Channels: 1}
	img := func(n int, v float32) *pb.Tensor {
		d := make([]float32, n*4)
		for i := range d {
			d[i] = v
		}
		p, _ := sdk.NewFloat32(d, n, 2, 2, 1).ToProto("images")
		return p
	}
	lab := func(v ...int32) *pb.Tensor { p, _ := sdk.NewInt32(v, len(v)).ToProto("labels"); return p }
	flab := func(v ...float32) *pb.Tensor { p, _ := sdk.NewFloat32(v, len(v)).ToProto("labels"); return p }
	wrongShape, _ := sdk.NewFloat32(make([]float32, 6), 1, 2, 3, 1).ToProto("images")
	for _, tc := range []struct {
		name  string
		chunk *pb.SampleChunk
		want  string
	}{
		{"ok", &pb.SampleChunk{Offset: 0, Images: img(2, 0.5), Labels: lab(1, 2)}, ""},
		{"offset", &pb.SampleChunk{Offset: 3, Images: img(1, 0.5), Labels: lab(1)}, "offset out of range"},
		{"past the end", &pb.SampleChunk{Offset: 1, Images: img(3, 0.5), Labels: lab(1, 2, 3)}, "run past the 3 asked for"},
		{"image shape", &pb.SampleChunk{Images: wrongShape, Labels: lab(1)}, "images are float32[1 2 3 1], want float32[1 2 2 1]"},
		{"label dtype", &pb.SampleChunk{Images: img(1, 0.5), Labels: flab(1)}, "labels are float32[1], want int32[1]"},
		{"label range", &pb.SampleChunk{Images: img(1, 0.5), Labels: lab(10)}, "label 0 of sample 0 is 10, want a class in [0, 10)"},
		{"pixel range", &pb.SampleChunk{Images: img(1, 1.5), Labels: lab(1)}, "holds 1.5 at flat index 0, want values in [0, 1]"},
		{"pixel NaN", &pb.SampleChunk{Images: img(1, float32(math.NaN())), Labels: lab(1)}, "holds NaN"},
	} {
		b := newBatch(h, 3)
		_, err := b.put(h, tc.chunk, make([]bool, 3))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	// Overlapping chunks.
	b := newBatch(h, 3)
	got := make([]bool, 3)
	if _, err := b.put(h, &pb.SampleChunk{Offset: 0, Images: img(2, 0.5), Labels: lab(1, 2)}, got); err != nil {
		t.Fatal(err)
	}
	if _, err := b.put(h, &pb.SampleChunk{Offset: 1, Images: img(1, 0.5), Labels: lab(1)}, got); err == nil || !strings.Contains(err.Error(), "already sent") {
		t.Errorf("overlap: %v", err)
	}
}
