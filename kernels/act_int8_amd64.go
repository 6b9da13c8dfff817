//go:build amd64 && gc && !noasm

package kernels

//go:generate go run act_int8_gen.go

// The int8-path kernels. Each handles groups consecutive groups of 4
// packed weight rows (w, ws: the first group's codes and scales at chunk 0,
// scales 16-bit for S16 and f32 for S32; each stream continues into the
// next group) against the same R activation rows prepared with rb = R (xq,
// xs, xc: the row block's chunk 0), over chunks chunks, and writes for
// group q out[q*4R + r*4 + g] = Σ_c Σ_dword float32(dot) · (ws·xs) with
// dot = xc[dword] + Σ over the dword's 4 bytes of both views of
// u8(w+off)·s8(xq) (see act_int8.go). sstride is the byte distance between
// the scales of two rows of a chunk (spc·scale bytes), lut maps nibbles to
// w+off, idx maps dwords (and words) to scale slots. Reference loop
// (rowsGeneric), per group, row g and activation row r:
//
//	for c := range chunks {
//		for dw := range 16 {
//			dot := Σ_{p=4dw}^{4dw+3} w(p)·xq[p] + w(64+p)·xq[64+p] // exact int32
//			acc[g][r] += float32(dot) * (ws[c][g][dw*spc/16] * xs[c][r][dw])
//		}
//	}
//
// The R1 kernels take one activation row. The S4 and S4T kernels do the
// same for 4·groups groups, walking four streams of groups (groups apart)
// at once so that a core keeps four sequential reads in flight; they are
// the batch-1 (decode) kernels. The R4, T4 and T8 kernels take blocks of
// four activation rows: for each group, each of blocks consecutive row
// blocks (xq, xs, xc continue into the next block), writing
// out[(q·blocks+b)·16 + r·4 + g], so a group's codes are read from memory
// once and from L1 for the other blocks (T8 takes exactly two blocks and
// decodes the codes once for both). The T kernels (and S4T), for formats
// with one scale per 32 weights (spc = 4: MXFP4, Q4_0, Q8_0), sum each
// block's four dwords in int32 first (exact) and convert, scale and
// accumulate once per activation row and block for the four weight rows
// (idx is then tidx); R4 and S4 (NVFP4) convert each dword like the
// reference loop. The tiers and kernels thus differ only in the order of
// the f32 sums.
//
// The Nib kernels read 64-byte nibble row-chunks, the Q8 kernels 128-byte
// int8 ones (lut unused; the AVX2 one uses the sign trick and ignores xc).
// The 512 kernels need AVX-512 BW/VL, VBMI and VNNI, the 256 ones AVX2 and
// FMA. All read up to 64 bytes past the last scale (Pack pads them).

