package format_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

func floatsFromBytes(data []byte) []float32 {
	x := make([]float32, len(data)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return x
}

func f32Bytes(x ...float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// rowErrorBound returns the largest |x - dequantized| FuzzQuantizeRow
// accepts for the finite value v in a block (or row, for F8E4M3Row) whose
// largest |x| is amax, or -1 if the value is outside the type's range and
// not checked (F16/BF16 overflow, Q8_0/Q4_0 blocks whose F16 scale
// overflows). The bounds are deliberately loose: half the block's largest
// value for the FP4 formats, a quarter for FP8, plus a floor for scales
// clamped or rounded to zero at the bottom of their range.
func rowErrorBound(t format.Type, v, amax, ts float64) float64 {
	a := math.Abs(v)
	switch t {
	case format.F32:
		return 0
	case format.F16:
		if a >= 65504 {
			return -1
		}
		return a*0x1p-11 + 0x1p-25
	case format.BF16:
		if a >= 0x1.FEp127 {
			return -1
		}
		return a*0x1p-8 + 1e-38
	case format.F8E4M3Row:
		return a/16 + amax*1e-5 + 1e-37
	case format.MXF8E4M3, format.MXF8E5M2:
		return amax/4 + 1e-35
	case format.MXFP4:
		return amax/2 + 1e-35
	case format.NVFP4:
		return amax/2 + 0.05*ts + 1e-35
	case format.Q8_0:
		if amax/127 >= 65504 {
			return -1
		}
		return amax/100 + 127*0x1p-25
	case format.Q4_0:
		if amax/8 >= 65504 {
			return -1
		}
		return amax/8*1.01 + 8*0x1p-25
	}
	return -1
}

func FuzzQuantizeRow(f *testing.F) {
	f.Add(uint8(format.MXFP4), true, f32Bytes(1, -2, 3.5, 0, 1e-30, 6))
	f.Add(uint8(format.NVFP4), false, f32Bytes(float32(math.NaN()), 1, 2))
	f.Add(uint8(format.Q4_0), false, f32Bytes(math.MaxFloat32, -math.MaxFloat32, 1e-45))
	f.Add(uint8(format.Q8_0), true, f32Bytes(float32(math.Inf(1)), 0.5))
	f.Add(uint8(format.F8E4M3Row), false, f32Bytes(448, float32(math.Inf(-1)), 1e-40, 3))
	f.Add(uint8(format.MXF8E5M2), true, f32Bytes(65504, 1e38, -7))
	f.Fuzz(func(t *testing.T, typ uint8, search bool, data []byte) {
		tp := format.Type(typ % uint8(len(format.Types())))
		x := floatsFromBytes(data)
		// Pad to a whole number of blocks by repeating the input.
		n := tp.BlockElems()
		for len(x)%n != 0 {
			x = append(x, x[len(x)%max(1, len(data)/4)])
		}
		ts := format.NVFP4TensorScale(x)
		b := make([]byte, tp.RowBytes(len(x)))
		format.QuantizeRow(tp, b, x, format.Options{Search: search, TensorScale: ts})
		y := make([]float32, len(x))
		format.DequantizeRow(tp, y, b, ts)

		group := n
		if tp == format.F8E4M3Row {
			group = len(x)
		}
		for start := 0; start < len(x); start += max(group, 1) {
			blk := x[start:min(start+max(group, 1), len(x))]
			var amax float64
			finite := true
			for _, v := range blk {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					finite = false
				} else {
					amax = max(amax, math.Abs(float64(v)))
				}
			}
			for j, v := range blk {
				got := float64(y[start+j])
				if n > 1 && !finite { // block formats poison the whole block
					if !math.IsNaN(got) {
						t.Fatalf("%v: block with non-finite input decoded %v at %d, want NaN", tp, got, start+j)
					}
					continue
				}
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					continue
				}
				bound := rowErrorBound(tp, float64(v), amax, float64(ts))
				if bound < 0 {
					continue
				}
				if e := math.Abs(got - float64(v)); !(e <= bound) {
					t.Fatalf("%v search=%v: x[%d]=%v decoded %v, error %v > bound %v (amax %v, ts %v)",
						tp, search, start+j, v, got, e, bound, amax, ts)
				}
			}
		}
	})
}

func FuzzDequantizeRow(f *testing.F) {
	f.Add(uint8(format.MXFP4), float32(1), []byte{0xFF, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add(uint8(format.NVFP4), float32(0), []byte{0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add(uint8(format.F8E4M3Row), float32(-1), []byte{0x7F, 0x80, 0, 0, 0x80, 0x7F})
	f.Add(uint8(format.Q8_0), float32(2), make([]byte, 34))
	f.Fuzz(func(t *testing.T, typ uint8, ts float32, data []byte) {
		tp := format.Type(typ % uint8(len(format.Types())))
		var k int
		if tp == format.F8E4M3Row {
			if len(data) < 4 {
				return
			}
			k = len(data) - 4
		} else {
			k = len(data) / tp.BlockBytes() * tp.BlockElems()
			data = data[:tp.RowBytes(k)]
		}
		y := make([]float32, k)
		format.DequantizeRow(tp, y, data, ts)
		// Re-encoding what was decoded must not panic either.
		format.QuantizeRow(tp, make([]byte, tp.RowBytes(k)), y, format.Options{Search: true, TensorScale: ts})
	})
}
