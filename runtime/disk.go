package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"time"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// DiskOptions configure a DiskStore.
type DiskOptions struct {
	// Fingerprint identifies the model (file, config and tokenizer, KV
	// type, tokens per block); snapshots made under another are refused.
	Fingerprint kvcache.Fingerprint
	// KV is the model's cache. The DiskStore attaches a kvcache.Cache to
	// its pool (before any block is allocated), so sessions share prefixes
	// and save and restore their blocks. Nil opens the store for
	// inspection only (Stat, Peek, List, Delete, Export, Import): Save and
	// Load fail.
	KV *engine.KV
	// Secret derives each tenant's salt (kvcache.TenantSalt); pass the
	// same Secret in Options so that the runtime's prefix sharing and the
	// snapshots agree. Keep it across restarts: snapshots are restored
	// only under the salt they were saved with.
	Secret []byte
	// HostBytes and DiskBytes are the cache's host and disk tier budgets
	// for evicted prefix blocks (0: the tier is off; snapshots are kept
	// either way).
	HostBytes, DiskBytes int64
	// BlockBytes is the bytes of one block (all layers' K and V) when KV
	// is nil, for Stat; with KV it is computed.
	BlockBytes int
	// WriteBytesPerSec caps the rate of snapshot block writes
	// (kvcache.StoreOptions.WriteBytesPerSec; 0: no cap).
	WriteBytesPerSec int64
	// BackgroundShare is the share of wall time snapshot writes may take
	// while the runtime is running steps (kvcache.Pacer; 0:
	// kvcache.DefaultBackgroundShare, 1: no pacing). When nothing runs,
	// they go at full speed.
	BackgroundShare float64
}

// DiskStore is a Store that persists sessions as kvcache snapshots: the
// runtime's state (messages, sampler state, metadata, the tokens past the
// cached ones) is the snapshot's metadata and the KV blocks go to the
// content-addressed block store, shared between snapshots. It is a
// LazyStore: a session's blocks are read by its first operation after
// Open, never at start-up. It also owns the
// model's prefix Cache (pass Cache() in Options.Cache).
type DiskStore struct {
	store  *kvcache.Store
	pacer  *kvcache.Pacer
	cache  *kvcache.Cache
	fp     kvcache.Fingerprint
	secret []byte
	bb     int
}

// OpenDiskStore opens (creating) the store in dir, a directory for this
// model alone.
func OpenDiskStore(dir string, opt DiskOptions) (*DiskStore, error) {
	share := opt.BackgroundShare
	if share == 0 {
		share = kvcache.DefaultBackgroundShare
	}
	pacer, err := kvcache.NewPacer(share)
	if err != nil {
		return nil, fmt.Errorf("open session store: %w", err)
	}
	store, err := kvcache.OpenStore(dir, opt.Fingerprint, kvcache.StoreOptions{WriteBytesPerSec: opt.WriteBytesPerSec,
		Pacer: pacer})
	if err != nil {
		return nil, fmt.Errorf("open session store: %w", err)
	}
	d := &DiskStore{store: store, pacer: pacer, fp: opt.Fingerprint, secret: slices.Clone(opt.Secret), bb: opt.BlockBytes}
	if opt.KV == nil {
		return d, nil
	}
	io, err := kvcache.NewBufferIO(opt.KV.K, opt.KV.V)
	if err != nil {
		return nil, fmt.Errorf("open session store: %w", err)
	}
	if opt.KV.BlockTokens != opt.Fingerprint.BlockTokens {
		return nil, fmt.Errorf("open session store: fingerprint of %d tokens per block for a cache of %d",
			opt.Fingerprint.BlockTokens, opt.KV.BlockTokens)
	}
	d.bb = io.BlockBytes()
	cfg := kvcache.Config{Fingerprint: opt.Fingerprint, IO: io, HostBytes: opt.HostBytes, Disk: store.Blobs(),
		DiskBytes: opt.DiskBytes}
	if d.cache, err = kvcache.NewCache(opt.KV.Pool, cfg); err != nil {
		return nil, fmt.Errorf("open session store: %w", err)
	}
	return d, nil
}

