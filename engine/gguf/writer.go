package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Writer builds a GGUF version 3 file: metadata in the order added, tensor
// infos in the order added, and the tensor data laid out in that order, each
// tensor aligned (to general.alignment if set, else DefaultAlignment) and
// padded, as llama.cpp writes and expects.
type Writer struct {
	kvs     []KV
	keys    map[string]bool
	tensors []writerTensor
	names   map[string]bool
	align   uint64
}

type writerTensor struct {
	info TensorInfo
	data []byte
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer {
	return &Writer{keys: map[string]bool{}, names: map[string]bool{}, align: DefaultAlignment}
}

// AddKV appends a metadata pair. Keys must be unique and non-empty; a
// general.alignment value must be a power-of-two uint32 (the only type
// llama.cpp accepts) and sets the alignment of the tensor data.
func (w *Writer) AddKV(key string, v Value) error {
	if key == "" {
		return errors.New("gguf: empty metadata key")
	}
	if w.keys[key] {
		return fmt.Errorf("gguf: duplicate metadata key %q", key)
	}
	if err := checkValue(v, 0); err != nil {
		return fmt.Errorf("gguf: metadata %q: %w", key, err)
	}
	if key == KeyAlignment {
		a, ok := v.Uint()
		if v.Type() != TypeUint32 || !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
			return fmt.Errorf("gguf: %s must be a power of two uint32, got %s %v", key, v.Type(), v)
		}
		w.align = a
	}
	w.keys[key] = true
	w.kvs = append(w.kvs, KV{Key: key, Value: v})
	return nil
}

func checkValue(v Value, depth int) error {
	if !v.Valid() {
		return errors.New("invalid (zero) Value")
	}
	a, ok := v.Array()
	if !ok {
		return nil
	}
	if depth >= maxNesting {
		return fmt.Errorf("arrays nested deeper than %d", maxNesting)
	}
	if xs, ok := a.Any().([]Array); ok {
		for _, x := range xs {
			if err := checkValue(ArrayValue(x), depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// AddTensor appends a tensor. dims are in GGUF order (dims[0] is the row
// length); data must hold exactly the tensor's bytes and is not copied (it
// must stay unchanged until WriteTo returns).
func (w *Writer) AddTensor(name string, typ GGMLType, dims []uint64, data []byte) error {
	if len(name) > MaxNameLength {
		return fmt.Errorf("gguf: tensor name %q is longer than %d bytes", name, MaxNameLength)
	}
	if w.names[name] {
		return fmt.Errorf("gguf: duplicate tensor %q", name)
	}
	if !typ.Valid() {
		return fmt.Errorf("gguf: tensor %q: unknown type %v", name, typ)
	}
	if len(dims) > MaxDims {
		return fmt.Errorf("gguf: tensor %q: %d dimensions, at most %d allowed", name, len(dims), MaxDims)
	}
	elems := uint64(1)
	for _, d := range dims {
		if d != 0 && elems > math.MaxInt64/d {
			return fmt.Errorf("gguf: tensor %q: dimensions %v overflow", name, dims)
		}
		elems *= d
	}
	if len(dims) > 0 && dims[0]%typ.BlockSize() != 0 {
		return fmt.Errorf("gguf: tensor %q: row length %d is not a multiple of the %s block size %d", name, dims[0], typ, typ.BlockSize())
	}
	size, ok := typ.RowSize(elems)
	if !ok {
		return fmt.Errorf("gguf: tensor %q: %d elements do not fill whole %s blocks", name, elems, typ)
	}
	if uint64(len(data)) != size {
		return fmt.Errorf("gguf: tensor %q: %d bytes of data, want %d for %s %v", name, len(data), size, typ, dims)
	}
	w.names[name] = true
	w.tensors = append(w.tensors, writerTensor{
		info: TensorInfo{Name: name, Type: typ, Dims: append([]uint64(nil), dims...), Size: size},
		data: data,
	})
	return nil
}

// AddTensorF32 appends an F32 tensor holding values (encoded into a new
// slice); len(values) must equal the product of dims.
func (w *Writer) AddTensorF32(name string, dims []uint64, values []float32) error {
	data := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return w.AddTensor(name, F32, dims, data)
}

// WriteTo writes the file to out and returns the number of bytes written.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	cw := &countWriter{w: out}
	bw := bufio.NewWriterSize(cw, 1<<16)
	e := &encoder{w: bw}
	e.bytes([]byte(Magic))
	e.u32(3)
	e.u64(uint64(len(w.tensors)))
	e.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.Type()))
		e.value(kv.Value)
	}
	off := uint64(0)
	for _, t := range w.tensors {
		e.str(t.info.Name)
		e.u32(uint32(len(t.info.Dims)))
		for _, d := range t.info.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.info.Type))
		e.u64(off)
		off += t.info.Size + w.pad(t.info.Size)
	}
	e.zeros(w.pad(e.n))
	for _, t := range w.tensors {
		e.bytes(t.data)
		e.zeros(w.pad(t.info.Size))
	}
	if e.err == nil {
		e.err = bw.Flush()
	}
	if e.err != nil {
		return cw.n, fmt.Errorf("gguf: write: %w", e.err)
	}
	return cw.n, nil
}

// WriteFile writes the file to path (created or truncated).
func (w *Writer) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if _, err := w.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}

func (w *Writer) pad(n uint64) uint64 { return (w.align - n%w.align) % w.align }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// encoder writes little-endian fields, remembering the first error.
type encoder struct {
	w   *bufio.Writer
	n   uint64
	err error
	tmp [8]byte
}

func (e *encoder) bytes(b []byte) {
	if e.err != nil {
		return
	}
	_, e.err = e.w.Write(b)
	e.n += uint64(len(b))
}

func (e *encoder) zeros(n uint64) {
	var z [64]byte
	for n > 0 {
		k := min(n, uint64(len(z)))
		e.bytes(z[:k])
		n -= k
	}
}

func (e *encoder) u8(x uint8) { e.tmp[0] = x; e.bytes(e.tmp[:1]) }
func (e *encoder) u16(x uint16) {
	binary.LittleEndian.PutUint16(e.tmp[:], x)
	e.bytes(e.tmp[:2])
}
func (e *encoder) u32(x uint32) {
	binary.LittleEndian.PutUint32(e.tmp[:], x)
	e.bytes(e.tmp[:4])
}
func (e *encoder) u64(x uint64) {
	binary.LittleEndian.PutUint64(e.tmp[:], x)
	e.bytes(e.tmp[:8])
}
func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
		e.n += uint64(len(s))
	}
}

func (e *encoder) value(v Value) {
	switch x := v.Any().(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		if x {
			e.u8(1)
		} else {
			e.u8(0)
		}
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case Array:
		e.u32(uint32(x.Elem()))
		e.u64(uint64(x.Len()))
		e.array(x)
	}
}

func (e *encoder) array(a Array) {
	switch xs := a.Any().(type) {
	case []uint8:
		e.bytes(xs)
	case []string:
		for _, s := range xs {
			e.str(s)
		}
	case []Array:
		for _, x := range xs {
			e.value(ArrayValue(x))
		}
	default:
		for i := range a.Len() {
			e.value(a.Index(i))
		}
	}
}
