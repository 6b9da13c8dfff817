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

// refTolerance is the error allowed against the fp64 reference, relative to
// Σ|x·w| of each output, for format t at precision p. It covers the
// activation conversion of the Fast paths and f32 accumulation.
func refTolerance(t format.Type, p Precision) float64 {
	if p == Exact {
		return 1e-5
	}
	switch t {
	case format.F32, format.F16:
		return 1e-5
	case format.BF16, format.F8E4M3Row, format.MXF8E4M3, format.MXF8E5M2:
		return 4e-3 // bf16 activations: 2^-8 relative per term at worst
	default:
		// int8 activations per 32-block: each x is off by at most
		// amax/254, about 1% of the mean |x| of these normal blocks, and
		// the signed errors mostly cancel, so 2e-2 of Σ|x·w| leaves a wide
		// margin; TestInt8ErrorBound checks the rigorous per-output bound.
		return 2e-2
	}
}

// implTolerance is the error allowed between an assembly tier and the
// generic kernel, relative to Σ|x·w|: both run the same arithmetic, so only
// the order of the f32 sums differs.
const implTolerance = 2e-5

// testShapes exercises tails: N not a multiple of any group size, K at and
// around block and vector widths.
func testShapes(t format.Type, short bool) [][2]int {
	be := t.BlockElems()
	ks := []int{be, 2 * be, 5 * be, 17 * be, 64, 96, 256, 1056}
	if be == 1 {
		ks = append(ks, 1, 3, 15, 17, 31, 33, 63, 65, 127, 255, 257, 300)
	}
	ns := []int{1, 3, 8, 9, 15, 17, 33, 64, 65, 100}
	if short {
		ns = []int{1, 9, 33, 65}
	}
	var out [][2]int
	for _, n := range ns {
		for _, k := range ks {
			if k%be == 0 {
				out = append(out, [2]int{n, k})
			}
		}
	}
	return out
}

// randMatrix returns an n×k f32 matrix with a mix of magnitudes.
func randMatrix(rng *rand.Rand, n, k int) []float32 {
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()*0.5))
	}
	return w
}

// reference computes y = x·Wᵀ in float64 from W's decoded rows, and
// Σ|x·w| per output (the scale errors are measured against).
func reference(w *Matrix, rows []byte, x []float32, m int) (y, mag []float64) {
	rb := w.Type.RowBytes(w.K)
	wr := make([]float32, w.K)
	y = make([]float64, m*w.N)
	mag = make([]float64, m*w.N)
	for j := range w.N {
		format.DequantizeRow(w.Type, wr, rows[j*rb:(j+1)*rb], w.TensorScale)
		for i := range m {
			var s, a float64
			for k, wv := range wr {
				p := float64(x[i*w.K+k]) * float64(wv)
				s += p
				a += math.Abs(p)
			}
			y[i*w.N+j], mag[i*w.N+j] = s, a
		}
	}
	return y, mag
}

// checkClose reports the first output whose error exceeds tol·mag (plus a
// tiny absolute floor) and the worst relative error.
func checkClose(t *testing.T, got []float32, want, mag []float64, tol float64, what string) {
	t.Helper()
	worst, worstAt := 0.0, -1
	for i := range want {
		err := math.Abs(float64(got[i]) - want[i])
		lim := tol*mag[i] + 1e-30
		if math.IsNaN(float64(got[i])) || err > lim {
			t.Errorf("%s: y[%d] = %g, want %g (err %.3g > %.3g); %d outputs", what, i, got[i], want[i], err, lim, len(want))
			return
		}
		if mag[i] > 0 && err/mag[i] > worst {
			worst, worstAt = err/mag[i], i
		}
	}
	_ = worstAt
}

// guarded returns a slice of n elements inside a buffer whose guard bands
// (g elements on either side) hold NaN, at an offset of off elements from
// the buffer's start, so misaligned data and stray writes are both tested.
func guarded(n, off int) (inner, whole []float32) {
	const g = 16
	whole = make([]float32, n+2*g+off)
	for i := range whole {
		whole[i] = float32(math.NaN())
	}
	return whole[g+off : g+off+n], whole
}

func checkGuards(t *testing.T, whole []float32, n, off int, what string) {
	t.Helper()
	const g = 16
	for i, v := range whole {
		if (i < g+off || i >= g+off+n) && !math.IsNaN(float64(v)) {
			t.Fatalf("%s: write outside the output at guard index %d", what, i)
		}
	}
}