// Pacer returns the pacer of the store's snapshot writes; a Runtime using
// the store marks it busy while it runs steps.
func (d *DiskStore) Pacer() *kvcache.Pacer { return d.pacer }

// Cache returns the model's prefix cache (nil without a model).
func (d *DiskStore) Cache() *kvcache.Cache { return d.cache }

// Fingerprint returns the model fingerprint.
func (d *DiskStore) Fingerprint() kvcache.Fingerprint { return d.fp }

// FingerprintID returns the fingerprint as the string sessions record
// (Options.Fingerprint).
func (d *DiskStore) FingerprintID() string { return d.fp.Sum().String() }

// Salt returns a tenant's salt.
func (d *DiskStore) Salt(tenant string) kvcache.Salt { return kvcache.TenantSalt(d.secret, tenant) }

// BlockBytes returns the bytes of one block (0 if unknown).
func (d *DiskStore) BlockBytes() int { return d.bb }

var errNoModel = errors.New("runtime: session store opened without a model")

// Save implements Store: it writes st's snapshot (the blocks it lacks
// only) and replaces the previous one atomically.
func (d *DiskStore) Save(_ context.Context, st *State) error {
	if d.cache == nil {
		return errNoModel
	}
	t := st.Table
	if t == nil {
		t = &kvcache.Table{}
	}
	if t.Len > len(st.Tokens) {
		return fmt.Errorf("save %q: table of %d tokens for %d tokens of history", st.ID, t.Len, len(st.Tokens))
	}
	meta, err := encodeMeta(st, t.Len)
	if err != nil {
		return fmt.Errorf("save %q: %w", st.ID, err)
	}
	return mapErr(d.cache.Save(d.store, st.ID, d.Salt(st.Meta.Tenant), st.Tokens, t, meta))
}

// Load implements Store: it reads the snapshot and restores its table
// (blocks cached in memory are shared, the others read from disk).
func (d *DiskStore) Load(_ context.Context, id string) (*State, error) {
	if d.cache == nil {
		return nil, errNoModel
	}
	snap, st, err := d.peek(id)
	if err != nil {
		return nil, err
	}
	t, err := d.cache.Restore(d.Salt(st.Meta.Tenant), snap)
	if err != nil {
		return nil, fmt.Errorf("load %q: %w", id, mapErr(err))
	}
	st.Table = t
	return st, nil
}

// LoadState implements LazyStore: the snapshot's state, without reading
// a block.
func (d *DiskStore) LoadState(_ context.Context, id string) (*State, int, error) {
	if d.cache == nil {
		return nil, 0, errNoModel
	}
	snap, st, err := d.peek(id)
	if err != nil {
		return nil, 0, err
	}
	return st, len(snap.Tokens), nil
}

// LoadTable implements LazyStore: it reads the snapshot of st.ID again and
// restores its blocks (those cached in memory are shared, the others read
// from disk). The snapshot must still be the one st came from.
func (d *DiskStore) LoadTable(_ context.Context, st *State) (*kvcache.Table, error) {
	if d.cache == nil {
		return nil, errNoModel
	}
	snap, _, err := d.peek(st.ID)
	if err != nil {
		return nil, err
	}
	if len(snap.Tokens) > len(st.Tokens) || !slices.Equal(snap.Tokens, st.Tokens[:len(snap.Tokens)]) {
		return nil, fmt.Errorf("load %q: the stored snapshot changed since the session was opened", st.ID)
	}
	t, err := d.cache.Restore(d.Salt(st.Meta.Tenant), snap)
	if err != nil {
		return nil, fmt.Errorf("load %q: %w", st.ID, mapErr(err))
	}
	return t, nil
}

// Delete implements Store: it removes the snapshot and releases its
// blocks (a block file goes with its last holder), then erases the
// session's blocks from the prefix cache and its tiers, except those
// another holder — a live table or another snapshot — keeps
// (kvcache.Cache.Forget). An absent id is not an error.
func (d *DiskStore) Delete(_ context.Context, id string) error {
	var snap *kvcache.Snapshot
	var st *State
	if d.cache != nil {
		// A snapshot that cannot be read is deleted all the same; only
		// the blocks it named stay in the cache.
		snap, st, _ = d.peek(id)
	}
	if err := d.discard(context.Background(), id); err != nil {
		return err
	}
	if snap != nil {
		d.cache.Forget(d.Salt(st.Meta.Tenant), snap.Tokens)
	}
	return nil
}

