//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSessionStoreBusy: a second process (here: a held lock) cannot open
// a model's store while another uses it; list says so instead of failing.
func TestSessionStoreBusy(t *testing.T) {
	m, state := tinyModel(t), t.TempDir()
	code, _, stderr := runMain(t, "", "run", m, "--session", "s", "--state-dir", state, "--prompt", "hi", "-n", "2")
	require.Equal(t, 0, code, stderr)
	dirs, err := filepath.Glob(filepath.Join(state, "*", modelInfoFile))
	require.NoError(t, err)
	require.Len(t, dirs, 1)
	unlock, err := lockStore(filepath.Dir(dirs[0]))
	require.NoError(t, err)

	code, _, stderr = runMain(t, "", "run", m, "--session", "s", "--state-dir", state, "--prompt", "hi", "-n", "2")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "in use by another mnemo process")
	code, out, stderr := runMain(t, "", "sessions", "list", "--state-dir", state)
	assert.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "in use by another process")
	code, _, stderr = runMain(t, "", "sessions", "rm", "s", "--state-dir", state)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "in use by another mnemo process")

	unlock()
	code, _, stderr = runMain(t, "", "sessions", "rm", "s", "--state-dir", state)
	assert.Equal(t, 0, code, stderr)
	_, err = os.Stat(filepath.Join(filepath.Dir(dirs[0]), "lock"))
	assert.NoError(t, err, "the lock file stays; only the flock matters")
}
