package kernels

import (
	"encoding/binary"
	"math"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// The float formats (F32, F16, BF16, F8E4M3Row, MXF8E4M3, MXF8E5M2) share
// one packed layout: groups of fpGroup rows, each row's elements (or FP8
// codes) padded with zeros to kp, cut into 64-byte chunks and interleaved
// (see layout). kp is K rounded up to the elements of one chunk: 16 (F32),
// 32 (F16, BF16) or 64 (FP8).
//
// The MX formats keep their E8M0 scale bytes after the codes, in the same
// interleaved order with 2-byte chunks: for group g, chunk c and row r, the
// scales of the chunk's two 32-element blocks are the 2 bytes at
// np*kp + ((g*chunks+c)*fpGroup + r)*2, so a kernel reads a second linear
// stream.
//
// w.scale[:np] holds a per-row multiplier the kernels apply to each output:
// the row scale for F8E4M3Row, 1 for the others, and NaN for a row holding a
// NaN code or an MX 0xFF scale (whose outputs are NaN under any activations,
// so this only makes the NaN independent of how a tier decodes the codes).
// Padding rows have 0. For F8E4M3Row, w.scale[np:] keeps the file's row
// scales for Row; for MX, w.scale[np] is 1 if mxScaledOK.
const (
	fpGroup = 4
	fpChunk = 64
)

// fpInfo describes one of the float formats.
type fpInfo struct {
	elemBytes int  // bytes per packed element: 4, 2 or 1 (an FP8 code)
	mx        bool // E8M0 scale per 32 elements
	rowScale  bool // f32 scale per row (F8E4M3Row)
	fastBF16  bool // Fast rounds activations to bf16
	// decode writes the unscaled values of the packed elements src.
	decode func(dst []float32, src []byte)
}

var fpInfos = map[format.Type]*fpInfo{
	format.F32:       {elemBytes: 4, decode: decodeF32},
	format.F16:       {elemBytes: 2, decode: decodeF16},
	format.BF16:      {elemBytes: 2, fastBF16: true, decode: decodeBF16},
	format.F8E4M3Row: {elemBytes: 1, rowScale: true, fastBF16: true, decode: decodeE4M3},
	format.MXF8E4M3:  {elemBytes: 1, mx: true, fastBF16: true, decode: decodeE4M3},
	format.MXF8E5M2:  {elemBytes: 1, mx: true, fastBF16: true, decode: decodeE5M2},
}

func init() {
	for t := range fpInfos {
		registerFormat(t, packFP, rowFP, &gemm{
			path: func(Precision) Path { return PathScalar },
			prep: prepFPGeneric,
			rows: rowsFPGeneric,
		})
	}
}

func decodeF32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func decodeF16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = format.F16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

func decodeBF16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = format.BF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

func decodeE4M3(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = format.E4M3Table[src[i]]
	}
}

func decodeE5M2(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = format.E5M2Table[src[i]]
	}
}

// isNaNCode reports whether the FP8 code c of format t decodes to NaN.
func isNaNCode(t format.Type, c byte) bool {
	if t == format.MXF8E5M2 {
		return c&0x7F > 0x7C
	}
	return c&0x7F == 0x7F
}

// fpLayout returns the code layout of w.
func (w *Matrix) fpLayout() layout {
	return layout{group: fpGroup, chunk: fpChunk, rowBytes: w.kp * fpInfos[w.Type].elemBytes}
}

// mxScaleLayout returns the layout of an MX matrix's scale bytes, which
// start at w.data[w.np*w.kp].
func (w *Matrix) mxScaleLayout() layout {
	return layout{group: fpGroup, chunk: 2, rowBytes: w.kp / 32}
}

