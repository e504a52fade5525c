//go:build amd64

package gemm

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly microkernel. It is set at start-up from the CPU
// features and may be cleared by tests to exercise the pure-Go kernel.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kernel6x16AVX2 computes the full 6x16 tile c = a x b (acc == false) or
// c += a x b (acc == true), where a is a packed A micro-panel (kc groups of mr
// values) and b a packed B micro-panel (kc groups of nr values); ldc is the row
// stride of c in elements. Implemented in microkernel_amd64.s (AVX2 + FMA).
//
//go:noescape
func kernel6x16AVX2(kc int, a, b, c *float32, ldc int, acc bool)
