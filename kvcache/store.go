package kvcache

import (
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrBadID is wrapped by the error for a session id that is not allowed.
var ErrBadID = errors.New("kvcache: bad session id")

// ValidID checks a session id: 1 to 128 bytes of ASCII letters, digits and
// '.', '_', ':', '-', starting with a letter or digit. Ids never become raw
// file names (the Store base32-encodes them); the check keeps them
// printable and bounded.
func ValidID(id string) error {
	if len(id) == 0 || len(id) > maxIDLen {
		return fmt.Errorf("%w: length %d, want 1 to %d", ErrBadID, len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != ':' && c != '-')) {
			return fmt.Errorf("%w: byte %d (%q) not allowed", ErrBadID, i, c)
		}
	}
	return nil
}

// BlockSource supplies the bytes of a snapshot's blocks to Store.Save for
// those not in the block store yet; i indexes Snapshot.Blocks.
type BlockSource interface {
	BlockBytes() int
	ReadBlock(i int, dst []byte) error
}

// StoreOptions configure a Store.
type StoreOptions struct {
	// FS is the file system to write through (default OSFS).
	FS FS
	// WriteBytesPerSec caps the rate at which Save writes new block
	// files (0: no cap). Snapshots written while the model runs compete
	// with it for the CPU (copying, checksums, the kernel's writeback):
	// a cap trades snapshot latency for decode speed.
	WriteBytesPerSec int64
	// Pacer, if set, spaces Save's block writes while the model runs
	// (see Pacer); it adapts to the machine where WriteBytesPerSec is
	// a fixed number. Both may be set.
	Pacer *Pacer
}

// Store keeps session snapshots in dir/snapshots, one file per session,
// and their blocks in the content-addressed block store dir/blocks
// (Blobs). Every write is atomic (temporary file, fsync, rename, directory
// fsync) and block files are durable before the snapshot that names them,
// so after a crash each session has its previous or its new snapshot.
// Store is safe for concurrent use.
type Store struct {
	dir   string
	snaps string
	fs    FS
	fp    Fingerprint
	blobs *Blobs
	rate  int64 // StoreOptions.WriteBytesPerSec
	sleep func(time.Duration)
	pacer *Pacer

	mu   sync.Mutex
	held map[string][]Hash // blocks each stored snapshot holds in blobs
}

