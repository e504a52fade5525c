//go:build amd64

#include "textflag.h"

// func packA6N(kc int, src *float32, lds int, dst *float32)
//
// Packs a 6 x kc block of a row-major matrix (row r at src + r*lds elements)
// into dst, k-major: dst[p*6+r] = src[r*lds+p]. Four depths at a time are
// transposed in SSE registers; the remainder is copied element by element.
TEXT ·packA6N(SB), NOSPLIT, $0-32
	MOVQ kc+0(FP), CX
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), R8
	MOVQ dst+24(FP), DI
	SHLQ $2, R8          // row stride in bytes
	LEAQ (SI)(R8*2), R11
	ADDQ R8, R11         // R11 = row 3
	MOVQ CX, R9
	SHRQ $2, R9
	ANDQ $3, CX
	TESTQ R9, R9
	JZ   tail

loop4:
	MOVUPS (SI), X0       // row 0, depths p..p+3
	MOVUPS (SI)(R8*1), X1 // row 1
	MOVUPS (SI)(R8*2), X2 // row 2
	MOVUPS (R11), X3      // row 3
	MOVUPS (SI)(R8*4), X4 // row 4
	MOVUPS (R11)(R8*2), X5 // row 5
	MOVAPS X0, X6
	UNPCKLPS X1, X6       // X6 = r0[0] r1[0] r0[1] r1[1]
	UNPCKHPS X1, X0       // X0 = r0[2] r1[2] r0[3] r1[3]
	MOVAPS X2, X7
	UNPCKLPS X3, X7       // X7 = r2[0] r3[0] r2[1] r3[1]
	UNPCKHPS X3, X2       // X2 = r2[2] r3[2] r2[3] r3[3]
	MOVAPS X4, X8
	UNPCKLPS X5, X8       // X8 = r4[0] r5[0] r4[1] r5[1]
	UNPCKHPS X5, X4       // X4 = r4[2] r5[2] r4[3] r5[3]
	MOVAPS X6, X9
	UNPCKLPD X7, X9       // depth 0, rows 0..3
	UNPCKHPD X7, X6       // depth 1, rows 0..3
	MOVAPS X0, X10
	UNPCKLPD X2, X10      // depth 2, rows 0..3
	UNPCKHPD X2, X0       // depth 3, rows 0..3
	MOVUPS X9, 0(DI)
	MOVQ   X8, 16(DI)
	MOVUPS X6, 24(DI)
	MOVHPS X8, 40(DI)
	MOVUPS X10, 48(DI)
	MOVQ   X4, 64(DI)
	MOVUPS X0, 72(DI)
	MOVHPS X4, 88(DI)
	ADDQ $16, SI
	ADDQ $16, R11
	ADDQ $96, DI
	DECQ R9
	JNZ  loop4

tail:
	TESTQ CX, CX
	JZ   done

loop1:
	MOVSS (SI), X0
	MOVSS (SI)(R8*1), X1
	MOVSS (SI)(R8*2), X2
	MOVSS (R11), X3
	MOVSS (SI)(R8*4), X4
	MOVSS (R11)(R8*2), X5
	MOVSS X0, 0(DI)
	MOVSS X1, 4(DI)
	MOVSS X2, 8(DI)
	MOVSS X3, 12(DI)
	MOVSS X4, 16(DI)
	MOVSS X5, 20(DI)
	ADDQ $4, SI
	ADDQ $4, R11
	ADDQ $24, DI
	DECQ CX
	JNZ  loop1

done:
	RET

// func packA6T(kc int, src *float32, lds int, dst *float32)
//
// Packs 6 consecutive columns over kc rows of a row-major matrix (row p at
// src + p*lds elements) into dst: dst[p*6+r] = src[p*lds+r].
TEXT ·packA6T(SB), NOSPLIT, $0-32
	MOVQ kc+0(FP), CX
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), R8
	MOVQ dst+24(FP), DI
	SHLQ $2, R8
	TESTQ CX, CX
	JZ   doneT

loopT:
	MOVUPS (SI), X0
	MOVQ   16(SI), X1
	MOVUPS X0, 0(DI)
	MOVQ   X1, 16(DI)
	ADDQ R8, SI
	ADDQ $24, DI
	DECQ CX
	JNZ  loopT

