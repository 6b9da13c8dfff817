//go:build amd64 && gc && !noasm

package kernels

import (
	"sync"
	"unsafe"

	"github.com/klauspost/cpuid/v2"
)

//go:generate go run act_int8_gen.go

// The int8-path kernels. Each handles groups consecutive groups of 4
// packed weight rows (w, ws: the first group's codes and scales at chunk
// 0; each stream continues into the next group) on the transposed packing
// (see pack) against one activation row prepared with rb = 1 and
// rearranged by int8GemmPrep512 (int8GemmPrepH512 for NVFP4; gemmPrepGo on
// AVX2), xq, xs, xc at its chunk 0, over chunks chunks, and writes for
// group q out[4q+g] = Σ_c Σ_block float32(dot) · (ws·xs) with dot the
// block's exact int32 dot (see act_int8.go). The scales are E4M3 bytes
// for E4 (NVFP4, two blocks of 16 per dword lane, loaded as 2^-7 times
// the format's scale), E8M0 bytes for E8 (MXFP4, loaded as twice the
// format's scale, see scale8) and f16 for H16 (Q4_0, Q8_0); asmScale
// undoes those factors. sstride is the byte distance between the scales
// of two rows of a chunk (spc·scale bytes), lut maps nibbles to w+off.
// Q8 row-chunks are 128 bytes of int8; the AVX2 Q8 kernel uses the sign
// trick and ignores xc. The 512 R1 kernels walk the groups as one stream,
// prefetching (see act_int8_gen.go), the 256 ones are their AVX2
// versions. They differ from rowsGeneric only in the order of the f32
// sums, and in NVFP4's, where the two blocks of a lane are scaled before
// the activation scale multiplies them.
//
// The 512 ones need AVX-512 BW/VL, VBMI and VNNI, the 256 ones AVX2, F16C
// and FMA. All read up to 64 bytes past the last scale (Pack pads them).

//go:noescape
func int8DotNibE4D512R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32)

//go:noescape
func int8DotNibE4D256R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32)

//go:noescape
func int8DotNibE8D512R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32)

//go:noescape
func int8DotNibE8D256R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32)

//go:noescape
func int8DotNibH16D512R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32)

//go:noescape
func int8DotNibH16D256R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32)

//go:noescape
func int8DotQ8H16D512R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32)

//go:noescape
func int8DotQ8H16D256R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32)

// int8Dot<...>D512RM are the few-rows kernels: the one-row kernel's walk
// for m activation rows (prepared with rb = m: chunk c's records of the m
// rows consecutive), each group-chunk's codes decoded into registers once
// and run against every row, so that m rows cost one decode and no panel.
// Row r's outputs go to out + r·ldo (bytes); acc holds the rows' per-lane
// sums (16 f32 per row). Same scales and order of sums as R1.

