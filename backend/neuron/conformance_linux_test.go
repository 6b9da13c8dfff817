//go:build linux

package neuron_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/backendtest"
	"github.com/mnemo-ai/mnemo/backend/cpu"
)

// suiteSpecs returns every Spec the conformance suite asks for, found by
// running the suite once on the CPU backend.
func suiteSpecs(t *testing.T) []backend.Spec {
	rec := &recorder{}
	t.Run("record-on-cpu", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backend.Backend {
			b, err := cpu.New(backend.Options{Threads: 1})
			require.NoError(t, err)
			rec.Backend = b
			return rec
		})
	})
	require.NotEmpty(t, rec.specs)
	return rec.specs
}

// TestConformance runs the backend conformance suite on the neuron
// backend over the fake libnrt, with a NEFF for every spec the suite uses.
func TestConformance(t *testing.T) {
	needFake(t)
	specs := suiteSpecs(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return openNeuron(t, []int{1, 8}, specs)
	})
}
