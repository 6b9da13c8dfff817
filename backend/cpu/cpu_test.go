package cpu_test

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/backendtest"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/kernels"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

func TestConformance(t *testing.T) {
	for _, impl := range kernels.Impls() {
		t.Run(impl.Name, func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backend.Backend {
				b, err := cpu.New(backend.Options{Kernels: impl.Name, Threads: 2})
				require.NoError(t, err)
				return b
			})
		})
	}
}

func TestOpenByName(t *testing.T) {
	b, err := backend.Open("cpu", backend.Options{})
	require.NoError(t, err)
	assert.Equal(t, "cpu", b.Name())
	require.NoError(t, b.Close())
	_, err = backend.Open("tpu", backend.Options{})
	assert.ErrorContains(t, err, "unknown backend")
	_, err = backend.Open("cpu", backend.Options{Kernels: "sse9"})
	assert.ErrorContains(t, err, "sse9")
}

func TestCloseReportsLeaks(t *testing.T) {
	b, err := cpu.New(backend.Options{})
	require.NoError(t, err)
	buf, err := b.Alloc(backend.F32, backend.Shape{4})
	require.NoError(t, err)
	assert.ErrorContains(t, b.Close(), "1 buffers or programs still open")
	require.NoError(t, buf.Close())
	_, err = b.Alloc(backend.F32, backend.Shape{4})
	assert.ErrorIs(t, err, backend.ErrClosed)
}

func TestView(t *testing.T) {
	b, err := cpu.New(backend.Options{})
	require.NoError(t, err)
	defer b.Close()
	buf, err := b.Alloc(backend.F32, backend.Shape{4, 8})
	require.NoError(t, err)
	defer buf.Close()
	v, err := buf.(backend.Viewer).View(backend.Shape{2, 8})
	require.NoError(t, err)
	v.(backend.HostBuffer).F32()[3] = 7
	assert.Equal(t, float32(7), buf.(backend.HostBuffer).F32()[3], "views share memory")
	_, err = buf.(backend.Viewer).View(backend.Shape{5, 8})
	assert.ErrorIs(t, err, backend.ErrShape)
	require.NoError(t, v.Close())
	assert.Equal(t, float32(7), buf.(backend.HostBuffer).F32()[3], "closing a view keeps the parent")
	assert.Equal(t, 5, b.Bucket(5))
}

// TestSplitMatMulChunks runs split and GLU matmuls large enough to be
// computed in several chunks of rows and requires the bits of the unfused
// programs.
func TestSplitMatMulChunks(t *testing.T) {
	b, err := cpu.New(backend.Options{Threads: 2})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) }) // after the buffers' cleanups
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 5))
	const m, n, k = 1100, 2048, 32
	buf := func(dt backend.DType, shape ...int) backend.Buffer {
		x, err := b.Alloc(dt, shape)
		require.NoError(t, err)
		t.Cleanup(func() { x.Close() })
		return x
	}
	run := func(s backend.Spec, in, out []backend.Buffer) {
		p, err := b.Compile(ctx, s)
		require.NoError(t, err)
		defer p.Close()
		require.NoError(t, p.Run(ctx, in, out))
	}
	w := make([]float32, n*k)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	wb, xb := buf(backend.Weights(format.F32), n, k), buf(backend.F32, m, k)
	require.NoError(t, wb.Write(f32Bytes(w)))
	x := xb.(backend.HostBuffer).F32()
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	full := buf(backend.F32, m, n)
	run(backend.Spec{Op: backend.OpMatMul, M: m, N: n, K: k, Weights: format.F32}, []backend.Buffer{xb, wb}, []backend.Buffer{full})
	y := full.(backend.HostBuffer).F32()

	t.Run("parts", func(t *testing.T) {
		a, c := buf(backend.F32, m, 1500), buf(backend.F32, m, n-1500)
		run(backend.Spec{Op: backend.OpMatMul, M: m, N: n, K: k, Weights: format.F32, Parts: [backend.MaxParts]int{1500, n - 1500}},
			[]backend.Buffer{xb, wb}, []backend.Buffer{a, c})
		av, cv := a.(backend.HostBuffer).F32(), c.(backend.HostBuffer).F32()
		for i := range m {
			require.Equal(t, y[i*n:i*n+1500], av[i*1500:(i+1)*1500], "row %d", i)
			require.Equal(t, y[i*n+1500:(i+1)*n], cv[i*(n-1500):(i+1)*(n-1500)], "row %d", i)
		}
	})
	t.Run("glu", func(t *testing.T) {
		const h = n / 2
		gate, up, want, got := buf(backend.F32, m, h), buf(backend.F32, m, h), buf(backend.F32, m, h), buf(backend.F32, m, h)
		gv, uv := gate.(backend.HostBuffer).F32(), up.(backend.HostBuffer).F32()
		for i := range m {
			copy(gv[i*h:(i+1)*h], y[i*n:i*n+h])
			copy(uv[i*h:(i+1)*h], y[i*n+h:(i+1)*n])
		}
		run(backend.Spec{Op: backend.OpSwiGLU, M: m, N: h}, []backend.Buffer{gate, up}, []backend.Buffer{want})
		run(backend.Spec{Op: backend.OpMatMul, M: m, N: h, K: k, Weights: format.F32, GLU: true}, []backend.Buffer{xb, wb}, []backend.Buffer{got})
		assert.Equal(t, want.(backend.HostBuffer).F32(), got.(backend.HostBuffer).F32())
	})
}

func f32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}
