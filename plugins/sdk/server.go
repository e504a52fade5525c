package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
)

// GRPCPlugin is the go-plugin plugin of a peco plugin binary: on the plugin
// side it serves Impl, on the host side it hands out the Clients.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the implementation served (plugin side only).
	Impl Plugin
	// Kind is Impl's kind (plugin side only).
	Kind pb.Kind
}

// Clients are the host's gRPC clients of one plugin process.
type Clients struct {
	Plugin    pb.PluginClient
	Loss      pb.LossClient
	Task      pb.TaskClient
	Tokenizer pb.TokenizerClient
}

// GRPCClient implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Clients{Plugin: pb.NewPluginClient(c), Loss: pb.NewLossClient(c), Task: pb.NewTaskClient(c),
		Tokenizer: pb.NewTokenizerClient(c)}, nil
}

// GRPCServer implements plugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	RegisterServices(s, p.Impl)
	return nil
}

// RegisterServices registers the Plugin service and the service of impl's
// kind on s (used by Serve and by in-process test harnesses).
func RegisterServices(s grpc.ServiceRegistrar, impl Plugin) {
	b := &base{impl: impl}
	pb.RegisterPluginServer(s, b)
	switch x := impl.(type) {
	case Loss:
		pb.RegisterLossServer(s, &lossServer{base: b, impl: x})
	case Task:
		pb.RegisterTaskServer(s, &taskServer{base: b, impl: x})
	case Tokenizer:
		pb.RegisterTokenizerServer(s, &tokenizerServer{base: b, impl: x})
	}
}

// base serves the Plugin service and guards the kind services.
type base struct {
	pb.UnimplementedPluginServer
	impl       Plugin
	mu         sync.Mutex
	configured bool
}

func (b *base) Info(context.Context, *pb.InfoRequest) (resp *pb.InfoResponse, err error) {
	defer recoverAsStatus("Info", &err)
	kind, err := KindOf(b.impl)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	r, err := infoProto(b.impl.Info(), kind)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return r, nil
}

func (b *base) Configure(_ context.Context, req *pb.ConfigureRequest) (resp *pb.ConfigureResponse, err error) {
	defer recoverAsStatus("Configure", &err)
	if req.ApiVersion != APIVersion {
		return nil, status.Errorf(codes.FailedPrecondition, "API version %d asked, this plugin speaks %d", req.ApiVersion, APIVersion)
	}
	cfg := Config{}
	if req.ConfigJson != "" {
		if err := json.Unmarshal([]byte(req.ConfigJson), &cfg); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "config: %v", err)
		}
	}
	if err := b.impl.Configure(cfg, req.Seed); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	b.mu.Lock()
	b.configured = true
	b.mu.Unlock()
	return &pb.ConfigureResponse{}, nil
}

func (b *base) ready() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.configured {
		return status.Error(codes.FailedPrecondition, "Configure was not called")
	}
	return nil
}

// recoverAsStatus turns a panic of the implementation into an Internal
// status naming the call, so the host reports it instead of a lost process.
func recoverAsStatus(call string, err *error) {
	if r := recover(); r != nil {
		*err = status.Errorf(codes.Internal, "%s panicked: %v\n%s", call, r, debug.Stack())
	}
}

// implError wraps an implementation's error as a gRPC status.
func implError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.InvalidArgument, err.Error())
}

// saveState and loadState serve Save/Load for a Stateful implementation.
func saveState(impl Plugin, step int64) (*pb.State, error) {
	s, ok := impl.(Stateful)
	if !ok {
		return &pb.State{}, nil
	}
	data, err := s.Save(step)
	if err != nil {
		return nil, implError(err)
	}
	return &pb.State{Data: data}, nil
}

func loadState(impl Plugin, st *pb.State) error {
	s, ok := impl.(Stateful)
	if !ok {
		if len(st.Data) > 0 {
			return status.Error(codes.InvalidArgument, "a state was given to a plugin that keeps none")
		}
		return nil
	}
	return implError(s.Load(st.Data))
}

// ---------------------------------------------------------------- loss

type lossServer struct {
	pb.UnimplementedLossServer
	*base
	impl Loss
}

