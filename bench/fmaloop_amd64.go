//go:build amd64

package bench

import "golang.org/x/sys/cpu"

// fmaLoopAVX2 is implemented in fmaloop_amd64.s.
//
//go:noescape
func fmaLoopAVX2(n int) float32

// fmaLoopAVX512 is implemented in fmaloop_amd64.s.
//
//go:noescape
func fmaLoopAVX512(n int) float32

// fmaLoop runs n iterations of the register-only FMA loop (12 FMAs per
// iteration, on the widest vectors the CPU has: 16 lanes with AVX-512F, 8 with
// AVX2) and returns 12*n as the loop computed it, the FLOPs of one iteration
// and the lanes; ok is false when the CPU lacks AVX2 or FMA.
func fmaLoop(n int) (sum float32, flopsPerIter, lanes int, ok bool) {
	switch {
	case cpu.X86.HasAVX512F:
		return fmaLoopAVX512(n), 12 * 16 * 2, 16, true
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return fmaLoopAVX2(n), 12 * 8 * 2, 8, true
	}
	return 0, 0, 0, false
}
