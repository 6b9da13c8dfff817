package cli

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/neuron"
	"github.com/mnemo-ai/mnemo/backend/neuron/nrt"
)

func TestBackendsListsEveryBackend(t *testing.T) {
	missing := "/nonexistent/mnemo-test/libnrt.so.1"
	t.Setenv(nrt.EnvLibPath, missing)
	code, out, stderr := runCLI(t, "backends")
	require.Equal(t, 0, code, stderr)
	for _, name := range backend.Names() {
		assert.Contains(t, "\n"+out, "\n"+name+": ", "every registered backend is listed")
	}
	assert.True(t, strings.HasPrefix(out, "cpu: available\n  kernels "), out)
	if strings.Contains(out, "neuron: unavailable: nrt: libnrt not found") {
		// No libnrt in the process or on the machine (another test may
		// have loaded the fake, whose soname is libnrt.so.1): the reason
		// names every path searched.
		assert.Contains(t, out, missing)
		assert.Contains(t, out, nrt.DefaultLibPath)
	}
	code, _, _ = runCLI(t, "backends", "extra")
	assert.Equal(t, 2, code)
}

func TestOpenBackendAutoFallsBackToCPU(t *testing.T) {
	t.Setenv(nrt.EnvLibPath, "/nonexistent/mnemo-test/libnrt.so.1")
	t.Setenv(neuron.EnvNEFFDir, "")
	b, err := openBackend("auto", backend.Options{})
	require.NoError(t, err)
	assert.Equal(t, "cpu", b.Name())
	require.NoError(t, b.Close())
	_, err = openBackend("nope", backend.Options{})
	assert.Error(t, err)
}
