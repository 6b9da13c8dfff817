// Package backendtest is the conformance suite every backend runs:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backend.Backend { ... })
//	}
//
// It checks buffers (round trips, sizes, closing), the signature checks of
// programs, and the numbers every supported op computes against a float64
// reference written here in plain Go.
package backendtest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

// Run runs the suite. newBackend opens a fresh backend for one subtest; the
// suite closes it and requires that Close reports no leak.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend.Backend)
	}{
		{"BufferRoundTrip", testBufferRoundTrip},
		{"BufferErrors", testBufferErrors},
		{"Range", testRange},
		{"SpecErrors", testSpecErrors},
		{"MatMul", testMatMul},
		{"MatMulPartsGLU", testMatMulPartsGLU},
		{"RowOps", testRowOps},
		{"Embed", testEmbed},
		{"RoPE", testRoPE},
		{"Attention", testAttention},
		{"BiasHeadsGather", testBiasHeadsGather},
		{"RunSignature", testRunSignature},
		{"Closed", testClosed},
		{"Concurrent", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t)
			// Registered first, so it runs after the cleanups that close
			// the test's buffers and programs.
			t.Cleanup(func() {
				assert.NoError(t, b.Close(), "backend Close after the test closed everything")
			})
			tt.fn(t, b)
		})
	}
}

func alloc(t *testing.T, b backend.Backend, dt backend.DType, shape ...int) backend.Buffer {
	t.Helper()
	buf, err := b.Alloc(dt, shape)
	require.NoError(t, err, "alloc %s%v", dt, shape)
	t.Cleanup(func() { buf.Close() })
	return buf
}

func f32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

func bytesF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func writeF32(t *testing.T, buf backend.Buffer, v []float32) {
	t.Helper()
	require.NoError(t, buf.Write(f32Bytes(v)))
}

func readF32(t *testing.T, buf backend.Buffer) []float32 {
	t.Helper()
	n, err := backend.HostBytes(buf.DType(), buf.Shape())
	require.NoError(t, err)
	out := make([]byte, n)
	require.NoError(t, buf.Read(out))
	return bytesF32(out)
}

func compile(t *testing.T, b backend.Backend, s backend.Spec) backend.Program {
	t.Helper()
	p, err := b.Compile(context.Background(), s)
	require.NoError(t, err, "compile %s", s)
	t.Cleanup(func() { p.Close() })
	return p
}

func randF32(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func testBufferRoundTrip(t *testing.T, b backend.Backend) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, dt := range []backend.DType{backend.F32, backend.F16, backend.BF16, backend.I32, backend.F8E4M3} {
		for _, shape := range []backend.Shape{{1}, {7}, {3, 5}, {2, 3, 4}} {
			buf := alloc(t, b, dt, shape...)
			assert.Equal(t, dt, buf.DType())
			assert.Equal(t, shape, buf.Shape())
			n, err := backend.HostBytes(dt, shape)
			require.NoError(t, err)
			zero := make([]byte, n)
			got := make([]byte, n)
			require.NoError(t, buf.Read(got))
			assert.Equal(t, zero, got, "%s%s: new buffer is not zeroed", dt, shape)
			src := make([]byte, n)
			for i := range src {
				src[i] = byte(rng.Uint32())
			}
			if dt == backend.F32 { // keep NaN payloads out of the f32 check
				src = f32Bytes(randF32(rng, n/4))
			}
			require.NoError(t, buf.Write(src))
			require.NoError(t, buf.Read(got))
			assert.Equal(t, src, got, "%s%s round trip", dt, shape)
			require.NoError(t, buf.Close())
		}
	}
}

