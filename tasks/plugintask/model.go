package plugintask

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/optim"
	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
	"github.com/peco-dev/peco/tasks/classify"
)

// Head is the built-in head a plugin asks for, with the geometry of its
// images and, for a backbone with a patch grid, the grid.
type Head struct {
	Type                    pb.HeadType
	Classes                 int
	Height, Width, Channels int
	// GridH, GridW are the backbone's patch grid (0 when it has none).
	GridH, GridW int
}

// imageDims are the dimensions of one image.
func (h Head) imageDims() []int { return []int{h.Height, h.Width, h.Channels} }

// labelDims are the dimensions of one sample's labels: none
// (classification: one class id), [K] (multi-label: one 0/1 per class) or
// [GH, GW] (dense: one class id per patch, -1 ignored).
func (h Head) labelDims() []int {
	switch h.Type {
	case pb.HeadType_HEAD_TYPE_MULTILABEL:
		return []int{h.Classes}
	case pb.HeadType_HEAD_TYPE_DENSE:
		return []int{h.GridH, h.GridW}
	}
	return nil
}

// labelDType is the dtype of the labels: float32 for multi-label, int32
// otherwise.
func (h Head) labelDType() sdk.DType {
	if h.Type == pb.HeadType_HEAD_TYPE_MULTILABEL {
		return sdk.Float32
	}
	return sdk.Int32
}

// predDims are the dimensions of one sample's predictions (logits): [K] or
// [GH, GW, K].
func (h Head) predDims() []int {
	if h.Type == pb.HeadType_HEAD_TYPE_DENSE {
		return []int{h.GridH, h.GridW, h.Classes}
	}
	return []int{h.Classes}
}

func prod(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// Network is a backbone with the head a plugin asks for: a linear layer on
// the pooled features (classification, multi-label; the classification
// task's head) or on each patch token (dense).
type Network struct {
	Backbone core.Backbone
	Head     Head
	// Pool is the pooling of the pooled heads: mean or cls.
	Pool string
}

// Logits builds images [B, H, W, C] -> logits [B, K] (pooled heads) or
// [B, GH, GW, K] (dense). The backbone lives under scope "backbone", the
// head under "head".
func (n *Network) Logits(scope *model.Scope, images *Node, training bool) *Node {
	if n.Head.Type != pb.HeadType_HEAD_TYPE_DENSE {
		c := &classify.Network{Backbone: n.Backbone, NumClasses: n.Head.Classes, Pool: n.Pool}
		return c.Logits(scope, images, training)
	}
	f := n.Backbone.Forward(scope.In("backbone"), images, core.ForwardOptions{Training: training})
	x := f.Tokens
	if f.HasCLS {
		x = Slice(x, AxisRange(), AxisRange(1), AxisRange())
	}
	b, t, d := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2)
	gh, gw, k := n.Head.GridH, n.Head.GridW, n.Head.Classes
	if t != gh*gw {
		exceptions.Panicf("plugintask: the backbone gave %d patch tokens, its patch grid is %dx%d", t, gh, gw)
	}
	hs := scope.In("head")
	x = classify.LayerNorm(hs.In("fc_norm"), Reshape(x, b*t, d))
	g := images.Graph()
	w := hs.WithInitializer(initializer.RandomNormalFn(hs, 0.02)).VariableWithShape("weight", shapes.Make(dtypes.Float32, d, k)).NodeValue(g)
	bias := hs.WithInitializer(initializer.Zero).VariableWithShape("bias", shapes.Make(dtypes.Float32, k)).NodeValue(g)
	return Reshape(Add(MatMul(x, w), ExpandLeftToRank(bias, 2)), b, gh, gw, k)
}

