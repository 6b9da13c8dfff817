package kvcache

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
)

const testBT = 4 // tokens per block in these tests

var testFP = NewFingerprint([]byte("model-a"), []byte("config-a"), "f32", testBT)

// pattern is the fake KV content of the block with hash h: what a model
// would compute is a function of the tokens, so of the chain hash.
func pattern(h Hash, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = h[i%32] ^ byte(i/32)
	}
	return b
}

type fixture struct {
	c  *Cache
	p  *Pool
	io *MemIO
	bb int
}

func newFixture(t testing.TB, blocks, bb int, cfg Config) *fixture {
	p := NewPool(blocks)
	io := NewMemIO(blocks, bb)
	cfg.IO = io
	if cfg.Fingerprint.BlockTokens == 0 {
		cfg.Fingerprint = testFP
	}
	c, err := NewCache(p, cfg)
	require.NoError(t, err)
	return &fixture{c: c, p: p, io: io, bb: bb}
}

// slot is the fake K/V of token position pos of tokens: a function of the
// tokens up to pos (as a model's would be), bb/testBT bytes.
func (f *fixture) slot(salt Salt, tokens []int32, pos int) []byte {
	start := pos / testBT * testBT
	var parent Hash
	if start > 0 {
		parent = BlockHashes(testFP, salt, tokens[:start])[start/testBT-1]
	}
	hs := hasher{fp: testFP.Sum(), salt: salt}
	return pattern(hs.next(parent, tokens[start:pos+1], true), f.bb/testBT)
}

// prefill plays the engine: it reserves room for tokens[tb.Len:], writes
// their K/V slots, and publishes.
func (f *fixture) prefill(t testing.TB, salt Salt, tb *Table, tokens []int32) error {
	if err := tb.Reserve(f.p, len(tokens)-tb.Len, testBT); err != nil {
		return err
	}
	sb := f.bb / testBT
	for pos := tb.Len; pos < len(tokens); pos++ {
		id, off := tb.Slot(pos, testBT)
		copy(f.io.Block(id)[off*sb:(off+1)*sb], f.slot(salt, tokens, pos))
	}
	tb.Len = len(tokens)
	require.NoError(t, f.c.Publish(salt, tokens, tb))
	return nil
}

// check asserts that tb's blocks hold tokens' K/V slots.
func (f *fixture) check(t testing.TB, salt Salt, tb *Table, tokens []int32) bool {
	ok := assert.LessOrEqual(t, (tb.Len+testBT-1)/testBT, len(tb.Blocks))
	sb := f.bb / testBT
	for pos := 0; ok && pos < tb.Len; pos++ {
		id, off := tb.Slot(pos, testBT)
		ok = assert.Equal(t, f.slot(salt, tokens, pos), f.io.Block(id)[off*sb:(off+1)*sb], "position %d (block id %d)", pos, id)
	}
	return ok
}

func toks(vals ...int32) []int32 { return vals }

func seqTokens(seed, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(seed*1000 + i)
	}
	return out
}

func TestMatchPublish(t *testing.T) {
	f := newFixture(t, 8, 64, Config{})
	var a Table
	prompt := seqTokens(1, 10)
	require.NoError(t, f.prefill(t, Salt{}, &a, prompt))
	require.Len(t, a.Blocks, 3)

	tests := []struct {
		name   string
		salt   Salt
		tokens []int32
		want   int // blocks matched
	}{
		{"same prompt", Salt{}, prompt, 2},
		{"longer prompt", Salt{}, append(append([]int32(nil), prompt...), 5, 6, 7), 2},
		{"diverges in block 1", Salt{}, append(append([]int32(nil), prompt[:5]...), 99, 99, 99, 99), 1},
		{"diverges in block 0", Salt{}, toks(0, 1, 2, 3, 4, 5, 6, 7), 0},
		{"shorter than a block", Salt{}, prompt[:3], 0},
		{"other tenant", TenantSalt([]byte("k"), "b"), prompt, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := f.c.Match(tt.salt, tt.tokens)
			defer m.Release(f.p)
			assert.Equal(t, tt.want*testBT, m.Len)
			require.Len(t, m.Blocks, tt.want)
			for i, id := range m.Blocks {
				assert.Equal(t, a.Blocks[i], id, "shares the published block")
				assert.Equal(t, 2, f.p.Refs(id))
			}
			f.check(t, tt.salt, m, tt.tokens)
		})
	}

	a.Release(f.p)
	assert.Equal(t, 8, f.p.Free(), "idle blocks count as free")
	assert.Equal(t, 2, f.p.Idle(), "the two published blocks stay cached")
	m := f.c.Match(Salt{}, prompt)
	assert.Equal(t, 8, m.Len, "idle blocks are matched")
	f.check(t, Salt{}, m, prompt)
	assert.Equal(t, 0, f.p.Idle())
	m.Release(f.p)

	// Allocating everything evicts the idle blocks; with no lower tier
	// they are forgotten.
	ids, err := f.p.Alloc(8)
	require.NoError(t, err)
	f.p.Release(ids...)
	m = f.c.Match(Salt{}, prompt)
	assert.Zero(t, m.Len)
	st := f.c.Stats()
	assert.Equal(t, int64(2), st.Evictions)
	assert.Zero(t, st.Indexed)
}

