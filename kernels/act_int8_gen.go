//go:build ignore

// act_int8_gen writes act_int8_amd64.s, the int8-path matmul kernels
// (see act_int8.go for the layout they read). Run it with go generate.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
)

var out bytes.Buffer

func p(format string, args ...any) { fmt.Fprintf(&out, "\t"+format+"\n", args...) }

func label(name string) { fmt.Fprintf(&out, "%s:\n", name) }

// Registers shared by the matmul kernels: SI codes and DI scales of the
// current group and chunk (both streams continue into the next group), R8
// the scale stride between rows, R9 activations and R10 activation scales
// of the current chunk, R11 the distance from the activation scales to the
// corrections, CX chunks left, R13 groups left, DX out, BX DI+3·R8.
const prologue = `w+0(FP), SI
	MOVQ ws+8(FP), DI
	MOVQ sstride+16(FP), R8
	MOVQ xc+40(FP), R11
	SUBQ xs+32(FP), R11
	MOVQ groups+56(FP), R13
	MOVQ out+72(FP), DX`

const signature = "(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32)"

// header writes the Go declaration comment and TEXT line of the function
// name with parameters params (in parentheses) and an argument frame of
// frame bytes.
func header(name, params string, frame int) {
	fmt.Fprintf(&out, "\n// func %s%s\nTEXT ·%s(SB), NOSPLIT, $0-%d\n", name, params, name, frame)
}

// groupStart starts a group: activations from their first chunk, chunk
// counter reset.
func groupStart(name string) {
	label(name + "_group")
	p("MOVQ xq+24(FP), R9")
	p("MOVQ xs+32(FP), R10")
	p("MOVQ chunks+48(FP), CX")
}

// rowKernelStart writes the header of a kernel with the int8 kernel
// signature and loads its arguments (see prologue).
func rowKernelStart(name string) {
	header(name, signature, 80)
	p("MOVQ " + prologue)
}

// chunkEnd ends the chunk loop of a kernel walking one group's row-chunks
// (codeBytes of codes, the scales R8 apart per row) against activations
// prepared with rb = 1.
func chunkEnd(name string, codeBytes int) {
	p("ADDQ $%d, SI", codeBytes)
	p("LEAQ (DI)(R8*4), DI")
	p("ADDQ $128, R9")
	p("ADDQ $64, R10")
	p("DECQ CX")
	p("JNZ %s_chunk", name)
}

// groupEnd ends a kernel's group loop: DX (out) advances by step, R13
// counts the groups down.
func groupEnd(name, step string) {
	p("ADDQ %s, DX", step)
	p("DECQ R13")
	p("JNZ %s_group", name)
	p("VZEROUPPER")
	p("RET")
}

// prefetch is how far ahead (bytes of codes) the one-row AVX-512 kernels
// prefetch; 0 disables.
var prefetch = 4096

// prefetchOp is the prefetch instruction the kernels use.
var prefetchOp = "PREFETCHT0"

// scaleKind is how a format stores its block scales.
type scaleKind int

const (
	e4 scaleKind = iota // E4M3 bytes (NVFP4), two blocks of 16 per dword
	// lane (see halves): the kernels load a byte b as the f16 b<<7, which
	// is its value times 2^-8 (subnormals and zero too), and the Go side
	// scales the finished sums back
	e8 // E8M0 exponent bytes e (MXFP4): the kernels load
	// 2^(e-127) (bits e<<23, one more than the format's halved 2^(e-128))
	// and the Go side halves the finished sums
	h16 // f16 (Q4_0, Q8_0), converted by VCVTPH2PS
)

// halves reports whether a lane's 32 weights are two blocks of 16 (NVFP4),
// the first in code zmm 0-1 (steps 0, 1, 4, 5), the second in 2-3 (steps
// 2, 3, 6, 7), each with its own scale: its scales are stored as 16 bytes
// for the first blocks (lane order 4g+b), then 16 for the second, and its
// activation corrections (after gemmPrep) as the first blocks' four, the
// second blocks' four, twice.
func halves(sk scaleKind) bool { return sk == e4 }

// kindName names a kernel variant: codes (Nib or Q8) and scale storage.
func kindName(nib bool, sk scaleKind) string {
	k := "Q8"
	if nib {
		k = "Nib"
	}
	switch sk {
	case e4:
		return k + "E4"
	case e8:
		return k + "E8"
	}
	return k + "H16"
}

// e4Load converts the 16 E4M3 scale bytes at addr to f32 in dst (a zmm
// register number; dst's ymm holds the f16 on the way): the f16 b<<7 is
// the scale times 2^-8 exactly, sign bit clear (the Go side gives the
// generic kernels matrices with other bytes).
func e4Load(addr string, dst int) {
	p("VPMOVZXBW %s, Y%d", addr, dst)
	p("VPSLLW $7, Y%d, Y%d", dst, dst)
	p("VCVTPH2PS Y%d, Z%d", dst, dst)
}

// scaleMask sets K1 for scaleLoad (nothing but for e8).
func scaleMask(sk scaleKind) {
	if sk == e8 {
		p("MOVQ $0x8888888888888888, AX")
		p("KMOVQ AX, K1")
	}
}

// scaleLoad expands MXFP4's scale bytes at addr into f32 lanes of dst
// through the index idx: the exponent byte lands in bits 24-31, then at
// 23-30.
func scaleLoad(addr, idx, dst string) {
	p("VPERMB.Z %s, %s, K1, %s", addr, idx, dst)
	p("VPSRLD $1, %s, %s", dst, dst)
}

// rowConsts512 loads the constants of the AVX-512 one-row and few-rows
// kernels (Z29 nibble table or Z31 0x80 bytes for Q8, Z30 the index of
// lanes 0, 4, 8, 12) and returns the code bytes of a group's chunk.
func rowConsts512(nib bool) int {
	cb := 256
	if nib {
		p("MOVQ lut+64(FP), AX")
		p("VBROADCASTI32X4 (AX), Z29")
	} else {
		cb = 512
		p("MOVL $0x80808080, AX")
		p("VPBROADCASTD AX, Z31")
	}
	p("MOVL $0x0C080400, AX")
	p("VMOVD AX, X30")
	p("VPMOVZXBD X30, Z30")
	return cb
}

// dotStart starts the one-row and few-rows kernels' two dots of a row
// and chunk, Z10 and Z11, from the corrections at addr (a base and index
// operand): with halves each block's own, else Z10 all of them and Z11
// zero.
func dotStart(sk scaleKind, addr string) {
	if halves(sk) {
		p("VBROADCASTI32X4 %s, Z10", addr)
		p("VBROADCASTI32X4 16%s, Z11", addr)
		return
	}
	p("VMOVDQU32 %s, Z10", addr)
	p("VPXORD Z11, Z11, Z11")
}

// avx512DS writes the one-row kernel for the transposed packing
// (int8Dot<Nib|Q8><E4|E8|H16>D512R1): zmm j of a group's row-chunks
// holds, in lane g and dword b, dword j of block b's low view lane of row
// g (its high nibbles: of the high view lane), so that VPDPBUSD against
// the activation step j (low nibbles) or 4+j (high), prepared by
// int8GemmPrep512 and broadcast to the four lanes, adds to lane 4g+b block
// b's dot of row g: no horizontal sums per chunk. It walks the groups as
// one stream and prefetches prefetch bytes ahead, which streams faster
// than walking four streams without (Zen 5, two threads: 60 against 50
// GB/s of codes when the machine's 2-thread read roof is 80; four streams
// with prefetches were slower still).
// Registers: Z0 f32 sums (lane 4g+b); Z8, Z9 decoded codes; Z10, Z11 int32
// dots (low, high; Z10 starts at the corrections; with halves: first and
// second blocks, each starting at its corrections); Z12 temporary; Z14,
// Z15 weight scales; Z16-Z23 activation steps; Z29 nibble table; Z30 the
// index of lanes 0, 4, 8, 12.
func avx512DS(nib bool, sk scaleKind) {
	name := fmt.Sprintf("int8Dot%sD512R1", kindName(nib, sk))
	rowKernelStart(name)
	cb := rowConsts512(nib)
	groupStart(name)
	p("VPXORD Z0, Z0, Z0")
	label(name + "_chunk")
	if prefetch > 0 {
		for off := 0; off < cb; off += 64 {
			p("%s %d(SI)", prefetchOp, prefetch+off)
		}
	}
	for st := range 8 {
		p("VBROADCASTI32X4 %d(R9), Z%d", 16*st, 16+st)
	}
	dotStart(sk, "(R10)(R11*1)")
	for j := range 4 {
		if nib {
			p("VMOVDQU8 %d(SI), Z9", 64*j)
			p("VPERMB Z29, Z9, Z8")
			p("VPSRLW $4, Z9, Z9")
			p("VPERMB Z29, Z9, Z9")
		} else {
			// Q8: zmm s is step s; w+128 by flipping the top bits.
			p("VPXORD %d(SI), Z31, Z8", 64*j)
			p("VPXORD %d(SI), Z31, Z9", 256+64*j)
		}
		lo, hi := 10, 11
		if halves(sk) {
			lo, hi = 10+j/2, 10+j/2
		}
		p("VPDPBUSD Z%d, Z8, Z%d", 16+j, lo)
		p("VPDPBUSD Z%d, Z9, Z%d", 20+j, hi)
	}
	switch sk {
	case e4:
		p("VCVTDQ2PS Z10, Z10")
		p("VCVTDQ2PS Z11, Z11")
		e4Load("(DI)", 14)
		e4Load("16(DI)", 15)
		p("VMULPS Z14, Z10, Z10")
		p("VFMADD231PS Z15, Z11, Z10")
		p("VFMADD231PS (R10), Z10, Z0")
	case e8:
		p("VPADDD Z11, Z10, Z10")
		p("VCVTDQ2PS Z10, Z10")
		p("VPMOVZXBD (DI), Z14")
		p("VPSLLD $23, Z14, Z14")
		p("VMULPS (R10), Z14, Z14")
		p("VFMADD231PS Z14, Z10, Z0")
	default:
		p("VPADDD Z11, Z10, Z10")
		p("VCVTDQ2PS Z10, Z10")
		p("VCVTPH2PS (DI), Z14")
		p("VMULPS (R10), Z14, Z14")
		p("VFMADD231PS Z14, Z10, Z0")
	}
	chunkEnd(name, cb)
	// out[4q+g] = sum over the blocks b of lane 4g+b.
	p("VSHUFPS $0xB1, Z0, Z0, Z12")
	p("VADDPS Z12, Z0, Z0")
	p("VSHUFPS $0x4E, Z0, Z0, Z12")
	p("VADDPS Z12, Z0, Z0")
	p("VPERMPS Z0, Z30, Z12")
	p("VMOVUPS X12, (DX)")
	groupEnd(name, "$16")
}

