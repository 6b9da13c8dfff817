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

var int8Formats = []*int8Format{mxfp4Int8, nvfp4Int8, q40Int8, q80Int8}

// refQuantizeBlock is the activation quantizer written out plainly: scale
// amax/127, q = round-half-even(x · (127/amax)) in float32; NaN/Inf blocks
// get a NaN scale, blocks below 2^-96 a zero one.
func refQuantizeBlock(x []float32) (q [32]int8, d float32) {
	var amax float64
	for _, v := range x {
		a := math.Abs(float64(v))
		if math.IsNaN(a) || math.IsInf(a, 0) {
			return q, float32(math.NaN())
		}
		amax = math.Max(amax, a)
	}
	if amax < math.Ldexp(1, -96) {
		return q, 0
	}
	a := float32(amax)
	id := float32(127) / a
	for j, v := range x {
		q[j] = int8(math.RoundToEven(float64(float32(v * id))))
	}
	return q, a / 127
}

// edgeBlocks are activation blocks with defined special results.
func edgeBlocks() map[string][]float32 {
	blk := func(f func(j int) float32) []float32 {
		b := make([]float32, 32)
		for j := range b {
			b[j] = f(j)
		}
		return b
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	return map[string][]float32{
		"zero":      blk(func(int) float32 { return 0 }),
		"nan":       blk(func(j int) float32 { return []float32{1, nan}[j&1] }),
		"inf":       blk(func(j int) float32 { return []float32{1, inf}[j&1] }),
		"minus inf": blk(func(j int) float32 { return []float32{1, -inf}[j&1] }),
		"tiny":      blk(func(j int) float32 { return float32(j) * 1e-31 }),
		"subnormal": blk(func(j int) float32 { return math.Float32frombits(uint32(j)) }),
		"small":     blk(func(j int) float32 { return float32(j+1) * 1e-28 }),
		"huge":      blk(func(j int) float32 { return float32(j-16) * 1e30 }),
		"max":       blk(func(j int) float32 { return []float32{math.MaxFloat32, -math.MaxFloat32, 1}[j%3] }),
		// amax 127 makes the reciprocal 1, so x.5 values test the ties.
		"ties":      blk(func(j int) float32 { return []float32{127, 2.5, -2.5, 3.5, -3.5, 0.5, -0.5, 1.5}[j%8] }),
		"one large": blk(func(j int) float32 { return []float32{100, 0.3}[min(j, 1)] }),
	}
}

func TestQuantizeBlock(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	cases := edgeBlocks()
	for i := range 50 {
		cases[fmt.Sprintf("random %d", i)] = randMatrix(rng, 1, 1+rng.IntN(32))
	}
	for name, x := range cases {
		t.Run(name, func(t *testing.T) {
			var q [32]int8
			for j := range q {
				q[j] = 99 // must be overwritten, also past len(x)
			}
			d := quantizeBlock(q[:], x)
			wantQ, wantD := refQuantizeBlock(x)
			assert.Equal(t, wantQ, q)
			if math.IsNaN(float64(wantD)) {
				assert.True(t, math.IsNaN(float64(d)), "d = %g, want NaN", d)
			} else {
				assert.Equal(t, wantD, d)
			}
		})
	}
	t.Run("ties round to even", func(t *testing.T) {
		var q [32]int8
		quantizeBlock(q[:], edgeBlocks()["ties"])
		assert.Equal(t, []int8{127, 2, -2, 4, -4, 0, 0, 2}, q[:8])
	})
}

// corruptScale overwrites the scale of block b of row r in the file rows.
func corruptScale(t format.Type, rows []byte, k, r, b int, code uint16) {
	o := r*t.RowBytes(k) + b*t.BlockBytes()
	if t == format.Q4_0 || t == format.Q8_0 {
		binary.LittleEndian.PutUint16(rows[o:], code)
	} else {
		rows[o] = uint8(code)
	}
}

// TestInt8BadWeightScales checks the defined result of malformed block
// scales: every output of the affected weight row is NaN (NaN scales) or
// non-finite (infinite f16 scales), at every tier and precision, and the
// other rows are unaffected.
func TestInt8BadWeightScales(t *testing.T) {
	cases := []struct {
		t    format.Type
		code uint16
		nan  bool
	}{
		{format.MXFP4, 0xFF, true},
		{format.NVFP4, 0x7F, true},
		{format.NVFP4, 0xFF, true},
		{format.NVFP4, 0x80, true},
		{format.NVFP4, 0xB8, true},
		{format.Q4_0, 0x7E00, true},
		{format.Q8_0, 0x7E00, true},
		{format.Q4_0, 0x7C00, false},
		{format.Q8_0, 0xFC00, false},
	}
	const n, k, m, bad = 9, 384, 5, 6
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%#x", tc.t, tc.code), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(tc.code)))
			src := randMatrix(rng, n, k)
			opt := format.Options{TensorScale: format.NVFP4TensorScale(src)}
			rb := tc.t.RowBytes(k)
			rows := make([]byte, n*rb)
			for i := range n {
				format.QuantizeRow(tc.t, rows[i*rb:(i+1)*rb], src[i*k:(i+1)*k], opt)
			}
			corruptScale(tc.t, rows, k, bad, 5, tc.code)
			w, err := Pack(tc.t, n, k, rows, opt.TensorScale)
			require.NoError(t, err)
			x := randMatrix(rng, m, k)
			clear(x[k+5*tc.t.BlockElems() : k+6*tc.t.BlockElems()]) // a zero block under the bad one
			for _, prec := range []Precision{Fast, Exact} {
				w.Precision = prec
				for _, impl := range Impls() {
					y := make([]float32, m*n)
					impl.MatMul(nil, y, w, x, m)
					for i := range m {
						for j := range n {
							v := float64(y[i*n+j])
							what := fmt.Sprintf("impl=%s %s y[%d][%d] = %g", impl, prec, i, j, v)
							switch {
							case j != bad:
								assert.False(t, math.IsNaN(v) || math.IsInf(v, 0), what)
							case tc.nan:
								assert.True(t, math.IsNaN(v), what)
							default:
								assert.True(t, math.IsNaN(v) || math.IsInf(v, 0), what)
							}
						}
					}
				}
			}
		})
	}
}

