// Package kvcache manages the paged KV cache: fixed-size blocks of token
// positions, reference-counted in a pool, and per-sequence block tables
// that say which blocks hold a sequence's keys and values.
//
// The pool owns only block ids and counts; the K/V bytes live in backend
// buffers laid out as [blocks, tokensPerBlock, kvHeads·headDim] per layer,
// addressed through the ids. Sharing a prefix is retaining its blocks;
// copy-on-write of a shared partial block is the caller's (the session's)
// job, done before writing into it.
package kvcache

import (
	"errors"
	"fmt"
	"sync"
)

// BlockID identifies a block in a Pool: 0 <= id < Pool.Blocks().
type BlockID int32

// ErrCacheFull is returned when a Pool has fewer free blocks than asked.
var ErrCacheFull = errors.New("kvcache: cache full")

// Pool allocates KV blocks and counts references to them. It is safe for
// concurrent use.
type Pool struct {
	mu   sync.Mutex
	refs []int32   // refs[id] > 0 for allocated blocks
	free []BlockID // stack of free ids
}

// NewPool returns a Pool of n blocks, all free.
func NewPool(n int) *Pool {
	if n < 0 || n > 1<<31-1 {
		panic("kvcache: block count out of range")
	}
	p := &Pool{refs: make([]int32, n), free: make([]BlockID, n)}
	for i := range p.free {
		p.free[i] = BlockID(n - 1 - i) // pop order 0, 1, 2, ...
	}
	return p
}

// Blocks returns the pool's size.
func (p *Pool) Blocks() int { return len(p.refs) }

// Free returns the number of free blocks.
func (p *Pool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// Alloc takes n free blocks, each with one reference. It allocates all or
// nothing: with fewer than n free it returns ErrCacheFull.
func (p *Pool) Alloc(n int) ([]BlockID, error) {
	if n < 0 {
		panic("kvcache: Alloc of a negative count")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > len(p.free) {
		return nil, fmt.Errorf("%w: need %d blocks, %d free of %d", ErrCacheFull, n, len(p.free), len(p.refs))
	}
	ids := make([]BlockID, n)
	top := len(p.free)
	for i := range ids {
		id := p.free[top-1-i]
		ids[i] = id
		p.refs[id] = 1
	}
	p.free = p.free[:top-n]
	return ids, nil
}

// Retain adds a reference to each block. It panics if a block is not
// allocated: retaining a free block is a bookkeeping bug.
func (p *Pool) Retain(ids ...BlockID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		if p.refs[id] <= 0 {
			panic("kvcache: Retain of a free block")
		}
		p.refs[id]++
	}
}

// Release drops a reference to each block; blocks left with none become
// free. It panics if a block is already free.
func (p *Pool) Release(ids ...BlockID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		if p.refs[id] <= 0 {
			panic("kvcache: Release of a free block")
		}
		p.refs[id]--
		if p.refs[id] == 0 {
			p.free = append(p.free, id)
		}
	}
}

// Refs returns the reference count of a block (0 when free).
func (p *Pool) Refs(id BlockID) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int(p.refs[id])
}

// Table is one sequence's view of the cache: the blocks holding its tokens,
// in order, and how many token positions are filled.
type Table struct {
	Blocks []BlockID
	Len    int
}

// Slot returns the block and the offset within it of token position pos.
func (t *Table) Slot(pos, tokensPerBlock int) (BlockID, int) {
	return t.Blocks[pos/tokensPerBlock], pos % tokensPerBlock
}

// Reserve makes room for n more tokens, allocating blocks from p as
// needed. On ErrCacheFull the table is unchanged.
func (t *Table) Reserve(p *Pool, n, tokensPerBlock int) error {
	need := (t.Len+n+tokensPerBlock-1)/tokensPerBlock - len(t.Blocks)
	if need <= 0 {
		return nil
	}
	ids, err := p.Alloc(need)
	if err != nil {
		return err
	}
	t.Blocks = append(t.Blocks, ids...)
	return nil
}

// Truncate shortens the table to n tokens, releasing blocks no longer
// needed. It panics if n > t.Len.
func (t *Table) Truncate(p *Pool, n, tokensPerBlock int) {
	if n < 0 || n > t.Len {
		panic("kvcache: Truncate beyond the table")
	}
	keep := (n + tokensPerBlock - 1) / tokensPerBlock
	if keep < len(t.Blocks) {
		p.Release(t.Blocks[keep:]...)
		t.Blocks = t.Blocks[:keep:keep]
	}
	t.Len = n
}

// Fork returns a table sharing all of t's blocks (each retained once more).
// Before either table writes into a shared, partially filled last block,
// the writer must copy it (see Pool.Refs).
func (t *Table) Fork(p *Pool) *Table {
	p.Retain(t.Blocks...)
	return &Table{Blocks: append([]BlockID(nil), t.Blocks...), Len: t.Len}
}

// Release drops the table's references and empties it.
func (t *Table) Release(p *Pool) {
	p.Release(t.Blocks...)
	t.Blocks, t.Len = nil, 0
}
