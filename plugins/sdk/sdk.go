// Package sdk is what a peco plugin imports: it serves a loss, a task or a
// tokenizer to the peco host over the plugin protocol
// (plugins/proto/peco/plugin/v1), through hashicorp/go-plugin with gRPC and
// mutual TLS.
//
// A plugin is a main package that calls Serve with its implementation:
//
//	func main() { sdk.Serve(&Focal{}) }
//
// The host finds it as peco-plugin-<name> on $PECO_PLUGIN_PATH or in
// ./plugins.d (or at an explicit path), checks its sha256, starts it, asks
// for its Info, decodes the plugin's config section against Info.Schema as
// strictly as a built-in component's, and calls Configure once before any
// other call.
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
)

// APIVersion is the version of the plugin protocol this SDK speaks (the
// "v1" of plugins/proto/peco/plugin/v1).
const APIVersion = 1

// Handshake is the go-plugin handshake every peco plugin and the host
// share. The cookie only tells a peco plugin from other programs (a binary
// started by hand prints that it is a plugin); it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  APIVersion,
	MagicCookieKey:   "PECO_PLUGIN_COOKIE",
	MagicCookieValue: "peco-plugin-5f1c2a9e",
}

// PluginName is the name of the one plugin a peco plugin binary serves in
// go-plugin's plugin set.
const PluginName = "peco"

// MaxMessageBytes bounds one gRPC message each way (tensors of a loss call
// travel in one message).
const MaxMessageBytes = 1 << 30

// FieldType is the type of a config key.
type FieldType = pb.FieldType

// The config key types.
const (
	FieldString  = pb.FieldType_FIELD_TYPE_STRING
	FieldInt     = pb.FieldType_FIELD_TYPE_INT
	FieldFloat   = pb.FieldType_FIELD_TYPE_FLOAT
	FieldBool    = pb.FieldType_FIELD_TYPE_BOOL
	FieldStrings = pb.FieldType_FIELD_TYPE_STRING_LIST
	FieldInts    = pb.FieldType_FIELD_TYPE_INT_LIST
	FieldFloats  = pb.FieldType_FIELD_TYPE_FLOAT_LIST
)

// Field documents one key of the plugin's config section.
type Field struct {
	Key  string
	Type FieldType
	// Default is the value when the config does not set the key; nil makes
	// the key required.
	Default any
	Doc     string
}

// Info describes a plugin.
type Info struct {
	// Name is what configs write after "plugin:", e.g. "focal".
	Name string
	// Version is the plugin's own version, e.g. "1.0.0".
	Version string
	// Doc is a one-line description.
	Doc    string
	Schema []Field
}

// Config is a plugin's decoded config section: every schema key, set or
// defaulted, as JSON values (numbers are float64, lists []any).
type Config map[string]any

// Float returns a number key.
func (c Config) Float(key string) float64 { f, _ := c[key].(float64); return f }

// Int returns an integer key.
func (c Config) Int(key string) int { f, _ := c[key].(float64); return int(f) }

// String returns a string key.
func (c Config) String(key string) string { s, _ := c[key].(string); return s }

// Bool returns a boolean key.
func (c Config) Bool(key string) bool { b, _ := c[key].(bool); return b }

// Plugin is what every plugin implements.
type Plugin interface {
	Info() Info
	// Configure receives the config section (checked against the schema by
	// the host) and the run's seed. It is called once, before other calls,
	// and again if the host restarts the plugin.
	Configure(cfg Config, seed int64) error
}

// LossRequest is one loss call.
type LossRequest struct {
	// Step is the optimizer step (0-based).
	Step int64
	// Inputs are the named inputs, e.g. "logits" [N, K] float32 and
	// "labels" [N] int32.
	Inputs map[string]*Tensor
	// GradFor names the inputs whose gradient the host needs.
	GradFor []string
	// Training is false for evaluation calls.
	Training bool
}

// LossResult is a loss call's answer.
type LossResult struct {
	// Loss is the unweighted scalar loss.
	Loss float64
	// Grads holds d Loss / d input for each name of LossRequest.GradFor,
	// shaped as that input.
	Grads map[string]*Tensor
}

// Loss is a loss plugin.
type Loss interface {
	Plugin
	Compute(ctx context.Context, req *LossRequest) (*LossResult, error)
}

// Stateful is implemented by a plugin (of any kind) that keeps state across
// calls: the host saves it into each checkpoint and loads it on resume.
type Stateful interface {
	Save(step int64) ([]byte, error)
	Load(state []byte) error
}

// HeadType is one of the host's built-in heads a task asks for.
type HeadType = pb.HeadType

