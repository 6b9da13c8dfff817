package runtime_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/kvcache"
)

// TestDeleteErases: after Delete, the prefix cache and the block files
// keep none of the session's blocks except those another session (live or
// stored) holds.
func TestDeleteErases(t *testing.T) {
	system := seqTokens(32, 5)                                                    // 8 full blocks
	aToks := append(append([]int32{}, system...), 60, 61, 62, 63, 64, 65, 66, 67) // 10 full blocks
	bToks := append(append([]int32{}, system...), 70, 71, 72)
	tests := []struct {
		name        string
		withB       bool // session b shares a's first 8 blocks
		closeA      bool // a is saved and closed before Delete (the store's path)
		closeB      bool // b is saved and closed (held by its snapshot only)
		wantBlocks  int  // blocks of a's tokens the cache matches after Delete
		wantFileLen int  // of a's blocks, how many leading ones keep a file
	}{
		{name: "live alone", wantBlocks: 0},
		{name: "stored alone", closeA: true, wantBlocks: 0},
		{name: "live, shared with live b", withB: true, wantBlocks: 8},
		{name: "stored, shared with stored b", withB: true, closeA: true, closeB: true, wantBlocks: 8, wantFileLen: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProcess(t, writeTiny(t, 1), t.TempDir(), "model-1")
			a := open(t, p.rt, "a")
			require.NoError(t, a.Append(t.Context(), aToks))
			if tt.closeA {
				require.NoError(t, a.Close())
			}
			if tt.withB {
				b := open(t, p.rt, "b")
				require.NoError(t, b.Append(t.Context(), bToks))
				require.Equal(t, 32, b.StartCached(), "b shares a's prefix")
				if tt.closeB {
					require.NoError(t, b.Close())
				}
			}
			salt := p.store.Salt("")
			hashes := kvcache.BlockHashes(p.store.Fingerprint(), salt, aToks)
			if tt.closeA {
				for i, h := range hashes {
					require.True(t, p.store.Blobs().Has(h), "block %d saved", i)
				}
			}
			require.NoError(t, p.rt.Delete(t.Context(), "a"))

			m := p.store.Cache().Match(salt, aToks)
			assert.Equal(t, tt.wantBlocks, len(m.Blocks), "blocks of the deleted session still matched")
			m.Release(p.rt.Pool())
			for i, h := range hashes {
				assert.Equal(t, i < tt.wantFileLen, p.store.Blobs().Has(h), "block %d's file", i)
			}
			assert.Positive(t, p.store.Cache().Stats().Forgotten)
			if tt.withB {
				// b continues from its blocks, none recomputed.
				b, err := p.rt.Open(t.Context(), "b", greedy)
				require.NoError(t, err)
				fed := p.m.Fed()
				require.NoError(t, b.Append(t.Context(), []int32{80}))
				assert.LessOrEqual(t, p.m.Fed()-fed, 5, "b's history stays cached")
			}
		})
	}
}
