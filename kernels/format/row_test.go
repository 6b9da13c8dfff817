package format_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

var blockTypes = []format.Type{format.MXF8E4M3, format.MXF8E5M2, format.MXFP4, format.NVFP4, format.Q8_0, format.Q4_0}

func quant(t format.Type, x []float32, opt format.Options) []byte {
	b := make([]byte, t.RowBytes(len(x)))
	format.QuantizeRow(t, b, x, opt)
	return b
}

func dequant(t format.Type, b []byte, k int, ts float32) []float32 {
	y := make([]float32, k)
	format.DequantizeRow(t, y, b, ts)
	return y
}

func TestRowLengthMismatchPanics(t *testing.T) {
	tests := []struct {
		name    string
		t       format.Type
		elems   int
		bytes   int
		message string
	}{
		{"q8_0 partial block", format.Q8_0, 31, 34, "format: row length is not a multiple of the block size"},
		{"mxfp4 short dst", format.MXFP4, 32, 16, "format: encoded row length does not match the element count"},
		{"fp8 row without scale", format.F8E4M3Row, 8, 8, "format: encoded row length does not match the element count"},
		{"f32 long dst", format.F32, 2, 9, "format: encoded row length does not match the element count"},
		{"invalid type", format.Type(200), 32, 34, "format: invalid type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.PanicsWithValue(t, tt.message, func() {
				format.QuantizeRow(tt.t, make([]byte, tt.bytes), make([]float32, tt.elems), format.Options{})
			})
			assert.PanicsWithValue(t, tt.message, func() {
				format.DequantizeRow(tt.t, make([]float32, tt.elems), make([]byte, tt.bytes), 1)
			})
		})
	}
}

func TestScalarRowTypes(t *testing.T) {
	x := []float32{0, 1, -2.5, 1e-3, 65504, 70000, float32(math.Inf(-1)), 3.14159265, 1e-8}
	got := dequant(format.F32, quant(format.F32, x, format.Options{}), len(x), 0)
	assert.Equal(t, x, got)
	b := quant(format.F16, x, format.Options{})
	b2 := quant(format.BF16, x, format.Options{})
	for i, v := range x {
		assert.Equal(t, format.Float32ToF16(v), binary.LittleEndian.Uint16(b[2*i:]), "f16 %v", v)
		assert.Equal(t, format.Float32ToBF16(v), binary.LittleEndian.Uint16(b2[2*i:]), "bf16 %v", v)
	}
	assert.Equal(t, format.F16ToFloat32(format.Float32ToF16(3.14159265)), dequant(format.F16, b, len(x), 0)[7])
	assert.Equal(t, format.BF16ToFloat32(format.Float32ToBF16(3.14159265)), dequant(format.BF16, b2, len(x), 0)[7])
}

// quantum returns the spacing of a minifloat with mbits mantissa bits and
// smallest normal exponent emin around |v|.
func quantum(v float64, mbits, emin int) float64 {
	e := emin
	if v != 0 {
		e = max(int(math.Floor(math.Log2(math.Abs(v)))), emin)
	}
	return math.Ldexp(1, e-mbits)
}

type mxInfo struct {
	t           format.Type
	emax, mbits int
	emin        int
	max         float64
}

var mxInfos = []mxInfo{
	{format.MXF8E4M3, 8, 3, -6, 448},
	{format.MXF8E5M2, 15, 2, -14, 57344},
	{format.MXFP4, 2, 1, 0, 6},
}

func randBlock(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	mag := math.Ldexp(1, r.IntN(40)-20)
	for i := range x {
		x[i] = float32(r.NormFloat64() * mag)
	}
	return x
}