// The head types.
const (
	// HeadClassification: labels int32 [N]; predictions logits [N, K].
	HeadClassification = pb.HeadType_HEAD_TYPE_CLASSIFICATION
	// HeadMultiLabel: labels float32 [N, K] in {0, 1}; predictions logits [N, K].
	HeadMultiLabel = pb.HeadType_HEAD_TYPE_MULTILABEL
	// HeadDense: labels int32 [N, GH, GW] (-1 ignored); predictions logits
	// [N, GH, GW, K] on the backbone's patch grid.
	HeadDense = pb.HeadType_HEAD_TYPE_DENSE
)

// Split is one of a task's data splits.
type Split struct {
	Name string
	Size int
}

// TaskSpec is what a task plugin declares: its data and the head the host
// builds on its backbone.
type TaskSpec struct {
	Splits                  []Split
	TrainSplit, EvalSplit   string
	Height, Width, Channels int
	Head                    HeadType
	Classes                 int
	// Metrics names what Evaluate returns; PrimaryMetric (higher is
	// better) picks the best checkpoint.
	Metrics       []string
	PrimaryMetric string
}

// Task is a task plugin: data and metrics; the host owns model and loop.
type Task interface {
	Plugin
	Describe() (TaskSpec, error)
	// Samples returns the samples of split at indices, in order: images
	// float32 [n, H, W, C] in [0, 1] and labels as the head type says.
	Samples(ctx context.Context, split string, indices []int, epoch int) (images, labels *Tensor, err error)
	// Evaluate scores the host's predictions for the samples at indices of
	// split (as the head type says) and returns the metrics.
	Evaluate(ctx context.Context, split string, indices []int, predictions *Tensor) (map[string]float64, error)
}

// TokenizerSpec is what a tokenizer plugin declares for an image size.
type TokenizerSpec struct {
	VocabSize             int
	GridHeight, GridWidth int
}

// Tokenizer is a tokenizer plugin.
type Tokenizer interface {
	Plugin
	Describe(height, width, channels int) (TokenizerSpec, error)
	// Encode maps images float32 [B, H, W, C] in [-1, 1] to tokens int32
	// [B, h, w] in [0, VocabSize).
	Encode(ctx context.Context, images *Tensor) (*Tensor, error)
}

// Decoder is implemented by a tokenizer that maps tokens back to images.
type Decoder interface {
	Decode(ctx context.Context, tokens *Tensor) (*Tensor, error)
}

// Serve serves impl (a Loss, a Task or a Tokenizer) to the host until the
// host ends it. It never returns when started by the host; started by hand
// it prints that the binary is a peco plugin and exits.
func Serve(impl Plugin) {
	kind, err := KindOf(impl)
	if err != nil {
		panic(err)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl, Kind: kind}},
		GRPCServer:      NewGRPCServer,
		// go-plugin's own messages: warnings and errors only, as JSON the
		// host parses.
		Logger: hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn, Output: os.Stderr, JSONFormat: true}),
	})
}

// NewGRPCServer is the gRPC server a plugin serves on (go-plugin adds its
// TLS options): messages up to MaxMessageBytes.
func NewGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))
	return grpc.NewServer(opts...)
}

// KindOf tells the kind of an implementation.
func KindOf(impl Plugin) (pb.Kind, error) {
	switch impl.(type) {
	case Loss:
		return pb.Kind_KIND_LOSS, nil
	case Task:
		return pb.Kind_KIND_TASK, nil
	case Tokenizer:
		return pb.Kind_KIND_TOKENIZER, nil
	}
	return pb.Kind_KIND_UNSPECIFIED, fmt.Errorf("sdk: %T is neither a Loss, a Task nor a Tokenizer", impl)
}

// KindName names a kind as configs do: "loss", "task", "tokenizer".
func KindName(k pb.Kind) string {
	switch k {
	case pb.Kind_KIND_LOSS:
		return "loss"
	case pb.Kind_KIND_TASK:
		return "task"
	case pb.Kind_KIND_TOKENIZER:
		return "tokenizer"
	}
	return fmt.Sprintf("unknown kind %d", k)
}

// infoProto encodes an Info for the wire.
func infoProto(info Info, kind pb.Kind) (*pb.InfoResponse, error) {
	r := &pb.InfoResponse{Name: info.Name, Kind: kind, Version: info.Version, Doc: info.Doc,
		ApiVersions: []int32{APIVersion}}
	keys := map[string]bool{}
	for _, f := range info.Schema {
		if keys[f.Key] {
			return nil, fmt.Errorf("schema key %q twice", f.Key)
		}
		keys[f.Key] = true
		def := ""
		if f.Default != nil {
			b, err := json.Marshal(f.Default)
			if err != nil {
				return nil, fmt.Errorf("schema key %q: default: %w", f.Key, err)
			}
			def = string(b)
		}
		r.Schema = append(r.Schema, &pb.Field{Key: f.Key, Type: f.Type, DefaultJson: def, Doc: f.Doc})
	}
	sort.Slice(r.Schema, func(i, j int) bool { return r.Schema[i].Key < r.Schema[j].Key })
	return r, nil
}
