//go:build amd64 && gc && !noasm

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/cpuid/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// TestQuantizeChunks compares the AVX-512 and AVX2 activation quantizers
// with quantizeChunk bit for bit, special blocks included, in both
// activation orders and with interleaved rows.
func TestQuantizeChunks(t *testing.T) {
	if Best().Tier < AVX2 {
		t.Skip("no AVX2")
	}
	rng := rand.New(rand.NewPCG(10, 11))
	var specials [][]float32
	for _, b := range edgeBlocks() {
		specials = append(specials, b)
	}
	quantizers := []struct {
		tier  Tier
		name  string
		quant chunkQuantizer
	}{{AVX2, "avx2", quantizeChunks256}, {AVX512, "avx512", quantizeChunks512}}
	for _, q := range quantizers {
		if Best().Tier < q.tier {
			continue
		}
		for _, f := range int8Formats {
			for _, rb := range []int{1, 4} {
				t.Run(fmt.Sprintf("%s/%s/rb=%d", q.name, f.t, rb), func(t *testing.T) {
					const chunks = 7
					x := randMatrix(rng, 1, chunks*i8ChunkK)
					for i := range 10 {
						copy(x[32*rng.IntN(chunks*4):], specials[i%len(specials)])
					}
					recs := (chunks-1)*rb + 1
					xq, sa, cr := make([]int8, recs*i8ChunkK), make([]float32, recs*i8Dwords), make([]int32, recs*i8Dwords)
					q.quant(f, x, rb, xq, sa, cr)
					for c := range chunks {
						r := c * rb
						wq, ws, wc := make([]int8, i8ChunkK), make([]float32, i8Dwords), make([]int32, i8Dwords)
						f.quantizeChunk(wq, ws, wc, x[c*i8ChunkK:(c+1)*i8ChunkK])
						assert.Equal(t, wq, xq[r*i8ChunkK:(r+1)*i8ChunkK], "chunk %d codes", c)
						assert.Equal(t, wc, cr[r*i8Dwords:(r+1)*i8Dwords], "chunk %d corrections", c)
						for d, v := range ws {
							got := sa[r*i8Dwords+d]
							if math.IsNaN(float64(v)) {
								assert.True(t, math.IsNaN(float64(got)), "chunk %d scale %d = %g, want NaN", c, d, got)
							} else {
								assert.Equal(t, v, got, "chunk %d scale %d", c, d)
							}
						}
					}
				})
			}
		}
	}
}

// TestInt8CallSplits runs the int8 kernels on shapes that exercise how
// rowsAsm and rowsDec cut the work: more groups than one call takes, N
// ending inside a group or a panel, several activation tiles, on one and
// on two threads, against the generic kernel (same arithmetic, so within
// implTolerance of Σ|x·w|).
func TestInt8CallSplits(t *testing.T) {
	cases := []struct{ n, k, m int }{
		{4 * (4*5 + 3), 256, 1},       // groups not a multiple of a panel's
		{4*i8CallGroups + 44, 128, 1}, // two calls, the second one short
		{4*i8CallGroups + 44, 128, 2}, // a block of four rows, two short
		{4*i8CallGroups + 44, 256, 7}, // two blocks of four rows
		{40, 4096, 70},                // three tiles of activation rows
	}
	if testing.Short() {
		cases = cases[:4]
	}
	rng := rand.New(rand.NewPCG(12, 13))
	pool := NewPool(2)
	defer func() { require.NoError(t, pool.Close()) }()
	for _, f := range int8Formats {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/n=%d/k=%d/m=%d", f.t, c.n, c.k, c.m), func(t *testing.T) {
				w, err := Quantize(f.t, c.n, c.k, randMatrix(rng, c.n, c.k), format.Options{})
				require.NoError(t, err)
				x := randMatrix(rng, c.m, c.k)
				want := genericAt(w, x, c.m)
				mag := make([]float64, c.m*c.n)
				row := make([]float32, c.k)
				for j := range c.n {
					w.Row(j, row)
					for i := range c.m {
						for k, v := range row {
							mag[i*c.n+j] += math.Abs(float64(x[i*c.k+k]) * float64(v))
						}
					}
				}
				for _, impl := range Impls()[1:] {
					for _, p := range []*Pool{nil, pool} {
						y := make([]float32, c.m*c.n)
						impl.MatMul(p, y, w, x, c.m)
						checkClose(t, y, want(impl), mag, implTolerance, fmt.Sprintf("impl=%s threads=%d", impl, p.Threads()))
					}
				}
			})
		}
	}
}