// TestMXScaleAndError checks the OCP MX shared exponent and that every
// element not beyond the element format's range is within half an element
// ulp (times the scale) of its input.
func TestMXScaleAndError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range mxInfos {
		t.Run(m.t.String(), func(t *testing.T) {
			for range 200 {
				x := randBlock(r, 64)
				b := quant(m.t, x, format.Options{})
				y := dequant(m.t, b, len(x), 0)
				for blk := range 2 {
					xs := x[blk*32 : blk*32+32]
					var amax float64
					for _, v := range xs {
						amax = max(amax, math.Abs(float64(v)))
					}
					X := int(math.Floor(math.Log2(amax))) - m.emax
					require.Equal(t, uint8(X+127), b[blk*m.t.BlockBytes()], "scale of block with amax %v", amax)
					for j, v := range xs {
						s := float64(v) / math.Ldexp(1, X)
						got := float64(y[blk*32+j])
						if math.Abs(s) > m.max {
							assert.Equal(t, math.Copysign(m.max, s)*math.Ldexp(1, X), got, "saturates")
							continue
						}
						tol := quantum(s, m.mbits, m.emin) / 2 * math.Ldexp(1, X)
						assert.LessOrEqual(t, math.Abs(got-float64(v)), tol, "x=%v got %v", v, got)
					}
				}
			}
		})
	}
}

func TestMXKnownScales(t *testing.T) {
	tests := []struct {
		name  string
		t     format.Type
		amax  float32
		scale uint8
	}{
		{"fp4 6", format.MXFP4, 6, 127},
		{"fp4 7.9 saturates", format.MXFP4, 7.9, 127},
		{"fp4 8", format.MXFP4, 8, 128},
		{"fp4 1", format.MXFP4, 1, 125},
		{"e4m3 448", format.MXF8E4M3, 448, 127},
		{"e4m3 1", format.MXF8E4M3, 1, 119},
		{"e5m2 1", format.MXF8E5M2, 1, 112},
		{"fp4 max float32", format.MXFP4, math.MaxFloat32, 252},
		{"e4m3 tiny clamps to 2^-127", format.MXF8E4M3, 1e-45, 0},
		{"all zero", format.MXFP4, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := make([]float32, 32)
			x[5] = -tt.amax
			x[9] = tt.amax / 3
			b := quant(tt.t, x, format.Options{})
			assert.Equal(t, tt.scale, b[0])
			y := dequant(tt.t, b, 32, 0)
			for j := range x {
				if x[j] == 0 {
					assert.Zero(t, y[j])
				}
			}
		})
	}
}

// TestMXFP4Layout checks the nibble order: element j < 16 is the low nibble
// of byte j, element j >= 16 the high nibble of byte j-16.
func TestMXFP4Layout(t *testing.T) {
	x := make([]float32, 32)
	x[0], x[1], x[16], x[31] = 1, -0.5, 6, -3 // scale 2^0: codes 2, 9, 7, 13
	b := quant(format.MXFP4, x, format.Options{})
	assert.Equal(t, uint8(127), b[0])
	assert.Equal(t, uint8(0x72), b[1])
	assert.Equal(t, uint8(0x09), b[2])
	assert.Equal(t, uint8(0xD0), b[16])
}

func TestNVFP4(t *testing.T) {
	tests := []struct {
		name  string
		amax  float32
		ts    float32
		scale uint8
	}{
		{"unit", 6, 1, 0x38},            // 6/6/1 = 1
		{"tensor scale", 12, 0.5, 0x48}, // 12/6/0.5 = 4
		{"zero tensor scale is 1", 6, 0, 0x38},
		{"saturates", 6 * 448 * 2, 1, 0x7E},
		{"rounds to nearest even", 6 * 1.0625, 1, 0x38}, // 1.0625 ties between 1 and 1.125
		{"all zero", 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := make([]float32, 16)
			x[3] = tt.amax
			x[8] = -tt.amax / 2
			b := quant(format.NVFP4, x, format.Options{TensorScale: tt.ts})
			assert.Equal(t, tt.scale, b[0])
			y := dequant(format.NVFP4, b, 16, tt.ts)
			s := float64(format.E4M3ToFloat32(tt.scale))
			ts := float64(tt.ts)
			if ts == 0 {
				ts = 1
			}
			for j, v := range x {
				want := float64(format.E2M1ToFloat32(format.Float32ToE2M1(float32(float64(v)/(s*ts))))) * s * ts
				if s == 0 {
					want = 0
				}
				assert.InDelta(t, want, float64(y[j]), math.Abs(want)*1e-6, "element %d", j)
			}
			// Layout: element 3 is the low nibble of byte 3, element 8 the high nibble of byte 0.
			assert.Equal(t, format.Float32ToE2M1(float32(float64(x[3])/(s*ts))), b[1+3]&0xF)
			if s != 0 {
				assert.Equal(t, format.Float32ToE2M1(float32(float64(x[8])/(s*ts))), b[1]>>4)
			}
		})
	}
	assert.Equal(t, float32(1), format.NVFP4TensorScale([]float32{2688, -1, float32(math.Inf(1)), float32(math.NaN())}))
	assert.Equal(t, float32(1), format.NVFP4TensorScale(make([]float32, 8)))
	assert.Equal(t, float32(0.5), format.NVFP4TensorScale([]float32{-1344}))
	s := format.NVFP4TensorScale([]float32{math.MaxFloat32})
	assert.LessOrEqual(t, float64(s)*2688, float64(math.MaxFloat32))
}

