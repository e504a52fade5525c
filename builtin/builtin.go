// Package builtin imports every built-in component package so that their
// init functions register them: import it once (the peco command does) and
// no built-in can be missing from the registries.
package builtin

import (
	_ "github.com/peco-dev/peco/backbones/mobilenet"
	_ "github.com/peco-dev/peco/backbones/vit"    // backbone: vit
	_ "github.com/peco-dev/peco/data"             // dataset: image_folder, mnist, coco, ade20k
	_ "github.com/peco-dev/peco/losses"           // loss: cross_entropy, l1, l2, logit_laplace, vq, kl_uniform, perceptual, adversarial
	_ "github.com/peco-dev/peco/optim"            // optimizer: adamw; schedule: cosine, constant
	_ "github.com/peco-dev/peco/plugins/host"     // loss and tokenizer plugins: type: plugin:<name>
	_ "github.com/peco-dev/peco/targets"          // target: tokens, pixels
	_ "github.com/peco-dev/peco/tasks/classify"   // task: classification
	_ "github.com/peco-dev/peco/tasks/detect"     // task: coco
	_ "github.com/peco-dev/peco/tasks/mim"        // task: mim
	_ "github.com/peco-dev/peco/tasks/plugintask" // task plugins: type: plugin:<name>
	_ "github.com/peco-dev/peco/tasks/probe"      // task: codebook_probe
	_ "github.com/peco-dev/peco/tasks/segment"    // task: segmentation
	_ "github.com/peco-dev/peco/tasks/tokenizer"  // task: tokenizer
	_ "github.com/peco-dev/peco/tokenizers"       // tokenizer: vqvae, dvae
)
