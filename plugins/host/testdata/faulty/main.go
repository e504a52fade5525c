// Command faulty is a loss plugin for the host's fault tests: softmax
// cross-entropy that misbehaves as its `fault` key says, from step
// `at_step` on. It keeps a call counter as its state (Save/Load).
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"syscall"
	"time"

	"github.com/peco-dev/peco/plugins/sdk"
)

type loss struct {
	fault  string
	atStep int64
	calls  uint64
}

func (l *loss) Info() sdk.Info {
	return sdk.Info{Name: "faulty", Version: "0.1.0", Doc: "cross-entropy that fails on purpose (host tests)", Schema: []sdk.Field{
		{Key: "fault", Type: sdk.FieldString, Default: "", Doc: "none, crash, crash_once, hang, nan, nan_grad, shape, dtype, no_grad, error, stderr"},
		{Key: "at_step", Type: sdk.FieldInt, Default: 0, Doc: "first step the fault happens at"},
	}}
}

func (l *loss) Configure(cfg sdk.Config, _ int64) error {
	l.fault, l.atStep = cfg.String("fault"), int64(cfg.Int("at_step"))
	return nil
}

func (l *loss) Save(int64) ([]byte, error) {
	return binary.LittleEndian.AppendUint64(nil, l.calls), nil
}

func (l *loss) Load(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if len(b) != 8 {
		return fmt.Errorf("state of %d bytes, want 8", len(b))
	}
	l.calls = binary.LittleEndian.Uint64(b)
	return nil
}

func (l *loss) Compute(ctx context.Context, req *sdk.LossRequest) (*sdk.LossResult, error) {
	l.calls++
	logits, labels := req.Inputs["logits"], req.Inputs["labels"]
	if logits == nil || labels == nil {
		return nil, fmt.Errorf("needs logits and labels")
	}
	n, k := logits.Shape[0], logits.Shape[1]
	grad := make([]float32, n*k)
	total := 0.0
	for i := range n {
		row := logits.F32[i*k : (i+1)*k]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, float64(v))
		}
		sum := 0.0
		for _, v := range row {
			sum += math.Exp(float64(v) - m)
		}
		y := int(labels.I32[i])
		total += -(float64(row[y]) - m - math.Log(sum))
		for j, v := range row {
			p := math.Exp(float64(v)-m) / sum
			if j == y {
				p--
			}
			grad[i*k+j] = float32(p / float64(n))
		}
	}
	res := &sdk.LossResult{Loss: total / float64(n), Grads: map[string]*sdk.Tensor{"logits": sdk.NewFloat32(grad, n, k)}}
	if req.Step < l.atStep || !req.Training {
		return res, nil
	}
	switch l.fault {
	case "crash":
		// An uncaught panic off the call's goroutine: the runtime prints it
		// on the process's stderr and exits 2.
		go func() { panic("faulty: crashing on purpose") }()
		time.Sleep(time.Minute)
	case "crash_once":
		if _, err := os.Stat(os.Getenv("TMPDIR") + "/faulty-crashed"); err != nil {
			_ = os.WriteFile(os.Getenv("TMPDIR")+"/faulty-crashed", nil, 0o644)
			// Straight to the process's stderr (go-plugin redirects os.Stderr
			// through its stream, which an exit would cut short).
			_, _ = syscall.Write(2, []byte("faulty: crashing once\n"))
			os.Exit(3)
		}
	case "hang":
		// Hung for good: no answer even when the host's deadline cancels
		// the call (answering then raced the host's own deadline timer,
		// and a loaded machine could let the answer win).
		time.Sleep(time.Hour)
	case "nan":
		res.Loss = math.NaN()
	case "nan_grad":
		grad[1] = float32(math.Inf(1))
	case "shape":
		res.Grads["logits"] = sdk.NewFloat32(grad[:n*(k-1)], n, k-1)
	case "dtype":
		res.Grads["logits"] = &sdk.Tensor{DType: sdk.Float64, Shape: []int{n, k}, F64: make([]float64, n*k)}
	case "no_grad":
		delete(res.Grads, "logits")
	case "error":
		return nil, fmt.Errorf("refusing step %d on purpose", req.Step)
	case "env":
		if v := os.Getenv("PECO_TEST_SECRET"); v != "" {
			return nil, fmt.Errorf("saw the host's secret %q", v)
		}
	}
	return res, nil
}

func main() { sdk.Serve(&loss{}) }