// TestInt8BadActivations checks the defined results of special activation
// blocks: at Fast precision a NaN or ±Inf anywhere in an activation row
// makes all its outputs NaN; zero, tiny and subnormal blocks contribute
// nothing; huge finite values stay finite.
func TestInt8BadActivations(t *testing.T) {
	const n, k = 9, 256
	edges := edgeBlocks()
	names := []string{"zero", "nan", "inf", "minus inf", "tiny", "subnormal", "small", "huge", "ties", "one large"}
	for _, f := range int8Formats {
		t.Run(f.t.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(8, uint64(f.t)))
			w, err := Quantize(f.t, n, k, randMatrix(rng, n, k), format.Options{})
			require.NoError(t, err)
			m := len(names)
			x := randMatrix(rng, m, k)
			for i, name := range names {
				copy(x[i*k+64:], edges[name]) // block 2 of row i
			}
			for _, impl := range Impls() {
				y := make([]float32, m*n)
				impl.MatMul(nil, y, w, x, m)
				for i, name := range names {
					for j := range n {
						v := float64(y[i*n+j])
						what := fmt.Sprintf("impl=%s block %s: y[%d] = %g", impl, name, j, v)
						switch name {
						case "nan", "inf", "minus inf":
							assert.True(t, math.IsNaN(v), what)
						default:
							assert.False(t, math.IsNaN(v) || math.IsInf(v, 0), what)
						}
					}
				}
				// Blocks below 2^-96 count as zero: same result as zeros
				// (at the same m: the kernels for one and for several
				// activation rows may sum in different orders).
				xz := append([]float32(nil), x...)
				clear(xz[4*k+64 : 4*k+96])
				yz := make([]float32, m*n)
				impl.MatMul(nil, yz, w, xz, m)
				assert.Equal(t, yz[4*n:5*n], y[4*n:5*n], "impl=%s: tiny block differs from a zero block", impl)
			}
		})
	}
}