// TestInt8DecKernels checks the D kernels (decoded panels, large M) where
// the dispatch selects them: the AVX-512 gemm of every int8 format and
// the AVX2 gemm of all but Q8_0 (with and without AVX-VNNI; Q8_0 with
// AVX-VNNI only, TestInt8Q8AVX2NeedsVNNI) must pick them for every M >= 4
// (decMinM: the few-rows kernels take 2 and 3),
// and rowsDec must match the generic kernel
// (implTolerance of Σ|x·w|) on M around the block of four rows and the
// tile of decMT rows, K ending inside a panel of decKT chunks and inside a
// chunk, N ending inside a panel of decG groups and inside a group, with
// misaligned activations and outputs, on one and two threads.
func TestInt8DecKernels(t *testing.T) {
	if Best().Tier < AVX2 {
		t.Skip("no AVX2")
	}
	ms := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 17, 33, 255, 256, 257}
	cases := []decCase{
		{13, 1056, ms}, {50, 160, ms}, {4, 32, ms},
		{100, 2080, []int{2, 8, 9, 70}}, // two threads, three panels of chunks
	}
	if testing.Short() {
		cases = cases[:2]
		cases[0].ms, cases[1].ms = []int{2, 5, 8, 65}, []int{3, 9}
	}
	rng := rand.New(rand.NewPCG(14, 15))
	pool := NewPool(2)
	defer func() { require.NoError(t, pool.Close()) }()
	tiers := []struct {
		tier    Tier
		vnni    bool // the AVX2 tier with AVX-VNNI
		kernels map[*int8Format]*int8Kernels
		formats []*int8Format
	}{
		{AVX2, false, int8AVX2, []*int8Format{mxfp4Int8, nvfp4Int8, q40Int8}},
		{AVX2, true, int8AVX2, int8Formats},
		{AVX512, false, int8AVX512, int8Formats},
	}
	defer func(v bool) { avxVNNI = v }(avxVNNI)
	for _, tc := range tiers {
		if Best().Tier < tc.tier || tc.vnni && !cpuid.CPU.Supports(cpuid.AVXVNNI) {
			continue
		}
		avxVNNI = tc.vnni
		for _, f := range tc.formats {
			name := allImpls[tc.tier].Name
			if tc.vnni {
				name += "+vnni"
			}
			t.Run(name+"/"+f.t.String(), func(t *testing.T) {
				testDecKernels(t, allImpls[tc.tier], f, tc.kernels[f], ms, cases, rng, pool)
			})
		}
	}
}

// int8Case returns m random activation rows for w, misaligned by off
// floats in a guarded buffer, the generic kernel's outputs at impl's
// precision and their Σ|x·w|.
func int8Case(rng *rand.Rand, impl *Impl, w *Matrix, m int) (x []float32, off int, want, mag []float64) {
	off = 1 + m%3
	x, _ = guarded(m*w.K, off)
	copy(x, randMatrix(rng, m, w.K))
	return x, off, genericAt(w, x, m)(impl), int8Mag(w, x, m)
}

