package kvcache

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestForget(t *testing.T) {
	const bb = 64
	salt := TenantSalt([]byte("k"), "t1")
	a := seqTokens(1, 10) // 2 full blocks and a partial one
	// b shares a's first block only.
	b := append(append([]int32(nil), a[:4]...), seqTokens(2, 6)...)
	tests := []struct {
		name string
		// setup runs after a is prefilled (table ta, not yet released);
		// it returns what must be released after Forget.
		setup       func(t *testing.T, f *fixture, st *Store, ta *Table) []*Table
		otherTenant bool // Forget under another tenant's salt
		wantErased  int
		wantMatch   int // blocks of a matched after Forget
	}{
		{name: "alone", wantErased: 2, wantMatch: 0},
		{name: "fork holds all", wantErased: 0, wantMatch: 2,
			setup: func(t *testing.T, f *fixture, _ *Store, ta *Table) []*Table { return []*Table{ta.Fork(f.p)} }},
		{name: "live session shares the first block", wantErased: 1, wantMatch: 1,
			setup: func(t *testing.T, f *fixture, _ *Store, _ *Table) []*Table {
				tb := f.c.Match(salt, b)
				require.Equal(t, 1, len(tb.Blocks))
				require.NoError(t, f.prefill(t, salt, tb, b))
				return []*Table{tb}
			}},
		{name: "another tenant's forget erases nothing", otherTenant: true, wantErased: 0, wantMatch: 2},
		{name: "snapshot holds all", wantErased: 0, wantMatch: 2,
			setup: func(t *testing.T, f *fixture, st *Store, ta *Table) []*Table {
				require.NoError(t, f.c.Save(st, "other", salt, a, ta, nil))
				return nil
			}},
		{name: "evicted to host and disk tiers", wantErased: 2, wantMatch: 0,
			setup: func(t *testing.T, f *fixture, _ *Store, ta *Table) []*Table {
				ta.Release(f.p)
				ids, err := f.p.Alloc(f.p.Blocks()) // evicts both blocks
				require.NoError(t, err)
				f.p.Release(ids...)
				s := f.c.Stats()
				require.Equal(t, 2, s.HostBlocks+s.DiskBlocks)
				require.Positive(t, s.DiskBlocks)
				return nil
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := OpenStore(t.TempDir(), testFP, StoreOptions{})
			require.NoError(t, err)
			f := newFixture(t, 6, bb, Config{Disk: st.Blobs(), DiskBytes: 1 * bb, HostBytes: 1 * bb})
			ta := &Table{}
			require.NoError(t, f.prefill(t, salt, ta, a))
			var hold []*Table
			if tt.setup != nil {
				hold = tt.setup(t, f, st, ta)
			}
			forgetSalt := salt
			if tt.otherTenant {
				forgetSalt = TenantSalt([]byte("k"), "t2")
			}
			ta.Release(f.p)
			assert.Equal(t, tt.wantErased, f.c.Forget(forgetSalt, a))
			m := f.c.Match(salt, a)
			assert.Equal(t, tt.wantMatch, len(m.Blocks))
			f.check(t, salt, m, a)
			m.Release(f.p)
			for _, h := range hold {
				h.Release(f.p)
			}
			if tt.wantMatch == 0 {
				s := f.c.Stats()
				assert.Zero(t, s.HostBlocks+s.DiskBlocks, "no lower-tier copy left")
				assert.Zero(t, st.Blobs().Bytes(), "no block file left")
				assert.Equal(t, int64(tt.wantErased), s.Forgotten)
			}
			assert.Equal(t, f.p.Blocks(), f.p.Free(), "every block free or idle")
		})
	}
}

// A session saved, then deleted: Store.Delete and Forget leave neither
// its block files nor its index entries; another session's stay.
func TestForgetAfterStoreDelete(t *testing.T) {
	const bb = 64
	salt := TenantSalt([]byte("k"), "t1")
	st, err := OpenStore(t.TempDir(), testFP, StoreOptions{})
	require.NoError(t, err)
	f := newFixture(t, 8, bb, Config{Disk: st.Blobs(), DiskBytes: 8 * bb})
	a := seqTokens(1, 10)
	b := append(append([]int32(nil), a[:4]...), seqTokens(2, 6)...)
	for _, s := range []struct {
		id     string
		tokens []int32
	}{{"a", a}, {"b", b}} {
		tb := f.c.Match(salt, s.tokens)
		require.NoError(t, f.prefill(t, salt, tb, s.tokens))
		require.NoError(t, f.c.Save(st, s.id, salt, s.tokens, tb, nil))
		tb.Release(f.p)
	}
	hs := BlockHashes(testFP, salt, a)
	require.NoError(t, st.Delete("a"))
	assert.Equal(t, 1, f.c.Forget(salt, a), "a's second block is erased; the first is b's too")
	for i, h := range hs {
		assert.Equal(t, i == 0, st.Blobs().Has(h), "block %d's file", i)
	}
	m := f.c.Match(salt, a)
	assert.Len(t, m.Blocks, 1, "only the block b's snapshot holds")
	f.check(t, salt, m, a)
	m.Release(f.p)
}
