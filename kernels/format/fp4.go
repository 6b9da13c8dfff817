package format

// E2M1Table maps every FP4 E2M1 code (low 4 bits) to its value: OCP MX
// FP4, bias 1, values ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}, no infinities or NaN.
// Filled at init; must not be modified.
var E2M1Table [16]float32

// E2M1ToFloat32 returns the value of the FP4 E2M1 code in the low 4 bits of
// c; the high bits are ignored.
func E2M1ToFloat32(c uint8) float32 { return E2M1Table[c&0xF] }

// Float32ToE2M1 returns the E2M1 code (in the low 4 bits) nearest to x,
// ties to even. Values beyond ±6 and ±Inf saturate to ±6 (0x7, 0xF); -0
// encodes as 0x8. E2M1 has no NaN, so NaN encodes as +0; the block formats
// keep NaN through their scale instead.
func Float32ToE2M1(x float32) uint8 { return e2m1.encode(float64(x)) }