// testRange checks partial reads and writes on backends that offer them.
func testRange(t *testing.T, b backend.Backend) {
	for _, dt := range []backend.DType{backend.F32, backend.BF16, backend.F8E4M3} {
		buf := alloc(t, b, dt, 4, 6)
		rb, ok := buf.(backend.RangeBuffer)
		if !ok {
			t.Skip("buffers do not implement RangeBuffer")
		}
		n, _ := backend.HostBytes(dt, buf.Shape())
		row := n / 4
		src := f32Bytes(randF32(rand.New(rand.NewPCG(3, 1)), (row+3)/4))[:row]
		require.NoError(t, rb.WriteAt(src, 2*row))
		got := make([]byte, row)
		require.NoError(t, rb.ReadAt(got, 2*row))
		assert.Equal(t, src, got)
		all := make([]byte, n)
		require.NoError(t, buf.Read(all))
		assert.Equal(t, make([]byte, 2*row), all[:2*row], "bytes before the range are untouched")
		assert.Equal(t, src, all[2*row:3*row])
		assert.Equal(t, make([]byte, row), all[3*row:], "bytes after the range are untouched")
		assert.Error(t, rb.ReadAt(got, n-row+2), "past the end")
		assert.Error(t, rb.WriteAt(src, -2), "negative offset")
	}
}

func testBufferErrors(t *testing.T, b backend.Backend) {
	for _, tt := range []struct {
		name  string
		dt    backend.DType
		shape backend.Shape
	}{
		{"empty shape", backend.F32, nil},
		{"negative dim", backend.F32, backend.Shape{2, -1}},
		{"overflow", backend.F32, backend.Shape{1 << 40, 1 << 40}},
		{"unknown dtype", backend.DType(63), backend.Shape{4}},
		{"weights 1-D", backend.Weights(format.F32), backend.Shape{4}},
		{"weights K not a block multiple", backend.Weights(format.Q8_0), backend.Shape{2, 33}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			buf, err := b.Alloc(tt.dt, tt.shape)
			if err == nil {
				buf.Close()
			}
			assert.Error(t, err)
		})
	}
	buf := alloc(t, b, backend.F32, 4)
	assert.ErrorIs(t, buf.Write(make([]byte, 15)), backend.ErrShape)
	assert.ErrorIs(t, buf.Write(make([]byte, 17)), backend.ErrShape)
	assert.ErrorIs(t, buf.Read(make([]byte, 8)), backend.ErrShape)
	require.NoError(t, buf.Close())
	assert.ErrorIs(t, buf.Write(make([]byte, 16)), backend.ErrClosed)
	assert.ErrorIs(t, buf.Read(make([]byte, 16)), backend.ErrClosed)
	assert.NoError(t, buf.Close(), "Close is idempotent")
}

func testSpecErrors(t *testing.T, b backend.Backend) {
	for _, s := range []backend.Spec{
		{},
		{Op: backend.OpAdd, M: 0, N: 4},
		{Op: backend.OpAdd, M: 2, N: 4, K: 3},
		{Op: backend.OpRMSNorm, M: 2, N: 4},
		{Op: backend.OpRMSNorm, M: 2, N: 4, Eps: float32(math.NaN())},
		{Op: backend.OpMatMul, M: 1, N: 4, K: 0},
		{Op: backend.OpMatMul, M: 1, N: 4, K: 33, Weights: format.Q4_0},
		{Op: backend.OpMatMul, M: 1, N: 4, K: 32, Weights: format.Type(250)},
		{Op: backend.Op(200), M: 1, N: 1},
		{Op: backend.OpMatMul, M: 1, N: 4, K: 32, Weights: format.F32, Parts: [backend.MaxParts]int{4}},
		{Op: backend.OpMatMul, M: 1, N: 4, K: 32, Weights: format.F32, Parts: [backend.MaxParts]int{1, 2}},
		{Op: backend.OpMatMul, M: 1, N: 4, K: 32, Weights: format.F32, GLU: true, Bias: true},
	} {
		assert.Error(t, b.Supports(s), "Supports(%s)", s)
		p, err := b.Compile(context.Background(), s)
		if err == nil {
			p.Close()
		}
		assert.Error(t, err, "Compile(%s)", s)
	}
}

