#include "textflag.h"

// func maskAVX2(ws *uint64, out *uint64, groups int, lo, span uint64)
//
// An unsigned w-lo < span is a signed (w-lo)^2^63 < span^2^63, and
// VPCMPGTQ compares four signed words at once. Each group of 64 words
// is 16 steps of 4, whose 4-bit masks make one 64-bit mask.
TEXT ·maskAVX2(SB), NOSPLIT, $0-40
	MOVQ ws+0(FP), SI
	MOVQ out+8(FP), DI
	MOVQ groups+16(FP), R9
	MOVQ lo+24(FP), AX
	MOVQ span+32(FP), BX
	MOVQ $0x8000000000000000, DX
	XORQ DX, BX
	VMOVQ AX, X0
	VPBROADCASTQ X0, Y0 // lo
	VMOVQ BX, X1
	VPBROADCASTQ X1, Y1 // span ^ 2^63
	VMOVQ DX, X2
	VPBROADCASTQ X2, Y2 // 2^63

group:
	TESTQ R9, R9
	JEQ   done
	XORQ  R8, R8 // the group's mask
	XORQ  CX, CX // the bit of the next 4 words

step:
	VMOVDQU (SI), Y3
	VMOVDQU 32(SI), Y4
	VPSUBQ Y0, Y3, Y3
	VPSUBQ Y0, Y4, Y4
	VPXOR Y2, Y3, Y3
	VPXOR Y2, Y4, Y4
	VPCMPGTQ Y3, Y1, Y3
	VPCMPGTQ Y4, Y1, Y4
	VMOVMSKPD Y3, R10
	VMOVMSKPD Y4, R11
	SHLQ $4, R11
	ORQ  R11, R10
	SHLQ CX, R10
	ORQ  R10, R8
	ADDQ $64, SI
	ADDQ $8, CX
	CMPQ CX, $64
	JLT  step
	MOVQ R8, (DI)
	ADDQ $8, DI
	DECQ R9
	JMP  group

done:
	VZEROUPPER
	RET