// checkPaths checks rows (a rows function writing all of w's outputs for
// the m activation rows x into y, which starts off floats into a guarded
// buffer) and then impl's MatMul on one and two threads against want
// (implTolerance of mag), with the guards intact.
func checkPaths(t *testing.T, impl *Impl, w *Matrix, x []float32, m, off int, want, mag []float64, pool *Pool, what string, rows func(y []float32)) {
	t.Helper()
	n := w.N
	y, whole := guarded(m*n, off)
	rows(y)
	checkGuards(t, whole, m*n, off, what)
	checkClose(t, y, want, mag, implTolerance, what)
	for _, p := range []*Pool{nil, pool} {
		y, whole := guarded(m*n, off)
		impl.MatMul(p, y, w, x, m)
		what := fmt.Sprintf("MatMul threads=%d", p.Threads())
		checkGuards(t, whole, m*n, off, what)
		checkClose(t, y, want, mag, implTolerance, what)
	}
}

// decCase is a matrix shape and the activation rows TestInt8DecKernels
// runs it with.
type decCase struct {
	n, k int
	ms   []int
}

// testDecKernels is TestInt8DecKernels for one tier's kernels k of f.
func testDecKernels(t *testing.T, impl *Impl, f *int8Format, k *int8Kernels, ms []int, cases []decCase, rng *rand.Rand, pool *Pool) {
	require.NotEqual(t, decNone, k.dec, "%s %s: no D kernel", impl.Name, f.t)
	for _, m := range ms {
		assert.Equal(t, m >= 4, k.useDec(m), "%s %s: D kernels for m=%d", impl.Name, f.t, m)
	}
	for _, c := range cases {
		n, kk := c.n, c.k
		w, err := Quantize(f.t, n, kk, randMatrix(rng, n, kk), format.Options{})
		require.NoError(t, err)
		for _, m := range c.ms {
			t.Run(fmt.Sprintf("n=%d/k=%d/m=%d", n, kk, m), func(t *testing.T) {
				x, off, want, mag := int8Case(rng, impl, w, m)
				// rowsDec itself, on its own preparation.
				s := new(scratch)
				f.prep(nil, w, x, m, decR, k.quant, k.rearrange, s)
				checkPaths(t, impl, w, x, m, off, want, mag, pool, "rowsDec", func(y []float32) { f.rowsDec(k, w, y, m, 0, n, s) })
			})
		}
	}
}

