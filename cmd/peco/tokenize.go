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
token grid and writes <out>/<image name>_recon.png (input | reconstruction).`,
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
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				im, err := data.DecodeImage(path, b)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
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