// TestInt8ErrorBound checks the Fast outputs against the fp64 product with
// a bound computed from the actual quantized activations x̂ = q·d:
// |y - Σ x·w| <= Σ |w|·|x - x̂| + 1e-5·Σ |x̂·w|, the first term being the
// activation rounding (at most d/2 = amax/254 per element) and the second
// the f32 arithmetic. This is the justification of refTolerance's int8
// entry: for the tests' normal activations amax/254 is about 1% of the
// mean |x|, and the signed errors largely cancel.
func TestInt8ErrorBound(t *testing.T) {
	const m = 6
	for _, f := range int8Formats {
		for _, k := range []int{32, 160, 1024} {
			if !f.t.RowOK(k) {
				continue
			}
			t.Run(fmt.Sprintf("%s/k=%d", f.t, k), func(t *testing.T) {
				const n = 13
				rng := rand.New(rand.NewPCG(9, uint64(k)))
				w, err := Quantize(f.t, n, k, randMatrix(rng, n, k), format.Options{})
				require.NoError(t, err)
				x := randMatrix(rng, m, k)
				xh := make([]float64, len(x))
				for i := 0; i < len(x); i += 32 {
					q, d := refQuantizeBlock(x[i:min(i+32, len(x))])
					for j := i; j < min(i+32, len(x)); j++ {
						xh[j] = float64(q[j-i]) * float64(d)
					}
				}
				wr := make([]float32, k)
				for _, impl := range Impls() {
					y := make([]float32, m*n)
					impl.MatMul(nil, y, w, x, m)
					for j := range n {
						w.Row(j, wr)
						for i := range m {
							var exact, bound, mag float64
							for kk, wv := range wr {
								exact += float64(x[i*k+kk]) * float64(wv)
								bound += math.Abs(float64(wv)) * math.Abs(float64(x[i*k+kk])-xh[i*k+kk])
								mag += math.Abs(xh[i*k+kk] * float64(wv))
							}
							bound += 1e-5*mag + 1e-30
							assert.LessOrEqual(t, math.Abs(float64(y[i*n+j])-exact), bound,
								"impl=%s y[%d][%d] = %g, exact %g", impl, i, j, y[i*n+j], exact)
						}
					}
				}
			})
		}
	}
}

// TestMXFP4ScaleBytes checks MXFP4 matrices across the range of E8M0 scale
// bytes: the assembly tiers take 2^(e-127) from the stored byte and halve
// their sums, which is exact for e in [1, 0xFD] and for e = 0 on zero
// codes; the other bytes (a nonzero block at e = 0, 0xFE, NaN's 0xFF) make
// the whole matrix run the generic kernels, so every tier gives exactly
// the generic result. The activations are scaled to keep the products
// normal f32 numbers, where the tiers differ only in summation order.
func TestMXFP4ScaleBytes(t *testing.T) {
	const n, k, m = 9, 384, 3
	cases := []struct {
		e       byte
		xExp    int
		zero    bool // all codes ±0
		generic bool
	}{
		{0x00, 0, true, false},
		{0x00, 100, false, true},
		{0x01, 100, false, false},
		{0x7F, 0, false, false},
		{0xFC, -110, false, false}, // 6·2^125: still a finite f32 weight
		{0xFE, -110, false, true},
		{0xFF, 0, false, true},
	}
	bb := format.MXFP4.BlockBytes()
	for _, tc := range cases {
		t.Run(fmt.Sprintf("e=%#x/zero=%t", tc.e, tc.zero), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.e), 3))
			rows := make([]byte, n*format.MXFP4.RowBytes(k))
			for b := 0; b < len(rows); b += bb {
				rows[b] = tc.e
				for i := b + 1; i < b+bb; i++ {
					if tc.zero {
						rows[i] = byte(rng.IntN(4)) * 0x44 & 0x88 // ±0 nibbles
					} else {
						rows[i] = byte(rng.IntN(256))
					}
				}
			}
			w, err := Pack(format.MXFP4, n, k, rows, 0)
			require.NoError(t, err)
			require.Equal(t, tc.generic, w.generic, "generic kernels only")
			x := randMatrix(rng, m, k)
			for i := range x {
				x[i] = float32(math.Ldexp(float64(x[i]), tc.xExp))
			}
			checkAgainstGeneric(t, w, rows, x, m, "")
		})
	}
}

