//go:build !goexperiment.simd

package main

// simdExperiment reports whether this binary was built with
// GOEXPERIMENT=simd (the cpu backend's vectorised element-wise loops, on
// amd64).
const simdExperiment = false
