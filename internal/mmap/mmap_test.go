package mmap_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/internal/mmap"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	want := []byte("hello, mapped world")
	require.NoError(t, os.WriteFile(path, want, 0o644))

	m, err := mmap.Open(path)
	require.NoError(t, err)
	assert.Equal(t, want, m.Bytes())
	assert.Equal(t, len(want), m.Len())
	if runtime.GOOS == "linux" {
		assert.True(t, m.Mapped())
	}
	require.NoError(t, m.Close())
	assert.Nil(t, m.Bytes())
	if m.Mapped() {
		assert.ErrorIs(t, m.Close(), mmap.ErrClosed)
	}

	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	m, err = mmap.Open(empty)
	require.NoError(t, err)
	assert.Zero(t, m.Len())
	assert.NoError(t, m.Close())

	_, err = mmap.Open(dir)
	assert.ErrorContains(t, err, "not a regular file")
	_, err = mmap.Open(filepath.Join(dir, "absent"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
