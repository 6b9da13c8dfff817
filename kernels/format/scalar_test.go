package format_test

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

var update = flag.Bool("update", false, "rewrite golden files")

// spec describes a small float format for the independent reference decoder
// below, which builds values with math.Pow from the bit fields and spells the
// special codes out as constants from the OCP specs.
type spec struct {
	name        string
	bits        int // total bits
	ebits       int
	mbits       int
	bias        int
	decode      func(uint8) float32
	encode      func(float32) uint8
	isNaN       func(c uint8) bool
	isInf       func(c uint8) bool
	maxFinite   float64
	golden      string
	codes       int
	satInf      uint8 // encode(+Inf)
	nanEncodes  bool  // encode(NaN) is a NaN code
	signBitMask uint8
}

var specs = []spec{
	{
		name: "e4m3", bits: 8, ebits: 4, mbits: 3, bias: 7,
		decode: format.E4M3ToFloat32, encode: format.Float32ToE4M3,
		isNaN:     func(c uint8) bool { return c&0x7F == 0x7F },
		isInf:     func(uint8) bool { return false },
		maxFinite: 448, golden: "fp8_e4m3.golden", codes: 256, satInf: 0x7E, nanEncodes: true, signBitMask: 0x80,
	},
	{
		name: "e5m2", bits: 8, ebits: 5, mbits: 2, bias: 15,
		decode: format.E5M2ToFloat32, encode: format.Float32ToE5M2,
		isNaN:     func(c uint8) bool { return c&0x7C == 0x7C && c&0x03 != 0 },
		isInf:     func(c uint8) bool { return c&0x7F == 0x7C },
		maxFinite: 57344, golden: "fp8_e5m2.golden", codes: 256, satInf: 0x7C, nanEncodes: true, signBitMask: 0x80,
	},
	{
		name: "e2m1", bits: 4, ebits: 2, mbits: 1, bias: 1,
		decode: format.E2M1ToFloat32, encode: format.Float32ToE2M1,
		isNaN:     func(uint8) bool { return false },
		isInf:     func(uint8) bool { return false },
		maxFinite: 6, golden: "fp4_e2m1.golden", codes: 16, satInf: 0x7, signBitMask: 0x08,
	},
}

// refDecode is the test's own decoder: (-1)^s * 2^(E-bias) * (1 + M/2^m)
// for normal codes, (-1)^s * 2^(1-bias) * (M/2^m) for subnormal ones.
func (s spec) refDecode(c uint8) float64 {
	if s.isNaN(c) {
		return math.NaN()
	}
	sign := 1.0
	if c>>(s.bits-1)&1 == 1 {
		sign = -1
	}
	if s.isInf(c) {
		return sign * math.Inf(1)
	}
	E := int(c>>s.mbits) & (1<<s.ebits - 1)
	M := float64(int(c) & (1<<s.mbits - 1))
	frac := M / math.Pow(2, float64(s.mbits))
	if E == 0 {
		return sign * math.Pow(2, float64(1-s.bias)) * frac
	}
	return sign * math.Pow(2, float64(E-s.bias)) * (1 + frac)
}

func TestMinifloatDecodeExhaustive(t *testing.T) {
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			var sb strings.Builder
			for c := range s.codes {
				got := s.decode(uint8(c))
				want := s.refDecode(uint8(c))
				if math.IsNaN(want) {
					assert.True(t, math.IsNaN(float64(got)), "code %#02x: got %v, want NaN", c, got)
				} else {
					assert.Equal(t, math.Float64bits(want), math.Float64bits(float64(got)), "code %#02x: got %v, want %v", c, got, want)
				}
				fmt.Fprintf(&sb, "%#02x %s\n", c, strconv.FormatFloat(float64(got), 'g', -1, 32))
			}
			checkGolden(t, s.golden, sb.String())
		})
	}
}

func TestTablesMatchDecoders(t *testing.T) {
	for c := range 256 {
		assert.Equal(t, math.Float32bits(format.E4M3Table[c]), math.Float32bits(format.E4M3ToFloat32(uint8(c))))
		assert.Equal(t, math.Float32bits(format.E5M2Table[c]), math.Float32bits(format.E5M2ToFloat32(uint8(c))))
		assert.Equal(t, math.Float32bits(format.E2M1Table[c&0xF]), math.Float32bits(format.E2M1ToFloat32(uint8(c))), "high bits of an E2M1 code are ignored")
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create it")
	assert.Equal(t, string(want), got, "golden %s differs (go test -update rewrites it)", path)
}

func TestMinifloatRoundTrip(t *testing.T) {
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			for c := range s.codes {
				v := s.decode(uint8(c))
				if math.IsNaN(float64(v)) {
					continue
				}
				assert.Equal(t, uint8(c), s.encode(v), "encode(decode(%#02x = %v))", c, v)
			}
		})
	}
}

