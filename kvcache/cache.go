package kvcache

import (
	"container/list"
	"fmt"
	"sync"
	"sync/atomic"
)

// Config configures a Cache.
type Config struct {
	// Fingerprint is the model's; its BlockTokens is the tokens per block.
	Fingerprint Fingerprint
	// IO moves block bytes between the backend and the host.
	IO BlockIO
	// HostBytes is the host tier's budget: evicted blocks' bytes kept in
	// memory. 0 disables the tier.
	HostBytes int64
	// Disk is the disk tier's block store (usually Store.Blobs()); nil
	// disables the tier.
	Disk *Blobs
	// DiskBytes bounds the block files the disk tier holds. (Files that
	// snapshots hold belong to the Store and are not bounded by it.)
	DiskBytes int64
	// MaxIdle caps the idle (unreferenced, published) blocks kept in
	// backend memory; beyond it the least recently used is evicted at
	// once. 0: no cap (idle blocks go only when Alloc needs them).
	MaxIdle int
}

// Stats are a Cache's counters and tier sizes.
type Stats struct {
	Blocks, Free, Idle, InUse int   // backend blocks by state
	Indexed                   int   // hashes the cache knows, in any tier
	HostBlocks, DiskBlocks    int   // blocks held in the host and disk tiers
	HostBytes, DiskBytes      int64 // bytes held in the host and disk tiers
	Hits, Misses              int64 // blocks matched, and Match calls that stopped early
	Evictions, Reloads        int64 // blocks evicted from and reloaded into the backend
	Dropped                   int64 // evicted blocks no tier had room for
	Deduped                   int64 // published duplicates replaced by the indexed block
	Forgotten                 int64 // blocks erased by Forget
}

// Cache is the shared, tiered prefix cache over a Pool. Full blocks are
// published under their chain hash (Publish) and reused by later sequences
// of the same tenant (Match). Idle published blocks stay in backend memory
// until Alloc needs them; evicted, their bytes go to the host tier, then
// the disk tier, and come back when a Match reaches them.
//
// All Cache state is guarded by the Pool's mutex, so Pool, Table and Cache
// calls are safe for concurrent use (each Table by one owner at a time).
type Cache struct {
	p    *Pool
	cfg  Config
	io   BlockIO
	bt   int
	bb   int
	hs   hasher // per-salt state is set per call; buf is scratch
	fpH  Hash
	disk *Blobs

	index    map[Hash]*entry
	byBlock  []*entry
	hostLRU  *list.List // *entry, least recently used first
	diskLRU  *list.List
	hostUsed int64
	diskUsed int64
	scratch  []byte
	st       Stats
}

// entry is one indexed block hash and where its bytes are.
type entry struct {
	h      Hash
	block  BlockID // resident backend block, or -1
	host   []byte  // host tier copy, or nil
	hostEl *list.Element
	diskEl *list.Element // non-nil: the cache holds the disk copy in Blobs
}