// rmStart writes a few-rows kernel's header and loads the arguments it
// shares with the one-row kernels (see prologue).
func rmStart(name string) {
	header(name, strings.TrimSuffix(signature, ")")+", m int, acc *float32, ldo int)", 104)
	p("MOVQ " + prologue)
}

// avx512RM writes int8Dot<Nib|Q8><E4|E8|H16>D512RM, the few-rows kernel:
// the one-row kernel's walk (see avx512DS), one stream of groups, for m
// activation rows at once. Each group-chunk's codes are decoded into
// registers once, then a loop over the rows runs the eight VPDPBUSD of
// each against them: m rows pay one decode and write no panel, where the
// D kernels pad a block to decR rows. The rows' per-lane f32 sums live in
// acc (16 per row, L1-resident); row r's outputs go to out + r·ldo
// (bytes). The activations are prepared with rb = m: chunk c's records of
// the m rows are consecutive, so they stream as three sequential arrays.
// (Two groups per pass, sharing each activation broadcast, ran faster
// from cache but slower on weights streamed from memory: two streams.)
// Registers: Z0-Z7 the chunk's decoded steps; Z8 raw codes; Z9 weight
// scales (Z14, Z15 with halves); Z10, Z11 int32 dots (with halves: the
// first and second blocks', else the even and odd steps': chains of four
// VPDPBUSD); Z12 a combined scale, then temporary; Z13 a row's sums;
// Z16-Z19 activation steps; Z29 nibble table; Z30 the index of lanes 0, 4,
// 8, 12; Z31 0x80 bytes (Q8). SI, DI, R8, R11, CX, R13, DX as in
// avx512DS, R9, R10 the chunk's first row, BX its corrections, AX the row
// offset r·64, R14 m·64, R12 acc.
func avx512RM(nib bool, sk scaleKind) {
	name := fmt.Sprintf("int8Dot%sD512RM", kindName(nib, sk))
	rmStart(name)
	p("MOVQ m+80(FP), R14")
	p("SHLQ $6, R14")
	p("MOVQ acc+88(FP), R12")
	cb := rowConsts512(nib)
	groupStart(name)
	p("VPXORD Z13, Z13, Z13")
	p("XORQ AX, AX")
	label(name + "_zero")
	p("VMOVUPS Z13, (R12)(AX*1)")
	p("ADDQ $64, AX")
	p("CMPQ AX, R14")
	p("JLT %s_zero", name)
	label(name + "_chunk")
	if prefetch > 0 {
		for off := 0; off < cb; off += 64 {
			p("%s %d(SI)", prefetchOp, prefetch+off)
		}
	}
	for j := range 4 {
		if nib {
			p("VMOVDQU8 %d(SI), Z8", 64*j)
			p("VPERMB Z29, Z8, Z%d", j)
			p("VPSRLW $4, Z8, Z8")
			p("VPERMB Z29, Z8, Z%d", 4+j)
		} else {
			p("VPXORD %d(SI), Z31, Z%d", 64*j, j)
			p("VPXORD %d(SI), Z31, Z%d", 256+64*j, 4+j)
		}
	}
	switch sk {
	case e4:
		e4Load("(DI)", 14)
		e4Load("16(DI)", 15)
	case e8:
		p("VPMOVZXBD (DI), Z9")
		p("VPSLLD $23, Z9, Z9")
	default:
		p("VCVTPH2PS (DI), Z9")
	}
	p("LEAQ (R10)(R11*1), BX")
	p("XORQ AX, AX")
	label(name + "_row")
	dotStart(sk, "(BX)(AX*1)")
	for st := range 8 {
		h := st % 2
		if halves(sk) {
			h = st / 2 % 2 // steps 2, 3, 6, 7: the second blocks
		}
		p("VBROADCASTI32X4 %d(R9)(AX*2), Z%d", 16*st, 16+st%4)
		p("VPDPBUSD Z%d, Z%d, Z%d", 16+st%4, st, 10+h)
	}
	p("VMOVUPS (R12)(AX*1), Z13")
	if halves(sk) {
		p("VCVTDQ2PS Z10, Z10")
		p("VCVTDQ2PS Z11, Z11")
		p("VMULPS Z14, Z10, Z10")
		p("VFMADD231PS Z15, Z11, Z10")
		p("VFMADD231PS (R10)(AX*1), Z10, Z13")
	} else {
		p("VPADDD Z11, Z10, Z10")
		p("VCVTDQ2PS Z10, Z10")
		p("VMULPS (R10)(AX*1), Z9, Z12")
		p("VFMADD231PS Z12, Z10, Z13")
	}
	p("VMOVUPS Z13, (R12)(AX*1)")
	p("ADDQ $64, AX")
	p("CMPQ AX, R14")
	p("JLT %s_row", name)
	p("ADDQ $%d, SI", cb)
	p("LEAQ (DI)(R8*4), DI")
	p("LEAQ (R9)(R14*2), R9")
	p("ADDQ R14, R10")
	p("DECQ CX")
	p("JNZ %s_chunk", name)
	// out[r·ldo + 4q+g] = sum over the blocks b of row r's lane 4g+b.
	p("XORQ AX, AX")
	p("MOVQ DX, CX")
	label(name + "_out")
	p("VMOVUPS (R12)(AX*1), Z13")
	p("VSHUFPS $0xB1, Z13, Z13, Z12")
	p("VADDPS Z12, Z13, Z13")
	p("VSHUFPS $0x4E, Z13, Z13, Z12")
	p("VADDPS Z12, Z13, Z13")
	p("VPERMPS Z13, Z30, Z12")
	p("VMOVUPS X12, (CX)")
	p("ADDQ ldo+96(FP), CX")
	p("ADDQ $64, AX")
	p("CMPQ AX, R14")
	p("JLT %s_out", name)
	groupEnd(name, "$16")
}

// nibbles256 loads the 32 code bytes at addr and looks their nibbles up
// in the table in Y(lut): the high nibbles' codes land in Y(hi), the low
// ones' in Y(lo); Y(mask) holds 0x0F bytes.
func nibbles256(addr string, hi, lo, mask, lut int) {
	p("VMOVDQU %s, Y%d", addr, hi)
	p("VPAND Y%d, Y%d, Y%d", mask, hi, lo)
	p("VPSRLW $4, Y%d, Y%d", hi, hi)
	p("VPAND Y%d, Y%d, Y%d", mask, hi, hi)
	p("VPSHUFB Y%d, Y%d, Y%d", lo, lut, lo)
	p("VPSHUFB Y%d, Y%d, Y%d", hi, lut, hi)
}

