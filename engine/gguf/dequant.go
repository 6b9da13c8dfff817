package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// ErrUnsupportedType is wrapped when Dequantize meets a type it cannot
// decode.
var ErrUnsupportedType = fmt.Errorf("unsupported tensor type")

// CanDequantize reports whether Dequantize decodes t.
func CanDequantize(t GGMLType) bool {
	switch t {
	case F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, MXFP4:
		return true
	}
	return false
}

// Dequantize decodes len(dst) elements of type t from src into float32, as
// ggml's dequantize_row_* functions do (the reference path). len(dst) must
// be a multiple of t's block size and len(src) exactly the bytes they take.
// Supported types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K, Q8_K and MXFP4; others (the IQ and ternary types) give an
// error wrapping ErrUnsupportedType.
func Dequantize(t GGMLType, dst []float32, src []byte) error {
	if !CanDequantize(t) {
		return fmt.Errorf("gguf: dequantize %v: %w", t, ErrUnsupportedType)
	}
	want, ok := t.RowSize(uint64(len(dst)))
	if !ok {
		return fmt.Errorf("gguf: dequantize %v: %d elements is not a multiple of the block size %d", t, len(dst), t.BlockSize())
	}
	if uint64(len(src)) != want {
		return fmt.Errorf("gguf: dequantize %v: %d bytes of input, want %d for %d elements", t, len(src), want, len(dst))
	}
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		format.DequantizeRow(format.F16, dst, src, 0)
	case BF16:
		format.DequantizeRow(format.BF16, dst, src, 0)
	case Q8_0:
		format.DequantizeRow(format.Q8_0, dst, src, 0)
	case Q4_0:
		format.DequantizeRow(format.Q4_0, dst, src, 0)
	case MXFP4:
		format.DequantizeRow(format.MXFP4, dst, src, 0)
	default:
		bs, ts := int(t.BlockSize()), int(t.TypeSize())
		dec := blockDecoders[t]
		for i := range len(dst) / bs {
			dec(dst[i*bs:(i+1)*bs], src[i*ts:(i+1)*ts])
		}
	}
	return nil
}

// Dequantize decodes the named tensor into a new float32 slice.
func (f *File) Dequantize(name string) ([]float32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: %q: %w", name, ErrTensorNotFound)
	}
	if !CanDequantize(t.Type) {
		return nil, fmt.Errorf("gguf: tensor %q has type %v: %w", name, t.Type, ErrUnsupportedType)
	}
	n := t.Elements()
	if n > math.MaxInt32*8 {
		return nil, fmt.Errorf("gguf: tensor %q: %d elements are too many to dequantize at once", name, n)
	}
	data, err := f.TensorData(name)
	if err != nil {
		return nil, err
	}
	dst := make([]float32, n)
	if err := Dequantize(t.Type, dst, data); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	return dst, nil
}

var blockDecoders = map[GGMLType]func(dst []float32, src []byte){
	Q4_1: dequantQ4_1,
	Q5_0: dequantQ5_0,
	Q5_1: dequantQ5_1,
	Q2_K: dequantQ2_K,
	Q3_K: dequantQ3_K,
	Q4_K: dequantQ4_K,
	Q5_K: dequantQ5_K,
	Q6_K: dequantQ6_K,
	Q8_K: dequantQ8_K,
}

func f16(b []byte) float32 { return format.F16ToFloat32(binary.LittleEndian.Uint16(b)) }

// dequantQ4_1: block_q4_1 {f16 d, f16 m, qs[16]}; x = q·d + m, low nibbles
// are elements 0..15, high nibbles 16..31.
func dequantQ4_1(dst []float32, src []byte) {
	d, m := f16(src), f16(src[2:])
	for j, c := range src[4:20] {
		dst[j] = float32(c&0xF)*d + m
		dst[j+16] = float32(c>>4)*d + m
	}
}

// dequantQ5_0: block_q5_0 {f16 d, qh[4], qs[16]}; bit j of qh is the fifth
// bit of element j; x = (q - 16)·d.
func dequantQ5_0(dst []float32, src []byte) {
	d := f16(src)
	qh := binary.LittleEndian.Uint32(src[2:])
	for j, c := range src[6:22] {
		h0 := uint8(qh>>j<<4) & 0x10
		h1 := uint8(qh>>(j+12)) & 0x10
		dst[j] = float32(int(c&0xF|h0)-16) * d
		dst[j+16] = float32(int(c>>4|h1)-16) * d
	}
}