// quantRows encodes w (n×k) in format ft and returns the host encoding of a
// weight buffer and the decoded weights the reference uses.
func quantRows(ft format.Type, n, k int, w []float32) (host []byte, dec []float32) {
	opt := format.Options{}
	if ft == format.NVFP4 {
		opt.TensorScale = format.NVFP4TensorScale(w)
	}
	rb := ft.RowBytes(k)
	host = make([]byte, n*rb)
	dec = make([]float32, n*k)
	for i := range n {
		row := host[i*rb : (i+1)*rb]
		format.QuantizeRow(ft, row, w[i*k:(i+1)*k], opt)
		format.DequantizeRow(ft, dec[i*k:(i+1)*k], row, opt.TensorScale)
	}
	if ft == format.NVFP4 {
		host = binary.LittleEndian.AppendUint32(host, math.Float32bits(opt.TensorScale))
	}
	return host, dec
}

// tolerance bounds |y − ref| / Σ|x·w| for a weight format: the fast paths
// may round activations to bf16 or int8 blocks.
func tolerance(ft format.Type) float64 {
	switch ft {
	case format.F32, format.F16:
		return 1e-5
	case format.BF16, format.F8E4M3Row, format.MXF8E4M3, format.MXF8E5M2:
		return 4e-3
	}
	return 2e-2
}

func testMatMul(t *testing.T, b backend.Backend) {
	rng := rand.New(rand.NewPCG(2, 2))
	ran := 0
	for _, ft := range format.Types() {
		for _, sh := range [][3]int{{1, 5, 64}, {3, 17, 96}, {8, 64, 256}} {
			m, n, k := sh[0], sh[1], sh[2]
			s := backend.Spec{Op: backend.OpMatMul, M: m, N: n, K: k, Weights: ft}
			if err := b.Supports(s); err != nil {
				assert.ErrorIs(t, err, backend.ErrUnsupported)
				continue
			}
			ran++
			host, dec := quantRows(ft, n, k, randF32(rng, n*k))
			x := randF32(rng, m*k)
			wb := alloc(t, b, backend.Weights(ft), n, k)
			require.NoError(t, wb.Write(host))
			xb := alloc(t, b, backend.F32, m, k)
			writeF32(t, xb, x)
			yb := alloc(t, b, backend.F32, m, n)
			p := compile(t, b, s)
			require.NoError(t, p.Run(context.Background(), []backend.Buffer{xb, wb}, []backend.Buffer{yb}))
			y := readF32(t, yb)
			for i := range m {
				for j := range n {
					var ref, mag float64
					for kk := range k {
						pr := float64(x[i*k+kk]) * float64(dec[j*k+kk])
						ref += pr
						mag += math.Abs(pr)
					}
					require.InDelta(t, ref, float64(y[i*n+j]), tolerance(ft)*mag+1e-6, "%s y[%d,%d]", s, i, j)
				}
			}
		}
	}
	assert.Positive(t, ran, "backend supports no weight format at all")
}

