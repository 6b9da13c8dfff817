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