//go:noescape
func int8DotNibS16512R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS16512R4(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups, blocks int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS16512T8(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups, blocks int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS16512T4(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups, blocks int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS16512S4T(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS16512S4(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS16256R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS32512R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS32512T8(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups, blocks int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS32512T4(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups, blocks int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS32512S4T(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS32256R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotQ8S32512R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotQ8S32512T8(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups, blocks int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotQ8S32512T4(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups, blocks int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotQ8S32512S4T(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotQ8S32256R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

// f32DotNibS16512, f32DotNibS32512 and f32DotQ8S32512 are the Exact
// kernels: for groups consecutive groups (w, ws as for the int8 kernels)
// and one activation row x prepared by prepExact (128 f32 per chunk in the
// views' order), out[q*4+g] = Σ_c Σ_p x[c][p] · (ftab[code(p)]·scale(p))
// (Q8: int8 code · scale), the exact decoded weights of rowsExact without
// the NVFP4 tensor scale. eidx[l] maps the bytes of lane l to scale slots.
// They need AVX-512 F/BW/VL; they read up to 64 bytes past the last scale.

//go:noescape
func f32DotNibS16512(w *byte, ws *byte, sstride int, x *float32, chunks, groups int, ftab *[16]float32, eidx *[4][16]int32, out *float32)

//go:noescape
func f32DotNibS32512(w *byte, ws *byte, sstride int, x *float32, chunks, groups int, ftab *[16]float32, eidx *[4][16]int32, out *float32)

//go:noescape
func f32DotQ8S32512(w *byte, ws *byte, sstride int, x *float32, chunks, groups int, ftab *[16]float32, eidx *[4][16]int32, out *float32)

type exactKernel func(w *byte, ws *byte, sstride int, x *float32, chunks, groups int, ftab *[16]float32, eidx *[4][16]int32, out *float32)

type int8Kernel func(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

// int8BlockKernel is a kernel over blocks of activation rows: for each
// group, each of blocks consecutive row blocks, writing out[(q·blocks+b)·4R
// + r·4 + g].
type int8BlockKernel func(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups, blocks int, lut *[16]uint8, idx *[32]int32, out *float32)

// int8Kernels are one format's kernels at one tier.
type int8Kernels struct {
	path     Path
	r1       int8Kernel      // one activation row at a time
	streams  int8Kernel      // one activation row, several streams of groups (or nil)
	nstreams int             // streams the streams kernel walks
	r4       int8BlockKernel // blocks of four activation rows, used when m > 1 (or nil)
	r8       int8BlockKernel // exactly two blocks of four rows (or nil)
	quant    chunkQuantizer
	exact    exactKernel // Exact precision (nil: the generic kernel)
	// summed reports that streams, r4 and r8 sum each block's dwords
	// first and take tidx instead of idx.
	summed bool
}

func init() {
	for _, f := range []*int8Format{mxfp4Int8, nvfp4Int8, q40Int8, q80Int8} {
		k512 := int8Kernels{path: PathInt8Dot, quant: quantizeChunks512}
		k256 := int8Kernels{path: PathInt8Madd}
		var s4t int8Kernel
		var t4, t8 int8BlockKernel
		switch {
		case f.nibbles && f.scale16:
			k512.r1, k512.streams, k512.r4, k512.exact = int8DotNibS16512R1, int8DotNibS16512S4, int8DotNibS16512R4, f32DotNibS16512
			s4t, t4, t8 = int8DotNibS16512S4T, int8DotNibS16512T4, int8DotNibS16512T8
			k256.r1 = int8DotNibS16256R1
		case f.nibbles:
			k512.r1, k512.exact = int8DotNibS32512R1, f32DotNibS32512
			s4t, t4, t8 = int8DotNibS32512S4T, int8DotNibS32512T4, int8DotNibS32512T8
			k256.r1 = int8DotNibS32256R1
		default:
			k512.r1, k512.exact = int8DotQ8S32512R1, f32DotQ8S32512
			s4t, t4, t8 = int8DotQ8S32512S4T, int8DotQ8S32512T4, int8DotQ8S32512T8
			k256.r1 = int8DotQ8S32256R1
		}
		k512.nstreams = 4
		if f.spc == 4 {
			k512.streams, k512.r4, k512.r8, k512.summed = s4t, t4, t8, true
		}
		registerTier(f.t, AVX512, f.asmGemm(&k512))
		registerTier(f.t, AVX2, f.asmGemm(&k256))
	}
}

// asmGemm returns the gemm running the kernels k.
func (f *int8Format) asmGemm(k *int8Kernels) *gemm {
	rb := func(m int) int {
		if m > 1 && k.r4 != nil {
			return 4
		}
		return 1
	}
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
		prep: func(w *Matrix, x []float32, m int, s *scratch) {
			switch {
			case w.Precision == Fast:
				f.prep(w, x, m, rb(m), k.quant, s)
			case k.exact != nil:
				f.prepExact(w, x, m, s)
			}
		},
		rows: func(w *Matrix, y, x []float32, m, n0, n1 int, s *scratch) {
			switch {
			case w.Precision == Fast:
			case k.exact != nil:
				f.rowsExactAsm(k.exact, w, y, m, n0, n1, s)
				return
			default:
				f.rowsExact(w, y, x, m, n0, n1)
				return
			}
			if rb(m) == 4 {
				f.rowsAsmBlocks(k, w, y, m, n0, n1, s)
				return
			}
			f.rowsAsm(k, w, y, m, n0, n1, s)
		},
	}
}

// i8TileBytes bounds the prepared activations one pass over a weight group
// reads, so that they stay in L2 while the group's codes stay in L1.
const i8TileBytes = 256 << 10

// i8CallGroups is how many weight groups one one-row kernel call covers,
// and bounds groups·blocks of one block kernel call (its output buffer).
const i8CallGroups = 256

// kernelIdx returns the scale index of the kernels that sum each block's
// dwords first (summed) or of the others.
func (f *int8Format) kernelIdx(summed bool) *[32]int32 {
	if summed {
		return &f.tidx
	}
	return &f.idx
}

// rowsAsm runs k's one-row kernels over rows [n0, n1), one activation row
// at a time: k.streams takes the largest multiple of k.nstreams groups of
// each call, k.r1 the rest.
func (f *int8Format) rowsAsm(k *int8Kernels, w *Matrix, y []float32, m, n0, n1 int, s *scratch) {
	chunks := w.kp / i8ChunkK
	ts := f.tensorScale(w)
	gBytes, gScales := chunks*i8Group*f.rowChunkBytes(), chunks*i8Group*f.spc*f.scaleBytes()
	so := f.scaleOffset(w)
	g0, g1 := n0/i8Group, roundUp(n1, i8Group)/i8Group
	f.raceRead(w, s, g0, g1, m)
	sstride := f.spc * f.scaleBytes()
	var out [i8CallGroups * 4]float32
	for gs := g0; gs < g1; gs += i8CallGroups {
		ge := min(g1, gs+i8CallGroups)
		for i := range m {
			rec := i * chunks
			xq, xs, xc := &s.i8[rec*i8ChunkK], &s.sc[rec*i8Dwords], &s.i32[rec*i8Dwords]
			done := 0
			if k.streams != nil && ge-gs >= k.nstreams {
				h := (ge - gs) / k.nstreams
				k.streams(&w.data[gs*gBytes], &w.data[so+gs*gScales], sstride, xq, xs, xc, chunks, h, &f.lut, f.kernelIdx(k.summed), &out[0])
				done = k.nstreams * h
			}
			if gd := gs + done; gd < ge {
				k.r1(&w.data[gd*gBytes], &w.data[so+gd*gScales], sstride, xq, xs, xc, chunks, ge-gd, &f.lut, &f.idx, &out[done*4])
			}
			lo, hi := i*w.N+gs*i8Group, i*w.N+min(w.N, ge*i8Group)
			for j, v := range out[:hi-lo] {
				y[lo+j] = v * ts
			}
		}
	}
}

// rowsAsmBlocks runs k.r4 (k.r8 for two blocks) over rows [n0, n1) on
// activations prepared in blocks of four rows: each call covers several
// groups and, for each, all blocks of a tile of activation rows, so that a
// group's codes are read from memory once and from L1 by the other blocks.
func (f *int8Format) rowsAsmBlocks(k *int8Kernels, w *Matrix, y []float32, m, n0, n1 int, s *scratch) {
	const rb = 4
	chunks := w.kp / i8ChunkK
	ts := f.tensorScale(w)
	mp := roundUp(m, rb)
	tile := min(mp, max(rb, i8TileBytes/(chunks*256)/rb*rb), i8CallGroups*i8Group/(rb*i8Group)*rb)
	gBytes, gScales := chunks*i8Group*f.rowChunkBytes(), chunks*i8Group*f.spc*f.scaleBytes()
	so := f.scaleOffset(w)
	g0, g1 := n0/i8Group, roundUp(n1, i8Group)/i8Group
	f.raceRead(w, s, g0, g1, mp)
	sstride := f.spc * f.scaleBytes()
	var out [i8CallGroups * 4]float32
	for i0 := 0; i0 < mp; i0 += tile {
		i1 := min(mp, i0+tile)
		nb := (i1 - i0) / rb
		per := max(1, len(out)/(nb*rb*i8Group))
		for gs := g0; gs < g1; gs += per {
			ge := min(g1, gs+per)
			rec := i0 * chunks
			kern := k.r4
			if nb == 2 && k.r8 != nil {
				kern = k.r8
			}
			kern(&w.data[gs*gBytes], &w.data[so+gs*gScales], sstride, &s.i8[rec*i8ChunkK], &s.sc[rec*i8Dwords], &s.i32[rec*i8Dwords], chunks, ge-gs, nb, &f.lut, f.kernelIdx(k.summed), &out[0])
			for q := range ge - gs {
				c0 := (gs + q) * i8Group
				cols := min(i8Group, w.N-c0)
				for b := range nb {
					o := out[(q*nb+b)*rb*i8Group:]
					for r := range min(rb, m-i0-b*rb) {
						yr := y[(i0+b*rb+r)*w.N+c0:][:cols]
						for g := range yr {
							yr[g] = o[r*i8Group+g] * ts
						}
					}
				}
			}
		}
	}
}

// raceRead tells the race detector what the kernels read for groups
// [g0, g1) and mp prepared activation rows.
func (f *int8Format) raceRead(w *Matrix, s *scratch, g0, g1, mp int) {
	chunks := w.kp / i8ChunkK
	gBytes, gScales := chunks*i8Group*f.rowChunkBytes(), chunks*i8Group*f.spc*f.scaleBytes()
	so := f.scaleOffset(w)
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
	chunks := w.kp / i8ChunkK
	ts := f.tensorScale(w)
	gBytes, gScales := chunks*i8Group*f.rowChunkBytes(), chunks*i8Group*f.spc*f.scaleBytes()
	so := f.scaleOffset(w)
	g0, g1 := n0/i8Group, roundUp(n1, i8Group)/i8Group
	raceReadSlice(w.data[g0*gBytes : g1*gBytes])
	raceReadSlice(w.data[so+g0*gScales : so+g1*gScales+64])
	raceReadSlice(s.f32[:m*chunks*i8ChunkK])
	var out [i8ExactGroups * 4]float32
	for gs := g0; gs < g1; gs += i8ExactGroups {
		ge := min(g1, gs+i8ExactGroups)
		for i := range m {
			k(&w.data[gs*gBytes], &w.data[so+gs*gScales], f.spc*f.scaleBytes(), &s.f32[i*chunks*i8ChunkK], chunks, ge-gs, &f.ftab, &f.eidx, &out[0])
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

// quantizeChunks512 is the AVX-512 chunkQuantizer.
func quantizeChunks512(f *int8Format, x []float32, rb int, xq []int8, sa []float32, cr []int32) {
	chunks := len(x) / i8ChunkK
	last := (chunks - 1) * rb
	xq = xq[:(last+1)*i8ChunkK]
	sa, cr = sa[:(last+1)*i8Dwords], cr[:(last+1)*i8Dwords]
	raceReadSlice(x)
	raceWriteSlice(xq)
	raceWriteSlice(sa)
	raceWriteSlice(cr)
	quantChunks512(&x[0], chunks, &xq[0], rb*i8ChunkK, &sa[0], &cr[0], rb*i8Dwords*4, int(-f.off), f.order == orderNV)
}
