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
// The Nib kernels read 64-byte nibble row-chunks, the Q8 kernels 128-byte
// int8 ones (lut unused; the AVX2 one uses the sign trick and ignores xc).
// The 512 kernels need AVX-512 BW/VL, VBMI and VNNI, the 256 ones AVX2 and
// FMA. All read up to 64 bytes past the last scale (Pack pads them).

//go:noescape
func int8DotNibS16512R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS16512R4(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS16256R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS32512R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS32512R4(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotNibS32256R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotQ8S32512R1(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

//go:noescape
func int8DotQ8S32512R4(w *byte, ws *byte, sstride int, xq *int8, xs *float32, xc *int32, chunks, groups int, lut *[16]uint8, idx *[32]int32, out *float32)

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

func init() {
	for _, f := range []*int8Format{mxfp4Int8, nvfp4Int8, q40Int8, q80Int8} {
		r1, r4, r1avx2, ex := int8DotQ8S32512R1, int8DotQ8S32512R4, int8DotQ8S32256R1, exactKernel(f32DotQ8S32512)
		switch {
		case f.nibbles && f.scale16:
			r1, r4, r1avx2, ex = int8DotNibS16512R1, int8DotNibS16512R4, int8DotNibS16256R1, f32DotNibS16512
		case f.nibbles:
			r1, r4, r1avx2, ex = int8DotNibS32512R1, int8DotNibS32512R4, int8DotNibS32256R1, f32DotNibS32512
		}
		registerTier(f.t, AVX512, f.asmGemm(PathInt8Dot, r1, r4, quantizeChunks512, ex))
		registerTier(f.t, AVX2, f.asmGemm(PathInt8Madd, r1avx2, nil, nil, nil))
	}
}

// asmGemm returns the gemm running kernel r1 (one activation row at a
// time) and, if set, r4 (four at a time, used when m > 1), quantizing the
// activations with quant (nil: in Go), and the Exact precision with exact
// (nil: the generic kernel).
func (f *int8Format) asmGemm(path Path, r1, r4 int8Kernel, quant chunkQuantizer, exact exactKernel) *gemm {
	rb := func(m int) int {
		if m > 1 && r4 != nil {
			return 4
		}
		return 1
	}
	return &gemm{
		path: func(p Precision) Path {
			switch {
			case p == Fast:
				return path
			case exact != nil:
				return PathF32FMA
			}
			return PathScalar
		},
		prep: func(w *Matrix, x []float32, m int, s *scratch) {
			switch {
			case w.Precision == Fast:
				f.prep(w, x, m, rb(m), quant, s)
			case exact != nil:
				f.prepExact(w, x, m, s)
			}
		},
		rows: func(w *Matrix, y, x []float32, m, n0, n1 int, s *scratch) {
			switch {
			case w.Precision == Fast:
			case exact != nil:
				f.rowsExactAsm(exact, w, y, m, n0, n1, s)
				return
			default:
				f.rowsExact(w, y, x, m, n0, n1)
				return
			}
			k := r1
			if rb(m) == 4 {
				k = r4
			}
			f.rowsAsm(k, rb(m), w, y, m, n0, n1, s)
		},
	}
}

// i8TileBytes bounds the prepared activations one pass over a weight group
// reads, so that they stay in L2 while the group's codes stay in L1.
const i8TileBytes = 256 << 10

// i8CallGroups is how many weight groups one kernel call covers (one when
// several activation rows share the call, so the group stays in L1).
const i8CallGroups = 64

// rowsAsm runs kernel k over rows [n0, n1) in blocks of rb activation rows.
func (f *int8Format) rowsAsm(k int8Kernel, rb int, w *Matrix, y []float32, m, n0, n1 int, s *scratch) {
	chunks := w.kp / i8ChunkK
	rcb := f.rowChunkBytes()
	ts := f.tensorScale(w)
	mp := roundUp(m, rb)
	tile := max(rb, i8TileBytes/(chunks*256)/rb*rb)
	gBytes, gScales := chunks*i8Group*rcb, chunks*i8Group*f.spc*f.scaleBytes()
	so := f.scaleOffset(w)
	g0, g1 := n0/i8Group, roundUp(n1, i8Group)/i8Group
	raceReadSlice(w.data[g0*gBytes : g1*gBytes])
	raceReadSlice(w.data[so+g0*gScales : so+g1*gScales+64])
	raceReadSlice(s.i8[:mp*chunks*i8ChunkK])
	raceReadSlice(s.sc[:mp*chunks*i8Dwords])
	raceReadSlice(s.i32[:mp*chunks*i8Dwords])
	per := i8CallGroups
	if rb > 1 {
		per = 1
	}
	var out [i8CallGroups * 4]float32
	for i0 := 0; i0 < mp; i0 += tile {
		i1 := min(mp, i0+tile)
		for gs := g0; gs < g1; gs += per {
			ge := min(g1, gs+per)
			for i := i0; i < i1; i += rb {
				rec := i * chunks
				k(&w.data[gs*gBytes], &w.data[so+gs*gScales], f.spc*f.scaleBytes(), &s.i8[rec*i8ChunkK], &s.sc[rec*i8Dwords], &s.i32[rec*i8Dwords], chunks, ge-gs, &f.lut, &f.idx, &out[0])
				for r := range min(rb, m-i) {
					lo, hi := (i+r)*w.N+gs*i8Group, (i+r)*w.N+min(w.N, ge*i8Group)
					for j := range y[lo:hi] {
						y[lo+j] = out[(j/i8Group)*rb*i8Group+r*i8Group+j%i8Group] * ts
					}
				}
			}
		}
	}
}

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
	var out [i8CallGroups * 4]float32
	for gs := g0; gs < g1; gs += i8CallGroups {
		ge := min(g1, gs+i8CallGroups)
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
