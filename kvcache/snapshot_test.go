package kvcache

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

func goldenSnapshot() (string, *Snapshot) {
	fp := NewFingerprint([]byte("golden model"), []byte("golden config"), "bf16", 4)
	tokens := []int32{1, 2, 3, 4, 5, -1}
	return "golden:1", &Snapshot{Fingerprint: fp, Tokens: tokens,
		Blocks: BlockHashes(fp, TenantSalt([]byte("k"), "t"), tokens), Meta: []byte("meta")}
}

// TestSnapshotGolden pins the version 1 encoding (and the block hash):
// a change that breaks reading old snapshots fails here.
func TestSnapshotGolden(t *testing.T) {
	id, s := goldenSnapshot()
	got := EncodeSnapshot(id, s)
	path := filepath.Join("testdata", "snapshot_v1.golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update to create it")
	assert.Equal(t, want, got)
	gid, gs, err := DecodeSnapshot(want)
	require.NoError(t, err)
	assert.Equal(t, id, gid)
	assert.Equal(t, s, gs)
}

func TestSnapshotRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		s    *Snapshot
	}{
		{"empty", &Snapshot{Fingerprint: testFP, Tokens: []int32{}, Blocks: []Hash{}, Meta: []byte{}}},
		{"one partial block", testSnapshot([]int32{7}, "x")},
		{"full blocks", testSnapshot(seqTokens(3, 16), "")},
		{"big meta", testSnapshot(seqTokens(3, 9), string(bytes.Repeat([]byte{0xff, 0}, 5000)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := EncodeSnapshot("id-1", tt.s)
			id, got, err := DecodeSnapshot(data)
			require.NoError(t, err)
			assert.Equal(t, "id-1", id)
			assert.Equal(t, tt.s, got)
			for n := range len(data) {
				_, _, err := DecodeSnapshot(data[:n])
				require.ErrorIs(t, err, ErrCorrupt, "prefix of %d bytes", n)
			}
		})
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	id, s := goldenSnapshot()
	f.Add(EncodeSnapshot(id, s))
	f.Add(EncodeSnapshot("x", testSnapshot(nil, "")))
	f.Add(EncodeSnapshot("y", testSnapshot(seqTokens(1, 9), "meta")))
	f.Add([]byte(snapMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		id, s, err := DecodeSnapshot(data)
		if err != nil {
			assert.ErrorIs(t, err, ErrCorrupt)
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		assert.Equal(t, data, EncodeSnapshot(id, s))
		assert.True(t, len(id) >= 1 && len(id) <= maxIDLen, "id length %d", len(id))
	})
}