// discard removes the snapshot and releases its blocks, leaving the
// prefix cache alone.
func (d *DiskStore) discard(_ context.Context, id string) error {
	if err := d.store.Delete(id); err != nil && !errors.Is(err, kvcache.ErrNotFound) {
		return mapErr(err)
	}
	return nil
}

// List returns the stored session ids, sorted.
func (d *DiskStore) List() ([]string, error) { return d.store.List() }

// Peek returns a stored session's state without its table (nothing is
// loaded into the cache).
func (d *DiskStore) Peek(id string) (*State, error) {
	_, st, err := d.peek(id)
	return st, err
}

func (d *DiskStore) peek(id string) (*kvcache.Snapshot, *State, error) {
	if err := ValidateID(id); err != nil {
		return nil, nil, err
	}
	snap, err := d.store.Load(id)
	if err != nil {
		return nil, nil, mapErr(err)
	}
	st, err := decodeMeta(snap.Meta, snap.Tokens)
	if err != nil {
		return nil, nil, fmt.Errorf("load %q: %w", id, err)
	}
	st.ID = id
	return snap, st, nil
}

// SessionInfo describes a stored session.
type SessionInfo struct {
	ID   string
	Meta Meta
	// Tokens is the history's length; Cached how many of them the stored
	// blocks hold.
	Tokens, Cached int
	// Messages is the number of chat messages.
	Messages int
	// Bytes is the KV bytes of the session's blocks (shared blocks count
	// in full for each session).
	Bytes int64
}

// Stat describes stored session id.
func (d *DiskStore) Stat(id string) (SessionInfo, error) {
	snap, st, err := d.peek(id)
	if err != nil {
		return SessionInfo{}, err
	}
	return SessionInfo{ID: id, Meta: st.Meta, Tokens: len(st.Tokens), Cached: len(snap.Tokens),
		Messages: len(st.Messages), Bytes: int64(len(snap.Blocks)) * int64(d.bb)}, nil
}

// Check verifies a stored session's snapshot and every block file it
// names.
func (d *DiskStore) Check(id string) error { return mapErr(d.store.Check(id)) }

// mapErr adds the runtime's sentinels to kvcache errors.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kvcache.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, kvcache.ErrFingerprint):
		return fmt.Errorf("%w: %w", ErrFingerprint, err)
	case errors.Is(err, kvcache.ErrBadID):
		return fmt.Errorf("%w: %w", ErrInvalidID, err)
	}
	return err
}

// diskMessage is a chat.Message whose texts keep their exact bytes (JSON
// strings would replace invalid UTF-8, which a reply cut mid-character
// holds).
type diskMessage struct {
	Role       string          `json:"role"`
	Content    []byte          `json:"content,omitempty"`
	Name       []byte          `json:"name,omitempty"`
	ToolCalls  []chat.ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

// metaVersion is the version of the runtime's snapshot metadata.
const metaVersion = 1

// diskMeta is the runtime's part of a snapshot, stored as JSON.
type diskMeta struct {
	Version     int           `json:"version"`
	Tenant      string        `json:"tenant,omitempty"`
	Created     time.Time     `json:"created"`
	Updated     time.Time     `json:"updated"`
	Fingerprint string        `json:"fingerprint,omitempty"`
	Messages    []diskMessage `json:"messages,omitempty"`
	Chat        bool          `json:"chat,omitempty"`
	Sampler     []byte        `json:"sampler,omitempty"`
	// Tail are the history's tokens past those the snapshot's blocks
	// hold (the last generated token, or tokens not prefilled yet).
	Tail []int32 `json:"tail,omitempty"`
}

func encodeMeta(st *State, cached int) ([]byte, error) {
	m := diskMeta{Version: metaVersion, Tenant: st.Meta.Tenant, Created: st.Meta.Created, Updated: st.Meta.Updated,
		Fingerprint: st.Meta.Fingerprint, Chat: st.Chat, Sampler: st.Sampler, Tail: st.Tokens[cached:]}
	for _, msg := range st.Messages {
		m.Messages = append(m.Messages, diskMessage{Role: msg.Role, Content: []byte(msg.Content), Name: []byte(msg.Name),
			ToolCalls: msg.ToolCalls, ToolCallID: msg.ToolCallID})
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode session metadata: %w", err)
	}
	return b, nil
}

// errBadMeta is wrapped by errors decoding snapshot metadata.
var errBadMeta = errors.New("runtime: bad session metadata")

// decodeMeta rebuilds a State (without ID and table) from snapshot
// metadata and the snapshot's tokens.
func decodeMeta(b []byte, cached []int32) (*State, error) {
	var m diskMeta
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadMeta, err)
	}
	if m.Version != metaVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", errBadMeta, m.Version, metaVersion)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the metadata", errBadMeta)
	}
	for _, id := range m.Tail {
		if id < 0 {
			return nil, fmt.Errorf("%w: negative token id %d", errBadMeta, id)
		}
	}
	st := &State{
		Meta:   Meta{Tenant: m.Tenant, Created: m.Created, Updated: m.Updated, Fingerprint: m.Fingerprint},
		Tokens: slices.Concat(cached, m.Tail), Chat: m.Chat, Sampler: m.Sampler,
	}
	for _, msg := range m.Messages {
		st.Messages = append(st.Messages, chat.Message{Role: msg.Role, Content: string(msg.Content), Name: string(msg.Name),
			ToolCalls: msg.ToolCalls, ToolCallID: msg.ToolCallID})
	}
	return st, nil
}

