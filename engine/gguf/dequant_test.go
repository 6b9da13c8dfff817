package gguf_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine/gguf"
)

// f16 encodes small exact values (powers of two times small integers) as
// IEEE half floats; it is independent of the package's decoder.
func f16(x float32) uint16 {
	if x == 0 {
		return 0
	}
	bits := math.Float32bits(x)
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23&0xFF) - 127 + 15
	mant := uint16(bits>>13) & 0x3FF
	if exp <= 0 || exp >= 31 || bits&0x1FFF != 0 {
		panic("f16: value not exactly representable as a normal half")
	}
	return sign | uint16(exp)<<10 | mant
}

func put16(b []byte, x float32) { binary.LittleEndian.PutUint16(b, f16(x)) }

func dequant(t *testing.T, typ gguf.GGMLType, n int, src []byte) []float32 {
	t.Helper()
	dst := make([]float32, n)
	require.NoError(t, gguf.Dequantize(typ, dst, src))
	return dst
}

func TestDequantizeSimple(t *testing.T) {
	t.Run("f32", func(t *testing.T) {
		src := binary.LittleEndian.AppendUint32(nil, math.Float32bits(-2.5))
		assert.Equal(t, []float32{-2.5}, dequant(t, gguf.F32, 1, src))
	})
	t.Run("f16", func(t *testing.T) {
		assert.Equal(t, []float32{1, -0.5}, dequant(t, gguf.F16, 2, []byte{0x00, 0x3C, 0x00, 0xB8}))
	})
	t.Run("bf16", func(t *testing.T) {
		assert.Equal(t, []float32{1, -3}, dequant(t, gguf.BF16, 2, []byte{0x80, 0x3F, 0x40, 0xC0}))
	})
	t.Run("q8_0", func(t *testing.T) {
		src := make([]byte, 34)
		put16(src, 0.5)
		for j := range 32 {
			src[2+j] = byte(int8(j - 16))
		}
		got := dequant(t, gguf.Q8_0, 32, src)
		for j := range 32 {
			assert.Equal(t, float32(j-16)*0.5, got[j])
		}
	})
	t.Run("q4_0", func(t *testing.T) {
		src := make([]byte, 18)
		put16(src, 2)
		src[2] = 0x3A // element 0 nibble 10, element 16 nibble 3
		got := dequant(t, gguf.Q4_0, 32, src)
		assert.Equal(t, float32(4), got[0])
		assert.Equal(t, float32(-10), got[16])
		assert.Equal(t, float32(-16), got[1]) // nibble 0
	})
	t.Run("q4_1", func(t *testing.T) {
		src := make([]byte, 20)
		put16(src, 0.25)
		put16(src[2:], -1)
		src[4+5] = 0xF1 // element 5 nibble 1, element 21 nibble 15
		got := dequant(t, gguf.Q4_1, 32, src)
		assert.Equal(t, float32(-0.75), got[5])
		assert.Equal(t, float32(2.75), got[21])
		assert.Equal(t, float32(-1), got[0])
	})
	t.Run("q5_0", func(t *testing.T) {
		src := make([]byte, 22)
		put16(src, 1)
		// fifth bits: element 3 (bit 3) and element 16+7 (bit 23).
		binary.LittleEndian.PutUint32(src[2:], 1<<3|1<<23)
		src[6+3] = 0x02 // element 3 low nibble 2, element 19 high nibble 0
		src[6+7] = 0x50 // element 7 nibble 0, element 23 nibble 5
		got := dequant(t, gguf.Q5_0, 32, src)
		assert.Equal(t, float32(2+16-16), got[3])
		assert.Equal(t, float32(0-16), got[19])
		assert.Equal(t, float32(-16), got[7])
		assert.Equal(t, float32(5+16-16), got[23])
	})
	t.Run("q5_1", func(t *testing.T) {
		src := make([]byte, 24)
		put16(src, 0.5)
		put16(src[2:], 3)
		binary.LittleEndian.PutUint32(src[4:], 1<<31) // element 31
		src[8+15] = 0x9F                              // element 15 nibble 15, element 31 nibble 9
		got := dequant(t, gguf.Q5_1, 32, src)
		assert.Equal(t, float32(15*0.5+3), got[15])
		assert.Equal(t, float32(25*0.5+3), got[31])
	})
	t.Run("mxfp4", func(t *testing.T) {
		src := make([]byte, 17)
		src[0] = 128             // scale 2
		src[1] = 0x7 | 0xF<<4    // element 0 = 6, element 16 = -6
		src[1+15] = 0x2 | 0x9<<4 // element 15 = 1, element 31 = -0.5
		got := dequant(t, gguf.MXFP4, 32, src)
		assert.Equal(t, float32(12), got[0])
		assert.Equal(t, float32(-12), got[16])
		assert.Equal(t, float32(2), got[15])
		assert.Equal(t, float32(-1), got[31])
	})
}

