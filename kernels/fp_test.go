package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// fpFormats are the float formats of fpformats.go.
var fpFormats = []format.Type{format.F32, format.F16, format.BF16, format.F8E4M3Row, format.MXF8E4M3, format.MXF8E5M2}

// quantRows encodes an n×k random matrix in t.
func quantRows(rng *rand.Rand, t format.Type, n, k int) []byte {
	src := randMatrix(rng, n, k)
	rb := t.RowBytes(k)
	rows := make([]byte, n*rb)
	for i := range n {
		format.QuantizeRow(t, rows[i*rb:(i+1)*rb], src[i*k:(i+1)*k], format.Options{})
	}
	return rows
}

// TestMatMulSpecialValues pins the defined results for non-finite data, on
// every impl and precision:
//   - a NaN activation makes every output of its activation row NaN;
//   - an FP8 NaN code (F8E4M3Row, MX) or an MX block with scale 0xFF makes
//     every output of its weight row NaN, under any activations (including
//     zeros), and leaves the other outputs exact;
//   - an infinite activation gives ±Inf where the products have one sign and
//     NaN where they meet a zero weight or both signs, as in IEEE arithmetic.
func TestMatMulSpecialValues(t *testing.T) {
	const n, m = 9, 3
	for _, ft := range fpFormats {
		for _, prec := range []Precision{Fast, Exact} {
			t.Run(fmt.Sprintf("%s/%s", ft, prec), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(ft), 7))
				k := 96
				rows := quantRows(rng, ft, n, k)
				rb := ft.RowBytes(k)
				badRow := -1
				switch ft {
				case format.F8E4M3Row:
					badRow = 4
					rows[badRow*rb+70] = 0xFF // NaN code
				case format.MXF8E4M3, format.MXF8E5M2:
					badRow = 5
					rows[badRow*rb+33] = 0xFF // scale of block 1
					rows[2*rb+66+5] = 0x7F    // NaN code in row 2 (both element types)
				}
				w, err := Pack(ft, n, k, rows, 0)
				require.NoError(t, err)
				w.Precision = prec
				x := make([]float32, m*k)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				x[0*k+17] = float32(math.NaN())
				clear(x[2*k : 3*k]) // zero activations: bad rows still NaN
				for _, impl := range Impls() {
					y := make([]float32, m*n)
					impl.MatMul(nil, y, w, x, m)
					for i := range m {
						for j := range n {
							v := y[i*n+j]
							bad := i == 0 || j == badRow || (j == 2 && (ft == format.MXF8E4M3 || ft == format.MXF8E5M2))
							assert.Equal(t, bad, math.IsNaN(float64(v)), "impl=%s y[%d][%d] = %g", impl, i, j, v)
						}
					}
				}

				// Infinite activations.
				w2, err := Pack(ft, n, k, quantRows(rng, ft, n, k), 0)
				require.NoError(t, err)
				w2.Precision = prec
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				x[0*k+3] = float32(math.Inf(1))
				x[1*k+3] = float32(math.Inf(-1))
				x[1*k+50] = float32(math.Inf(1))
				row := make([]float32, k)
				for _, impl := range Impls() {
					y := make([]float32, m*n)
					impl.MatMul(nil, y, w2, x, m)
					for j := range n {
						w2.Row(j, row)
						s3, s50 := math.Signbit(float64(row[3])), math.Signbit(float64(row[50]))
						var want0, want1 float64
						switch {
						case row[3] == 0:
							want0 = math.NaN()
						case s3:
							want0 = math.Inf(-1)
						default:
							want0 = math.Inf(1)
						}
						switch {
						case row[3] == 0 || row[50] == 0 || s3 == s50:
							// -Inf·w3 + Inf·w50: opposite signs unless w3, w50 differ in sign.
							want1 = math.NaN()
						case s50:
							want1 = math.Inf(-1)
						default:
							want1 = math.Inf(1)
						}
						for i, want := range []float64{want0, want1} {
							got := float64(y[i*n+j])
							if math.IsNaN(want) {
								assert.True(t, math.IsNaN(got), "impl=%s y[%d][%d] = %g, want NaN", impl, i, j, got)
							} else {
								assert.Equal(t, want, got, "impl=%s y[%d][%d]", impl, i, j)
							}
						}
						assert.False(t, math.IsNaN(float64(y[2*n+j])) || math.IsInf(float64(y[2*n+j]), 0), "impl=%s finite row", impl)
					}
				}
			})
		}
	}
}

