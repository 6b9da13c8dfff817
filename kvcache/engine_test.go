package kvcache_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	_ "github.com/mnemo-ai/mnemo/engine/arch/all"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// cachedModel is a tiny synthetic model whose KV pool has a Cache over
// the real backend buffers (BufferIO) with host and disk tiers.
type cachedModel struct {
	m     engine.Model
	c     *kvcache.Cache
	store *kvcache.Store
}

const engineBT = 4

func openCached(t *testing.T, path, storeDir string, kvTokens int, kvType backend.DType) *cachedModel {
	src, err := model.Open(path)
	require.NoError(t, err)
	be, err := cpu.New(backend.Options{Threads: 1})
	require.NoError(t, err)
	m, err := engine.New(src, be, engine.Options{Weights: "f32", BlockTokens: engineBT, ContextLength: 64,
		KVTokens: kvTokens, KV: kvType, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, m.Close())
		require.NoError(t, be.Close())
		require.NoError(t, src.Close())
	})
	kv := m.KV()
	io, err := kvcache.NewBufferIO(kv.K, kv.V)
	require.NoError(t, err)
	fp := kvcache.NewFingerprint([]byte(path), []byte("tiny llama"), kv.DType.String(), kv.BlockTokens)
	store, err := kvcache.OpenStore(storeDir, fp, kvcache.StoreOptions{})
	require.NoError(t, err)
	c, err := kvcache.NewCache(kv.Pool, kvcache.Config{Fingerprint: fp, IO: io,
		HostBytes: int64(4 * io.BlockBytes()), Disk: store.Blobs(), DiskBytes: int64(64 * io.BlockBytes())})
	require.NoError(t, err)
	return &cachedModel{m: m, c: c, store: store}
}

// forward appends tokens to tb and returns the logits of every new token.
func (cm *cachedModel) forward(t *testing.T, tb *kvcache.Table, tokens []int32) []float32 {
	out, err := cm.m.Forward(context.Background(), []*engine.Seq{{Table: tb, Tokens: tokens, AllLogits: true}})
	require.NoError(t, err)
	return out[0].Data
}

// scratch returns the logits of tokens run from an empty table (nothing
// shared or published).
func (cm *cachedModel) scratch(t *testing.T, tokens []int32) []float32 {
	tb := &kvcache.Table{}
	defer tb.Release(cm.m.KV().Pool)
	return cm.forward(t, tb, tokens)
}

func lastRows(logits []float32, vocab, n int) []float32 { return logits[len(logits)-n*vocab:] }

// TestEngineSharing runs the real forward pass over shared, copied,
// evicted and restored blocks and requires the logits of a run from
// scratch: the cache moves real K/V bytes, not just ids.
func TestEngineSharing(t *testing.T) {
	if testing.Short() {
		t.Skip("loads a model")
	}
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, synth.WriteFile(path, synth.Tiny("llama")))
	for _, kvType := range []backend.DType{backend.F32, backend.BF16, backend.F8E4M3} {
		t.Run("kv="+kvType.String(), func(t *testing.T) { testEngineSharing(t, path, kvType) })
	}
}

func testEngineSharing(t *testing.T, path string, kvType backend.DType) {
	storeDir := t.TempDir()
	cm := openCached(t, path, storeDir, 48, kvType)
	vocab := cm.m.Config().VocabSize
	pool := cm.m.KV().Pool
	salt := kvcache.TenantSalt([]byte("k"), "tenant")
	prompt := []int32{1, 300, 17, 42, 99, 5, 6, 7, 8, 260} // two full blocks and a partial one

	a := &kvcache.Table{}
	cm.forward(t, a, prompt)
	require.NoError(t, cm.c.Publish(salt, prompt, a))

	t.Run("prefix shared", func(t *testing.T) {
		other := append(append([]int32(nil), prompt[:8]...), 11, 12, 13)
		b := cm.c.Match(salt, other[:len(other)-1])
		require.Equal(t, 8, b.Len)
		assert.Equal(t, a.Blocks[:2], b.Blocks)
		got := cm.forward(t, b, other[8:])
		b.Release(pool)
		assert.InDeltaSlice(t, lastRows(cm.scratch(t, other), vocab, 3), got, 1e-4)
	})

	t.Run("fork copies the partial block", func(t *testing.T) {
		f := a.Fork(pool)
		gotF := cm.forward(t, f, []int32{50})
		gotA := cm.forward(t, a, []int32{60})
		assert.NotEqual(t, a.Blocks[2], f.Blocks[2])
		assert.InDeltaSlice(t, lastRows(cm.scratch(t, append(append([]int32(nil), prompt...), 50)), vocab, 1), gotF, 1e-4)
		assert.InDeltaSlice(t, lastRows(cm.scratch(t, append(append([]int32(nil), prompt...), 60)), vocab, 1), gotA, 1e-4)
		f.Release(pool)
		a.Truncate(pool, len(prompt), engineBT)
	})

	t.Run("evicted and reloaded", func(t *testing.T) {
		ext := append(append([]int32(nil), prompt...), 70, 71)
		cm.forward(t, a, []int32{70, 71}) // fills block 2
		require.NoError(t, cm.c.Publish(salt, ext, a))
		a.Release(pool)
		ids, err := pool.Alloc(pool.Blocks()) // evicts every idle block to the host tier
		require.NoError(t, err)
		pool.Release(ids...)
		st := cm.c.Stats()
		require.Equal(t, 3, st.HostBlocks)
		b := cm.c.Match(salt, ext)
		require.Equal(t, 12, b.Len)
		assert.Equal(t, int64(3), cm.c.Stats().Reloads)
		got := cm.forward(t, b, []int32{80})
		b.Release(pool)
		assert.InDeltaSlice(t, lastRows(cm.scratch(t, append(ext, 80)), vocab, 1), got, 1e-4)
	})

	t.Run("snapshot restored in another process", func(t *testing.T) {
		s := &kvcache.Table{}
		sess := append(append([]int32(nil), prompt...), 90, 91, 92) // 13 tokens
		cm.forward(t, s, sess)
		require.NoError(t, cm.c.Save(cm.store, "sess-1", salt, sess, s, []byte("meta")))
		s.Release(pool)

		cm2 := openCached(t, path, storeDir, 48, kvType)
		snap, err := cm2.store.Load("sess-1")
		require.NoError(t, err)
		r, err := cm2.c.Restore(salt, snap)
		require.NoError(t, err)
		got := cm2.forward(t, r, []int32{93})
		r.Release(cm2.m.KV().Pool)
		assert.InDeltaSlice(t, lastRows(cm2.scratch(t, append(sess, 93)), vocab, 1), got, 1e-4)
	})
	assert.Equal(t, pool.Blocks(), pool.Free(), "every block free or idle")
}