func TestTenantSalt(t *testing.T) {
	a, b := TenantSalt([]byte("secret"), "a"), TenantSalt([]byte("secret"), "b")
	assert.NotEqual(t, a, b)
	assert.Equal(t, a, TenantSalt([]byte("secret"), "a"))
	assert.NotEqual(t, a, TenantSalt([]byte("other"), "a"), "the secret matters")
	tok := seqTokens(3, 8)
	assert.NotEqual(t, BlockHashes(testFP, a, tok), BlockHashes(testFP, b, tok))
	fp2 := NewFingerprint([]byte("model-b"), []byte("config-a"), "f32", testBT)
	assert.NotEqual(t, BlockHashes(testFP, a, tok), BlockHashes(fp2, a, tok))
	hs := BlockHashes(testFP, a, seqTokens(3, 10))
	require.Len(t, hs, 3)
	assert.Equal(t, BlockHashes(testFP, a, tok), hs[:2], "a chain extends its prefix")
	p := BlockHashes(testFP, a, seqTokens(3, 8+testBT))
	assert.NotEqual(t, p[2], hs[2], "a partial block hashes apart from the full one")
}

func TestCopyOnWrite(t *testing.T) {
	tests := []struct {
		name     string
		tokens   int  // prefilled
		truncate int  // then truncated to (-1: no)
		share    bool // another table holds the blocks
		copied   bool // the written block is a new one
		matched  int  // blocks the original prompt still matches
	}{
		{"fork of a partial block", 6, -1, true, true, 1},
		{"fork at a block boundary", 8, -1, true, false, 2},
		{"truncated into a published block", 8, 6, false, false, 1},
		{"truncated into a shared published block", 8, 6, true, true, 2},
		{"private partial block", 6, -1, false, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 8, 32, Config{})
			prompt := seqTokens(2, tt.tokens)
			var a Table
			require.NoError(t, f.prefill(t, Salt{}, &a, prompt))
			var b *Table
			if tt.share {
				b = a.Fork(f.p)
			}
			if tt.truncate >= 0 {
				a.Truncate(f.p, tt.truncate, testBT)
				prompt = prompt[:tt.truncate]
			}
			before := append([]BlockID(nil), a.Blocks...)
			next := append(append([]int32(nil), prompt...), 777)
			require.NoError(t, f.prefill(t, Salt{}, &a, next))
			last := (len(next) - 1) / testBT
			if last < len(before) {
				assert.Equal(t, tt.copied, before[last] != a.Blocks[last], "copy-on-write")
			}
			f.check(t, Salt{}, &a, next)
			if b != nil {
				f.check(t, Salt{}, b, seqTokens(2, tt.tokens))
				b.Release(f.p)
			}
			m := f.c.Match(Salt{}, seqTokens(2, tt.tokens))
			assert.Equal(t, tt.matched, len(m.Blocks))
			f.check(t, Salt{}, m, seqTokens(2, tt.tokens))
			m.Release(f.p)
			a.Release(f.p)
			assert.Equal(t, 8, f.p.Free())
		})
	}
}

func TestReserveAllOrNothing(t *testing.T) {
	f := newFixture(t, 3, 16, Config{})
	var a Table
	require.NoError(t, f.prefill(t, Salt{}, &a, seqTokens(1, 6)))
	b := a.Fork(f.p)
	// b needs a copy of the partial block and two more blocks: 3 > 1 free.
	err := b.Reserve(f.p, 2*testBT, testBT)
	assert.ErrorIs(t, err, ErrCacheFull)
	assert.Equal(t, a.Blocks, b.Blocks, "a failed Reserve changes nothing")
	assert.Equal(t, 1, f.p.Free())
	b.Release(f.p)
	a.Release(f.p)
	assert.Equal(t, 3, f.p.Free())
}