// TestInt8RMKernels checks the few-rows kernels of every int8 format on
// AVX-512 (int8Dot*D512RM) and on AVX2 (int8DotNib*D256R2, R3, with and
// without AVX-VNNI; Q8_0's with AVX-VNNI only) against the generic
// kernel (implTolerance of Σ|x·w|): the dispatch must pick them for M = 2
// and 3 only; rowsAsmM on its own preparation and MatMul on one and two
// threads must match on N ending inside a group and spanning several
// calls of rmGroups groups, K ending inside a chunk, misaligned
// activations and outputs; and the AVX-512 kernel itself, called
// directly, for row counts the dispatch does not use (1 to 7), so that
// its row loop holds for any m.
func TestInt8RMKernels(t *testing.T) {
	if Best().Tier < AVX2 {
		t.Skip("no AVX2")
	}
	rng := rand.New(rand.NewPCG(20, 21))
	pool := NewPool(2)
	defer func() { require.NoError(t, pool.Close()) }()
	defer func(v bool) { avxVNNI = v }(avxVNNI)
	tiers := []struct {
		tier    Tier
		vnni    bool
		kernels map[*int8Format]*int8Kernels
		formats []*int8Format
		direct  int // the most rows to call the kernel with directly
	}{
		{AVX2, false, int8AVX2, []*int8Format{mxfp4Int8, nvfp4Int8, q40Int8}, 3},
		{AVX2, true, int8AVX2, int8Formats, 3},
		{AVX512, false, int8AVX512, int8Formats, 7},
	}
	shapes := [][2]int{{13, 1056}, {50, 160}, {4, 32}, {4*rmGroups*2 + 9, 288}}
	for _, tc := range tiers {
		if Best().Tier < tc.tier || tc.vnni && !cpuid.CPU.Supports(cpuid.AVXVNNI) {
			continue
		}
		avxVNNI = tc.vnni
		impl := allImpls[tc.tier]
		name := impl.Name
		if tc.vnni {
			name += "+vnni"
		}
		for _, f := range tc.formats {
			k := tc.kernels[f]
			require.NotNil(t, k.rm, "%s %s: no few-rows kernel", name, f.t)
			for m := 1; m <= 9; m++ {
				assert.Equal(t, m >= 2 && m <= 3, k.useRM(m), "%s %s: few-rows kernel for m=%d", name, f.t, m)
			}
			for _, sh := range shapes {
				n, kk := sh[0], sh[1]
				w, err := Quantize(f.t, n, kk, randMatrix(rng, n, kk), format.Options{})
				require.NoError(t, err)
				chunks := w.kp / i8ChunkK
				for m := 1; m <= tc.direct; m++ {
					t.Run(fmt.Sprintf("%s/%s/n=%d/k=%d/m=%d", name, f.t, n, kk, m), func(t *testing.T) {
						x, off, want, mag := int8Case(rng, impl, w, m)
						s := new(scratch)
						f.prep(nil, w, x, m, m, k.quant, k.rearrange, s)
						if k.useRM(m) {
							checkPaths(t, impl, w, x, m, off, want, mag, pool, "rowsAsmM", func(y []float32) { f.rowsAsmM(k.rm, w, y, m, 0, n, s) })
						}
						if m < 2 && tc.tier == AVX2 {
							return
						}
						// The kernel directly, all groups in one call.
						groups := w.np / i8Group
						out := make([]float32, m*groups*i8Group)
						acc := make([]float32, m*16)
						sstride := f.spc * f.scaleBytes()
						k.rm(&w.data[0], &w.data[f.scaleOffset(w)], sstride, &s.i8[0], &s.sc[0], &s.i32[0], chunks, groups, &f.lut, &out[0], m, &acc[0], 4*groups*i8Group)
						y := make([]float32, m*n)
						for r := range m {
							for j := range n {
								y[r*n+j] = out[r*groups*i8Group+j] * f.asmScale(w)
							}
						}
						checkClose(t, y, want, mag, implTolerance, "kernel")
					})
				}
			}
		}
	}
}

// TestInt8Q8AVX2NeedsVNNI checks that without AVX-VNNI the AVX2 gemm of
// Q8_0 runs neither D nor few-rows kernels (its codes plus 128 would
// overflow VPMADDUBSW) but the one-row kernel, and still matches the
// generic kernel at M = 2, 3 and 8.
func TestInt8Q8AVX2NeedsVNNI(t *testing.T) {
	if Best().Tier < AVX2 {
		t.Skip("no AVX2")
	}
	defer func(v bool) { avxVNNI = v }(avxVNNI)
	avxVNNI = false
	k := int8AVX2[q80Int8]
	rng := rand.New(rand.NewPCG(22, 23))
	impl := allImpls[AVX2]
	w, err := Quantize(q80Int8.t, 50, 288, randMatrix(rng, 50, 288), format.Options{})
	require.NoError(t, err)
	for _, m := range []int{2, 3, 8} {
		assert.False(t, k.useDec(m), "m=%d: D kernels", m)
		assert.False(t, k.useRM(m), "m=%d: few-rows kernel", m)
		x, _, want, mag := int8Case(rng, impl, w, m)
		y := make([]float32, m*w.N)
		impl.MatMul(nil, y, w, x, m)
		checkClose(t, y, want, mag, implTolerance, fmt.Sprintf("m=%d", m))
	}
}

