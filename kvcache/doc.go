// Package kvcache manages the paged KV cache: fixed-size blocks of token
// positions, reference-counted in a Pool; per-sequence block tables
// (Table); a shared prefix cache over the pool with host and disk tiers
// (Cache); and persistent session snapshots (Store).
//
// # Blocks and their states
//
// The Pool owns block ids; the K/V bytes live in backend buffers laid out
// as [blocks, tokensPerBlock, kvHeads·headDim] per layer, addressed by id,
// and move to and from the host through a BlockIO (BufferIO over the
// engine's buffers). A block id is
//
//   - free: on the free stack, content meaningless;
//   - in use: one or more Tables (or a Match in progress) hold references;
//   - idle: unreferenced but published in the Cache's index under its hash,
//     its bytes still valid, on an LRU list. Alloc reclaims idle blocks,
//     least recently used first, only when no free block is left (or at
//     once beyond Config.MaxIdle), so Pool.Free counts them as available.
//
// A block's hash is a chain: H(parent hash, the block's token ids, the
// model Fingerprint, the tenant Salt). Only full blocks are published; two
// tenants never compute the same hash, so they never share a block. When
// an idle block is reclaimed its bytes move down to the host tier (a byte
// budget, LRU), which spills its oldest blocks to the disk tier (Blobs, a
// content-addressed file per hash, with its own budget); a block no tier
// has room for is forgotten. A Match that reaches a hash held only in the
// host or disk tier reloads it into a freshly allocated backend block.
// Disk blocks are reference-counted by their holders (the cache's disk
// tier and each stored snapshot) and deleted with the last one; Store.GC
// sweeps files a crash left without a holder (OpenStore does at start).
// The cache tier writes its files without fsync (after a restart nothing
// holds them); a snapshot that names such a block makes it durable first.
// Publishing a block whose hash is already indexed under another block
// swaps the table over to the indexed one and frees the duplicate.
// Cache.Forget erases a deleted session's blocks (index, host and disk
// tiers) except those a table or another snapshot still holds.
//
// Writing: a Table writes only into blocks that it alone holds and that
// are not published. Table.PrepareWrite (called by Reserve when a Cache is
// attached) copies a shared partial block to a fresh one (copy-on-write)
// and withdraws a published block the table alone holds from the index,
// so forked sessions and the index never see a change.
//
// # Who calls what
//
// The engine reserves blocks for a step (Table.Reserve, Truncate on abort)
// and writes K/V into them. The runtime (sessions) owns Tables: it gets a
// session's first blocks from Cache.Match, publishes full blocks after
// steps (Cache.Publish), forks (Table.Fork) and releases (Table.Release),
// saves snapshots (Cache.Save → Store.Save) and restores them
// (Store.Load, then Cache.Restore when the session is next used: block
// bytes load lazily, at restore time, not at start-up).
//
// # Locking
//
// One mutex, the Pool's, guards the pool, the LRU list, the index and the
// host and disk tier bookkeeping; BlockIO calls and the disk tier's file
// reads and (unsynced) writes on eviction and reload happen under it (a
// tier write never waits for another writer of the same block: the block
// then gets no disk copy). Blobs has its own leaf lock, not held during
// file I/O. The Store has a mutex serialising Save, Delete and GC; Save
// copies table blocks out through the pool lock one at a time and does
// all its file I/O outside it: it writes a batch of new block files,
// fsyncs them in parallel and renames them into place, syncs each
// directory it wrote to once, then writes the snapshot (optionally paced,
// StoreOptions.WriteBytesPerSec). The order is Store → Pool → Blobs and
// nothing locks in the other direction. A Table is owned by one
// goroutine at a time and must not change while a step or a Save uses it.
package kvcache
