// Package targets holds the masked-image-modeling targets, registered as
// core.Target components (the MIM task's `target:` key): "tokens", the
// token ids of a frozen tokenizer (BEiT with a dVAE, PeCo with a perceptual
// VQ-VAE), and "pixels", each patch's normalised pixels (BEiT's pixel
// ablation). Which of them a run uses is a config swap; the MIM loss is the
// task's own `loss:` component.
package targets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/registry"
)

// TokensConfig configures the "tokens" target.
type TokensConfig struct {
	From       string                        `mapstructure:"from" doc:"the tokenizer run: runs/<name> (its newest run), a run directory or a .ckpt file; the tokenizer is rebuilt from the run's task.tokenizer and its /tokenizer weights, frozen"`
	Tokenizer  registry.Spec[core.Tokenizer] `mapstructure:"tokenizer" doc:"instead of from: a tokenizer used as built (frozen at its initialisation, or one that brings its own weights)"`
	Precompute int                           `mapstructure:"precompute" doc:"views per training image whose tokens are computed once before training and cached in the tokenizer run's directory (a plugin's: the MIM run's) (epoch e uses view e mod precompute); 0: tokens computed in each training step"`
}

// Validate checks that exactly one source of tokens is named.
func (c *TokensConfig) Validate() error {
	switch {
	case c.From == "" && !c.Tokenizer.IsSet():
		return errors.New("from must name the tokenizer run (e.g. from: runs/tokenizer_cifar10_peco), or tokenizer a tokenizer to use as built")
	case c.From != "" && c.Tokenizer.IsSet():
		return errors.New("give from (a trained tokenizer run) or tokenizer (one used as built), not both")
	case c.Precompute < 0:
		return fmt.Errorf("precompute must be >= 0, got %d", c.Precompute)
	case c.Precompute > 0 && c.From == "" && !strings.HasPrefix(c.Tokenizer.Type, "plugin:"):
		return errors.New("precompute needs from (cached tokens are kept in the tokenizer run's directory) or a tokenizer plugin (kept in the MIM run's token_cache/)")
	}
	return nil
}

// RetiredKeys names the keys of the former "pretrained" tokenizer.
func (c *TokensConfig) RetiredKeys() map[string]string {
	return map[string]string{
		"checkpoint": "the tokenizer run is now `from: RUN`",
		"key":        "the tokenizer's spec is read from the run's task.tokenizer",
		"scope":      "the tokenizer's weights are read from the run's /tokenizer scope",
	}
}

// Tokens is the discrete target of BEiT and PeCo: the ids a frozen
// tokenizer gives the patches of the target view, classified by the MIM
// loss (cross_entropy by default).
type Tokens struct {
	cfg TokensConfig
	tok core.Tokenizer
	// run is the tokenizer run (nil for a tokenizer used as built).
	run *ckpt.Run
}

var (
	_ core.TokenSource = (*Tokens)(nil)
	_ core.Restorer    = (*Tokens)(nil)
)

// NewTokens builds the target: with from, the tokenizer of that run (its
// weights are loaded by Restore), else the configured tokenizer.
func NewTokens(c TokensConfig) (*Tokens, error) {
	t := &Tokens{cfg: c}
	if c.From == "" {
		tok, err := c.Tokenizer.Build()
		if err != nil {
			return nil, fmt.Errorf("target tokens: tokenizer: %w", err)
		}
		t.tok = tok
		return t, nil
	}
	run, err := ckpt.OpenRun(c.From)
	if err != nil {
		return nil, fmt.Errorf("target tokens: from: %w", err)
	}
	tok, err := ckpt.Build[core.Tokenizer](run, "task.tokenizer")
	if err != nil {
		return nil, fmt.Errorf("target tokens: from: %w", err)
	}
	t.tok, t.run = tok, run
	return t, nil
}

// Discrete is true: the targets are token ids.
func (t *Tokens) Discrete() bool { return true }