func TestEvictionTiers(t *testing.T) {
	const bb = 64
	tests := []struct {
		name        string
		host, disk  int64 // budgets in blocks
		maxIdle     int
		wantMatched int // of the first prompt's 2 blocks, after 3 more prompts
	}{
		{"no tiers", 0, 0, 0, 0},
		{"host", 4, 0, 0, 2},
		{"host spills to disk", 2, 4, 0, 2},
		{"disk only", 0, 4, 0, 2},
		{"tiers too small", 1, 1, 0, 0},
		{"max idle", 8, 0, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{HostBytes: tt.host * bb, DiskBytes: tt.disk * bb, MaxIdle: tt.maxIdle}
			if tt.disk > 0 {
				b, err := OpenBlobs(t.TempDir(), nil)
				require.NoError(t, err)
				cfg.Disk = b
			}
			f := newFixture(t, 4, bb, cfg)
			for seed := range 4 {
				var s Table
				require.NoError(t, f.prefill(t, Salt{}, &s, seqTokens(seed, 8)))
				s.Release(f.p)
				st := f.c.Stats()
				assert.LessOrEqual(t, st.HostBytes, cfg.HostBytes)
				assert.LessOrEqual(t, st.DiskBytes, cfg.DiskBytes)
				if cfg.Disk != nil {
					assert.Equal(t, st.DiskBytes, cfg.Disk.Bytes()/int64(blobHeader+bb+4)*bb, "the cache's files are all there is")
				}
				if tt.maxIdle > 0 {
					assert.LessOrEqual(t, st.Idle, tt.maxIdle)
				}
			}
			m := f.c.Match(Salt{}, seqTokens(0, 8))
			assert.Equal(t, tt.wantMatched, len(m.Blocks))
			f.check(t, Salt{}, m, seqTokens(0, 8))
			if tt.wantMatched > 0 {
				assert.Positive(t, f.c.Stats().Reloads)
			}
			m.Release(f.p)
		})
	}
}

func TestCorruptDiskBlockEndsMatch(t *testing.T) {
	const bb = 32
	dir := t.TempDir()
	b, err := OpenBlobs(dir, nil)
	require.NoError(t, err)
	f := newFixture(t, 2, bb, Config{Disk: b, DiskBytes: 8 * bb})
	var s Table
	prompt := seqTokens(1, 8)
	require.NoError(t, f.prefill(t, Salt{}, &s, prompt))
	s.Release(f.p)
	ids, err := f.p.Alloc(2) // evicts both to disk
	require.NoError(t, err)
	f.p.Release(ids...)
	hs := BlockHashes(testFP, Salt{}, prompt)
	corruptFile(t, blobPath(b, hs[1]), 50)
	m := f.c.Match(Salt{}, prompt)
	assert.Len(t, m.Blocks, 1, "the corrupt second block ends the match")
	f.check(t, Salt{}, m, prompt)
	m.Release(f.p)
}

// hostBuf is a backend.Buffer in host memory with range reads and writes
// (what the CPU backend's buffers do), so these tests need no kernels.
type hostBuf struct {
	dt    backend.DType
	shape backend.Shape
	data  []byte
}

func newHostBuf(t *testing.T, dt backend.DType, shape backend.Shape) *hostBuf {
	n, err := backend.HostBytes(dt, shape)
	require.NoError(t, err)
	return &hostBuf{dt: dt, shape: shape, data: make([]byte, n)}
}

func (b *hostBuf) DType() backend.DType   { return b.dt }
func (b *hostBuf) Shape() backend.Shape   { return b.shape }
func (b *hostBuf) Write(src []byte) error { copy(b.data, src); return nil }
func (b *hostBuf) Read(dst []byte) error  { copy(dst, b.data); return nil }
func (b *hostBuf) Close() error           { return nil }
func (b *hostBuf) ReadAt(dst []byte, off int) error {
	if off < 0 || off+len(dst) > len(b.data) {
		return backend.ErrShape
	}
	copy(dst, b.data[off:])
	return nil
}
func (b *hostBuf) WriteAt(src []byte, off int) error {
	if off < 0 || off+len(src) > len(b.data) {
		return backend.ErrShape
	}
	copy(b.data[off:], src)
	return nil
}

// plainBuf hides hostBuf's range methods.
type plainBuf struct{ backend.Buffer }