// NewCache attaches a Cache to p, whose blocks io reads and writes. A Pool
// takes one Cache; attach it before any block is allocated.
func NewCache(p *Pool, cfg Config) (*Cache, error) {
	if cfg.IO == nil {
		return nil, fmt.Errorf("kvcache: cache without a BlockIO")
	}
	if cfg.Fingerprint.BlockTokens < 1 {
		return nil, fmt.Errorf("kvcache: fingerprint with %d tokens per block", cfg.Fingerprint.BlockTokens)
	}
	if cfg.HostBytes < 0 || cfg.DiskBytes < 0 || cfg.MaxIdle < 0 {
		return nil, fmt.Errorf("kvcache: negative cache budget")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.c != nil {
		return nil, fmt.Errorf("kvcache: pool already has a cache")
	}
	if len(p.free) != len(p.refs) {
		return nil, fmt.Errorf("kvcache: cache attached to a pool with blocks in use")
	}
	c := &Cache{p: p, cfg: cfg, io: cfg.IO, bt: cfg.Fingerprint.BlockTokens, bb: cfg.IO.BlockBytes(),
		fpH: cfg.Fingerprint.Sum(), disk: cfg.Disk, index: map[Hash]*entry{},
		byBlock: make([]*entry, len(p.refs)), hostLRU: list.New(), diskLRU: list.New()}
	c.scratch = make([]byte, c.bb)
	p.c = c
	return c, nil
}

// Pool returns the cache's pool.
func (c *Cache) Pool() *Pool { return c.p }

// Fingerprint returns the model fingerprint the cache hashes with.
func (c *Cache) Fingerprint() Fingerprint { return c.cfg.Fingerprint }

// BlockTokens returns the tokens per block.
func (c *Cache) BlockTokens() int { return c.bt }

// Stats returns the current counters.
func (c *Cache) Stats() Stats {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	s := c.st
	s.Blocks = len(c.p.refs)
	s.Free = len(c.p.free)
	s.Idle = c.p.idle.Len()
	s.InUse = s.Blocks - s.Free - s.Idle
	s.Indexed = len(c.index)
	s.HostBlocks, s.DiskBlocks = c.hostLRU.Len(), c.diskLRU.Len()
	s.HostBytes, s.DiskBytes = c.hostUsed, c.diskUsed
	return s
}

func (c *Cache) hasher(salt Salt) *hasher {
	c.hs.fp, c.hs.salt = c.fpH, salt
	return &c.hs
}

// Match returns a table holding the longest prefix of tokens whose full
// blocks the cache has for this tenant, each block retained for the table
// (release it with Table.Release). Blocks in the host or disk tier are
// reloaded into fresh backend blocks; a block that cannot be (no free
// block, a corrupt file) ends the match. The table's Len is a multiple of
// BlockTokens, possibly 0. To have logits for the last prompt token, match
// tokens[:len(tokens)-1].
func (c *Cache) Match(salt Salt, tokens []int32) *Table {
	full := len(tokens) / c.bt
	pre := c.prefetch(BlockHashes(c.cfg.Fingerprint, salt, tokens[:full*c.bt]))
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	t, _ := c.matchLocked(salt, tokens, full, pre)
	return t
}

// prefetch reads from the disk tier, without the pool lock, the blocks of
// hs (a hash chain) that are neither in backend memory nor in the host
// tier, up to the first that is not on disk — the reads matchLocked would
// otherwise do under the lock, stalling every step meanwhile. A block
// that fails its checks is left for matchLocked to read and report.
func (c *Cache) prefetch(hs []Hash) map[Hash][]byte {
	if c.disk == nil || len(hs) == 0 {
		return nil
	}
	var need []Hash
	c.p.mu.Lock()
	for _, h := range hs {
		if e := c.index[h]; e == nil || (e.block < 0 && e.host == nil) {
			need = append(need, h)
		}
	}
	c.p.mu.Unlock()
	// A few reads in flight keep the disk (and the checksums) busy; the
	// chain is cut at the first block that is missing or damaged.
	bufs := make([][]byte, len(need))
	var next atomic.Int64
	var mu sync.Mutex
	cut := len(need) // the first index that failed
	below := func(i int) bool { mu.Lock(); defer mu.Unlock(); return i < cut }
	var wg sync.WaitGroup
	for range min(prefetchReaders, len(need)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(need) || !below(i) {
					return
				}
				buf := make([]byte, c.bb)
				if !c.disk.Has(need[i]) || c.disk.Get(need[i], buf) != nil {
					mu.Lock()
					cut = min(cut, i)
					mu.Unlock()
					return
				}
				bufs[i] = buf
			}
		})
	}
	wg.Wait()
	var pre map[Hash][]byte
	for i := range cut {
		if pre == nil {
			pre = map[Hash][]byte{}
		}
		pre[need[i]] = bufs[i]
	}
	return pre
}

// prefetchReaders is how many block files prefetch reads at once.
const prefetchReaders = 4

// matchLocked matches up to max full blocks, taking disk blocks from pre
// (prefetch) where it has them; err says why it stopped short of max (nil
// when a hash is simply unknown).
func (c *Cache) matchLocked(salt Salt, tokens []int32, max int, pre map[Hash][]byte) (*Table, error) {
	hs := c.hasher(salt)
	t := &Table{}
	var parent Hash
	var err error
	for i := range max {
		h := hs.next(parent, tokens[i*c.bt:(i+1)*c.bt], false)
		var id BlockID
		id, err = c.getLocked(h, pre[h])
		if err != nil || id < 0 {
			if err != nil {
				err = fmt.Errorf("block %d (%s…): %w", i, h.short(), err)
			}
			break
		}
		t.Blocks = append(t.Blocks, id)
		t.hashes = append(t.hashes, h)
		parent = h
	}
	t.Len = len(t.Blocks) * c.bt
	c.st.Hits += int64(len(t.Blocks))
	if len(t.Blocks) < max {
		c.st.Misses++
	}
	return t, err
}