// TestMatMulKAroundChunks runs every float format at K just around the
// 64-byte chunk (16 f32, 32 half, 64 FP8 elements) and at the M values that
// exercise each register-blocked kernel and its tails, against the generic
// kernel, with 1 and 3 threads.
func TestMatMulKAroundChunks(t *testing.T) {
	ks := []int{1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 192, 4096 + 64}
	ms := []int{1, 2, 3, 4, 5, 7, 9}
	if testing.Short() {
		ks, ms = []int{15, 32, 65, 129}, []int{1, 3, 5}
	}
	for _, ft := range fpFormats {
		for _, prec := range []Precision{Fast, Exact} {
			t.Run(fmt.Sprintf("%s/%s", ft, prec), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(uint64(ft), 11))
				for _, k := range ks {
					if !ft.RowOK(k) {
						k = roundUp(k, ft.BlockElems())
					}
					n := 4*rng.IntN(5) + rng.IntN(4) + 1
					rows := quantRows(rng, ft, n, k)
					w, err := Pack(ft, n, k, rows, 0)
					require.NoError(t, err)
					w.Precision = prec
					for _, m := range ms {
						x := make([]float32, m*k)
						for i := range x {
							x[i] = float32(rng.NormFloat64())
						}
						want, mag := reference(w, rows, x, m)
						generic := genericAt(w, x, m)
						for _, impl := range Impls() {
							what := fmt.Sprintf("impl=%s n=%d k=%d m=%d", impl, n, k, m)
							y := make([]float32, m*n)
							impl.MatMul(nil, y, w, x, m)
							checkClose(t, y, want, mag, refTolerance(ft, prec), what+" vs fp64")
							checkClose(t, y, generic(impl), mag, implTolerance, what+" vs generic")
						}
					}
				}
			})
		}
	}
}

// TestMatMulBF16ActivationRounding pins the Fast activation conversion of
// the bf16 paths: round to nearest even, subnormals flushed to zero.
func TestMatMulBF16ActivationRounding(t *testing.T) {
	for _, tt := range []struct {
		x    float32
		want float32
	}{
		{1, 1},
		{math.Float32frombits(0x3F808000), 1}, // tie, to even
		{math.Float32frombits(0x3F818000), math.Float32frombits(0x3F820000)}, // tie, to even (up)
		{math.Float32frombits(0x3F808001), math.Float32frombits(0x3F810000)}, // above the tie
		{math.Float32frombits(0x00400000), 0},                                // subnormal
		{-math.Float32frombits(0x00000001), float32(math.Copysign(0, -1))},   // -subnormal
		{math.MaxFloat32, float32(math.Inf(1))},                              // rounds past the largest bf16
		{math.Float32frombits(0x00800000), math.Float32frombits(0x00800000)}, // smallest normal
	} {
		got := format.BF16ToFloat32(toBF16(tt.x))
		assert.Equal(t, math.Float32bits(tt.want), math.Float32bits(got), "toBF16(%g)", tt.x)
	}
	// Through MatMul: one weight of 1 picks the converted activation.
	rows := make([]byte, 2*2)
	binary.LittleEndian.PutUint16(rows, format.Float32ToBF16(1))
	w, err := Pack(format.BF16, 1, 2, rows, 0)
	require.NoError(t, err)
	x := []float32{math.Float32frombits(0x3F808001), 5}
	for _, impl := range Impls() {
		y := make([]float32, 1)
		w.Precision = Fast
		impl.MatMul(nil, y, w, x, 1)
		want := math.Float32frombits(0x3F810000)
		if w.Path(impl) == PathF32FMA {
			want = x[0]
		}
		assert.Equal(t, want, y[0], "impl=%s fast", impl)
		w.Precision = Exact
		impl.MatMul(nil, y, w, x, 1)
		assert.Equal(t, x[0], y[0], "impl=%s exact", impl)
	}
}