func TestBufferIO(t *testing.T) {
	for _, dt := range []backend.DType{backend.F32, backend.BF16} {
		t.Run(dt.String(), func(t *testing.T) {
			var k, v []backend.Buffer
			var kh []*hostBuf
			for range 2 {
				kb, vb := newHostBuf(t, dt, backend.Shape{4, 2, 3}), newHostBuf(t, dt, backend.Shape{4, 2, 3})
				k, v, kh = append(k, kb), append(v, vb), append(kh, kb)
			}
			io, err := NewBufferIO(k, v)
			require.NoError(t, err)
			elem := 4
			if dt == backend.BF16 {
				elem = 2
			}
			per := 2 * 3 * elem
			require.Equal(t, 2*2*per, io.BlockBytes())
			src := make([]byte, io.BlockBytes())
			for i := range src {
				src[i] = byte(i*7 + 1)
			}
			require.NoError(t, io.WriteBlock(2, src))
			got := make([]byte, len(src))
			require.NoError(t, io.ReadBlock(2, got))
			assert.Equal(t, src, got)
			require.NoError(t, io.CopyBlock(0, 2))
			require.NoError(t, io.ReadBlock(0, got))
			assert.Equal(t, src, got)
			require.NoError(t, io.ReadBlock(1, got))
			assert.Equal(t, make([]byte, len(src)), got, "other blocks untouched")
			// The layout is layer by layer, K then V, block id major.
			assert.Equal(t, src[2*per:3*per], kh[1].data[2*per:3*per], "layer 1 K of block 2")
			assert.Error(t, io.ReadBlock(4, got), "past the last block")
			assert.Error(t, io.WriteBlock(0, got[1:]), "short block")
		})
	}
	_, err := NewBufferIO(nil, nil)
	assert.Error(t, err)
	a := newHostBuf(t, backend.F32, backend.Shape{4, 2, 3})
	_, err = NewBufferIO([]backend.Buffer{a}, []backend.Buffer{newHostBuf(t, backend.F32, backend.Shape{4, 2, 4})})
	assert.Error(t, err, "shapes differ")
	_, err = NewBufferIO([]backend.Buffer{a}, []backend.Buffer{plainBuf{a}})
	assert.ErrorIs(t, err, backend.ErrUnsupported)
}

// TestCacheConcurrent runs many sessions matching, prefilling, publishing,
// forking, truncating and releasing over a small pool with host and disk
// tiers, so that eviction and reload run all the time. Every table's
// blocks must hold its own tokens' content (a block freed or evicted while
// referenced, or shared across tenants, would not); MemIO has no lock, so
// the race detector sees any block written while another reads it.
func TestCacheConcurrent(t *testing.T) {
	const bb = 64
	store, err := OpenStore(t.TempDir(), testFP, StoreOptions{})
	require.NoError(t, err)
	cfg := Config{HostBytes: 6 * bb, DiskBytes: 12 * bb, Disk: store.Blobs()}
	f := newFixture(t, 48, bb, cfg)
	salts := []Salt{{}, TenantSalt([]byte("s"), "other")}
	workers, ops := 8, 300
	if testing.Short() {
		ops = 120
	}
	var stop atomic.Bool
	var checker sync.WaitGroup
	checker.Go(func() {
		for !stop.Load() {
			st := f.c.Stats()
			assert.LessOrEqual(t, st.HostBytes, cfg.HostBytes)
			assert.LessOrEqual(t, st.DiskBytes, cfg.DiskBytes)
			assert.Equal(t, st.Blocks, st.Free+st.Idle+st.InUse)
		}
	})
	// Whether a Match reaches a block in a lower tier depends on how the
	// workers interleave: run rounds (new seeds each) until one has, at
	// most maxRounds (one almost always does; a machine under load once
	// made 120 operations per worker without a reload).
	const maxRounds = 5
	for round := 0; round < maxRounds && (round == 0 || f.c.Stats().Reloads == 0); round++ {
		runCacheWorkers(t, f, store, salts, workers, ops, round)
	}
	stop.Store(true)
	checker.Wait()
	st := f.c.Stats()
	assert.Equal(t, 48, f.p.Free(), "every block is free or idle")
	assert.Zero(t, st.InUse)
	for id := range 48 {
		assert.Zero(t, f.p.Refs(BlockID(id)))
	}
	assert.Positive(t, st.Hits)
	assert.Positive(t, st.Evictions)
	assert.Positive(t, st.Reloads, "no reload in %d rounds", maxRounds)
	ids, err := store.List()
	require.NoError(t, err)
	assert.NotEmpty(t, ids)
	for _, id := range ids {
		require.NoError(t, store.Check(id))
	}
	t.Logf("stats: %+v", st)
}

