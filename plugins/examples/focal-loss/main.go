// Command peco-plugin-focal is the example loss plugin "focal" (package
// focal): build it into plugins.d and use it as `loss: {type: plugin:focal}`
// (see README.md).
package main

import (
	"github.com/peco-dev/peco/plugins/examples/focal-loss/focal"
	"github.com/peco-dev/peco/plugins/sdk"
)

func main() { sdk.Serve(&focal.Loss{}) }