// getLocked returns a retained backend block holding h, reloading it from
// the host or disk tier if needed, or -1 if h is unknown. fetched, if not
// nil, is h's bytes already read from the disk tier.
func (c *Cache) getLocked(h Hash, fetched []byte) (BlockID, error) {
	e := c.index[h]
	if e != nil && e.block >= 0 {
		c.p.retainLocked(e.block)
		return e.block, nil
	}
	if e == nil && fetched == nil && (c.disk == nil || !c.disk.Has(h)) {
		return -1, nil
	}
	if len(c.p.free)+c.p.idle.Len() == 0 {
		return -1, fmt.Errorf("%w: no block to reload into", ErrCacheFull)
	}
	// Take the bytes out of their tier before allocating: Alloc may
	// evict, and eviction may reshuffle the tiers (and use c.scratch).
	var src []byte
	switch {
	case e != nil && e.host != nil:
		src = e.host
		c.dropHostLocked(e)
	case fetched != nil:
		src = fetched
	case c.disk != nil:
		src = make([]byte, c.bb)
		if err := c.disk.Get(h, src); err != nil {
			if e != nil {
				c.forgetLocked(e)
			}
			return -1, err
		}
	default:
		c.forgetLocked(e)
		return -1, nil
	}
	if e == nil {
		e = &entry{h: h, block: -1}
	}
	ids, err := c.p.allocLocked(1) // cannot fail: checked above
	if err != nil {
		panic("kvcache: reload allocation failed")
	}
	id := ids[0]
	if err := c.io.WriteBlock(id, src); err != nil {
		c.p.releaseLocked(id)
		c.forgetLocked(e)
		return -1, fmt.Errorf("reload: %w", err)
	}
	c.index[h] = e
	e.block = id
	c.byBlock[id] = e
	c.p.pub[id] = true
	c.st.Reloads++
	return id, nil
}

// Publish enters t's full blocks into the index, so that later Matches of
// the same tenant can share them. tokens are the sequence's tokens, at
// least t.Len of them (the first t.Len are what the table holds). A block
// whose hash is already indexed under another backend block is replaced in
// t by that block (and freed, unless a fork holds it too). Call it after
// each step that fills a block, never during one (it is cheap for blocks
// already published).
func (c *Cache) Publish(salt Salt, tokens []int32, t *Table) error {
	if len(tokens) < t.Len {
		return fmt.Errorf("kvcache: publish of a %d-token table with %d tokens", t.Len, len(tokens))
	}
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	full := t.Len / c.bt
	if len(t.hashes) < full {
		t.hashes = c.hasher(salt).chain(t.hashes, tokens[:full*c.bt], c.bt, false)
	}
	for i, h := range t.hashes[:full] {
		id := t.Blocks[i]
		if c.p.pub[id] {
			if c.byBlock[id].h != h {
				panic("kvcache: block published under another hash (write without PrepareWrite)")
			}
			continue
		}
		e := c.index[h]
		switch {
		case e == nil:
			e = &entry{h: h, block: -1}
			c.index[h] = e
		case e.block >= 0:
			// A duplicate (another sequence computed the same block):
			// share the indexed one and free ours.
			c.p.retainLocked(e.block)
			c.p.releaseLocked(id)
			t.Blocks[i] = e.block
			c.st.Deduped++
			continue
		}
		e.block = id
		c.byBlock[id] = e
		c.p.pub[id] = true
		if e.host != nil {
			c.dropHostLocked(e)
		}
	}
	return nil
}

// unpublishLocked withdraws block id (held only by a table about to write
// into it) from the index.
func (c *Cache) unpublishLocked(id BlockID) {
	e := c.byBlock[id]
	c.byBlock[id] = nil
	e.block = -1
	if e.host == nil && e.diskEl == nil {
		delete(c.index, e.h)
	}
}