func TestMatMulAllFormats(t *testing.T) {
	impls := Impls()
	ms := []int{1, 2, 3, 5, 8, 13}
	for _, ft := range Formats() {
		for _, prec := range []Precision{Fast, Exact} {
			t.Run(fmt.Sprintf("%s/%s", ft, prec), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(uint64(ft), uint64(prec)))
				for _, sh := range testShapes(ft, testing.Short()) {
					n, k := sh[0], sh[1]
					src := randMatrix(rng, n, k)
					opt := format.Options{}
					if ft == format.NVFP4 {
						opt.TensorScale = format.NVFP4TensorScale(src)
					}
					rb := ft.RowBytes(k)
					rows := make([]byte, n*rb)
					for i := range n {
						format.QuantizeRow(ft, rows[i*rb:(i+1)*rb], src[i*k:(i+1)*k], opt)
					}
					w, err := Pack(ft, n, k, rows, opt.TensorScale)
					require.NoError(t, err)
					w.Precision = prec
					m := ms[rng.IntN(len(ms))]
					off := rng.IntN(4)
					x, _ := guarded(m*k, off)
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					xCopy := append([]float32(nil), x...)
					want, mag := reference(w, rows, x, m)

					generic := genericAt(w, x, m)
					for _, impl := range impls {
						y, whole := guarded(m*n, off)
						impl.MatMul(nil, y, w, x, m)
						what := fmt.Sprintf("impl=%s n=%d k=%d m=%d off=%d", impl.Name, n, k, m, off)
						checkGuards(t, whole, m*n, off, what)
						checkClose(t, y, want, mag, refTolerance(ft, prec), what+" vs fp64")
						if impl.Tier != Generic {
							checkClose(t, y, generic(impl), mag, implTolerance, what+" vs generic")
						}
						// Threads must not change the result beyond summation order.
						y2 := make([]float32, m*n)
						pool := NewPool(3)
						impl.MatMul(pool, y2, w, x, m)
						require.NoError(t, pool.Close())
						assert.Equal(t, y, y2, "%s: pooled result differs", what)
					}
					require.Equal(t, xCopy, x, "activations modified")
				}
			})
		}
	}
}

// genericAt returns a function giving, for an impl, the generic kernel's
// result at the activation precision that impl's path runs: an impl whose
// path is f32 FMA at the Fast precision (AVX2 on the bf16-activation
// formats) computes what the generic kernel does at Exact.
func genericAt(w *Matrix, x []float32, m int) func(impl *Impl) []float64 {
	memo := map[Precision][]float64{}
	return func(impl *Impl) []float64 {
		p := w.Precision
		if p == Fast && w.Path(impl) == PathF32FMA {
			p = Exact
		}
		if memo[p] == nil {
			saved := w.Precision
			w.Precision = p
			y := make([]float32, m*w.N)
			Impls()[0].MatMul(nil, y, w, x, m)
			w.Precision = saved
			y64 := make([]float64, len(y))
			for i, v := range y {
				y64[i] = float64(v)
			}
			memo[p] = y64
		}
		return memo[p]
	}
}

func TestRowMatchesFileEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ft := range Formats() {
		t.Run(ft.String(), func(t *testing.T) {
			for _, sh := range testShapes(ft, true) {
				n, k := sh[0], sh[1]
				src := randMatrix(rng, n, k)
				opt := format.Options{TensorScale: format.NVFP4TensorScale(src)}
				rb := ft.RowBytes(k)
				rows := make([]byte, n*rb)
				for i := range n {
					format.QuantizeRow(ft, rows[i*rb:(i+1)*rb], src[i*k:(i+1)*k], opt)
				}
				w, err := Pack(ft, n, k, rows, opt.TensorScale)
				require.NoError(t, err)
				got, want := make([]float32, k), make([]float32, k)
				for i := range n {
					w.Row(i, got)
					format.DequantizeRow(ft, want, rows[i*rb:(i+1)*rb], w.TensorScale)
					require.Equal(t, want, got, "n=%d k=%d row %d", n, k, i)
				}
			}
		})
	}
}

func TestPackRejectsBadShapes(t *testing.T) {
	for _, tt := range []struct {
		name string
		t    format.Type
		n, k int
		size int
	}{
		{"zero rows", format.F32, 0, 4, 0},
		{"zero cols", format.F32, 4, 0, 0},
		{"short data", format.F32, 2, 4, 31},
		{"long data", format.F32, 2, 4, 33},
		{"negative", format.F32, -1, 4, 0},
		{"overflow", format.F32, 1 << 40, 1 << 40, 0},
		{"k not a block multiple", format.Q8_0, 2, 33, 2 * 34},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := kernelsFor(tt.t); err != nil {
				t.Skip(err)
			}
			_, err := Pack(tt.t, tt.n, tt.k, make([]byte, tt.size), 0)
			assert.ErrorIs(t, err, ErrShape)
		})
	}
	_, err := Pack(format.Type(200), 1, 1, nil, 0)
	assert.Error(t, err)
}

func TestMatMulPanicsOnShortSlices(t *testing.T) {
	w, err := Pack(format.F32, 2, 16, make([]byte, 2*16*4), 0)
	require.NoError(t, err)
	for _, impl := range Impls() {
		assert.PanicsWithValue(t, "kernels: MatMul: slice length does not match shape", func() {
			impl.MatMul(nil, make([]float32, 2), w, make([]float32, 15), 1)
		})
		assert.PanicsWithValue(t, "kernels: MatMul: slice length does not match shape", func() {
			impl.MatMul(nil, make([]float32, 1), w, make([]float32, 16), 1)
		})
	}
}
