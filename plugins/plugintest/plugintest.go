// Package plugintest runs a plugin's implementation in the test's own
// process against the host's checks: its Info and schema are checked, its
// config section is decoded as strictly as a config file's, and every
// answer goes through the checks the host makes of a plugin executable's
// (finite loss, gradient dtype and shape, token range, ...). No binary is
// built; a plugin author tests the implementation that main passes to
// sdk.Serve:
//
//	func TestFocal(t *testing.T) {
//		l := plugintest.Loss(t, func() sdk.Loss { return &focal.Loss{} }, map[string]any{"gamma": 2.0})
//		loss, grads, err := l.Evaluate(ctx, 0, inputs, []string{"logits"}, true)
//		...
//	}
package plugintest

import (
	"fmt"
	"testing"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/plugins/host"
	"github.com/peco-dev/peco/plugins/sdk"
)

// Build makes the component of an implementation with the given config
// section (as a config file would give it, without `type:`), not started.
func Build(newImpl func() sdk.Plugin, params map[string]any) (any, error) {
	return host.InProcess(newImpl, params)
}

// start builds and starts the component, ending it when the test ends.
func start(t testing.TB, newImpl func() sdk.Plugin, params map[string]any) any {
	t.Helper()
	c, err := Build(newImpl, params)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := c.(core.Process)
	if !ok {
		t.Fatalf("component %T does not start", c)
	}
	if err := p.StartProcess(&core.Env{Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return c
}

// Loss serves a loss implementation in process and returns it as the host's
// loss component, configured with params and started.
func Loss(t testing.TB, newImpl func() sdk.Loss, params map[string]any) *host.Loss {
	t.Helper()
	c := start(t, func() sdk.Plugin { return newImpl() }, params)
	l, ok := c.(*host.Loss)
	if !ok {
		t.Fatal(fmt.Sprintf("built %T, not a loss", c))
	}
	return l
}

// Tokenizer serves a tokenizer implementation in process and returns it as
// the host's tokenizer component, configured with params and started.
func Tokenizer(t testing.TB, newImpl func() sdk.Tokenizer, params map[string]any) *host.Tokenizer {
	t.Helper()
	c := start(t, func() sdk.Plugin { return newImpl() }, params)
	tk, ok := c.(*host.Tokenizer)
	if !ok {
		t.Fatal(fmt.Sprintf("built %T, not a tokenizer", c))
	}
	return tk
}