// avx2RM writes int8Dot<Nib|Q8><E4|E8|H16>D256R<m>[V], the AVX2 few-rows
// kernels: avx512RM's walk for exactly m activation rows (2 or 3, rows
// unrolled: AVX2 has too few registers for a row loop over live dots),
// with avx2D's arithmetic (V: AVX-VNNI's VPDPBUSD instead of VPMADDUBSW,
// VPADDW, VPMADDWD). Each 64-byte code piece (rows 2h and 2h+1, steps j
// and 4+j) is decoded once and run against every row. The rows' f32 sums
// live in acc (16 per row: 8 per half h); row r's outputs go to out +
// r·ldo (bytes); the activations are prepared with rb = m, as for
// avx512RM. Q8_0 only with AVX-VNNI: its codes plus 128 overflow
// VPMADDUBSW's pair sums (see avx2Dec).
// Registers: Y0 nibble table, Y1 0x0F bytes (0x80 for Q8), Y2 0x0001
// words, Y3, Y4 a piece's decoded high and low codes (then the weight scales), Y5, Y6
// activation steps j and 4+j (then temporaries), Y7, Y8 temporaries,
// Y9-Y14 int32 dots: row r in Y(9+r) (with halves: first blocks
// Y(9+2r), second Y(10+2r)). SI, DI, R8, R11, CX, R13, DX as in avx2D, R9,
// R10 the chunk's first row, BX its corrections, R12 acc, R14 m·64.
func avx2RM(nib bool, sk scaleKind, m int, vnni bool) {
	name := fmt.Sprintf("int8Dot%sD256R%d", kindName(nib, sk), m)
	if vnni {
		name += "V"
	}
	rmStart(name)
	p("MOVQ $%d, R14", 64*m)
	p("MOVQ acc+88(FP), R12")
	cb := 256 // code bytes per chunk
	if nib {
		p("MOVQ lut+64(FP), AX")
		p("VBROADCASTI128 (AX), Y0")
		p("MOVL $0x0F0F0F0F, AX")
	} else {
		cb = 512
		p("MOVL $0x80808080, AX")
	}
	p("MOVD AX, X1")
	p("VPBROADCASTD X1, Y1")
	if !vnni {
		p("MOVL $0x00010001, AX")
		p("MOVD AX, X2")
		p("VPBROADCASTD X2, Y2")
	}
	groupStart(name)
	p("VPXOR Y7, Y7, Y7")
	for a := 0; a < 64*m; a += 32 {
		p("VMOVUPS Y7, %d(R12)", a)
	}
	label(name + "_chunk")
	if prefetch > 0 {
		for off := 0; off < cb; off += 64 {
			p("%s %d(SI)", prefetchOp, prefetch+off)
		}
	}
	p("LEAQ (R10)(R11*1), BX")
	dot := func(r, j int) int {
		if halves(sk) {
			return 9 + 2*r + j/2 // steps 2, 3, 6, 7 (j >= 2): second blocks
		}
		return 9 + r
	}
	for h := range 2 {
		for r := range m {
			if halves(sk) {
				p("VBROADCASTI128 %d(BX), Y%d", 64*r, dot(r, 0))
				p("VBROADCASTI128 %d(BX), Y%d", 64*r+16, dot(r, 2))
			} else {
				p("VMOVDQU %d(BX), Y%d", 64*r, dot(r, 0))
			}
		}
		for j := range 4 {
			if nib {
				nibbles256(fmt.Sprintf("%d(SI)", 64*j+32*h), 3, 4, 1, 0)
			} else {
				// Q8: steps j and 4+j as packed, w+128.
				p("VPXOR %d(SI), Y1, Y4", 64*j+32*h)
				p("VPXOR %d(SI), Y1, Y3", 256+64*j+32*h)
			}
			for r := range m {
				p("VBROADCASTI128 %d(R9), Y5", 128*r+16*j)
				p("VBROADCASTI128 %d(R9), Y6", 128*r+64+16*j)
				d := dot(r, j)
				if vnni {
					vpdpbusdVEX(d, 4, 5)
					vpdpbusdVEX(d, 3, 6)
					continue
				}
				p("VPMADDUBSW Y5, Y4, Y7")
				p("VPMADDUBSW Y6, Y3, Y8")
				p("VPADDW Y8, Y7, Y7")
				p("VPMADDWD Y2, Y7, Y7")
				p("VPADDD Y7, Y%d, Y%d", d, d)
			}
		}
		// Half h's weight scales, then each row's sums.
		switch sk {
		case e4:
			for v := range 2 {
				p("VPMOVZXBW %d(DI), X%d", 16*v+8*h, 3+v)
				p("VPSLLW $7, X%d, X%d", 3+v, 3+v)
				p("VCVTPH2PS X%d, Y%d", 3+v, 3+v)
			}
		case e8:
			p("VPMOVZXBD %d(DI), Y3", 8*h)
			p("VPSLLD $23, Y3, Y3")
		default:
			p("VCVTPH2PS %d(DI), Y3", 16*h)
		}
		for r := range m {
			sum := fmt.Sprintf("%d(R12)", 64*r+32*h)
			d := dot(r, 0)
			p("VMOVUPS %s, Y6", sum)
			p("VCVTDQ2PS Y%d, Y%d", d, d)
			if halves(sk) {
				d2 := dot(r, 2)
				p("VCVTDQ2PS Y%d, Y%d", d2, d2)
				p("VMULPS Y3, Y%d, Y%d", d, d)
				p("VFMADD231PS Y4, Y%d, Y%d", d2, d)
				p("VFMADD231PS %d(R10), Y%d, Y6", 64*r, d)
			} else {
				p("VMULPS %d(R10), Y3, Y5", 64*r)
				p("VFMADD231PS Y5, Y%d, Y6", d)
			}
			p("VMOVUPS Y6, %s", sum)
		}
	}
	p("ADDQ $%d, SI", cb)
	p("LEAQ (DI)(R8*4), DI")
	p("LEAQ (R9)(R14*2), R9")
	p("ADDQ R14, R10")
	p("DECQ CX")
	p("JNZ %s_chunk", name)
	// Row 2h+l of the group is the sum of lane l of row r's half h.
	p("MOVQ DX, CX")
	for r := range m {
		if r > 0 {
			p("ADDQ ldo+96(FP), CX")
		}
		for h := range 2 {
			p("VMOVUPS %d(R12), Y%d", 64*r+32*h, 3+h)
			p("VPERMILPS $0xB1, Y%d, Y7", 3+h)
			p("VADDPS Y7, Y%d, Y%d", 3+h, 3+h)
			p("VPERMILPS $0x4E, Y%d, Y7", 3+h)
			p("VADDPS Y7, Y%d, Y%d", 3+h, 3+h)
			p("VEXTRACTF128 $1, Y%d, X7", 3+h)
			p("VUNPCKLPS X7, X%d, X%d", 3+h, 5+h)
		}
		p("VMOVLHPS X6, X5, X5")
		p("VMOVUPS X5, (CX)")
	}
	groupEnd(name, "$16")
}

// avx2D writes int8Dot<Nib|Q8><E4|E8|H16>D256R1, the AVX2 one-row kernel
// for the transposed packing (see avx512DS): each half of zmm j is a ymm
// holding rows 2h and 2h+1, the activation steps come from int8GemmPrep's
// layout (gemmPrepGo on AVX2), broadcast to both lanes.
// Registers: Y0, Y1 f32 sums (rows 0-1, 2-3; lane 4g'+b); Y2 nibble
// table; Y3 0x0F bytes; Y4 0x0001 words; Y5, Y6 int32 dots (with halves:
// of the first blocks, Y10, Y11 of the second); Y7 step j's activations,
// Y14 step 4+j's; Y8-Y11 temporaries; Y12 activation scales; Y13, Y15
// weight scales.
func avx2D(nib bool, sk scaleKind) {
	name := fmt.Sprintf("int8Dot%sD256R1", kindName(nib, sk))
	rowKernelStart(name)
	cb := 256
	if nib {
		p("MOVQ lut+64(FP), AX")
		p("VBROADCASTI128 (AX), Y2")
		p("MOVL $0x0F0F0F0F, AX")
		p("MOVD AX, X3")
		p("VPBROADCASTD X3, Y3")
	} else {
		cb = 512
	}
	p("MOVL $0x00010001, AX")
	p("MOVD AX, X4")
	p("VPBROADCASTD X4, Y4")
	groupStart(name)
	p("VPXOR Y0, Y0, Y0")
	p("VPXOR Y1, Y1, Y1")
	label(name + "_chunk")
	if prefetch > 0 {
		for off := 0; off < cb; off += 64 {
			p("%s %d(SI)", prefetchOp, prefetch+off)
		}
	}
	switch {
	case halves(sk):
		p("VBROADCASTI128 (R10)(R11*1), Y5")
		p("VMOVDQA Y5, Y6")
		p("VBROADCASTI128 16(R10)(R11*1), Y10")
		p("VMOVDQA Y10, Y11")
	case nib:
		p("VMOVDQU (R10)(R11*1), Y5")
		p("VMOVDQA Y5, Y6")
	default:
		// x·sign(w) times |w|: no correction needed.
		p("VPXOR Y5, Y5, Y5")
		p("VPXOR Y6, Y6, Y6")
	}
	for j := range 4 {
		p("VBROADCASTI128 %d(R9), Y7", 16*j)
		p("VBROADCASTI128 %d(R9), Y14", 64+16*j)
		for h := range 2 {
			if nib {
				nibbles256(fmt.Sprintf("%d(SI)", 64*j+32*h), 8, 9, 3, 2)
				p("VPMADDUBSW Y7, Y9, Y9")
				p("VPMADDUBSW Y14, Y8, Y8")
				p("VPADDW Y8, Y9, Y9")
				p("VPMADDWD Y4, Y9, Y9")
			} else {
				p("VMOVDQU %d(SI), Y9", 64*j+32*h)
				p("VMOVDQU %d(SI), Y8", 256+64*j+32*h)
				p("VPSIGNB Y9, Y7, Y10")
				p("VPSIGNB Y8, Y14, Y11")
				p("VPABSB Y9, Y9")
				p("VPABSB Y8, Y8")
				p("VPMADDUBSW Y10, Y9, Y9")
				p("VPMADDUBSW Y11, Y8, Y8")
				// Each word is up to 2·128·127: widen before adding.
				p("VPMADDWD Y4, Y9, Y9")
				p("VPMADDWD Y4, Y8, Y8")
				p("VPADDD Y8, Y9, Y9")
			}
			d := 5 + h
			if halves(sk) && j >= 2 {
				d = 10 + h
			}
			p("VPADDD Y9, Y%d, Y%d", d, d)
		}
	}
	p("VMOVUPS (R10), Y12")
	for h := range 2 {
		p("VCVTDQ2PS Y%d, Y%d", 5+h, 5+h)
		if halves(sk) {
			p("VCVTDQ2PS Y%d, Y%d", 10+h, 10+h)
			for v, r := range []int{13, 15} {
				p("VPMOVZXBW %d(DI), X%d", 16*v+8*h, r)
				p("VPSLLW $7, X%d, X%d", r, r)
				p("VCVTPH2PS X%d, Y%d", r, r)
			}
			p("VMULPS Y13, Y%d, Y%d", 5+h, 5+h)
			p("VFMADD231PS Y15, Y%d, Y%d", 10+h, 5+h)
			p("VFMADD231PS Y12, Y%d, Y%d", 5+h, h)
			continue
		}
		switch sk {
		case e8:
			p("VPMOVZXBD %d(DI), Y13", 8*h)
			p("VPSLLD $23, Y13, Y13")
		default:
			p("VCVTPH2PS %d(DI), Y13", 16*h)
		}
		p("VMULPS Y12, Y13, Y13")
		p("VFMADD231PS Y13, Y%d, Y%d", 5+h, h)
	}
	chunkEnd(name, cb)
	// Row 2h+l is the sum of lane l of Y(h).
	for h := range 2 {
		p("VPERMILPS $0xB1, Y%d, Y8", h)
		p("VADDPS Y8, Y%d, Y%d", h, h)
		p("VPERMILPS $0x4E, Y%d, Y8", h)
		p("VADDPS Y8, Y%d, Y%d", h, h)
		p("VEXTRACTF128 $1, Y%d, X8", h)
		p("VUNPCKLPS X8, X%d, X%d", h, 9+h)
	}
	p("VMOVLHPS X10, X9, X9")
	p("VMOVUPS X9, (DX)")
	groupEnd(name, "$16")
}