// OpenStore opens (creating) the store in dir for the model fp. It reads
// every snapshot's block list (those of other fingerprints too, so that
// their blocks survive), removes leftover temporary files and block files
// no snapshot holds.
func OpenStore(dir string, fp Fingerprint, opt StoreOptions) (*Store, error) {
	fsys := opt.FS
	if fsys == nil {
		fsys = OSFS{}
	}
	if opt.WriteBytesPerSec < 0 {
		return nil, fmt.Errorf("open store: negative write rate %d", opt.WriteBytesPerSec)
	}
	s := &Store{dir: dir, snaps: filepath.Join(dir, "snapshots"), fs: fsys, fp: fp, rate: opt.WriteBytesPerSec,
		sleep: time.Sleep, pacer: opt.Pacer, held: map[string][]Hash{}}
	if err := fsys.MkdirAll(s.snaps); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := removeTemps(fsys, s.snaps); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	blobs, err := OpenBlobs(filepath.Join(dir, "blocks"), fsys)
	if err != nil {
		return nil, err
	}
	s.blobs = blobs
	ids, err := s.List()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		data, err := fsys.ReadFile(s.path(id))
		if err != nil {
			continue
		}
		_, snap, err := DecodeSnapshot(data)
		if err != nil {
			continue // Load reports it; Delete removes it
		}
		var held []Hash
		for _, h := range snap.Blocks {
			if blobs.Retain(h) {
				held = append(held, h)
			}
		}
		s.held[id] = held
	}
	if _, err := blobs.Sweep(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// Blobs returns the store's block store (for Config.Disk).
func (s *Store) Blobs() *Blobs { return s.blobs }

// Fingerprint returns the model fingerprint the store loads snapshots for.
func (s *Store) Fingerprint() Fingerprint { return s.fp }

const snapExt = ".snap"

// idEncoding turns ids into file names: lower-case base32 (safe on
// case-insensitive file systems; 128 bytes become 205 characters).
var idEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

func (s *Store) name(id string) string {
	return "s-" + strings.ToLower(idEncoding.EncodeToString([]byte(id))) + snapExt
}

func (s *Store) path(id string) string { return filepath.Join(s.snaps, s.name(id)) }
func errSession(id string) func(error) error {
	return func(err error) error { return fmt.Errorf("session %q: %w", id, err) }
}

// saveWriters is how many block files one Save fsyncs at once, and
// saveBatch how many it writes before fsyncing them.
const (
	saveWriters = 4
	saveBatch   = 64
)

// Save stores snap as session id's snapshot, replacing any previous one.
// Blocks already in the block store are shared; the others are read from
// src (nil: all must be stored already, else the error wraps ErrNotFound).
// snap's Fingerprint must be the store's. On error the previous snapshot
// is intact and the store holds no new block for it.
func (s *Store) Save(id string, snap *Snapshot, src BlockSource) error {
	wrap := errSession(id)
	if err := ValidID(id); err != nil {
		return wrap(err)
	}
	if err := s.fp.Check(snap.Fingerprint); err != nil {
		return wrap(err)
	}
	bt := s.fp.BlockTokens
	if want := (len(snap.Tokens) + bt - 1) / bt; len(snap.Blocks) != want {
		return wrap(fmt.Errorf("kvcache: %d blocks for %d tokens", len(snap.Blocks), len(snap.Tokens)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var held []Hash
	ok := false
	defer func() {
		if !ok {
			for _, h := range held {
				s.blobs.Release(h)
			}
		}
	}()
	// New blocks are written in batches: this goroutine alone reads each
	// (under the pool lock) and writes it to a temporary file, so that
	// the copying competes little with the model's threads; then up to
	// saveWriters goroutines fsync the batch's files and rename them into
	// place (mostly waiting for the disk). The directories the files went
	// to are synced once each after all batches, and only then is the
	// snapshot that names them written.
	dirs := map[string]bool{} // to sync
	var written []Hash        // to mark durable then
	var batch []*staged
	var buf []byte
	var mu sync.Mutex
	start, sent := time.Now(), int64(0)
	flush := func() error {
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		// While the model runs, one file at a time: parallel fsyncs
		// only help when the machine is otherwise idle.
		sem := make(chan struct{}, saveWriters)
		if s.pacer.Busy() {
			sem = make(chan struct{}, 1)
		}
		for i, st := range batch {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				begin := time.Now()
				dir, err := s.blobs.commit(st)
				s.pacer.Pace(time.Since(begin))
				if err != nil {
					errs[i] = err
					return
				}
				mu.Lock()
				held = append(held, st.h)
				dirs[dir] = true
				written = append(written, st.h)
				mu.Unlock()
			})
		}
		wg.Wait()
		batch = batch[:0]
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}
	err := func() error {
		for i, h := range snap.Blocks {
			stored, dir, err := s.blobs.retainDurable(h)
			if err != nil {
				return fmt.Errorf("block %d: %w", i, err)
			}
			if stored {
				held = append(held, h)
				if dir != "" {
					dirs[dir] = true
					written = append(written, h)
				}
				continue
			}
			if src == nil {
				return fmt.Errorf("block %d (%s…): %w", i, h.short(), ErrNotFound)
			}
			if buf == nil {
				buf = make([]byte, src.BlockBytes())
			}
			begin := time.Now()
			if err := src.ReadBlock(i, buf); err != nil {
				return fmt.Errorf("read block %d: %w", i, err)
			}
			st, err := s.blobs.stage(h, buf)
			if err != nil {
				return err
			}
			s.pacer.Pace(time.Since(begin))
			if sent += int64(len(buf)); s.rate > 0 {
				s.sleep(time.Until(start.Add(time.Duration(float64(sent) / float64(s.rate) * float64(time.Second)))))
			}
			if st == nil { // stored meanwhile
				held = append(held, h)
				continue
			}
			batch = append(batch, st)
			if len(batch) == saveBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	}()
	tail := time.Now() // the directory syncs and the snapshot file
	defer func() { s.pacer.Pace(time.Since(tail)) }()
	if err == nil {
		errs := make(chan error, len(dirs))
		var wg sync.WaitGroup
		sem := make(chan struct{}, saveWriters)
		for dir := range dirs {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := s.fs.SyncDir(dir); err != nil {
					errs <- fmt.Errorf("sync block directory: %w", err)
				}
			})
		}
		wg.Wait()
		close(errs)
		err = <-errs
	}
	if err != nil {
		for _, st := range batch {
			s.blobs.abort(st)
		}
		return wrap(err)
	}
	s.blobs.markDurable(written)
	err = writeAtomic(s.fs, s.snaps, s.name(id), true, true, EncodeSnapshot(id, snap))
	if err != nil && !errors.Is(err, errDirSync) {
		return wrap(err)
	}
	// The new snapshot is in place (even if the directory sync failed).
	ok = true
	for _, h := range s.held[id] {
		s.blobs.Release(h)
	}
	s.held[id] = held
	if err != nil {
		return wrap(err)
	}
	return nil
}

// Load reads session id's snapshot: tokens, block hashes and metadata (the
// block bytes stay on disk until Cache.Restore). Errors name the session
// and wrap ErrNotFound, ErrCorrupt (naming the damaged record) or
// ErrFingerprint (naming what differs).
func (s *Store) Load(id string) (*Snapshot, error) {
	wrap := errSession(id)
	if err := ValidID(id); err != nil {
		return nil, wrap(err)
	}
	data, err := s.fs.ReadFile(s.path(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, wrap(ErrNotFound)
		}
		return nil, wrap(err)
	}
	got, snap, err := DecodeSnapshot(data)
	if err != nil {
		return nil, wrap(err)
	}
	if got != id {
		return nil, wrap(fmt.Errorf("%w: file holds session %q", ErrCorrupt, got))
	}
	if err := s.fp.Check(snap.Fingerprint); err != nil {
		return nil, wrap(err)
	}
	return snap, nil
}

// Check loads session id's snapshot and verifies every block file it
// names, returning the first problem (naming the session and the block).
func (s *Store) Check(id string) error {
	snap, err := s.Load(id)
	if err != nil {
		return err
	}
	for i, h := range snap.Blocks {
		if _, err := s.blobs.read(h); err != nil {
			return fmt.Errorf("session %q: block %d: %w", id, i, err)
		}
	}
	return nil
}

// Delete removes session id's snapshot (also a corrupt one) and releases
// its blocks. A missing snapshot is an error wrapping ErrNotFound.
func (s *Store) Delete(id string) error {
	wrap := errSession(id)
	if err := ValidID(id); err != nil {
		return wrap(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fs.Remove(s.path(id)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return wrap(ErrNotFound)
		}
		return wrap(err)
	}
	for _, h := range s.held[id] {
		s.blobs.Release(h)
	}
	delete(s.held, id)
	if err := s.fs.SyncDir(s.snaps); err != nil {
		return wrap(fmt.Errorf("sync snapshot directory: %w", err))
	}
	return nil
}

// List returns the ids of the stored sessions, sorted.
func (s *Store) List() ([]string, error) {
	ents, err := s.fs.ReadDir(s.snaps)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	var ids []string
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), snapExt)
		if !ok || !strings.HasPrefix(name, "s-") {
			continue
		}
		raw, err := idEncoding.DecodeString(strings.ToUpper(name[2:]))
		if err != nil || ValidID(string(raw)) != nil || s.name(string(raw)) != e.Name() {
			continue
		}
		ids = append(ids, string(raw))
	}
	sort.Strings(ids)
	return ids, nil
}

// GC removes block files that neither a snapshot nor the cache's disk tier
// holds (normally none: files go when their last holder lets go; this
// catches what a crash left) and returns how many it removed.
func (s *Store) GC() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.blobs.Sweep()
	if err != nil {
		return n, fmt.Errorf("gc: %w", err)
	}
	return n, nil
}
