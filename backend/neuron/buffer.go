package neuron

import (
	"fmt"
	"sync/atomic"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/neuron/nrt"
)

// Buffer is a device tensor holding a buffer's host encoding. It
// implements backend.RangeBuffer.
type Buffer struct {
	b       *Backend
	dt      backend.DType
	shape   backend.Shape
	bytes   int
	t       *nrt.Tensor
	written atomic.Bool // weights: Write has been called
	closed  atomic.Bool
}

var _ backend.RangeBuffer = (*Buffer)(nil)

// Alloc allocates a zeroed device tensor.
func (b *Backend) Alloc(dt backend.DType, shape backend.Shape) (backend.Buffer, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	if !dt.Valid() {
		return nil, fmt.Errorf("neuron alloc: %w: %s", backend.ErrDType, dt)
	}
	n, err := backend.HostBytes(dt, shape)
	if err != nil {
		return nil, fmt.Errorf("neuron alloc %s%s: %w", dt, shape, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("neuron alloc %s%s: %w: empty buffer", dt, shape, backend.ErrShape)
	}
	what := fmt.Sprintf("buffer %s%s", dt, shape)
	t, err := b.rt.Alloc(nrt.PlacementDevice, 0, n, what)
	if err != nil {
		return nil, fmt.Errorf("neuron alloc %s%s: %w", dt, shape, err)
	}
	// Device memory is not zeroed (the fake fills it with 0xA5).
	if err := t.Memset(0, n, 0); err != nil {
		err = t.Write(make([]byte, n), 0)
		if err != nil {
			_ = t.Free()
			return nil, fmt.Errorf("neuron alloc %s%s: zero: %w", dt, shape, err)
		}
	}
	buf := &Buffer{b: b, dt: dt, shape: append(backend.Shape(nil), shape...), bytes: n, t: t}
	b.leaks.Track(buf, what)
	return buf, nil
}

// DType returns the element type.
func (buf *Buffer) DType() backend.DType { return buf.dt }

// Shape returns the dimensions.
func (buf *Buffer) Shape() backend.Shape { return buf.shape }

func (buf *Buffer) usable() error {
	if buf.closed.Load() {
		return backend.ErrClosed
	}
	return buf.b.usable()
}

// Write replaces the contents with src (the host encoding).
func (buf *Buffer) Write(src []byte) error {
	if err := buf.usable(); err != nil {
		return err
	}
	if len(src) != buf.bytes {
		return fmt.Errorf("neuron write %s%s: %w: %d bytes, want %d", buf.dt, buf.shape, backend.ErrShape, len(src), buf.bytes)
	}
	if err := buf.t.Write(src, 0); err != nil {
		return fmt.Errorf("neuron write %s%s: %w", buf.dt, buf.shape, err)
	}
	buf.written.Store(true)
	return nil
}

// Read copies the contents into dst (the host encoding).
func (buf *Buffer) Read(dst []byte) error {
	if err := buf.usable(); err != nil {
		return err
	}
	if len(dst) != buf.bytes {
		return fmt.Errorf("neuron read %s%s: %w: %d bytes, want %d", buf.dt, buf.shape, backend.ErrShape, len(dst), buf.bytes)
	}
	if err := buf.t.Read(dst, 0); err != nil {
		return fmt.Errorf("neuron read %s%s: %w", buf.dt, buf.shape, err)
	}
	return nil
}

// ReadAt copies bytes [off, off+len(dst)) of the host encoding into dst.
func (buf *Buffer) ReadAt(dst []byte, off int) error {
	if err := buf.checkRange("read", len(dst), off); err != nil {
		return err
	}
	if err := buf.t.Read(dst, off); err != nil {
		return fmt.Errorf("neuron read %s%s at %d: %w", buf.dt, buf.shape, off, err)
	}
	return nil
}

// WriteAt replaces bytes [off, off+len(src)) of the host encoding.
func (buf *Buffer) WriteAt(src []byte, off int) error {
	if err := buf.checkRange("write", len(src), off); err != nil {
		return err
	}
	if err := buf.t.Write(src, off); err != nil {
		return fmt.Errorf("neuron write %s%s at %d: %w", buf.dt, buf.shape, off, err)
	}
	return nil
}

func (buf *Buffer) checkRange(op string, n, off int) error {
	if err := buf.usable(); err != nil {
		return err
	}
	if _, weights := buf.dt.Format(); weights {
		return fmt.Errorf("neuron %s %s: %w: partial access to weights", op, buf.dt, backend.ErrUnsupported)
	}
	align := 2
	if buf.dt == backend.F32 || buf.dt == backend.I32 {
		align = 4
	}
	if off < 0 || n < 0 || off > buf.bytes-n || off%align != 0 || n%align != 0 {
		return fmt.Errorf("neuron %s %s%s: %w: %d bytes at %d of %d", op, buf.dt, buf.shape, backend.ErrShape, n, off, buf.bytes)
	}
	return nil
}

// Close frees the device tensor. It fails while a Run using the buffer is
// in flight.
func (buf *Buffer) Close() error {
	if buf.closed.Load() {
		return nil
	}
	if err := buf.t.Free(); err != nil {
		return fmt.Errorf("neuron close %s%s: %w", buf.dt, buf.shape, err)
	}
	buf.closed.Store(true)
	buf.b.leaks.Untrack(buf)
	return nil
}
