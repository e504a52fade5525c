package plugintest_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/plugins/examples/focal-loss/focal"
	"github.com/peco-dev/peco/plugins/plugintest"
	"github.com/peco-dev/peco/plugins/sdk"
)

func logitsAndLabels() map[string]*tensors.Tensor {
	return map[string]*tensors.Tensor{
		"logits": tensors.FromFlatDataAndDimensions([]float32{2, 0, -1, 0.5, 0.5, 3}, 2, 3),
		"labels": tensors.FromFlatDataAndDimensions([]int32{0, 1}, 2),
	}
}

// TestFocalInProcess runs the focal example through the host's checks.
func TestFocalInProcess(t *testing.T) {
	l := plugintest.Loss(t, func() sdk.Loss { return &focal.Loss{} }, map[string]any{"gamma": 0.0})
	loss, grads, err := l.Evaluate(context.Background(), 0, logitsAndLabels(), []string{"logits"}, true)
	if err != nil {
		t.Fatal(err)
	}
	// gamma 0 is cross-entropy: mean of -log softmax at the labels.
	lse := func(a, b, c float64) float64 { return math.Log(math.Exp(a) + math.Exp(b) + math.Exp(c)) }
	want := ((lse(2, 0, -1) - 2) + (lse(0.5, 0.5, 3) - 0.5)) / 2
	if math.Abs(loss-want) > 1e-6 {
		t.Errorf("loss %v, want %v", loss, want)
	}
	g := tensors.MustCopyFlatData[float32](grads["logits"])
	if len(g) != 6 || math.Abs(float64(g[0]+g[1]+g[2])) > 1e-6 {
		t.Errorf("gradient %v: each row of a softmax loss's gradient sums to 0", g)
	}
}

// TestConfigChecks: the schema is decoded as strictly as a config file.
func TestConfigChecks(t *testing.T) {
	for _, tc := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"gama": 2.0}, `unknown key "gama"; did you mean "gamma"?`},
		{map[string]any{"gamma": "two"}, `gamma: expected a number, got string "two"`},
		{map[string]any{"plugin": map[string]any{"restarts": -1}}, "restarts must be >= 0"},
	} {
		_, err := plugintest.Build(func() sdk.Plugin { return &focal.Loss{} }, tc.params)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.params, err, tc.want)
		}
	}
}

// badTokenizer gives tokens outside its vocabulary.
type badTokenizer struct{}

func (badTokenizer) Info() sdk.Info                    { return sdk.Info{Name: "bad", Version: "0"} }
func (badTokenizer) Configure(sdk.Config, int64) error { return nil }
func (badTokenizer) Describe(h, w, c int) (sdk.TokenizerSpec, error) {
	return sdk.TokenizerSpec{VocabSize: 8, GridHeight: h / 4, GridWidth: w / 4}, nil
}
func (badTokenizer) Encode(_ context.Context, im *sdk.Tensor) (*sdk.Tensor, error) {
	n := im.Shape[0] * (im.Shape[1] / 4) * (im.Shape[2] / 4)
	ids := make([]int32, n)
	ids[n-1] = 8
	return sdk.NewInt32(ids, im.Shape[0], im.Shape[1]/4, im.Shape[2]/4), nil
}

// TestTokenizerChecks: the host's check of token ids applies in process.
func TestTokenizerChecks(t *testing.T) {
	tk := plugintest.Tokenizer(t, func() sdk.Tokenizer { return badTokenizer{} }, nil)
	if tk.VocabSize() != 8 {
		t.Errorf("vocab %d", tk.VocabSize())
	}
	gh, gw, err := tk.Grid(16, 8, 3)
	if err != nil || gh != 4 || gw != 2 {
		t.Errorf("grid %dx%d, %v", gh, gw, err)
	}
	_, err = tk.EncodeImages(context.Background(), tensors.FromFlatDataAndDimensions(make([]float32, 2*16*8*3), 2, 16, 8, 3))
	if err == nil || !strings.Contains(err.Error(), `plugin "bad" (tokenizer, (in process)): Encode: returned token 8 at flat index 15, outside its vocabulary of 8`) {
		t.Errorf("error %v", err)
	}
}