// Dim is the tokenizer's vocabulary size.
func (t *Tokens) Dim(_, _, _, _, _ int) (int, error) {
	if k := t.tok.VocabSize(); k >= 2 {
		return k, nil
	}
	return 0, fmt.Errorf("target tokens: the tokenizer has a vocabulary of %d tokens, need at least 2", t.tok.VocabSize())
}

// Compute encodes the view and checks that its token grid is the
// backbone's patch grid: [B, gridH*gridW] int32, without gradient.
func (t *Tokens) Compute(scope *model.Scope, view *Node, gridH, gridW int) (*Node, error) {
	if t.External() != nil {
		return nil, fmt.Errorf("target tokens: the tokenizer runs outside the graph (a plugin); the MIM step gives its tokens as inputs")
	}
	ids := t.tok.Encode(scope, view)
	b := view.Shape().Dim(0)
	if ids.Rank() != 3 || ids.Shape().Dim(0) != b || ids.Shape().Dim(1) != gridH || ids.Shape().Dim(2) != gridW {
		return nil, fmt.Errorf("target tokens: the tokenizer maps the %s view to tokens %s, the backbone's patch grid is %dx%d: "+
			"set data.augment.second_size so that the tokenizer's grid matches", view.Shape(), ids.Shape(), gridH, gridW)
	}
	return StopGradient(ConvertDType(Reshape(ids, b, gridH*gridW), dtypes.Int32)), nil
}

// Restore loads the tokenizer run's weights under scope, frozen; a
// tokenizer used as built has nothing to load.
func (t *Tokens) Restore(store *model.Store, scope string) error {
	if t.run == nil {
		return nil
	}
	if err := t.run.Load(store, ckpt.TokenizerScope, scope, true); err != nil {
		return fmt.Errorf("target tokens: %w (is it a tokenizer run?)", err)
	}
	return nil
}

// External is the tokenizer when it runs outside the graph (a plugin),
// else nil: the MIM step then gets the tokens from it on the host.
func (t *Tokens) External() core.ExternalTokenizer {
	e, _ := t.tok.(core.ExternalTokenizer)
	return e
}

// StartProcess implements core.Process for a tokenizer that runs in a
// process of its own (a plugin); it does nothing for others.
func (t *Tokens) StartProcess(env *core.Env) error {
	if p, ok := t.tok.(core.Process); ok {
		return p.StartProcess(env)
	}
	return nil
}

// Close implements core.Process.
func (t *Tokens) Close() error {
	if p, ok := t.tok.(core.Process); ok {
		return p.Close()
	}
	return nil
}

// Tokenizer is the frozen tokenizer.
func (t *Tokens) Tokenizer() core.Tokenizer { return t.tok }

// PrecomputedViews is the configured precompute.
func (t *Tokens) PrecomputedViews() int { return t.cfg.Precompute }

// Run is the tokenizer run (nil for a tokenizer used as built).
func (t *Tokens) Run() *ckpt.Run { return t.run }

// CacheKey identifies the tokenizer's weights by checkpoint path, size and
// modification time, a plugin by its name, sha256 and config ("" for a
// tokenizer used as built).
func (t *Tokens) CacheKey() string {
	if k, ok := t.tok.(interface{ CacheKey() string }); ok && t.run == nil {
		return k.CacheKey() // a plugin: name, sha256 and config
	}
	if t.run == nil {
		return ""
	}
	abs, _ := filepath.Abs(t.run.Checkpoint)
	fi, err := os.Stat(t.run.Checkpoint)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s|%d|%d", abs, fi.Size(), fi.ModTime().UnixNano())
}

// CacheDir is <tokenizer run>/token_cache ("" for a tokenizer used as built).
func (t *Tokens) CacheDir() string {
	if t.run == nil {
		return ""
	}
	return filepath.Join(t.run.Dir, "token_cache")
}

func init() {
	registry.Register(core.Targets, "tokens",
		"token ids of a frozen tokenizer (from: a tokenizer run), classified (BEiT/PeCo; default loss cross_entropy)",
		func() TokensConfig { return TokensConfig{} },
		func(c TokensConfig) (core.Target, error) { return NewTokens(c) })
}