// evictLocked moves the bytes of idle block id, about to become free,
// down a tier: to the host if the budget allows (spilling older host
// blocks to disk), else to disk, else nowhere (the hash is forgotten).
func (c *Cache) evictLocked(id BlockID) {
	e := c.byBlock[id]
	c.byBlock[id] = nil
	e.block = -1
	c.st.Evictions++
	if e.host != nil || e.diskEl != nil {
		return // a lower tier already has it
	}
	if int64(c.bb) <= c.cfg.HostBytes {
		buf := make([]byte, c.bb)
		if err := c.io.ReadBlock(id, buf); err != nil {
			c.forgetLocked(e)
			return
		}
		for c.hostUsed+int64(c.bb) > c.cfg.HostBytes {
			old := c.hostLRU.Front().Value.(*entry)
			c.spillLocked(old, old.host)
			c.dropHostLocked(old)
			if old.block < 0 && old.diskEl == nil {
				c.forgetLocked(old)
			}
		}
		e.host = buf
		e.hostEl = c.hostLRU.PushBack(e)
		c.hostUsed += int64(c.bb)
		return
	}
	if c.disk != nil && int64(c.bb) <= c.cfg.DiskBytes && c.io.ReadBlock(id, c.scratch) == nil {
		c.spillLocked(e, c.scratch)
	}
	if e.diskEl == nil {
		c.forgetLocked(e)
	}
}

// spillLocked puts e's bytes in the disk tier if it has a budget, making
// room by dropping its least recently used blocks. On failure e simply
// has no disk copy.
func (c *Cache) spillLocked(e *entry, data []byte) {
	if c.disk == nil || int64(c.bb) > c.cfg.DiskBytes || e.diskEl != nil {
		return
	}
	for c.diskUsed+int64(c.bb) > c.cfg.DiskBytes {
		old := c.diskLRU.Front().Value.(*entry)
		c.dropDiskLocked(old)
		if old.block < 0 && old.host == nil {
			delete(c.index, old.h)
		}
	}
	if err := c.disk.put(e.h, data, false); err != nil {
		return
	}
	e.diskEl = c.diskLRU.PushBack(e)
	c.diskUsed += int64(c.bb)
}

func (c *Cache) dropHostLocked(e *entry) {
	c.hostLRU.Remove(e.hostEl)
	e.host, e.hostEl = nil, nil
	c.hostUsed -= int64(c.bb)
}

func (c *Cache) dropDiskLocked(e *entry) {
	c.diskLRU.Remove(e.diskEl)
	e.diskEl = nil
	c.diskUsed -= int64(c.bb)
	c.disk.Release(e.h)
}

// forgetLocked removes a non-resident entry and its lower-tier copies.
func (c *Cache) forgetLocked(e *entry) {
	if e.host != nil {
		c.dropHostLocked(e)
	}
	if e.diskEl != nil {
		c.dropDiskLocked(e)
	}
	if c.index[e.h] == e {
		delete(c.index, e.h)
	}
	c.st.Dropped++
}

// Forget erases a deleted sequence's blocks from the cache: for each full
// block of tokens (hashed under salt), unless another holder still uses
// it — a table (a live session, a fork, a Match or Save in progress) or a
// stored snapshot's block file — the block is withdrawn from the index
// (an idle backend block becomes free), its host copy dropped and the
// disk tier's hold on its file released (the file goes with its last
// holder). A later Match of the same tokens then finds only what other
// holders keep. Release the sequence's table first: blocks it still holds
// count as used. Forget returns how many blocks it erased.
func (c *Cache) Forget(salt Salt, tokens []int32) int {
	full := len(tokens) / c.bt
	hashes := BlockHashes(c.cfg.Fingerprint, salt, tokens[:full*c.bt])
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	n := 0
	for _, h := range hashes {
		e := c.index[h]
		if e == nil {
			continue // not cached, or only a snapshot's file holds it
		}
		if e.block >= 0 && c.p.refs[e.block] > 0 {
			continue // a table uses it
		}
		if c.disk != nil {
			refs := c.disk.Refs(h)
			if e.diskEl != nil {
				refs-- // the disk tier's own hold
			}
			if refs > 0 {
				continue // a stored snapshot holds it
			}
		}
		if id := e.block; id >= 0 {
			c.p.idle.Remove(c.p.elem[id])
			c.p.elem[id] = nil
			c.p.pub[id] = false
			c.byBlock[id] = nil
			e.block = -1
			c.p.free = append(c.p.free, id)
		}
		if e.host != nil {
			c.dropHostLocked(e)
		}
		if e.diskEl != nil {
			c.dropDiskLocked(e)
		}
		delete(c.index, h)
		n++
	}
	c.st.Forgotten += int64(n)
	return n
}

