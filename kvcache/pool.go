package kvcache

import (
	"container/list"
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
//
// A block is free, in use (one or more references), or — once a Cache is
// attached (NewCache) — idle: unreferenced but published in the cache's
// index, kept in an LRU list and reclaimed by Alloc only when no free block
// is left. Idle blocks count as available in Free.
type Pool struct {
	mu   sync.Mutex
	refs []int32   // refs[id] > 0 for blocks in use
	free []BlockID // stack of free ids
	pub  []bool    // published in the attached cache's index
	idle *list.List
	elem []*list.Element // elem[id] in idle, for idle blocks
	c    *Cache          // attached cache, or nil
}

// NewPool returns a Pool of n blocks, all free.
func NewPool(n int) *Pool {
	if n < 0 || n > 1<<31-1 {
		panic("kvcache: block count out of range")
	}
	p := &Pool{refs: make([]int32, n), free: make([]BlockID, n), pub: make([]bool, n),
		idle: list.New(), elem: make([]*list.Element, n)}
	for i := range p.free {
		p.free[i] = BlockID(n - 1 - i) // pop order 0, 1, 2, ...
	}
	return p
}

// Blocks returns the pool's size.
func (p *Pool) Blocks() int { return len(p.refs) }

// Free returns the number of blocks Alloc can hand out: free blocks plus
// idle cached ones (which Alloc evicts).
func (p *Pool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free) + p.idle.Len()
}

// Idle returns the number of unreferenced blocks kept for the cache.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle.Len()
}

