// Command peco-plugin-faulty_task is the Fashion-MNIST task plugin with
// faults on demand (config key `fault`), for the host's tests.
package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/peco-dev/peco/plugins/examples/fashion-mnist/fmnist"
	"github.com/peco-dev/peco/plugins/sdk"
)

type task struct {
	fmnist.Task
	fault   string
	samples atomic.Int64
}

func (t *task) Info() sdk.Info {
	info := t.Task.Info()
	info.Name = "faulty_task"
	info.Schema = append(info.Schema, sdk.Field{Key: "fault", Type: sdk.FieldString, Default: "",
		Doc: "describe_head, describe_primary, label_dtype, pixel_range, short_samples, crash_samples, nan_metric, no_primary, hang_evaluate"})
	return info
}

func (t *task) Configure(cfg sdk.Config, seed int64) error {
	t.fault = cfg.String("fault")
	return t.Task.Configure(cfg, seed)
}

func (t *task) Describe() (sdk.TaskSpec, error) {
	spec, err := t.Task.Describe()
	switch t.fault {
	case "describe_head":
		spec.Head = 7
	case "describe_primary":
		spec.PrimaryMetric = "auc"
	}
	return spec, err
}

func (t *task) Samples(ctx context.Context, split string, indices []int, epoch int) (*sdk.Tensor, *sdk.Tensor, error) {
	n := t.samples.Add(1)
	images, labels, err := t.Task.Samples(ctx, split, indices, epoch)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case t.fault == "label_dtype":
		f := make([]float32, len(labels.I32))
		labels = sdk.NewFloat32(f, labels.Shape...)
	case t.fault == "pixel_range" && n == 2:
		images.F32[5] = 2
	case t.fault == "short_samples":
		images, labels = sdk.RowSlice(images, 0, len(indices)-1), sdk.RowSlice(labels, 0, len(indices)-1)
	case t.fault == "crash_samples" && n == 3:
		fmt.Fprintln(os.Stderr, "faulty_task: crashing as asked")
		os.Exit(3)
	}
	return images, labels, nil
}

func (t *task) Evaluate(ctx context.Context, split string, indices []int, predictions *sdk.Tensor) (map[string]float64, error) {
	m, err := t.Task.Evaluate(ctx, split, indices, predictions)
	switch t.fault {
	case "nan_metric":
		m[fmnist.MetricMacroF1] = math.NaN()
	case "no_primary":
		delete(m, fmnist.MetricTop1)
	case "hang_evaluate":
		time.Sleep(time.Minute)
	}
	return m, err
}

func main() { sdk.Serve(&task{}) }