// TestNVFP4Error checks every element against half an E2M1 step at its
// scaled value, times the block scale and tensor scale, on random rows.
func TestNVFP4Error(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 100 {
		x := randBlock(r, 64)
		ts := format.NVFP4TensorScale(x)
		b := quant(format.NVFP4, x, format.Options{TensorScale: ts})
		y := dequant(format.NVFP4, b, len(x), ts)
		for blk := range 4 {
			xs := x[blk*16 : blk*16+16]
			var amax float64
			for _, v := range xs {
				amax = max(amax, math.Abs(float64(v)))
			}
			sc := b[blk*9]
			require.Equal(t, format.Float32ToE4M3(float32(amax/6/float64(ts))), sc, "block scale")
			d := float64(format.E4M3ToFloat32(sc)) * float64(ts)
			for j, v := range xs {
				got := float64(y[blk*16+j])
				s := float64(v) / d
				if math.Abs(s) > 6 {
					assert.InDelta(t, math.Copysign(6, s)*d, got, 6*d*1e-6, "saturates")
					continue
				}
				tol := quantum(s, 1, 0)/2*d*(1+1e-6) + 1e-6*math.Abs(float64(v))
				assert.LessOrEqual(t, math.Abs(got-float64(v)), tol, "x=%v got %v", v, got)
			}
		}
	}
}

func TestQ8_0HandChecked(t *testing.T) {
	x := make([]float32, 32)
	copy(x, []float32{127, -63.5, 1.4, 0.5, -0.5, 2.5})
	b := quant(format.Q8_0, x, format.Options{})
	// amax 127: d = 1 (F16 0x3C00), id = 1, roundf rounds halves away from zero.
	want := []byte{0x00, 0x3C, 127, 0xC0 /* -64 */, 1, 1, 0xFF /* -1 */, 3}
	assert.Equal(t, want, b[:len(want)])
	assert.Equal(t, make([]byte, 34-len(want)), b[len(want):])
	y := dequant(format.Q8_0, b, 32, 0)
	assert.Equal(t, []float32{127, -64, 1, 1, -1, 3}, y[:6])

	// amax 1: d = 1/127 = 0.0078740157 rounds to F16 2^-7·(1+8/1024) = 0x2008,
	// while q uses the float32 id = float32(1/float32(1/127)) = 127 exactly.
	x = make([]float32, 32)
	x[0], x[1] = 1, -0.5
	b = quant(format.Q8_0, x, format.Options{})
	assert.Equal(t, []byte{0x08, 0x20, 127, 0xC0 /* -64: -63.5 rounds away from zero */}, b[:4])
	assert.Equal(t, float32(127*(1+8.0/1024)/128), dequant(format.Q8_0, b, 32, 0)[0])
}

func TestQ4_0HandChecked(t *testing.T) {
	x := make([]float32, 32)
	copy(x, []float32{-8, 4, 3.5, 2.6, 8, -0.5})
	x[16], x[17] = 7.4, -7.6
	b := quant(format.Q4_0, x, format.Options{})
	// m = -8 (first of largest |x|), d = 1, q = min(15, trunc(x + 8.5)).
	assert.Equal(t, []byte{0x00, 0x3C}, b[:2])
	// Low nibbles (elements 0..5): 0, 12, 12, 11, 15, 8; high nibbles: element
	// 16 -> 15, element 17 -> 0, the rest (zeros) -> 8.
	assert.Equal(t, []byte{0xF0, 0x0C, 0x8C, 0x8B, 0x8F, 0x88, 0x88}, b[2:9])
	y := dequant(format.Q4_0, b, 32, 0)
	assert.Equal(t, []float32{-8, 4, 4, 3, 7, 0}, y[:6])
	assert.Equal(t, []float32{7, -8}, y[16:18])

	// The first value of largest magnitude picks the sign of d.
	x = make([]float32, 32)
	x[0], x[1] = 4, -4
	b = quant(format.Q4_0, x, format.Options{})
	assert.Equal(t, format.Float32ToF16(-0.5), binary.LittleEndian.Uint16(b))
	assert.Equal(t, []float32{4, -3.5}, dequant(format.Q4_0, b, 32, 0)[:2])
	x[0], x[1] = -4, 4
	b = quant(format.Q4_0, x, format.Options{})
	assert.Equal(t, format.Float32ToF16(0.5), binary.LittleEndian.Uint16(b))
	assert.Equal(t, []float32{-4, 3.5}, dequant(format.Q4_0, b, 32, 0)[:2])
}