// runCacheWorkers runs one round of TestCacheConcurrent's workers, each
// releasing its tables at the end.
func runCacheWorkers(t *testing.T, f *fixture, store *Store, salts []Salt, workers, ops, round int) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(7+round)))
			type seq struct {
				salt   Salt
				tokens []int32
				t      *Table
			}
			var seqs []*seq
			prompt := func() []int32 { // few distinct prefixes, so they share
				n := 1 + rng.IntN(14)
				out := make([]int32, n)
				base := int32(rng.IntN(3))
				for i := range out {
					out[i] = base*100 + int32(i)
					if i > 6 && rng.IntN(3) == 0 {
						out[i] = int32(rng.IntN(4))
					}
				}
				return out
			}
			for range ops {
				switch op := rng.IntN(7); {
				case op <= 1 || len(seqs) == 0:
					s := &seq{salt: salts[rng.IntN(2)], tokens: prompt()}
					s.t = f.c.Match(s.salt, s.tokens[:len(s.tokens)-1])
					if !f.check(t, s.salt, s.t, s.tokens) {
						return
					}
					if f.prefill(t, s.salt, s.t, s.tokens) != nil {
						s.t.Release(f.p)
						continue
					}
					seqs = append(seqs, s)
				case op == 2:
					o := seqs[rng.IntN(len(seqs))]
					seqs = append(seqs, &seq{salt: o.salt, tokens: append([]int32(nil), o.tokens...), t: o.t.Fork(f.p)})
				case op == 3:
					s := seqs[rng.IntN(len(seqs))]
					n := rng.IntN(s.t.Len + 1)
					s.t.Truncate(f.p, n, testBT)
					s.tokens = s.tokens[:n]
					fallthrough
				case op == 4:
					s := seqs[rng.IntN(len(seqs))]
					next := append(append([]int32(nil), s.tokens...), int32(rng.IntN(5)))
					if f.prefill(t, s.salt, s.t, next) == nil {
						s.tokens = next
					}
				case op == 5:
					i := rng.IntN(len(seqs))
					seqs[i].t.Release(f.p)
					seqs = append(seqs[:i], seqs[i+1:]...)
				case rng.IntN(3) == 0: // save and restore a session
					s := seqs[rng.IntN(len(seqs))]
					id := fmt.Sprint("w", w)
					if !assert.NoError(t, f.c.Save(store, id, s.salt, s.tokens, s.t, []byte(id))) {
						return
					}
					snap, err := store.Load(id)
					if !assert.NoError(t, err) {
						return
					}
					rt, err := f.c.Restore(s.salt, snap)
					if errors.Is(err, ErrCacheFull) {
						continue
					}
					if !assert.NoError(t, err) || !f.check(t, s.salt, rt, snap.Tokens) {
						return
					}
					seqs = append(seqs, &seq{salt: s.salt, tokens: snap.Tokens, t: rt})
				}
				for _, s := range seqs[max(0, len(seqs)-2):] {
					if !f.check(t, s.salt, s.t, s.tokens) {
						return
					}
				}
			}
			for _, s := range seqs {
				f.check(t, s.salt, s.t, s.tokens)
				s.t.Release(f.p)
			}
		})
	}
	wg.Wait()
}

// TestSpillDurability checks that the disk tier writes without fsync and
// that a snapshot naming such a block makes it durable first.
func TestSpillDurability(t *testing.T) {
	const bb = 32
	st, err := OpenStore(t.TempDir(), testFP, StoreOptions{})
	require.NoError(t, err)
	f := newFixture(t, 2, bb, Config{Disk: st.Blobs(), DiskBytes: 4 * bb})
	prompt := seqTokens(1, 8)
	var tb Table
	require.NoError(t, f.prefill(t, Salt{}, &tb, prompt))
	tb.Release(f.p)
	ids, err := f.p.Alloc(2) // both blocks go to disk
	require.NoError(t, err)
	f.p.Release(ids...)
	hs := BlockHashes(testFP, Salt{}, prompt)
	durable := func(h Hash) bool {
		st.blobs.mu.Lock()
		defer st.blobs.mu.Unlock()
		b := st.blobs.known[h]
		return b != nil && b.durable
	}
	require.True(t, st.Blobs().Has(hs[0]))
	assert.False(t, durable(hs[0]), "the cache tier skips fsync")
	require.NoError(t, st.Save("s", &Snapshot{Fingerprint: testFP, Tokens: prompt, Blocks: hs}, nil))
	assert.True(t, durable(hs[0]), "a snapshot's blocks are durable")
	assert.Equal(t, 2, st.Blobs().Refs(hs[0]), "held by the cache and the snapshot")
	require.NoError(t, st.Check("s"))
}

