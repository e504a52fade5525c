//go:build amd64

package bench

import "golang.org/x/sys/cpu"

// fmaLoopAVX2 is implemented in fmaloop_amd64.s.
//
//go:noescape
func fmaLoopAVX2(n int) float32

// fmaLoop runs n iterations of the register-only FMA loop (12 FMAs of 8
// lanes each per iteration) and returns 12*n as the loop computed it; ok is
// false when the CPU lacks AVX2 or FMA.
func fmaLoop(n int) (sum float32, flopsPerIter int, ok bool) {
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		return 0, 0, false
	}
	return fmaLoopAVX2(n), 12 * 8 * 2, true
}
