package kernels

import (
	"encoding/binary"
	"math"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// The int8 path, shared by MXFP4, NVFP4, Q4_0 and Q8_0 at Fast precision.
//
// Activations are quantized once per call, per block of 32 along K, to int8
// with one f32 scale (quantizeBlock). Weights are small integers times a
// block scale: 2·E2M1 ∈ [-12, 12] times scale/2 for the FP4 formats,
// nibble-8 times d for Q4_0, q times d for Q8_0. A block's dot product is
// therefore an exact int32 (summed per dword of 8 products, as VPDPBUSD
// does), and its contribution to an output is float32(dot) ·
// (wscale·ascale), the two scales multiplied in f32 first.
//
// VPDPBUSD multiplies unsigned by signed bytes. The kernels keep the
// activations signed and make the weights unsigned by adding an offset
// (12 for FP4, 8 for Q4_0, 128 for Q8_0): Σ(w+off)·q = Σw·q + off·Σq. The
// correction off·Σq depends on the activations only, so it is computed once
// per call with them (as the starting value of each int32 partial sum) and
// no per-weight-row sums are needed. The AVX2 Q8_0 kernel, whose
// VPMADDUBSW would saturate on 255·127·2, uses the VPSIGNB/VPABSB trick on
// the signed weights instead.
//
// Packed layout. K is padded to a multiple of 128 (a chunk). Rows are taken
// in groups of 4 (i8Group) and interleaved chunk by chunk (see layout): a
// row-chunk is 64 bytes of nibbles (FP4, Q4_0) or 128 bytes of int8 (Q8_0).
// Seen as 16 int32 lanes ("dwords") of a zmm, byte P of the low view (low
// nibbles, or the first 64 bytes of Q8_0) and byte P of the high view (high
// nibbles, or the second 64 bytes) feed dword P/4, and every dword belongs
// to exactly one weight block, so one int32 lane never mixes scales:
//
//   - MXFP4, Q4_0: each 16-byte lane is one file block as stored (low nibble
//     of byte j is element j, high nibble element j+16).
//   - NVFP4: each 16-byte lane is two 16-element file blocks as stored (low
//     nibble of byte j is element j, high nibble element j+8); dwords 0-1
//     of the lane belong to the first, 2-3 to the second.
//   - Q8_0: lane l of the low view is elements 0-15 of block l, of the high
//     view elements 16-31 (bytes as in the file, signed).
//
// Each group's four row-chunks are then stored transposed (see pack): the
// kernels find the steps of a block in the lanes VPDPBUSD sums them in.
//
// The block scales follow the codes in Matrix.data (one stream a GEMV
// reads; Bytes counts both), in the same group/chunk order, spc per
// row-chunk, as the file has them: MXFP4's E8M0 bytes and NVFP4's E4M3
// bytes (scale8, scaleE4: 17 and 9 bytes per 32 and 16 weights, as in the
// file) and Q4_0's and Q8_0's f16 d (scaleF16). The FP4 scales the
// kernels use are halved (exact), so that the integer weights are 2·E2M1.
// NVFP4's tensor scale multiplies the finished outputs.
//
// Activations (per call, in scratch): for each row and chunk, 128 int8 in
// the order the weight views need (lo view then hi view), 16 f32 block
// scales per dword (s.sc) and 16 int32 corrections -off·Σq per dword
// (s.i32). Rows are interleaved in blocks of rb (4 for the AVX-512 D
// kernels, else 1) so a kernel reading rb rows finds them side by side;
// the assembly tiers then rearrange them into steps (gemmPrepGo).
//
// Bad data: a NaN block scale in the weights (MXFP4 0xFF, NVFP4 0x7F or a
// set sign bit, NaN f16 d) makes every output of that weight row NaN; an
// infinite f16 d makes them ±Inf or NaN. An activation block holding NaN or
// ±Inf gets a NaN scale and zero values, so every output of that activation
// row is NaN (also for ±Inf activations, where an exact product could be
// infinite). An all-zero activation block, and one whose largest |x| is
// below 2^-96, has scale 0 and contributes 0 (NaN if it meets a NaN weight
// scale).
//
// Exact precision decodes every weight to its f32 value (integer weight
// times block scale, exactly format.DequantizeRow's value before NVFP4's
// tensor scale) and accumulates x·w in f32: rowsExact in Go, and on
// AVX-512 the f32Dot kernels (nibbles through a 16-entry f32 VPERMPS table)
// on activations copied into the views' order by prepExact. Special
// activations then propagate as in plain f32 arithmetic.

const (
	i8Group    = 4   // weight rows per packed group
	i8ChunkK   = 128 // K elements per chunk
	i8Dwords   = 16  // int32 partial sums per row-chunk
	i8ActBlock = 32  // activation quantization block
)

// actOrder is how a chunk's 128 activations are arranged for the kernels.
type actOrder uint8

const (
	// orderMX: lane l of the low view is x[32l+0..15], of the high view
	// x[32l+16..31] (MXFP4, Q4_0, Q8_0).
	orderMX actOrder = iota
	// orderNV: lane l of the low view is x[32l+{0..7,16..23}], of the high
	// view x[32l+{8..15,24..31}] (NVFP4).
	orderNV
	// orderD is orderMX in the steps of the transposed packing, for the
	// Exact kernels: element 16s+4b+t is view position 16b+4s+t of the
	// low view for steps s < 4 (the low nibbles), 64+16b+4(s-4)+t of the
	// high view for the others, so x[32b+4s+t] or x[32b+16+4(s-4)+t].
	orderD
	// orderDNV is orderNV in the same steps (NVFP4's Exact kernel).
	orderDNV
)

// actPerm[o][P] is the chunk element at position P (low view P < 64, high
// view P >= 64) in order o.
var actPerm = func() (p [4][i8ChunkK]uint8) {
	for l := range 4 {
		for j := range 16 {
			p[orderMX][16*l+j] = uint8(32*l + j)
			p[orderMX][64+16*l+j] = uint8(32*l + 16 + j)
			skip := 0
			if j >= 8 {
				skip = 8
			}
			p[orderNV][16*l+j] = uint8(32*l + j + skip)
			p[orderNV][64+16*l+j] = uint8(32*l + 8 + j + skip)
		}
	}
	for s := range 8 {
		for b := range 4 {
			for t := range 4 {
				v := dStepOffset(s, b) + t
				p[orderD][16*s+4*b+t] = p[orderMX][v]
				p[orderDNV][16*s+4*b+t] = p[orderNV][v]
			}
		}
	}
	return p
}()

// int8Format describes one int8-path weight format.
type int8Format struct {
	t        format.Type
	nibbles  bool     // 4-bit codes (else int8 codes, Q8_0)
	order    actOrder // activation order the weight views need
	spc      int      // block scales per row-chunk
	off      int32    // unsigned offset added to the weights for VPDPBUSD
	hdrBytes int      // scale bytes at the start of each file block
	// lut maps a nibble to its weight plus off (nibble formats).
	lut [16]uint8
	// One of scaleE4, scaleF16 and scale8 is set: how the scales are
	// stored (as the file has them).
	// scaleE4 stores NVFP4's E4M3 bytes, a lane's two (one per block of
	// 16) apart: per group-chunk, the first blocks' 16 bytes in the lane
	// order 4g+b, then the second blocks'. The assembly kernels load a
	// byte as the f16 b<<7, 2^-8 times its value (2^-7 times the halved
	// scale; asmScale and ftab undo it); matrices with a byte that cannot
	// take that way run the generic kernels (see e4Fast).
	scaleE4 bool
	// scaleF16 stores the file's f16 scales as they are (Q4_0, Q8_0).
	scaleF16 bool
	// scale8 stores MXFP4's E8M0 scale bytes e as they are. The assembly
	// kernels load them as 2^(e-127) (f32 bits e<<23) and halve their
	// finished sums (asmScale); matrices with a byte that cannot take that
	// way run the generic kernels (see e8Fast).
	scale8 bool
	// ftab maps a nibble to its integer weight as f32 (Exact kernels),
	// divided by kscale, so that ftab times the scale the kernels load is
	// the weight itself.
	ftab [16]float32
	// eidx[l] maps row l's 16 dwords of a step to their scale slots (dword
	// 4b+t: slot 4l+b), as a dword index for VPERMPS (the Exact kernels;
	// with scale8 in the top byte, for VPERMB).
	eidx [4][16]int32
	// scale decodes a file block's scale (halved for FP4, NaN for the
	// codes the format defines as bad).
	scale func(hdr []byte) float32
}

// newInt8Format fills the derived fields.
func newInt8Format(f int8Format) *int8Format {
	for c := range f.ftab {
		f.ftab[c] = float32(int32(f.lut[c])-f.off) / f.kscale()
	}
	for l := range f.eidx {
		for p := range f.eidx[l] {
			f.eidx[l][p] = int32(4*l + p/4)
			if f.scale8 {
				f.eidx[l][p] <<= 24
			}
		}
	}
	return &f
}

// fp4Lut maps an E2M1 code to 2·value + 12.
var fp4Lut = func() (l [16]uint8) {
	for c := range l {
		l[c] = uint8(int(2*format.E2M1ToFloat32(uint8(c))) + 12)
	}
	return l
}()

func f16Scale(hdr []byte) float32 { return format.F16ToFloat32(binary.LittleEndian.Uint16(hdr)) }

// scaleBytes is the size of one stored block scale.
func (f *int8Format) scaleBytes() int {
	if f.scaleF16 {
		return 2
	}
	return 1 // scale8, scaleE4
}

// halves reports whether a dword lane's 32 weights are two blocks (NVFP4):
// the first in code steps 0, 1, 4 and 5, the second in 2, 3, 6 and 7.
func (f *int8Format) halves() bool { return f.spc == 8 }

// kscale is the factor between the scales the assembly kernels load and
// the format's (halved for FP4) block scales.
func (f *int8Format) kscale() float32 {
	switch {
	case f.scale8:
		return 2
	case f.scaleE4:
		return 1.0 / 128
	}
	return 1
}

// asmScale is the factor the assembly int8 kernels apply to finished
// outputs: the tensor scale over kscale (the Exact ones divide ftab
// instead).
func (f *int8Format) asmScale(w *Matrix) float32 {
	return f.tensorScale(w) / f.kscale()
}

// dStepOffset is where dword s of block b lies in a row-chunk: steps 0-3
// in the low view's lane b, 4-7 in the high view's (Q8 row-chunks only;
// nibble row-chunks have steps 0-3, each byte holding both views).
func dStepOffset(s, b int) int { return 64*(s/4) + 16*b + 4*(s%4) }

// e8Fast reports whether the assembly kernels take an MXFP4 block with
// scale byte e and codes: 2^(e-127) must be finite and, with the finished
// sums halved, equal the format's 2^(e-128) times any nonzero code. 0xFF
// (NaN), 0xFE (whose doubled scale 2^127 leaves no headroom) and 0x00 with
// a nonzero code (2^-127 is not e<<23) are not; no trained weights have
// them, and a matrix that does runs the generic kernels, exactly.
func e8Fast(e byte, codes []byte) bool {
	switch {
	case e >= 0xFE:
		return false
	case e == 0:
		for _, c := range codes {
			if c&0x77 != 0 {
				return false
			}
		}
	}
	return true
}

// e4Fast reports whether the assembly kernels take an NVFP4 block scale
// byte b: its sign bit must be clear (b<<7 is then an f16 of 2^-8 times
// its value) and it must not be NaN (0x7F). Trained weights have neither;
// a matrix that does runs the generic kernels, whose scale is NaN then.
func e4Fast(b byte) bool { return b&0x80 == 0 && b != 0x7F }

// scaleOffset is where the scales start in w.data.
func (f *int8Format) scaleOffset(w *Matrix) int { return w.np * w.kp / i8ChunkK * f.rowChunkBytes() }

// rowChunkBytes is the packed size of one row's chunk.
func (f *int8Format) rowChunkBytes() int {
	if f.nibbles {
		return 64
	}
	return 128
}

// weightAt returns the (signed) integer weight at view position P of a
// packed row-chunk.
func (f *int8Format) weightAt(wb []byte, p int) int32 {
	if !f.nibbles {
		return int32(int8(wb[p]))
	}
	b := wb[p&63]
	if p >= 64 {
		b >>= 4
	}
	return int32(f.lut[b&15]) - f.off
}

// tensorScale is the factor applied to finished outputs.
func (f *int8Format) tensorScale(w *Matrix) float32 {
	if f.t == format.NVFP4 {
		return w.TensorScale
	}
	return 1
}

func registerInt8(f *int8Format) {
	registerFormat(f.t,
		func(w *Matrix, rows []byte) { f.pack(w, rows) },
		func(w *Matrix, i int, dst []float32) { f.row(w, i, dst) },
		f.genericGemm())
}

// genericGemm returns the generic tier's gemm, which the assembly tiers
// also run for matrices marked generic.
func (f *int8Format) genericGemm() *gemm {
	return &gemm{
		path: func(Precision) Path { return PathScalar },
		prep: func(p *Pool, w *Matrix, x []float32, m int, s *scratch) {
			if w.Precision == Fast {
				f.prep(p, w, x, m, 1, nil, nil, s)
			}
		},
		rows: func(w *Matrix, y, x []float32, m, n0, n1 int, s *scratch) {
			if w.Precision == Fast {
				f.rowsGeneric(w, y, m, n0, n1, s)
			} else {
				f.rowsExact(w, y, x, m, n0, n1)
			}
		},
	}
}

// pack builds the interleaved codes and the scale stream.
func (f *int8Format) pack(w *Matrix, rows []byte) {
	w.kp = roundUp(w.K, i8ChunkK)
	chunks := w.kp / i8ChunkK
	rcb := f.rowChunkBytes()
	l := layout{group: i8Group, chunk: rcb, rowBytes: chunks * rcb}
	rb := f.t.RowBytes(w.K)
	be, bb := f.t.BlockElems(), f.t.BlockBytes()
	nblk := w.K / be
	codeBytes := bb - f.hdrBytes
	buf := make([]byte, l.rowBytes)
	w.group = i8Group
	w.data, w.np = l.interleave(w.N, func(i int) []byte {
		row := rows[i*rb : (i+1)*rb]
		clear(buf)
		for b := range nblk {
			codes := row[b*bb+f.hdrBytes : (b+1)*bb]
			if f.nibbles {
				copy(buf[b*codeBytes:], codes)
				continue
			}
			c, ln := b/4, b%4
			copy(buf[c*128+16*ln:], codes[:16])
			copy(buf[c*128+64+16*ln:], codes[16:])
		}
		return buf
	})
	// The transposed packing: lane g, dword b of zmm s of a group-chunk
	// is row g's step s of block b (dStepOffset: dword s of block b's
	// lane in the low view, s-4 in the high one), so that decoding
	// nibble zmm j gives step j of every block of the four rows from the
	// low nibbles and step 4+j from the high ones (Q8: zmm s is step s),
	// in the lanes the VPDPBUSD kernels sum without horizontal adds.
	var gc [i8Group * 128]byte
	for o := 0; o < len(w.data); o += i8Group * rcb {
		copy(gc[:], w.data[o:o+i8Group*rcb])
		for g := range i8Group {
			for s := range rcb / 16 {
				for b := range 4 {
					copy(w.data[o+64*s+16*g+4*b:][:4], gc[g*rcb+dStepOffset(s, b):])
				}
			}
		}
	}
	// Scales, then 64 bytes of padding so that the kernels' 64-byte scale
	// loads stay in bounds at the last row-chunk.
	codes := len(w.data)
	// One exact-size allocation: appending to the codes would regrow the
	// slice with about a quarter of spare capacity, which growslice
	// clears, so it stays resident for the life of the model.
	data := allocPacked(codes + w.np*chunks*f.spc*f.scaleBytes() + 64)
	copy(data, w.data)
	w.data = data
	sc := w.data[codes:]
	gcs := i8Group * f.spc * f.scaleBytes() // scale bytes per group-chunk
	for i := range w.N {
		row := rows[i*rb : (i+1)*rb]
		for b := range nblk {
			hdr := row[b*bb:]
			o := (i/i8Group*chunks+b/f.spc)*gcs + f.scalePos(i%i8Group, b%f.spc)
			switch {
			case f.scale8:
				sc[o] = hdr[0]
				if !e8Fast(hdr[0], row[b*bb+f.hdrBytes:(b+1)*bb]) {
					w.generic = true
				}
			case f.scaleE4:
				sc[o] = hdr[0]
				if !e4Fast(hdr[0]) {
					w.generic = true
				}
			default: // scaleF16
				copy(sc[o:o+2], hdr)
			}
		}
	}
}

// scalePos is where the scale of row g's block slot of a row-chunk lies
// among its group-chunk's scales.
func (f *int8Format) scalePos(g, slot int) int {
	if f.scaleE4 {
		return 16*(slot%2) + 4*g + slot/2
	}
	return (g*f.spc + slot) * f.scaleBytes()
}

// decodeChunk writes the f32 weights of one packed row-chunk in natural
// order: value = weight · scale (· tensor scale for NVFP4), which is exactly
// format.DequantizeRow's value.
func (f *int8Format) decodeChunk(dst *[i8ChunkK]float32, wb []byte, sw *[8]float32, ts float32) {
	perm := &actPerm[f.order]
	dps := i8Dwords / f.spc
	for p := range i8ChunkK {
		v := float32(f.weightAt(wb, p)) * sw[(p&63)/4/dps]
		if f.t == format.NVFP4 {
			v *= ts
		}
		dst[perm[p]] = v
	}
}

// chunkAtInto gathers the codes of row-chunk (i, c) from the transposed
// packing into dst, which must hold a row-chunk (128 bytes do for every
// format), and returns them with the chunk's decoded scales.
func (f *int8Format) chunkAtInto(dst []byte, w *Matrix, i, c int) (wb []byte, sw [8]float32) {
	chunks := w.kp / i8ChunkK
	gchunk, g := i/i8Group*chunks+c, i%i8Group
	rcb := f.rowChunkBytes()
	sc := w.data[f.scaleOffset(w)+gchunk*i8Group*f.spc*f.scaleBytes():]
	for s := range f.spc {
		o := f.scalePos(g, s)
		sw[s] = f.scale(sc[o : o+f.scaleBytes()])
	}
	gc := w.data[gchunk*i8Group*rcb:][:i8Group*rcb]
	for s := range rcb / 16 {
		for b := range 4 {
			copy(dst[dStepOffset(s, b):][:4], gc[64*s+16*g+4*b:])
		}
	}
	return dst[:rcb], sw
}

func (f *int8Format) row(w *Matrix, i int, dst []float32) {
	var buf [i8ChunkK]float32
	var cb [128]byte
	for c := range w.kp / i8ChunkK {
		wb, sw := f.chunkAtInto(cb[:], w, i, c)
		f.decodeChunk(&buf, wb, &sw, w.TensorScale)
		copy(dst[c*i8ChunkK:], buf[:min(i8ChunkK, w.K-c*i8ChunkK)])
	}
}

// i8TinyBits is 2^-96 as float32 bits: blocks whose largest |x| is smaller
// are quantized as zero (their reciprocal scale would overflow f32).
const i8TinyBits = 0x0F800000

// quantizeBlock quantizes x (at most 32 values) into q[:32] and returns the
// block scale. With amax the largest |x|, all in f32: d = amax/127,
// id = 127/amax, q = RNE(x·id) (|x·id| <= 127 always); q past len(x) is 0.
// A block with NaN or ±Inf gets d = NaN and q = 0; a block with amax below
// 2^-96 (all zero, or so small that id overflows) gets d = 0 and q = 0.
// The assembly quantizer computes exactly the same.
func quantizeBlock(q []int8, x []float32) float32 {
	q = q[:i8ActBlock]
	var amax uint32
	for _, v := range x {
		amax = max(amax, math.Float32bits(v)&^(1<<31))
	}
	if amax >= 0x7F800000 {
		clear(q)
		return float32(math.NaN())
	}
	if amax < i8TinyBits {
		clear(q)
		return 0
	}
	a := math.Float32frombits(amax)
	id := 127 / a
	const magic = 1 << 23 * 1.5 // adding and subtracting it rounds to even
	for j, v := range x {
		r := float32(v * id) // the conversion forbids fusing with the add
		q[j] = int8((r + magic) - magic)
	}
	clear(q[len(x):])
	return a / 127
}

// prep quantizes the m×K activations x into s (see the layout above), rows
// interleaved in blocks of rb, whole chunks with quant if it is set, and
// then runs rearrange, if set, over the records of each run of blocks
// (records [r0, r1)). Runs of blocks go to p's threads (forPrep).
func (f *int8Format) prep(p *Pool, w *Matrix, x []float32, m, rb int, quant chunkQuantizer, rearrange func(s *scratch, r0, r1 int), s *scratch) {
	chunks := w.kp / i8ChunkK
	mp := roundUp(m, rb)
	s.i8 = grow(s.i8, mp*chunks*i8ChunkK)
	s.sc = grow(s.sc, mp*chunks*i8Dwords)
	s.i32 = grow(s.i32, mp*chunks*i8Dwords)
	forPrep(p, mp, rb, w.K, func(i0, i1 int) {
		f.prepRows(w, x, m, rb, i0, i1, quant, s)
		if rearrange != nil {
			rearrange(s, i0*chunks, i1*chunks)
		}
	})
}

// prepRows is prep's quantizing of rows [i0, i1) (mp = m rounded up to rb
// at most; rows from m on are padding, all zero).
func (f *int8Format) prepRows(w *Matrix, x []float32, m, rb, i0, i1 int, quant chunkQuantizer, s *scratch) {
	chunks := w.kp / i8ChunkK
	full := w.K / i8ChunkK // chunks with 128 activations
	for i := i0; i < i1; i++ {
		rec0 := i/rb*chunks*rb + i%rb
		if i >= m {
			for c := range chunks {
				rec := rec0 + c*rb
				clear(s.i8[rec*i8ChunkK : (rec+1)*i8ChunkK])
				clear(s.sc[rec*i8Dwords : (rec+1)*i8Dwords])
				clear(s.i32[rec*i8Dwords : (rec+1)*i8Dwords])
			}
			continue
		}
		xr := x[i*w.K : (i+1)*w.K]
		c0 := 0
		if full > 0 && quant != nil {
			quant(f, xr[:full*i8ChunkK], rb, s.i8[rec0*i8ChunkK:], s.sc[rec0*i8Dwords:], s.i32[rec0*i8Dwords:])
			c0 = full
		}
		for c := c0; c < chunks; c++ {
			rec := rec0 + c*rb
			f.quantizeChunk(s.i8[rec*i8ChunkK:(rec+1)*i8ChunkK], s.sc[rec*i8Dwords:(rec+1)*i8Dwords],
				s.i32[rec*i8Dwords:(rec+1)*i8Dwords], xr[c*i8ChunkK:min(w.K, (c+1)*i8ChunkK)])
		}
	}
}

// chunkQuantizer does what quantizeChunk does for len(x)/128 whole chunks,
// the chunks' records rb records apart from the start of xq, sa and cr.
type chunkQuantizer func(f *int8Format, x []float32, rb int, xq []int8, sa []float32, cr []int32)

// quantizeChunk quantizes one chunk of at most 128 activations (the rest
// taken as zero) into its record: xq in the format's order, the block scale
// of each dword in sa and -off·Σq of each dword in cr.
func (f *int8Format) quantizeChunk(xq []int8, sa []float32, cr []int32, x []float32) {
	var q [i8ChunkK]int8
	var d [i8ChunkK / i8ActBlock]float32
	for b := range d {
		k0 := b * i8ActBlock
		d[b] = quantizeBlock(q[k0:k0+i8ActBlock], x[min(k0, len(x)):min(len(x), k0+i8ActBlock)])
	}
	for p, src := range &actPerm[f.order] {
		xq[p] = q[src]
	}
	for dw := range i8Dwords {
		sa[dw] = d[dw/4]
		var sum int32
		for j := range 4 {
			sum += int32(xq[4*dw+j]) + int32(xq[64+4*dw+j])
		}
		cr[dw] = -f.off * sum
	}
}

// gemmPrepGo is int8GemmPrep512 (int8GemmPrepH512 if halves) in Go: it
// rearranges activation records [r0, r1) of s in place for the
// assembly kernels: each view's codes as four steps of 16 bytes (step j,
// dword b: dword 4b+j of the view), and the 16 scales and corrections as
// the block scales and block corrections (the sums of the block's dword
// corrections), block b in dword b of each 16 bytes. With halves the
// corrections are those of the first blocks (dword corrections 0-1 of
// each block) in dwords 0-3 and 8-11, of the second (2-3) in 4-7 and
// 12-15.
func gemmPrepGo(s *scratch, r0, r1 int, halves bool) {
	for r := r0; r < r1; r++ {
		xq := s.i8[r*i8ChunkK:][:i8ChunkK]
		xs, xc := s.sc[r*i8Dwords:][:i8Dwords], s.i32[r*i8Dwords:][:i8Dwords]
		var q [i8ChunkK]int8
		var bs [4]float32
		var bc [8]int32
		for v := range 2 {
			for j := range 4 {
				for b := range 4 {
					copy(q[64*v+16*j+4*b:][:4], xq[64*v+16*b+4*j:])
				}
			}
		}
		for b := range 4 {
			bs[b] = xs[4*b]
			bc[b] = xc[4*b] + xc[4*b+1]
			bc[4+b] = xc[4*b+2] + xc[4*b+3]
		}
		copy(xq, q[:])
		for d := range i8Dwords {
			xs[d] = bs[d%4]
			if halves {
				xc[d] = bc[d%8]
			} else {
				xc[d] = bc[d%4] + bc[4+d%4]
			}
		}
	}
}

// rowsGeneric is the reference int8 kernel, on activations prepared with
// rb = 1. Like the assembly it sums exact int32 dots per dword (4 bytes of
// each view), and adds float32(dot) · (wscale·ascale) in f32, so the tiers
// form the same products and differ only in the order they sum them (an
// infinite scale gives the same infinities or NaN everywhere).
func (f *int8Format) rowsGeneric(w *Matrix, y []float32, m, n0, n1 int, s *scratch) {
	chunks := w.kp / i8ChunkK
	dps := i8Dwords / f.spc
	ts := f.tensorScale(w)
	var cb [128]byte
	for n := n0; n < n1; n += i8Group {
		for i := range m {
			var acc [i8Group]float32
			for c := range chunks {
				rec := i*chunks + c
				xq := s.i8[rec*i8ChunkK : (rec+1)*i8ChunkK]
				sa := s.sc[rec*i8Dwords : (rec+1)*i8Dwords]
				for g := range i8Group {
					wb, sw := f.chunkAtInto(cb[:], w, n+g, c)
					a := acc[g]
					for dw := range i8Dwords {
						var dot int32
						for p := 4 * dw; p < 4*dw+4; p++ {
							dot += f.weightAt(wb, p)*int32(xq[p]) + f.weightAt(wb, 64+p)*int32(xq[64+p])
						}
						a += float32(dot) * (sw[dw/dps] * sa[dw])
					}
					acc[g] = a
				}
			}
			for g := range min(i8Group, w.N-n) {
				y[i*w.N+n+g] = acc[g] * ts
			}
		}
	}
}

// prepExact copies the activations into s.f32 in the order of the steps
// of the transposed packing, K padded with zeros, for the Exact assembly
// kernels.
func (f *int8Format) prepExact(p *Pool, w *Matrix, x []float32, m int, s *scratch) {
	chunks := w.kp / i8ChunkK
	s.f32 = grow(s.f32, m*chunks*i8ChunkK)
	perm := &actPerm[orderD]
	if f.order == orderNV {
		perm = &actPerm[orderDNV]
	}
	forPrep(p, m, 1, w.K, func(i0, i1 int) {
		for i := i0; i < i1; i++ {
			xr := x[i*w.K : (i+1)*w.K]
			for c := range chunks {
				dst := s.f32[(i*chunks+c)*i8ChunkK : (i*chunks+c+1)*i8ChunkK]
				k0 := c * i8ChunkK
				for p, src := range perm {
					if k := k0 + int(src); k < w.K {
						dst[p] = xr[k]
					} else {
						dst[p] = 0
					}
				}
			}
		}
	})
}

// rowsExact decodes each weight exactly to f32 and dots it with the f32
// activations (four partial sums per row-chunk). NVFP4's tensor scale
// multiplies the finished sums, as in the assembly.
func (f *int8Format) rowsExact(w *Matrix, y, x []float32, m, n0, n1 int) {
	chunks := w.kp / i8ChunkK
	ts := f.tensorScale(w)
	acc := make([]float32, m*i8Group)
	var dec [i8Group][i8ChunkK]float32
	var cb [128]byte
	for n := n0; n < n1; n += i8Group {
		clear(acc)
		for c := range chunks {
			for g := range i8Group {
				wb, sw := f.chunkAtInto(cb[:], w, n+g, c)
				f.decodeChunk(&dec[g], wb, &sw, 1)
			}
			k0 := c * i8ChunkK
			ke := min(i8ChunkK, w.K-k0)
			for i := range m {
				xc := x[i*w.K+k0 : i*w.K+k0+ke]
				for g := range i8Group {
					wc := dec[g][:ke]
					var p [4]float32
					j := 0
					for ; j+4 <= len(xc); j += 4 {
						p[0] += xc[j] * wc[j]
						p[1] += xc[j+1] * wc[j+1]
						p[2] += xc[j+2] * wc[j+2]
						p[3] += xc[j+3] * wc[j+3]
					}
					for ; j < len(xc); j++ {
						p[0] += xc[j] * wc[j]
					}
					acc[i*i8Group+g] += (p[0] + p[1]) + (p[2] + p[3])
				}
			}
		}
		for i := range m {
			for g := range min(i8Group, w.N-n) {
				y[i*w.N+n+g] = acc[i*i8Group+g] * ts
			}
		}
	}
}