// TestMinifloatTies checks, for every pair of adjacent finite values of the
// same sign, that the midpoint rounds to the code with an even mantissa and
// that the nearest float32 values on each side round to their neighbour.
func TestMinifloatTies(t *testing.T) {
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			half := s.codes / 2
			for _, sign := range []int{0, half} {
				for c := sign; c+1 < sign+half; c++ {
					lo, hi := s.decode(uint8(c)), s.decode(uint8(c+1))
					if math.IsNaN(float64(hi)) || math.IsInf(float64(hi), 0) {
						break
					}
					mid := float32((float64(lo) + float64(hi)) / 2)
					require.Equal(t, float64(mid), (float64(lo)+float64(hi))/2, "midpoint must be exact")
					even := c
					if c&1 == 1 {
						even = c + 1
					}
					assert.Equal(t, uint8(even), s.encode(mid), "tie %v between %#02x and %#02x", mid, c, c+1)
					below := math.Nextafter32(mid, lo)
					above := math.Nextafter32(mid, hi)
					assert.Equal(t, uint8(c), s.encode(below), "just inside %#02x: %v", c, below)
					assert.Equal(t, uint8(c+1), s.encode(above), "just inside %#02x: %v", c+1, above)
				}
			}
		})
	}
}

func TestMinifloatSpecialInputs(t *testing.T) {
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			maxCode := s.encode(float32(s.maxFinite))
			require.InDelta(t, s.maxFinite, s.decode(maxCode), 0)
			neg := s.signBitMask
			for _, x := range []float64{s.maxFinite * 1.01, s.maxFinite * 1.2, s.maxFinite * 2, 1e30, math.MaxFloat32} {
				assert.Equal(t, maxCode, s.encode(float32(x)), "%v saturates", x)
				assert.Equal(t, maxCode|neg, s.encode(float32(-x)), "%v saturates", -x)
			}
			assert.Equal(t, s.satInf, s.encode(float32(math.Inf(1))), "+Inf")
			assert.Equal(t, s.satInf|neg, s.encode(float32(math.Inf(-1))), "-Inf")
			assert.Equal(t, uint8(0), s.encode(0))
			assert.Equal(t, neg, s.encode(float32(math.Copysign(0, -1))), "-0 keeps its sign")
			nan := s.encode(float32(math.NaN()))
			if s.nanEncodes {
				assert.True(t, math.IsNaN(float64(s.decode(nan))), "NaN encodes as NaN")
			} else {
				assert.Equal(t, uint8(0), nan, "formats without NaN encode NaN as +0")
			}
			// The smallest subnormal and values below half of it.
			minSub := s.decode(1)
			assert.Equal(t, uint8(1), s.encode(minSub))
			assert.Equal(t, uint8(0), s.encode(minSub/2), "half the smallest subnormal ties to zero")
			assert.Equal(t, uint8(1), s.encode(minSub*0.75))
			assert.Equal(t, uint8(0), s.encode(minSub*0.25))
			assert.Equal(t, uint8(0), s.encode(1e-40))
		})
	}
}