// TestQ8AndQ4ErrorBound checks |x - deq| against the F16-rounded scale on
// random rows: half a step for Q8_0; half a step for Q4_0, one step for
// the clipped side (x·id > 7.5).
func TestQ8AndQ4ErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		x := make([]float32, 32)
		mag := math.Ldexp(1, r.IntN(30)-20) // keep d inside the F16 range
		for i := range x {
			x[i] = float32(r.NormFloat64() * mag)
		}
		for _, typ := range []format.Type{format.Q8_0, format.Q4_0} {
			b := quant(typ, x, format.Options{})
			y := dequant(typ, b, 32, 0)
			d16 := float64(format.F16ToFloat32(binary.LittleEndian.Uint16(b)))
			var amax, m float64
			for _, v := range x {
				if a := math.Abs(float64(v)); a > amax {
					amax, m = a, float64(v)
				}
			}
			d32, steps := amax/127, 127.0
			if typ == format.Q4_0 {
				d32, steps = -m/8, 8
			}
			for j, v := range x {
				tol := math.Abs(d32)/2 + steps*math.Abs(d16-d32) + 1e-6*math.Abs(float64(v))
				if typ == format.Q4_0 && float64(v)/d32 > 7.5 {
					tol += math.Abs(d32) / 2
				}
				assert.LessOrEqual(t, math.Abs(float64(y[j])-float64(v)), tol, "%v x=%v", typ, v)
			}
		}
	}
}

func TestF8E4M3Row(t *testing.T) {
	x := []float32{896, -1, 0.01, 3, float32(math.NaN()), float32(math.Inf(-1)), 0, 2}
	b := quant(format.F8E4M3Row, x, format.Options{})
	scale := math.Float32frombits(binary.LittleEndian.Uint32(b[len(x):]))
	assert.Equal(t, float32(2), scale, "amax 896 over finite values / 448")
	y := dequant(format.F8E4M3Row, b, len(x), 0)
	assert.Equal(t, float32(896), y[0])
	assert.Equal(t, float32(-1), y[1])
	assert.InDelta(t, 0.01, y[2], 2*0x1p-10, "0.005 is subnormal in E4M3: half a step of 2^-9, times scale 2")
	assert.True(t, math.IsNaN(float64(y[4])), "NaN stays NaN")
	assert.Equal(t, float32(-896), y[5], "-Inf saturates to -448·scale")
	assert.Equal(t, float32(0), y[6])

	z := quant(format.F8E4M3Row, make([]float32, 4), format.Options{})
	assert.Equal(t, float32(1), math.Float32frombits(binary.LittleEndian.Uint32(z[4:])), "all-zero row has scale 1")

	r := rand.New(rand.NewPCG(5, 6))
	for range 50 {
		x := randBlock(r, 64)
		b := quant(format.F8E4M3Row, x, format.Options{})
		scale := float64(math.Float32frombits(binary.LittleEndian.Uint32(b[64:])))
		y := dequant(format.F8E4M3Row, b, 64, 0)
		for j, v := range x {
			s := float64(v) / scale
			tol := quantum(s, 3, -6)/2*scale*(1+1e-6) + 1e-6*math.Abs(float64(v))
			assert.LessOrEqual(t, math.Abs(float64(y[j])-float64(v)), tol)
		}
	}
}

func TestAllZeroBlocks(t *testing.T) {
	for _, typ := range format.Types() {
		t.Run(typ.String(), func(t *testing.T) {
			const k = 64 // two blocks of 32, four of 16, 64 scalars
			y := dequant(typ, quant(typ, make([]float32, k), format.Options{Search: true}), k, 0)
			assert.Equal(t, make([]float32, k), y)
		})
	}
}