// TestSpillFaults makes every disk tier write fail: evicted blocks are
// dropped, the books stay balanced and nothing leaks.
func TestSpillFaults(t *testing.T) {
	const bb = 32
	for _, op := range []string{"create", "write", "rename", "mkdir"} {
		t.Run(op, func(t *testing.T) {
			ffs := &faultFS{}
			blobs, err := OpenBlobs(t.TempDir(), ffs)
			require.NoError(t, err)
			ffs.op, ffs.n = op, 1
			f := newFixture(t, 2, bb, Config{Disk: blobs, DiskBytes: 4 * bb})
			for seed := range 3 {
				var tb Table
				require.NoError(t, f.prefill(t, Salt{}, &tb, seqTokens(seed, 8)))
				tb.Release(f.p)
				ffs.mu.Lock()
				ffs.count = 0 // fail every first call of op
				ffs.mu.Unlock()
			}
			st := f.c.Stats()
			assert.Equal(t, st.DiskBytes, int64(st.DiskBlocks*bb))
			assert.Equal(t, int64(st.DiskBlocks*(blobHeader+bb+4)), blobs.Bytes(), "no file without a holder")
			assert.Positive(t, st.Dropped)
			assert.Equal(t, 2, f.p.Free())
			assertNoTemps(t, blobs.dir)
			m := f.c.Match(Salt{}, seqTokens(0, 8))
			f.check(t, Salt{}, m, seqTokens(0, 8))
			m.Release(f.p)
		})
	}
}

// TestMatchWithoutRoom: a Match that finds no block to reload into stops
// without losing the lower-tier copy.
func TestMatchWithoutRoom(t *testing.T) {
	const bb = 32
	blobs, err := OpenBlobs(t.TempDir(), nil)
	require.NoError(t, err)
	f := newFixture(t, 2, bb, Config{HostBytes: bb, Disk: blobs, DiskBytes: 4 * bb})
	prompt := seqTokens(1, 8)
	var tb Table
	require.NoError(t, f.prefill(t, Salt{}, &tb, prompt))
	tb.Release(f.p)
	held, err := f.p.Alloc(2) // one block to the host tier, one to disk
	require.NoError(t, err)
	st := f.c.Stats()
	require.Equal(t, 1, st.HostBlocks)
	require.Equal(t, 1, st.DiskBlocks)
	m := f.c.Match(Salt{}, prompt)
	assert.Zero(t, m.Len, "no block to reload into")
	assert.Equal(t, st.Indexed, f.c.Stats().Indexed, "nothing forgotten")
	f.p.Release(held...)
	m = f.c.Match(Salt{}, prompt)
	assert.Equal(t, 8, m.Len)
	f.check(t, Salt{}, m, prompt)
	m.Release(f.p)
}

// TestPublishDedup: two sequences that computed the same prompt end up
// sharing the first one's blocks.
func TestPublishDedup(t *testing.T) {
	f := newFixture(t, 8, 32, Config{})
	prompt := seqTokens(5, 9)
	var a, b Table
	require.NoError(t, f.prefill(t, Salt{}, &a, prompt[:4]))
	require.NoError(t, b.Reserve(f.p, len(prompt), testBT)) // b computes it all itself
	require.NoError(t, f.prefill(t, Salt{}, &a, prompt))
	require.Equal(t, 2, f.p.Free())
	require.NoError(t, f.prefill(t, Salt{}, &b, prompt))
	assert.Equal(t, a.Blocks[:2], b.Blocks[:2], "full blocks shared")
	assert.NotEqual(t, a.Blocks[2], b.Blocks[2], "the partial block stays private")
	assert.Equal(t, 4, f.p.Free(), "b's duplicates freed")
	assert.Equal(t, int64(2), f.c.Stats().Deduped)
	f.check(t, Salt{}, &b, prompt)
	a.Release(f.p)
	f.check(t, Salt{}, &b, prompt)
	b.Release(f.p)
	assert.Equal(t, 8, f.p.Free())
}