func (s *lossServer) Compute(ctx context.Context, req *pb.LossRequest) (resp *pb.LossResponse, err error) {
	defer recoverAsStatus("Compute", &err)
	if err := s.ready(); err != nil {
		return nil, err
	}
	r := &LossRequest{Step: req.Step, Inputs: map[string]*Tensor{}, GradFor: req.GradFor, Training: req.Training}
	for _, t := range req.Inputs {
		x, err := FromProto(t)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		r.Inputs[t.Name] = x
	}
	out, err := s.impl.Compute(ctx, r)
	if err != nil {
		return nil, implError(err)
	}
	resp = &pb.LossResponse{Loss: out.Loss}
	for _, name := range req.GradFor {
		g, ok := out.Grads[name]
		if !ok {
			continue // the host reports the missing gradient
		}
		p, err := g.ToProto(name)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "gradient: %v", err)
		}
		resp.Grads = append(resp.Grads, p)
	}
	return resp, nil
}

func (s *lossServer) Save(_ context.Context, req *pb.SaveRequest) (st *pb.State, err error) {
	defer recoverAsStatus("Save", &err)
	if err := s.ready(); err != nil {
		return nil, err
	}
	return saveState(s.impl, req.Step)
}

func (s *lossServer) Load(_ context.Context, st *pb.State) (resp *pb.LoadResponse, err error) {
	defer recoverAsStatus("Load", &err)
	if err := s.ready(); err != nil {
		return nil, err
	}
	return &pb.LoadResponse{}, loadState(s.impl, st)
}

// ---------------------------------------------------------------- task

// chunkBytes bounds the tensor bytes of one streamed chunk.
const chunkBytes = 2 << 20

type taskServer struct {
	pb.UnimplementedTaskServer
	*base
	impl Task
}

func (s *taskServer) Describe(context.Context, *pb.DescribeRequest) (resp *pb.TaskSpec, err error) {
	defer recoverAsStatus("Describe", &err)
	if err := s.ready(); err != nil {
		return nil, err
	}
	spec, err := s.impl.Describe()
	if err != nil {
		return nil, implError(err)
	}
	resp = &pb.TaskSpec{TrainSplit: spec.TrainSplit, EvalSplit: spec.EvalSplit,
		Height: int32(spec.Height), Width: int32(spec.Width), Channels: int32(spec.Channels),
		Head: spec.Head, Classes: int32(spec.Classes), Metrics: spec.Metrics, PrimaryMetric: spec.PrimaryMetric}
	for _, sp := range spec.Splits {
		resp.Splits = append(resp.Splits, &pb.Split{Name: sp.Name, Size: int64(sp.Size)})
	}
	return resp, nil
}

func (s *taskServer) Samples(req *pb.SamplesRequest, stream pb.Task_SamplesServer) (err error) {
	defer recoverAsStatus("Samples", &err)
	if err := s.ready(); err != nil {
		return err
	}
	idx := make([]int, len(req.Indices))
	for i, v := range req.Indices {
		idx[i] = int(v)
	}
	images, labels, err := s.impl.Samples(stream.Context(), req.Split, idx, int(req.Epoch))
	if err != nil {
		return implError(err)
	}
	n := len(idx)
	if n == 0 {
		return nil
	}
	for _, t := range []*Tensor{images, labels} {
		if t == nil || len(t.Shape) == 0 || t.Shape[0] != n {
			return status.Errorf(codes.Internal, "Samples returned %v for %d samples: want a leading dimension of %d", t, n, n)
		}
	}
	rowBytes := max(1, (images.Size()/n)*bytesPerElement(images.DType)+(labels.Size()/n)*bytesPerElement(labels.DType))
	per := max(1, chunkBytes/rowBytes)
	for off := 0; off < n; off += per {
		end := min(n, off+per)
		im, err := RowSlice(images, off, end).ToProto("images")
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		lb, err := RowSlice(labels, off, end).ToProto("labels")
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		if err := stream.Send(&pb.SampleChunk{Offset: int64(off), Images: im, Labels: lb}); err != nil {
			return err
		}
	}
	return nil
}