// TestNonFiniteBlocks checks that a NaN or Inf poisons exactly its own block.
func TestNonFiniteBlocks(t *testing.T) {
	for _, typ := range blockTypes {
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			t.Run(typ.String(), func(t *testing.T) {
				n := typ.BlockElems()
				x := make([]float32, 2*n)
				for i := range x {
					x[i] = float32(i%7) - 3
				}
				x[n+1] = bad
				y := dequant(typ, quant(typ, x, format.Options{Search: true}), len(x), 0)
				for i := range n {
					assert.False(t, math.IsNaN(float64(y[i])), "first block intact")
					assert.True(t, math.IsNaN(float64(y[n+i])), "second block is NaN")
				}
			})
		}
	}
}

func TestMalformedScales(t *testing.T) {
	tests := []struct {
		name  string
		t     format.Type
		scale []byte
		nan   bool
	}{
		{"mx e8m0 0xff", format.MXF8E4M3, []byte{0xFF}, true},
		{"mxfp4 e8m0 0xff", format.MXFP4, []byte{0xFF}, true},
		{"mx e8m0 0xfe", format.MXF8E5M2, []byte{0xFE}, false},
		{"nvfp4 nan", format.NVFP4, []byte{0x7F}, true},
		{"nvfp4 negative nan", format.NVFP4, []byte{0xFF}, true},
		{"nvfp4 negative", format.NVFP4, []byte{0xB8}, true},
		{"nvfp4 negative zero", format.NVFP4, []byte{0x80}, true},
		{"nvfp4 max", format.NVFP4, []byte{0x7E}, false},
		{"q8_0 nan d", format.Q8_0, []byte{0x00, 0x7E}, true},
		{"q4_0 nan d", format.Q4_0, []byte{0x01, 0xFE}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := make([]byte, tt.t.BlockBytes())
			for i := len(tt.scale); i < len(b); i++ {
				b[i] = 0x11 // small nonzero elements
			}
			copy(b, tt.scale)
			y := dequant(tt.t, b, tt.t.BlockElems(), 1)
			for _, v := range y {
				assert.Equal(t, tt.nan, math.IsNaN(float64(v)), "%v", v)
			}
		})
	}
	// A NaN scale in an F8E4M3Row row makes every element NaN.
	b := []byte{0x38, 0x38, 0, 0, 0xC0, 0x7F}
	for _, v := range dequant(format.F8E4M3Row, b, 2, 0) {
		assert.True(t, math.IsNaN(float64(v)))
	}
}

// TestSearchNeverWorse compares per-block squared error with and without
// Search on random blocks, and checks that Search does pick a different
// scale sometimes (MXFP4 and NVFP4 on Gaussian data).
func TestSearchNeverWorse(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, typ := range []format.Type{format.MXF8E4M3, format.MXF8E5M2, format.MXFP4, format.NVFP4} {
		t.Run(typ.String(), func(t *testing.T) {
			n := typ.BlockElems()
			var total, totalSearch float64
			for range 300 {
				x := randBlock(r, n)
				ts := format.NVFP4TensorScale(x) * float32(1+r.IntN(8))
				plain := dequant(typ, quant(typ, x, format.Options{TensorScale: ts}), n, ts)
				searched := dequant(typ, quant(typ, x, format.Options{Search: true, TensorScale: ts}), n, ts)
				e, es := sse(x, plain), sse(x, searched)
				assert.LessOrEqual(t, es, e)
				total += e
				totalSearch += es
			}
			if typ == format.MXFP4 || typ == format.NVFP4 {
				assert.Less(t, totalSearch, total, "search should help somewhere")
			}
		})
	}
}

func sse(x, y []float32) float64 {
	var s float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		s += d * d
	}
	return s
}

func TestTypeText(t *testing.T) {
	for _, typ := range format.Types() {
		b, err := typ.MarshalText()
		require.NoError(t, err)
		var back format.Type
		require.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, typ, back)
	}
	_, err := format.Type(99).MarshalText()
	assert.Error(t, err)
	var bad format.Type
	assert.Error(t, bad.UnmarshalText([]byte("fp3")))
}