// TestInt8DecKernelsScales runs the D kernels of MXFP4 (m = 8), whose
// gemm kernel applies the E8M0 block scales as exponents (VSCALEFPS in
// int8GemmDE512), and its few-rows kernel (m = 2), on weights whose scales
// sit far from 1 in both directions, against the generic kernel.
func TestInt8DecKernelsScales(t *testing.T) {
	if Best().Tier < AVX512 {
		t.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(18, 19))
	impl := allImpls[AVX512]
	const n, k = 50, 1056
	for _, scale := range []float32{0x1p-100, 0x1p-20, 0x1p20, 0x1p100} {
		for _, m := range []int{2, 8} {
			t.Run(fmt.Sprintf("scale=%g/m=%d", scale, m), func(t *testing.T) {
				wf := randMatrix(rng, n, k)
				for i := range wf {
					wf[i] *= scale
				}
				w, err := Quantize(mxfp4Int8.t, n, k, wf, format.Options{})
				require.NoError(t, err)
				x := randMatrix(rng, m, k)
				want := genericAt(w, x, m)(impl)
				y := make([]float32, m*n)
				impl.MatMul(nil, y, w, x, m)
				checkClose(t, y, want, int8Mag(w, x, m), implTolerance, "MatMul")
			})
		}
	}
}

// int8Mag returns Σ|x·w| of each output of x·Wᵀ.
func int8Mag(w *Matrix, x []float32, m int) []float64 {
	mag := make([]float64, m*w.N)
	row := make([]float32, w.K)
	for j := range w.N {
		w.Row(j, row)
		for i := range m {
			for k, v := range row {
				mag[i*w.N+j] += math.Abs(float64(x[i*w.K+k]) * float64(v))
			}
		}
	}
	return mag
}

// TestInt8KernelsGenerated fails when act_int8_amd64.s differs from what
// act_int8_gen.go writes (run go generate ./kernels).
func TestInt8KernelsGenerated(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run the generator")
	}
	dst := filepath.Join(t.TempDir(), "act_int8_amd64.s")
	cmd := exec.Command(goTool, "run", "act_int8_gen.go", "-o", dst)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "go run act_int8_gen.go: %s", msg)
	want, err := os.ReadFile(dst)
	require.NoError(t, err)
	got, err := os.ReadFile("act_int8_amd64.s")
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "act_int8_amd64.s is stale: run go generate ./kernels")
}