func testRowOps(t *testing.T, b backend.Backend) {
	rng := rand.New(rand.NewPCG(3, 3))
	const m, n = 3, 37
	ctx := context.Background()
	a, c, g := randF32(rng, m*n), randF32(rng, m*n), randF32(rng, n)
	ab, cb, gb := alloc(t, b, backend.F32, m, n), alloc(t, b, backend.F32, m, n), alloc(t, b, backend.F32, n)
	writeF32(t, ab, a)
	writeF32(t, cb, c)
	writeF32(t, gb, g)
	yb := alloc(t, b, backend.F32, m, n)

	norm := compile(t, b, backend.Spec{Op: backend.OpRMSNorm, M: m, N: n, Eps: 1e-5})
	require.NoError(t, norm.Run(ctx, []backend.Buffer{ab, gb}, []backend.Buffer{yb}))
	y := readF32(t, yb)
	for i := range m {
		var ss float64
		for j := range n {
			ss += float64(a[i*n+j]) * float64(a[i*n+j])
		}
		inv := 1 / math.Sqrt(ss/n+1e-5)
		for j := range n {
			require.InDelta(t, float64(a[i*n+j])*inv*float64(g[j]), float64(y[i*n+j]), 1e-5, "rmsnorm [%d,%d]", i, j)
		}
	}

	add := compile(t, b, backend.Spec{Op: backend.OpAdd, M: m, N: n})
	require.NoError(t, add.Run(ctx, []backend.Buffer{ab, cb}, []backend.Buffer{yb}))
	y = readF32(t, yb)
	for i := range a {
		require.InDelta(t, float64(a[i]+c[i]), float64(y[i]), 1e-6, "add [%d]", i)
	}

	swi := compile(t, b, backend.Spec{Op: backend.OpSwiGLU, M: m, N: n})
	require.NoError(t, swi.Run(ctx, []backend.Buffer{ab, cb}, []backend.Buffer{yb}))
	y = readF32(t, yb)
	for i := range a {
		s := float64(a[i]) / (1 + math.Exp(-float64(a[i])))
		require.InDelta(t, s*float64(c[i]), float64(y[i]), 1e-5, "swiglu [%d]", i)
	}

	// In place: the output is the first input.
	require.NoError(t, add.Run(ctx, []backend.Buffer{ab, cb}, []backend.Buffer{ab}))
	got := readF32(t, ab)
	for i := range a {
		require.InDelta(t, float64(a[i]+c[i]), float64(got[i]), 1e-6, "add in place [%d]", i)
	}
}

func testEmbed(t *testing.T, b backend.Backend) {
	rng := rand.New(rand.NewPCG(4, 4))
	const vocab, dim = 11, 64
	ctx := context.Background()
	for _, ft := range format.Types() {
		s := backend.Spec{Op: backend.OpEmbed, M: 4, N: vocab, K: dim, Weights: ft}
		if b.Supports(s) != nil {
			continue
		}
		host, dec := quantRows(ft, vocab, dim, randF32(rng, vocab*dim))
		tb := alloc(t, b, backend.Weights(ft), vocab, dim)
		require.NoError(t, tb.Write(host))
		ids := alloc(t, b, backend.I32, 4)
		idv := []int32{0, 10, 3, 3}
		raw := make([]byte, 16)
		for i, id := range idv {
			binary.LittleEndian.PutUint32(raw[4*i:], uint32(id))
		}
		require.NoError(t, ids.Write(raw))
		yb := alloc(t, b, backend.F32, 4, dim)
		p := compile(t, b, s)
		require.NoError(t, p.Run(ctx, []backend.Buffer{ids, tb}, []backend.Buffer{yb}))
		y := readF32(t, yb)
		for i, id := range idv {
			assert.Equal(t, dec[int(id)*dim:(int(id)+1)*dim], y[i*dim:(i+1)*dim], "%s row %d (id %d)", ft, i, id)
		}
		for _, bad := range []int32{-1, vocab} {
			binary.LittleEndian.PutUint32(raw[4:], uint32(bad))
			require.NoError(t, ids.Write(raw))
			assert.Error(t, p.Run(ctx, []backend.Buffer{ids, tb}, []backend.Buffer{yb}), "%s: id %d accepted", ft, bad)
		}
	}
}

