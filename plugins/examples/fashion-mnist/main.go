// Command peco-plugin-fashion_mnist is the Fashion-MNIST task plugin: it
// serves the images and labels of Debian's dataset-fashion-mnist and scores
// the host's classification logits. Build it into ./plugins.d:
//
//	go build -o plugins.d/peco-plugin-fashion_mnist ./plugins/examples/fashion-mnist
package main

import (
	"github.com/peco-dev/peco/plugins/examples/fashion-mnist/fmnist"
	"github.com/peco-dev/peco/plugins/sdk"
)

func main() { sdk.Serve(&fmnist.Task{}) }
