package kvcache

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPoolAllocRelease(t *testing.T) {
	p := NewPool(4)
	assert.Equal(t, 4, p.Free())
	a, err := p.Alloc(3)
	require.NoError(t, err)
	assert.Equal(t, []BlockID{0, 1, 2}, a)
	assert.Equal(t, 1, p.Free())
	_, err = p.Alloc(2)
	assert.ErrorIs(t, err, ErrCacheFull)
	assert.Equal(t, 1, p.Free(), "a failed Alloc takes nothing")
	p.Retain(a[1])
	assert.Equal(t, 2, p.Refs(a[1]))
	p.Release(a...)
	assert.Equal(t, 3, p.Free())
	assert.Equal(t, 1, p.Refs(a[1]))
	p.Release(a[1])
	assert.Equal(t, 4, p.Free())
	assert.Panics(t, func() { p.Release(a[0]) })
	assert.Panics(t, func() { p.Retain(a[0]) })
}

func TestTableReserveTruncateFork(t *testing.T) {
	const bt = 4
	p := NewPool(8)
	var tb Table
	require.NoError(t, tb.Reserve(p, 5, bt))
	assert.Len(t, tb.Blocks, 2)
	tb.Len = 5
	require.NoError(t, tb.Reserve(p, 3, bt)) // 8 tokens still fit in 2 blocks
	assert.Len(t, tb.Blocks, 2)
	b, off := tb.Slot(5, bt)
	assert.Equal(t, tb.Blocks[1], b)
	assert.Equal(t, 1, off)

	f := tb.Fork(p)
	assert.Equal(t, 2, p.Refs(tb.Blocks[0]))
	tb.Truncate(p, 3, bt)
	assert.Len(t, tb.Blocks, 1)
	assert.Equal(t, 1, p.Refs(f.Blocks[1]), "the fork still holds the second block")
	assert.Equal(t, 6, p.Free())

	err := tb.Reserve(p, 100, bt)
	assert.ErrorIs(t, err, ErrCacheFull)
	assert.Len(t, tb.Blocks, 1, "failed Reserve leaves the table unchanged")

	tb.Release(p)
	f.Release(p)
	assert.Equal(t, 8, p.Free())
	assert.Panics(t, func() { tb.Truncate(p, 1, bt) })
}

// TestPoolConcurrent checks under -race that concurrent tables never share a
// block they did not fork and that every reference comes back.
func TestPoolConcurrent(t *testing.T) {
	const bt = 16
	p := NewPool(256)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			var tables []*Table
			for range 300 {
				switch op := rng.IntN(4); {
				case op == 0 || len(tables) == 0:
					tb := &Table{}
					if tb.Reserve(p, 1+rng.IntN(40), bt) == nil {
						tb.Len = len(tb.Blocks) * bt
						tables = append(tables, tb)
					}
				case op == 1:
					tables = append(tables, tables[rng.IntN(len(tables))].Fork(p))
				case op == 2:
					tb := tables[rng.IntN(len(tables))]
					tb.Truncate(p, rng.IntN(tb.Len+1), bt)
				default:
					i := rng.IntN(len(tables))
					tables[i].Release(p)
					tables = append(tables[:i], tables[i+1:]...)
				}
			}
			for _, tb := range tables {
				tb.Release(p)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 256, p.Free(), "every block returned")
	for id := range 256 {
		assert.Zero(t, p.Refs(BlockID(id)))
	}
}