// exact512D writes f32Dot<Nib|Q8><E4|E8|H16>D512, the Exact kernel for
// the transposed packing (see avx512DS): lane g of zmm j holds row g's
// dword j of each block's low view lane, decoded exactly through ftab
// (which undoes the factor the scales load with: halved for E8, times
// 2^8 for E4) and scaled by the block's scale, against f32 activations
// prepared by prepExact in the matching order (orderD or orderDNV: step
// s, then block, then byte).
// Registers: Z0-Z3 and Z12-Z15 accumulators (row g: low, high steps); Z4
// the f32 nibble table; Z5-Z8 the scale index of row g (dword 4b+t:
// slot 4g+b, for E8 in its top byte); Z9 scales (with halves: of the
// first blocks, Z26 of the second); Z10, Z11 temporaries; K1 top bytes
// (E8); Z28 the chunk's scales as f32 (H16; with halves: of the first
// blocks, Z27 of the second).
func exact512D(nib bool, sk scaleKind) {
	name := fmt.Sprintf("f32Dot%sD512", kindName(nib, sk))
	exactStart(name, sk)
	cb := 256
	if !nib {
		cb = 512
	}
	label(name + "_chunk")
	if prefetch > 0 {
		for off := 0; off < cb; off += 64 {
			p("%s %d(SI)", prefetchOp, prefetch+off)
		}
	}
	switch sk {
	case h16:
		p("VCVTPH2PS (DI), Z28")
	case e4:
		e4Load("(DI)", 28)
		e4Load("16(DI)", 27)
	}
	for g := range 4 {
		switch sk {
		case e8:
			scaleLoad("(DI)", fmt.Sprintf("Z%d", 5+g), "Z9")
		case e4:
			p("VPERMPS Z27, Z%d, Z26", 5+g)
			fallthrough
		default:
			p("VPERMPS Z28, Z%d, Z9", 5+g)
		}
		for j := range 4 {
			if nib {
				sc := 9
				if halves(sk) && j >= 2 {
					sc = 26
				}
				exactNibbles(64*j+16*g, 64*j, g, sc)
				continue
			}
			for v := range 2 {
				p("VPMOVSXBD %d(SI), Z10", 256*v+64*j+16*g)
				p("VCVTDQ2PS Z10, Z10")
				p("VMULPS Z9, Z10, Z10")
				p("VFMADD231PS %d(R9), Z10, Z%d", 256*v+64*j, 12*v+g)
			}
		}
	}
	p("ADDQ $%d, SI", cb)
	p("LEAQ (DI)(R8*4), DI")
	p("ADDQ $512, R9")
	p("DECQ CX")
	p("JNZ %s_chunk", name)
	exactGroupEnd(name)
}

// exactStart writes an Exact kernel's header, its constants (Z4 the code
// table, Z5-Z8 the scale indices, K1) and the start of a group: R9 its
// activations, CX its chunks, the accumulators Z0-Z3 and Z12-Z15 zeroed.
func exactStart(name string, sk scaleKind) {
	header(name, "(w *byte, ws *byte, sstride int, x *float32, chunks, groups int, ftab *[16]float32, eidx *[4][16]int32, out *float32)", 72)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), DI")
	p("MOVQ sstride+16(FP), R8")
	p("MOVQ groups+40(FP), R13")
	p("MOVQ out+64(FP), DX")
	p("MOVQ ftab+48(FP), AX")
	p("VMOVUPS (AX), Z4")
	p("MOVQ eidx+56(FP), AX")
	for l := range 4 {
		p("VMOVDQU32 %d(AX), Z%d", 64*l, 5+l)
	}
	scaleMask(sk)
	label(name + "_group")
	p("MOVQ x+24(FP), R9")
	p("MOVQ chunks+32(FP), CX")
	for _, z := range []int{0, 1, 2, 3, 12, 13, 14, 15} {
		p("VPXORD Z%d, Z%d, Z%d", z, z, z)
	}
}

// exactNibbles decodes the 16 code bytes at codes(SI) exactly (Z4 the
// table, Z(sc) their scales) and adds their low nibbles times the
// activations at x(R9) to row g's Z(g), their high nibbles times those
// 256 bytes later to Z(12+g).
func exactNibbles(codes, x, g, sc int) {
	p("VPMOVZXBD %d(SI), Z10", codes)
	p("VPERMPS Z4, Z10, Z11")
	p("VMULPS Z%d, Z11, Z11", sc)
	p("VFMADD231PS %d(R9), Z11, Z%d", x, g)
	p("VPSRLD $4, Z10, Z10")
	p("VPERMPS Z4, Z10, Z11")
	p("VMULPS Z%d, Z11, Z11", sc)
	p("VFMADD231PS %d(R9), Z11, Z%d", 256+x, 12+g)
}

// exactGroupEnd ends a group of the Exact kernels: out[g] (DX) is the sum
// of row g's accumulators Z(g) and Z(12+g), then the next group.
func exactGroupEnd(name string) {
	for g := range 4 {
		p("VADDPS Z%d, Z%d, Z%d", 12+g, g, g)
		p("VEXTRACTF64X4 $1, Z%d, Y16", g)
		p("VADDPS Y16, Y%d, Y16", g)
		p("VEXTRACTF32X4 $1, Y16, X17")
		p("VADDPS X17, X16, X16")
		p("VPERMILPS $0x4E, X16, X17")
		p("VADDPS X17, X16, X16")
		p("VPERMILPS $0xB1, X16, X17")
		p("VADDSS X17, X16, X16")
		p("VMOVSS X16, %d(DX)", 4*g)
	}
	groupEnd(name, "$16")
}

// quantStart writes a quantizer's header and loads its arguments (see
// quant), negOff into AX.
func quantStart(name string) {
	header(name, "(x *float32, chunks int, xq *int8, xqStride int, sa *float32, cr *int32, sStride int, negOff int, nv bool)", 65)
	p("MOVQ x+0(FP), SI")
	p("MOVQ chunks+8(FP), CX")
	p("MOVQ xq+16(FP), DI")
	p("MOVQ xqStride+24(FP), R8")
	p("MOVQ sa+32(FP), R9")
	p("MOVQ cr+40(FP), R10")
	p("MOVQ sStride+48(FP), R11")
	p("MOVQ negOff+56(FP), AX")
}

// quantScales writes a quantizer's block scales from the block's largest
// |x| bits in amax: to l_nan if they are NaN or ±Inf, to l_zero if below
// 2^-96 (i8TinyBits), else id = 127/amax and d = amax/127 (c127 holds
// 127.0; d may be amax itself).
func quantScales(l, amax, c127, id, d string) {
	p("VMOVD %s, AX", amax)
	p("CMPL AX, $0x7F800000")
	p("JAE %s_nan", l)
	p("CMPL AX, $0x%X", 0x0F800000)
	p("JB %s_zero", l)
	p("VDIVSS %s, %s, %s", amax, c127, id) // id = 127/amax
	p("VDIVSS %s, %s, %s", c127, amax, d)  // d = amax/127
}

// quantSpecial ends a quantizer's normal block at l_store and writes its
// special ones: scales NaN (X8) for l_nan, 0 for l_zero, into X4, and the
// code registers codes cleared, then l_store.
func quantSpecial(l string, codes ...string) {
	p("JMP %s_store", l)
	label(l + "_nan")
	p("VMOVDQA X8, X4")
	p("JMP %s_clear", l)
	label(l + "_zero")
	p("VPXOR X4, X4, X4")
	label(l + "_clear")
	for _, r := range codes {
		p("VPXOR %s, %s, %s", r, r, r)
	}
	label(l + "_store")
}

// quant writes quantChunks512, the activation quantizer (quantizeChunk for
// whole chunks). Registers: SI x, CX chunks left, DI xq, R8 xq stride, R9 sa,
// R10 cr, R11 sa/cr stride, DX nv; Z31 abs mask, X30 127.0, Z29 0x01
// bytes, Z28 -off, X8 NaN; Z0-Z7 temporaries.
func quant() {
	quantStart("quantChunks512")
	p("VPBROADCASTD AX, Z28")
	p("MOVBLZX nv+64(FP), DX")
	p("MOVL $0x7FFFFFFF, AX")
	p("VPBROADCASTD AX, Z31")
	p("MOVL $0x42FE0000, AX") // 127.0
	p("VMOVD AX, X30")
	p("MOVL $0x01010101, AX")
	p("VPBROADCASTD AX, Z29")
	p("MOVL $0x7FC00000, AX")
	p("VPBROADCASTD AX, X8")
	label("quantChunks512_loop")
	for b := range 4 {
		l := fmt.Sprintf("quantChunks512_b%d", b)
		p("VMOVUPS %d(SI), Z0", 128*b)
		p("VMOVUPS %d(SI), Z1", 128*b+64)
		p("VPANDD Z31, Z0, Z2")
		p("VPANDD Z31, Z1, Z3")
		p("VPMAXUD Z3, Z2, Z2")
		p("VEXTRACTI64X4 $1, Z2, Y3")
		p("VPMAXUD Y3, Y2, Y2")
		p("VEXTRACTI128 $1, Y2, X3")
		p("VPMAXUD X3, X2, X2")
		p("VPSHUFD $0x4E, X2, X3")
		p("VPMAXUD X3, X2, X2")
		p("VPSHUFD $0xB1, X2, X3")
		p("VPMAXUD X3, X2, X2")
		quantScales(l, "X2", "X30", "X3", "X4")
		p("VBROADCASTSS X3, Z3")
		p("VBROADCASTSS X4, X4")
		p("VMULPS Z3, Z0, Z0")
		p("VMULPS Z3, Z1, Z1")
		p("VCVTPS2DQ Z0, Z0")
		p("VCVTPS2DQ Z1, Z1")
		p("VPMOVSDB Z0, X0")
		p("VPMOVSDB Z1, X1")
		quantSpecial(l, "X0", "X1")
		p("VMOVUPS X4, %d(R9)", 16*b)
		p("TESTQ DX, DX")
		p("JZ %s_mx", l)
		// NV order: lo = q[0:8] ++ q[16:24], hi = q[8:16] ++ q[24:32].
		p("VPUNPCKLQDQ X1, X0, X2")
		p("VPUNPCKHQDQ X1, X0, X1")
		p("VMOVDQA X2, X0")
		label(l + "_mx")
		p("VMOVDQU X0, %d(DI)", 16*b)
		p("VMOVDQU X1, %d(DI)", 64+16*b)
	}
	p("VMOVDQU8 (DI), Z5")
	p("VMOVDQU8 64(DI), Z6")
	p("VPXORD Z7, Z7, Z7")
	p("VPDPBUSD Z5, Z29, Z7")
	p("VPDPBUSD Z6, Z29, Z7")
	p("VPMULLD Z28, Z7, Z7")
	p("VMOVDQU32 Z7, (R10)")
	p("ADDQ $512, SI")
	p("ADDQ R8, DI")
	p("ADDQ R11, R9")
	p("ADDQ R11, R10")
	p("DECQ CX")
	p("JNZ quantChunks512_loop")
	p("VZEROUPPER")
	p("RET")
}