// The export format is one file holding a snapshot and its blocks:
//
//	magic "MNEMOEXP" | version u16
//	snapshot length u32 | kvcache snapshot encoding (its own checksums)
//	block bytes u32 | block count u32
//	per block: bytes | CRC32C of them u32
//	CRC32C of everything before it u32
//
// Little-endian throughout.
const (
	exportMagic   = "MNEMOEXP"
	exportVersion = 1
)

// ErrBadExport is wrapped by the error for an export file that is damaged
// or not an export.
var ErrBadExport = errors.New("runtime: bad session export")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Export writes stored session id, snapshot and blocks, to w as one
// portable file.
func (d *DiskStore) Export(id string, w io.Writer) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	snap, err := d.store.Load(id)
	if err != nil {
		return mapErr(err)
	}
	if d.bb <= 0 && len(snap.Blocks) > 0 {
		return fmt.Errorf("export %q: block size unknown", id)
	}
	crc := crc32.New(castagnoli)
	mw := io.MultiWriter(w, crc)
	enc := kvcache.EncodeSnapshot(id, snap)
	head := append([]byte(exportMagic), 0, 0)
	binary.LittleEndian.PutUint16(head[len(exportMagic):], exportVersion)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(enc)))
	if _, err := mw.Write(head); err != nil {
		return fmt.Errorf("export %q: %w", id, err)
	}
	if _, err := mw.Write(enc); err != nil {
		return fmt.Errorf("export %q: %w", id, err)
	}
	bh := binary.LittleEndian.AppendUint32(nil, uint32(d.bb))
	bh = binary.LittleEndian.AppendUint32(bh, uint32(len(snap.Blocks)))
	if _, err := mw.Write(bh); err != nil {
		return fmt.Errorf("export %q: %w", id, err)
	}
	buf := make([]byte, d.bb+4)
	for i, h := range snap.Blocks {
		if err := d.store.Blobs().Get(h, buf[:d.bb]); err != nil {
			return fmt.Errorf("export %q: block %d: %w", id, i, err)
		}
		binary.LittleEndian.PutUint32(buf[d.bb:], crc32.Checksum(buf[:d.bb], castagnoli))
		if _, err := mw.Write(buf); err != nil {
			return fmt.Errorf("export %q: %w", id, err)
		}
	}
	if _, err := w.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32())); err != nil {
		return fmt.Errorf("export %q: %w", id, err)
	}
	return nil
}

// Exported is a decoded export file.
type Exported struct {
	ID       string
	Snapshot *kvcache.Snapshot
	// Blocks are the bytes of Snapshot.Blocks, in order.
	Blocks [][]byte
}

