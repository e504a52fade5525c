//go:build cgo && !noxla && linux && amd64

package main

// The XLA backend (PJRT plugins: CUDA, CPU), for GPU runs. Select it with
// --backend xla:<plugin> or PECO_BACKEND.
import _ "github.com/gomlx/go-xla/compute/xla"
