package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	root := os.Getenv("PECO_SHARED")
	if root == "" {
		root = filepath.Join("..", "..", "..", "shared")
	}
	dir := filepath.Join(root, "weights", "mobilenet-tflite")
	weights := filepath.Join(dir, "mobilenet_v2_1.0_224_quant.tflite")
	if _, err := os.Stat(weights); err != nil {
		t.Skipf("MobileNet TFLite weights not found in %s (set PECO_SHARED to the shared folder): %v", dir, err)
	}
	var out bytes.Buffer
	cmd := newRootCmd(&out, &out)
	cmd.SetArgs([]string{"classify", weights, filepath.Join(dir, "parrot.jpg"), filepath.Join(dir, "grace_hopper.bmp")})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 12 || !strings.HasSuffix(lines[1], "  macaw") || !strings.HasSuffix(lines[7], "  military uniform") {
		t.Errorf("unexpected output:\n%s", out.String())
	}

	cmd = newRootCmd(&out, &out)
	cmd.SetArgs([]string{"classify", weights, filepath.Join(dir, "missing.jpg")})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "missing.jpg") {
		t.Errorf("missing image: %v", err)
	}
}