// quant256 writes quantChunks256, quantChunks512 for AVX2: the same
// results bit for bit, the block's 32 codes packed by VPACKSSDW and
// VPACKSSWB (saturating like VPMOVSDB; |q| <= 127 anyway) and put in
// order by VPERMD (MX: 0-31 in order, lo view the first 16; NV: lo view
// q[0:8] ++ q[16:24]), the corrections summed by VPMADDUBSW and VPMADDWD.
// Registers: Y0-Y3 a block's values, then codes; Y4-Y6 temporaries; Y8
// NaN; Y9 the code order; Y10 0x01 bytes; Y11 0x0001 words; Y12 -off;
// Y13 the abs mask; X14 127.0.
func quant256() {
	const name = "quantChunks256"
	quantStart(name)
	p("MOVQ AX, X12")
	p("VPBROADCASTD X12, Y12")
	p("MOVL $0x7FFFFFFF, AX")
	p("MOVQ AX, X13")
	p("VPBROADCASTD X13, Y13")
	p("MOVL $0x42FE0000, AX") // 127.0
	p("MOVQ AX, X14")
	p("MOVL $0x01010101, AX")
	p("MOVQ AX, X10")
	p("VPBROADCASTD X10, Y10")
	p("MOVL $0x00010001, AX")
	p("MOVQ AX, X11")
	p("VPBROADCASTD X11, Y11")
	p("MOVL $0x7FC00000, AX")
	p("MOVQ AX, X8")
	p("VPBROADCASTD X8, X8")
	// The code order as dword indexes into the packed block, whose
	// dwords hold q[0:4], q[8:12], q[16:20], q[24:28], then q[4:8], ...
	p("MOVQ $0x0703060205010400, AX") // MX: 0, 4, 1, 5, 2, 6, 3, 7
	p("MOVBLZX nv+64(FP), DX")
	p("TESTQ DX, DX")
	p("JZ %s_order", name)
	p("MOVQ $0x0703050106020400, AX") // NV: 0, 4, 2, 6, 1, 5, 3, 7
	label(name + "_order")
	p("MOVQ AX, X9")
	p("VPMOVZXBD X9, Y9")
	label(name + "_loop")
	for b := range 4 {
		l := fmt.Sprintf("%s_b%d", name, b)
		for v := range 4 {
			p("VMOVUPS %d(SI), Y%d", 128*b+32*v, v)
		}
		p("VPAND Y13, Y0, Y4")
		p("VPAND Y13, Y1, Y5")
		p("VPMAXUD Y5, Y4, Y4")
		p("VPAND Y13, Y2, Y5")
		p("VPMAXUD Y5, Y4, Y4")
		p("VPAND Y13, Y3, Y5")
		p("VPMAXUD Y5, Y4, Y4")
		p("VEXTRACTI128 $1, Y4, X5")
		p("VPMAXUD X5, X4, X4")
		p("VPSHUFD $0x4E, X4, X5")
		p("VPMAXUD X5, X4, X4")
		p("VPSHUFD $0xB1, X4, X5")
		p("VPMAXUD X5, X4, X4")
		quantScales(l, "X4", "X14", "X5", "X4")
		p("VBROADCASTSS X5, Y5")
		p("VBROADCASTSS X4, X4")
		for v := range 4 {
			p("VMULPS Y5, Y%d, Y%d", v, v)
			p("VCVTPS2DQ Y%d, Y%d", v, v)
		}
		p("VPACKSSDW Y1, Y0, Y0")
		p("VPACKSSDW Y3, Y2, Y2")
		p("VPACKSSWB Y2, Y0, Y0")
		p("VPERMD Y0, Y9, Y0")
		quantSpecial(l, "Y0")
		p("VMOVUPS X4, %d(R9)", 16*b)
		p("VMOVDQU X0, %d(DI)", 16*b)
		p("VEXTRACTI128 $1, Y0, %d(DI)", 64+16*b)
	}
	for h := range 2 {
		p("VMOVDQU %d(DI), Y4", 32*h)
		p("VPMADDUBSW Y4, Y10, Y4")
		p("VMOVDQU %d(DI), Y5", 64+32*h)
		p("VPMADDUBSW Y5, Y10, Y5")
		p("VPADDW Y5, Y4, Y4")
		p("VPMADDWD Y11, Y4, Y4")
		p("VPMULLD Y12, Y4, Y4")
		p("VMOVDQU Y4, %d(R10)", 32*h)
	}
	p("ADDQ $512, SI")
	p("ADDQ R8, DI")
	p("ADDQ R11, R9")
	p("ADDQ R11, R10")
	p("DECQ CX")
	p("JNZ %s_loop", name)
	p("VZEROUPPER")
	p("RET")
}

// Decoded-panel ("D") kernels for large M. A group's row-chunk is decoded
// once into a panel of plain bytes that a VNNI-only kernel then reads for
// many activation rows. The panel holds, per chunk and group (decBytes
// apart, decG groups per chunk), eight zmm of codes
// plus off: zmm s has lane g (weight row g of the group) and dword b
// (block b of the chunk) holding the four bytes of step s of that block
// (steps 0-3 are the low view's dwords, 4-7 the high view's), then the
// 16 f32 weight scales in the same lane order 4g+b (with halves: the
// first blocks' 16, then the second's). The activations are
// prepared to match (gemmPrep): per record, steps 0-7 as 16 bytes each
// (dword b: block b), 4 block scales and 4 block corrections. A VPDPBUSD
// of zmm s with the broadcast 16 activation bytes of step s then adds to
// lane 4g+b the block dot of row g, block b, so eight of them finish a
// block's exact int32 dot without any horizontal reduction.

// decG is the groups per chunk of the panel and decR the activation rows
// of a block (the gemm kernel's register block).
const (
	decG = 3
	decR = 4
)

// decBytes is the size of a group's decoded row-chunk for scales sk:
// eight zmm of codes and 16 f32 scales, 32 with halves.
func decBytes(sk scaleKind) int {
	if halves(sk) {
		return 640
	}
	return 576
}

// decPrefetch makes the panel decoder prefetch, with decPrefetchOp.
var (
	decPrefetch      = true
	decPrefetchCodes = false // the gemm kernel prefetches them instead
	decPrefetchOp    = "PREFETCHT0"
	// gemmPrefetch makes the gemm kernel prefetch the codes of a later
	// panel.
	gemmPrefetch = true
)

// transIdx emits the dword index of the 4×4 transpose into Z30.
func transIdx() {
	// idx[4j+b] = 4b+j, as bytes 0x0C080400 + j·0x01010101 widened.
	p("MOVQ $0x0D0905010C080400, AX")
	p("VMOVQ AX, X0")
	p("MOVQ $0x0F0B07030E0A0602, AX")
	p("VPINSRQ $1, AX, X0, X0")
	p("VPMOVZXBD X0, Z30")
}

// decStart writes a panel decoder's header and loads its arguments: SI
// codes, DI scales, R8 a chunk's scale bytes (4·sstride), R13 groups.
func decStart(name string) {
	header(name, "(w *byte, ws *byte, sstride int, chunks, groups, gcodes, gscales, pf, spf int, lut *[16]uint8, dst *byte, wscale float32)", 92)
	p("MOVQ w+0(FP), SI")
	p("MOVQ ws+8(FP), DI")
	p("MOVQ sstride+16(FP), R8")
	p("SHLQ $2, R8")
	p("MOVQ groups+32(FP), R13")
}

// avx512Dec writes the panel decoder: for groups groups (codes gcodes and
// scales gscales bytes apart) and chunks chunks from w, ws, it writes
// group q's chunk c at dst + (c·decG + q)·decBytes, and prefetches the
// codes pf bytes and the scales spf bytes after those it reads.
// Registers: Z0-Z7 decoded codes, Z4 then the scales, Z29 nibble table,
// Z30 128 in each dword (E8), Z31 0x80 bytes.
func avx512Dec(nib bool, sk scaleKind) {
	name := fmt.Sprintf("int8Dec%s512", kindName(nib, sk))
	decStart(name)
	p("MOVQ pf+56(FP), R12")
	p("MOVQ spf+64(FP), R14")
	p("MOVQ dst+80(FP), DX")
	p("MOVQ lut+72(FP), AX")
	p("VBROADCASTI32X4 (AX), Z29")
	p("MOVL $0x80808080, AX")
	p("VPBROADCASTD AX, Z31")
	switch sk {
	case e8:
		p("MOVL $128, AX")
		p("VPBROADCASTD AX, Z30")
	case e4:
		p("VBROADCASTSS wscale+88(FP), Z30")
	}
	rcb := 128
	if nib {
		rcb = 64
	}
	label(name + "_group")
	p("MOVQ SI, R9")
	p("MOVQ DI, R10")
	p("MOVQ DX, R11")
	p("MOVQ chunks+24(FP), CX")
	label(name + "_chunk")
	// The codes and scales pf and spf bytes ahead, which the driver sets
	// to those of the panel it decodes next: the gemm kernel runs while
	// they arrive.
	if decPrefetch {
		for off := 0; off < 4*rcb && decPrefetchCodes; off += 64 {
			p("%s %d(R9)(R12*1)", decPrefetchOp, off)
		}
		p("%s (R10)(R14*1)", decPrefetchOp)
	}
	// The codes are packed transposed (see int8Format.pack): nibble zmm
	// j holds the panel's steps j and 4+j, Q8 zmm s step s.
	if nib {
		for j := range 4 {
			p("VMOVDQU8 %d(R9), Z%d", 64*j, j)
		}
		for j := range 4 {
			p("VPERMB Z29, Z%d, Z%d", j, 4+j)
			p("VPSRLW $4, Z%d, Z%d", j, j)
			p("VPERMB Z29, Z%d, Z%d", j, j)
			p("VMOVDQU32 Z%d, %d(R11)", 4+j, 64*j)
			p("VMOVDQU32 Z%d, %d(R11)", j, 64*(j+4))
		}
	} else {
		for st := range 8 {
			p("VPXORD %d(R9), Z31, Z%d", 64*st, st%4)
			p("VMOVDQU32 Z%d, %d(R11)", st%4, 64*st)
		}
	}
	switch sk {
	case e8:
		// MXFP4's scales are powers of two: the panel holds their
		// exponents e-128 (the format's halved 2^(e-128), exact) for the
		// E gemm kernel's VSCALEFPS. Matrices with the bytes the fast
		// kernels cannot take (0xFF: NaN) never get here.
		p("VPMOVZXBD (R10), Z4")
		p("VPSUBD Z30, Z4, Z4")
		p("VCVTDQ2PS Z4, Z4")
	case h16:
		p("VCVTPH2PS (R10), Z4")
	case e4:
		// The format's scales (halved for the doubled codes) times the
		// tensor scale: the loaded 2^-8 times the value, times wscale
		// (128 times the tensor scale).
		e4Load("(R10)", 4)
		p("VMULPS Z30, Z4, Z4")
		e4Load("16(R10)", 5)
		p("VMULPS Z30, Z5, Z5")
		p("VMOVDQU32 Z5, 576(R11)")
	}
	p("VMOVDQU32 Z4, 512(R11)")
	p("ADDQ $%d, R9", 4*rcb)
	p("ADDQ R8, R10")
	p("ADDQ $%d, R11", decG*decBytes(sk))
	p("DECQ CX")
	p("JNZ %s_chunk", name)
	p("ADDQ gcodes+40(FP), SI")
	p("ADDQ gscales+48(FP), DI")
	groupEnd(name, fmt.Sprintf("$%d", decBytes(sk)))
}