doneT:
	RET

// func packB16T(kc int, src *float32, lds int, dst *float32)
//
// Packs 16 rows of a row-major matrix (row c at src + c*lds elements, kc
// elements used) into dst, k-major: dst[p*16+c] = src[c*lds+p]. Rows are
// handled in groups of four; four depths at a time are transposed in SSE
// registers and the remainder is copied element by element.
TEXT ·packB16T(SB), NOSPLIT, $0-32
	MOVQ kc+0(FP), AX
	MOVQ src+8(FP), BX
	MOVQ lds+16(FP), R8
	MOVQ dst+24(FP), DX
	SHLQ $2, R8        // row stride in bytes
	MOVQ $4, R12       // groups of 4 rows left

group:
	MOVQ BX, SI
	LEAQ (SI)(R8*2), R11
	ADDQ R8, R11       // R11 = row 3 of the group
	MOVQ DX, DI
	MOVQ AX, R9
	SHRQ $2, R9
	MOVQ AX, CX
	ANDQ $3, CX
	TESTQ R9, R9
	JZ   gtail

gloop4:
	MOVUPS (SI), X0
	MOVUPS (SI)(R8*1), X1
	MOVUPS (SI)(R8*2), X2
	MOVUPS (R11), X3
	MOVAPS X0, X4
	UNPCKLPS X1, X4    // r0[0] r1[0] r0[1] r1[1]
	UNPCKHPS X1, X0    // r0[2] r1[2] r0[3] r1[3]
	MOVAPS X2, X5
	UNPCKLPS X3, X5    // r2[0] r3[0] r2[1] r3[1]
	UNPCKHPS X3, X2    // r2[2] r3[2] r2[3] r3[3]
	MOVAPS X4, X6
	UNPCKLPD X5, X6    // depth 0
	UNPCKHPD X5, X4    // depth 1
	MOVAPS X0, X7
	UNPCKLPD X2, X7    // depth 2
	UNPCKHPD X2, X0    // depth 3
	MOVUPS X6, 0(DI)
	MOVUPS X4, 64(DI)
	MOVUPS X7, 128(DI)
	MOVUPS X0, 192(DI)
	ADDQ $16, SI
	ADDQ $16, R11
	ADDQ $256, DI
	DECQ R9
	JNZ  gloop4

gtail:
	TESTQ CX, CX
	JZ   gnext

gloop1:
	MOVSS (SI), X0
	MOVSS (SI)(R8*1), X1
	MOVSS (SI)(R8*2), X2
	MOVSS (R11), X3
	MOVSS X0, 0(DI)
	MOVSS X1, 4(DI)
	MOVSS X2, 8(DI)
	MOVSS X3, 12(DI)
	ADDQ $4, SI
	ADDQ $4, R11
	ADDQ $64, DI
	DECQ CX
	JNZ  gloop1

gnext:
	LEAQ (BX)(R8*4), BX // next 4 rows
	ADDQ $16, DX        // next 4 columns of dst
	DECQ R12
	JNZ  group
	RET

// func packB16N(kc int, src *float32, lds int, dst *float32)
//
// Packs 16 consecutive columns over kc rows of a row-major matrix (row p at
// src + p*lds elements) into dst: dst[p*16+c] = src[p*lds+c].
TEXT ·packB16N(SB), NOSPLIT, $0-32
	MOVQ kc+0(FP), CX
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), R8
	MOVQ dst+24(FP), DI
	SHLQ $2, R8
	MOVQ R8, R9
	SHLQ $4, R9 // 16 rows ahead
	TESTQ CX, CX
	JZ   doneN

loopN:
	PREFETCHT0 (SI)(R9*1)
	PREFETCHT0 60(SI)(R9*1)
	MOVUPS 0(SI), X0
	MOVUPS 16(SI), X1
	MOVUPS 32(SI), X2
	MOVUPS 48(SI), X3
	MOVUPS X0, 0(DI)
	MOVUPS X1, 16(DI)
	MOVUPS X2, 32(DI)
	MOVUPS X3, 48(DI)
	ADDQ R8, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  loopN

doneN:
	RET