// Loss is the head's loss, averaged: softmax cross-entropy of labels int32
// [B] (classification), sigmoid binary cross-entropy of labels float32
// [B, K] (multi-label, averaged over the B*K labels), or per-patch softmax
// cross-entropy of labels int32 [B, GH, GW], averaged over the patches
// whose label is not -1 (dense).
func (n *Network) Loss(logits, labels *Node) *Node {
	k := n.Head.Classes
	switch n.Head.Type {
	case pb.HeadType_HEAD_TYPE_MULTILABEL:
		y := ConvertDType(labels, logits.DType())
		// max(x, 0) - x*y + log(1 + exp(-|x|)): stable for any x.
		per := Add(Sub(Max(logits, ZerosLike(logits)), Mul(logits, y)), Log1p(Exp(Neg(Abs(logits)))))
		return ReduceAllMean(per)
	case pb.HeadType_HEAD_TYPE_DENSE:
		flat := Reshape(logits, -1, k)
		lab := Reshape(labels, -1)
		valid := ConvertDType(GreaterOrEqual(lab, ZerosLike(lab)), logits.DType())
		safe := Max(lab, ZerosLike(lab))
		per := Neg(ReduceSum(Mul(OneHot(safe, k, logits.DType()), LogSoftmax(flat, -1)), -1))
		return Div(ReduceAllSum(Mul(per, valid)), Max(ReduceAllSum(valid), ScalarOne(logits.Graph(), logits.DType())))
	}
	per := Neg(ReduceSum(Mul(OneHot(labels, k, logits.DType()), LogSoftmax(logits, -1)), -1))
	return ReduceAllMean(per)
}

// batch is a batch of samples of a split: n images (HWC float32, laid out
// one after the other) and their labels (int32 or float32, as the head
// says).
type batch struct {
	n       int
	images  []float32
	labelsI []int32
	labelsF []float32
}

// step is the training and prediction step of a network on its store.
type step struct {
	net         *Network
	store       *model.Store
	opt         optim.Optimizer
	totalSteps  int
	train, eval *model.Exec
}

// newStep builds the training graph (the head's loss, the optimizer's
// update) and the prediction graph of net on store; totalSteps is the lr
// schedule's length.
func newStep(backend compute.Backend, store *model.Store, net *Network, opt optim.Optimizer, totalSteps int) (*step, error) {
	s := &step{net: net, store: store, opt: opt, totalSteps: totalSteps}
	adamw := opt.New()
	var err error
	if s.train, err = model.NewExec(backend, store, func(scope *model.Scope, in []*Node) []*Node {
		loss := net.Loss(net.Logits(scope, in[0], true), in[1])
		adamw.UpdateGraph(scope, loss.Graph(), loss)
		return []*Node{loss}
	}); err != nil {
		return nil, fmt.Errorf("building the training graph: %w", err)
	}
	if s.eval, err = model.NewExec(backend, store, func(scope *model.Scope, images *Node) *Node {
		return net.Logits(scope, images, false)
	}); err != nil {
		return nil, fmt.Errorf("building the evaluation graph: %w", err)
	}
	return s, nil
}

// images makes the images tensor of n images.
func (s *step) images(pix []float32, n int) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(pix, append([]int{n}, s.net.Head.imageDims()...)...)
}

// runTrain trains on one batch at optimizer step `at` (the learning rate
// follows the schedule) and returns loss, lr and grad_norm.
func (s *step) runTrain(b batch, at int) (map[string]float64, error) {
	h := s.net.Head
	dims := append([]int{b.n}, h.labelDims()...)
	var labels *tensors.Tensor
	if h.labelDType() == sdk.Float32 {
		labels = tensors.FromFlatDataAndDimensions(b.labelsF, dims...)
	} else {
		labels = tensors.FromFlatDataAndDimensions(b.labelsI, dims...)
	}
	lr := s.opt.BaseLR() * s.opt.Schedule().Factor(at, s.totalSteps)
	if err := optim.SetLR(s.store, lr); err != nil {
		return nil, err
	}
	out, err := s.train.Exec(s.images(b.images, b.n), labels)
	if err != nil {
		return nil, err
	}
	loss := float64(tensors.ToScalar[float32](out[0]))
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return nil, fmt.Errorf("the training loss is %v", loss)
	}
	return map[string]float64{"loss": loss, "lr": lr, "grad_norm": optim.GradNorm(s.store)}, nil
}

// predict returns the logits of n images, flat (n x predDims).
func (s *step) predict(pix []float32, n int) ([]float32, error) {
	out, err := s.eval.Exec(s.images(pix, n))
	if err != nil {
		return nil, err
	}
	return tensors.MustCopyFlatData[float32](out[0]), nil
}
