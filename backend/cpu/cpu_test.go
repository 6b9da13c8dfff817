package cpu_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/backendtest"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/kernels"
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