// Alloc takes n blocks, each with one reference, evicting least recently
// used idle blocks when there are not enough free ones. It allocates all
// or nothing: with fewer than n available it returns ErrCacheFull.
func (p *Pool) Alloc(n int) ([]BlockID, error) {
	if n < 0 {
		panic("kvcache: Alloc of a negative count")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.allocLocked(n)
}

func (p *Pool) allocLocked(n int) ([]BlockID, error) {
	if n > len(p.free)+p.idle.Len() {
		return nil, fmt.Errorf("%w: need %d blocks, %d free and %d idle of %d", ErrCacheFull, n, len(p.free), p.idle.Len(), len(p.refs))
	}
	for len(p.free) < n {
		p.evictLocked(p.idle.Front().Value.(BlockID))
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

// evictLocked turns an idle block into a free one, letting the cache move
// its bytes down a tier first.
func (p *Pool) evictLocked(id BlockID) {
	p.idle.Remove(p.elem[id])
	p.elem[id] = nil
	if p.pub[id] {
		p.pub[id] = false
		p.c.evictLocked(id)
	}
	p.free = append(p.free, id)
}

// Retain adds a reference to each block. It panics if a block is not in
// use: retaining a free block is a bookkeeping bug.
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

// retainLocked retains a block that may be idle.
func (p *Pool) retainLocked(id BlockID) {
	if p.refs[id] == 0 {
		if p.elem[id] == nil {
			panic("kvcache: retain of a free block")
		}
		p.idle.Remove(p.elem[id])
		p.elem[id] = nil
	}
	p.refs[id]++
}

// Release drops a reference to each block. Blocks left with none become
// free, or idle if they are published in an attached cache. It panics if a
// block is not in use.
func (p *Pool) Release(ids ...BlockID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked(ids...)
}

func (p *Pool) releaseLocked(ids ...BlockID) {
	for _, id := range ids {
		if p.refs[id] <= 0 {
			panic("kvcache: Release of a free block")
		}
		p.refs[id]--
		if p.refs[id] > 0 {
			continue
		}
		if p.pub[id] {
			p.elem[id] = p.idle.PushBack(id)
			if max := p.c.cfg.MaxIdle; max != 0 && p.idle.Len() > max {
				p.evictLocked(p.idle.Front().Value.(BlockID))
			}
			continue
		}
		p.free = append(p.free, id)
	}
}

// Refs returns the reference count of a block (0 when free or idle).
func (p *Pool) Refs(id BlockID) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int(p.refs[id])
}

// Table is one sequence's view of the cache: the blocks holding its tokens,
// in order, and how many token positions are filled.
//
// A Table is not safe for concurrent use: one owner (the session) calls its
// methods, and never while a forward step that uses it is running.
type Table struct {
	Blocks []BlockID
	Len    int
	// hashes[i] is the chain hash of full block i, for a prefix of the
	// table's full blocks (computed by Cache.Publish and Cache.Match).
	hashes []Hash
}

// Slot returns the block and the offset within it of token position pos.
func (t *Table) Slot(pos, tokensPerBlock int) (BlockID, int) {
	return t.Blocks[pos/tokensPerBlock], pos % tokensPerBlock
}

// Reserve makes room for n more tokens, allocating blocks from p as
// needed. When p has a Cache attached, Reserve also makes every block the
// new tokens will be written into private first (PrepareWrite), copying a
// shared partial block through the cache's BlockIO. On error the table
// holds the same tokens as before (ErrCacheFull: nothing changed).
func (t *Table) Reserve(p *Pool, n, tokensPerBlock int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	need := (t.Len+n+tokensPerBlock-1)/tokensPerBlock - len(t.Blocks)
	var io BlockIO
	if p.c != nil {
		io = p.c.io
		cow := t.sharedFromLocked(p, tokensPerBlock)
		if max(need, 0)+cow > len(p.free)+p.idle.Len() {
			return fmt.Errorf("%w: need %d blocks, %d free and %d idle of %d", ErrCacheFull, max(need, 0)+cow, len(p.free), p.idle.Len(), len(p.refs))
		}
		if err := t.prepareWriteLocked(p, io, tokensPerBlock); err != nil {
			return err
		}
	}
	if need <= 0 {
		return nil
	}
	ids, err := p.allocLocked(need)
	if err != nil {
		return err
	}
	t.Blocks = append(t.Blocks, ids...)
	return nil
}

// sharedFromLocked counts the blocks from the one holding position Len on
// that are shared (more than one reference): PrepareWrite replaces them.
func (t *Table) sharedFromLocked(p *Pool, tokensPerBlock int) int {
	n := 0
	for _, id := range t.Blocks[min(t.Len/tokensPerBlock, len(t.Blocks)):] {
		if p.refs[id] > 1 {
			n++
		}
	}
	return n
}

// PrepareWrite makes the blocks that the table's next tokens go into
// private, so that appending cannot change what another table or the
// cache's index sees: every block from the one holding position Len on
// that is shared (refs > 1) is replaced by a fresh block — a copy made
// with io when it holds tokens (a partial last block), else uninitialised —
// and such a block that only this table holds but that is published in the
// cache's index is withdrawn from the index. Reserve calls it when a Cache
// is attached; call it yourself before writing into a table's blocks by
// other means. io may be nil when no copy is needed. On error the table
// still holds the same tokens (some blocks may already be replaced by
// copies).
func (t *Table) PrepareWrite(p *Pool, io BlockIO, tokensPerBlock int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return t.prepareWriteLocked(p, io, tokensPerBlock)
}

func (t *Table) prepareWriteLocked(p *Pool, io BlockIO, tokensPerBlock int) error {
	first := t.Len / tokensPerBlock
	for i := first; i < len(t.Blocks); i++ {
		id := t.Blocks[i]
		if p.refs[id] == 1 {
			if p.pub[id] {
				p.pub[id] = false
				p.c.unpublishLocked(id)
			}
			continue
		}
		fresh, err := p.allocLocked(1)
		if err != nil {
			return err
		}
		if i == first && t.Len%tokensPerBlock != 0 {
			if io == nil {
				p.releaseLocked(fresh[0])
				return fmt.Errorf("kvcache: copy-on-write of block %d needs a BlockIO", id)
			}
			if err := io.CopyBlock(fresh[0], id); err != nil {
				p.releaseLocked(fresh[0])
				return fmt.Errorf("copy-on-write of block %d: %w", id, err)
			}
		}
		p.releaseLocked(id)
		t.Blocks[i] = fresh[0]
	}
	if len(t.hashes) > first {
		t.hashes = t.hashes[:first]
	}
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
	if full := n / tokensPerBlock; len(t.hashes) > full {
		t.hashes = t.hashes[:full:full]
	}
	t.Len = n
}

// Fork returns a table sharing all of t's blocks (each retained once more).
// Appending to either table copies a shared partial block first (Reserve
// does it when a Cache is attached, else call PrepareWrite).
func (t *Table) Fork(p *Pool) *Table {
	p.Retain(t.Blocks...)
	return &Table{Blocks: append([]BlockID(nil), t.Blocks...), Len: t.Len,
		hashes: append([]Hash(nil), t.hashes...)}
}

// Release drops the table's references and empties it.
func (t *Table) Release(p *Pool) {
	p.Release(t.Blocks...)
	t.Blocks, t.Len, t.hashes = nil, 0, nil
}