//go:noescape
func int8DotNibE4D512RM(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibE8D512RM(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibH16D512RM(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotQ8H16D512RM(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

// int8DotNib<E4|E8|H16>D256R<2|3>[V] are the AVX2 few-rows kernels for
// exactly 2 or 3 rows (m must match), with VPMADDUBSW or (V) AVX-VNNI's
// VPDPBUSD; int8DotQ8H16D256R<2|3>V Q8_0's, AVX-VNNI only; see avx2RM in
// act_int8_gen.go.

//go:noescape
func int8DotQ8H16D256R2V(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotQ8H16D256R3V(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibE4D256R2(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibE4D256R2V(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibE4D256R3(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibE4D256R3V(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibE8D256R2(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibE8D256R2V(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibE8D256R3(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibE8D256R3V(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibH16D256R2(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibH16D256R2V(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibH16D256R3(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

//go:noescape
func int8DotNibH16D256R3V(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

// f32DotNibE4D512, f32DotNibE8D512, f32DotNibH16D512 and f32DotQ8H16D512
// are the Exact kernels: for groups consecutive groups (w, ws as for the
// int8 kernels) and one activation row x prepared by prepExact (128 f32
// per chunk in the steps' order, orderD or orderDNV), out[q*4+g] = Σ_c
// Σ_p x[c][p] · (ftab[code(p)]·scale(p)) (Q8: int8 code · scale), the
// exact decoded weights of rowsExact without the NVFP4 tensor scale. eidx
// maps codes to scale slots (see int8Format.eidx).
// They need AVX-512 F/BW/VL; they read up to 64 bytes past the last scale.

//go:noescape
func f32DotNibE4D512(w *byte, ws *byte, sstride int, x *float32, chunks, groups int, ftab *[16]float32, eidx *[4][16]int32, out *float32)

//go:noescape
func f32DotNibE8D512(w *byte, ws *byte, sstride int, x *float32, chunks, groups int, ftab *[16]float32, eidx *[4][16]int32, out *float32)

//go:noescape
func f32DotNibH16D512(w *byte, ws *byte, sstride int, x *float32, chunks, groups int, ftab *[16]float32, eidx *[4][16]int32, out *float32)

//go:noescape
func f32DotQ8H16D512(w *byte, ws *byte, sstride int, x *float32, chunks, groups int, ftab *[16]float32, eidx *[4][16]int32, out *float32)

// The D kernels (see act_int8_gen.go) serve M > 1: weights are decoded once into a panel that a VNNI-only kernel
// reads for many activation rows, with no horizontal reduction per chunk.
//
// int8Dec* decodes groups groups (codes gcodes and scales gscales bytes
// apart, from w and ws at a group's chunk) over chunks chunks into a panel
// at dst, and prefetches the codes pf and the scales spf bytes ahead of
// those it reads (the driver points them at the panel it decodes next).
// The NVFP4 one multiplies the scales by wscale, 128 times the tensor
// scale (the others ignore it), so the gemm's sums are the outputs.
// Chunk c of group q lands at dst[(c·decG+q)·576:] (640 for NVFP4):
// eight zmm of codes plus off, zmm s with lane g (weight row g) and dword
// b (block b) holding step s of the block (s < 4: dword s of the block's
// low view lane, else dword s-4 of its high view lane), then the four
// rows' 16 f32 scales in the same lane order 4g+b (NibE8, i.e. MXFP4,
// whose scales are powers of two: their base-2 exponents e-128, for
// int8GemmDE512; NibE4, i.e. NVFP4: the first blocks' 16, then the
// second's, the format's values).
//
// int8GemmPrep512 rearranges n activation records prepared with rb = 4 in
// place to match: the codes as eight steps of 16 bytes (dword b: block b),
// and record i's 16 scales and 16 corrections (xs[16i:], xc[16i:]) as
// the block scales and block corrections (sums of the dword corrections),
// block b in dword b of each 128-bit lane, so that the gemm kernel loads
// them without a broadcast. int8GemmPrepH512 does the same for NVFP4 but
// for the corrections: those of the first blocks (dword corrections 0-1
// of each block), of the second (2-3), and the two again.
//
// int8GemmD512 runs decG groups of a panel against blocks blocks of decR
// activation rows (xq, xs, xc at block 0's first chunk, block b bstride
// records later). A VPDPBUSD of panel zmm s with the broadcast 16 bytes of
// step s adds to lane 4g+b the dot of row g and block b, so eight of them
// finish four rows × four blocks exactly. Per block, it adds the chunks'
// float32(dot)·(wscale·ascale) into acc[(b·decR+r)·decG+q] (16 per-lane
// f32 sums; into zeros if first is set), and if last is set it writes the
// row sums instead, Σ over the lanes 4g+b', to out[(b·decR+r)·ldo/4 +
// 4q + g] (ldo in bytes). The sums differ from rowsGeneric only in order.
// int8GemmDE512 does the same on a panel of scale exponents (MXFP4):
// float32(dot)·2^e by VSCALEFPS, then one FMA with ascale, which leaves
// the VPDPBUSD ports one float op per eight VPDPBUSD instead of two. Each
// chunk they run, they prefetch pfs bytes (a multiple of 128) of each of
// the three groups at pf+pfo, pfg apart, until pfn bytes.
// int8GemmDH512 runs NVFP4's panels: two activation rows at a time, the
// dots of both blocks of each lane, each from its corrections, then
// float32(dotA)·sA + float32(dotB)·sB times the activation scale.
//
// They need AVX-512 F/BW/VL, VBMI and VNNI.

//go:noescape
func int8DecNibE4512(w *byte, ws *byte, sstride int, chunks, groups, gcodes, gscales, pf, spf int, lut *[16]uint8, dst *byte, wscale float32)

//go:noescape
func int8DecNibE8512(w *byte, ws *byte, sstride int, chunks, groups, gcodes, gscales, pf, spf int, lut *[16]uint8, dst *byte, wscale float32)

//go:noescape
func int8DecNibH16512(w *byte, ws *byte, sstride int, chunks, groups, gcodes, gscales, pf, spf int, lut *[16]uint8, dst *byte, wscale float32)

//go:noescape
func int8DecQ8H16512(w *byte, ws *byte, sstride int, chunks, groups, gcodes, gscales, pf, spf int, lut *[16]uint8, dst *byte, wscale float32)

//go:noescape
func int8GemmD512(wd *byte, xq *int8, xs *float32, xc *int32, chunks, blocks, bstride int, acc *float32, first, last bool, out *float32, ldo int, pf *byte, pfo, pfg, pfn, pfs int)

//go:noescape
func int8GemmDE512(wd *byte, xq *int8, xs *float32, xc *int32, chunks, blocks, bstride int, acc *float32, first, last bool, out *float32, ldo int, pf *byte, pfo, pfg, pfn, pfs int)

//go:noescape
func int8GemmDH512(wd *byte, xq *int8, xs *float32, xc *int32, chunks, blocks, bstride int, acc *float32, first, last bool, out *float32, ldo int, pf *byte, pfo, pfg, pfn, pfs int)

//go:noescape
func int8GemmPrep512(xq *int8, xs *float32, xc *int32, n int)

// int8DecNib<E4|E8|H16>256, int8GemmD256 and int8GemmDH256 are the AVX2
// D kernels of NVFP4, MXFP4 and Q4_0 (AVX2, F16C and FMA): the decoders
// write the same panel as the AVX-512 ones but with f32 scale values
// (MXFP4's too), and int8GemmD256 (int8GemmDH256 for NVFP4's two blocks
// per lane) does what int8GemmD512 does with VPMADDUBSW and VPMADDWD,
// keeping its f32 sums in acc. int8GemmDV256 and int8GemmDHV256 do the
// same with the AVX-VNNI VPDPBUSD (VEX-encoded, ymm), two activation rows
// at a time, where the CPU has it (avxVNNI). int8DecQ8H16256 decodes
// Q8_0's panels (codes plus 128, f16 scales as f32) for int8GemmDV256
// only: Q8_0 has AVX2 D kernels only with AVX-VNNI.
//
//go:noescape
func int8DecNibE4256(w *byte, ws *byte, sstride int, chunks, groups, gcodes, gscales, pf, spf int, lut *[16]uint8, dst *byte, wscale float32)

//go:noescape
func int8DecNibE8256(w *byte, ws *byte, sstride int, chunks, groups, gcodes, gscales, pf, spf int, lut *[16]uint8, dst *byte, wscale float32)

//go:noescape
func int8DecNibH16256(w *byte, ws *byte, sstride int, chunks, groups, gcodes, gscales, pf, spf int, lut *[16]uint8, dst *byte, wscale float32)

//go:noescape
func int8DecQ8H16256(w *byte, ws *byte, sstride int, chunks, groups, gcodes, gscales, pf, spf int, lut *[16]uint8, dst *byte, wscale float32)

//go:noescape
func int8GemmDH256(wd *byte, xq *int8, xs *float32, xc *int32, chunks, blocks, bstride int, acc *float32, first, last bool, out *float32, ldo int, pf *byte, pfo, pfg, pfn, pfs int)

//go:noescape
func int8GemmDV256(wd *byte, xq *int8, xs *float32, xc *int32, chunks, blocks, bstride int, acc *float32, first, last bool, out *float32, ldo int, pf *byte, pfo, pfg, pfn, pfs int)

//go:noescape
func int8GemmDHV256(wd *byte, xq *int8, xs *float32, xc *int32, chunks, blocks, bstride int, acc *float32, first, last bool, out *float32, ldo int, pf *byte, pfo, pfg, pfn, pfs int)

//go:noescape
func int8GemmD256(wd *byte, xq *int8, xs *float32, xc *int32, chunks, blocks, bstride int, acc *float32, first, last bool, out *float32, ldo int, pf *byte, pfo, pfg, pfn, pfs int)

//go:noescape
func int8GemmPrepH512(xq *int8, xs *float32, xc *int32, n int)

// Panel geometry of the D kernels (as in act_int8_gen.go).
const (
	decBytes = 640 // the largest decoded row-chunk: 8 zmm of codes, 32 scales
	decG     = 3   // groups per panel chunk (the gemm kernel's register block)
	decR     = 4   // activation rows per block
	decKT    = 8   // chunks per panel
	decMT    = 128 // activation rows per tile (bounds the acc buffer)
)

// decKind names a format's D kernels. rowsDec calls them directly, not
// through func values: an indirect call makes every pointer it gets escape,
// and the panel, acc and out buffers (44 KB) then went to the heap on every
// call (small matrices took up to 1.8× as long, in GC).
type decKind uint8

const (
	decNone     decKind = iota // no D kernels
	decNibE4                   // NVFP4: int8DecNibE4512, int8GemmDH512
	decNibE8                   // MXFP4: int8DecNibE8512, int8GemmDE512
	decNibH16                  // Q4_0: int8DecNibH16512, int8GemmD512
	decQ8H16                   // Q8_0: int8DecQ8H16512, int8GemmD512
	decNibE4A2                 // NVFP4 on AVX2: int8DecNibE4256, int8GemmDH256
	decNibE8A2                 // MXFP4 on AVX2: int8DecNibE8256, int8GemmD256
	decNibH16A2                // Q4_0 on AVX2: int8DecNibH16256, int8GemmD256
	decQ8H16A2                 // Q8_0 on AVX2 with AVX-VNNI: int8DecQ8H16256, int8GemmDV256
)

// decode runs d's panel decoder.
func (d decKind) decode(w *byte, ws *byte, sstride int, chunks, groups, gcodes, gscales, pf, spf int, lut *[16]uint8, dst *byte, wscale float32) {
	switch d {
	case decNibE4:
		int8DecNibE4512(w, ws, sstride, chunks, groups, gcodes, gscales, pf, spf, lut, dst, wscale)
	case decNibE8:
		int8DecNibE8512(w, ws, sstride, chunks, groups, gcodes, gscales, pf, spf, lut, dst, wscale)
	case decNibH16:
		int8DecNibH16512(w, ws, sstride, chunks, groups, gcodes, gscales, pf, spf, lut, dst, wscale)
	case decQ8H16:
		int8DecQ8H16512(w, ws, sstride, chunks, groups, gcodes, gscales, pf, spf, lut, dst, wscale)
	case decNibE4A2:
		int8DecNibE4256(w, ws, sstride, chunks, groups, gcodes, gscales, pf, spf, lut, dst, wscale)
	case decNibE8A2:
		int8DecNibE8256(w, ws, sstride, chunks, groups, gcodes, gscales, pf, spf, lut, dst, wscale)
	case decNibH16A2:
		int8DecNibH16256(w, ws, sstride, chunks, groups, gcodes, gscales, pf, spf, lut, dst, wscale)
	case decQ8H16A2:
		int8DecQ8H16256(w, ws, sstride, chunks, groups, gcodes, gscales, pf, spf, lut, dst, wscale)
	default:
		panic("kernels: no D kernel")
	}
}

// gemm runs d's gemm kernel over a panel of d's decoder.
func (d decKind) gemm(wd *byte, xq *int8, xs *float32, xc *int32, chunks, blocks, bstride int, acc *float32, first, last bool, out *float32, ldo int, pf *byte, pfo, pfg, pfn, pfs int) {
	switch d {
	case decNibE4:
		int8GemmDH512(wd, xq, xs, xc, chunks, blocks, bstride, acc, first, last, out, ldo, pf, pfo, pfg, pfn, pfs)
		return
	case decNibE8:
		int8GemmDE512(wd, xq, xs, xc, chunks, blocks, bstride, acc, first, last, out, ldo, pf, pfo, pfg, pfn, pfs)
		return
	case decNibE4A2:
		if avxVNNI {
			int8GemmDHV256(wd, xq, xs, xc, chunks, blocks, bstride, acc, first, last, out, ldo, pf, pfo, pfg, pfn, pfs)
			return
		}
		int8GemmDH256(wd, xq, xs, xc, chunks, blocks, bstride, acc, first, last, out, ldo, pf, pfo, pfg, pfn, pfs)
		return
	case decQ8H16A2:
		if !avxVNNI {
			panic("kernels: Q8_0's AVX2 D kernels without AVX-VNNI")
		}
		int8GemmDV256(wd, xq, xs, xc, chunks, blocks, bstride, acc, first, last, out, ldo, pf, pfo, pfg, pfn, pfs)
		return
	case decNibE8A2, decNibH16A2:
		if avxVNNI {
			int8GemmDV256(wd, xq, xs, xc, chunks, blocks, bstride, acc, first, last, out, ldo, pf, pfo, pfg, pfn, pfs)
			return
		}
		int8GemmD256(wd, xq, xs, xc, chunks, blocks, bstride, acc, first, last, out, ldo, pf, pfo, pfg, pfn, pfs)
		return
	}
	int8GemmD512(wd, xq, xs, xc, chunks, blocks, bstride, acc, first, last, out, ldo, pf, pfo, pfg, pfn, pfs)
}

type exactKernel func(w *byte, ws *byte, sstride int, x *float32, chunks, groups int, ftab *[16]float32, eidx *[4][16]int32, out *float32)

type int8Kernel func(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32)

type int8KernelM func(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int)

// int8Kernels are one format's kernels at one tier.
type int8Kernels struct {
	path  Path
	r1    int8Kernel  // one activation row at a time
	rm    int8KernelM // up to rmMaxM rows at a time (nil: none)
	quant chunkQuantizer
	exact exactKernel // Exact precision (nil: the generic kernel)
	// dec names the D kernels, used when m >= decMinM (decNone: never).
	dec decKind
	// vnniOnly: the D and few-rows kernels need AVX-VNNI (avxVNNI).
	vnniOnly bool
	// rearrange rearranges the prepared activations for the kernels, as
	// int8GemmPrep512 (int8GemmPrepH512 for halves) does.
	rearrange func(s *scratch, r0, r1 int)
}

// useDec reports whether k runs the D kernels for m activation rows.
func (k *int8Kernels) useDec(m int) bool {
	return k.dec != decNone && m >= decMinM && (avxVNNI || !k.vnniOnly)
}

// useRM reports whether k runs the few-rows kernel for m activation rows.
func (k *int8Kernels) useRM(m int) bool {
	return k.rm != nil && m > 1 && m <= rmMaxM && (avxVNNI || !k.vnniOnly)
}

// rowBlock returns the rb the activations of m rows are prepared with for
// k's kernels: decR for the D kernels, m for the few-rows kernel, else 1.
func (k *int8Kernels) rowBlock(m int) int {
	switch {
	case k.useDec(m):
		return decR
	case k.useRM(m):
		return m
	}
	return 1
}

// avxVNNI makes the AVX2 tier's D kernels use the AVX-VNNI gemm kernels
// (int8GemmDV256, int8GemmDHV256): Intel's CPUs since Alder Lake have it
// without AVX-512. Tests switch it to run both.
var avxVNNI = cpuid.CPU.Supports(cpuid.AVXVNNI)

// int8AVX512 and int8AVX2 hold each format's kernels at those tiers (for
// tests).
var int8AVX512, int8AVX2 = map[*int8Format]*int8Kernels{}, map[*int8Format]*int8Kernels{}

func init() {
	for _, f := range []*int8Format{mxfp4Int8, nvfp4Int8, q40Int8, q80Int8} {
		k512 := int8Kernels{path: PathInt8Dot, quant: quantizeChunks512}
		k256 := int8Kernels{path: PathInt8Madd, quant: quantizeChunks256}
		switch {
		case f.scaleE4:
			k512.dec = decNibE4
			k512.r1, k512.rm, k512.exact = int8DotNibE4D512R1, int8DotNibE4D512RM, f32DotNibE4D512
			k256.r1, k256.dec = int8DotNibE4D256R1, decNibE4A2
			k256.rm = rmAVX2(int8DotNibE4D256R2, int8DotNibE4D256R2V, int8DotNibE4D256R3, int8DotNibE4D256R3V)
		case f.scale8:
			k512.dec = decNibE8
			k512.r1, k512.rm, k512.exact = int8DotNibE8D512R1, int8DotNibE8D512RM, f32DotNibE8D512
			k256.r1, k256.dec = int8DotNibE8D256R1, decNibE8A2
			k256.rm = rmAVX2(int8DotNibE8D256R2, int8DotNibE8D256R2V, int8DotNibE8D256R3, int8DotNibE8D256R3V)
		case !f.nibbles:
			k512.dec = decQ8H16
			k512.r1, k512.rm, k512.exact = int8DotQ8H16D512R1, int8DotQ8H16D512RM, f32DotQ8H16D512
			// Q8_0's codes plus 128 need VPDPBUSD (see avx2Dec).
			k256.r1, k256.dec, k256.vnniOnly = int8DotQ8H16D256R1, decQ8H16A2, true
			k256.rm = rmAVX2(nil, int8DotQ8H16D256R2V, nil, int8DotQ8H16D256R3V)
		default:
			k512.dec = decNibH16
			k512.r1, k512.rm, k512.exact = int8DotNibH16D512R1, int8DotNibH16D512RM, f32DotNibH16D512
			k256.r1, k256.dec = int8DotNibH16D256R1, decNibH16A2
			k256.rm = rmAVX2(int8DotNibH16D256R2, int8DotNibH16D256R2V, int8DotNibH16D256R3, int8DotNibH16D256R3V)
		}
		if avxVNNI && k256.dec != decNone { // the D kernels' arithmetic
			k256.path = PathInt8Dot
		}
		halves := f.halves()
		k512.rearrange = func(s *scratch, r0, r1 int) { gemmPrep(s, r0, r1, halves) }
		k256.rearrange = func(s *scratch, r0, r1 int) { gemmPrepGo(s, r0, r1, halves) }
		int8AVX512[f], int8AVX2[f] = &k512, &k256
		registerTier(f.t, AVX512, f.asmGemm(&k512))
		registerTier(f.t, AVX2, f.asmGemm(&k256))
	}
}

// rmAVX2 returns an AVX2 few-rows kernel that runs the one for its m (2
// or 3), with AVX-VNNI (v2, v3) where avxVNNI is set.
func rmAVX2(r2, v2, r3, v3 int8KernelM) int8KernelM {
	return func(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, out *float32, m int, acc *float32, ldo int) {
		k := r2
		switch {
		case m == 2 && avxVNNI:
			k = v2
		case m == 3 && avxVNNI:
			k = v3
		case m == 3:
			k = r3
		case m != 2:
			panic("kernels: AVX2 few-rows kernel for m != 2, 3")
		}
		k(w, ws, sstride, xq, xs, xc, chunks, groups, lut, out, m, acc, ldo)
	}
}

// asmGemm returns the gemm running the kernels k.
func (f *int8Format) asmGemm(k *int8Kernels) *gemm {
	gen := f.genericGemm()
	return &gemm{
		path: func(p Precision) Path {
			switch {
			case p == Fast:
				return k.path
			case k.exact != nil:
				return PathF32FMA
			}
			return PathScalar
		},
		prep: func(p *Pool, w *Matrix, x []float32, m int, s *scratch) {
			switch {
			case w.generic:
				gen.prep(p, w, x, m, s)
			case w.Precision == Fast:
				f.prep(p, w, x, m, k.rowBlock(m), k.quant, k.rearrange, s)
			case k.exact != nil:
				f.prepExact(p, w, x, m, s)
			}
		},
		rows: func(w *Matrix, y, x []float32, m, n0, n1 int, s *scratch) {
			switch {
			case w.generic:
				gen.rows(w, y, x, m, n0, n1, s)
			case w.Precision == Fast && k.useDec(m):
				f.rowsDec(k, w, y, m, n0, n1, s)
			case w.Precision == Fast:
				f.rowsAsm(k, w, y, m, n0, n1, s)
			case k.exact != nil:
				f.rowsExactAsm(k.exact, w, y, m, n0, n1, s)
			default:
				f.rowsExact(w, y, x, m, n0, n1)
			}
		},
	}
}

// i8CallGroups is how many weight groups one one-row kernel call covers.
const i8CallGroups = 256

// rowsAsm runs k.r1 over rows [n0, n1), one activation row at a time,
// or k.rm over up to rmMaxM rows at a time.
func (f *int8Format) rowsAsm(k *int8Kernels, w *Matrix, y []float32, m, n0, n1 int, s *scratch) {
	if k.useRM(m) {
		f.rowsAsmM(k.rm, w, y, m, n0, n1, s)
		return
	}
	chunks, gBytes, gScales, so, sstride := f.geometry(w)
	ts := f.asmScale(w)
	g0, g1 := n0/i8Group, roundUp(n1, i8Group)/i8Group
	f.raceRead(w, s, g0, g1, m)
	out := getOutBuf()
	defer outBufs.Put(out)
	for gs := g0; gs < g1; gs += i8CallGroups {
		ge := min(g1, gs+i8CallGroups)
		for i := range m {
			rec := i * chunks
			k.r1(&w.data[gs*gBytes], &w.data[so+gs*gScales], sstride, &s.i8[rec*i8ChunkK], &s.sc[rec*i8Dwords], &s.i32[rec*i8Dwords], chunks, ge-gs, &f.lut, &out[0])
			lo, hi := i*w.N+gs*i8Group, i*w.N+min(w.N, ge*i8Group)
			for j, v := range out[:hi-lo] {
				y[lo+j] = v * ts
			}
		}
	}
}

// geometry returns w's chunks per row, the code and scale bytes of a
// group, the offset of the scales in w.data and the scale bytes of a
// row's chunk (the kernels' sstride).
func (f *int8Format) geometry(w *Matrix) (chunks, gBytes, gScales, so, sstride int) {
	chunks = w.kp / i8ChunkK
	sstride = f.spc * f.scaleBytes()
	return chunks, chunks * i8Group * f.rowChunkBytes(), chunks * i8Group * sstride, f.scaleOffset(w), sstride
}

// rmMaxM is the most activation rows the few-rows kernels run (the D
// kernels take more: decMinM); rmGroups is how many weight groups one call
// covers. On Zen 5 (two threads, weights streamed from memory) the
// AVX-512 ones beat the D kernels at M = 2 (11264×2048 MXFP4: 236-240
// against 195-196 µs; NVFP4 292-304 against 231-233; Q8_0 565-689 against
// 390-407) and M = 3 (MXFP4 242-279 against 201-205 µs), and lost at M =
// 4 (MXFP4 235-244 against 240-246, NVFP4 263-296 against 287-297): from
// cache they win at M = 4 and 8 too, from memory the D kernels' panel
// prefetch wins there. The AVX2 ones (MXFP4, four copies streamed) beat
// two one-row passes at M = 2 (422-445 against 276-296 µs; with AVX-VNNI
// 410-422 against 239-248) and the D kernels at M = 3 (476-485 against
// 370-382; 424-425 against 279-296).
const (
	rmMaxM   = 3
	rmGroups = 64
)

// rmBuf is a few-rows call's output and sums.
type rmBuf struct {
	out [rmMaxM * rmGroups * 4]float32
	acc [rmMaxM * 16]float32
}

var rmBufs = sync.Pool{New: func() any { return new(rmBuf) }}

// rowsAsmM runs the few-rows kernel rm over rows [n0, n1) for all m
// (at most rmMaxM) activation rows.
func (f *int8Format) rowsAsmM(rm int8KernelM, w *Matrix, y []float32, m, n0, n1 int, s *scratch) {
	chunks, gBytes, gScales, so, sstride := f.geometry(w)
	ts := f.asmScale(w)
	g0, g1 := n0/i8Group, roundUp(n1, i8Group)/i8Group
	f.raceRead(w, s, g0, g1, m)
	buf := rmBufs.Get().(*rmBuf)
	defer rmBufs.Put(buf)
	for gs := g0; gs < g1; gs += rmGroups {
		ge := min(g1, gs+rmGroups)
		ldo := (ge - gs) * i8Group
		rm(&w.data[gs*gBytes], &w.data[so+gs*gScales], sstride, &s.i8[0], &s.sc[0], &s.i32[0], chunks, ge-gs, &f.lut, &buf.out[0], m, &buf.acc[0], 4*ldo)
		lo, hi := gs*i8Group, min(w.N, ge*i8Group)
		for r := range m {
			row := y[r*w.N:]
			for j, v := range buf.out[r*ldo : r*ldo+hi-lo] {
				row[lo+j] = v * ts
			}
		}
	}
}

// outBufs holds the row kernels' per-call output buffers. The kernels are
// called through func values, so an array on the stack would escape and be
// allocated on every call (4 KB per matmul and thread).
var outBufs = sync.Pool{New: func() any { return new([i8CallGroups * 4]float32) }}

func getOutBuf() *[i8CallGroups * 4]float32 { return outBufs.Get().(*[i8CallGroups * 4]float32) }

// gemmPrep runs int8GemmPrep512 (int8GemmPrepH512 if halves) on records
// [r0, r1) of s.
func gemmPrep(s *scratch, r0, r1 int, halves bool) {
	if r1 <= r0 {
		return
	}
	n := r1 - r0
	xq, xs, xc := s.i8[r0*i8ChunkK:r1*i8ChunkK], s.sc[r0*i8Dwords:r1*i8Dwords], s.i32[r0*i8Dwords:r1*i8Dwords]
	raceWriteSlice(xq)
	raceWriteSlice(xs)
	raceWriteSlice(xc)
	if halves {
		int8GemmPrepH512(&xq[0], &xs[0], &xc[0], n)
		return
	}
	int8GemmPrep512(&xq[0], &xs[0], &xc[0], n)
}

// decMinM is the smallest M the D kernels run for: below it the few-rows
// kernels do (rmMaxM), or the one-row kernel twice (AVX2 Q8_0, which has
// neither).
const decMinM = rmMaxM + 1

// decAhead is how many panels ahead the kernels prefetch. At 1 the gemm
// kernel's prefetches arrived late: on Zen 5 (4096×4096 MXFP4, one
// thread) M = 4 took 455µs at 1 and 335µs at 2; 3 and 4 were no better.
const decAhead = 2

// rowsDec runs the D kernels over rows [n0, n1) on activations prepared by
// int8GemmPrep512: for each tile of up to decMT activation rows and each
// run of decG groups, it decodes decKT chunks at a time into a panel on
// the stack and runs int8GemmD512 over all the tile's blocks, so that a
// group's codes are read from memory and decoded once per tile.
func (f *int8Format) rowsDec(k *int8Kernels, w *Matrix, y []float32, m, n0, n1 int, s *scratch) {
	chunks := w.kp / i8ChunkK
	mp := roundUp(m, decR)
	wscale := 128 * f.tensorScale(w)
	rcb, sstride := f.rowChunkBytes(), f.spc*f.scaleBytes()
	gBytes, gScales := chunks*i8Group*rcb, chunks*i8Group*sstride
	so := f.scaleOffset(w)
	g0, g1 := n0/i8Group, roundUp(n1, i8Group)/i8Group
	f.raceRead(w, s, g0, g1, mp)
	tiles := (chunks + decKT - 1) / decKT
	// On the stack (the kernels are called directly, so nothing escapes),
	// the panel and acc 64-byte aligned: the kernels move them in whole
	// zmm, and a line-splitting panel cost 7% at M = 8.
	var panelBuf [decKT*decG*decBytes + 64]byte
	var accBuf [decMT*decG*16 + 16]float32
	var out [decMT * decG * i8Group]float32
	panel := panelBuf[align64(unsafe.Pointer(&panelBuf[0])):][:decKT*decG*decBytes]
	acc := accBuf[align64(unsafe.Pointer(&accBuf[0]))/4:][:decMT*decG*16]
	for i0 := 0; i0 < mp; i0 += decMT {
		nb := (min(mp, i0+decMT) - i0) / decR
		rows := min(m, i0+nb*decR) - i0
		for gs := g0; gs < g1; gs += decG {
			ng := min(decG, g1-gs)
			c0 := gs * i8Group
			cols := min(ng*i8Group, w.N-c0)
			// Whole blocks of outputs go straight to y, the others
			// through out.
			direct := rows == nb*decR && cols == decG*i8Group
			dst, ldo := &out[0], decG*i8Group*4
			if direct {
				dst, ldo = &y[i0*w.N+c0], w.N*4
				for i := range rows {
					raceWriteSlice(y[(i0+i)*w.N+c0:][:cols])
				}
			}
			for k0 := 0; k0 < chunks; k0 += decKT {
				kc := min(decKT, chunks-k0)
				// Prefetch the panel decAhead panels ahead (the decoder
				// its scales, the gemm kernel its codes): later chunks
				// of these groups or the next groups' first ones.
				kt := k0/decKT + decAhead
				dg, dk := kt/tiles*decG, kt%tiles*decKT-k0
				pf, spf := dg*gBytes+dk*i8Group*rcb, dg*gScales+dk*i8Group*sstride
				wc := &w.data[gs*gBytes+k0*i8Group*rcb]
				k.dec.decode(wc, &w.data[so+gs*gScales+k0*i8Group*sstride], sstride, kc, ng, gBytes, gScales, pf, spf, &f.lut, &panel[0], wscale)
				rec := i0*chunks + k0*decR
				// Spread over the whole gemm call (kc·nb chunk runs): in
				// bursts, the prefetches filled the miss buffers and
				// stalled the kernel (M = 8: 515µs at 256 bytes a run,
				// 480µs spread).
				pfn := min(decKT, chunks-kt%tiles*decKT) * i8Group * rcb
				pfs := roundUp((pfn+kc*nb-1)/(kc*nb), 128)
				k.dec.gemm(&panel[0], &s.i8[rec*i8ChunkK], &s.sc[rec*i8Dwords], &s.i32[rec*i8Dwords], kc, nb, chunks*decR, &acc[0], k0 == 0, k0+kc == chunks, dst, ldo,
					wc, pf, gBytes, pfn, pfs)
			}
			if !direct {
				for i := range rows {
					copy(y[(i0+i)*w.N+c0:][:cols], out[i*decG*i8Group:])
				}
			}
		}
	}
}

// align64 returns how many bytes past p the next 64-byte boundary is.
func align64(p unsafe.Pointer) int { return int(-uintptr(p) & 63) }

// raceRead tells the race detector what the kernels read for groups
// [g0, g1) and mp prepared activation rows.
func (f *int8Format) raceRead(w *Matrix, s *scratch, g0, g1, mp int) {
	chunks, gBytes, gScales, so, _ := f.geometry(w)
	raceReadSlice(w.data[g0*gBytes : g1*gBytes])
	raceReadSlice(w.data[so+g0*gScales : so+g1*gScales+64])
	raceReadSlice(s.i8[:mp*chunks*i8ChunkK])
	raceReadSlice(s.sc[:mp*chunks*i8Dwords])
	raceReadSlice(s.i32[:mp*chunks*i8Dwords])
}

// i8ExactGroups is how many weight groups one Exact kernel call covers.
const i8ExactGroups = 64

// rowsExactAsm runs the Exact kernel k over rows [n0, n1), one activation
// row at a time.
func (f *int8Format) rowsExactAsm(k exactKernel, w *Matrix, y []float32, m, n0, n1 int, s *scratch) {
	chunks, gBytes, gScales, so, sstride := f.geometry(w)
	ts := f.tensorScale(w)
	g0, g1 := n0/i8Group, roundUp(n1, i8Group)/i8Group
	raceReadSlice(w.data[g0*gBytes : g1*gBytes])
	raceReadSlice(w.data[so+g0*gScales : so+g1*gScales+64])
	raceReadSlice(s.f32[:m*chunks*i8ChunkK])
	out := getOutBuf()
	defer outBufs.Put(out)
	for gs := g0; gs < g1; gs += i8ExactGroups {
		ge := min(g1, gs+i8ExactGroups)
		for i := range m {
			k(&w.data[gs*gBytes], &w.data[so+gs*gScales], sstride, &s.f32[i*chunks*i8ChunkK], chunks, ge-gs, &f.ftab, &f.eidx, &out[0])
			lo, hi := i*w.N+gs*i8Group, i*w.N+min(w.N, ge*i8Group)
			for j := range y[lo:hi] {
				y[lo+j] = out[j] * ts
			}
		}
	}
}

// quantChunks512 quantizes chunks whole chunks of 128 activations from x:
// chunk c goes to xq[c*xqStride:], sa[c*sStride/4:] and cr[c*sStride/4:]
// (strides in bytes). Reference: quantizeChunk for each chunk, with
// -off = negOff and the NVFP4 order if nv. Needs AVX-512 BW/VL and VNNI.
//
//go:noescape
func quantChunks512(x *float32, chunks int, xq *int8, xqStride int, sa *float32, cr *int32, sStride int, negOff int, nv bool)

// quantChunks256 is quantChunks512 for AVX2 (and F16C, FMA: the AVX2
// tier), bit for bit.
//
//go:noescape
func quantChunks256(x *float32, chunks int, xq *int8, xqStride int, sa *float32, cr *int32, sStride int, negOff int, nv bool)

// quantizeChunks256 is the AVX2 chunkQuantizer.
func quantizeChunks256(f *int8Format, x []float32, rb int, xq []int8, sa []float32, cr []int32) {
	quantizeChunksWith(quantChunks256, f, x, rb, xq, sa, cr)
}

// quantizeChunks512 is the AVX-512 chunkQuantizer.
func quantizeChunks512(f *int8Format, x []float32, rb int, xq []int8, sa []float32, cr []int32) {
	quantizeChunksWith(quantChunks512, f, x, rb, xq, sa, cr)
}

// quantizeChunksWith runs the assembly quantizer q as a chunkQuantizer.
func quantizeChunksWith(q func(x *float32, chunks int, xq *int8, xqStride int, sa *float32, cr *int32, sStride int, negOff int, nv bool),
	f *int8Format, x []float32, rb int, xq []int8, sa []float32, cr []int32) {
	chunks := len(x) / i8ChunkK
	last := (chunks - 1) * rb
	xq = xq[:(last+1)*i8ChunkK]
	sa, cr = sa[:(last+1)*i8Dwords], cr[:(last+1)*i8Dwords]
	raceReadSlice(x)
	raceWriteSlice(xq)
	raceWriteSlice(sa)
	raceWriteSlice(cr)
	q(&x[0], chunks, &xq[0], rb*i8ChunkK, &sa[0], &cr[0], rb*i8Dwords*4, int(-f.off), f.order == orderNV)
}