func TestKnownCodes(t *testing.T) {
	tests := []struct {
		name string
		got  uint8
		want uint8
	}{
		{"e4m3 1", format.Float32ToE4M3(1), 0x38},
		{"e4m3 448", format.Float32ToE4M3(448), 0x7E},
		{"e4m3 464 saturates", format.Float32ToE4M3(464), 0x7E},
		{"e4m3 -2^-9", format.Float32ToE4M3(-1.0 / 512), 0x81},
		{"e4m3 2^-6", format.Float32ToE4M3(1.0 / 64), 0x08},
		{"e5m2 1", format.Float32ToE5M2(1), 0x3C},
		{"e5m2 57344", format.Float32ToE5M2(57344), 0x7B},
		{"e5m2 61440 saturates", format.Float32ToE5M2(61440), 0x7B},
		{"e5m2 2^-16", format.Float32ToE5M2(1.0 / 65536), 0x01},
		{"e2m1 1", format.Float32ToE2M1(1), 0x2},
		{"e2m1 5 ties to 4", format.Float32ToE2M1(5), 0x6},
		{"e2m1 2.5 ties to 2", format.Float32ToE2M1(2.5), 0x4},
		{"e2m1 0.25 ties to 0", format.Float32ToE2M1(0.25), 0x0},
		{"e2m1 -0.75 ties to -1", format.Float32ToE2M1(-0.75), 0xA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
}

func TestE8M0(t *testing.T) {
	for e := range 255 {
		assert.Equal(t, math.Ldexp(1, e-127), float64(format.E8M0ToFloat32(uint8(e))), "e=%d", e)
	}
	assert.True(t, math.IsNaN(float64(format.E8M0ToFloat32(0xFF))))
}

// halfSpec runs the same checks over the 16-bit formats.
type halfSpec struct {
	name   string
	decode func(uint16) float32
	encode func(float32) uint16
	isNaN  func(uint16) bool
	max    float64
}

var halfSpecs = []halfSpec{
	{"f16", format.F16ToFloat32, format.Float32ToF16, func(h uint16) bool { return h&0x7C00 == 0x7C00 && h&0x3FF != 0 }, 65504},
	{"bf16", format.BF16ToFloat32, format.Float32ToBF16, func(h uint16) bool { return h&0x7F80 == 0x7F80 && h&0x7F != 0 }, 0x1.FEp127},
}

func TestHalfExhaustive(t *testing.T) {
	for _, s := range halfSpecs {
		t.Run(s.name, func(t *testing.T) {
			for c := range 1 << 16 {
				h := uint16(c)
				v := s.decode(h)
				if s.isNaN(h) {
					require.True(t, math.IsNaN(float64(v)), "%#04x decodes to NaN", h)
					require.True(t, s.isNaN(s.encode(v)), "%#04x: NaN stays NaN", h)
					require.Equal(t, h&0x8000, s.encode(v)&0x8000, "%#04x: NaN keeps its sign", h)
					continue
				}
				require.Equal(t, h, s.encode(v), "encode(decode(%#04x = %v))", h, v)
				if h&0x7FFF >= 0x7BFF && s.name == "f16" || h&0x7FFF >= 0x7F7F && s.name == "bf16" {
					continue // no finite upper neighbour
				}
				if h == 0x7FFF || h == 0xFFFF {
					continue
				}
				// Tie with the next code of the same sign (away from zero).
				next := s.decode(h + 1)
				mid := float32((float64(v) + float64(next)) / 2)
				require.Equal(t, float64(mid), (float64(v)+float64(next))/2)
				even := h
				if h&1 == 1 {
					even = h + 1
				}
				require.Equal(t, even, s.encode(mid), "tie %v between %#04x and %#04x", mid, h, h+1)
				require.Equal(t, h, s.encode(math.Nextafter32(mid, v)))
				require.Equal(t, h+1, s.encode(math.Nextafter32(mid, next)))
			}
			// Overflow rounds to Inf (IEEE), just below the halfway point it does not.
			maxCode := s.encode(float32(s.max))
			inf := s.encode(float32(math.Inf(1)))
			assert.True(t, math.IsInf(float64(s.decode(inf)), 1))
			assert.Equal(t, inf, s.encode(math.MaxFloat32))
			assert.Equal(t, inf|0x8000, s.encode(-math.MaxFloat32))
			assert.Equal(t, maxCode, s.encode(math.Nextafter32(float32(s.max), float32(math.Inf(1)))))
		})
	}
}

// TestEncodeMatchesBruteForce compares the encoders with a search for the
// nearest finite code of the same sign (ties to the even code) on random
// inputs spanning the formats' ranges and beyond.
func TestEncodeMatchesBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			for range n {
				x := float32(math.Ldexp(r.Float64()+0.5, r.IntN(44)-26))
				if r.IntN(2) == 0 {
					x = -x
				}
				best, bestErr := -1, math.Inf(1)
				for c := range s.codes {
					v := float64(s.decode(uint8(c)))
					if math.IsNaN(v) || math.IsInf(v, 0) || (c&int(s.signBitMask) != 0) != (x < 0) {
						continue
					}
					e := math.Abs(v - float64(x))
					if e < bestErr || e == bestErr && c&1 == 0 {
						best, bestErr = c, e
					}
				}
				require.Equal(t, uint8(best), s.encode(x), "x=%v", x)
			}
		})
	}
}