// BenchmarkInt8DecKernels measures the D kernels alone on cache-resident
// data: the panel decoder (GB/s of packed codes and scales) and each
// format's gemm kernel (MXFP4: int8GemmDE512, NVFP4: int8GemmDH512, Q4_0
// as Q8_0: int8GemmD512) over one decoded panel of decKT chunks (GOP/s,
// two per multiply-add); and the few-rows kernel over the same weights,
// which it decodes itself (rm, GOP/s).
func BenchmarkInt8DecKernels(b *testing.B) {
	if Best().Tier < AVX512 {
		b.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(16, 17))
	const n, k = 4 * decG * 4, 4096 // four panels of groups
	for _, f := range int8Formats {
		w, err := Quantize(f.t, n, k, randMatrix(rng, n, k), format.Options{})
		require.NoError(b, err)
		chunks := w.kp / i8ChunkK
		rcb, sstride := f.rowChunkBytes(), f.spc*f.scaleBytes()
		gBytes, gScales := chunks*i8Group*rcb, chunks*i8Group*sstride
		so := f.scaleOffset(w)
		dec := int8AVX512[f].dec
		var panel [decKT * decG * decBytes]byte
		b.Run(fmt.Sprintf("kernel=dec/format=%s", f.t), func(b *testing.B) {
			for b.Loop() {
				for gs := 0; gs < n/i8Group; gs += decG {
					for c0 := 0; c0 < chunks; c0 += decKT {
						dec.decode(&w.data[gs*gBytes+c0*i8Group*rcb], &w.data[so+gs*gScales+c0*i8Group*sstride], sstride, decKT, decG, gBytes, gScales, 0, 0, &f.lut, &panel[0], 128*f.tensorScale(w))
					}
				}
			}
			b.ReportMetric(float64(n/i8Group*(gBytes+gScales))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
	for _, f := range []*int8Format{mxfp4Int8, nvfp4Int8, q40Int8} {
		k8 := int8AVX512[f]
		w, err := Quantize(f.t, 4*decG, k, randMatrix(rng, 4*decG, k), format.Options{})
		require.NoError(b, err)
		chunks := w.kp / i8ChunkK
		rcb, sstride := f.rowChunkBytes(), f.spc*f.scaleBytes()
		gBytes, gScales := chunks*i8Group*rcb, chunks*i8Group*sstride
		var panel [decKT * decG * decBytes]byte
		k8.dec.decode(&w.data[0], &w.data[f.scaleOffset(w)], sstride, decKT, decG, gBytes, gScales, 0, 0, &f.lut, &panel[0], 128*f.tensorScale(w))
		for _, m := range []int{2, 3} {
			s := new(scratch)
			f.prep(nil, w, randMatrix(rng, m, k), m, m, quantizeChunks512, k8.rearrange, s)
			groups := w.np / i8Group
			out := make([]float32, m*groups*i8Group)
			acc := make([]float32, m*16)
			b.Run(fmt.Sprintf("kernel=rm/format=%s/m=%d", f.t, m), func(b *testing.B) {
				for b.Loop() {
					k8.rm(&w.data[0], &w.data[f.scaleOffset(w)], sstride, &s.i8[0], &s.sc[0], &s.i32[0], chunks, groups, &f.lut, &out[0], m, &acc[0], 4*groups*i8Group)
				}
				b.ReportMetric(float64(m*w.N*k*2)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
			})
		}
		for _, nb := range []int{1, 2, 16} {
			m := nb * decR
			s := new(scratch)
			f.prep(nil, w, randMatrix(rng, m, k), m, decR, quantizeChunks512, k8.rearrange, s)
			var acc [decMT * decG * 16]float32
			var out [decMT * decG * i8Group]float32
			b.Run(fmt.Sprintf("kernel=gemm/format=%s/m=%d", f.t, m), func(b *testing.B) {
				for b.Loop() {
					for c0 := 0; c0 < chunks; c0 += decKT {
						rec := c0 * decR
						k8.dec.gemm(&panel[0], &s.i8[rec*i8ChunkK], &s.sc[rec*i8Dwords], &s.i32[rec*i8Dwords], decKT, nb, chunks*decR, &acc[0], c0 == 0, c0+decKT == chunks, &out[0], decG*i8Group*4, &w.data[0], 0, 0, 0, 64)
					}
				}
				b.ReportMetric(float64(m*decG*i8Group*k*2)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GOP/s")
			})
		}
	}
}

// TestGemmPrepGo checks that gemmPrepGo, which the AVX2 kernels use,
// rearranges records exactly as int8GemmPrep512 and, with halves (NVFP4),
// int8GemmPrepH512.
func TestGemmPrepGo(t *testing.T) {
	if Best().Tier < AVX512 {
		t.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 7
	for _, f := range []*int8Format{mxfp4Int8, nvfp4Int8} {
		a, b := new(scratch), new(scratch)
		x := randMatrix(rng, 1, n*i8ChunkK)
		f.prep(nil, &Matrix{K: n * i8ChunkK, kp: n * i8ChunkK}, x, 1, 1, nil, nil, a)
		b.i8 = append([]int8(nil), a.i8...)
		b.sc = append([]float32(nil), a.sc...)
		b.i32 = append([]int32(nil), a.i32...)
		gemmPrep(a, 0, n, f.halves())
		gemmPrepGo(b, 0, n, f.halves())
		assert.Equal(t, a.i8[:n*i8ChunkK], b.i8[:n*i8ChunkK], "%s: codes", f.t)
		assert.Equal(t, a.sc[:n*i8Dwords], b.sc[:n*i8Dwords], "%s: scales", f.t)
		assert.Equal(t, a.i32[:n*i8Dwords], b.i32[:n*i8Dwords], "%s: corrections", f.t)
	}
}