func packFP(w *Matrix, rows []byte) {
	info := fpInfos[w.Type]
	w.group = fpGroup
	w.kp = roundUp(w.K, fpChunk/info.elemBytes)
	rb := w.Type.RowBytes(w.K)
	l := w.fpLayout()
	switch {
	case info.mx:
		nb := w.K / 32
		codes := make([]byte, w.K)
		sc := make([]byte, w.kp/32)
		cl, sl := w.fpLayout(), w.mxScaleLayout()
		w.np = roundUp(w.N, fpGroup)
		w.data = allocPacked(w.np*w.kp + w.np*w.kp/32)
		w.scale = make([]float32, w.np+1)
		lo, hi := mxScaledRange(w.Type)
		scaledOK := true
		for i := range w.N {
			row := rows[i*rb : (i+1)*rb]
			mul := float32(1)
			for b := range nb {
				blk := row[b*33 : (b+1)*33]
				sc[b] = blk[0]
				copy(codes[b*32:], blk[1:])
				if blk[0] == 0xFF {
					mul = float32(math.NaN())
				}
				if blk[0] < lo || blk[0] > hi {
					scaledOK = false
				}
			}
			for b := nb; b < len(sc); b++ {
				sc[b] = 127 // 1.0 for the zero padding
			}
			for _, c := range codes {
				if isNaNCode(w.Type, c) {
					mul = float32(math.NaN())
				}
				if c&0x7F >= 0x7C && (w.Type == format.MXF8E5M2 || c&0x7F == 0x7F) {
					scaledOK = false // Inf or NaN
				}
			}
			w.scale[i] = mul
			for c := range cl.rowBytes / cl.chunk {
				copy(w.data[cl.offset(i, c):], codes[c*fpChunk:min(len(codes), (c+1)*fpChunk)])
				copy(w.data[w.np*w.kp+sl.offset(i, c):], sc[2*c:2*c+2])
			}
		}
		if scaledOK {
			w.scale[w.np] = 1
		}
	case info.rowScale:
		w.data, w.np = l.interleave(w.N, func(i int) []byte { return rows[i*rb : i*rb+w.K] })
		w.scale = make([]float32, 2*w.np)
		for i := range w.N {
			s := math.Float32frombits(binary.LittleEndian.Uint32(rows[i*rb+w.K:]))
			w.scale[w.np+i] = s
			for _, c := range rows[i*rb : i*rb+w.K] {
				if isNaNCode(w.Type, c) {
					s = float32(math.NaN())
					break
				}
			}
			w.scale[i] = s
		}
	default:
		w.data, w.np = l.interleave(w.N, func(i int) []byte { return rows[i*rb : (i+1)*rb] })
		w.scale = make([]float32, w.np)
		for i := range w.N {
			w.scale[i] = 1
		}
	}
}

// mxScaledRange returns the E8M0 scale codes for which every nonzero
// element of MX type t times the scale is a normal bf16 (exponent -126 to
// 127): E4M3 magnitudes lie in [2^-9, 448], E5M2 in [2^-16, 57344].
func mxScaledRange(t format.Type) (lo, hi byte) {
	if t == format.MXF8E5M2 {
		return 127 - 110, 127 + 112
	}
	return 127 - 117, 127 + 119
}

// mxScaledOK reports whether the kernels may apply w's E8M0 scales to the
// decoded bf16 weights exactly (fp8DotMXSAVX512): every block scale is in
// mxScaledRange and no code is NaN or infinite. Pack records it after the
// row multipliers, in w.scale[w.np].
func (w *Matrix) mxScaledOK() bool { return w.scale[w.np] == 1 }

// fpRowValues decodes packed row i of w into unscaled values (len kp) and,
// for MX, its E8M0 scale bytes (len kp/32).
func fpRowValues(w *Matrix, i int, raw []byte, vals []float32, sc []byte) {
	l := w.fpLayout()
	l.gather(w.data, i, raw)
	fpInfos[w.Type].decode(vals, raw)
	if fpInfos[w.Type].mx {
		w.mxScaleLayout().gather(w.data[w.np*w.kp:], i, sc)
	}
}