func (s *taskServer) Evaluate(stream pb.Task_EvaluateServer) (err error) {
	defer recoverAsStatus("Evaluate", &err)
	if err := s.ready(); err != nil {
		return err
	}
	var split string
	var idx []int
	var parts []*Tensor
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if c.Split != "" {
			split = c.Split
		}
		p, err := FromProto(c.Predictions)
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if len(p.Shape) == 0 || p.Shape[0] != len(c.Indices) {
			return status.Errorf(codes.InvalidArgument, "a chunk of %d indices has predictions %s", len(c.Indices), p)
		}
		for _, v := range c.Indices {
			idx = append(idx, int(v))
		}
		parts = append(parts, p)
	}
	preds, err := ConcatRows(parts)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	m, err := s.impl.Evaluate(stream.Context(), split, idx, preds)
	if err != nil {
		return implError(err)
	}
	return stream.SendAndClose(&pb.Metrics{Values: m})
}

// ---------------------------------------------------------------- tokenizer

type tokenizerServer struct {
	pb.UnimplementedTokenizerServer
	*base
	impl Tokenizer
}

func (s *tokenizerServer) Describe(_ context.Context, req *pb.TokenizerDescribeRequest) (resp *pb.TokenizerSpec, err error) {
	defer recoverAsStatus("Describe", &err)
	if err := s.ready(); err != nil {
		return nil, err
	}
	spec, err := s.impl.Describe(int(req.Height), int(req.Width), int(req.Channels))
	if err != nil {
		return nil, implError(err)
	}
	_, canDecode := s.impl.(Decoder)
	return &pb.TokenizerSpec{VocabSize: int32(spec.VocabSize), GridHeight: int32(spec.GridHeight),
		GridWidth: int32(spec.GridWidth), CanDecode: canDecode}, nil
}

func (s *tokenizerServer) Encode(ctx context.Context, req *pb.EncodeRequest) (resp *pb.EncodeResponse, err error) {
	defer recoverAsStatus("Encode", &err)
	if err := s.ready(); err != nil {
		return nil, err
	}
	im, err := FromProto(req.Images)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	tok, err := s.impl.Encode(ctx, im)
	if err != nil {
		return nil, implError(err)
	}
	p, err := tok.ToProto("tokens")
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &pb.EncodeResponse{Tokens: p}, nil
}

func (s *tokenizerServer) Decode(ctx context.Context, req *pb.DecodeRequest) (resp *pb.DecodeResponse, err error) {
	defer recoverAsStatus("Decode", &err)
	if err := s.ready(); err != nil {
		return nil, err
	}
	d, ok := s.impl.(Decoder)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this tokenizer does not decode")
	}
	tok, err := FromProto(req.Tokens)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	im, err := d.Decode(ctx, tok)
	if err != nil {
		return nil, implError(err)
	}
	p, err := im.ToProto("images")
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &pb.DecodeResponse{Images: p}, nil
}

// RowSlice returns rows [from, to) of t's leading dimension (sharing data).
func RowSlice(t *Tensor, from, to int) *Tensor {
	n := t.Shape[0]
	per := 0
	if n > 0 {
		per = t.Size() / n
	}
	out := &Tensor{DType: t.DType, Shape: append([]int{to - from}, t.Shape[1:]...)}
	a, b := from*per, to*per
	switch t.DType {
	case Float32:
		out.F32 = t.F32[a:b]
	case Float64:
		out.F64 = t.F64[a:b]
	case Int32:
		out.I32 = t.I32[a:b]
	case Int64:
		out.I64 = t.I64[a:b]
	case Uint8:
		out.U8 = t.U8[a:b]
	case Bool:
		out.B = t.B[a:b]
	}
	return out
}

// ConcatRows concatenates tensors of one dtype and trailing shape along
// their leading dimension.
func ConcatRows(parts []*Tensor) (*Tensor, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("no tensors to concatenate")
	}
	first := parts[0]
	out := &Tensor{DType: first.DType, Shape: append([]int{0}, first.Shape[1:]...)}
	for _, p := range parts {
		if p.DType != first.DType || fmt.Sprint(p.Shape[1:]) != fmt.Sprint(first.Shape[1:]) {
			return nil, fmt.Errorf("chunks differ: %s and %s", first, p)
		}
		out.Shape[0] += p.Shape[0]
		out.F32 = append(out.F32, p.F32...)
		out.F64 = append(out.F64, p.F64...)
		out.I32 = append(out.I32, p.I32...)
		out.I64 = append(out.I64, p.I64...)
		out.U8 = append(out.U8, p.U8...)
		out.B = append(out.B, p.B...)
	}
	return out, nil
}
