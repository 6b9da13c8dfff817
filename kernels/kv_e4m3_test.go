package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// TestFloat32ToE4M3 checks the fast KV encoder against the format
// package's reference encoder: every code, every midpoint between two
// neighbouring codes (the ties) and its neighbours, the specials and
// random values over the whole range.
func TestFloat32ToE4M3(t *testing.T) {
	var xs []float32
	for c := range 256 {
		v := format.E4M3ToFloat32(uint8(c))
		xs = append(xs, v, math.Nextafter32(v, 0), math.Nextafter32(v, float32(math.Inf(1))), math.Nextafter32(v, float32(math.Inf(-1))))
		if c&0x7f < 0x7e {
			next := format.E4M3ToFloat32(uint8(c + 1))
			mid := (v + next) / 2
			xs = append(xs, mid, math.Nextafter32(mid, v), math.Nextafter32(mid, next))
		}
	}
	inf := float32(math.Inf(1))
	xs = append(xs, 0, float32(math.Copysign(0, -1)), inf, -inf, float32(math.NaN()), 448, 449, 463.99, 464, 465, 480, 1e30, -1e30,
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 1e-40, 0x1p-10, 0x1p-9, 0x1.8p-10, 0x1p-7, 0x1.fp-7)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		xs = append(xs, math.Float32frombits(rng.Uint32()))
	}
	for range 50000 {
		xs = append(xs, float32(rng.NormFloat64()*math.Pow(2, float64(rng.IntN(24)-12))))
	}
	for _, x := range xs {
		want, got := format.Float32ToE4M3(x), float32ToE4M3(x)
		if math.IsNaN(float64(x)) {
			require.Equal(t, uint8(0x7f), got&0x7f, "NaN stays NaN")
			continue
		}
		if want != got {
			require.Equal(t, want, got, "x = %g (%#08x)", x, math.Float32bits(x))
		}
	}
}

// TestE4M3Rows checks the assembly decoder against the table for every
// code, at odd row counts and strides and misaligned sources.
func TestE4M3Rows(t *testing.T) {
	for _, impl := range Impls() {
		pr := impl.ops().attn
		if pr == nil || pr.e4m3Rows == nil {
			continue
		}
		for _, tc := range []struct{ rows, n, dstride, sstride, off int }{
			{1, 16, 16, 16, 0}, {16, 256, 256, 256, 0}, {3, 16, 19, 17, 1}, {5, 32, 40, 33, 3}, {7, 64, 64, 129, 2},
		} {
			t.Run(fmt.Sprintf("%s/%+v", impl.Name, tc), func(t *testing.T) {
				src := make([]uint8, tc.off+(tc.rows-1)*tc.sstride+tc.n+8)
				for i := range src {
					src[i] = uint8(i*37 + i/256)
				}
				dst := make([]float32, (tc.rows-1)*tc.dstride+tc.n+16)
				for i := range dst {
					dst[i] = guardVal
				}
				s := src[tc.off:]
				pr.e4m3Rows(&dst[0], &s[0], tc.rows, tc.n, tc.dstride, tc.sstride)
				seen := map[uint8]bool{}
				for r := range tc.rows {
					for i := range tc.dstride {
						got := dst[r*tc.dstride+i]
						if i >= tc.n {
							if r < tc.rows-1 || i < tc.n+16 {
								require.Equal(t, math.Float32bits(guardVal), math.Float32bits(got), "row %d col %d written", r, i)
							}
							continue
						}
						c := s[r*tc.sstride+i]
						seen[c] = true
						want := format.E4M3ToFloat32(c)
						if math.IsNaN(float64(want)) {
							assert.True(t, math.IsNaN(float64(got)), "code %#02x", c)
						} else {
							require.Equal(t, math.Float32bits(want), math.Float32bits(got), "code %#02x", c)
						}
					}
				}
				if tc.rows*tc.n >= 256 {
					assert.Len(t, seen, 256, "every code decoded")
				}
			})
		}
	}
}
