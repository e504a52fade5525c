//go:build amd64

package gemm

import (
	"os"

	"golang.org/x/sys/cpu"
)

// useAVX2 selects the assembly microkernel. It is set at start-up from the CPU
// features and may be cleared by tests to exercise the pure-Go kernel.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:generate go run ./internal/asmgen -o microkernel512_amd64.s

// useAVX512 selects the AVX-512F kernels, which compute two adjacent 6x16
// tiles at once on 16-lane vectors (the same bits as the AVX2 kernel). It is
// set at start-up from the CPU features (and the OS's support for the zmm
// state), unless the environment variable PECO_GEMM_AVX512 is "0"; tests
// clear it to exercise the AVX2 kernels.
var useAVX512 = useAVX2 && cpu.X86.HasAVX512F && os.Getenv("PECO_GEMM_AVX512") != "0"

// kernel6x32AVX512 computes the full 6x32 tile c = a x [b0 b1] (acc ==
// false) or c += a x [b0 b1] (acc == true), where a is a packed A
// micro-panel and b0 = b, b1 = b + kc*16 two consecutive packed B
// micro-panels; ldc is the row stride of c. Implemented in
// microkernel512_amd64.s (AVX-512F).
//
//go:noescape
func kernel6x32AVX512(kc int, a, b, c *float32, ldc int, acc bool)

// kernel6x32AVX512A is kernel6x32AVX512 with A read in place (row r of the
// 6 x kc block of A is a[r*lda : r*lda+kc]). Implemented in
// microkernel512_amd64.s.
//
//go:noescape
func kernel6x32AVX512A(kc int, a *float32, lda int, b, c *float32, ldc int, acc bool)

// kernel6x16AVX2 computes the full 6x16 tile c = a x b (acc == false) or
// c += a x b (acc == true), where a is a packed A micro-panel (kc groups of mr
// values) and b a packed B micro-panel (kc groups of nr values); ldc is the row
// stride of c in elements. Implemented in microkernel_amd64.s (AVX2 + FMA).
//
//go:noescape
func kernel6x16AVX2(kc int, a, b, c *float32, ldc int, acc bool)

// kernel6x16AVX2A is kernel6x16AVX2 with A read in place: row r of the
// 6 x kc block of A is a[r*lda : r*lda+kc] (a row-major A, not packed).
// Implemented in microkernel_amd64.s.
//
//go:noescape
func kernel6x16AVX2A(kc int, a *float32, lda int, b, c *float32, ldc int, acc bool)

// packA6N packs rows src[r*lds : r*lds+kc] for r in [0, 6) into dst k-major:
// dst[p*6+r] = src[r*lds+p]. Implemented in pack_amd64.s (SSE).
//
//go:noescape
func packA6N(kc int, src *float32, lds int, dst *float32)

// packA6T packs src[p*lds : p*lds+6] for p in [0, kc) into dst:
// dst[p*6+r] = src[p*lds+r]. Implemented in pack_amd64.s.
//
//go:noescape
func packA6T(kc int, src *float32, lds int, dst *float32)

// packB16T packs src[c*lds : c*lds+kc] for c in [0, 16) into dst k-major:
// dst[p*16+c] = src[c*lds+p]. Implemented in pack_amd64.s (SSE).
//
//go:noescape
func packB16T(kc int, src *float32, lds int, dst *float32)

// packB16N packs src[p*lds : p*lds+16] for p in [0, kc) into dst:
// dst[p*16+c] = src[p*lds+c]. Implemented in pack_amd64.s (SSE).
//
//go:noescape
func packB16N(kc int, src *float32, lds int, dst *float32)

// kernel6x64AVX512 is kernel6x32AVX512 over four consecutive packed B
// micro-panels (a 6x64 tile, 24 accumulators). Implemented in
// microkernel512_amd64.s.
//
//go:noescape
func kernel6x64AVX512(kc int, a, b, c *float32, ldc int, acc bool)

// kernel6x64AVX512A is kernel6x64AVX512 with A read in place.
// Implemented in microkernel512_amd64.s.
//
//go:noescape
func kernel6x64AVX512A(kc int, a *float32, lda int, b, c *float32, ldc int, acc bool)