func rowFP(w *Matrix, i int, dst []float32) {
	info := fpInfos[w.Type]
	raw := make([]byte, w.fpLayout().rowBytes)
	vals := make([]float32, w.kp)
	sc := make([]byte, w.kp/32)
	fpRowValues(w, i, raw, vals, sc)
	switch {
	case info.mx:
		for k := range dst {
			if sc[k/32] == 0xFF {
				dst[k] = float32(math.NaN())
				continue
			}
			dst[k] = vals[k] * format.E8M0ToFloat32(sc[k/32])
		}
	case info.rowScale:
		s := w.scale[w.np+i]
		for k := range dst {
			dst[k] = vals[k] * s
		}
	default:
		copy(dst, vals)
	}
}

// fastBF16 reports whether w's kernels round activations to bf16.
func (w *Matrix) fastBF16() bool {
	return w.Precision == Fast && fpInfos[w.Type].fastBF16
}

// toBF16 rounds x to bfloat16 as the VDPBF16PS path sees it: to nearest even
// (format.Float32ToBF16), with subnormal inputs flushed to a signed zero
// (VDPBF16PS treats subnormal bf16 inputs as zero).
func toBF16(x float32) uint16 {
	b := math.Float32bits(x)
	if b&0x7F800000 == 0 {
		return uint16(b>>16) & 0x8000
	}
	return format.Float32ToBF16(x)
}

// flushBF16 returns the bf16 value h as VDPBF16PS reads it: subnormals
// become a signed zero.
func flushBF16(h float32) float32 {
	b := math.Float32bits(h)
	if b&0x7F800000 == 0 {
		return math.Float32frombits(b & 0x80000000)
	}
	return h
}

// prepFPGeneric copies x into s.f32 as rows of w.kp floats, zero padded,
// rounded to bf16 (toBF16) when the Fast path of the format uses bf16.
func prepFPGeneric(_ *Pool, w *Matrix, x []float32, m int, s *scratch) {
	fast := w.fastBF16()
	s.f32 = grow(s.f32, m*w.kp)
	for i := range m {
		row := s.f32[i*w.kp : (i+1)*w.kp]
		copy(row, x[i*w.K:(i+1)*w.K])
		clear(row[w.K:])
		if fast {
			for k, v := range row {
				row[k] = format.BF16ToFloat32(toBF16(v))
			}
		}
	}
}

// rowsFPGeneric is the reference kernel of the float formats. For each row
// j and activation row i it computes, in f32,
//
//	acc = Σ_k x[i][k]·v[j][k]                      (no block scale)
//	acc = Σ_b s[j][b]·(Σ_{k in block b} x[i][k]·v[j][k])   (MX)
//	y[i][j] = acc·w.scale[j]
//
// where v are the unscaled element values, s the E8M0 block scales and x
// the activations prepared by prepFPGeneric. With Fast and bf16
// activations each product x·v is exact in f32 (and so is the bf16 weight
// product, with subnormal bf16 weights flushed as VDPBF16PS does), so the
// assembly tiers differ from it only in the order of the f32 sums.
func rowsFPGeneric(w *Matrix, y, x []float32, m, n0, n1 int, s *scratch) {
	info := fpInfos[w.Type]
	xs := s.f32
	raw := make([]byte, w.fpLayout().rowBytes)
	vals := make([]float32, w.kp)
	sc := make([]byte, w.kp/32)
	bs := make([]float32, w.kp/32)
	flush := w.fastBF16() && w.Type == format.BF16
	for j := n0; j < n1; j++ {
		fpRowValues(w, j, raw, vals, sc)
		if flush {
			for k, v := range vals {
				vals[k] = flushBF16(v)
			}
		}
		for b, e := range sc {
			bs[b] = format.E8M0ToFloat32(e)
		}
		mul := w.scale[j]
		for i := range m {
			xr := xs[i*w.kp : (i+1)*w.kp]
			var acc float32
			if info.mx {
				for b := range bs {
					var p float32
					for k := b * 32; k < b*32+32; k++ {
						p += xr[k] * vals[k]
					}
					acc += p * bs[b]
				}
			} else {
				for k, v := range vals {
					acc += xr[k] * v
				}
			}
			y[i*w.N+j] = acc * mul
		}
	}
}
