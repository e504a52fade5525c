package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestGeneratedFileUpToDate checks that ../../microkernel512_amd64.s is
// exactly what the generator emits, catching both hand edits of the assembly
// and generator changes that were not followed by "go generate ./cpu/gemm".
func TestGeneratedFileUpToDate(t *testing.T) {
	const path = "../../microkernel512_amd64.s"
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := generate(&got); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got.Bytes(), want) {
		return
	}
	gl := strings.Split(got.String(), "\n")
	wl := strings.Split(string(want), "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if i >= len(gl) || i >= len(wl) || g != w {
			t.Fatalf("%s is out of date (run go generate ./cpu/gemm); first difference at line %d:\n  file:      %q\n  generated: %q", path, i+1, w, g)
		}
	}
}
