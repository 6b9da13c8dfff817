package format

import (
	"encoding/binary"
	"math"
)

// Options tunes QuantizeRow.
type Options struct {
	// Search makes the MX and NVFP4 quantizers try, for each block, the
	// scale the specification gives and its neighbours (the next smaller
	// and larger E8M0 exponent for MX; the adjacent E4M3 codes for NVFP4)
	// and keep the one whose dequantized block has the smallest squared
	// error (the specification's scale wins ties). The result is never
	// worse than without Search and costs about three times as long. Other
	// types ignore it.
	Search bool
	// TensorScale is NVFP4's per-tensor float32 scale (see
	// NVFP4TensorScale); 0 means 1. Other types ignore it.
	TensorScale float32
}

// NVFP4TensorScale returns the standard NVFP4 per-tensor scale for the
// weights w: amax / (448*6), where amax is the largest finite |w|, so that
// the largest block scale fits E4M3's largest value. It returns 1 when that
// is 0 (all-zero or non-finite weights, or amax so small the quotient
// underflows), and one float32 ulp less when 2688 times it would overflow.
func NVFP4TensorScale(w []float32) float32 {
	var amax float32
	for _, v := range w {
		if a := abs32(v); a > amax && !math.IsInf(float64(a), 0) {
			amax = a
		}
	}
	s := amax / (448 * 6)
	if s == 0 {
		return 1
	}
	return roundDownToFit(s, 448*6)
}

// roundDownToFit returns s, or the next float32 towards zero if n·s would
// overflow float32, so that the largest value a row can decode to (n
// times a scale s that was rounded up from amax/n) stays finite.
func roundDownToFit(s float32, n float64) float32 {
	if float64(s)*n > math.MaxFloat32 {
		return math.Nextafter32(s, 0)
	}
	return s
}

// QuantizeRow encodes the row src into dst in format t. len(src) must be a
// multiple of t.BlockElems() and len(dst) must be t.RowBytes(len(src));
// otherwise QuantizeRow panics. Per type it computes:
//
//   - F32, F16, BF16: each value converted (Float32ToF16, Float32ToBF16).
//   - F8E4M3Row: scale = amax/448 in float32 (amax = largest finite |x|;
//     scale 1 if that is 0; one float32 ulp smaller if 448·scale would
//     overflow), codes = Float32ToE4M3(x/scale) (x/scale in float64), then
//     scale.
//   - MXF8E4M3, MXF8E5M2, MXFP4 (OCP MX v1.0, section 6.3): per block of 32,
//     shared exponent X = floor(log2(amax)) - emax_elem (emax_elem = 8, 15,
//     2), clamped to [-127, 127]; X = -127 for an all-zero block; scale
//     byte X+127; elements = element encoding of x·2^-X (exact), rounded to
//     nearest even and saturated to the element's largest finite value.
//   - NVFP4: per block of 16, scale code s = E4M3(amax / 6 / ts) with ts =
//     opt.TensorScale (0 means 1), computed in float64 and rounded once;
//     elements = E2M1(x / (decode(s)·ts)), all zero if decode(s) is 0.
//   - Q8_0: llama.cpp's quantize_row_q8_0_ref bit for bit (finite input): d = amax/127 and
//     id = 1/d (0 if d is 0) in float32, q = roundf(x·id) (half away from
//     zero), d stored as F16 (round to nearest even; as in llama.cpp, a
//     block with amax/127 >= 65520 gets d = Inf and dequantizes to ±Inf/NaN).
//   - Q4_0: llama.cpp's quantize_row_q4_0_ref bit for bit (finite input): m = the first
//     value of largest |x|, d = m/-8, id = 1/d (0 if d is 0),
//     q = min(15, trunc(x·id + 8.5)) in float32, d stored as F16 (Inf
//     when |m|/8 >= 65520, as in llama.cpp).
//
// opt.Search changes the MX and NVFP4 scale choice as described on Options.
// Non-finite inputs follow the package's bad-data rules.
func QuantizeRow(t Type, dst []byte, src []float32, opt Options) {
	checkRow(t, len(src), len(dst))
	switch t {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float32ToF16(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float32ToBF16(v))
		}
	case F8E4M3Row:
		quantizeF8Row(dst, src)
	default:
		n, nb := t.BlockElems(), t.BlockBytes()
		q := blockQuantizer{t: t, search: opt.Search, ts: opt.TensorScale}
		if q.ts == 0 {
			q.ts = 1
		}
		for i := range len(src) / n {
			q.block(dst[i*nb:(i+1)*nb], src[i*n:(i+1)*n])
		}
	}
}

