//go:build linux

package nrt

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mnemo-ai/mnemo/backend/neuron/nrt/nrttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fakeControl = *nrttest.Fake

const envPrebuilt = "MNEMO_FAKENRT_PREBUILT"

// buildFakes compiles the fake variants once per test binary.
// A child test process (see TestStrictModeAborts) reuses its parent's
// builds from the directory in envPrebuilt.
func buildFakes(dir string) error {
	var err error
	prebuilt := os.Getenv(envPrebuilt)
	fakes.dir = dir
	build := func(name string, defines ...string) string {
		if err != nil {
			return ""
		}
		if prebuilt != "" {
			return filepath.Join(prebuilt, name)
		}
		var p string
		p, err = nrttest.Build(dir, name, defines...)
		return p
	}
	fakes.main = build("libnrt.so.1")
	fakes.noStatus = build("libnrt-nostatus.so.1", "FAKE_NO_STATUS_STR")
	fakes.noExec = build("libnrt-noexec.so.1", "FAKE_OMIT_EXECUTE")
	fakes.legacy = build("libnrt-legacy.so.1", "FAKE_LEGACY_DTYPES")
	if err != nil {
		return err
	}
	if fakes.ctl, err = nrttest.OpenFake(fakes.main); err != nil {
		return err
	}
	fakes.legacyCtl, err = nrttest.OpenFake(filepath.Clean(fakes.legacy))
	return err
}

// openFake resets the fake and opens it; the Lib closes at cleanup.
func openFake(t *testing.T) (*Lib, *nrttest.Fake) {
	t.Helper()
	if fakes.err != nil {
		t.Skipf("fake libnrt unavailable: %v", fakes.err)
	}
	fakes.ctl.Reset()
	lib, err := Open(fakes.main)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, lib.Close()) })
	return lib, fakes.ctl
}

// initFake opens the fake and initialises a runtime with cfg.
func initFake(t *testing.T, cfg Config) (*Runtime, *nrttest.Fake) {
	t.Helper()
	lib, fake := openFake(t)
	rt, err := lib.Init(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, rt.Close()) })
	return rt, fake
}