// Restore rebuilds a session's table from a snapshot made under this
// cache's fingerprint with Cache.Save: its blocks are matched in the index
// or loaded from the disk store (where Save put them). It fails — naming
// the block — if the snapshot's hashes do not match its tokens for this
// salt (another tenant, or corruption) or a block cannot be loaded. The
// partial last block is loaded into a private block.
func (c *Cache) Restore(salt Salt, s *Snapshot) (*Table, error) {
	if err := c.cfg.Fingerprint.Check(s.Fingerprint); err != nil {
		return nil, err
	}
	want := BlockHashes(c.cfg.Fingerprint, salt, s.Tokens)
	if len(want) != len(s.Blocks) {
		return nil, fmt.Errorf("restore: %w: %d blocks for %d tokens", ErrCorrupt, len(s.Blocks), len(s.Tokens))
	}
	for i := range want {
		if want[i] != s.Blocks[i] {
			return nil, fmt.Errorf("restore: %w: block %d's hash does not match the tokens (another tenant?)", ErrCorrupt, i)
		}
	}
	pre := c.prefetch(want)
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	full := len(s.Tokens) / c.bt
	t, err := c.matchLocked(salt, s.Tokens, full, pre)
	if len(t.Blocks) < full {
		c.p.releaseLocked(t.Blocks...)
		if err == nil {
			err = fmt.Errorf("block %d (%s…): %w", len(t.Blocks), want[len(t.Blocks)].short(), ErrNotFound)
		}
		return nil, fmt.Errorf("restore: %w", err)
	}
	if full < len(want) {
		h := want[full]
		var err error
		buf := pre[h]
		switch {
		case buf != nil:
		case c.disk != nil:
			buf = make([]byte, c.bb)
			err = c.disk.Get(h, buf)
		default:
			err = fmt.Errorf("block %d (%s…): no disk store", full, h.short())
		}
		var ids []BlockID
		if err == nil {
			ids, err = c.p.allocLocked(1)
		}
		if err == nil {
			if err = c.io.WriteBlock(ids[0], buf); err != nil {
				c.p.releaseLocked(ids[0])
			}
		}
		if err != nil {
			c.p.releaseLocked(t.Blocks...)
			return nil, fmt.Errorf("restore: partial block %d: %w", full, err)
		}
		t.Blocks = append(t.Blocks, ids[0])
	}
	t.Len = len(s.Tokens)
	return t, nil
}

// Save writes a session's snapshot to store under id: tokens (at least
// t.Len; the first t.Len are what t holds), t's blocks — stored in the
// store's content-addressed block files, written only if not there yet —
// and the runtime's opaque meta. The table must not change during Save.
func (c *Cache) Save(store *Store, id string, salt Salt, tokens []int32, t *Table, meta []byte) error {
	if len(tokens) < t.Len {
		return fmt.Errorf("kvcache: save of a %d-token table with %d tokens", t.Len, len(tokens))
	}
	s := &Snapshot{Fingerprint: c.cfg.Fingerprint, Tokens: tokens[:t.Len],
		Blocks: BlockHashes(c.cfg.Fingerprint, salt, tokens[:t.Len]), Meta: meta}
	if len(s.Blocks) > len(t.Blocks) {
		return fmt.Errorf("kvcache: table of %d tokens has %d blocks", t.Len, len(t.Blocks))
	}
	blocks := append([]BlockID(nil), t.Blocks[:len(s.Blocks)]...)
	return store.Save(id, s, &tableSource{c: c, blocks: blocks})
}

// tableSource reads a table's blocks for Store.Save.
type tableSource struct {
	c      *Cache
	blocks []BlockID
}

func (ts *tableSource) BlockBytes() int { return ts.c.bb }

func (ts *tableSource) ReadBlock(i int, dst []byte) error {
	ts.c.p.mu.Lock()
	defer ts.c.p.mu.Unlock()
	return ts.c.io.ReadBlock(ts.blocks[i], dst)
}
