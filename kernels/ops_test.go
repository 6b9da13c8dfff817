package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// guardN is the number of sentinel floats on each side of a guarded slice.
const guardN = 19

// guardVal is the sentinel written around outputs; a kernel that writes
// out of bounds changes it.
var guardVal = float32(math.Float32frombits(0x7fc0dead))

// guardedOut returns a slice of n floats at float offset off (misaligned for
// off % 16 != 0) inside a buffer whose other floats are guardVal, and a
// func that reports whether the guards are intact.
func guardedOut(n, off int) ([]float32, func() bool) {
	buf := make([]float32, off+n+2*guardN)
	for i := range buf {
		buf[i] = guardVal
	}
	s := buf[guardN+off : guardN+off+n : guardN+off+n]
	return s, func() bool {
		for i, v := range buf {
			in := i >= guardN+off && i < guardN+off+n
			if !in && math.Float32bits(v) != math.Float32bits(guardVal) {
				return false
			}
		}
		return true
	}
}

// sameBits reports whether a and b hold the same bit patterns.
func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * scale)
	}
	return s
}

// ulps returns |got − want| in units of the last place of float32 at want
// (want in float64); for want in the subnormal range the unit is 2^−149.
func ulps(got float32, want float64) float64 {
	if math.IsInf(want, 0) || want > math.MaxFloat32 {
		if math.IsInf(float64(got), 1) {
			return 0
		}
		return math.Inf(1)
	}
	a := math.Abs(want)
	unit := math.Ldexp(1, -149)
	if a >= 0x1p-126 {
		_, e := math.Frexp(a) // a = f·2^e, f in [0.5, 1)
		unit = math.Ldexp(1, e-24)
	}
	return math.Abs(float64(got)-want) / unit
}

func TestExp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var x []float32
	for v := -110.0; v <= 95; v += 0.0137 {
		x = append(x, float32(v))
	}
	for range 20000 {
		x = append(x, float32(rng.Float64()*200-105), float32(rng.NormFloat64()))
	}
	x = append(x, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 88.72, 88.7228, 88.73, -87.33, -103.97, -103.2, -104, -150,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.MaxFloat32, -math.MaxFloat32)
	for _, impl := range Impls() {
		t.Run(impl.Name, func(t *testing.T) {
			for _, n := range []int{len(x), 1, 7, 15, 17, 33} {
				y, ok := guardedOut(n, n%5)
				impl.Exp(y, x[:n])
				require.True(t, ok(), "guard band overwritten, n=%d", n)
				worst := 0.0
				for i, v := range x[:n] {
					want := math.Exp(float64(v))
					switch {
					case math.IsNaN(float64(v)):
						assert.True(t, math.IsNaN(float64(y[i])), "exp(NaN)")
						continue
					case want < 0x1p-150:
						assert.Zero(t, y[i], "exp(%g) underflows to 0", v)
						continue
					}
					u := ulps(y[i], want)
					require.LessOrEqual(t, u, 2.0, "exp(%g) = %g, want %g", v, y[i], want)
					worst = max(worst, u)
				}
				if n == len(x) {
					t.Logf("%s: worst error %.2f ulp over %d inputs", impl.Name, worst, n)
				}
			}
			// In place.
			z := []float32{0, 1, -1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
			want := make([]float32, len(z))
			impl.Exp(want, z)
			impl.Exp(z, z)
			assert.Equal(t, want, z)
			assert.Panics(t, func() { impl.Exp(z[:3], z) })
		})
	}
}

func TestSwiGLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	generic := allImpls[Generic]
	for _, impl := range Impls() {
		for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 31, 33, 64, 100, 301} {
			for off := range 4 {
				t.Run(fmt.Sprintf("%s/n=%d/off=%d", impl.Name, n, off), func(t *testing.T) {
					gate, up := randSlice(rng, n, 4), randSlice(rng, n, 1)
					if n > 5 {
						gate[0], gate[1], gate[2], gate[3], gate[4] = 100, -100, -90, float32(math.NaN()), float32(math.Inf(1))
					}
					g0, u0 := append([]float32(nil), gate...), append([]float32(nil), up...)
					y, ok := guardedOut(n, off)
					impl.SwiGLU(y, gate, up)
					require.True(t, ok(), "guard band overwritten")
					assert.True(t, sameBits(g0, gate), "gate is read-only")
					assert.True(t, sameBits(u0, up), "up is read-only")
					ref := make([]float32, n)
					generic.SwiGLU(ref, gate, up)
					for i := range n {
						g := float64(gate[i])
						want := g / (1 + math.Exp(-g)) * float64(up[i])
						if math.IsNaN(want) {
							assert.True(t, math.IsNaN(float64(y[i])), "[%d] silu(%g) must be NaN", i, g)
							assert.True(t, math.IsNaN(float64(ref[i])), "generic [%d]", i)
							continue
						}
						if math.IsInf(want, 0) {
							assert.Equal(t, float32(want), y[i])
							continue
						}
						// Below gate ≈ −88.7, e^−gate overflows float32 and
						// every tier returns ±0 for a true value under 1e−36.
						tol := 4e-7*math.Abs(want) + 1e-30
						require.InDelta(t, want, float64(y[i]), tol, "[%d] silu(%g)·%g", i, g, up[i])
						require.InDelta(t, float64(ref[i]), float64(y[i]), tol, "[%d] vs generic", i)
					}
				})
			}
		}
	}
	a, b := []float32{1, 2, -3}, []float32{0.5, -2, 10}
	y := make([]float32, 3)
	SwiGLU(y, a, b)
	SwiGLU(a, a, b) // in place
	assert.Equal(t, y, a)
	assert.Panics(t, func() { SwiGLU(y[:2], a, b) })
	assert.Panics(t, func() { SwiGLU(y, a, b[:2]) })
}

func TestRMSNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, impl := range Impls() {
		for _, n := range []int{1, 3, 8, 15, 16, 17, 40, 64, 65, 127, 2048, 2051} {
			for off := range 4 {
				t.Run(fmt.Sprintf("%s/n=%d/off=%d", impl.Name, n, off), func(t *testing.T) {
					x, g := randSlice(rng, n, 3), randSlice(rng, n, 1)
					x0, g0 := append([]float32(nil), x...), append([]float32(nil), g...)
					y, ok := guardedOut(n, off)
					impl.RMSNorm(y, x, g, 1e-5)
					require.True(t, ok(), "guard band overwritten")
					assert.Equal(t, x0, x)
					assert.Equal(t, g0, g)
					var ss float64
					for _, v := range x {
						ss += float64(v) * float64(v)
					}
					inv := 1 / math.Sqrt(ss/float64(n)+1e-5)
					ref := make([]float32, n)
					RMSNorm(ref, x, g, 1e-5)
					for i := range n {
						want := float64(x[i]) * inv * float64(g[i])
						require.InDelta(t, want, float64(y[i]), 3e-7*math.Abs(want)+1e-30, "[%d]", i)
						require.InDelta(t, float64(ref[i]), float64(y[i]), 3e-7*math.Abs(want)+1e-30, "[%d] vs Active", i)
					}
					impl.RMSNorm(x, x, g, 1e-5) // in place
					assert.Equal(t, []float32(y), x)
				})
			}
		}
		t.Run(impl.Name+"/nan", func(t *testing.T) {
			x := make([]float32, 33)
			x[20] = float32(math.NaN())
			y := make([]float32, 33)
			impl.RMSNorm(y, x, randSlice(rng, 33, 1), 1e-5)
			for i, v := range y {
				assert.True(t, math.IsNaN(float64(v)), "a NaN input makes the row NaN [%d]", i)
			}
		})
	}
	x := []float32{1, -2, 3, -4}
	assert.Panics(t, func() { RMSNorm(x, x, x[:3], 1e-6) })
	assert.NotPanics(t, func() { RMSNorm(nil, nil, nil, 1e-6) })
}

func TestAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, impl := range Impls() {
		for _, n := range []int{0, 1, 7, 8, 9, 16, 31, 33, 300} {
			for off := range 4 {
				t.Run(fmt.Sprintf("%s/n=%d/off=%d", impl.Name, n, off), func(t *testing.T) {
					a, b := randSlice(rng, n, 1), randSlice(rng, n, 1e3)
					y, ok := guardedOut(n, off)
					impl.Add(y, a, b)
					require.True(t, ok(), "guard band overwritten")
					for i := range n {
						require.Equal(t, a[i]+b[i], y[i], "[%d]", i)
					}
					impl.Add(a, a, b) // in place
					assert.Equal(t, []float32(y), a)
				})
			}
		}
	}
	assert.Panics(t, func() { Add(make([]float32, 3), make([]float32, 3), make([]float32, 2)) })
}

// BenchmarkOps measures the bandwidth-bound ops on rows of TinyLlama's
// shapes (hidden 2048, FFN 5632) for a 64-token step, in GB/s of the
// bytes each op must read and write.
func BenchmarkOps(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	const m = 64
	for _, impl := range Impls() {
		for _, n := range []int{2048, 5632} {
			x, g, y := randSlice(rng, m*n, 1), randSlice(rng, m*n, 1), make([]float32, m*n)
			run := func(name string, bytes int, fn func()) {
				b.Run(fmt.Sprintf("op=%s/impl=%s/n=%d", name, impl.Name, n), func(b *testing.B) {
					b.SetBytes(int64(bytes))
					for b.Loop() {
						fn()
					}
					b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				})
			}
			run("rmsnorm", 4*(2*m*n+n), func() {
				for r := range m {
					impl.RMSNorm(y[r*n:(r+1)*n], x[r*n:(r+1)*n], g[:n], 1e-5)
				}
			})
			run("swiglu", 12*m*n, func() { impl.SwiGLU(y, x, g) })
			run("add", 12*m*n, func() { impl.Add(y, x, g) })
		}
	}
}
