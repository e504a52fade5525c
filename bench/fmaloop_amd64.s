//go:build amd64

#include "textflag.h"

// func fmaLoopAVX2(n int) float32
//
// Runs n iterations of 12 independent VFMADD231PS on 8 float32 lanes each
// (acc += 1 * 1), registers only, and returns lane 0 of the sum of the 12
// accumulators: 12*n, exact while n <= 2^20. Twelve chains cover an FMA
// latency of up to 6 cycles on two pipes, so the loop runs at the core's FMA
// throughput.
TEXT ·fmaLoopAVX2(SB), NOSPLIT, $0-12
	MOVQ n+0(FP), CX
	MOVL $0x3f800000, AX // 1.0f
	MOVL AX, X14
	VBROADCASTSS X14, Y14
	VMOVAPS Y14, Y15
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	TESTQ CX, CX
	JLE done

loop:
	VFMADD231PS Y14, Y15, Y0
	VFMADD231PS Y14, Y15, Y1
	VFMADD231PS Y14, Y15, Y2
	VFMADD231PS Y14, Y15, Y3
	VFMADD231PS Y14, Y15, Y4
	VFMADD231PS Y14, Y15, Y5
	VFMADD231PS Y14, Y15, Y6
	VFMADD231PS Y14, Y15, Y7
	VFMADD231PS Y14, Y15, Y8
	VFMADD231PS Y14, Y15, Y9
	VFMADD231PS Y14, Y15, Y10
	VFMADD231PS Y14, Y15, Y11
	DECQ CX
	JNZ loop

done:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y5, Y4, Y4
	VADDPS Y7, Y6, Y6
	VADDPS Y9, Y8, Y8
	VADDPS Y11, Y10, Y10
	VADDPS Y2, Y0, Y0
	VADDPS Y6, Y4, Y4
	VADDPS Y10, Y8, Y8
	VADDPS Y4, Y0, Y0
	VADDPS Y8, Y0, Y0
	VZEROUPPER
	MOVSS X0, ret+8(FP)
	RET
