package data

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// SharedEnv is the environment variable naming the shared folder (real data
// sets in data/, pretrained weights in weights/) when it is not next to the
// repository.
const SharedEnv = "PECO_SHARED"

// SharedDir returns the shared folder: $PECO_SHARED when set, else
// ../shared seen from repoRoot, where the shipped configs expect it (they
// name ../shared/data/cifar10.tar.gz, ../shared/weights/..., relative to
// the repository root they are run from).
func SharedDir(repoRoot string) string {
	if d := os.Getenv(SharedEnv); d != "" {
		return d
	}
	return filepath.Join(repoRoot, "..", "shared")
}

// SharedArchives lists the dataset archives (.tar, .tar.gz, .tgz) in the
// data folder of the shared folder dir, sorted by name.
func SharedArchives(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, "data"))
	if err != nil {
		return nil, fmt.Errorf("shared data: %w", err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && IsArchive(e.Name()) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}
