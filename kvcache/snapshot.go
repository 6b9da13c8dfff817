package kvcache

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Snapshot is a session's persisted state: the tokens its KV cache holds,
// its block table as block hashes (the bytes live in the content-addressed
// block store), the fingerprint of the model that made them and the
// runtime's opaque metadata (sampler state, messages, ...).
type Snapshot struct {
	Fingerprint Fingerprint
	// Tokens are the tokens whose keys and values the blocks hold.
	Tokens []int32
	// Blocks are BlockHashes(Fingerprint, salt, Tokens): one per full
	// block, then the partial last block's.
	Blocks []Hash
	// Meta is the runtime's, stored as is.
	Meta []byte
}

// SnapshotVersion is the version of the snapshot encoding that
// EncodeSnapshot writes and DecodeSnapshot reads.
const SnapshotVersion = 1

// The snapshot encoding is the magic, a little-endian uint16 version, then
// records, each a kind byte, a uint32 payload length, the payload and a
// CRC32C of the kind, length and payload. The records come in this order:
//
//	header  model hash [32] | config hash [32] | block tokens u32 | kv type len u8, bytes | session id len u16, bytes
//	tokens  count u32 | int32 each
//	blocks  count u32 | hash [32] each
//	meta    the bytes
//	end     record count before it, u32 (4); a file cut short lacks it
const snapMagic = "MNEMOSNP"

const (
	recHeader = 1 + iota
	recTokens
	recBlocks
	recMeta
	recEnd
)

var recNames = [...]string{"", "header", "tokens", "blocks", "meta", "end"}

// maxIDLen is the longest session id.
const maxIDLen = 128

// EncodeSnapshot returns the encoding of s for session id.
func EncodeSnapshot(id string, s *Snapshot) []byte {
	out := make([]byte, 0, 128+len(id)+4*len(s.Tokens)+32*len(s.Blocks)+len(s.Meta)+5*9)
	out = append(out, snapMagic...)
	out = binary.LittleEndian.AppendUint16(out, SnapshotVersion)
	rec := func(kind byte, payload []byte) {
		start := len(out)
		out = append(out, kind)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(payload)))
		out = append(out, payload...)
		out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out[start:], castagnoli))
	}
	f := s.Fingerprint
	h := append([]byte(nil), f.Model[:]...)
	h = append(h, f.Config[:]...)
	h = binary.LittleEndian.AppendUint32(h, uint32(f.BlockTokens))
	h = append(h, byte(len(f.KVType)))
	h = append(h, f.KVType...)
	h = binary.LittleEndian.AppendUint16(h, uint16(len(id)))
	h = append(h, id...)
	rec(recHeader, h)
	t := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+4*len(s.Tokens)), uint32(len(s.Tokens)))
	for _, v := range s.Tokens {
		t = binary.LittleEndian.AppendUint32(t, uint32(v))
	}
	rec(recTokens, t)
	b := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+32*len(s.Blocks)), uint32(len(s.Blocks)))
	for _, v := range s.Blocks {
		b = append(b, v[:]...)
	}
	rec(recBlocks, b)
	rec(recMeta, s.Meta)
	rec(recEnd, binary.LittleEndian.AppendUint32(nil, 4))
	return out
}

// DecodeSnapshot parses an encoded snapshot and returns its session id.
// Errors wrap ErrCorrupt and name the record that failed.
func DecodeSnapshot(data []byte) (string, *Snapshot, error) {
	if len(data) < len(snapMagic)+2 || string(data[:len(snapMagic)]) != snapMagic {
		return "", nil, fmt.Errorf("%w: not a snapshot (bad magic)", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint16(data[len(snapMagic):]); v != SnapshotVersion {
		return "", nil, fmt.Errorf("%w: snapshot version %d, want %d", ErrCorrupt, v, SnapshotVersion)
	}
	rest := data[len(snapMagic)+2:]
	var id string
	s := &Snapshot{}
	for kind := byte(recHeader); kind <= recEnd; kind++ {
		name := recNames[kind]
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: record %d (%s): %s", ErrCorrupt, kind, name, fmt.Sprintf(format, args...))
		}
		if len(rest) < 9 {
			return "", nil, bad("missing (file cut short)")
		}
		n := binary.LittleEndian.Uint32(rest[1:])
		if uint64(n) > uint64(len(rest)-9) {
			return "", nil, bad("length %d runs past the end of the file", n)
		}
		rec := rest[:5+n]
		if got, want := crc32.Checksum(rec, castagnoli), binary.LittleEndian.Uint32(rest[5+n:]); got != want {
			return "", nil, bad("checksum mismatch")
		}
		if rest[0] != kind {
			return "", nil, bad("found record kind %d", rest[0])
		}
		p := rec[5:]
		rest = rest[9+n:]
		switch kind {
		case recHeader:
			if len(p) < 32+32+4+1 {
				return "", nil, bad("too short")
			}
			f := &s.Fingerprint
			copy(f.Model[:], p)
			copy(f.Config[:], p[32:])
			bt := binary.LittleEndian.Uint32(p[64:])
			if bt < 1 || bt > 1<<20 {
				return "", nil, bad("%d tokens per block", bt)
			}
			f.BlockTokens = int(bt)
			kl := int(p[68])
			p = p[69:]
			if len(p) < kl+2 {
				return "", nil, bad("too short")
			}
			f.KVType = string(p[:kl])
			il := int(binary.LittleEndian.Uint16(p[kl:]))
			if len(p) != kl+2+il || il == 0 || il > maxIDLen {
				return "", nil, bad("bad session id length %d", il)
			}
			id = string(p[kl+2:])
		case recTokens, recBlocks:
			size := uint64(4)
			if kind == recBlocks {
				size = 32
			}
			if len(p) < 4 {
				return "", nil, bad("too short")
			}
			c := binary.LittleEndian.Uint32(p)
			if uint64(len(p)-4) != uint64(c)*size {
				return "", nil, bad("count %d does not fit %d bytes", c, len(p)-4)
			}
			if kind == recTokens {
				s.Tokens = make([]int32, c)
				for i := range s.Tokens {
					s.Tokens[i] = int32(binary.LittleEndian.Uint32(p[4+4*i:]))
				}
			} else {
				s.Blocks = make([]Hash, c)
				for i := range s.Blocks {
					copy(s.Blocks[i][:], p[4+32*i:])
				}
			}
		case recMeta:
			s.Meta = bytes.Clone(p)
		case recEnd:
			if len(p) != 4 || binary.LittleEndian.Uint32(p) != 4 {
				return "", nil, bad("bad record count")
			}
		}
	}
	if len(rest) != 0 {
		return "", nil, fmt.Errorf("%w: %d bytes after the end record", ErrCorrupt, len(rest))
	}
	bt := s.Fingerprint.BlockTokens
	if want := (len(s.Tokens) + bt - 1) / bt; len(s.Blocks) != want {
		return "", nil, fmt.Errorf("%w: record %d (blocks): %d blocks for %d tokens of %d per block", ErrCorrupt, recBlocks, len(s.Blocks), len(s.Tokens), bt)
	}
	return id, s, nil
}