// kBlock is a K-quant block described by its integer parts.
type kBlock struct {
	d, dmin float32
	sc, m   []uint8 // per sub-block (6-bit for Q4_K/Q5_K)
	q       []int   // per element
}

func randKBlock(r *rand.Rand, sub int, qmax int) kBlock {
	b := kBlock{d: 0.125 * float32(1+r.IntN(8)), dmin: 0.0625 * float32(r.IntN(8)), sc: make([]uint8, sub), m: make([]uint8, sub), q: make([]int, 256)}
	for i := range sub {
		b.sc[i], b.m[i] = uint8(r.IntN(64)), uint8(r.IntN(64))
	}
	for i := range b.q {
		b.q[i] = r.IntN(qmax)
	}
	return b
}

// packScalesK packs 8 six-bit scales and mins as ggml's quantize_row_q4_K
// does.
func packScalesK(b kBlock) []byte {
	s := make([]byte, 12)
	for j := range 4 {
		s[j] = b.sc[j] | (b.sc[j+4]>>4)<<6
		s[j+4] = b.m[j] | (b.m[j+4]>>4)<<6
		s[j+8] = b.sc[j+4]&0xF | (b.m[j+4]&0xF)<<4
	}
	return s
}

// encodeQ4K lays a block out as block_q4_K: element e of group g = e/64 is
// the low nibble of qs[32g + e%32] if e%64 < 32 (sub-block 2g), else the high
// nibble (sub-block 2g+1).
func encodeQ4K(b kBlock) []byte {
	out := make([]byte, 144)
	put16(out, b.d)
	put16(out[2:], b.dmin)
	copy(out[4:], packScalesK(b))
	for e, q := range b.q {
		g, r := e/64, e%64
		if r < 32 {
			out[16+32*g+r] |= byte(q)
		} else {
			out[16+32*g+r-32] |= byte(q) << 4
		}
	}
	return out
}

// encodeQ5K: as Q4_K plus the fifth bit of element e in qh[e%32], bit
// 2g (low sub-block) or 2g+1 (high).
func encodeQ5K(b kBlock) []byte {
	out := make([]byte, 176)
	put16(out, b.d)
	put16(out[2:], b.dmin)
	copy(out[4:], packScalesK(b))
	for e, q := range b.q {
		g, r := e/64, e%64
		lo := byte(q & 0xF)
		if r < 32 {
			out[48+32*g+r] |= lo
		} else {
			out[48+32*g+r-32] |= lo << 4
		}
		if q >= 16 {
			bit := 2 * g
			if r >= 32 {
				bit++
			}
			out[16+r%32] |= 1 << bit
		}
	}
	return out
}

func TestDequantizeK(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		typ    gguf.GGMLType
		qmax   int
		encode func(kBlock) []byte
	}{
		{gguf.Q4_K, 16, encodeQ4K},
		{gguf.Q5_K, 32, encodeQ5K},
	} {
		t.Run(c.typ.String(), func(t *testing.T) {
			var src []byte
			var want []float32
			for range 3 {
				b := randKBlock(r, 8, c.qmax)
				src = append(src, c.encode(b)...)
				for e, q := range b.q {
					s := e / 32
					want = append(want, b.d*float32(b.sc[s])*float32(q)-b.dmin*float32(b.m[s]))
				}
			}
			got := dequant(t, c.typ, len(want), src)
			assert.InDeltaSlice(t, want, got, 1e-4)
		})
	}
	t.Run("q6_K", func(t *testing.T) {
		var src []byte
		var want []float32
		for range 3 {
			d := 0.25 * float32(1+r.IntN(4))
			sc := make([]int8, 16)
			for i := range sc {
				sc[i] = int8(r.IntN(256) - 128)
			}
			q := make([]int, 256)
			for i := range q {
				q[i] = r.IntN(64) - 32
			}
			// block_q6_K {ql[128], qh[64], scales[16], d}: element
			// e = 128n + 32k + l keeps its low 4 bits in ql[64n + l + 32(k%2)]
			// (low nibble for k < 2, high for k >= 2) and its top 2 bits in
			// qh[32n + l] at bit 2k; scale e/16.
			blk := make([]byte, 210)
			for e, v := range q {
				u := byte(v + 32)
				n, k, l := e/128, e%128/32, e%32
				i := 64*n + l + 32*(k%2)
				if k < 2 {
					blk[i] |= u & 0xF
				} else {
					blk[i] |= (u & 0xF) << 4
				}
				blk[128+32*n+l] |= (u >> 4) << (2 * k)
				want = append(want, d*float32(sc[e/16])*float32(v))
			}
			for i, s := range sc {
				blk[192+i] = byte(s)
			}
			put16(blk[208:], d)
			src = append(src, blk...)
		}
		got := dequant(t, gguf.Q6_K, len(want), src)
		assert.InDeltaSlice(t, want, got, 1e-4)
	})
}