// DecodeExport parses and verifies an export file: structure, every
// checksum and the snapshot's own records. Errors wrap ErrBadExport.
func DecodeExport(data []byte) (*Exported, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadExport, fmt.Sprintf(format, args...))
	}
	hl := len(exportMagic) + 2 + 4
	if len(data) < hl+8+4 || string(data[:len(exportMagic)]) != exportMagic {
		return nil, bad("not a session export (bad magic or too short)")
	}
	if v := binary.LittleEndian.Uint16(data[len(exportMagic):]); v != exportVersion {
		return nil, bad("version %d, want %d", v, exportVersion)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, bad("file checksum mismatch (damaged or cut short)")
	}
	n := binary.LittleEndian.Uint32(data[len(exportMagic)+2:])
	rest := body[hl:]
	if uint64(n) > uint64(len(rest)) {
		return nil, bad("snapshot length %d runs past the end", n)
	}
	id, snap, err := kvcache.DecodeSnapshot(rest[:n])
	if err != nil {
		return nil, bad("snapshot: %v", err)
	}
	rest = rest[n:]
	if len(rest) < 8 {
		return nil, bad("block header missing")
	}
	bb, count := binary.LittleEndian.Uint32(rest), binary.LittleEndian.Uint32(rest[4:])
	rest = rest[8:]
	if int(count) != len(snap.Blocks) {
		return nil, bad("%d blocks for a snapshot of %d", count, len(snap.Blocks))
	}
	if uint64(len(rest)) != uint64(count)*(uint64(bb)+4) {
		return nil, bad("%d bytes of blocks, want %d blocks of %d", len(rest), count, bb)
	}
	e := &Exported{ID: id, Snapshot: snap}
	for i := range int(count) {
		blk := rest[:bb]
		if crc32.Checksum(blk, castagnoli) != binary.LittleEndian.Uint32(rest[bb:]) {
			return nil, bad("block %d checksum mismatch", i)
		}
		e.Blocks = append(e.Blocks, blk)
		rest = rest[bb+4:]
	}
	return e, nil
}

// Import installs an export file's session under id (the file's id when
// empty). It verifies the file's checksums and refuses a snapshot of
// another model (an error wrapping ErrFingerprint naming what differs), a
// block size other than this model's, and an id already stored (ErrExists).
// The blocks are rehashed under this store's salt for the session's
// tenant, so an export moves between machines with different secrets.
func (d *DiskStore) Import(data []byte, id string) (string, error) {
	e, err := DecodeExport(data)
	if err != nil {
		return "", err
	}
	if id == "" {
		id = e.ID
	}
	if err := ValidateID(id); err != nil {
		return "", err
	}
	snap := e.Snapshot
	if err := d.fp.Check(snap.Fingerprint); err != nil {
		return "", fmt.Errorf("import %q: %w", id, mapErr(err))
	}
	if len(e.Blocks) > 0 && d.bb > 0 && len(e.Blocks[0]) != d.bb {
		return "", fmt.Errorf("import %q: %w: blocks of %d bytes, this model's are %d", id, ErrBadExport, len(e.Blocks[0]), d.bb)
	}
	st, err := decodeMeta(snap.Meta, snap.Tokens)
	if err != nil {
		return "", fmt.Errorf("import %q: %w", id, err)
	}
	if _, err := d.store.Load(id); err == nil {
		return "", fmt.Errorf("import %q: %w", id, ErrExists)
	} else if !errors.Is(err, kvcache.ErrNotFound) {
		return "", fmt.Errorf("import %q: %w", id, mapErr(err))
	}
	snap.Blocks = kvcache.BlockHashes(d.fp, d.Salt(st.Meta.Tenant), snap.Tokens)
	if err := d.store.Save(id, snap, byteBlocks(e.Blocks)); err != nil {
		return "", fmt.Errorf("import: %w", mapErr(err))
	}
	return id, nil
}

// byteBlocks is a kvcache.BlockSource over blocks in memory.
type byteBlocks [][]byte

func (b byteBlocks) BlockBytes() int {
	if len(b) == 0 {
		return 0
	}
	return len(b[0])
}

func (b byteBlocks) ReadBlock(i int, dst []byte) error {
	copy(dst, b[i])
	return nil
}