// TestMXScaledPath checks when MX matrices take the kernels that apply the
// block scales to the bf16 weights (mxScaledOK), and that those kernels
// agree with the generic kernel at the ends of the allowed scale range.
func TestMXScaledPath(t *testing.T) {
	for _, ft := range []format.Type{format.MXF8E4M3, format.MXF8E5M2} {
		t.Run(ft.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ft), 5))
			const n, k, m = 8, 128, 5
			rows := quantRows(rng, ft, n, k)
			w, err := Pack(ft, n, k, rows, 0)
			require.NoError(t, err)
			assert.True(t, w.mxScaledOK(), "quantized weights")

			lo, hi := mxScaledRange(ft)
			rb := ft.RowBytes(k)
			for j := range n {
				for b := range k / 32 {
					rows[j*rb+b*33] = [...]byte{lo, hi, lo + 1, hi - 1}[(j+b)%4]
				}
			}
			w, err = Pack(ft, n, k, rows, 0)
			require.NoError(t, err)
			require.True(t, w.mxScaledOK(), "scales at the ends of the range")
			x := make([]float32, m*k)
			for i := range x {
				x[i] = float32(rng.NormFloat64() * 0x1p-30)
			}
			want, mag := reference(w, rows, x, m)
			for _, prec := range []Precision{Fast, Exact} {
				w.Precision = prec
				generic := genericAt(w, x, m)
				for _, impl := range Impls() {
					y := make([]float32, m*n)
					impl.MatMul(nil, y, w, x, m)
					what := fmt.Sprintf("impl=%s %s", impl, prec)
					checkClose(t, y, want, mag, refTolerance(ft, prec), what+" vs fp64")
					checkClose(t, y, generic(impl), mag, implTolerance, what+" vs generic")
				}
			}

			for _, bad := range []struct {
				at  int
				val byte
			}{{0, lo - 1}, {33, hi + 1}, {5, 0x7F}, {0, 0xFF}} {
				r := append([]byte(nil), rows...)
				r[3*rb+bad.at] = bad.val
				w, err := Pack(ft, n, k, r, 0)
				require.NoError(t, err)
				assert.False(t, w.mxScaledOK(), "byte %d = %#x", bad.at, bad.val)
			}
		})
	}
}

// TestMatMulBlocking covers the cache blocking of the float-format drivers
// (fp_amd64.go): several K blocks, weight-group blocks (prefetching the
// next one) and activation-row blocks, with a partial last group and
// batches that mix kernel sizes, against the generic kernel, with 1 and 3
// threads.
func TestMatMulBlocking(t *testing.T) {
	shapes := [][3]int{{8, 39, 4160}, {7, 70, 2100}, {13, 23, 4200}, {20, 45, 4200}, {130, 9, 4160}}
	if testing.Short() {
		shapes = shapes[:3]
	}
	for _, ft := range []format.Type{format.F8E4M3Row, format.BF16} {
		t.Run(ft.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ft), 13))
			for _, sh := range shapes {
				m, n, k := sh[0], sh[1], sh[2]
				rows := quantRows(rng, ft, n, k)
				w, err := Pack(ft, n, k, rows, 0)
				require.NoError(t, err)
				w.Precision = Fast
				x := make([]float32, m*k)
				for i := range x {
					x[i] = float32(rng.NormFloat64())
				}
				_, mag := reference(w, rows, x, m)
				generic := genericAt(w, x, m)
				for _, impl := range Impls() {
					what := fmt.Sprintf("impl=%s m=%d n=%d k=%d", impl, m, n, k)
					y := make([]float32, m*n)
					impl.MatMul(nil, y, w, x, m)
					checkClose(t, y, generic(impl), mag, implTolerance, what+" vs generic")
					y2 := make([]float32, m*n)
					pool := NewPool(3)
					impl.MatMul(pool, y2, w, x, m)
					require.NoError(t, pool.Close())
					assert.Equal(t, y, y2, "%s: pooled result differs", what)
				}
			}
		})
	}
}