func TestDequantizeErrors(t *testing.T) {
	err := gguf.Dequantize(gguf.IQ2_XXS, make([]float32, 256), make([]byte, 66))
	assert.ErrorIs(t, err, gguf.ErrUnsupportedType)
	assert.ErrorContains(t, err, "iq2_xxs")
	assert.ErrorContains(t, gguf.Dequantize(gguf.Q8_0, make([]float32, 16), make([]byte, 17)), "not a multiple of the block size 32")
	assert.ErrorContains(t, gguf.Dequantize(gguf.Q8_0, make([]float32, 32), make([]byte, 33)), "33 bytes of input, want 34")

	f, err := gguf.ParseBytes(build(t, nil, []tensor{
		{"blk.0.ffn_down.weight", gguf.IQ2_XXS, []uint64{256}, make([]byte, 66)},
		{"ok", gguf.Q8_0, []uint64{32}, append([]byte{0x00, 0x3C, 5}, make([]byte, 31)...)},
	}))
	require.NoError(t, err)
	_, err = f.Dequantize("blk.0.ffn_down.weight")
	assert.ErrorContains(t, err, `tensor "blk.0.ffn_down.weight" has type iq2_xxs`)
	_, err = f.Dequantize("missing")
	assert.ErrorIs(t, err, gguf.ErrTensorNotFound)
	got, err := f.Dequantize("ok")
	require.NoError(t, err)
	assert.Equal(t, float32(5), got[0])
}

// TestDequantizeK2K3K8 encodes blocks as ggml's quantize_row_q2_K_ref and
// quantize_row_q3_K_ref pack them and checks every element.
func TestDequantizeK2K3K8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	t.Run("q2_K", func(t *testing.T) {
		var src []byte
		var want []float32
		for range 2 {
			blk := make([]byte, 84)
			d, dmin := 0.5*float32(1+r.IntN(4)), 0.25*float32(r.IntN(4))
			var sc, mn [16]uint8
			for j := range 16 {
				sc[j], mn[j] = uint8(r.IntN(16)), uint8(r.IntN(16))
				blk[j] = sc[j] | mn[j]<<4
			}
			L := make([]uint8, 256)
			for e := range L {
				L[e] = uint8(r.IntN(4))
				want = append(want, d*float32(sc[e/16])*float32(L[e])-dmin*float32(mn[e/16]))
			}
			for j := 0; j < 256; j += 128 {
				for l := range 32 {
					blk[16+j/4+l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6
				}
			}
			put16(blk[80:], d)
			put16(blk[82:], dmin)
			src = append(src, blk...)
		}
		assert.InDeltaSlice(t, want, dequant(t, gguf.Q2_K, len(want), src), 1e-5)
	})
	t.Run("q3_K", func(t *testing.T) {
		var src []byte
		var want []float32
		for range 2 {
			blk := make([]byte, 110)
			d := 0.125 * float32(1+r.IntN(8))
			scales := blk[96:108]
			var ls [16]int
			for j := range 16 {
				ls[j] = r.IntN(64) // stored scale, value ls-32
				l := uint8(ls[j])
				if j < 8 {
					scales[j] = l & 0xF
				} else {
					scales[j-8] |= (l & 0xF) << 4
				}
				scales[j%4+8] |= (l >> 4) << (2 * (j / 4))
			}
			L := make([]uint8, 256)
			for e := range L {
				L[e] = uint8(r.IntN(8)) // value L-4
				want = append(want, d*float32(ls[e/16]-32)*float32(int(L[e])-4))
			}
			// High bit of element j into bit j/32 of hmask[j%32].
			for j := range L {
				if L[j] > 3 {
					blk[j%32] |= 1 << (j / 32)
					L[j] -= 4
				}
			}
			for j := 0; j < 256; j += 128 {
				for l := range 32 {
					blk[32+j/4+l] = L[j+l] | L[j+l+32]<<2 | L[j+l+64]<<4 | L[j+l+96]<<6
				}
			}
			put16(blk[108:], d)
			src = append(src, blk...)
		}
		assert.InDeltaSlice(t, want, dequant(t, gguf.Q3_K, len(want), src), 1e-5)
	})
	t.Run("q8_K", func(t *testing.T) {
		blk := make([]byte, 292)
		binary.LittleEndian.PutUint32(blk, math.Float32bits(0.75))
		var want []float32
		for j := range 256 {
			q := int8(r.IntN(256) - 128)
			blk[4+j] = byte(q)
			want = append(want, 0.75*float32(q))
		}
		assert.Equal(t, want, dequant(t, gguf.Q8_K, 256, blk))
	})
}
