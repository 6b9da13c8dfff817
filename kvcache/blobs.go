package kvcache

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
)

// ErrCorrupt is wrapped by errors for stored data that fails its checks
// (checksum, magic, lengths, hash).
var ErrCorrupt = errors.New("kvcache: corrupt data")

// ErrNotFound is wrapped by errors for a missing snapshot or block.
var ErrNotFound = errors.New("kvcache: not found")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Block files: magic, the block hash, the payload length, the payload and
// a CRC32C of everything before it.
const (
	blobMagic  = "MNKVBLK1"
	blobHeader = len(blobMagic) + 32 + 8
	blobExt    = ".blk"
)

// Blobs is the content-addressed disk store of block bytes: one file per
// block, named by its Hash, under dir/xx/ (xx: the hash's first byte in
// hex). Equal blocks are stored once. Every file is reference-counted in
// memory by its holders — snapshots (the Store) and the cache's disk tier —
// and removed when the count drops to zero; Sweep removes files nobody
// holds (those a previous process left). Blobs is safe for concurrent use;
// its lock is a leaf (it calls nothing that locks).
type Blobs struct {
	fs  FS
	dir string

	mu      sync.Mutex
	known   map[Hash]*blob
	pending map[Hash]chan struct{} // files being written, closed when done
	bytes   int64
}

type blob struct {
	refs    int
	size    int64
	durable bool // fsynced (files found at open count as durable)
}

// OpenBlobs opens (creating) the block store in dir, indexing the files
// present, all with no holder, and removing leftover temporary files.
func OpenBlobs(dir string, fsys FS) (*Blobs, error) {
	if fsys == nil {
		fsys = OSFS{}
	}
	if err := fsys.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("open block store: %w", err)
	}
	b := &Blobs{fs: fsys, dir: dir, known: map[Hash]*blob{}, pending: map[Hash]chan struct{}{}}
	subs, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open block store: %w", err)
	}
	for _, sub := range subs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		sd := filepath.Join(dir, sub.Name())
		if err := removeTemps(fsys, sd); err != nil {
			return nil, fmt.Errorf("open block store: %w", err)
		}
		ents, err := fsys.ReadDir(sd)
		if err != nil {
			return nil, fmt.Errorf("open block store: %w", err)
		}
		for _, e := range ents {
			name, ok := strings.CutSuffix(e.Name(), blobExt)
			var h Hash
			if !ok || len(name) != 64 {
				continue
			}
			if _, err := hex.Decode(h[:], []byte(name)); err != nil {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			b.known[h] = &blob{size: info.Size(), durable: true}
			b.bytes += info.Size()
		}
	}
	return b, nil
}

func (b *Blobs) path(h Hash) (dir, name string) {
	s := h.String()
	return filepath.Join(b.dir, s[:2]), s + blobExt
}

// Has reports whether block h is stored.
func (b *Blobs) Has(h Hash) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.known[h] != nil
}

// Bytes returns the bytes of all stored block files.
func (b *Blobs) Bytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes
}

// Refs returns how many holders block h has (0 also when absent).
func (b *Blobs) Refs(h Hash) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.known[h]; e != nil {
		return e.refs
	}
	return 0
}

// Put stores data as block h, unless it is already stored, and adds a
// holder. The file is durable (fsynced, and its directory) when Put
// returns nil.
func (b *Blobs) Put(h Hash, data []byte) error {
	_, err := b.putMode(h, data, writeDurable)
	return err
}

// put is Put, durable or not: the cache tier's files need not survive a
// crash (nothing holds them after a restart), so they skip the fsyncs,
// and fail at once if another writer is writing the block.
func (b *Blobs) put(h Hash, data []byte, durable bool) error {
	mode := writeCache
	if durable {
		mode = writeDurable
	}
	_, err := b.putMode(h, data, mode)
	return err
}

// errBusyBlock: another writer is writing the block's file.
var errBusyBlock = errors.New("being written")

// writeMode says how durable a block file write is.
type writeMode int

const (
	writeCache   writeMode = iota // no fsync
	writeDurable                  // the file and its directory fsynced
	// writeFile: the file fsynced and renamed into place, its directory
	// not: the caller syncs the directory (once for all the files it
	// wrote there), then calls markDurable.
	writeFile
)

