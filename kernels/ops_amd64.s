//go:build amd64 && gc && !noasm

// The non-matmul kernels of a forward pass: elementwise ops, RMSNorm, RoPE,
// a vectorised exp and the attention primitives (score dots, online
// softmax, probability-weighted sum of values, bf16 row conversion), in
// AVX-512 (zmm) and AVX2 (ymm) versions. Each function works on whole
// vectors; the Go wrappers in ops_amd64.go and attention_amd64.go handle
// tails and document the reference loop.

#include "textflag.h"

// Constants of the exp kernels, each repeated 8 times (32 bytes) so the AVX2
// code can use them as memory operands and the AVX-512 code can broadcast
// them. exp(x) = 2^n · P(r) with n = round(x·log2 e), r = x − n·ln2 (ln2 in
// two parts, Cody–Waite), and P Cephes' expf polynomial evaluated by Horner.
// 0: hi clamp 88.8
DATA ·expConsts+0(SB)/8, $0x42b1999a42b1999a
DATA ·expConsts+8(SB)/8, $0x42b1999a42b1999a
DATA ·expConsts+16(SB)/8, $0x42b1999a42b1999a
DATA ·expConsts+24(SB)/8, $0x42b1999a42b1999a
// 32: lo clamp -104
DATA ·expConsts+32(SB)/8, $0xc2d00000c2d00000
DATA ·expConsts+40(SB)/8, $0xc2d00000c2d00000
DATA ·expConsts+48(SB)/8, $0xc2d00000c2d00000
DATA ·expConsts+56(SB)/8, $0xc2d00000c2d00000
// 64: log2(e)
DATA ·expConsts+64(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA ·expConsts+72(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA ·expConsts+80(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA ·expConsts+88(SB)/8, $0x3fb8aa3b3fb8aa3b
// 96: ln2 hi
DATA ·expConsts+96(SB)/8, $0x3f3180003f318000
DATA ·expConsts+104(SB)/8, $0x3f3180003f318000
DATA ·expConsts+112(SB)/8, $0x3f3180003f318000
DATA ·expConsts+120(SB)/8, $0x3f3180003f318000
// 128: ln2 lo
DATA ·expConsts+128(SB)/8, $0xb95e8083b95e8083
DATA ·expConsts+136(SB)/8, $0xb95e8083b95e8083
DATA ·expConsts+144(SB)/8, $0xb95e8083b95e8083
DATA ·expConsts+152(SB)/8, $0xb95e8083b95e8083
// 160: c0
DATA ·expConsts+160(SB)/8, $0x3950696739506967
DATA ·expConsts+168(SB)/8, $0x3950696739506967
DATA ·expConsts+176(SB)/8, $0x3950696739506967
DATA ·expConsts+184(SB)/8, $0x3950696739506967
// 192: c1
DATA ·expConsts+192(SB)/8, $0x3ab743ce3ab743ce
DATA ·expConsts+200(SB)/8, $0x3ab743ce3ab743ce
DATA ·expConsts+208(SB)/8, $0x3ab743ce3ab743ce
DATA ·expConsts+216(SB)/8, $0x3ab743ce3ab743ce
// 224: c2
DATA ·expConsts+224(SB)/8, $0x3c0889083c088908
DATA ·expConsts+232(SB)/8, $0x3c0889083c088908
DATA ·expConsts+240(SB)/8, $0x3c0889083c088908
DATA ·expConsts+248(SB)/8, $0x3c0889083c088908
// 256: c3
DATA ·expConsts+256(SB)/8, $0x3d2aa9c13d2aa9c1
DATA ·expConsts+264(SB)/8, $0x3d2aa9c13d2aa9c1
DATA ·expConsts+272(SB)/8, $0x3d2aa9c13d2aa9c1
DATA ·expConsts+280(SB)/8, $0x3d2aa9c13d2aa9c1
// 288: c4
DATA ·expConsts+288(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA ·expConsts+296(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA ·expConsts+304(SB)/8, $0x3e2aaaaa3e2aaaaa
DATA ·expConsts+312(SB)/8, $0x3e2aaaaa3e2aaaaa
// 320: c5
DATA ·expConsts+320(SB)/8, $0x3f0000003f000000
DATA ·expConsts+328(SB)/8, $0x3f0000003f000000
DATA ·expConsts+336(SB)/8, $0x3f0000003f000000
DATA ·expConsts+344(SB)/8, $0x3f0000003f000000
// 352: 1.0
DATA ·expConsts+352(SB)/8, $0x3f8000003f800000
DATA ·expConsts+360(SB)/8, $0x3f8000003f800000
DATA ·expConsts+368(SB)/8, $0x3f8000003f800000
DATA ·expConsts+376(SB)/8, $0x3f8000003f800000
// 384: 127
DATA ·expConsts+384(SB)/8, $0x0000007f0000007f
DATA ·expConsts+392(SB)/8, $0x0000007f0000007f
DATA ·expConsts+400(SB)/8, $0x0000007f0000007f
DATA ·expConsts+408(SB)/8, $0x0000007f0000007f
// 416: sign
DATA ·expConsts+416(SB)/8, $0x8000000080000000
DATA ·expConsts+424(SB)/8, $0x8000000080000000
DATA ·expConsts+432(SB)/8, $0x8000000080000000
DATA ·expConsts+440(SB)/8, $0x8000000080000000
GLOBL ·expConsts(SB), RODATA|NOPTR, $448

// ---------------------------------------------------------------------------
// AVX-512

// EXP_CONSTS_512 loads the exp constants into Z16..Z28 (Z28: sign mask).
#define EXP_CONSTS_512 \
	VBROADCASTSS ·expConsts+0(SB), Z16; \
	VBROADCASTSS ·expConsts+32(SB), Z17; \
	VBROADCASTSS ·expConsts+64(SB), Z18; \
	VBROADCASTSS ·expConsts+96(SB), Z19; \
	VBROADCASTSS ·expConsts+128(SB), Z20; \
	VBROADCASTSS ·expConsts+160(SB), Z21; \
	VBROADCASTSS ·expConsts+192(SB), Z22; \
	VBROADCASTSS ·expConsts+224(SB), Z23; \
	VBROADCASTSS ·expConsts+256(SB), Z24; \
	VBROADCASTSS ·expConsts+288(SB), Z25; \
	VBROADCASTSS ·expConsts+320(SB), Z26; \
	VBROADCASTSS ·expConsts+352(SB), Z27; \
	VBROADCASTSS ·expConsts+416(SB), Z28

// EXP512 replaces X by e^X, using T1 and T2. The clamps keep NaN (it is
// the second source of VMINPS/VMAXPS); VSCALEFPS scales by 2^n with
// correct overflow to +Inf and gradual underflow.
#define EXP512(X, T1, T2) \
	VMINPS X, Z16, X; \
	VMAXPS X, Z17, X; \
	VMULPS Z18, X, T1; \
	VRNDSCALEPS $0, T1, T1; \
	VFNMADD231PS Z19, T1, X; \
	VFNMADD231PS Z20, T1, X; \
	VMOVAPS Z21, T2; \
	VFMADD213PS Z22, X, T2; \
	VFMADD213PS Z23, X, T2; \
	VFMADD213PS Z24, X, T2; \
	VFMADD213PS Z25, X, T2; \
	VFMADD213PS Z26, X, T2; \
	VFMADD213PS Z27, X, T2; \
	VFMADD213PS Z27, X, T2; \
	VSCALEFPS T1, T2, X

// func expAVX512(y, x *float32, n int)
TEXT ·expAVX512(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JZ   expdone512
	EXP_CONSTS_512

exploop512:
	VMOVUPS (SI), Z0
	EXP512(Z0, Z1, Z2)
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     exploop512

expdone512:
	VZEROUPPER
	RET

// func swigluAVX512(y, gate, up *float32, n int)
TEXT ·swigluAVX512(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	JZ   swidone512
	EXP_CONSTS_512

swiloop512:
	VMOVUPS (SI), Z1
	VPXORD  Z28, Z1, Z0
	EXP512(Z0, Z2, Z3)
	VADDPS  Z27, Z0, Z0
	VDIVPS  Z0, Z1, Z0
	VMULPS  (DX), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	DECQ    CX
	JNZ     swiloop512

swidone512:
	VZEROUPPER
	RET

// func addAVX512(y, a, b *float32, n int)
TEXT ·addAVX512(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	JZ   adddone512

addloop512:
	VMOVUPS (SI), Z0
	VADDPS  (DX), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	DECQ    CX
	JNZ     addloop512

adddone512:
	VZEROUPPER
	RET

// func maxAVX512(x *float32, n int) float32
// The largest of x[0..n&^63), NaNs skipped (-Inf if all are NaN; n >= 64).
// VMAXPS returns its second (Intel) source when either is NaN, so the
// running maxima are the second source.
TEXT ·maxAVX512(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	MOVL         $0xff800000, AX // -Inf
	VPBROADCASTD AX, Z0
	VMOVAPS      Z0, Z1
	VMOVAPS      Z0, Z2
	VMOVAPS      Z0, Z3
	SHRQ         $6, CX
	JZ           maxred512

maxloop512:
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VMOVUPS 128(SI), Z6
	VMOVUPS 192(SI), Z7
	VMAXPS  Z0, Z4, Z0
	VMAXPS  Z1, Z5, Z1
	VMAXPS  Z2, Z6, Z2
	VMAXPS  Z3, Z7, Z3
	ADDQ    $256, SI
	DECQ   CX
	JNZ    maxloop512

maxred512:
	VMAXPS        Z1, Z0, Z0
	VMAXPS        Z3, Z2, Z2
	VMAXPS        Z2, Z0, Z0
	VEXTRACTF32X8 $1, Z0, Y1
	VMAXPS        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VMAXPS        X1, X0, X0
	VPERMILPS     $0x4e, X0, X1
	VMAXPS        X1, X0, X0
	VPERMILPS     $0xb1, X0, X1
	VMAXPS        X1, X0, X0
	VMOVSS        X0, ret+16(FP)
	VZEROUPPER
	RET

// func findAVX512(x *float32, n int, v float32) int
// The first i < n&^15 with x[i] == v, or -1.
TEXT ·findAVX512(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS v+16(FP), Z0
	XORQ         DX, DX
	SHRQ         $4, CX
	JZ           findnone512

findloop512:
	VCMPPS   $0, (SI)(DX*4), Z0, K1
	KORTESTW K1, K1
	JNZ      findhit512
	ADDQ     $16, DX
	DECQ     CX
	JNZ      findloop512

findnone512:
	MOVQ $-1, ret+24(FP)
	VZEROUPPER
	RET

findhit512:
	KMOVW  K1, AX
	TZCNTL AX, AX
	ADDQ   AX, DX
	MOVQ   DX, ret+24(FP)
	VZEROUPPER
	RET

// func sumsqAVX512(x *float32, n int) float64
TEXT ·sumsqAVX512(SB), NOSPLIT, $0-24
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPD Z2, Z2, Z2
	VXORPD Z3, Z3, Z3
	SHRQ   $4, CX
	JZ     sumsqred512

sumsqloop512:
	VCVTPS2PD   (SI), Z0
	VCVTPS2PD   32(SI), Z1
	VFMADD231PD Z0, Z0, Z2
	VFMADD231PD Z1, Z1, Z3
	ADDQ        $64, SI
	DECQ        CX
	JNZ         sumsqloop512

sumsqred512:
	VADDPD        Z3, Z2, Z2
	VEXTRACTF64X4 $1, Z2, Y3
	VADDPD        Y3, Y2, Y2
	VEXTRACTF128  $1, Y2, X3
	VADDPD        X3, X2, X2
	VPERMILPD     $1, X2, X3
	VADDSD        X3, X2, X2
	VMOVSD        X2, ret+16(FP)
	VZEROUPPER
	RET

// func scaleMulAVX512(y, x, w *float32, n int, inv float32)
TEXT ·scaleMulAVX512(SB), NOSPLIT, $0-36
	MOVQ         y+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         w+16(FP), DX
	MOVQ         n+24(FP), CX
	VMOVSS       inv+32(FP), X1
	VBROADCASTSS X1, Z1
	SHRQ         $4, CX
	JZ           scaledone512

scaleloop512:
	VMULPS  (SI), Z1, Z0
	VMULPS  (DX), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	DECQ    CX
	JNZ     scaleloop512

scaledone512:
	VZEROUPPER
	RET

// func ropeNormAVX512(x, c, s *float32, heads, stride, n int)
// For each head h and i < n (a multiple of 16), pairs (2j, 2j+1):
// y = x·c + swap(x)·s, with c = (cos, cos) and s = (−sin, sin) per pair.
TEXT ·ropeNormAVX512(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), DI
	MOVQ c+8(FP), R8
	MOVQ s+16(FP), R9
	MOVQ heads+24(FP), CX
	MOVQ stride+32(FP), R10
	MOVQ n+40(FP), R11
	SHLQ $2, R10
	SHLQ $2, R11
	TESTQ CX, CX
	JZ    ropendone512
	TESTQ R11, R11
	JZ    ropendone512

ropenhead512:
	XORQ AX, AX

ropenloop512:
	VMOVUPS   (DI)(AX*1), Z0
	VPERMILPS $0xB1, Z0, Z1
	VMULPS    (R8)(AX*1), Z0, Z0
	VMULPS    (R9)(AX*1), Z1, Z1
	VADDPS    Z1, Z0, Z0
	VMOVUPS   Z0, (DI)(AX*1)
	ADDQ      $64, AX
	CMPQ      AX, R11
	JL        ropenloop512
	ADDQ      R10, DI
	DECQ      CX
	JNZ       ropenhead512

ropendone512:
	VZEROUPPER
	RET

// func ropeNeoxAVX512(x, c, s *float32, heads, stride, half, n int)
// For each head and i < n (a multiple of 16): a = x[i], b = x[half+i],
// x[i] = a·c − b·s, x[half+i] = a·s + b·c.
TEXT ·ropeNeoxAVX512(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), DI
	MOVQ c+8(FP), R8
	MOVQ s+16(FP), R9
	MOVQ heads+24(FP), CX
	MOVQ stride+32(FP), R10
	MOVQ half+40(FP), DX
	MOVQ n+48(FP), R11
	SHLQ $2, R10
	SHLQ $2, DX
	SHLQ $2, R11
	TESTQ CX, CX
	JZ    ropexdone512
	TESTQ R11, R11
	JZ    ropexdone512

ropexhead512:
	XORQ AX, AX
	LEAQ (DI)(DX*1), SI

ropexloop512:
	VMOVUPS (DI)(AX*1), Z0
	VMOVUPS (SI)(AX*1), Z1
	VMOVUPS (R8)(AX*1), Z2
	VMOVUPS (R9)(AX*1), Z3
	VMULPS  Z2, Z0, Z4
	VMULPS  Z3, Z1, Z5
	VSUBPS  Z5, Z4, Z4
	VMULPS  Z3, Z0, Z6
	VMULPS  Z2, Z1, Z7
	VADDPS  Z7, Z6, Z6
	VMOVUPS Z4, (DI)(AX*1)
	VMOVUPS Z6, (SI)(AX*1)
	ADDQ    $64, AX
	CMPQ    AX, R11
	JL      ropexloop512
	ADDQ    R10, DI
	DECQ    CX
	JNZ     ropexhead512

ropexdone512:
	VZEROUPPER
	RET

// F32LOAD and BF16LOAD load a vector of 16 floats from addr into z: f32
// as they are, bf16 widened (each value shifted into the top half). The
// kernels that read f32 or bf16 keys and values take one of them.
#define F32LOAD(addr, z) VMOVUPS addr, z
#define BF16LOAD(addr, z) VPMOVZXWD addr, z; VPSLLD $16, z, z

// DOTS_PAIR_STORE sums the accumulators of dotsAVX512's four query rows
// against two keys (Z4..Z7 key 0, Z8..Z11 key 1) and stores the eight
// scores at BX, rows R13 bytes apart; it uses Z12, Z13 and R8.
#define DOTS_PAIR_STORE \
	VEXTRACTF64X4 $1, Z4, Y12; \
	VADDPS        Y12, Y4, Y4; \
	VEXTRACTF64X4 $1, Z5, Y12; \
	VADDPS        Y12, Y5, Y5; \
	VEXTRACTF64X4 $1, Z6, Y12; \
	VADDPS        Y12, Y6, Y6; \
	VEXTRACTF64X4 $1, Z7, Y12; \
	VADDPS        Y12, Y7, Y7; \
	VHADDPS       Y5, Y4, Y4; \
	VHADDPS       Y7, Y6, Y6; \
	VHADDPS       Y6, Y4, Y4; \
	VEXTRACTF128  $1, Y4, X5; \
	VADDPS        X5, X4, X4; \
	VEXTRACTF64X4 $1, Z8, Y12; \
	VADDPS        Y12, Y8, Y8; \
	VEXTRACTF64X4 $1, Z9, Y12; \
	VADDPS        Y12, Y9, Y9; \
	VEXTRACTF64X4 $1, Z10, Y12; \
	VADDPS        Y12, Y10, Y10; \
	VEXTRACTF64X4 $1, Z11, Y12; \
	VADDPS        Y12, Y11, Y11; \
	VHADDPS       Y9, Y8, Y8; \
	VHADDPS       Y11, Y10, Y10; \
	VHADDPS       Y10, Y8, Y8; \
	VEXTRACTF128  $1, Y8, X9; \
	VADDPS        X9, X8, X8; \
	VUNPCKLPS X8, X4, X12; \
	VUNPCKHPS X8, X4, X13; \
	VMOVLPS   X12, (BX); \
	VMOVHPS   X12, (BX)(R13*1); \
	VMOVLPS   X13, (BX)(R13*2); \
	LEAQ      (BX)(R13*2), R8; \
	VMOVHPS   X13, (R8)(R13*1)

// DOTS_ONE_STORE sums Z4..Z7, four query rows against one key, and
// stores the scores at BX, rows R13 bytes apart; it uses Z12 and R8.
#define DOTS_ONE_STORE \
	VEXTRACTF64X4 $1, Z4, Y12; \
	VADDPS        Y12, Y4, Y4; \
	VEXTRACTF64X4 $1, Z5, Y12; \
	VADDPS        Y12, Y5, Y5; \
	VEXTRACTF64X4 $1, Z6, Y12; \
	VADDPS        Y12, Y6, Y6; \
	VEXTRACTF64X4 $1, Z7, Y12; \
	VADDPS        Y12, Y7, Y7; \
	VHADDPS       Y5, Y4, Y4; \
	VHADDPS       Y7, Y6, Y6; \
	VHADDPS       Y6, Y4, Y4; \
	VEXTRACTF128  $1, Y4, X5; \
	VADDPS        X5, X4, X4; \
	VMOVSS     X4, (BX); \
	VEXTRACTPS $1, X4, (BX)(R13*1); \
	VEXTRACTPS $2, X4, (BX)(R13*2); \
	LEAQ       (BX)(R13*2), R8; \
	VEXTRACTPS $3, X4, (R8)(R13*1)

// DOTS_SINGLE_STORE sums Z4 and stores the score at BX; it uses Z8.
#define DOTS_SINGLE_STORE \
	VEXTRACTF64X4 $1, Z4, Y8; \
	VADDPS        Y8, Y4, Y4; \
	VEXTRACTF128  $1, Y4, X8; \
	VADDPS        X8, X4, X4; \
	VHADDPS       X4, X4, X4; \
	VHADDPS       X4, X4, X4; \
	VMOVSS        X4, (BX)

// DOTS_BODY is dotsAVX512 and dotsBF16AVX512: KLOAD is F32LOAD or
// BF16LOAD for the keys, KSHIFT log2 of a key's bytes and KSTEP the
// bytes of 16 keys' values.
#define DOTS_BODY(KLOAD, KSHIFT, KSTEP, A_s, A_q, A_nq, A_hdp, A_k, A_kstride, A_sstride, A_nk) \
	MOVQ A_s, DI; \
	MOVQ A_q, SI; \
	MOVQ A_nq, CX; \
	MOVQ A_hdp, R9; \
	MOVQ A_k, DX; \
	MOVQ A_kstride, R11; \
	MOVQ A_sstride, R13; \
	SHLQ $2, R9; \
	SHLQ $KSHIFT, R11; \
	SHLQ $2, R13; \
	LEAQ (R9)(R9*2), R10; \
	MOVQ A_nk, R12; \
	TESTQ R12, R12; \
	JZ    dotsdone512; \
dotsquad512: \
	CMPQ CX, $4; \
	JL   dotssingle512; \
	MOVQ A_nk, R12; \
	MOVQ DX, AX; \
	MOVQ DI, BX; \
dotsquadpair512: \
	CMPQ R12, $2; \
	JL   dotsquadone512; \
	VXORPS Z4, Z4, Z4; \
	VXORPS Z5, Z5, Z5; \
	VXORPS Z6, Z6, Z6; \
	VXORPS Z7, Z7, Z7; \
	VXORPS Z8, Z8, Z8; \
	VXORPS Z9, Z9, Z9; \
	VXORPS Z10, Z10, Z10; \
	VXORPS Z11, Z11, Z11; \
	MOVQ SI, R8; \
	MOVQ AX, R14; \
	MOVQ R9, R15; \
	SHRQ $6, R15; \
dotsquadpairc512: \
	VMOVUPS     (R8), Z12; \
	VMOVUPS     (R8)(R9*1), Z13; \
	VMOVUPS     (R8)(R9*2), Z14; \
	VMOVUPS     (R8)(R10*1), Z15; \
	KLOAD((R14), Z0); \
	KLOAD((R14)(R11*1), Z1); \
	VFMADD231PS Z12, Z0, Z4; \
	VFMADD231PS Z13, Z0, Z5; \
	VFMADD231PS Z14, Z0, Z6; \
	VFMADD231PS Z15, Z0, Z7; \
	VFMADD231PS Z12, Z1, Z8; \
	VFMADD231PS Z13, Z1, Z9; \
	VFMADD231PS Z14, Z1, Z10; \
	VFMADD231PS Z15, Z1, Z11; \
	ADDQ        $64, R8; \
	ADDQ $KSTEP, R14; \
	DECQ        R15; \
	JNZ         dotsquadpairc512; \
	DOTS_PAIR_STORE; \
	LEAQ      (AX)(R11*2), AX; \
	ADDQ      $8, BX; \
	SUBQ      $2, R12; \
	JMP       dotsquadpair512; \
dotsquadone512: \
	TESTQ R12, R12; \
	JZ    dotsquadnext512; \
	VXORPS Z4, Z4, Z4; \
	VXORPS Z5, Z5, Z5; \
	VXORPS Z6, Z6, Z6; \
	VXORPS Z7, Z7, Z7; \
	MOVQ SI, R8; \
	MOVQ AX, R14; \
	MOVQ R9, R15; \
	SHRQ $6, R15; \
dotsquadonec512: \
	KLOAD((R14), Z0); \
	VFMADD231PS (R8), Z0, Z4; \
	VFMADD231PS (R8)(R9*1), Z0, Z5; \
	VFMADD231PS (R8)(R9*2), Z0, Z6; \
	VFMADD231PS (R8)(R10*1), Z0, Z7; \
	ADDQ        $64, R8; \
	ADDQ $KSTEP, R14; \
	DECQ        R15; \
	JNZ         dotsquadonec512; \
	DOTS_ONE_STORE; \
dotsquadnext512: \
	LEAQ (SI)(R9*4), SI; \
	LEAQ (DI)(R13*4), DI; \
	SUBQ $4, CX; \
	JMP  dotsquad512; \
dotssingle512: \
	TESTQ CX, CX; \
	JZ    dotsdone512; \
	MOVQ  A_nk, R12; \
	MOVQ  DX, AX; \
	MOVQ  DI, BX; \
dotssinglej512: \
	VXORPS Z4, Z4, Z4; \
	MOVQ   SI, R8; \
	MOVQ   AX, R14; \
	MOVQ   R9, R15; \
	SHRQ   $6, R15; \
dotssinglec512: \
	KLOAD((R14), Z0); \
	VFMADD231PS (R8), Z0, Z4; \
	ADDQ        $64, R8; \
	ADDQ $KSTEP, R14; \
	DECQ        R15; \
	JNZ         dotssinglec512; \
	DOTS_SINGLE_STORE; \
	ADDQ          R11, AX; \
	ADDQ          $4, BX; \
	DECQ          R12; \
	JNZ           dotssinglej512; \
	ADDQ R9, SI; \
	ADDQ R13, DI; \
	DECQ CX; \
	JMP  dotssingle512; \
dotsdone512: \
	VZEROUPPER; \
	RET

// func dotsAVX512(s, q *float32, nq, hdp int, k *float32, kstride, nk, sstride int)
// s[i·sstride+j] = Σ_{d<hdp} q[i·hdp+d]·k[j·kstride+d] for i < nq, j < nk;
// hdp is a positive multiple of 16. Four query rows and two keys at a time:
// eight accumulators, reduced together with VHADDPS.
TEXT ·dotsAVX512(SB), NOSPLIT, $0-64
	DOTS_BODY(F32LOAD, 2, 64, s+0(FP), q+8(FP), nq+16(FP), hdp+24(FP), k+32(FP), kstride+40(FP), sstride+56(FP), nk+48(FP))

// func dotsBF16AVX512(s, q *float32, nq, hdp int, k *uint16, kstride, nk, sstride int)
// dotsAVX512 with bf16 keys, each widened as it is loaded.
TEXT ·dotsBF16AVX512(SB), NOSPLIT, $0-64
	DOTS_BODY(BF16LOAD, 1, 32, s+0(FP), q+8(FP), nq+16(FP), hdp+24(FP), k+32(FP), kstride+40(FP), sstride+56(FP), nk+48(FP))

// DOTS4X4_STORE sums each of the 16 accumulators Z16..Z31 (Z(16+4i+j):
// query row i, key j) across its lanes, in a tree of unpacks and 128-bit
// shuffles through Z0..Z15 that leaves row i's four scores in 128-bit
// lane i of Z4, and stores them at BX, rows R13 bytes apart; it uses R8.
#define DOTS4X4_STORE \
	VUNPCKLPS Z17, Z16, Z0; \
	VUNPCKHPS Z17, Z16, Z8; \
	VADDPS Z8, Z0, Z0; \
	VUNPCKLPS Z19, Z18, Z1; \
	VUNPCKHPS Z19, Z18, Z9; \
	VADDPS Z9, Z1, Z1; \
	VUNPCKLPS Z21, Z20, Z2; \
	VUNPCKHPS Z21, Z20, Z10; \
	VADDPS Z10, Z2, Z2; \
	VUNPCKLPS Z23, Z22, Z3; \
	VUNPCKHPS Z23, Z22, Z11; \
	VADDPS Z11, Z3, Z3; \
	VUNPCKLPS Z25, Z24, Z4; \
	VUNPCKHPS Z25, Z24, Z12; \
	VADDPS Z12, Z4, Z4; \
	VUNPCKLPS Z27, Z26, Z5; \
	VUNPCKHPS Z27, Z26, Z13; \
	VADDPS Z13, Z5, Z5; \
	VUNPCKLPS Z29, Z28, Z6; \
	VUNPCKHPS Z29, Z28, Z14; \
	VADDPS Z14, Z6, Z6; \
	VUNPCKLPS Z31, Z30, Z7; \
	VUNPCKHPS Z31, Z30, Z15; \
	VADDPS Z15, Z7, Z7; \
	VUNPCKLPD Z1, Z0, Z8; \
	VUNPCKHPD Z1, Z0, Z9; \
	VADDPS Z9, Z8, Z8; \
	VUNPCKLPD Z3, Z2, Z10; \
	VUNPCKHPD Z3, Z2, Z11; \
	VADDPS Z11, Z10, Z10; \
	VUNPCKLPD Z5, Z4, Z12; \
	VUNPCKHPD Z5, Z4, Z13; \
	VADDPS Z13, Z12, Z12; \
	VUNPCKLPD Z7, Z6, Z14; \
	VUNPCKHPD Z7, Z6, Z15; \
	VADDPS Z15, Z14, Z14; \
	VSHUFF32X4 $0x88, Z10, Z8, Z0; \
	VSHUFF32X4 $0xDD, Z10, Z8, Z1; \
	VADDPS Z1, Z0, Z0; \
	VSHUFF32X4 $0x88, Z14, Z12, Z2; \
	VSHUFF32X4 $0xDD, Z14, Z12, Z3; \
	VADDPS Z3, Z2, Z2; \
	VSHUFF32X4 $0x88, Z2, Z0, Z4; \
	VSHUFF32X4 $0xDD, Z2, Z0, Z5; \
	VADDPS Z5, Z4, Z4; \
	VMOVUPS X4, (BX); \
	VEXTRACTF32X4 $1, Z4, (BX)(R13*1); \
	VEXTRACTF32X4 $2, Z4, (BX)(R13*2); \
	LEAQ (BX)(R13*2), R8; \
	VEXTRACTF32X4 $3, Z4, (R8)(R13*1)

// DOTS4_BODY is dots4AVX512 and dots4BF16AVX512, with DOTS_BODY's
// parameters.
#define DOTS4_BODY(KLOAD, KSHIFT, KSTEP, A_s, A_q, A_nq, A_hdp, A_kstride, A_sstride, A_k, A_nk) \
	MOVQ A_s, DI; \
	MOVQ A_q, SI; \
	MOVQ A_nq, CX; \
	MOVQ A_hdp, R9; \
	MOVQ A_kstride, R11; \
	MOVQ A_sstride, R13; \
	SHLQ $2, R9; \
	SHLQ $KSHIFT, R11; \
	SHLQ $2, R13; \
	LEAQ (R9)(R9*2), R10; \
	LEAQ (R11)(R11*2), DX; \
dots4rows: \
	CMPQ CX, $4; \
	JL   dots4done; \
	MOVQ A_k, AX; \
	MOVQ A_nk, R12; \
	MOVQ DI, BX; \
dots4keys: \
	CMPQ R12, $4; \
	JL   dots4next; \
	VXORPS Z16, Z16, Z16; \
	VXORPS Z17, Z17, Z17; \
	VXORPS Z18, Z18, Z18; \
	VXORPS Z19, Z19, Z19; \
	VXORPS Z20, Z20, Z20; \
	VXORPS Z21, Z21, Z21; \
	VXORPS Z22, Z22, Z22; \
	VXORPS Z23, Z23, Z23; \
	VXORPS Z24, Z24, Z24; \
	VXORPS Z25, Z25, Z25; \
	VXORPS Z26, Z26, Z26; \
	VXORPS Z27, Z27, Z27; \
	VXORPS Z28, Z28, Z28; \
	VXORPS Z29, Z29, Z29; \
	VXORPS Z30, Z30, Z30; \
	VXORPS Z31, Z31, Z31; \
	MOVQ SI, R8; \
	MOVQ AX, R14; \
	MOVQ R9, R15; \
	SHRQ $6, R15; \
dots4chunk: \
	VMOVUPS     (R8), Z0; \
	VMOVUPS     (R8)(R9*1), Z1; \
	VMOVUPS     (R8)(R9*2), Z2; \
	VMOVUPS     (R8)(R10*1), Z3; \
	KLOAD((R14), Z4); \
	KLOAD((R14)(R11*1), Z5); \
	KLOAD((R14)(R11*2), Z6); \
	KLOAD((R14)(DX*1), Z7); \
	VFMADD231PS Z4, Z0, Z16; \
	VFMADD231PS Z5, Z0, Z17; \
	VFMADD231PS Z6, Z0, Z18; \
	VFMADD231PS Z7, Z0, Z19; \
	VFMADD231PS Z4, Z1, Z20; \
	VFMADD231PS Z5, Z1, Z21; \
	VFMADD231PS Z6, Z1, Z22; \
	VFMADD231PS Z7, Z1, Z23; \
	VFMADD231PS Z4, Z2, Z24; \
	VFMADD231PS Z5, Z2, Z25; \
	VFMADD231PS Z6, Z2, Z26; \
	VFMADD231PS Z7, Z2, Z27; \
	VFMADD231PS Z4, Z3, Z28; \
	VFMADD231PS Z5, Z3, Z29; \
	VFMADD231PS Z6, Z3, Z30; \
	VFMADD231PS Z7, Z3, Z31; \
	ADDQ        $64, R8; \
	ADDQ $KSTEP, R14; \
	DECQ        R15; \
	JNZ         dots4chunk; \
	DOTS4X4_STORE; \
	LEAQ (AX)(R11*4), AX; \
	ADDQ $16, BX; \
	SUBQ $4, R12; \
	JMP  dots4keys; \
dots4next: \
	LEAQ (SI)(R9*4), SI; \
	LEAQ (DI)(R13*4), DI; \
	SUBQ $4, CX; \
	JMP  dots4rows; \
dots4done: \
	VZEROUPPER; \
	RET

// func dots4AVX512(s, q *float32, nq, hdp int, k *float32, kstride, nk, sstride int)
// dotsAVX512 for nq and nk multiples of 4 (the rest are left alone): four
// query rows and four keys at a time, sixteen accumulators summed by one
// tree of shuffles (DOTS4X4_STORE) where dotsAVX512 sums every eight with
// VHADDPS.
TEXT ·dots4AVX512(SB), NOSPLIT, $0-64
	DOTS4_BODY(F32LOAD, 2, 64, s+0(FP), q+8(FP), nq+16(FP), hdp+24(FP), kstride+40(FP), sstride+56(FP), k+32(FP), nk+48(FP))

// func dots4BF16AVX512(s, q *float32, nq, hdp int, k *uint16, kstride, nk, sstride int)
// dots4AVX512 with bf16 keys, each widened as it is loaded.
TEXT ·dots4BF16AVX512(SB), NOSPLIT, $0-64
	DOTS4_BODY(BF16LOAD, 1, 32, s+0(FP), q+8(FP), nq+16(FP), hdp+24(FP), kstride+40(FP), sstride+56(FP), k+32(FP), nk+48(FP))

// func softmaxAVX512(s *float32, sstride, ncol, nq int, m, l, c *float32)
// Online softmax step over nq rows of ncol scores (a multiple of 16;
// padding is −Inf), sstride floats apart: per row i, mx = max(m[i], max_j s_ij),
// c[i] = e^(m[i]−mx), s_ij = e^(s_ij−mx), l[i] = l[i]·c[i] + Σ_j s_ij,
// m[i] = mx.
TEXT ·softmaxAVX512(SB), NOSPLIT, $0-56
	MOVQ s+0(FP), DI
	MOVQ ncol+16(FP), R8
	MOVQ nq+24(FP), CX
	MOVQ m+32(FP), SI
	MOVQ l+40(FP), DX
	MOVQ c+48(FP), BX
	MOVQ sstride+8(FP), R9
	SHLQ $2, R8
	SHLQ $2, R9
	TESTQ CX, CX
	JZ    smdone512
	TESTQ R8, R8
	JZ    smdone512
	EXP_CONSTS_512

smrow512:
	VBROADCASTSS (SI), Z4
	VMOVAPS      Z4, Z5
	XORQ         AX, AX

smmax512:
	VMAXPS (DI)(AX*1), Z5, Z5
	ADDQ   $64, AX
	CMPQ   AX, R8
	JL     smmax512

	VSHUFF32X4 $0x4E, Z5, Z5, Z6
	VMAXPS     Z6, Z5, Z5
	VSHUFF32X4 $0xB1, Z5, Z5, Z6
	VMAXPS     Z6, Z5, Z5
	VPERMILPS  $0x4E, Z5, Z6
	VMAXPS     Z6, Z5, Z5
	VPERMILPS  $0xB1, Z5, Z6
	VMAXPS     Z6, Z5, Z5
	VSUBPS     Z5, Z4, Z0
	EXP512(Z0, Z1, Z2)
	VMOVSS     X0, (BX)
	VMOVSS     X5, (SI)
	VXORPS     Z7, Z7, Z7
	XORQ       AX, AX

smexp512:
	VMOVUPS (DI)(AX*1), Z0
	VSUBPS  Z5, Z0, Z0
	EXP512(Z0, Z1, Z2)
	VMOVUPS Z0, (DI)(AX*1)
	VADDPS  Z0, Z7, Z7
	ADDQ    $64, AX
	CMPQ    AX, R8
	JL      smexp512

	VEXTRACTF64X4 $1, Z7, Y1
	VADDPS        Y1, Y7, Y7
	VEXTRACTF128  $1, Y7, X1
	VADDPS        X1, X7, X7
	VHADDPS       X7, X7, X7
	VHADDPS       X7, X7, X7
	VMOVSS        (DX), X1
	VMULSS        (BX), X1, X1
	VADDSS        X7, X1, X1
	VMOVSS        X1, (DX)
	ADDQ          $4, SI
	ADDQ          $4, DX
	ADDQ          $4, BX
	ADDQ          R9, DI
	DECQ          CX
	JNZ           smrow512

smdone512:
	VZEROUPPER
	RET

// F32FMA and BF16FMA add the product of the vector at addr and b to acc,
// using tmp for the widened bf16 values.
#define F32FMA(addr, b, acc, tmp) VFMADD231PS addr, b, acc
#define BF16FMA(addr, b, acc, tmp) BF16LOAD(addr, tmp); VFMADD231PS tmp, b, acc

// F32VADDR and BF16VADDR set AX to the address in v (DX) of the values
// at the float offset R14 bytes into a row of o.
#define F32VADDR LEAQ (DX)(R14*1), AX
#define BF16VADDR MOVQ R14, AX; SHRQ $1, AX; ADDQ DX, AX

// AXPY_BODY is axpyAVX512 and axpyBF16AVX512: LOAD and FMA read the
// values (F32LOAD and F32FMA, or the BF16 ones), VADDR points AX at them,
// VSHIFT is log2 of a value's bytes and VO1..VO3 the bytes of 16, 32 and
// 48 of them.
#define AXPY_BODY(LOAD, FMA, VADDR, VSHIFT, VO1, VO2, VO3, A_o, A_p, A_c, A_nq, A_nk, A_pstride, A_v, A_vstride, A_hdp) \
	MOVQ A_o, DI; \
	MOVQ A_p, SI; \
	MOVQ A_c, BX; \
	MOVQ A_nq, CX; \
	MOVQ A_nk, R12; \
	MOVQ A_pstride, R13; \
	MOVQ A_v, DX; \
	MOVQ A_vstride, R11; \
	MOVQ A_hdp, R9; \
	SHLQ $2, R12; \
	SHLQ $2, R13; \
	SHLQ $VSHIFT, R11; \
	SHLQ $2, R9; \
	TESTQ R12, R12; \
	JZ    axdone512; \
	LEAQ  (SI)(R13*1), R13; \
axpair512: \
	CMPQ         CX, $2; \
	JL           axsingle512; \
	VBROADCASTSS (BX), Z28; \
	VBROADCASTSS 4(BX), Z29; \
	XORQ         R14, R14; \
axpair4512: \
	LEAQ    256(R14), AX; \
	CMPQ    AX, R9; \
	JG      axpair1512; \
	LEAQ    (DI)(R14*1), R15; \
	VMULPS  (R15), Z28, Z0; \
	VMULPS  64(R15), Z28, Z1; \
	VMULPS  128(R15), Z28, Z2; \
	VMULPS  192(R15), Z28, Z3; \
	VMULPS  (R15)(R9*1), Z29, Z4; \
	VMULPS  64(R15)(R9*1), Z29, Z5; \
	VMULPS  128(R15)(R9*1), Z29, Z6; \
	VMULPS  192(R15)(R9*1), Z29, Z7; \
	VADDR; \
	XORQ    R10, R10; \
axpair4j512: \
	VBROADCASTSS (SI)(R10*1), Z8; \
	VBROADCASTSS (R13)(R10*1), Z9; \
	LOAD((AX), Z10); \
	LOAD(VO1(AX), Z11); \
	LOAD(VO2(AX), Z12); \
	LOAD(VO3(AX), Z13); \
	VFMADD231PS  Z10, Z8, Z0; \
	VFMADD231PS  Z11, Z8, Z1; \
	VFMADD231PS  Z12, Z8, Z2; \
	VFMADD231PS  Z13, Z8, Z3; \
	VFMADD231PS  Z10, Z9, Z4; \
	VFMADD231PS  Z11, Z9, Z5; \
	VFMADD231PS  Z12, Z9, Z6; \
	VFMADD231PS  Z13, Z9, Z7; \
	ADDQ         R11, AX; \
	ADDQ         $4, R10; \
	CMPQ         R10, R12; \
	JL           axpair4j512; \
	VMOVUPS Z0, (R15); \
	VMOVUPS Z1, 64(R15); \
	VMOVUPS Z2, 128(R15); \
	VMOVUPS Z3, 192(R15); \
	VMOVUPS Z4, (R15)(R9*1); \
	VMOVUPS Z5, 64(R15)(R9*1); \
	VMOVUPS Z6, 128(R15)(R9*1); \
	VMOVUPS Z7, 192(R15)(R9*1); \
	ADDQ    $256, R14; \
	JMP     axpair4512; \
axpair1512: \
	CMPQ   R14, R9; \
	JGE    axpairnext512; \
	LEAQ   (DI)(R14*1), R15; \
	VMULPS (R15), Z28, Z0; \
	VMULPS (R15)(R9*1), Z29, Z4; \
	VADDR; \
	XORQ   R10, R10; \
axpair1j512: \
	VBROADCASTSS (SI)(R10*1), Z8; \
	VBROADCASTSS (R13)(R10*1), Z9; \
	LOAD((AX), Z10); \
	VFMADD231PS  Z10, Z8, Z0; \
	VFMADD231PS  Z10, Z9, Z4; \
	ADDQ         R11, AX; \
	ADDQ         $4, R10; \
	CMPQ         R10, R12; \
	JL           axpair1j512; \
	VMOVUPS Z0, (R15); \
	VMOVUPS Z4, (R15)(R9*1); \
	ADDQ    $64, R14; \
	JMP     axpair1512; \
axpairnext512: \
	LEAQ (DI)(R9*2), DI; \
	MOVQ A_pstride, AX; \
	SHLQ $2, AX; \
	LEAQ (R13)(AX*1), SI; \
	LEAQ (SI)(AX*1), R13; \
	ADDQ $8, BX; \
	SUBQ $2, CX; \
	JMP  axpair512; \
axsingle512: \
	TESTQ        CX, CX; \
	JZ           axdone512; \
	VBROADCASTSS (BX), Z28; \
	XORQ         R14, R14; \
axsingle4512: \
	LEAQ   256(R14), AX; \
	CMPQ   AX, R9; \
	JG     axsingle1512; \
	LEAQ   (DI)(R14*1), R15; \
	VMULPS (R15), Z28, Z0; \
	VMULPS 64(R15), Z28, Z1; \
	VMULPS 128(R15), Z28, Z2; \
	VMULPS 192(R15), Z28, Z3; \
	VADDR; \
	XORQ   R10, R10; \
axsingle4j512: \
	VBROADCASTSS (SI)(R10*1), Z8; \
	FMA((AX), Z8, Z0, Z10); \
	FMA(VO1(AX), Z8, Z1, Z11); \
	FMA(VO2(AX), Z8, Z2, Z12); \
	FMA(VO3(AX), Z8, Z3, Z13); \
	ADDQ         R11, AX; \
	ADDQ         $4, R10; \
	CMPQ         R10, R12; \
	JL           axsingle4j512; \
	VMOVUPS Z0, (R15); \
	VMOVUPS Z1, 64(R15); \
	VMOVUPS Z2, 128(R15); \
	VMOVUPS Z3, 192(R15); \
	ADDQ    $256, R14; \
	JMP     axsingle4512; \
axsingle1512: \
	CMPQ   R14, R9; \
	JGE    axdone512; \
	LEAQ   (DI)(R14*1), R15; \
	VMULPS (R15), Z28, Z0; \
	VADDR; \
	XORQ   R10, R10; \
axsingle1j512: \
	VBROADCASTSS (SI)(R10*1), Z8; \
	FMA((AX), Z8, Z0, Z10); \
	ADDQ         R11, AX; \
	ADDQ         $4, R10; \
	CMPQ         R10, R12; \
	JL           axsingle1j512; \
	VMOVUPS Z0, (R15); \
	ADDQ    $64, R14; \
	JMP     axsingle1512; \
axdone512: \
	VZEROUPPER; \
	RET

// func axpyAVX512(o, p, c *float32, nq, nk, pstride int, v *float32, vstride, hdp int)
// o[i·hdp+d] = o[i·hdp+d]·c[i] + Σ_{j<nk} p[i·pstride+j]·v[j·vstride+d] for
// i < nq, d < hdp; hdp is a positive multiple of 16, nk > 0. Two query rows
// share each v load; four vectors of each row stay in registers over j.
TEXT ·axpyAVX512(SB), NOSPLIT, $0-72
	AXPY_BODY(F32LOAD, F32FMA, F32VADDR, 2, 64, 128, 192, o+0(FP), p+8(FP), c+16(FP), nq+24(FP), nk+32(FP), pstride+40(FP), v+48(FP), vstride+56(FP), hdp+64(FP))

// func axpyBF16AVX512(o, p, c *float32, nq, nk, pstride int, v *uint16, vstride, hdp int)
// axpyAVX512 with bf16 values, each widened as it is loaded.
TEXT ·axpyBF16AVX512(SB), NOSPLIT, $0-72
	AXPY_BODY(BF16LOAD, BF16FMA, BF16VADDR, 1, 32, 64, 96, o+0(FP), p+8(FP), c+16(FP), nq+24(FP), nk+32(FP), pstride+40(FP), v+48(FP), vstride+56(FP), hdp+64(FP))

// func bf16RowsAVX512(dst *float32, src *uint16, rows, n, dstride, sstride int)
// dst[r·dstride+i] = f32(src[r·sstride+i]) for r < rows, i < n (a multiple
// of 16): a bf16 is the top half of an f32.
TEXT ·bf16RowsAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	MOVQ n+24(FP), R8
	MOVQ dstride+32(FP), R9
	MOVQ sstride+40(FP), R10
	SHLQ $1, R8
	SHLQ $2, R9
	SHLQ $1, R10
	TESTQ CX, CX
	JZ    cvtdone512
	TESTQ R8, R8
	JZ    cvtdone512

cvtrow512:
	XORQ AX, AX
	MOVQ DI, DX

cvtloop512:
	VPMOVZXWD (SI)(AX*1), Z0
	VPSLLD    $16, Z0, Z0
	VMOVUPS   Z0, (DX)
	ADDQ      $64, DX
	ADDQ      $32, AX
	CMPQ      AX, R8
	JL        cvtloop512
	ADDQ      R9, DI
	ADDQ      R10, SI
	DECQ      CX
	JNZ       cvtrow512

cvtdone512:
	VZEROUPPER
	RET

// func e4m3RowsAVX512(dst *float32, src *uint8, rows, n, dstride, sstride int)
// dst[r·dstride+i] = f32(src[r·sstride+i]) for r < rows, i < n (a multiple
// of 16), src holding OCP FP8 E4M3 codes. A code's low 7 bits shifted left
// by 7 are an f16 with the same mantissa and an exponent 8 lower (bias 15
// against 7), subnormals included: VCVTPH2PS, times 256, gives the value;
// the sign moves to bit 15; codes 0x7f and 0xff are NaN.
TEXT ·e4m3RowsAVX512(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	MOVQ n+24(FP), R8
	MOVQ dstride+32(FP), R9
	MOVQ sstride+40(FP), R10
	SHLQ $2, R9
	TESTQ CX, CX
	JZ    e4m3done512
	TESTQ R8, R8
	JZ    e4m3done512
	MOVL         $0x3f803f80, AX // magnitude bits of each word
	VPBROADCASTD AX, Y10
	MOVL         $0x80008000, AX // sign bit of each word
	VPBROADCASTD AX, Y11
	MOVL         $0x43800000, AX // 256.0
	VPBROADCASTD AX, Z12
	MOVL         $0x7fc00000, AX // NaN
	VPBROADCASTD AX, Z13

e4m3row512:
	XORQ AX, AX
	MOVQ DI, DX

e4m3loop512:
	VPMOVZXBW (SI)(AX*1), Y0
	VPSLLW    $7, Y0, Y1
	VPAND     Y10, Y1, Y1
	VPSLLW    $8, Y0, Y2
	VPAND     Y11, Y2, Y2
	VPCMPEQW  Y10, Y1, K1
	VPOR      Y2, Y1, Y1
	VCVTPH2PS Y1, Z3
	VMULPS    Z12, Z3, Z3
	VMOVAPS   Z13, K1, Z3
	VMOVUPS   Z3, (DX)
	ADDQ      $64, DX
	ADDQ      $16, AX
	CMPQ      AX, R8
	JL        e4m3loop512
	ADDQ      R9, DI
	ADDQ      R10, SI
	DECQ      CX
	JNZ       e4m3row512

e4m3done512:
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// AVX2

// EXP_CONSTS_256 loads the exp constants used as registers into Y9..Y15;
// the polynomial coefficients stay in memory.
#define EXP_CONSTS_256 \
	VMOVUPS ·expConsts+0(SB), Y15; \
	VMOVUPS ·expConsts+32(SB), Y14; \
	VMOVUPS ·expConsts+64(SB), Y13; \
	VMOVUPS ·expConsts+96(SB), Y12; \
	VMOVUPS ·expConsts+128(SB), Y11; \
	VMOVUPS ·expConsts+352(SB), Y10; \
	VMOVUPS ·expConsts+384(SB), Y9

// EXP256 replaces X by e^X, using T1 and T2. AVX2 has no VSCALEFPS: 2^n is
// applied as 2^(n>>1)·2^(n−(n>>1)), both factors normal for the clamped
// range n ∈ [−150, 128], so the result underflows and overflows correctly.
#define EXP256(X, T1, T2) \
	VMINPS X, Y15, X; \
	VMAXPS X, Y14, X; \
	VMULPS Y13, X, T1; \
	VROUNDPS $0, T1, T1; \
	VFNMADD231PS Y12, T1, X; \
	VFNMADD231PS Y11, T1, X; \
	VMOVUPS ·expConsts+160(SB), T2; \
	VFMADD213PS ·expConsts+192(SB), X, T2; \
	VFMADD213PS ·expConsts+224(SB), X, T2; \
	VFMADD213PS ·expConsts+256(SB), X, T2; \
	VFMADD213PS ·expConsts+288(SB), X, T2; \
	VFMADD213PS ·expConsts+320(SB), X, T2; \
	VFMADD213PS Y10, X, T2; \
	VFMADD213PS Y10, X, T2; \
	VCVTPS2DQ T1, T1; \
	VPSRAD $1, T1, X; \
	VPSUBD X, T1, T1; \
	VPADDD Y9, X, X; \
	VPSLLD $23, X, X; \
	VMULPS X, T2, T2; \
	VPADDD Y9, T1, T1; \
	VPSLLD $23, T1, T1; \
	VMULPS T1, T2, X

// func expAVX2(y, x *float32, n int)
TEXT ·expAVX2(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   expdone256
	EXP_CONSTS_256

exploop256:
	VMOVUPS (SI), Y0
	EXP256(Y0, Y1, Y2)
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     exploop256

expdone256:
	VZEROUPPER
	RET

// func swigluAVX2(y, gate, up *float32, n int)
TEXT ·swigluAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ   swidone256
	EXP_CONSTS_256

swiloop256:
	VMOVUPS (SI), Y3
	VXORPS  ·expConsts+416(SB), Y3, Y0
	EXP256(Y0, Y1, Y2)
	VADDPS  Y10, Y0, Y0
	VDIVPS  Y0, Y3, Y0
	VMULPS  (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     swiloop256

swidone256:
	VZEROUPPER
	RET

// func addAVX2(y, a, b *float32, n int)
TEXT ·addAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ   adddone256

addloop256:
	VMOVUPS (SI), Y0
	VADDPS  (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     addloop256

adddone256:
	VZEROUPPER
	RET

// func sumsqAVX2(x *float32, n int) float64
TEXT ·sumsqAVX2(SB), NOSPLIT, $0-24
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	SHRQ   $3, CX
	JZ     sumsqred256

sumsqloop256:
	VCVTPS2PD   (SI), Y0
	VCVTPS2PD   16(SI), Y1
	VFMADD231PD Y0, Y0, Y2
	VFMADD231PD Y1, Y1, Y3
	ADDQ        $32, SI
	DECQ        CX
	JNZ         sumsqloop256

sumsqred256:
	VADDPD       Y3, Y2, Y2
	VEXTRACTF128 $1, Y2, X3
	VADDPD       X3, X2, X2
	VPERMILPD    $1, X2, X3
	VADDSD       X3, X2, X2
	VMOVSD       X2, ret+16(FP)
	VZEROUPPER
	RET

// func scaleMulAVX2(y, x, w *float32, n int, inv float32)
TEXT ·scaleMulAVX2(SB), NOSPLIT, $0-36
	MOVQ         y+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         w+16(FP), DX
	MOVQ         n+24(FP), CX
	VMOVSS       inv+32(FP), X1
	VBROADCASTSS X1, Y1
	SHRQ         $3, CX
	JZ           scaledone256

scaleloop256:
	VMULPS  (SI), Y1, Y0
	VMULPS  (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     scaleloop256

scaledone256:
	VZEROUPPER
	RET

// func ropeNormAVX2(x, c, s *float32, heads, stride, n int)
TEXT ·ropeNormAVX2(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), DI
	MOVQ c+8(FP), R8
	MOVQ s+16(FP), R9
	MOVQ heads+24(FP), CX
	MOVQ stride+32(FP), R10
	MOVQ n+40(FP), R11
	SHLQ $2, R10
	SHLQ $2, R11
	TESTQ CX, CX
	JZ    ropendone256
	TESTQ R11, R11
	JZ    ropendone256

ropenhead256:
	XORQ AX, AX

ropenloop256:
	VMOVUPS   (DI)(AX*1), Y0
	VPERMILPS $0xB1, Y0, Y1
	VMULPS    (R8)(AX*1), Y0, Y0
	VMULPS    (R9)(AX*1), Y1, Y1
	VADDPS    Y1, Y0, Y0
	VMOVUPS   Y0, (DI)(AX*1)
	ADDQ      $32, AX
	CMPQ      AX, R11
	JL        ropenloop256
	ADDQ      R10, DI
	DECQ      CX
	JNZ       ropenhead256

ropendone256:
	VZEROUPPER
	RET

// func ropeNeoxAVX2(x, c, s *float32, heads, stride, half, n int)
TEXT ·ropeNeoxAVX2(SB), NOSPLIT, $0-56
	MOVQ x+0(FP), DI
	MOVQ c+8(FP), R8
	MOVQ s+16(FP), R9
	MOVQ heads+24(FP), CX
	MOVQ stride+32(FP), R10
	MOVQ half+40(FP), DX
	MOVQ n+48(FP), R11
	SHLQ $2, R10
	SHLQ $2, DX
	SHLQ $2, R11
	TESTQ CX, CX
	JZ    ropexdone256
	TESTQ R11, R11
	JZ    ropexdone256

ropexhead256:
	XORQ AX, AX
	LEAQ (DI)(DX*1), SI

ropexloop256:
	VMOVUPS (DI)(AX*1), Y0
	VMOVUPS (SI)(AX*1), Y1
	VMOVUPS (R8)(AX*1), Y2
	VMOVUPS (R9)(AX*1), Y3
	VMULPS  Y2, Y0, Y4
	VMULPS  Y3, Y1, Y5
	VSUBPS  Y5, Y4, Y4
	VMULPS  Y3, Y0, Y6
	VMULPS  Y2, Y1, Y7
	VADDPS  Y7, Y6, Y6
	VMOVUPS Y4, (DI)(AX*1)
	VMOVUPS Y6, (SI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, R11
	JL      ropexloop256
	ADDQ    R10, DI
	DECQ    CX
	JNZ     ropexhead256

ropexdone256:
	VZEROUPPER
	RET

// func dotsAVX2(s, q *float32, nq, hdp int, k *float32, kstride, nk, sstride int)
// As dotsAVX512 with hdp a positive multiple of 8.
TEXT ·dotsAVX2(SB), NOSPLIT, $0-64
	MOVQ s+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ nq+16(FP), CX
	MOVQ hdp+24(FP), R9
	MOVQ k+32(FP), DX
	MOVQ kstride+40(FP), R11
	MOVQ sstride+56(FP), R13
	SHLQ $2, R9
	SHLQ $2, R11
	SHLQ $2, R13
	LEAQ (R9)(R9*2), R10
	MOVQ nk+48(FP), R12
	TESTQ R12, R12
	JZ    dotsdone256

dotsquad256:
	CMPQ CX, $4
	JL   dotssingle256
	MOVQ nk+48(FP), R12
	MOVQ DX, AX
	MOVQ DI, BX

dotsquadpair256:
	CMPQ R12, $2
	JL   dotsquadone256
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	MOVQ SI, R8
	MOVQ AX, R14
	MOVQ R9, R15
	SHRQ $5, R15

dotsquadpairc256:
	VMOVUPS     (R8), Y12
	VMOVUPS     (R8)(R9*1), Y13
	VMOVUPS     (R8)(R9*2), Y14
	VMOVUPS     (R8)(R10*1), Y15
	VMOVUPS     (R14), Y0
	VMOVUPS     (R14)(R11*1), Y1
	VFMADD231PS Y12, Y0, Y4
	VFMADD231PS Y13, Y0, Y5
	VFMADD231PS Y14, Y0, Y6
	VFMADD231PS Y15, Y0, Y7
	VFMADD231PS Y12, Y1, Y8
	VFMADD231PS Y13, Y1, Y9
	VFMADD231PS Y14, Y1, Y10
	VFMADD231PS Y15, Y1, Y11
	ADDQ        $32, R8
	ADDQ        $32, R14
	DECQ        R15
	JNZ         dotsquadpairc256

	VHADDPS       Y5, Y4, Y4
	VHADDPS       Y7, Y6, Y6
	VHADDPS       Y6, Y4, Y4
	VEXTRACTF128  $1, Y4, X5
	VADDPS        X5, X4, X4
	VHADDPS       Y9, Y8, Y8
	VHADDPS       Y11, Y10, Y10
	VHADDPS       Y10, Y8, Y8
	VEXTRACTF128  $1, Y8, X9
	VADDPS        X9, X8, X8
	VUNPCKLPS X8, X4, X12
	VUNPCKHPS X8, X4, X13
	VMOVLPS   X12, (BX)
	VMOVHPS   X12, (BX)(R13*1)
	VMOVLPS   X13, (BX)(R13*2)
	LEAQ      (BX)(R13*2), R8
	VMOVHPS   X13, (R8)(R13*1)
	LEAQ      (AX)(R11*2), AX
	ADDQ      $8, BX
	SUBQ      $2, R12
	JMP       dotsquadpair256

dotsquadone256:
	TESTQ R12, R12
	JZ    dotsquadnext256
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ SI, R8
	MOVQ AX, R14
	MOVQ R9, R15
	SHRQ $5, R15

dotsquadonec256:
	VMOVUPS     (R14), Y0
	VFMADD231PS (R8), Y0, Y4
	VFMADD231PS (R8)(R9*1), Y0, Y5
	VFMADD231PS (R8)(R9*2), Y0, Y6
	VFMADD231PS (R8)(R10*1), Y0, Y7
	ADDQ        $32, R8
	ADDQ        $32, R14
	DECQ        R15
	JNZ         dotsquadonec256

	VHADDPS       Y5, Y4, Y4
	VHADDPS       Y7, Y6, Y6
	VHADDPS       Y6, Y4, Y4
	VEXTRACTF128  $1, Y4, X5
	VADDPS        X5, X4, X4
	VMOVSS     X4, (BX)
	VEXTRACTPS $1, X4, (BX)(R13*1)
	VEXTRACTPS $2, X4, (BX)(R13*2)
	LEAQ       (BX)(R13*2), R8
	VEXTRACTPS $3, X4, (R8)(R13*1)

dotsquadnext256:
	LEAQ (SI)(R9*4), SI
	LEAQ (DI)(R13*4), DI
	SUBQ $4, CX
	JMP  dotsquad256

dotssingle256:
	TESTQ CX, CX
	JZ    dotsdone256
	MOVQ  nk+48(FP), R12
	MOVQ  DX, AX
	MOVQ  DI, BX

dotssinglej256:
	VXORPS Y4, Y4, Y4
	MOVQ   SI, R8
	MOVQ   AX, R14
	MOVQ   R9, R15
	SHRQ   $5, R15

dotssinglec256:
	VMOVUPS     (R14), Y0
	VFMADD231PS (R8), Y0, Y4
	ADDQ        $32, R8
	ADDQ        $32, R14
	DECQ        R15
	JNZ         dotssinglec256

	VEXTRACTF128  $1, Y4, X8
	VADDPS        X8, X4, X4
	VHADDPS       X4, X4, X4
	VHADDPS       X4, X4, X4
	VMOVSS        X4, (BX)
	ADDQ          R11, AX
	ADDQ          $4, BX
	DECQ          R12
	JNZ           dotssinglej256

	ADDQ R9, SI
	ADDQ R13, DI
	DECQ CX
	JMP  dotssingle256

dotsdone256:
	VZEROUPPER
	RET

// func softmaxAVX2(s *float32, sstride, ncol, nq int, m, l, c *float32)
// As softmaxAVX512 with ncol a multiple of 8.
TEXT ·softmaxAVX2(SB), NOSPLIT, $0-56
	MOVQ s+0(FP), DI
	MOVQ ncol+16(FP), R8
	MOVQ nq+24(FP), CX
	MOVQ m+32(FP), SI
	MOVQ l+40(FP), DX
	MOVQ c+48(FP), BX
	MOVQ sstride+8(FP), R9
	SHLQ $2, R8
	SHLQ $2, R9
	TESTQ CX, CX
	JZ    smdone256
	TESTQ R8, R8
	JZ    smdone256
	EXP_CONSTS_256

smrow256:
	VBROADCASTSS (SI), Y4
	VMOVAPS      Y4, Y5
	XORQ         AX, AX

smmax256:
	VMAXPS (DI)(AX*1), Y5, Y5
	ADDQ   $32, AX
	CMPQ   AX, R8
	JL     smmax256

	VPERM2F128 $0x01, Y5, Y5, Y6
	VMAXPS     Y6, Y5, Y5
	VPERMILPS  $0x4E, Y5, Y6
	VMAXPS     Y6, Y5, Y5
	VPERMILPS  $0xB1, Y5, Y6
	VMAXPS     Y6, Y5, Y5
	VSUBPS     Y5, Y4, Y0
	EXP256(Y0, Y1, Y2)
	VMOVSS     X0, (BX)
	VMOVSS     X5, (SI)
	VXORPS     Y7, Y7, Y7
	XORQ       AX, AX

smexp256:
	VMOVUPS (DI)(AX*1), Y0
	VSUBPS  Y5, Y0, Y0
	EXP256(Y0, Y1, Y2)
	VMOVUPS Y0, (DI)(AX*1)
	VADDPS  Y0, Y7, Y7
	ADDQ    $32, AX
	CMPQ    AX, R8
	JL      smexp256

	VEXTRACTF128 $1, Y7, X1
	VADDPS       X1, X7, X7
	VHADDPS      X7, X7, X7
	VHADDPS      X7, X7, X7
	VMOVSS       (DX), X1
	VMULSS       (BX), X1, X1
	VADDSS       X7, X1, X1
	VMOVSS       X1, (DX)
	ADDQ         $4, SI
	ADDQ         $4, DX
	ADDQ         $4, BX
	ADDQ         R9, DI
	DECQ         CX
	JNZ          smrow256

smdone256:
	VZEROUPPER
	RET

// func axpyAVX2(o, p, c *float32, nq, nk, pstride int, v *float32, vstride, hdp int)
// As axpyAVX512 with hdp a positive multiple of 8.
TEXT ·axpyAVX2(SB), NOSPLIT, $0-72
	MOVQ o+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ c+16(FP), BX
	MOVQ nq+24(FP), CX
	MOVQ nk+32(FP), R12
	MOVQ pstride+40(FP), R13
	MOVQ v+48(FP), DX
	MOVQ vstride+56(FP), R11
	MOVQ hdp+64(FP), R9
	SHLQ $2, R12
	SHLQ $2, R13
	SHLQ $2, R11
	SHLQ $2, R9
	TESTQ R12, R12
	JZ    axdone256
	LEAQ  (SI)(R13*1), R13

axpair256:
	CMPQ         CX, $2
	JL           axsingle256
	VBROADCASTSS (BX), Y14
	VBROADCASTSS 4(BX), Y15
	XORQ         R14, R14

axpair4256:
	LEAQ    128(R14), AX
	CMPQ    AX, R9
	JG      axpair1256
	LEAQ    (DI)(R14*1), R15
	VMULPS  (R15), Y14, Y0
	VMULPS  32(R15), Y14, Y1
	VMULPS  64(R15), Y14, Y2
	VMULPS  96(R15), Y14, Y3
	VMULPS  (R15)(R9*1), Y15, Y4
	VMULPS  32(R15)(R9*1), Y15, Y5
	VMULPS  64(R15)(R9*1), Y15, Y6
	VMULPS  96(R15)(R9*1), Y15, Y7
	LEAQ    (DX)(R14*1), AX
	XORQ    R10, R10

axpair4j256:
	VBROADCASTSS (SI)(R10*1), Y8
	VBROADCASTSS (R13)(R10*1), Y9
	VMOVUPS      (AX), Y10
	VMOVUPS      32(AX), Y11
	VMOVUPS      64(AX), Y12
	VMOVUPS      96(AX), Y13
	VFMADD231PS  Y10, Y8, Y0
	VFMADD231PS  Y11, Y8, Y1
	VFMADD231PS  Y12, Y8, Y2
	VFMADD231PS  Y13, Y8, Y3
	VFMADD231PS  Y10, Y9, Y4
	VFMADD231PS  Y11, Y9, Y5
	VFMADD231PS  Y12, Y9, Y6
	VFMADD231PS  Y13, Y9, Y7
	ADDQ         R11, AX
	ADDQ         $4, R10
	CMPQ         R10, R12
	JL           axpair4j256

	VMOVUPS Y0, (R15)
	VMOVUPS Y1, 32(R15)
	VMOVUPS Y2, 64(R15)
	VMOVUPS Y3, 96(R15)
	VMOVUPS Y4, (R15)(R9*1)
	VMOVUPS Y5, 32(R15)(R9*1)
	VMOVUPS Y6, 64(R15)(R9*1)
	VMOVUPS Y7, 96(R15)(R9*1)
	ADDQ    $128, R14
	JMP     axpair4256

axpair1256:
	CMPQ   R14, R9
	JGE    axpairnext256
	LEAQ   (DI)(R14*1), R15
	VMULPS (R15), Y14, Y0
	VMULPS (R15)(R9*1), Y15, Y4
	LEAQ   (DX)(R14*1), AX
	XORQ   R10, R10

axpair1j256:
	VBROADCASTSS (SI)(R10*1), Y8
	VBROADCASTSS (R13)(R10*1), Y9
	VMOVUPS      (AX), Y10
	VFMADD231PS  Y10, Y8, Y0
	VFMADD231PS  Y10, Y9, Y4
	ADDQ         R11, AX
	ADDQ         $4, R10
	CMPQ         R10, R12
	JL           axpair1j256

	VMOVUPS Y0, (R15)
	VMOVUPS Y4, (R15)(R9*1)
	ADDQ    $32, R14
	JMP     axpair1256

axpairnext256:
	LEAQ (DI)(R9*2), DI
	MOVQ pstride+40(FP), AX
	SHLQ $2, AX
	LEAQ (R13)(AX*1), SI
	LEAQ (SI)(AX*1), R13
	ADDQ $8, BX
	SUBQ $2, CX
	JMP  axpair256

axsingle256:
	TESTQ        CX, CX
	JZ           axdone256
	VBROADCASTSS (BX), Y14
	XORQ         R14, R14

axsingle4256:
	LEAQ   128(R14), AX
	CMPQ   AX, R9
	JG     axsingle1256
	LEAQ   (DI)(R14*1), R15
	VMULPS (R15), Y14, Y0
	VMULPS 32(R15), Y14, Y1
	VMULPS 64(R15), Y14, Y2
	VMULPS 96(R15), Y14, Y3
	LEAQ   (DX)(R14*1), AX
	XORQ   R10, R10

axsingle4j256:
	VBROADCASTSS (SI)(R10*1), Y8
	VFMADD231PS  (AX), Y8, Y0
	VFMADD231PS  32(AX), Y8, Y1
	VFMADD231PS  64(AX), Y8, Y2
	VFMADD231PS  96(AX), Y8, Y3
	ADDQ         R11, AX
	ADDQ         $4, R10
	CMPQ         R10, R12
	JL           axsingle4j256

	VMOVUPS Y0, (R15)
	VMOVUPS Y1, 32(R15)
	VMOVUPS Y2, 64(R15)
	VMOVUPS Y3, 96(R15)
	ADDQ    $128, R14
	JMP     axsingle4256

axsingle1256:
	CMPQ   R14, R9
	JGE    axdone256
	LEAQ   (DI)(R14*1), R15
	VMULPS (R15), Y14, Y0
	LEAQ   (DX)(R14*1), AX
	XORQ   R10, R10

axsingle1j256:
	VBROADCASTSS (SI)(R10*1), Y8
	VFMADD231PS  (AX), Y8, Y0
	ADDQ         R11, AX
	ADDQ         $4, R10
	CMPQ         R10, R12
	JL           axsingle1j256

	VMOVUPS Y0, (R15)
	ADDQ    $32, R14
	JMP     axsingle1256

axdone256:
	VZEROUPPER
	RET

// func bf16RowsAVX2(dst *float32, src *uint16, rows, n, dstride, sstride int)
// As bf16RowsAVX512 with n a multiple of 8.
TEXT ·bf16RowsAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	MOVQ n+24(FP), R8
	MOVQ dstride+32(FP), R9
	MOVQ sstride+40(FP), R10
	SHLQ $1, R8
	SHLQ $2, R9
	SHLQ $1, R10
	TESTQ CX, CX
	JZ    cvtdone256
	TESTQ R8, R8
	JZ    cvtdone256

cvtrow256:
	XORQ AX, AX
	MOVQ DI, DX

cvtloop256:
	VPMOVZXWD (SI)(AX*1), Y0
	VPSLLD    $16, Y0, Y0
	VMOVUPS   Y0, (DX)
	ADDQ      $32, DX
	ADDQ      $16, AX
	CMPQ      AX, R8
	JL        cvtloop256
	ADDQ      R9, DI
	ADDQ      R10, SI
	DECQ      CX
	JNZ       cvtrow256

cvtdone256:
	VZEROUPPER
	RET

// func scaleAVX512(y, x *float32, n int, a float32)
// y[i] = x[i]·a for i < n&^15.
TEXT ·scaleAVX512(SB), NOSPLIT, $0-28
	MOVQ         y+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), CX
	VMOVSS       a+24(FP), X1
	VBROADCASTSS X1, Z1
	SHRQ         $4, CX
	JZ           scldone512

sclloop512:
	VMULPS  (SI), Z1, Z0
	VMOVUPS Z0, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     sclloop512

scldone512:
	VZEROUPPER
	RET

// func scaleAVX2(y, x *float32, n int, a float32)
// y[i] = x[i]·a for i < n&^7.
TEXT ·scaleAVX2(SB), NOSPLIT, $0-28
	MOVQ         y+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), CX
	VMOVSS       a+24(FP), X1
	VBROADCASTSS X1, Y1
	SHRQ         $3, CX
	JZ           scldone256

sclloop256:
	VMULPS  (SI), Y1, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     sclloop256

scldone256:
	VZEROUPPER
	RET

// TR16_STORE transposes the 16 rows in Z0..Z15 (four shuffle stages,
// through Z16..Z31) and stores them as 16 rows at DI, R9 bytes apart (R11
// = 3·R9), using AX.
#define TR16_STORE \
	VUNPCKLPS Z1, Z0, Z16; \
	VUNPCKHPS Z1, Z0, Z17; \
	VUNPCKLPS Z3, Z2, Z18; \
	VUNPCKHPS Z3, Z2, Z19; \
	VUNPCKLPS Z5, Z4, Z20; \
	VUNPCKHPS Z5, Z4, Z21; \
	VUNPCKLPS Z7, Z6, Z22; \
	VUNPCKHPS Z7, Z6, Z23; \
	VUNPCKLPS Z9, Z8, Z24; \
	VUNPCKHPS Z9, Z8, Z25; \
	VUNPCKLPS Z11, Z10, Z26; \
	VUNPCKHPS Z11, Z10, Z27; \
	VUNPCKLPS Z13, Z12, Z28; \
	VUNPCKHPS Z13, Z12, Z29; \
	VUNPCKLPS Z15, Z14, Z30; \
	VUNPCKHPS Z15, Z14, Z31; \
	VUNPCKLPD Z18, Z16, Z0; \
	VUNPCKHPD Z18, Z16, Z1; \
	VUNPCKLPD Z19, Z17, Z2; \
	VUNPCKHPD Z19, Z17, Z3; \
	VUNPCKLPD Z22, Z20, Z4; \
	VUNPCKHPD Z22, Z20, Z5; \
	VUNPCKLPD Z23, Z21, Z6; \
	VUNPCKHPD Z23, Z21, Z7; \
	VUNPCKLPD Z26, Z24, Z8; \
	VUNPCKHPD Z26, Z24, Z9; \
	VUNPCKLPD Z27, Z25, Z10; \
	VUNPCKHPD Z27, Z25, Z11; \
	VUNPCKLPD Z30, Z28, Z12; \
	VUNPCKHPD Z30, Z28, Z13; \
	VUNPCKLPD Z31, Z29, Z14; \
	VUNPCKHPD Z31, Z29, Z15; \
	VSHUFF32X4 $0x88, Z4, Z0, Z16; \
	VSHUFF32X4 $0xDD, Z4, Z0, Z17; \
	VSHUFF32X4 $0x88, Z12, Z8, Z18; \
	VSHUFF32X4 $0xDD, Z12, Z8, Z19; \
	VSHUFF32X4 $0x88, Z5, Z1, Z20; \
	VSHUFF32X4 $0xDD, Z5, Z1, Z21; \
	VSHUFF32X4 $0x88, Z13, Z9, Z22; \
	VSHUFF32X4 $0xDD, Z13, Z9, Z23; \
	VSHUFF32X4 $0x88, Z6, Z2, Z24; \
	VSHUFF32X4 $0xDD, Z6, Z2, Z25; \
	VSHUFF32X4 $0x88, Z14, Z10, Z26; \
	VSHUFF32X4 $0xDD, Z14, Z10, Z27; \
	VSHUFF32X4 $0x88, Z7, Z3, Z28; \
	VSHUFF32X4 $0xDD, Z7, Z3, Z29; \
	VSHUFF32X4 $0x88, Z15, Z11, Z30; \
	VSHUFF32X4 $0xDD, Z15, Z11, Z31; \
	VSHUFF32X4 $0x88, Z18, Z16, Z0; \
	VSHUFF32X4 $0xDD, Z18, Z16, Z8; \
	VSHUFF32X4 $0x88, Z19, Z17, Z4; \
	VSHUFF32X4 $0xDD, Z19, Z17, Z12; \
	VSHUFF32X4 $0x88, Z22, Z20, Z1; \
	VSHUFF32X4 $0xDD, Z22, Z20, Z9; \
	VSHUFF32X4 $0x88, Z23, Z21, Z5; \
	VSHUFF32X4 $0xDD, Z23, Z21, Z13; \
	VSHUFF32X4 $0x88, Z26, Z24, Z2; \
	VSHUFF32X4 $0xDD, Z26, Z24, Z10; \
	VSHUFF32X4 $0x88, Z27, Z25, Z6; \
	VSHUFF32X4 $0xDD, Z27, Z25, Z14; \
	VSHUFF32X4 $0x88, Z30, Z28, Z3; \
	VSHUFF32X4 $0xDD, Z30, Z28, Z11; \
	VSHUFF32X4 $0x88, Z31, Z29, Z7; \
	VSHUFF32X4 $0xDD, Z31, Z29, Z15; \
	MOVQ DI, AX; \
	VMOVUPS Z0, (AX); \
	VMOVUPS Z1, (AX)(R9*1); \
	VMOVUPS Z2, (AX)(R9*2); \
	VMOVUPS Z3, (AX)(R11*1); \
	LEAQ    (AX)(R9*4), AX; \
	VMOVUPS Z4, (AX); \
	VMOVUPS Z5, (AX)(R9*1); \
	VMOVUPS Z6, (AX)(R9*2); \
	VMOVUPS Z7, (AX)(R11*1); \
	LEAQ    (AX)(R9*4), AX; \
	VMOVUPS Z8, (AX); \
	VMOVUPS Z9, (AX)(R9*1); \
	VMOVUPS Z10, (AX)(R9*2); \
	VMOVUPS Z11, (AX)(R11*1); \
	LEAQ    (AX)(R9*4), AX; \
	VMOVUPS Z12, (AX); \
	VMOVUPS Z13, (AX)(R9*1); \
	VMOVUPS Z14, (AX)(R9*2); \
	VMOVUPS Z15, (AX)(R11*1)

// TRANSPOSE_BODY is transposeAVX512 and transposeBF16AVX512: LOAD is
// F32LOAD or BF16LOAD for the rows, SSHIFT log2 of a source element's
// bytes and SSTEP the bytes of 16 of them.
#define TRANSPOSE_BODY(LOAD, SSHIFT, SSTEP, A_dst, A_src, A_sstride, A_n16, A_dstride) \
	MOVQ A_dst, DI; \
	MOVQ A_src, SI; \
	MOVQ A_sstride, R8; \
	MOVQ A_n16, CX; \
	MOVQ A_dstride, R9; \
	SHLQ $SSHIFT, R8; \
	SHLQ $2, R9; \
	LEAQ (R8)(R8*2), R10; \
	LEAQ (R9)(R9*2), R11; \
	TESTQ CX, CX; \
	JZ    trdone512; \
trloop512: \
	MOVQ SI, AX; \
	LOAD((AX), Z0); \
	LOAD((AX)(R8*1), Z1); \
	LOAD((AX)(R8*2), Z2); \
	LOAD((AX)(R10*1), Z3); \
	LEAQ    (AX)(R8*4), AX; \
	LOAD((AX), Z4); \
	LOAD((AX)(R8*1), Z5); \
	LOAD((AX)(R8*2), Z6); \
	LOAD((AX)(R10*1), Z7); \
	LEAQ    (AX)(R8*4), AX; \
	LOAD((AX), Z8); \
	LOAD((AX)(R8*1), Z9); \
	LOAD((AX)(R8*2), Z10); \
	LOAD((AX)(R10*1), Z11); \
	LEAQ    (AX)(R8*4), AX; \
	LOAD((AX), Z12); \
	LOAD((AX)(R8*1), Z13); \
	LOAD((AX)(R8*2), Z14); \
	LOAD((AX)(R10*1), Z15); \
	TR16_STORE; \
	ADDQ $SSTEP, SI; \
	LEAQ (DI)(R9*8), DI; \
	LEAQ (DI)(R9*8), DI; \
	DECQ CX; \
	JNZ  trloop512; \
trdone512: \
	VZEROUPPER; \
	RET

// func transposeAVX512(dst, src *float32, sstride, n16, dstride int)
// Transposes 16 rows of src (sstride floats apart) into columns of dst: for
// t < 16 and d < 16·n16, dst[d·dstride+t] = src[t·sstride+d]. Each 16×16
// tile goes through four shuffle stages in registers.
TEXT ·transposeAVX512(SB), NOSPLIT, $0-40
	TRANSPOSE_BODY(F32LOAD, 2, 64, dst+0(FP), src+8(FP), sstride+16(FP), n16+24(FP), dstride+32(FP))

// func transposeBF16AVX512(dst *float32, src *uint16, sstride, n16, dstride int)
// transposeAVX512 from bf16 rows: dst[d·dstride+t] = f32(src[t·sstride+d])
// for t < 16, d < 16·n16, each row widened as it is loaded.
TEXT ·transposeBF16AVX512(SB), NOSPLIT, $0-40
	TRANSPOSE_BODY(BF16LOAD, 1, 32, dst+0(FP), src+8(FP), sstride+16(FP), n16+24(FP), dstride+32(FP))

// func dotsTAVX512(s, q *float32, nq, hdp int, kt *float32, ktstride, sstride int)
// Scores against 16 keys stored transposed: s[i·sstride+j] = Σ_{d<hdp}
// q[i·hdp+d]·kt[d·ktstride+j] for i < nq, j < 16. Eight query rows at a
// time, each an accumulator of 16 keys fed by broadcasts of q; no
// horizontal sums.
TEXT ·dotsTAVX512(SB), NOSPLIT, $0-56
	MOVQ s+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ nq+16(FP), CX
	MOVQ hdp+24(FP), R9
	MOVQ kt+32(FP), DX
	MOVQ ktstride+40(FP), R11
	MOVQ sstride+48(FP), R13
	SHLQ $2, R9
	SHLQ $2, R11
	SHLQ $2, R13
	LEAQ (R9)(R9*2), R10
	LEAQ (R13)(R13*2), R12
	TESTQ R9, R9
	JZ    dtdone512

dtoct512:
	CMPQ CX, $8
	JL   dtone512
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	VXORPS Z6, Z6, Z6
	VXORPS Z7, Z7, Z7
	VXORPS Z8, Z8, Z8
	VXORPS Z9, Z9, Z9
	VXORPS Z10, Z10, Z10
	VXORPS Z11, Z11, Z11
	MOVQ SI, R8
	LEAQ (SI)(R9*4), R15
	MOVQ DX, AX
	MOVQ R9, BX
	SHRQ $2, BX

dtoctd512:
	VMOVUPS          (AX), Z0
	VFMADD231PS.BCST (R8), Z0, Z4
	VFMADD231PS.BCST (R8)(R9*1), Z0, Z5
	VFMADD231PS.BCST (R8)(R9*2), Z0, Z6
	VFMADD231PS.BCST (R8)(R10*1), Z0, Z7
	VFMADD231PS.BCST (R15), Z0, Z8
	VFMADD231PS.BCST (R15)(R9*1), Z0, Z9
	VFMADD231PS.BCST (R15)(R9*2), Z0, Z10
	VFMADD231PS.BCST (R15)(R10*1), Z0, Z11
	ADDQ             R11, AX
	ADDQ             $4, R8
	ADDQ             $4, R15
	DECQ             BX
	JNZ              dtoctd512

	MOVQ    DI, AX
	VMOVUPS Z4, (AX)
	VMOVUPS Z5, (AX)(R13*1)
	VMOVUPS Z6, (AX)(R13*2)
	VMOVUPS Z7, (AX)(R12*1)
	LEAQ    (AX)(R13*4), AX
	VMOVUPS Z8, (AX)
	VMOVUPS Z9, (AX)(R13*1)
	VMOVUPS Z10, (AX)(R13*2)
	VMOVUPS Z11, (AX)(R12*1)
	LEAQ    (SI)(R9*8), SI
	LEAQ    (DI)(R13*8), DI
	SUBQ    $8, CX
	JMP     dtoct512

dtone512:
	TESTQ  CX, CX
	JZ     dtdone512
	VXORPS Z4, Z4, Z4
	VXORPS Z5, Z5, Z5
	MOVQ   SI, R8
	MOVQ   DX, AX
	MOVQ   R9, BX
	SHRQ   $3, BX

dtoned512:
	VMOVUPS          (AX), Z0
	VMOVUPS          (AX)(R11*1), Z1
	VFMADD231PS.BCST (R8), Z0, Z4
	VFMADD231PS.BCST 4(R8), Z1, Z5
	LEAQ             (AX)(R11*2), AX
	ADDQ             $8, R8
	DECQ             BX
	JNZ              dtoned512

	VADDPS  Z5, Z4, Z4
	VMOVUPS Z4, (DI)
	ADDQ    R9, SI
	ADDQ    R13, DI
	DECQ    CX
	JMP     dtone512

dtdone512:
	VZEROUPPER
	RET

// func prefetchRows(p *byte, rows, stride, n int)
// PREFETCHT0 of every cache line of rows rows of n > 0 bytes, stride bytes
// apart, from p.
TEXT ·prefetchRows(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), SI
	MOVQ rows+8(FP), CX
	MOVQ stride+16(FP), DX
	MOVQ n+24(FP), BX
	TESTQ CX, CX
	JLE  prefetch_done
	TESTQ BX, BX
	JLE  prefetch_done

prefetch_row:
	XORQ AX, AX

prefetch_line:
	PREFETCHT0 (SI)(AX*1)
	ADDQ $64, AX
	CMPQ AX, BX
	JLT  prefetch_line
	PREFETCHT0 -1(SI)(BX*1)
	ADDQ DX, SI
	DECQ CX
	JNZ  prefetch_row

prefetch_done:
	RET
