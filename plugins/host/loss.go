package host

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
)

// LossConfig is the config of a loss plugin: the host's keys (`plugin:`,
// `weight`) and the plugin's own.
type LossConfig struct {
	Params `mapstructure:",squash"`
	Weight float64 `mapstructure:"weight" doc:"weight of the term in a composite loss"`
}

// BuildComponent implements registry.Builder.
func (c *LossConfig) BuildComponent() (any, error) {
	proc, err := c.NewProcess()
	if err != nil {
		return nil, err
	}
	return &Loss{proc: proc, name: c.bin.Name, weight: c.Weight}, nil
}

func init() {
	RegisterAdapter(core.Losses.Kind(), Adapter{Kind: pb.Kind_KIND_LOSS, Reserved: []string{"weight"},
		NewConfig: func(p Params) any { return &LossConfig{Params: p, Weight: 1} }})
}

// Loss is a loss plugin as a core.ExternalLoss: the task computes the
// loss's inputs, Evaluate sends them to the plugin and checks its answer.
type Loss struct {
	proc   *Process
	name   string
	weight float64
}

var (
	_ core.ExternalLoss = (*Loss)(nil)
	_ core.Process      = (*Loss)(nil)
	_ core.Stateful     = (*Loss)(nil)
)

// Weight implements core.Loss.
func (l *Loss) Weight() float64 { return l.weight }

// Compute implements core.Loss: a plugin loss is not a graph; tasks that
// take core.ExternalLoss call Evaluate.
func (l *Loss) Compute(*model.Scope, map[string]*graph.Node) (*graph.Node, error) {
	return nil, fmt.Errorf("loss plugin %q runs outside the graph (core.ExternalLoss); this task computes its losses in the graph only (the mim task's loss takes plugins)", l.name)
}

// StartProcess implements core.Process.
func (l *Loss) StartProcess(env *core.Env) error {
	return l.proc.Start(env.Seed, env.Path(core.PluginLogFile))
}

// Close implements core.Process.
func (l *Loss) Close() error { return l.proc.Close() }

// Process returns the plugin's process (for tests and diagnostics).
func (l *Loss) Process() *Process { return l.proc }

// StateKey implements core.Stateful.
func (l *Loss) StateKey() string { return Prefix + l.name }

// SaveState implements core.Stateful.
func (l *Loss) SaveState(step int64) ([]byte, error) { return l.proc.SaveState(step) }

// LoadState implements core.Stateful.
func (l *Loss) LoadState(state []byte) error { return l.proc.LoadState(state) }

// Evaluate implements core.ExternalLoss. It checks the plugin's answer: a
// finite loss, a gradient for each name of gradFor with its input's dtype
// and shape, and finite gradients.
func (l *Loss) Evaluate(ctx context.Context, step int64, inputs map[string]*tensors.Tensor, gradFor []string, training bool) (float64, map[string]*tensors.Tensor, error) {
	req := &pb.LossRequest{Step: step, GradFor: gradFor, Training: training}
	in := map[string]*sdk.Tensor{}
	names := make([]string, 0, len(inputs))
	for name := range inputs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t, err := ToSDK(inputs[name])
		if err != nil {
			return 0, nil, fmt.Errorf("loss plugin %q: input %q: %w", l.name, name, err)
		}
		p, err := t.ToProto(name)
		if err != nil {
			return 0, nil, err
		}
		in[name] = t
		req.Inputs = append(req.Inputs, p)
	}
	var resp *pb.LossResponse
	err := l.proc.Call(ctx, "Compute", step, func(ctx context.Context, c *sdk.Clients) error {
		var err error
		resp, err = c.Loss.Compute(ctx, req)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	bad := func(format string, args ...any) error {
		return l.proc.Errorf("Compute", step, format, args...)
	}
	if math.IsNaN(resp.Loss) || math.IsInf(resp.Loss, 0) {
		return 0, nil, bad("returned a loss of %v", resp.Loss)
	}
	got := map[string]*sdk.Tensor{}
	for _, g := range resp.Grads {
		t, err := sdk.FromProto(g)
		if err != nil {
			return 0, nil, bad("gradient: %v", err)
		}
		got[g.Name] = t
	}
	grads := map[string]*tensors.Tensor{}
	for _, name := range gradFor {
		g, ok := got[name]
		if !ok {
			return 0, nil, bad("returned no gradient for %q", name)
		}
		if !sameLayout(g, in[name]) {
			return 0, nil, bad("gradient of %q is %s, want %s (its input's dtype and shape)", name, g, in[name])
		}
		if i := firstNonFinite(g); i >= 0 {
			return 0, nil, bad("gradient of %q holds a non-finite value at flat index %d", name, i)
		}
		t, err := FromSDK(g)
		if err != nil {
			return 0, nil, bad("gradient of %q: %v", name, err)
		}
		grads[name] = t
	}
	return resp.Loss, grads, nil
}