// putMode stores data as block h as mode says, unless it is stored
// already (durably enough), and adds a holder. With writeFile it returns
// the directory to sync when it wrote a file.
// The file is written without the lock held; other writers of the same
// block wait for it.
func (b *Blobs) putMode(h Hash, data []byte, mode writeMode) (string, error) {
	b.mu.Lock()
	for b.pending[h] != nil {
		if mode == writeCache {
			// The cache tier calls under the pool lock: never wait for
			// another writer's disk (the block simply gets no disk copy).
			b.mu.Unlock()
			return "", fmt.Errorf("store block %s: %w", h.short(), errBusyBlock)
		}
		ch := b.pending[h]
		b.mu.Unlock()
		<-ch
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	e := b.known[h]
	if e != nil && (e.durable || mode == writeCache) {
		e.refs++
		return "", nil
	}
	ch := make(chan struct{})
	b.pending[h] = ch
	b.mu.Unlock()
	err := b.write(h, data, mode, e == nil)
	b.mu.Lock()
	delete(b.pending, h)
	close(ch)
	e = b.known[h] // its holders may have come and gone meanwhile
	if err != nil {
		if e != nil && e.refs == 0 {
			b.removeLocked(h, e)
		}
		return "", err
	}
	if e == nil {
		size := int64(blobHeader + len(data) + 4)
		e = &blob{size: size}
		b.known[h] = e
		b.bytes += size
	}
	e.durable = e.durable || mode == writeDurable
	e.refs++
	if mode == writeFile {
		dir, _ := b.path(h)
		return dir, nil
	}
	return "", nil
}

// staged is a block file written but not yet fsynced or in place (see
// Blobs.stage); its hash is claimed (pending) until commit or abort.
type staged struct {
	h     Hash
	f     File
	size  int64
	fresh bool // no file was there
	done  chan struct{}
}

// stage claims block h and writes its file's temporary copy without
// syncing it; commit or abort must follow. It returns nil (having added a
// holder) when h is already stored durably.
func (b *Blobs) stage(h Hash, data []byte) (*staged, error) {
	b.mu.Lock()
	for b.pending[h] != nil {
		ch := b.pending[h]
		b.mu.Unlock()
		<-ch
		b.mu.Lock()
	}
	e := b.known[h]
	if e != nil && e.durable {
		e.refs++
		b.mu.Unlock()
		return nil, nil
	}
	st := &staged{h: h, size: int64(blobHeader + len(data) + 4), fresh: e == nil, done: make(chan struct{})}
	b.pending[h] = st.done
	b.mu.Unlock()
	dir, name := b.path(h)
	var err error
	if err = b.fs.MkdirAll(dir); err == nil {
		hdr := make([]byte, 0, blobHeader)
		hdr = append(hdr, blobMagic...)
		hdr = append(hdr, h[:]...)
		hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(data)))
		crc := crc32.Update(crc32.Checksum(hdr, castagnoli), castagnoli, data)
		st.f, err = writeTemp(b.fs, dir, name, hdr, data, binary.LittleEndian.AppendUint32(nil, crc))
	}
	if err != nil {
		b.unclaim(st, false)
		return nil, fmt.Errorf("store block %s: %w", h.short(), err)
	}
	return st, nil
}

// commit fsyncs a staged file, puts it in place and adds a holder. It
// returns the directory the caller must sync before markDurable.
func (b *Blobs) commit(st *staged) (string, error) {
	dir, name := b.path(st.h)
	if err := finishTemp(b.fs, st.f, dir, name, true); err != nil {
		b.unclaim(st, false)
		return "", fmt.Errorf("store block %s: %w", st.h.short(), err)
	}
	b.unclaim(st, true)
	return dir, nil
}

// abort drops a staged file.
func (b *Blobs) abort(st *staged) {
	abortTemp(b.fs, st.f)
	b.unclaim(st, false)
}

// unclaim ends a staged write: ok adds the file (and a holder), else a
// file nobody holds any more is removed.
func (b *Blobs) unclaim(st *staged, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pending, st.h)
	close(st.done)
	e := b.known[st.h] // its holders may have come and gone meanwhile
	if !ok {
		if e != nil && e.refs == 0 {
			b.removeLocked(st.h, e)
		}
		return
	}
	if e == nil {
		e = &blob{size: st.size}
		b.known[st.h] = e
		b.bytes += st.size
	}
	e.refs++
}

// markDurable records that blocks written with writeFile are durable:
// their directories are synced.
func (b *Blobs) markDurable(hs []Hash) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range hs {
		if e := b.known[h]; e != nil {
			e.durable = true
		}
	}
}

