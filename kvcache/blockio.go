package kvcache

import (
	"fmt"
	"slices"
	"sync"

	"github.com/mnemo-ai/mnemo/backend"
)

// BlockIO moves one block's bytes — its keys and values in every layer —
// between backend memory and the host. The byte layout is the
// implementation's own but fixed for a Fingerprint (it is what the host and
// disk tiers store). The Cache calls it with the pool lock held, never on a
// block that a forward step writes at the same time.
type BlockIO interface {
	// BlockBytes returns the size of one block's bytes.
	BlockBytes() int
	// ReadBlock copies block id's bytes into dst (len BlockBytes).
	ReadBlock(id BlockID, dst []byte) error
	// WriteBlock replaces block id's bytes with src (len BlockBytes).
	WriteBlock(id BlockID, src []byte) error
	// CopyBlock copies block src's bytes to block dst.
	CopyBlock(dst, src BlockID) error
}

// BufferIO is the BlockIO of a paged KV cache held in backend buffers: one
// key and one value buffer per layer, each [Blocks, BlockTokens, Width]
// (engine.KV's K and V). A block's bytes are, layer by layer, its K rows
// then its V rows in the buffers' host encoding.
type BufferIO struct {
	bufs   []backend.RangeBuffer // K0, V0, K1, V1, ...
	per    int                   // bytes of one block in one buffer
	blocks int
	mu     sync.Mutex // guards tmp
	tmp    []byte
}

// NewBufferIO returns the BlockIO over k and v (one buffer per layer each).
// Every buffer must have the same dtype and shape [blocks, tokens, width]
// and implement backend.RangeBuffer.
func NewBufferIO(k, v []backend.Buffer) (*BufferIO, error) {
	if len(k) == 0 || len(k) != len(v) {
		return nil, fmt.Errorf("kvcache: %d key and %d value buffers", len(k), len(v))
	}
	shape, dt := k[0].Shape(), k[0].DType()
	if len(shape) != 3 {
		return nil, fmt.Errorf("kvcache: KV buffer shape %s, want [blocks, tokens, width]", shape)
	}
	per, err := backend.HostBytes(dt, backend.Shape{1, shape[1], shape[2]})
	if err != nil {
		return nil, fmt.Errorf("kvcache: KV buffer: %w", err)
	}
	io := &BufferIO{per: per, blocks: shape[0]}
	for l := range k {
		for _, b := range []backend.Buffer{k[l], v[l]} {
			if b.DType() != dt || !slices.Equal(b.Shape(), shape) {
				return nil, fmt.Errorf("kvcache: layer %d KV buffer is %s%s, want %s%s", l, b.DType(), b.Shape(), dt, shape)
			}
			rb, ok := b.(backend.RangeBuffer)
			if !ok {
				return nil, fmt.Errorf("kvcache: layer %d KV buffer: %w: no range reads and writes", l, backend.ErrUnsupported)
			}
			io.bufs = append(io.bufs, rb)
		}
	}
	return io, nil
}

// BlockBytes returns the bytes of one block across all layers.
func (io *BufferIO) BlockBytes() int { return io.per * len(io.bufs) }

func (io *BufferIO) check(id BlockID, n int) error {
	if id < 0 || int(id) >= io.blocks {
		return fmt.Errorf("kvcache: block %d outside the cache's %d", id, io.blocks)
	}
	if n != io.BlockBytes() {
		return fmt.Errorf("kvcache: %d bytes for a block of %d", n, io.BlockBytes())
	}
	return nil
}

// ReadBlock copies block id's bytes from every buffer into dst.
func (io *BufferIO) ReadBlock(id BlockID, dst []byte) error {
	if err := io.check(id, len(dst)); err != nil {
		return err
	}
	for i, b := range io.bufs {
		if err := b.ReadAt(dst[i*io.per:(i+1)*io.per], int(id)*io.per); err != nil {
			return fmt.Errorf("read block %d from KV buffer %d: %w", id, i, err)
		}
	}
	return nil
}

// WriteBlock writes src into block id of every buffer.
func (io *BufferIO) WriteBlock(id BlockID, src []byte) error {
	if err := io.check(id, len(src)); err != nil {
		return err
	}
	for i, b := range io.bufs {
		if err := b.WriteAt(src[i*io.per:(i+1)*io.per], int(id)*io.per); err != nil {
			return fmt.Errorf("write block %d to KV buffer %d: %w", id, i, err)
		}
	}
	return nil
}

// CopyBlock copies block src to block dst in every buffer.
func (io *BufferIO) CopyBlock(dst, src BlockID) error {
	if err := io.check(dst, io.BlockBytes()); err != nil {
		return err
	}
	if err := io.check(src, io.BlockBytes()); err != nil {
		return err
	}
	io.mu.Lock()
	defer io.mu.Unlock()
	if io.tmp == nil {
		io.tmp = make([]byte, io.per)
	}
	for i, b := range io.bufs {
		if err := b.ReadAt(io.tmp, int(src)*io.per); err != nil {
			return fmt.Errorf("copy block %d to %d, KV buffer %d: %w", src, dst, i, err)
		}
		if err := b.WriteAt(io.tmp, int(dst)*io.per); err != nil {
			return fmt.Errorf("copy block %d to %d, KV buffer %d: %w", src, dst, i, err)
		}
	}
	return nil
}

// MemIO is a BlockIO over plain host memory, for tests and for callers
// without a backend. It does no locking of its own, so the race detector
// reports a block read and written at once.
type MemIO struct {
	blocks [][]byte
}

// NewMemIO returns a MemIO of n zeroed blocks of blockBytes each.
func NewMemIO(n, blockBytes int) *MemIO {
	m := &MemIO{blocks: make([][]byte, n)}
	for i := range m.blocks {
		m.blocks[i] = make([]byte, blockBytes)
	}
	return m
}

// Block returns block id's memory (not a copy).
func (m *MemIO) Block(id BlockID) []byte { return m.blocks[id] }

// BlockBytes returns the size of one block.
func (m *MemIO) BlockBytes() int { return len(m.blocks[0]) }

// ReadBlock copies block id into dst.
func (m *MemIO) ReadBlock(id BlockID, dst []byte) error {
	if int(id) >= len(m.blocks) || len(dst) != len(m.blocks[id]) {
		return fmt.Errorf("kvcache: bad read of block %d (%d bytes)", id, len(dst))
	}
	copy(dst, m.blocks[id])
	return nil
}

// WriteBlock copies src into block id.
func (m *MemIO) WriteBlock(id BlockID, src []byte) error {
	if int(id) >= len(m.blocks) || len(src) != len(m.blocks[id]) {
		return fmt.Errorf("kvcache: bad write of block %d (%d bytes)", id, len(src))
	}
	copy(m.blocks[id], src)
	return nil
}

// CopyBlock copies block src to block dst.
func (m *MemIO) CopyBlock(dst, src BlockID) error {
	copy(m.blocks[dst], m.blocks[src])
	return nil
}
