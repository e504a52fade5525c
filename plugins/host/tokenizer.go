package host

import (
	"context"
	"fmt"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/peco-dev/peco/core"
	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
)

// TokenizerConfig is the config of a tokenizer plugin: `plugin:` and the
// plugin's own keys.
type TokenizerConfig struct {
	Params `mapstructure:",squash"`
}

// BuildComponent implements registry.Builder.
func (c *TokenizerConfig) BuildComponent() (any, error) {
	proc, err := c.NewProcess()
	if err != nil {
		return nil, err
	}
	return &Tokenizer{proc: proc, name: c.bin.Name, key: fmt.Sprintf("%s%s|%s|%s", Prefix, c.bin.Name, c.bin.SHA256, proc.config)}, nil
}

func init() {
	RegisterAdapter(core.Tokenizers.Kind(), Adapter{Kind: pb.Kind_KIND_TOKENIZER,
		NewConfig: func(p Params) any { return &TokenizerConfig{Params: p} }})
}

// Tokenizer is a tokenizer plugin as a core.ExternalTokenizer: a MIM target
// built on it gets its tokens on the host (per batch, or into the
// precomputed-token cache).
type Tokenizer struct {
	proc  *Process
	name  string
	key   string
	vocab int
}

var (
	_ core.ExternalTokenizer = (*Tokenizer)(nil)
	_ core.Process           = (*Tokenizer)(nil)
)

// StartProcess implements core.Process.
func (t *Tokenizer) StartProcess(env *core.Env) error {
	if err := t.proc.Start(env.Seed, env.Path(core.PluginLogFile)); err != nil {
		return err
	}
	spec, err := t.describe(0, 0, 0)
	if err != nil {
		_ = t.proc.Close()
		return err
	}
	if spec.VocabSize < 2 {
		_ = t.proc.Close()
		return t.proc.Errorf("Describe", -1, "vocabulary of %d tokens, need at least 2", spec.VocabSize)
	}
	t.vocab = int(spec.VocabSize)
	return nil
}

// Close implements core.Process.
func (t *Tokenizer) Close() error { return t.proc.Close() }

// CacheKey identifies the plugin's tokens for the precomputed-token cache:
// its name, sha256 and config.
func (t *Tokenizer) CacheKey() string { return t.key }

func (t *Tokenizer) describe(h, w, c int) (*pb.TokenizerSpec, error) {
	var spec *pb.TokenizerSpec
	err := t.proc.Call(context.Background(), "Describe", -1, func(ctx context.Context, cl *sdk.Clients) error {
		var err error
		spec, err = cl.Tokenizer.Describe(ctx, &pb.TokenizerDescribeRequest{Height: int32(h), Width: int32(w), Channels: int32(c)})
		return err
	})
	return spec, err
}

// VocabSize implements core.Tokenizer (0 before the process started).
func (t *Tokenizer) VocabSize() int { return t.vocab }

// Grid implements core.ExternalTokenizer.
func (t *Tokenizer) Grid(h, w, c int) (int, int, error) {
	spec, err := t.describe(h, w, c)
	if err != nil {
		return 0, 0, err
	}
	return int(spec.GridHeight), int(spec.GridWidth), nil
}

// Encode implements core.Tokenizer: a plugin is no graph, so it panics
// (as GoMLX's graph errors do) with what to do instead.
func (t *Tokenizer) Encode(*model.Scope, *graph.Node) *graph.Node {
	exceptions.Panicf("tokenizer plugin %q runs outside the graph (core.ExternalTokenizer): use it as a MIM target (target: {type: tokens, tokenizer: {type: plugin:%s}})", t.name, t.name)
	return nil
}

// Decode implements core.Tokenizer; see Encode.
func (t *Tokenizer) Decode(*model.Scope, *graph.Node) *graph.Node {
	exceptions.Panicf("tokenizer plugin %q runs outside the graph: its Decode is a call (DecodeTokens)", t.name)
	return nil
}

// EncodeImages implements core.ExternalTokenizer, checking the answer:
// int32 [B, h, w] with ids in the vocabulary.
func (t *Tokenizer) EncodeImages(ctx context.Context, images *tensors.Tensor) (*tensors.Tensor, error) {
	in, err := ToSDK(images)
	if err != nil {
		return nil, err
	}
	p, err := in.ToProto("images")
	if err != nil {
		return nil, err
	}
	var resp *pb.EncodeResponse
	if err := t.proc.Call(ctx, "Encode", -1, func(ctx context.Context, cl *sdk.Clients) error {
		var err error
		resp, err = cl.Tokenizer.Encode(ctx, &pb.EncodeRequest{Images: p})
		return err
	}); err != nil {
		return nil, err
	}
	tok, err := sdk.FromProto(resp.Tokens)
	if err != nil {
		return nil, t.proc.Errorf("Encode", -1, "tokens: %v", err)
	}
	if tok.DType != sdk.Int32 || len(tok.Shape) != 3 || tok.Shape[0] != in.Shape[0] {
		return nil, t.proc.Errorf("Encode", -1, "returned tokens %s for %d images, want int32[%d h w]", tok, in.Shape[0], in.Shape[0])
	}
	for i, id := range tok.I32 {
		if id < 0 || int(id) >= t.vocab {
			return nil, t.proc.Errorf("Encode", -1, "returned token %d at flat index %d, outside its vocabulary of %d", id, i, t.vocab)
		}
	}
	return FromSDK(tok)
}

// DecodeTokens maps tokens int32 [B, h, w] back to images with the
// plugin's Decode (an error when it cannot decode).
func (t *Tokenizer) DecodeTokens(ctx context.Context, tokens *tensors.Tensor) (*tensors.Tensor, error) {
	in, err := ToSDK(tokens)
	if err != nil {
		return nil, err
	}
	p, err := in.ToProto("tokens")
	if err != nil {
		return nil, err
	}
	var resp *pb.DecodeResponse
	if err := t.proc.Call(ctx, "Decode", -1, func(ctx context.Context, cl *sdk.Clients) error {
		var err error
		resp, err = cl.Tokenizer.Decode(ctx, &pb.DecodeRequest{Tokens: p})
		return err
	}); err != nil {
		return nil, err
	}
	im, err := sdk.FromProto(resp.Images)
	if err != nil {
		return nil, t.proc.Errorf("Decode", -1, "images: %v", err)
	}
	return FromSDK(im)
}