// write writes block h's file. fresh says no file was there: a failed
// directory sync then takes the new file back out.
func (b *Blobs) write(h Hash, data []byte, mode writeMode, fresh bool) error {
	dir, name := b.path(h)
	if err := b.fs.MkdirAll(dir); err != nil {
		return fmt.Errorf("store block %s: %w", h.short(), err)
	}
	hdr := make([]byte, 0, blobHeader)
	hdr = append(hdr, blobMagic...)
	hdr = append(hdr, h[:]...)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(data)))
	crc := crc32.Update(crc32.Checksum(hdr, castagnoli), castagnoli, data)
	err := writeAtomic(b.fs, dir, name, mode != writeCache, mode == writeDurable, hdr, data,
		binary.LittleEndian.AppendUint32(nil, crc))
	if err != nil {
		if fresh && errors.Is(err, errDirSync) {
			// In place but maybe not durable: take it back out.
			b.fs.Remove(filepath.Join(dir, name))
		}
		return fmt.Errorf("store block %s: %w", h.short(), err)
	}
	return nil
}

// retainDurable adds a holder to a stored block, first making its file
// durable (writeFile: the caller syncs the directory it returns) if the
// cache tier wrote it without fsync; it reports false if h is not stored.
func (b *Blobs) retainDurable(h Hash) (bool, string, error) {
	b.mu.Lock()
	e := b.known[h]
	if e == nil {
		b.mu.Unlock()
		return false, "", nil
	}
	if e.durable {
		e.refs++
		b.mu.Unlock()
		return true, "", nil
	}
	b.mu.Unlock()
	data, err := b.read(h)
	if errors.Is(err, ErrNotFound) {
		return false, "", nil // released meanwhile: the caller writes it
	}
	if err != nil {
		return false, "", err
	}
	dir, err := b.putMode(h, data, writeFile)
	return true, dir, err
}

// Retain adds a holder to a stored block; it reports false if h is not
// stored.
func (b *Blobs) Retain(h Hash) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.known[h]
	if e == nil {
		return false
	}
	e.refs++
	return true
}

// Release drops a holder of block h; the file is removed when none is
// left. It panics if h has no holder (a bookkeeping bug).
func (b *Blobs) Release(h Hash) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.known[h]
	if e == nil || e.refs <= 0 {
		panic("kvcache: Release of an unheld block file")
	}
	e.refs--
	if e.refs == 0 {
		b.removeLocked(h, e)
	}
}

func (b *Blobs) removeLocked(h Hash, e *blob) error {
	if b.pending[h] != nil {
		return nil // its writer re-holds or removes it when done
	}
	dir, name := b.path(h)
	if err := b.fs.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove block %s: %w", h.short(), err)
	}
	delete(b.known, h)
	b.bytes -= e.size
	return nil
}

// Sweep removes every block file without a holder and returns how many it
// removed.
func (b *Blobs) Sweep() (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for h, e := range b.known {
		if e.refs == 0 && b.pending[h] == nil {
			if err := b.removeLocked(h, e); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// Get reads block h into dst, whose length must be the block's size,
// checking the file's magic, hash, length and checksum.
func (b *Blobs) Get(h Hash, dst []byte) error {
	data, err := b.read(h)
	if err != nil {
		return err
	}
	if len(data) != len(dst) {
		return fmt.Errorf("block %s: %w: %d bytes, want %d", h.short(), ErrCorrupt, len(data), len(dst))
	}
	copy(dst, data)
	return nil
}

// read returns block h's checked payload.
func (b *Blobs) read(h Hash) ([]byte, error) {
	dir, name := b.path(h)
	data, err := b.fs.ReadFile(filepath.Join(dir, name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("block %s: %w", h.short(), ErrNotFound)
		}
		return nil, fmt.Errorf("block %s: %w", h.short(), err)
	}
	if len(data) < blobHeader+4 || string(data[:len(blobMagic)]) != blobMagic {
		return nil, fmt.Errorf("block %s: %w: bad header", h.short(), ErrCorrupt)
	}
	if Hash(data[len(blobMagic):len(blobMagic)+32]) != h {
		return nil, fmt.Errorf("block %s: %w: file holds another block", h.short(), ErrCorrupt)
	}
	n := binary.LittleEndian.Uint64(data[len(blobMagic)+32:])
	if n != uint64(len(data)-blobHeader-4) {
		return nil, fmt.Errorf("block %s: %w: length %d, file has %d payload bytes", h.short(), ErrCorrupt, n, len(data)-blobHeader-4)
	}
	if crc32.Checksum(data[:len(data)-4], castagnoli) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return nil, fmt.Errorf("block %s: %w: checksum mismatch", h.short(), ErrCorrupt)
	}
	return data[blobHeader : len(data)-4], nil
}
