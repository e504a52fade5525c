// Package tokenizers holds the visual tokenizers of PeCo/BEiT experiments:
// "vqvae" (a VQGAN-style VQ-VAE; with a perceptual loss it is PeCo's
// tokenizer) and "dvae" (DALL-E's discrete VAE with a Gumbel-softmax
// relaxation, BEiT's tokenizer). Both are core.Tokenizer components and
// implement Trainable, which the tokenizer task trains.
//
// Conventions: images are NHWC float32 in [-1, 1] (the "half"
// normalisation), token grids are [B, h, w] int32 with h = H/f, w = W/f for
// the encoder's downsampling factor f. A tokenizer's variables live under
// the scope it is given (the tokenizer task and the pre-training tasks use
// /tokenizer).
package tokenizers

import (
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
)

// InputNorm is the normalisation of the images every tokenizer takes and
// returns: [-1, 1] (data.NormalizeHalf).
const InputNorm = "half"

// Output is one training (or evaluation) forward pass of a Trainable.
type Output struct {
	// Reconstruction is the decoded image [B, H, W, C] in [-1, 1] (roughly:
	// a VQ-VAE's decoder output is not clipped).
	Reconstruction *Node
	// Tokens holds the token ids [B, h, w] int32.
	Tokens *Node
	// Terms are the named inputs of the tokenizer's loss terms, e.g. "z",
	// "z_q" (vqvae) or "logits", "mu", "log_b", "kl_ramp" (dvae). The task
	// adds "input" (the images) and "reconstruction".
	Terms map[string]*Node
}

// Trainable is a Tokenizer the tokenizer task can train.
type Trainable interface {
	core.Tokenizer
	// Forward runs encoder, quantisation and decoder on images
	// [B, H, W, C]. With training, stochastic parts (Gumbel noise) and
	// in-graph state updates (EMA codebook, dead-code restarts) are on.
	Forward(scope *model.Scope, images *Node, training bool) Output
	// Grid is the token grid of a square imageSize x imageSize image.
	Grid(imageSize int) (h, w int)
	// Prepare sets the host-computed, step-dependent scalars (e.g. the
	// Gumbel temperature) in the tokenizer's scope before a training step
	// of total; it returns them for logging (nil when there are none).
	Prepare(scope *model.Scope, step, total int) (map[string]float64, error)
}

// BatchInitializer is implemented by tokenizers that initialise state from
// the first training batch (a VQ-VAE's codebook). The task builds and runs
// InitFromBatch once, before the first step of a fresh run.
type BatchInitializer interface {
	InitFromBatch(scope *model.Scope, images *Node)
}

// nonTrainable marks a variable as not trained and returns it.
func nonTrainable(v *model.Variable) *model.Variable { return v.SetTrainable(false) }

// cosineAnneal goes from a to b over [0, 1] along half a cosine; t is clipped.
func cosineAnneal(a, b, t float64) float64 {
	t = min(max(t, 0), 1)
	return b + (a-b)*0.5*(1+math.Cos(math.Pi*t))
}
