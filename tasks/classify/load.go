package classify

import (
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/data"
)

// Trained is a classifier loaded from a run of the classification task, for
// use as a fixed classifier (e.g. by the codebook probes).
type Trained struct {
	Net        *Network
	Store      *model.Store
	ImageSize  int
	NumClasses int
	// Normalize is the normalisation preset the classifier was trained with.
	Normalize  string
	Checkpoint string
	exec       *model.Exec
}

// LoadTrained loads the network of a classification run: ref is a
// checkpoint file, a run directory or runs/<name> (see ckpt.Resolve); the
// architecture comes from the run's config.yaml.
func LoadTrained(ref string) (*Trained, error) {
	r, err := ckpt.OpenRun(ref)
	if err != nil {
		return nil, err
	}
	spec, err := ckpt.Spec[core.Task](r, "task")
	if err != nil {
		return nil, err
	}
	cfg, ok := spec.Config.(*Config)
	if !ok {
		return nil, fmt.Errorf("run %s: task %q is not a classification run", ref, spec.Type)
	}
	backbone, err := cfg.Backbone.Build()
	if err != nil {
		return nil, fmt.Errorf("run %s: task.backbone: %w", ref, err)
	}
	ck, err := r.Weights()
	if err != nil {
		return nil, err
	}
	head, ok := ck.Variables["/head/weight"]
	if !ok || head.Shape().Rank() != 2 {
		return nil, fmt.Errorf("checkpoint %s: no /head/weight [dim, classes]", r.Checkpoint)
	}
	store := model.NewStore()
	if err := ck.Restore(store); err != nil {
		return nil, err
	}
	net := &Network{Backbone: backbone, NumClasses: head.Shape().Dimensions[1], Pool: cfg.Pool,
		Frozen: cfg.Mode == ModeLinearProbe, ProbeLayer: cfg.ProbeLayer}
	return &Trained{Net: net, Store: store, ImageSize: cfg.Data.Augment.Size, NumClasses: net.NumClasses,
		Normalize: cfg.Data.Augment.Normalize, Checkpoint: r.Checkpoint}, nil
}

// Logits classifies n images (HWC float32, n x size x size x ch, normalised
// with the preset inputNorm) and returns n x NumClasses logits.
func (t *Trained) Logits(backend compute.Backend, pix []float32, n, ch int, inputNorm string) ([]float32, error) {
	from, err := data.NewNormalizer(inputNorm)
	if err != nil {
		return nil, err
	}
	to, err := data.NewNormalizer(t.Normalize)
	if err != nil {
		return nil, err
	}
	conv := make([]float32, len(pix))
	for i, v := range pix {
		c := i % ch
		fm, fs, tm, ts := channelStats(from, c, ch), channelStd(from, c, ch), channelStats(to, c, ch), channelStd(to, c, ch)
		conv[i] = (v*fs + fm - tm) / ts
	}
	if t.exec == nil {
		t.exec, err = model.NewExec(backend, t.Store, func(scope *model.Scope, images *Node) *Node {
			return t.Net.Logits(scope, images, false)
		})
		if err != nil {
			return nil, err
		}
	}
	out, err := t.exec.Exec(tensors.FromFlatDataAndDimensions(conv, n, t.ImageSize, t.ImageSize, ch))
	if err != nil {
		return nil, fmt.Errorf("classifying: %w", err)
	}
	return tensors.MustCopyFlatData[float32](out[0]), nil
}

// channelStats and channelStd give a normaliser's mean and std for channel c
// of ch channels (one channel uses the mean of the three, as Normalizer.Apply).
func channelStats(n data.Normalizer, c, ch int) float32 {
	if ch == 1 {
		return (n.Mean[0] + n.Mean[1] + n.Mean[2]) / 3
	}
	return n.Mean[min(c, 2)]
}

func channelStd(n data.Normalizer, c, ch int) float32 {
	if ch == 1 {
		return (n.Std[0] + n.Std[1] + n.Std[2]) / 3
	}
	return n.Std[min(c, 2)]
}