// avx512Gemm writes int8GemmD512 (int8GemmDE512 if exp: the panel holds
// the weight scales' exponents, applied by VSCALEFPS, which unlike VMULPS
// does not compete with VPDPBUSD for ports on Zen 5), the VNNI kernel
// over a decoded panel:
// decG groups × blocks blocks of decR activation rows. For block b it
// adds the panel's chunks chunks to the per-lane f32 sums acc[b][r][q]
// (16 f32 each; zero instead of acc's if first is set), and if last is set
// it writes their row sums instead: row r of block b, group q, weight row
// g to out + (b·decR+r)·ldo + 16q + 4g (bytes), Σ_b' acc lane 4g+b'. The
// activations (xq, xs, xc at the block's first chunk, as gemmPrep leaves
// them) of block b are b·bstride records after block 0's.
// Registers: Z0-Z11 f32 sums (act row r, group q: Z(decG·r+q)); Z12-Z23
// int32 dots, same order; Z24-Z26 codes of step s; Z27 activations of
// step s; Z24-Z26 then the groups' weight scales, Z28 activation scales,
// Z29 combined scale. SI panel chunk, R9, R10 activation chunk (codes,
// scales), R11 the distance from the scales to the corrections, R12 blocks
// left, R13 acc, DX out.
// Each chunk it runs, it also prefetches pfs bytes (a multiple of 64) at
// pf+pfo and the two pfg and 2·pfg after, until it has prefetched pfn
// bytes there: the driver points them at the three groups of the panel it
// decodes decAhead panels later and spreads them over the call with pfs.
func avx512Gemm(sk scaleKind) {
	name := "int8GemmD512"
	exp := sk == e8
	switch sk {
	case e8:
		name = "int8GemmDE512"
	case e4:
		name = "int8GemmDH512"
	}
	db := decBytes(sk)
	gemmStart(name)
	nacc := decG * decR
	p("CMPB first+64(FP), $0")
	p("JNE %s_zero", name)
	for a := range nacc {
		p("VMOVUPS %d(R13), Z%d", 64*a, a)
	}
	p("JMP %s_chunk", name)
	label(name + "_zero")
	for a := range nacc {
		p("VPXORD Z%d, Z%d, Z%d", a, a, a)
	}
	gemmPrefetchCodes(name)
	if halves(sk) {
		gemmChunkHalves(db)
	} else {
		gemmChunk(db, exp)
	}
	p("ADDQ $%d, SI", decG*db)
	p("ADDQ $%d, R9", decR*128)
	p("ADDQ $%d, R10", decR*64)
	p("DECQ CX")
	p("JNZ %s_chunk", name)
	p("CMPB last+65(FP), $0")
	p("JNE %s_last", name)
	for a := range nacc {
		p("VMOVUPS Z%d, %d(R13)", a, 64*a)
	}
	p("JMP %s_next", name)
	label(name + "_last")
	// Each 128-bit lane (one weight row) sums to its dwords, which
	// VPMOVQD twice gathers into the low four.
	p("MOVQ DX, CX")
	p("MOVQ ldo+80(FP), SI")
	for r := range decR {
		if r > 0 {
			p("ADDQ SI, CX")
		}
		for q := range decG {
			a := decG*r + q
			p("VPSHUFD $0x4E, Z%d, Z12", a)
			p("VADDPS Z12, Z%d, Z%d", a, a)
			p("VPSHUFD $0xB1, Z%d, Z12", a)
			p("VADDPS Z12, Z%d, Z%d", a, a)
			p("VPMOVQD Z%d, Y%d", a, a)
			p("VPMOVQD Y%d, X%d", a, a)
			p("VMOVUPS X%d, %d(CX)", a, 16*q)
		}
	}
	gemmNext(name)
}

// gemmStart writes a gemm kernel's header and setup, up to the start of
// a block: R14, R15 the block's activation codes and scales, R11 the
// distance from the scales to the corrections, R12 blocks left, R13 acc,
// DX out; AX a block's activation code bytes, the bstride slot its scale
// bytes; R8 the prefetch cursor, DI the distance between the prefetched
// groups, the pfn slot the cursor's end; then per block SI the panel, R9
// and R10 the chunk's activation codes and scales, CX chunks left.
func gemmStart(name string) {
	header(name, "(wd *byte, xq *int8, xs *float32, xc *int32, chunks, blocks, bstride int, acc *float32, first, last bool, out *float32, ldo int, pf *byte, pfo, pfg, pfn, pfs int)", 128)
	p("MOVQ xq+8(FP), R14")
	p("MOVQ xs+16(FP), R15")
	p("MOVQ xc+24(FP), R11")
	p("SUBQ R15, R11")
	p("MOVQ blocks+40(FP), R12")
	p("MOVQ acc+56(FP), R13")
	p("MOVQ out+72(FP), DX")
	p("MOVQ bstride+48(FP), AX")
	p("MOVQ AX, CX")
	p("SHLQ $7, AX")
	p("SHLQ $6, CX")
	p("MOVQ CX, bstride+48(FP)")
	p("MOVQ pf+88(FP), R8")
	p("ADDQ pfo+96(FP), R8")
	p("MOVQ pfg+104(FP), DI")
	p("MOVQ pfn+112(FP), CX")
	p("ADDQ R8, CX")
	p("MOVQ CX, pfn+112(FP)")
	label(name + "_block")
	p("MOVQ wd+0(FP), SI")
	p("MOVQ R14, R9")
	p("MOVQ R15, R10")
	p("MOVQ chunks+32(FP), CX")
}

// gemmPrefetchCodes writes the start of a gemm kernel's chunk: the
// prefetch of pfs bytes of the three groups' codes at the cursor (see
// avx512Gemm).
func gemmPrefetchCodes(name string) {
	label(name + "_chunk")
	if !gemmPrefetch {
		return
	}
	p("CMPQ R8, pfn+112(FP)")
	p("JAE %s_nopf", name)
	p("MOVQ pfs+120(FP), BX")
	label(name + "_pf")
	for off := 0; off < 128; off += 64 {
		p("PREFETCHT0 %d(R8)", off)
		p("PREFETCHT0 %d(R8)(DI*1)", off)
		p("PREFETCHT0 %d(R8)(DI*2)", off)
	}
	p("ADDQ $128, R8")
	p("SUBQ $128, BX")
	p("JA %s_pf", name)
	label(name + "_nopf")
}

// gemmNext ends a gemm kernel's block: acc, out and the activations move
// to the next block.
func gemmNext(name string) {
	label(name + "_next")
	p("ADDQ $%d, R13", 64*decG*decR)
	p("MOVQ ldo+80(FP), SI")
	p("LEAQ (DX)(SI*4), DX")
	p("ADDQ AX, R14")
	p("ADDQ bstride+48(FP), R15")
	p("DECQ R12")
	p("JNZ %s_block", name)
	p("VZEROUPPER")
	p("RET")
}

// gemmChunk writes the body of the gemm kernel's chunk loop for one
// block per lane (see avx512Gemm).
func gemmChunk(db int, exp bool) {
	// The corrections of act row r start the dots of its decG groups.
	for r := range decR {
		p("VMOVDQU32 %d(R10)(R11*1), Z%d", 64*r, 12+decG*r)
		for q := 1; q < decG; q++ {
			p("VMOVDQA32 Z%d, Z%d", 12+decG*r, 12+decG*r+q)
		}
	}
	for s := range 8 {
		for q := range decG {
			p("VMOVDQU32 %d(SI), Z%d", q*db+64*s, 24+q)
		}
		for r := range decR {
			p("VBROADCASTI32X4 %d(R9), Z27", 128*r+16*s)
			for q := range decG {
				p("VPDPBUSD Z27, Z%d, Z%d", 24+q, 12+decG*r+q)
			}
		}
	}
	// The groups' weight scales (or exponents), once per chunk.
	for q := range decG {
		p("VMOVUPS %d(SI), Z%d", q*db+512, 24+q)
	}
	for r := range decR {
		p("VMOVUPS %d(R10), Z28", 64*r)
		for q := range decG {
			a := decG*r + q
			if exp {
				p("VCVTDQ2PS Z%d, Z%d", 12+a, 12+a)
				p("VSCALEFPS Z%d, Z%d, Z%d", 24+q, 12+a, 12+a)
				p("VFMADD231PS Z28, Z%d, Z%d", 12+a, a)
				continue
			}
			p("VMULPS Z%d, Z28, Z29", 24+q)
			p("VCVTDQ2PS Z%d, Z%d", 12+a, 12+a)
			p("VFMADD231PS Z29, Z%d, Z%d", 12+a, a)
		}
	}
}

