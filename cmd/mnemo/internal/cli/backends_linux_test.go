//go:build linux

package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/neuron"
	"github.com/mnemo-ai/mnemo/backend/neuron/neurontest"
	"github.com/mnemo-ai/mnemo/backend/neuron/nrt"
	"github.com/mnemo-ai/mnemo/backend/neuron/nrt/nrttest"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

// TestBackendsNeuronOverFake lists the neuron backend over the fake
// libnrt with a NEFF directory.
func TestBackendsNeuronOverFake(t *testing.T) {
	lib, err := nrttest.Build(t.TempDir(), "libnrt.so.1")
	if err != nil {
		t.Skipf("fake libnrt unavailable: %v", err)
	}
	t.Setenv(nrt.EnvLibPath, lib)
	dir := t.TempDir()
	_, err = neurontest.WriteDir(dir, []int{1, 8}, []backend.Spec{
		{Op: backend.OpAdd, M: 8, N: 4},
		{Op: backend.OpMatMul, M: 1, N: 4, K: 32, Weights: format.F8E4M3Row},
		{Op: backend.OpMatMul, M: 8, N: 4, K: 32, Weights: format.MXFP4},
	})
	require.NoError(t, err)
	code, out, stderr := runCLI(t, "backends", "--neff-dir", dir)
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{
		"neuron: available\n  " + lib + " (libnrt ",
		"4 NeuronCores visible",
		"NEFF directory " + dir + " (fake): 3 programs, buckets [1 8]",
		"  add: 1 programs, M in [8]\n",
		"  matmul: 2 programs, M in [1 8], weights fp8 mxfp4\n",
	} {
		assert.Contains(t, out, want)
	}

	t.Setenv(neuron.EnvNEFFDir, dir)
	b, err := openBackend("auto", backend.Options{})
	require.NoError(t, err)
	assert.Equal(t, "neuron", b.Name(), "auto picks neuron when it opens")
	require.NoError(t, b.Close())

	t.Setenv(neuron.EnvNEFFDir, "")
	code, out, stderr = runCLI(t, "backends")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "neuron: unavailable: neuron: no NEFF directory")

	t.Setenv("FAKE_NRT_TOTAL_CORES", "0")
	code, out, stderr = runCLI(t, "backends", "--neff-dir", dir)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "neuron: unavailable: neuron: no NeuronCores visible")
	t.Setenv("FAKE_NRT_TOTAL_CORES", "")

	fake, err := nrttest.OpenFake(lib)
	require.NoError(t, err)
	fake.SetVersion(1, 9, 0, nrttest.DTypesByVersion)
	defer fake.Reset()
	code, out, stderr = runCLI(t, "backends", "--neff-dir", dir)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "neuron: unavailable: neuron: libnrt too old: "+lib+" is 1.9.0, need 2.0.0")
}
