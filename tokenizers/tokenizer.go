// Package tokenizers holds the visual tokenizers of PeCo/BEiT experiments:
// "vqvae" (a VQGAN-style VQ-VAE; with a perceptual loss it is PeCo's
// tokenizer) and "dvae" (DALL-E's discrete VAE with a Gumbel-softmax
// relaxation, BEiT's tokenizer). Both are core.Tokenizer components and
// implement core.TrainableTokenizer, which the tokenizer task trains.
//
// Conventions: images are NHWC float32 in [-1, 1] (the "half"
// normalisation), token grids are [B, h, w] int32 with h = H/f, w = W/f for
// the encoder's downsampling factor f. A tokenizer's variables live under
// the scope it is given (the tokenizer task and the pre-training tasks use
// /tokenizer).
package tokenizers

import (
	"math"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
)

// The built-in tokenizers are trainable.
var (
	_ core.TrainableTokenizer = (*VQVAE)(nil)
	_ core.TrainableTokenizer = (*DVAE)(nil)
	_ core.BatchInitializer   = (*VQVAE)(nil)
)

// nonTrainable marks a variable as not trained and returns it.
func nonTrainable(v *model.Variable) *model.Variable { return v.SetTrainable(false) }

// cosineAnneal goes from a to b over [0, 1] along half a cosine; t is clipped.
func cosineAnneal(a, b, t float64) float64 {
	t = min(max(t, 0), 1)
	return b + (a-b)*0.5*(1+math.Cos(math.Pi*t))
}
