//go:build linux

package neurontest

import (
	"fmt"
	"os"

	"github.com/mnemo-ai/mnemo/backend/neuron/nrt"
	"github.com/mnemo-ai/mnemo/backend/neuron/nrt/nrttest"
)

// BuildFake compiles the fake libnrt into dir, points $MNEMO_LIBNRT at it
// (so neuron.Open loads it) and returns its controls. Call it once per test
// binary, from TestMain; it returns an error wrapping nrttest.ErrNoCompiler
// without a C compiler.
func BuildFake(dir string) (*nrttest.Fake, error) {
	path, err := nrttest.Build(dir, "libnrt.so.1")
	if err != nil {
		return nil, err
	}
	fake, err := nrttest.OpenFake(path)
	if err != nil {
		return nil, err
	}
	if err := os.Setenv(nrt.EnvLibPath, path); err != nil {
		return nil, fmt.Errorf("neurontest: %w", err)
	}
	return fake, nil
}