// dequantQ5_1: block_q5_1 {f16 d, f16 m, qh[4], qs[16]}; x = q·d + m.
func dequantQ5_1(dst []float32, src []byte) {
	d, m := f16(src), f16(src[2:])
	qh := binary.LittleEndian.Uint32(src[4:])
	for j, c := range src[8:24] {
		h0 := uint8(qh>>j<<4) & 0x10
		h1 := uint8(qh>>(j+12)) & 0x10
		dst[j] = float32(c&0xF|h0)*d + m
		dst[j+16] = float32(c>>4|h1)*d + m
	}
}

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j from the 12
// packed bytes of a Q4_K/Q5_K block (ggml's get_scale_min_k4).
func scaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xF | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// dequantQ4_K: block_q4_K {f16 d, f16 dmin, scales[12], qs[128]}: 8
// sub-blocks of 32; each 32 bytes of qs hold two sub-blocks (low nibbles,
// then high); x = d·sc·q - dmin·m.
func dequantQ4_K(dst []float32, src []byte) {
	d, dmin := f16(src), f16(src[2:])
	scales, q := src[4:16], src[16:144]
	for j := range 4 {
		sc, m := scaleMinK4(2*j, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(2*j+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		y, qs := dst[64*j:64*j+64], q[32*j:32*j+32]
		for l, c := range qs {
			y[l] = d1*float32(c&0xF) - m1
			y[l+32] = d2*float32(c>>4) - m2
		}
	}
}

// dequantQ5_K: block_q5_K {f16 d, f16 dmin, scales[12], qh[32], qs[128]}:
// as Q4_K with a fifth bit per element from qh (bit 2j for the low-nibble
// sub-block of pair j, bit 2j+1 for the high).
func dequantQ5_K(dst []float32, src []byte) {
	d, dmin := f16(src), f16(src[2:])
	scales, qh, q := src[4:16], src[16:48], src[48:176]
	for j := range 4 {
		sc, m := scaleMinK4(2*j, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(2*j+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		u1, u2 := uint8(1)<<(2*j), uint8(2)<<(2*j)
		y, qs := dst[64*j:64*j+64], q[32*j:32*j+32]
		for l, c := range qs {
			lo, hi := c&0xF, c>>4
			if qh[l]&u1 != 0 {
				lo += 16
			}
			if qh[l]&u2 != 0 {
				hi += 16
			}
			y[l] = d1*float32(lo) - m1
			y[l+32] = d2*float32(hi) - m2
		}
	}
}

// dequantQ6_K: block_q6_K {ql[128], qh[64], int8 scales[16], f16 d}: two
// halves of 128 elements; x = d·scale·(q - 32) with 16 elements per scale.
func dequantQ6_K(dst []float32, src []byte) {
	d := f16(src[208:])
	for n := range 2 {
		ql, qh, sc := src[64*n:64*n+64], src[128+32*n:128+32*n+32], src[192+8*n:192+8*n+8]
		y := dst[128*n : 128*n+128]
		for l := range 32 {
			is := l / 16
			q1 := int(ql[l]&0xF|(qh[l]>>0&3)<<4) - 32
			q2 := int(ql[l+32]&0xF|(qh[l]>>2&3)<<4) - 32
			q3 := int(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
			q4 := int(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
			y[l] = d * float32(int8(sc[is])) * float32(q1)
			y[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			y[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			y[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
	}
}

// dequantQ2_K: block_q2_K {scales[16], qs[64], f16 d, f16 dmin}: 16
// sub-blocks of 16, each with a 4-bit scale (low nibble) and min (high);
// element 128n + 32k + l holds 2 bits at shift 2k of qs[32n + l];
// x = d·scale·q - dmin·min.
func dequantQ2_K(dst []float32, src []byte) {
	scales, qs := src[:16], src[16:80]
	d, dmin := f16(src[80:]), f16(src[82:])
	for e := range dst {
		n, k, l := e/128, e%128/32, e%32
		sc := scales[e/16]
		q := qs[32*n+l] >> (2 * k) & 3
		dst[e] = d*float32(sc&0xF)*float32(q) - dmin*float32(sc>>4)
	}
}

// dequantQ3_K: block_q3_K {hmask[32], qs[64], scales[12], f16 d}: 16
// sub-blocks of 16 with 6-bit signed scales (offset 32) packed in 12 bytes;
// element 128n + 32k + l holds its low 2 bits at shift 2k of qs[32n + l] and
// its high bit (set means no -4) at bit 4n + k of hmask[l];
// x = d·(scale-32)·(q - 4·!high).
func dequantQ3_K(dst []float32, src []byte) {
	hmask, qs, sb := src[:32], src[32:96], src[96:108]
	d := f16(src[108:])
	var scales [16]float32
	for j := range scales {
		lo := sb[j%8] >> (4 * (j / 8)) & 0xF
		hi := sb[8+j%4] >> (2 * (j / 4)) & 3
		scales[j] = d * float32(int(lo|hi<<4)-32)
	}
	for e := range dst {
		n, k, l := e/128, e%128/32, e%32
		q := int(qs[32*n+l] >> (2 * k) & 3)
		if hmask[l]&(1<<(4*n+k)) == 0 {
			q -= 4
		}
		dst[e] = scales[e/16] * float32(q)
	}
}

// dequantQ8_K: block_q8_K {float32 d, int8 qs[256], int16 bsums[16]};
// x = d·q.
func dequantQ8_K(dst []float32, src []byte) {
	d := math.Float32frombits(binary.LittleEndian.Uint32(src))
	for j, c := range src[4:260] {
		dst[j] = d * float32(int8(c))
	}
}
