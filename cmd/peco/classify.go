package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/spf13/cobra"

	"github.com/peco-dev/peco/backbones/mobilenet"
	"github.com/peco-dev/peco/data"
)

// newClassifyCmd is `peco classify WEIGHTS IMAGE...`: ImageNet top-5 of a
// TFLite MobileNet classifier, computed by the float network of package
// mobilenet.
func newClassifyCmd(stdout io.Writer) *cobra.Command {
	var labelsPath, backendSpec string
	var top int
	cmd := &cobra.Command{
		Use:   "classify WEIGHTS IMAGE...",
		Short: "print the top ImageNet labels of images with a TFLite MobileNet classifier (e.g. mobilenet_v2_1.0_224_quant.tflite)",
		Long: `Classify loads a TFLite MobileNet classifier (its uint8 weights dequantized
to a float32 GoMLX network), and prints for each image (JPEG, PNG or BMP) the top
labels with their probabilities.

Images are preprocessed like TFLite's label_image example: the whole image is
resized (bilinear, antialiased) to the network's 224x224 input without
cropping, and pixels p become (p - 128)/128 as the quantized model reads them.
Labels come from imagenet_labels.txt next to WEIGHTS unless --labels is given;
there is one per output, index 0 being "background".`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return classify(stdout, args[0], args[1:], labelsPath, backendSpec, top)
		},
	}
	cmd.Flags().StringVar(&labelsPath, "labels", "", "label file, one label per line (default imagenet_labels.txt next to WEIGHTS)")
	cmd.Flags().StringVar(&backendSpec, "backend", "", `compute backend: "cpu", "go" or "xla:<plugin>" (default $PECO_BACKEND or cpu)`)
	cmd.Flags().IntVar(&top, "top", 5, "number of labels to print per image")
	return cmd
}

func classify(w io.Writer, weights string, images []string, labelsPath, backendSpec string, top int) error {
	cfg := mobilenet.DefaultConfigV2()
	cfg.Weights = weights
	net, err := mobilenet.Load(cfg)
	if err != nil {
		return err
	}
	classes := net.NumClasses()
	if classes == 0 {
		return fmt.Errorf("classify: %s has no classifier (its last operator is not SOFTMAX); use a classification model", weights)
	}
	if labelsPath == "" {
		labelsPath = filepath.Join(filepath.Dir(weights), "imagenet_labels.txt")
	}
	raw, err := os.ReadFile(labelsPath)
	if err != nil {
		return fmt.Errorf("classify: reading labels (set --labels): %w", err)
	}
	labels := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(labels) != classes {
		return fmt.Errorf("classify: %s has %d labels, but %s has %d classes", labelsPath, len(labels), weights, classes)
	}
	size := cfg.ImageSize
	var batch []float32
	for _, name := range images {
		b, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("classify: %w", err)
		}
		im, err := data.DecodeImageMode(name, b, data.ColorRGB)
		if err != nil {
			return fmt.Errorf("classify: %w", err)
		}
		batch = append(batch, net.Pixels(data.Resize(im, size, size, data.Bilinear))...)
	}
	backend, _, err := OpenBackend(backendSpec)
	if err != nil {
		return err
	}
	exec, err := model.NewExec(backend, model.NewStore(), func(scope *model.Scope, x *graph.Node) *graph.Node {
		return graph.Softmax(net.Logits(scope, x), -1)
	})
	if err != nil {
		return fmt.Errorf("classify: %w", err)
	}
	out, err := exec.Call1(tensors.FromFlatDataAndDimensions(batch, len(images), size, size, 3))
	if err != nil {
		return fmt.Errorf("classify: %w", err)
	}
	probs := tensors.MustCopyFlatData[float32](out)
	for i, name := range images {
		p := probs[i*classes : (i+1)*classes]
		idx := make([]int, classes)
		for j := range idx {
			idx[j] = j
		}
		sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
		fmt.Fprintln(w, name)
		for _, j := range idx[:min(top, classes)] {
			fmt.Fprintf(w, "  %6.2f%%  %4d  %s\n", 100*p[j], j, labels[j])
		}
	}
	return nil
}
