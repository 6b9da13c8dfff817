package format

import "math"

// minifloat describes a small binary floating-point format with a sign bit,
// ebits exponent bits and mbits mantissa bits, and how it treats the top of
// its range. Its encode and decode are the arithmetic reference from which
// the exported tables are built.
type minifloat struct {
	ebits, mbits int
	bias         int
	signBit      uint8
	maxCode      uint8   // code (without sign) of the largest finite value
	max          float64 // largest finite value
	inf          bool    // the all-ones exponent with a zero mantissa is ±Inf
	nanCode      uint8   // code (without sign) encode emits for NaN; 0 if no NaN
	nanAllOnes   bool    // only the all-ones code is NaN (E4M3 "FN")
}

var (
	e4m3 = minifloat{ebits: 4, mbits: 3, bias: 7, signBit: 0x80, maxCode: 0x7E, max: 448, nanCode: 0x7F, nanAllOnes: true}
	e5m2 = minifloat{ebits: 5, mbits: 2, bias: 15, signBit: 0x80, maxCode: 0x7B, max: 57344, inf: true, nanCode: 0x7F}
	e2m1 = minifloat{ebits: 2, mbits: 1, bias: 1, signBit: 0x08, maxCode: 0x07, max: 6}
)

// decode returns the value of code c (only the low 1+ebits+mbits bits count).
func (f *minifloat) decode(c uint8) float64 {
	neg := c&f.signBit != 0
	emask := uint8(1)<<f.ebits - 1
	mmask := uint8(1)<<f.mbits - 1
	e := int(c>>f.mbits) & int(emask)
	m := int(c & mmask)
	var v float64
	switch {
	case f.nanAllOnes && e == int(emask) && m == int(mmask):
		v = math.NaN()
	case f.inf && e == int(emask) && m == 0:
		v = math.Inf(1)
	case f.inf && e == int(emask):
		v = math.NaN()
	case e == 0: // zero or subnormal: m * 2^(emin - mbits)
		v = math.Ldexp(float64(m), 1-f.bias-f.mbits)
	default:
		v = math.Ldexp(float64(m|1<<f.mbits), e-f.bias-f.mbits)
	}
	if neg {
		v = -v
	}
	return v
}

// encode rounds x to the nearest representable value, ties to even, and
// returns its code. Finite values beyond the largest finite value saturate
// to it; ±Inf becomes ±Inf if the format has infinities and saturates
// otherwise; NaN becomes the format's NaN (keeping the sign bit), or +0 for
// formats without NaN. x is a float64 so that callers can divide by a
// scale without a second rounding.
func (f *minifloat) encode(x float64) uint8 {
	var sign uint8
	if math.Signbit(x) {
		sign = f.signBit
	}
	a := math.Abs(x)
	switch {
	case math.IsNaN(a):
		if f.nanCode == 0 {
			return 0
		}
		return sign | f.nanCode
	case math.IsInf(a, 1):
		if f.inf {
			return sign | uint8(1<<f.ebits-1)<<f.mbits
		}
		return sign | f.maxCode
	case a == 0:
		return sign
	}
	emin := 1 - f.bias
	e := int(math.Float64bits(a)>>52) - 1023 // floor(log2(a)); a is finite
	if e < emin-f.mbits-1 {
		return sign // below half the smallest subnormal (or a float64 subnormal)
	}
	e = max(e, emin)
	// Round to a multiple of the quantum 2^(e-mbits) of a's binade:
	// scaling by a power of two is exact, so RoundToEven is the only
	// rounding.
	n := math.RoundToEven(a * pow2(f.mbits-e))
	if n*pow2(e-f.mbits) > f.max {
		return sign | f.maxCode
	}
	one := float64(int(1) << f.mbits)
	switch {
	case n == 0:
		return sign
	case e == emin && n < one: // subnormal
		return sign | uint8(n)
	case n == 2*one: // rounded up into the next binade
		e, n = e+1, one
	}
	return sign | uint8(e+f.bias)<<f.mbits | uint8(n-one)
}

// E4M3Table maps every FP8 E4M3 code to its value: OCP FP8 "E4M3FN", bias 7,
// subnormals, largest finite ±448, no infinities, NaN = S.1111.111 (0x7F,
// 0xFF). It is filled at init from an arithmetic decoder and must not be
// modified.
var E4M3Table [256]float32

// E5M2Table maps every FP8 E5M2 code to its value: OCP FP8 E5M2 (IEEE-like),
// bias 15, subnormals, largest finite ±57344, ±Inf = S.11111.00, NaN =
// S.11111.{01,10,11}. Filled at init; must not be modified.
var E5M2Table [256]float32

func init() {
	for c := range 256 {
		E4M3Table[c] = float32(e4m3.decode(uint8(c)))
		E5M2Table[c] = float32(e5m2.decode(uint8(c)))
	}
	for c := range 16 {
		E2M1Table[c] = float32(e2m1.decode(uint8(c)))
	}
}

// E4M3ToFloat32 returns the value of the FP8 E4M3 code c (see E4M3Table).
func E4M3ToFloat32(c uint8) float32 { return E4M3Table[c] }

// E5M2ToFloat32 returns the value of the FP8 E5M2 code c (see E5M2Table).
func E5M2ToFloat32(c uint8) float32 { return E5M2Table[c] }

// Float32ToE4M3 returns the E4M3 code nearest to x, ties to even. Finite
// values beyond ±448 saturate to ±448 (0x7E, 0xFE), and so do ±Inf (E4M3
// has no infinities); NaN encodes as NaN with x's sign bit (0x7F or 0xFF);
// -0 encodes as 0x80.
func Float32ToE4M3(x float32) uint8 { return e4m3.encode(float64(x)) }

// Float32ToE5M2 returns the E5M2 code nearest to x, ties to even. Finite
// values beyond ±57344 saturate to ±57344 (0x7B, 0xFB) instead of becoming
// infinite; ±Inf stays ±Inf (0x7C, 0xFC); NaN encodes as NaN with x's sign
// bit (0x7F or 0xFF); -0 encodes as 0x80.
func Float32ToE5M2(x float32) uint8 { return e5m2.encode(float64(x)) }

// E8M0ToFloat32 returns the value of the OCP MX E8M0 scale code e: 2^(e-127)
// for e < 255 (0 gives 2^-127, a float32 subnormal), NaN for 0xFF.
func E8M0ToFloat32(e uint8) float32 {
	switch e {
	case 0xFF:
		return float32(math.NaN())
	case 0:
		return math.Float32frombits(0x00400000)
	}
	return math.Float32frombits(uint32(e) << 23)
}

// pow2 returns 2^k for -1022 <= k <= 1023.
func pow2(k int) float64 { return math.Float64frombits(uint64(k+1023) << 52) }