// DequantizeRow decodes the row src of format t into dst. len(src) must be
// t.RowBytes(len(dst)); otherwise DequantizeRow panics. tensorScale is
// NVFP4's per-tensor scale (0 means 1) and is ignored by the other types.
// Each value is: F32/F16/BF16 the stored value; F8E4M3Row E4M3(code)·scale;
// MX E8M0(scale)·element; NVFP4 E2M1(element)·E4M3(scale)·tensorScale;
// Q8_0 d·q; Q4_0 d·(nibble-8), products in float32. Malformed scales follow
// the package's bad-data rules.
func DequantizeRow(t Type, dst []float32, src []byte, tensorScale float32) {
	checkRow(t, len(dst), len(src))
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case F8E4M3Row:
		scale := math.Float32frombits(binary.LittleEndian.Uint32(src[len(dst):]))
		for i, c := range src[:len(dst)] {
			dst[i] = E4M3Table[c] * scale
		}
	default:
		if tensorScale == 0 {
			tensorScale = 1
		}
		n, nb := t.BlockElems(), t.BlockBytes()
		for i := range len(dst) / n {
			dequantBlock(t, dst[i*n:(i+1)*n], src[i*nb:(i+1)*nb], tensorScale)
		}
	}
}

func checkRow(t Type, elems, bytes int) {
	if !t.Valid() {
		panic("format: invalid type")
	}
	if !t.RowOK(elems) {
		panic("format: row length is not a multiple of the block size")
	}
	if bytes != t.RowBytes(elems) {
		panic("format: encoded row length does not match the element count")
	}
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// absMax returns the largest |x| and whether every x is finite.
func absMax(x []float32) (float32, bool) {
	var amax float32
	for _, v := range x {
		a := abs32(v)
		if a > math.MaxFloat32 || a != a { // ±Inf or NaN
			return 0, false
		}
		amax = max(amax, a)
	}
	return amax, true
}

// floorLog2 returns floor(log2(a)) for finite a > 0, exactly.
func floorLog2(a float32) int {
	_, e := math.Frexp(float64(a))
	return e - 1
}

func quantizeF8Row(dst []byte, src []float32) {
	var amax float32
	for _, v := range src {
		if a := abs32(v); a > amax && !math.IsInf(float64(a), 0) {
			amax = a
		}
	}
	scale := roundDownToFit(amax/448, 448)
	if scale == 0 {
		scale = 1
	}
	for i, v := range src {
		dst[i] = e4m3.encode(float64(v) / float64(scale))
	}
	binary.LittleEndian.PutUint32(dst[len(src):], math.Float32bits(scale))
}

// blockQuantizer quantizes the blocks of one row of a block format.
type blockQuantizer struct {
	t      Type
	search bool
	ts     float32 // NVFP4 tensor scale, never 0
	tmp    [34]byte
	deq    [32]float32
}

// F16 code of the NaN scale written for blocks with non-finite input.
const f16NaN = 0x7E00

func (q *blockQuantizer) block(dst []byte, x []float32) {
	amax, finite := absMax(x)
	if !finite {
		clear(dst)
		switch q.t {
		case MXF8E4M3, MXF8E5M2, MXFP4:
			dst[0] = 0xFF
		case NVFP4:
			dst[0] = 0x7F
		case Q8_0, Q4_0:
			binary.LittleEndian.PutUint16(dst, f16NaN)
		}
		return
	}
	switch q.t {
	case Q8_0:
		quantizeQ8_0(dst, x, amax)
	case Q4_0:
		quantizeQ4_0(dst, x)
	case MXF8E4M3, MXF8E5M2, MXFP4:
		elem, emax := mxElem(q.t)
		X := -127
		if amax > 0 {
			X = min(max(floorLog2(amax)-emax, -127), 127)
		}
		encodeMX(q.t, dst, x, elem, X)
		if q.search && amax > 0 {
			best := q.sse(dst, x)
			for _, c := range [...]int{X - 1, X + 1} {
				if c < -127 || c > 127 {
					continue
				}
				tmp := q.tmp[:len(dst)]
				encodeMX(q.t, tmp, x, elem, c)
				if e := q.sse(tmp, x); e < best {
					best = e
					copy(dst, tmp)
				}
			}
		}
	case NVFP4:
		s := e4m3.encode(float64(amax) / 6 / float64(q.ts))
		encodeNVFP4(dst, x, s, q.ts)
		if q.search && amax > 0 {
			best := q.sse(dst, x)
			for _, c := range [...]uint8{s - 1, s + 1} {
				if c > 0x7E { // past 448, NaN, or below 0 (wrapped)
					continue
				}
				tmp := q.tmp[:len(dst)]
				encodeNVFP4(tmp, x, c, q.ts)
				if e := q.sse(tmp, x); e < best {
					best = e
					copy(dst, tmp)
				}
			}
		}
	}
}

// sse returns the squared error of the encoded block b against x.
func (q *blockQuantizer) sse(b []byte, x []float32) float64 {
	d := q.deq[:len(x)]
	dequantBlock(q.t, d, b, q.ts)
	var s float64
	for i, v := range x {
		e := float64(d[i]) - float64(v)
		s += e * e
	}
	return s
}

// mxElem returns the element format of an MX type and the exponent of its
// largest normal value (emax_elem in OCP MX v1.0).
func mxElem(t Type) (*minifloat, int) {
	switch t {
	case MXF8E4M3:
		return &e4m3, 8
	case MXF8E5M2:
		return &e5m2, 15
	}
	return &e2m1, 2
}

// encodeMX writes the MX block of x with shared exponent X.
func encodeMX(t Type, dst []byte, x []float32, elem *minifloat, X int) {
	dst[0] = uint8(X + 127)
	inv := pow2(-X) // exact: x·2^-X in float64 never rounds
	if t != MXFP4 {
		for j, v := range x {
			dst[1+j] = elem.encode(float64(v) * inv)
		}
		return
	}
	for j := range 16 {
		lo := elem.encode(float64(x[j]) * inv)
		hi := elem.encode(float64(x[j+16]) * inv)
		dst[1+j] = lo | hi<<4
	}
}

// encodeNVFP4 writes the NVFP4 block of x with E4M3 scale code s.
func encodeNVFP4(dst []byte, x []float32, s uint8, ts float32) {
	dst[0] = s
	d := float64(E4M3Table[s]) * float64(ts)
	if d == 0 {
		clear(dst[1:])
		return
	}
	for j := range 8 {
		lo := e2m1.encode(float64(x[j]) / d)
		hi := e2m1.encode(float64(x[j+8]) / d)
		dst[1+j] = lo | hi<<4
	}
}

func quantizeQ8_0(dst []byte, x []float32, amax float32) {
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, Float32ToF16(d))
	for j, v := range x {
		x0 := float32(v * id) // explicit conversion: no fused multiply-add
		// roundf; the clamp and the NaN case only matter when d is
		// subnormal and id overflows to Inf (d then stores as 0 anyway).
		r := math.Round(float64(x0))
		if r != r {
			r = 0
		}
		dst[2+j] = uint8(int8(min(max(r, -127), 127)))
	}
}