// checkAgainstGeneric runs every Impl on w and x at both precisions
// against the generic kernel: within implTolerance of Σ|x·w|, or bit for
// bit (NaN as NaN) if w runs the generic kernels anyway.
func checkAgainstGeneric(t *testing.T, w *Matrix, rows []byte, x []float32, m int, what string) {
	t.Helper()
	_, mag := reference(w, rows, x, m)
	for _, prec := range []Precision{Fast, Exact} {
		w.Precision = prec
		generic := genericAt(w, x, m)
		for _, impl := range Impls() {
			y := make([]float32, m*w.N)
			impl.MatMul(nil, y, w, x, m)
			what := fmt.Sprintf("%simpl=%s %s", what, impl.Name, prec)
			if !w.generic {
				checkClose(t, y, generic(impl), mag, implTolerance, what+" vs generic")
				continue
			}
			for i, want := range generic(impl) {
				got := float64(y[i])
				if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
					t.Fatalf("%s: y[%d] = %g, want the generic kernel's %g", what, i, got, want)
				}
			}
		}
	}
}

// TestNVFP4ScaleBytes checks the E4M3 scale bytes the assembly kernels
// load as f16 (b<<7): zero, every subnormal and normal byte up to 0x7E run
// the fast kernels, against the generic one, in one row (R1) and in the D
// kernels; a NaN byte (0x7F) or one with the sign bit set make the
// matrix run the generic kernels, bit for bit.
func TestNVFP4ScaleBytes(t *testing.T) {
	const n, k = 9, 384
	cases := []struct {
		name    string
		bad     byte // one block's scale, or 0 for none
		generic bool
	}{{"all-bytes", 0, false}, {"nan", 0x7F, true}, {"negative", 0x88, true}, {"negative-zero", 0x80, true}}
	bb := format.NVFP4.BlockBytes()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.bad), 4))
			rows := make([]byte, n*format.NVFP4.RowBytes(k))
			for i := range rows {
				rows[i] = byte(rng.IntN(256))
			}
			for b, j := 0, 0; b < len(rows); b, j = b+bb, j+1 {
				rows[b] = byte(j % 0x7F) // every byte 0x00-0x7E
			}
			if tc.bad != 0 {
				rows[5*bb] = tc.bad
			}
			w, err := Pack(format.NVFP4, n, k, rows, 0.37)
			require.NoError(t, err)
			require.Equal(t, tc.generic, w.generic, "generic kernels only")
			for _, m := range []int{1, 3} {
				checkAgainstGeneric(t, w, rows, randMatrix(rng, m, k), m, fmt.Sprintf("m=%d ", m))
			}
		})
	}
}

// TestInt8ScaleStorage checks that every int8-path format says how it
// stores its scales, in exactly one way, that only NVFP4 has two blocks
// per dword lane (halves), and that the packed matrix holds no more than
// the file's bytes (codes and scales as in the file, K padded to a chunk,
// N to a group) and the kernels' 64 bytes of padding.
func TestInt8ScaleStorage(t *testing.T) {
	for _, f := range int8Formats {
		n := 0
		for _, set := range []bool{f.scaleE4, f.scaleF16, f.scale8} {
			if set {
				n++
			}
		}
		assert.Equal(t, 1, n, "%s: scaleE4, scaleF16, scale8", f.t)
		assert.Equal(t, f.scaleE4, f.halves(), "%s: halves", f.t)
		const rows, k = 8, 4 * i8ChunkK
		w, err := Quantize(f.t, rows, k, make([]float32, rows*k), format.Options{})
		require.NoError(t, err)
		assert.Equal(t, rows*f.t.RowBytes(k)+64, len(w.data), "%s: packed bytes", f.t)
	}
}