// gemmChunkHalves writes the chunk body for two blocks per lane (NVFP4):
// two passes of two activation rows each, whose int32 dots (Z(12 + 6r' +
// 3h + q) for row r' of the pass, half h, group q) are all live, so that
// a row and group take float32(dotA)·sA + float32(dotB)·sB, then one FMA
// with the activation scale: five float ops per pair of blocks, where a
// pass per half took six.
func gemmChunkHalves(db int) {
	ia := func(r2, h, q int) int { return 12 + 6*r2 + 3*h + q }
	for rp := 0; rp < decR; rp += 2 {
		for r2 := range 2 {
			for h := range 2 {
				p("VBROADCASTI32X4 %d(R10)(R11*1), Z%d", 64*(rp+r2)+16*h, ia(r2, h, 0))
				for q := 1; q < decG; q++ {
					p("VMOVDQA32 Z%d, Z%d", ia(r2, h, 0), ia(r2, h, q))
				}
			}
		}
		for s := range 8 {
			h := s / 2 % 2 // steps 0, 1, 4, 5: the first blocks
			for q := range decG {
				p("VMOVDQU32 %d(SI), Z%d", q*db+64*s, 24+q)
			}
			for r2 := range 2 {
				p("VBROADCASTI32X4 %d(R9), Z27", 128*(rp+r2)+16*s)
				for q := range decG {
					p("VPDPBUSD Z27, Z%d, Z%d", 24+q, ia(r2, h, q))
				}
			}
		}
		for r2 := range 2 {
			r := rp + r2
			for q := range decG {
				da, db2 := ia(r2, 0, q), ia(r2, 1, q)
				p("VCVTDQ2PS Z%d, Z%d", da, da)
				p("VCVTDQ2PS Z%d, Z%d", db2, db2)
				p("VMULPS %d(SI), Z%d, Z%d", q*db+512, da, da)
				p("VFMADD231PS %d(SI), Z%d, Z%d", q*db+576, db2, da)
				p("VFMADD231PS %d(R10), Z%d, Z%d", 64*r, da, decG*r+q)
			}
		}
	}
}

// avx2Dec writes int8Dec<NibE4|NibE8|NibH16|Q8H16>256, the AVX2 panel
// decoders: the same panel as avx512Dec (nibble codes plus off by
// VPSHUFB, Q8 codes plus 128 by flipping the top bit, both ymm halves of
// each zmm), but with the scales as f32 values for int8GemmD256
// (int8GemmDH256 for NVFP4; Q8_0's codes plus 128 overflow VPMADDUBSW's
// pair sums, so its panel is for int8GemmDV256 only): MXFP4's E8M0 byte e
// as 2^(e-127)·0.5 (e<<23, halved: exact, and 0 for e = 0, whose codes
// the Go side guarantees are all ±0), NVFP4's as avx512Dec writes them.
// Registers: Y0, Y1 codes, Y2 nibble table, Y3 0x0F bytes (0x80 for Q8),
// Y4 0.5 (E8) or wscale (E4), Y5 scales.
func avx2Dec(nib bool, sk scaleKind) {
	name := fmt.Sprintf("int8Dec%s256", kindName(nib, sk))
	decStart(name)
	p("MOVQ spf+64(FP), R14")
	p("MOVQ dst+80(FP), DX")
	if nib {
		p("MOVQ lut+72(FP), AX")
		p("VBROADCASTI128 (AX), Y2")
		p("MOVL $0x0F0F0F0F, AX")
	} else {
		p("MOVL $0x80808080, AX")
	}
	p("MOVD AX, X3")
	p("VPBROADCASTD X3, Y3")
	switch sk {
	case e8:
		p("MOVL $0x3F000000, AX") // 0.5
		p("MOVD AX, X4")
		p("VPBROADCASTD X4, Y4")
	case e4:
		p("VBROADCASTSS wscale+88(FP), Y4")
	}
	db := decBytes(sk)
	label(name + "_group")
	p("MOVQ SI, R9")
	p("MOVQ DI, R10")
	p("MOVQ DX, R11")
	p("MOVQ chunks+24(FP), CX")
	label(name + "_chunk")
	if decPrefetch {
		p("%s (R10)(R14*1)", decPrefetchOp)
	}
	cb := 256 // code bytes per chunk
	if !nib {
		// Q8: the packed steps in order, w+128 by flipping the top bits.
		cb = 512
		for o := 0; o < cb; o += 32 {
			p("VPXOR %d(R9), Y3, Y0", o)
			p("VMOVDQU Y0, %d(R11)", o)
		}
	}
	for j := range 4 {
		for hh := range 2 {
			if !nib {
				break
			}
			o := 64*j + 32*hh
			nibbles256(fmt.Sprintf("%d(R9)", o), 0, 1, 3, 2)
			p("VMOVDQU Y1, %d(R11)", o)
			p("VMOVDQU Y0, %d(R11)", o+256)
		}
	}
	for hh := range 2 {
		switch sk {
		case e8:
			p("VPMOVZXBD %d(R10), Y5", 8*hh)
			p("VPSLLD $23, Y5, Y5")
			p("VMULPS Y4, Y5, Y5")
		case h16:
			p("VCVTPH2PS %d(R10), Y5", 16*hh)
		case e4:
			// Both blocks' scales, as the AVX-512 decoder writes them.
			for h := range 2 {
				p("VPMOVZXBW %d(R10), X5", 16*h+8*hh)
				p("VPSLLW $7, X5, X5")
				p("VCVTPH2PS X5, Y5")
				p("VMULPS Y4, Y5, Y5")
				p("VMOVUPS Y5, %d(R11)", 512+64*h+32*hh)
			}
			continue
		}
		p("VMOVUPS Y5, %d(R11)", 512+32*hh)
	}
	p("ADDQ $%d, R9", cb)
	p("ADDQ R8, R10")
	p("ADDQ $%d, R11", decG*db)
	p("DECQ CX")
	p("JNZ %s_chunk", name)
	p("ADDQ gcodes+40(FP), SI")
	p("ADDQ gscales+48(FP), DI")
	groupEnd(name, fmt.Sprintf("$%d", db))
}

// avx2Gemm writes int8GemmD256 (int8GemmDH256 with halves: NVFP4, the
// first blocks' steps and then the second's, each from their corrections
// to their scales), int8GemmD512 for AVX2 on the panels of avx2Dec (f32
// scales). A panel zmm is two ymm (rows
// 0-1 and 2-3 of the group); VPMADDUBSW of one with the broadcast step of
// an activation row adds pairs of products into words, which VPMADDWD
// widens to dwords every four steps (FP4: 4·2·24·127 < 2^15). One
// activation row at a time: its six dots (3 groups × 2 ymm) start at the
// corrections, and each chunk adds float32(dot)·(wscale·ascale) to the
// per-lane sums in acc, which stay in memory (zeroed first if first is
// set); if last is set it writes the row sums to out as avx512Gemm does.
// Registers: Y0-Y5 int32 dots (group q, half h: Y(2q+h)); Y6-Y11 their
// word sums, then the f32 sums; Y12 activation step, then activation
// scales; Y13 codes, then combined scales; Y14 corrections; Y15 0x0001
// words.
func avx2Gemm(sk scaleKind) {
	name := "int8GemmD256"
	if halves(sk) {
		name = "int8GemmDH256"
	}
	db, passes := decBytes(sk), stepPasses(sk)
	gemmStart(name)
	p("MOVL $0x00010001, BX")
	p("MOVD BX, X15")
	p("VPBROADCASTD X15, Y15")
	avx2ZeroAcc(name, 6)
	gemmPrefetchCodes(name)
	for r := range decR {
		for half, steps := range passes {
			if halves(sk) {
				p("VBROADCASTI128 %d(R10)(R11*1), Y14", 64*r+16*half)
			} else {
				p("VMOVDQU %d(R10)(R11*1), Y14", 64*r)
			}
			for i := range 2 * decG {
				p("VMOVDQA Y14, Y%d", i)
			}
			for n, s := range steps {
				p("VBROADCASTI128 %d(R9), Y12", 128*r+16*s)
				for q := range decG {
					for h := range 2 {
						i := 2*q + h
						p("VMOVDQU %d(SI), Y13", q*db+64*s+32*h)
						if n%4 == 0 {
							p("VPMADDUBSW Y12, Y13, Y%d", 6+i)
							continue
						}
						p("VPMADDUBSW Y12, Y13, Y13")
						p("VPADDW Y13, Y%d, Y%d", 6+i, 6+i)
					}
				}
				if n%4 == 3 {
					for i := range 2 * decG {
						p("VPMADDWD Y15, Y%d, Y%d", 6+i, 6+i)
						p("VPADDD Y%d, Y%d, Y%d", 6+i, i, i)
					}
				}
			}
			p("VMOVUPS %d(R10), Y12", 64*r)
			for q := range decG {
				for h := range 2 {
					i := 2*q + h
					a := 64*(decG*r+q) + 32*h
					p("VCVTDQ2PS Y%d, Y%d", i, i)
					p("VMULPS %d(SI), Y12, Y13", q*db+512+64*half+32*h)
					p("VMOVUPS %d(R13), Y%d", a, 6+i)
					p("VFMADD231PS Y13, Y%d, Y%d", i, 6+i)
					p("VMOVUPS Y%d, %d(R13)", 6+i, a)
				}
			}
		}
	}
	p("ADDQ $%d, SI", decG*db)
	p("ADDQ $%d, R9", decR*128)
	p("ADDQ $%d, R10", decR*64)
	p("DECQ CX")
	p("JNZ %s_chunk", name)
	avx2GemmLast(name)
	gemmNext(name)
}

// stepPasses lists the panel steps an AVX2 gemm kernel runs in one pass
// each: all eight, or with halves the first blocks' (0, 1, 4, 5) and then
// the second's (2, 3, 6, 7), each pass from their corrections to their
// scales.
func stepPasses(sk scaleKind) [][]int {
	if halves(sk) {
		return [][]int{{0, 1, 4, 5}, {2, 3, 6, 7}}
	}
	return [][]int{{0, 1, 2, 3, 4, 5, 6, 7}}
}