func quantizeQ4_0(dst []byte, x []float32) {
	var amax, m float32
	for _, v := range x {
		if a := abs32(v); amax < a {
			amax, m = a, v
		}
	}
	d := m / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, Float32ToF16(d))
	nib := func(v float32) uint8 {
		x0 := float32(v * id) // explicit conversions: no fused multiply-add
		y := float32(x0 + 8.5)
		// min(15, (int8_t)y); y < 0 and NaN only happen when d is
		// subnormal and id overflows to Inf (d then stores as 0 anyway).
		switch {
		case y != y:
			return 8
		case y >= 15:
			return 15
		case y < 0:
			return 0
		}
		return uint8(y)
	}
	for j := range 16 {
		dst[2+j] = nib(x[j]) | nib(x[j+16])<<4
	}
}

// dequantBlock decodes one block of a block format (not F32/F16/BF16/F8E4M3Row).
func dequantBlock(t Type, dst []float32, src []byte, ts float32) {
	switch t {
	case MXF8E4M3, MXF8E5M2, MXFP4:
		if src[0] == 0xFF {
			fillNaN(dst)
			return
		}
		s := E8M0ToFloat32(src[0])
		switch t {
		case MXF8E4M3:
			for j, c := range src[1:33] {
				dst[j] = E4M3Table[c] * s
			}
		case MXF8E5M2:
			for j, c := range src[1:33] {
				dst[j] = E5M2Table[c] * s
			}
		default:
			for j, c := range src[1:17] {
				dst[j] = E2M1Table[c&0xF] * s
				dst[j+16] = E2M1Table[c>>4] * s
			}
		}
	case NVFP4:
		if src[0]&0x80 != 0 || src[0] == 0x7F {
			fillNaN(dst)
			return
		}
		s := E4M3Table[src[0]]
		for j, c := range src[1:9] {
			dst[j] = E2M1Table[c&0xF] * s * ts
			dst[j+8] = E2M1Table[c>>4] * s * ts
		}
	case Q8_0:
		d := F16ToFloat32(binary.LittleEndian.Uint16(src))
		for j, c := range src[2:34] {
			dst[j] = float32(int8(c)) * d
		}
	case Q4_0:
		d := F16ToFloat32(binary.LittleEndian.Uint16(src))
		for j, c := range src[2:18] {
			dst[j] = float32(int(c&0xF)-8) * d
			dst[j+16] = float32(int(c>>4)-8) * d
		}
	}
}

func fillNaN(dst []float32) {
	nan := float32(math.NaN())
	for i := range dst {
		dst[i] = nan
	}
}
