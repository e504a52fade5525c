package host

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/peco-dev/peco/core"
	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
	"github.com/peco-dev/peco/registry"
)

// InProcess builds the component of a plugin implementation served in this
// process (over an in-memory gRPC connection) exactly as the host builds a
// plugin executable's, minus the executable: its Info is checked (API
// version, schema), params (its config section, as a config file gives it)
// are decoded strictly against its schema and the host keys of its kind,
// and the component makes the same checks of every answer. The component
// serves a fresh instance made by newImpl each time it starts (restarts
// included). It is what plugins/plugintest builds on.
func InProcess(newImpl func() sdk.Plugin, params map[string]any) (any, error) {
	impl := newImpl()
	kind, err := sdk.KindOf(impl)
	if err != nil {
		return nil, err
	}
	registryKind := map[pb.Kind]registry.Kind{pb.Kind_KIND_LOSS: core.Losses.Kind(), pb.Kind_KIND_TASK: core.Tasks.Kind(),
		pb.Kind_KIND_TOKENIZER: core.Tokenizers.Kind()}[kind]
	plugins.mu.Lock()
	a, ok := plugins.adapters[registryKind]
	plugins.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no adapter for %s plugins is linked (import plugins/host, and tasks/plugintask for tasks)", sdk.KindName(kind))
	}
	dial := func() (*sdk.Clients, func(), error) { return serveInMemory(newImpl()) }
	clients, hangup, err := dial()
	if err != nil {
		return nil, err
	}
	info, err := clients.Plugin.Info(context.Background(), &pb.InfoRequest{HostApiVersions: APIVersions})
	hangup()
	if err != nil {
		return nil, fmt.Errorf("Info: %w", err)
	}
	if err := checkSchema(info, append([]string{"plugin", "type"}, a.Reserved...)); err != nil {
		return nil, fmt.Errorf("plugin %q: %w", info.Name, err)
	}
	bin := &Binary{Name: info.Name, Path: "(in process)", Info: info}
	cfg := a.NewConfig(Params{Plugin: DefaultSettings(), bin: bin, values: map[string]any{}, dial: dial})
	if err := registry.DecodeParams(cfg, params, fmt.Sprintf("%s %q", registryKind, Prefix+info.Name)); err != nil {
		return nil, err
	}
	b, ok := cfg.(registry.Builder)
	if !ok {
		return nil, fmt.Errorf("config %T cannot build its component", cfg)
	}
	return b.BuildComponent()
}

// serveInMemory serves impl on an in-memory listener and connects to it.
func serveInMemory(impl sdk.Plugin) (*sdk.Clients, func(), error) {
	lis := bufconn.Listen(1 << 20)
	srv := sdk.NewGRPCServer(nil)
	sdk.RegisterServices(srv, impl)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(sdk.MaxMessageBytes), grpc.MaxCallSendMsgSize(sdk.MaxMessageBytes)))
	if err != nil {
		srv.Stop()
		return nil, nil, err
	}
	c := &sdk.GRPCPlugin{}
	raw, _ := c.GRPCClient(context.Background(), nil, conn)
	return raw.(*sdk.Clients), func() { _ = conn.Close(); srv.Stop() }, nil
}
