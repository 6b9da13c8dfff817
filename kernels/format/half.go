package format

import "math"

// BF16ToFloat32 returns the value of the bfloat16 h (exact: h is the top
// half of a binary32).
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 rounds x to bfloat16, to nearest with ties to even (IEEE):
// finite values that round past the largest finite bfloat16 become ±Inf.
// NaN stays NaN (quieted, sign and top payload bits kept).
func Float32ToBF16(x float32) uint16 {
	b := math.Float32bits(x)
	if b&0x7FFFFFFF > 0x7F800000 { // NaN: truncate and set the quiet bit
		return uint16(b>>16) | 0x0040
	}
	b += 0x7FFF + (b>>16)&1
	return uint16(b >> 16)
}

// F16ToFloat32 returns the value of the IEEE binary16 h (exact).
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	e := uint32(h>>10) & 0x1F
	m := uint32(h & 0x3FF)
	switch e {
	case 0: // zero or subnormal: m * 2^-24
		return math.Float32frombits(sign | math.Float32bits(float32(m)*(1.0/(1<<24))))
	case 0x1F:
		return math.Float32frombits(sign | 0x7F800000 | m<<13)
	}
	return math.Float32frombits(sign | (e+112)<<23 | m<<13)
}

// Float32ToF16 rounds x to IEEE binary16, to nearest with ties to even:
// magnitudes from 65520 up become ±Inf, subnormals are rounded exactly, and
// NaN stays NaN (quieted, sign and top payload bits kept). This matches the
// F16C VCVTPS2PH instruction and ggml's GGML_FP32_TO_FP16.
func Float32ToF16(x float32) uint16 {
	b := math.Float32bits(x)
	sign := uint16(b>>16) & 0x8000
	a := b & 0x7FFFFFFF
	switch {
	case a > 0x7F800000: // NaN
		return sign | 0x7E00 | uint16(a>>13)&0x3FF
	case a >= 0x477FF000: // >= 65520 (halfway past 65504) or Inf
		return sign | 0x7C00
	case a >= 0x38800000: // >= 2^-14: normal; rebias by 127-15 and round
		r := a - 0x38000000
		r += 0xFFF + (r>>13)&1
		return sign | uint16(r>>13)
	}
	// Subnormal or zero: a multiple of 2^-24, rounded exactly in float64.
	n := math.RoundToEven(float64(math.Float32frombits(a)) * (1 << 24))
	return sign | uint16(n)
}
