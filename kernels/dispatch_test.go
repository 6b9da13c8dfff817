package kernels

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	flag.Parse()
	impl, err := Select()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "kernels: active %s, available %v\n", impl, Impls())
	os.Exit(m.Run())
}

func TestImplsStartWithGeneric(t *testing.T) {
	impls := Impls()
	require.NotEmpty(t, impls)
	assert.Equal(t, Generic, impls[0].Tier)
	for i := 1; i < len(impls); i++ {
		assert.Greater(t, impls[i].Tier, impls[i-1].Tier)
	}
	assert.Equal(t, impls[len(impls)-1], Best())
}

func TestLookup(t *testing.T) {
	impl, err := Lookup("generic")
	require.NoError(t, err)
	assert.Equal(t, Generic, impl.Tier)
	_, err = Lookup("sse9")
	assert.ErrorContains(t, err, "unknown implementation")
	for _, impl := range allImpls {
		got, err := Lookup(impl.Name)
		if supported(impl) {
			require.NoError(t, err)
			assert.Same(t, impl, got)
		} else {
			assert.Error(t, err)
		}
	}
}

// TestActiveHonoursEnv checks that MNEMO_KERNELS, as set for this test
// binary by the tier runs in the Makefile, selected that tier.
func TestActiveHonoursEnv(t *testing.T) {
	name := os.Getenv(EnvVar)
	if name == "" {
		assert.Same(t, Best(), Active())
		return
	}
	assert.Equal(t, name, Active().Name)
}
