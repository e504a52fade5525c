package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/tasks/tokenizer"
)

// newTokenizeCmd is `peco tokenize CHECKPOINT IMAGE...`.
func newTokenizeCmd(stdout io.Writer) *cobra.Command {
	var out, backend string
	cmd := &cobra.Command{
		Use:   "tokenize CHECKPOINT IMAGE...",
		Short: "print the token grid of images with a trained tokenizer and write their reconstructions",
		Long: `Tokenize loads the tokenizer of a tokenizer run (CHECKPOINT is a .ckpt file
inside <run>/checkpoints/, or the run directory itself for its last.ckpt; the
tokenizer's spec is read from <run>/config.yaml at task.tokenizer), resizes each
image (shorter side, then a center crop) to the run's image size, prints its
token grid and writes <out>/<image name>_recon.png (input | reconstruction).

Images (JPEG, PNG or BMP, at most data.MaxDecodePixels = 64 Mpx) are converted
to the tokenizer's channels, as timm and torchvision convert to the model's
mode: a color image given to a 1-channel tokenizer (the MNIST quickstart's) is
turned into grayscale (ITU-R BT.601 luma), a grayscale image given to an RGB
tokenizer is replicated to 3 channels; a note on stderr says so. A missing,
unreadable or corrupt image stops the command with an error naming it.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			tr, err := tokenizer.LoadTrained(args[0])
			if err != nil {
				return err
			}
			size := tr.ImageSize
			if size <= 0 {
				return fmt.Errorf("%s: the run's config has no task.data.augment.size", args[0])
			}
			be, _, err := OpenBackend(backend)
			if err != nil {
				return err
			}
			norm, err := data.NewNormalizer(core.TokenizerNorm)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("--out: %w", err)
			}
			for _, path := range args[1:] {
				im, err := readTokenizerImage(cmd.ErrOrStderr(), path, tr.Channels)
				if err != nil {
					return err
				}
				filter, _ := data.ParseFilter("bilinear")
				im = data.ResizeShorterCenterCrop(im, size, size, filter)
				pix := norm.Apply(im, nil)
				toks, h, w, rec, err := tr.Tokenize(be, append([]float32{}, pix...), 1, size, im.C)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				fmt.Fprintf(stdout, "%s: %dx%d tokens (vocabulary %d)\n", path, h, w, tr.Tokenizer.VocabSize())
				for y := range h {
					row := make([]string, w)
					for x := range w {
						row[x] = fmt.Sprintf("%5d", toks[y*w+x])
					}
					fmt.Fprintln(stdout, strings.Join(row, ""))
				}
				grid, err := tokenizer.GridPNG([][][]float32{{pix, rec}}, size, im.C)
				if err != nil {
					return err
				}
				name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)) + "_recon.png"
				dst := filepath.Join(out, name)
				if err := ckpt.WriteFileAtomic(dst, grid); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "reconstruction: %s\n", dst)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", ".", "folder for the reconstruction PNGs")
	cmd.Flags().StringVar(&backend, "backend", "", `compute backend: "cpu", "go" or "xla:<plugin>" (default $PECO_BACKEND or cpu)`)
	return cmd
}

// readTokenizerImage reads and decodes the image at path with the channels a
// tokenizer takes (1 or 3; 0: the image's own), converting color to
// grayscale or grayscale to RGB with a note on w. Errors name the file.
func readTokenizerImage(w io.Writer, path string, channels int) (*data.Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenize: reading image: %w", err)
	}
	im, err := data.DecodeImage(path, b)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	switch {
	case channels == 0 || im.C == channels:
		return im, nil
	case channels == 1:
		fmt.Fprintf(w, "note: %s is a color image; converted to grayscale (BT.601 luma) for the 1-channel tokenizer\n", path)
		return data.ToGray(im), nil
	case channels == 3:
		fmt.Fprintf(w, "note: %s is a grayscale image; replicated to 3 channels for the RGB tokenizer\n", path)
		return data.ToRGB(im), nil
	default:
		return nil, fmt.Errorf("tokenize: %s has %d channels, the tokenizer takes %d (only 1 and 3 are converted)", path, im.C, channels)
	}
}
