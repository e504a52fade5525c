// Command oldproto is a go-plugin program that speaks another plugin
// protocol version than peco (the host's fault tests).
package main

import (
	"github.com/hashicorp/go-plugin"

	"github.com/peco-dev/peco/plugins/sdk"
)

func main() {
	hs := sdk.Handshake
	hs.ProtocolVersion = sdk.APIVersion + 1
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: hs,
		Plugins:         plugin.PluginSet{sdk.PluginName: &sdk.GRPCPlugin{}},
		GRPCServer:      sdk.NewGRPCServer,
	})
}