func testRunSignature(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	p := compile(t, b, backend.Spec{Op: backend.OpAdd, M: 2, N: 3})
	ok := alloc(t, b, backend.F32, 2, 3)
	wrongShape := alloc(t, b, backend.F32, 3, 2)
	wrongType := alloc(t, b, backend.I32, 2, 3)
	for _, tt := range []struct {
		name    string
		in, out []backend.Buffer
	}{
		{"too few inputs", []backend.Buffer{ok}, []backend.Buffer{ok}},
		{"too many outputs", []backend.Buffer{ok, ok}, []backend.Buffer{ok, ok}},
		{"wrong shape", []backend.Buffer{ok, wrongShape}, []backend.Buffer{ok}},
		{"wrong dtype", []backend.Buffer{ok, ok}, []backend.Buffer{wrongType}},
		{"nil buffer", []backend.Buffer{ok, nil}, []backend.Buffer{ok}},
	} {
		assert.ErrorIs(t, p.Run(ctx, tt.in, tt.out), backend.ErrSignature, tt.name)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	assert.ErrorIs(t, p.Run(cctx, []backend.Buffer{ok, ok}, []backend.Buffer{ok}), context.Canceled)

	// A weight buffer that was never written.
	mm := compile(t, b, backend.Spec{Op: backend.OpMatMul, M: 1, N: 2, K: 32, Weights: format.F32})
	w := alloc(t, b, backend.Weights(format.F32), 2, 32)
	x := alloc(t, b, backend.F32, 1, 32)
	y := alloc(t, b, backend.F32, 1, 2)
	assert.Error(t, mm.Run(ctx, []backend.Buffer{x, w}, []backend.Buffer{y}))
}

func testClosed(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	p, err := b.Compile(ctx, backend.Spec{Op: backend.OpAdd, M: 1, N: 2})
	require.NoError(t, err)
	a := alloc(t, b, backend.F32, 1, 2)
	y := alloc(t, b, backend.F32, 1, 2)
	require.NoError(t, p.Run(ctx, []backend.Buffer{a, a}, []backend.Buffer{y}))
	require.NoError(t, y.Close())
	assert.ErrorIs(t, p.Run(ctx, []backend.Buffer{a, a}, []backend.Buffer{y}), backend.ErrClosed)
	require.NoError(t, p.Close())
	assert.NoError(t, p.Close(), "Close is idempotent")
	y2 := alloc(t, b, backend.F32, 1, 2)
	assert.ErrorIs(t, p.Run(ctx, []backend.Buffer{a, a}, []backend.Buffer{y2}), backend.ErrClosed)
}

func testConcurrent(t *testing.T, b backend.Backend) {
	rng := rand.New(rand.NewPCG(5, 5))
	const m, n, k = 4, 48, 128
	host, _ := quantRows(format.F32, n, k, randF32(rng, n*k))
	wb := alloc(t, b, backend.Weights(format.F32), n, k)
	require.NoError(t, wb.Write(host))
	p := compile(t, b, backend.Spec{Op: backend.OpMatMul, M: m, N: n, K: k, Weights: format.F32})
	xb := alloc(t, b, backend.F32, m, k)
	writeF32(t, xb, randF32(rng, m*k))
	ref := alloc(t, b, backend.F32, m, n)
	require.NoError(t, p.Run(context.Background(), []backend.Buffer{xb, wb}, []backend.Buffer{ref}))
	want := readF32(t, ref)

	outs := make([]backend.Buffer, 6)
	for i := range outs {
		outs[i] = alloc(t, b, backend.F32, m, n)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(outs))
	for i, o := range outs {
		wg.Go(func() {
			for range 20 {
				if err := p.Run(context.Background(), []backend.Buffer{xb, wb}, []backend.Buffer{o}); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for i, o := range outs {
		require.NoError(t, errs[i])
		assert.Equal(t, want, readF32(t, o), fmt.Sprintf("output %d", i))
	}
}

// testMatMulPartsGLU checks the fused matmuls against their unfused
// definition: Parts (with and without a bias) splits x·Wᵀ by columns, GLU
// is SwiGLU of the gate rows' and the up rows' products. Formats the
// backend does not fuse are skipped, as long as it says so.
func testMatMulPartsGLU(t *testing.T, b backend.Backend) {
	rng := rand.New(rand.NewPCG(12, 12))
	ctx := context.Background()
	parts := [backend.MaxParts]int{5, 3, 8}
	const n, k = 16, 64
	ran := 0
	for _, ft := range format.Types() {
		for _, m := range []int{1, 3} {
			for _, bias := range []bool{false, true} {
				s := backend.Spec{Op: backend.OpMatMul, M: m, N: n, K: k, Weights: ft, Bias: bias, Parts: parts}
				if err := b.Supports(s); err != nil {
					assert.ErrorIs(t, err, backend.ErrUnsupported)
					continue
				}
				ran++
				host, dec := quantRows(ft, n, k, randF32(rng, n*k))
				x, bv := randF32(rng, m*k), randF32(rng, n)
				wb, xb := alloc(t, b, backend.Weights(ft), n, k), alloc(t, b, backend.F32, m, k)
				require.NoError(t, wb.Write(host))
				writeF32(t, xb, x)
				in := []backend.Buffer{xb, wb}
				if bias {
					bb := alloc(t, b, backend.F32, n)
					writeF32(t, bb, bv)
					in = append(in, bb)
				}
				var outs []backend.Buffer
				for _, np := range parts[:3] {
					outs = append(outs, alloc(t, b, backend.F32, m, np))
				}
				require.NoError(t, compile(t, b, s).Run(ctx, in, outs))
				off := 0
				for pi, ob := range outs {
					np := parts[pi]
					y := readF32(t, ob)
					for i := range m {
						for j := range np {
							ref, mag := dotRef(x[i*k:(i+1)*k], dec[(off+j)*k:(off+j+1)*k])
							if bias {
								ref += float64(bv[off+j])
							}
							require.InDelta(t, ref, float64(y[i*np+j]), tolerance(ft)*mag+1e-5, "%s part %d y[%d,%d]", s, pi, i, j)
						}
					}
					off += np
				}
			}

			// GLU: 2·6 weight rows, gate then up.
			const gn = 6
			s := backend.Spec{Op: backend.OpMatMul, M: m, N: gn, K: k, Weights: ft, GLU: true}
			if err := b.Supports(s); err != nil {
				assert.ErrorIs(t, err, backend.ErrUnsupported)
				continue
			}
			ran++
			host, dec := quantRows(ft, 2*gn, k, randF32(rng, 2*gn*k))
			x := randF32(rng, m*k)
			wb, xb, yb := alloc(t, b, backend.Weights(ft), 2*gn, k), alloc(t, b, backend.F32, m, k), alloc(t, b, backend.F32, m, gn)
			require.NoError(t, wb.Write(host))
			writeF32(t, xb, x)
			require.NoError(t, compile(t, b, s).Run(ctx, []backend.Buffer{xb, wb}, []backend.Buffer{yb}))
			y := readF32(t, yb)
			for i := range m {
				for j := range gn {
					g, gmag := dotRef(x[i*k:(i+1)*k], dec[j*k:(j+1)*k])
					u, umag := dotRef(x[i*k:(i+1)*k], dec[(gn+j)*k:(gn+j+1)*k])
					silu := g / (1 + math.Exp(-g))
					tol := tolerance(ft) * (1.1*gmag*math.Abs(u) + math.Abs(silu)*umag + gmag*umag*tolerance(ft))
					require.InDelta(t, silu*u, float64(y[i*gn+j]), tol+1e-5, "%s y[%d,%d]", s, i, j)
				}
			}
		}
	}
	if ran == 0 {
		t.Skip("the backend fuses no matmul")
	}
}

// dotRef returns Σ x·w and Σ |x·w| in float64.
func dotRef(x, w []float32) (dot, mag float64) {
	for i := range x {
		p := float64(x[i]) * float64(w[i])
		dot += p
		mag += math.Abs(p)
	}
	return dot, mag
}