// avx2ZeroAcc writes, if first is set, zeros over the block's f32 sums in
// acc (with Y(y) as the zero register); else it jumps to the chunk loop.
func avx2ZeroAcc(name string, y int) {
	p("CMPB first+64(FP), $0")
	p("JE %s_chunk", name)
	p("VXORPS Y%d, Y%d, Y%d", y, y, y)
	for a := range decG * decR {
		p("VMOVUPS Y%d, %d(R13)", y, 64*a)
		p("VMOVUPS Y%d, %d(R13)", y, 64*a+32)
	}
}

// avx2GemmLast writes, if last is set, the row sums of acc to out (see
// avx2Gemm).
func avx2GemmLast(name string) {
	p("CMPB last+65(FP), $0")
	p("JE %s_next", name)
	// Row g's sum is lanes 4g..4g+3: rows 0-1 in the first ymm, 2-3 in
	// the second; two VHADDPS leave, per 128-bit lane, rows (0, 2) and
	// (1, 3), which VUNPCKLPS puts in order.
	p("MOVQ DX, CX")
	p("MOVQ ldo+80(FP), BX")
	for r := range decR {
		if r > 0 {
			p("ADDQ BX, CX")
		}
		for q := range decG {
			a := 64 * (decG*r + q)
			p("VMOVUPS %d(R13), Y0", a)
			p("VHADDPS %d(R13), Y0, Y0", a+32)
			p("VHADDPS Y0, Y0, Y0")
			p("VEXTRACTF128 $1, Y0, X1")
			p("VUNPCKLPS X1, X0, X0")
			p("VMOVUPS X0, %d(CX)", 16*q)
		}
	}
}

// vpdpbusdVEX writes VPDPBUSD Y(acc), Y(u8), Y(s8) in its AVX-VNNI (VEX)
// encoding, as bytes: Go's assembler only writes the EVEX one, which
// machines with AVX-VNNI but no AVX-512 cannot run. acc += the sums of
// four u8(u8 byte)·s8(s8 byte) products per dword.
func vpdpbusdVEX(acc, u8, s8 int) {
	r := ^acc >> 3 & 1
	b := ^s8 >> 3 & 1
	b1 := r<<7 | 1<<6 | b<<5 | 0x02  // R̄ X̄ B̄, map 0F38
	b2 := (^u8&0xF)<<3 | 1<<2 | 0x01 // W0, v̄vvv, L256, pp 66
	modrm := 0xC0 | (acc&7)<<3 | s8&7
	p("BYTE $0xC4; BYTE $0x%02X; BYTE $0x%02X; BYTE $0x50; BYTE $0x%02X // VPDPBUSD Y%d, Y%d, Y%d (VEX)", b1, b2, modrm, s8, u8, acc)
}

// avx2GemmVNNI writes int8GemmDV256 (int8GemmDHV256 with halves), the AVX2
// gemm for machines with AVX-VNNI: int8GemmD256 with one VEX VPDPBUSD per
// step in place of VPMADDUBSW, VPADDW and the widening, and two
// activation rows per pass over the panel (their twelve dots live, the
// codes loaded once for both).
// Registers: Y0-Y11 int32 dots (row r' of the pair, group q, half h:
// Y(6r'+2q+h)); Y12, Y13 the two rows' activation steps, then the f32
// sums; Y14 corrections, then activation scales; Y15 codes, then
// combined scales.
func avx2GemmVNNI(sk scaleKind) {
	name := "int8GemmDV256"
	if halves(sk) {
		name = "int8GemmDHV256"
	}
	db, passes := decBytes(sk), stepPasses(sk)
	acc := func(r2, q, h int) int { return 6*r2 + 2*q + h }
	gemmStart(name)
	avx2ZeroAcc(name, 12)
	gemmPrefetchCodes(name)
	for rp := 0; rp < decR; rp += 2 {
		for half, steps := range passes {
			for r2 := range 2 {
				r := rp + r2
				if halves(sk) {
					p("VBROADCASTI128 %d(R10)(R11*1), Y14", 64*r+16*half)
				} else {
					p("VMOVDQU %d(R10)(R11*1), Y14", 64*r)
				}
				for q := range decG {
					for h := range 2 {
						p("VMOVDQA Y14, Y%d", acc(r2, q, h))
					}
				}
			}
			for _, s := range steps {
				p("VBROADCASTI128 %d(R9), Y12", 128*rp+16*s)
				p("VBROADCASTI128 %d(R9), Y13", 128*(rp+1)+16*s)
				for q := range decG {
					for h := range 2 {
						p("VMOVDQU %d(SI), Y15", q*db+64*s+32*h)
						vpdpbusdVEX(acc(0, q, h), 15, 12)
						vpdpbusdVEX(acc(1, q, h), 15, 13)
					}
				}
			}
			for r2 := range 2 {
				r := rp + r2
				p("VMOVUPS %d(R10), Y14", 64*r)
				for q := range decG {
					for h := range 2 {
						i := acc(r2, q, h)
						a := 64*(decG*r+q) + 32*h
						p("VCVTDQ2PS Y%d, Y%d", i, i)
						p("VMULPS %d(SI), Y14, Y15", q*db+512+64*half+32*h)
						p("VMOVUPS %d(R13), Y12", a)
						p("VFMADD231PS Y15, Y%d, Y12", i)
						p("VMOVUPS Y12, %d(R13)", a)
					}
				}
			}
		}
	}
	p("ADDQ $%d, SI", decG*db)
	p("ADDQ $%d, R9", decR*128)
	p("ADDQ $%d, R10", decR*64)
	p("DECQ CX")
	p("JNZ %s_chunk", name)
	avx2GemmLast(name)
	gemmNext(name)
}

// gemmPrep writes int8GemmPrep512, which rearranges n activation records
// prepared for the other kernels in place for the D kernel: the codes'
// dwords transposed within each view (step s = view s/4, dword s%4 of
// each block), and record i's 16 block scales and corrections (the sums
// of each block's four dword corrections) at xs[16i:], xc[16i:], block b
// in dword b of every 128-bit lane (a 128-bit broadcast from memory costs
// a shuffle µop on the ports VPDPBUSD needs; a plain load does not).
func gemmPrep(halved bool) {
	name := "int8GemmPrep512"
	if halved {
		name = "int8GemmPrepH512"
	}
	header(name, "(xq *int8, xs *float32, xc *int32, n int)", 32)
	p("MOVQ xq+0(FP), SI")
	p("MOVQ xs+8(FP), DI")
	p("MOVQ xc+16(FP), DX")
	p("MOVQ n+24(FP), CX")
	transIdx()
	// Z29[4j+b] = 4b: dword b of each lane takes block b's scale.
	p("MOVL $-4, AX")
	p("VPBROADCASTD AX, Z29")
	p("VPANDD Z29, Z30, Z29")
	label(name + "_loop")
	p("VPERMD (SI), Z30, Z0")
	p("VPERMD 64(SI), Z30, Z1")
	p("VMOVDQU32 Z0, (SI)")
	p("VMOVDQU32 Z1, 64(SI)")
	// The corrections add the four lanes of the transposed dwords
	// (lane j, dword b: dword 4b+j), leaving the sums in every lane.
	p("VPERMD (DI), Z29, Z2")
	p("VPERMD (DX), Z30, Z3")
	if halved {
		// Lanes 0-1 sum to the first blocks', 2-3 to the second's:
		// laid out as lanes 0, 2, 0, 2.
		p("VSHUFI32X4 $0xB1, Z3, Z3, Z4")
		p("VPADDD Z4, Z3, Z3")
		p("VSHUFI32X4 $0x88, Z3, Z3, Z3")
	} else {
		p("VSHUFI32X4 $0x4E, Z3, Z3, Z4")
		p("VPADDD Z4, Z3, Z3")
		p("VSHUFI32X4 $0xB1, Z3, Z3, Z4")
		p("VPADDD Z4, Z3, Z3")
	}
	p("VMOVDQU32 Z2, (DI)")
	p("VMOVDQU32 Z3, (DX)")
	p("ADDQ $128, SI")
	p("ADDQ $64, DI")
	p("ADDQ $64, DX")
	p("DECQ CX")
	p("JNZ %s_loop", name)
	p("VZEROUPPER")
	p("RET")
}

// main writes act_int8_amd64.s (or the file -o names). Optional
// arguments, for experiments: the one-row prefetch distance and the
// prefetch instruction.
func main() {
	dst := flag.String("o", "act_int8_amd64.s", "output `file`")
	flag.Parse()
	args := flag.Args()
	if len(args) > 0 {
		fmt.Sscan(args[0], &prefetch)
	}
	if len(args) > 1 {
		prefetchOp = args[1]
	}
	out.WriteString("// Code generated by act_int8_gen.go; DO NOT EDIT.\n\n//go:build amd64 && gc && !noasm\n\n#include \"textflag.h\"\n")
	for _, v := range []struct {
		nib bool
		sk  scaleKind
	}{{true, e4}, {true, e8}, {true, h16}, {false, h16}} {
		avx512DS(v.nib, v.sk)
		avx512RM(v.nib, v.sk)
		avx512Dec(v.nib, v.sk)
		avx2D(v.nib, v.sk)
		exact512D(v.nib, v.sk)
	}
	avx512Gemm(h16)
	avx512Gemm(e8)
	avx512Gemm(e4)
	for _, sk := range []scaleKind{e4, e8, h16} {
		for m := 2; m <= 3; m++ {
			avx2RM(true, sk, m, false)
			avx2RM(true, sk, m, true)
		}
	}
	for m := 2; m <= 3; m++ {
		avx2RM(false, h16, m, true) // Q8_0: AVX-VNNI only (see avx2Dec)
	}
	avx2Dec(true, e4)
	avx2Dec(true, e8)
	avx2Dec(true, h16)
	avx2Dec(false, h16)
	avx2Gemm(h16)
	avx2Gemm(e4)
	avx2GemmVNNI(h16)
	avx2GemmVNNI(e4)
	gemmPrep(false)
	gemmPrep(true)
	quant()
	quant256()
	if err := os.WriteFile(*dst, out.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
