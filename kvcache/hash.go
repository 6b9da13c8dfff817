package kvcache

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Hash identifies a block's contents: the SHA-256 chain hash of the tokens
// it and all blocks before it hold, the model fingerprint and the tenant
// salt (see BlockHashes).
type Hash [32]byte

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// short is the first 12 hex digits, for error messages.
func (h Hash) short() string { return hex.EncodeToString(h[:6]) }

// Salt separates tenants: it enters every block hash, so equal prompts of
// two tenants never share a block, and a tenant cannot probe the cache for
// another's prompts. Derive it with TenantSalt from a secret the server
// keeps; the zero Salt is the single-tenant default.
type Salt [32]byte

// TenantSalt derives a tenant's salt: HMAC-SHA256(secret, tenant).
func TenantSalt(secret []byte, tenant string) Salt {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(tenant))
	var s Salt
	m.Sum(s[:0])
	return s
}

// Fingerprint identifies what a block's bytes depend on: the model file,
// its configuration (architecture hyperparameters, tokenizer), the KV
// element type and the tokens per block. It enters every block hash and
// every snapshot header; a snapshot is only restored under an equal
// Fingerprint. The fields are kept separately so that a mismatch can say
// which differs.
type Fingerprint struct {
	Model       Hash   // SHA-256 of the model file's identity
	Config      Hash   // SHA-256 of the model config and tokenizer
	KVType      string // KV element type ("f32", "bf16")
	BlockTokens int    // tokens per block
}

// ErrFingerprint is wrapped by the error for data made under another
// Fingerprint.
var ErrFingerprint = errors.New("kvcache: fingerprint mismatch")

// NewFingerprint returns the Fingerprint of a model: model identifies the
// weights (the file's digest, or its name, size and modification time —
// any bytes that change when the weights do), config the configuration
// and tokenizer (any stable encoding), kvType the KV element type and
// blockTokens the tokens per block. It panics if blockTokens < 1 or kvType
// is longer than 255 bytes.
func NewFingerprint(model, config []byte, kvType string, blockTokens int) Fingerprint {
	if blockTokens < 1 || blockTokens > 1<<20 || len(kvType) > 255 {
		panic("kvcache: bad fingerprint parameters")
	}
	return Fingerprint{Model: sha256.Sum256(model), Config: sha256.Sum256(config), KVType: kvType, BlockTokens: blockTokens}
}

// Sum returns the hash of all fields.
func (f Fingerprint) Sum() Hash {
	h := sha256.New()
	h.Write([]byte("mnemo-kv-fingerprint\x00"))
	h.Write(f.Model[:])
	h.Write(f.Config[:])
	h.Write([]byte{byte(len(f.KVType))})
	h.Write([]byte(f.KVType))
	h.Write(binary.LittleEndian.AppendUint32(nil, uint32(f.BlockTokens)))
	var s Hash
	h.Sum(s[:0])
	return s
}

// Check returns nil if got equals f, else an error wrapping ErrFingerprint
// that names the first differing input.
func (f Fingerprint) Check(got Fingerprint) error {
	switch {
	case got.Model != f.Model:
		return fmt.Errorf("%w: model differs (%s…, want %s…)", ErrFingerprint, got.Model.short(), f.Model.short())
	case got.Config != f.Config:
		return fmt.Errorf("%w: model config or tokenizer differs (%s…, want %s…)", ErrFingerprint, got.Config.short(), f.Config.short())
	case got.KVType != f.KVType:
		return fmt.Errorf("%w: KV type %q, want %q", ErrFingerprint, got.KVType, f.KVType)
	case got.BlockTokens != f.BlockTokens:
		return fmt.Errorf("%w: %d tokens per block, want %d", ErrFingerprint, got.BlockTokens, f.BlockTokens)
	}
	return nil
}

// hasher computes chain hashes for one fingerprint and salt.
type hasher struct {
	fp   Hash
	salt Salt
	buf  []byte
}

// next returns the hash of a block holding tokens after the block whose
// hash is parent (the zero Hash for the first block). partial marks a block
// that is not full: it hashes differently from any full block.
func (hs *hasher) next(parent Hash, tokens []int32, partial bool) Hash {
	b := append(hs.buf[:0], "mnemo-kv-block\x00"...)
	flag := byte(0)
	if partial {
		flag = 1
	}
	b = append(b, flag)
	b = append(b, parent[:]...)
	b = append(b, hs.fp[:]...)
	b = append(b, hs.salt[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(tokens)))
	for _, t := range tokens {
		b = binary.LittleEndian.AppendUint32(b, uint32(t))
	}
	hs.buf = b
	return sha256.Sum256(b)
}

// BlockHashes returns the chain hashes of the blocks holding tokens under
// fingerprint f and salt s: one per full block of f.BlockTokens tokens,
// then one for the partial last block if len(tokens) is not a multiple.
// Block i's hash covers tokens[:(i+1)·BlockTokens] (all of them for the
// partial block).
func BlockHashes(f Fingerprint, s Salt, tokens []int32) []Hash {
	hs := hasher{fp: f.Sum(), salt: s}
	return hs.chain(nil, tokens, f.BlockTokens, true)
}

// chain appends to have (hashes of the first len(have) full blocks) the
// hashes of the remaining full blocks of tokens, and of the partial block
// if withPartial.
func (hs *hasher) chain(have []Hash, tokens []int32, bt int, withPartial bool) []Hash {
	var parent Hash
	if len(have) > 0 {
		parent = have[len(have)-1]
	}
	out := have
	i := len(have)
	for ; (i+1)*bt <= len(tokens); i++ {
		parent = hs.next(parent, tokens[i*bt:(i+1)*bt], false)
		out = append(out, parent)
	}
	if withPartial && i*bt < len(tokens) {
		out = append(out, hs.next(parent, tokens[i*bt:], true))
	}
	return out
}
