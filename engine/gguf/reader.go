// Package gguf reads and writes GGUF model files (versions 2 and 3,
// little-endian), the format of ggml and llama.cpp.
//
// A File holds the metadata key-value pairs in file order and the tensor
// infos; tensor bytes stay in the (memory-mapped) file until asked for.
// Parsing never trusts a count or a length in the file: each is bounded by
// the bytes left, and every malformed field is reported as a *ParseError
// naming the field and its offset.
//
// Metadata accessors on File (String, Uint, Float, ...) return (value,
// error): the error wraps ErrKeyNotFound when the key is absent, and names
// the key and its actual type when the type does not fit.
package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/mnemo-ai/mnemo/internal/mmap"
)

// Magic is the first four bytes of a GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the alignment of the tensor data when the file has no
// general.alignment key.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that sets the tensor data alignment.
const KeyAlignment = "general.alignment"

// Limits that llama.cpp also applies (GGML_MAX_DIMS, GGML_MAX_NAME).
const (
	MaxDims       = 4
	MaxNameLength = 63
)

// maxNesting bounds arrays of arrays.
const maxNesting = 16

var (
	// ErrKeyNotFound is wrapped by the metadata accessors when a key is
	// absent.
	ErrKeyNotFound = errors.New("key not found")
	// ErrTensorNotFound is wrapped when a tensor name is absent.
	ErrTensorNotFound = errors.New("tensor not found")
	// ErrTruncated is wrapped by the ParseError of a field that runs past
	// the end of the file.
	ErrTruncated = errors.New("unexpected end of file")
)

// ParseError reports a malformed field.
type ParseError struct {
	Field  string // e.g. "header.tensor_count", `kv[3] "general.name" value`
	Offset int64  // byte offset of the field in the file
	Err    error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("gguf: %s at offset %d: %v", e.Field, e.Offset, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name string
	Type GGMLType
	// Dims are the sizes in GGUF (ggml) order: Dims[0] is ne0, the
	// contiguous dimension (the length of a row).
	Dims []uint64
	// Offset is the position of the tensor's bytes from the start of the
	// data section (File.DataOffset).
	Offset uint64
	// Size is the tensor's size in bytes.
	Size uint64
}

// Elements returns the number of elements (the product of Dims).
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is a parsed GGUF file.
type File struct {
	version    uint32
	kvs        []KV
	keys       map[string]int
	tensors    []TensorInfo
	names      map[string]int
	alignment  uint64
	dataOffset int64
	size       int64

	r    io.ReaderAt
	data []byte // the whole file, when it is in memory (Open, ParseBytes)
	m    *mmap.Map
}

// Open memory-maps and parses the GGUF file at path. Close releases it.
func Open(path string) (*File, error) {
	m, err := mmap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := ParseBytes(m.Bytes())
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.m = m
	return f, nil
}

// Parse parses a GGUF file of size bytes read from r. TensorData then reads
// (copies) tensor bytes from r.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("gguf: negative size %d", size)
	}
	d := &decoder{r: r, size: size}
	f, err := d.file()
	if err != nil {
		return nil, err
	}
	f.r = r
	return f, nil
}

// ParseBytes parses a GGUF file held in b. TensorData returns sub-slices of
// b without copying.
func ParseBytes(b []byte) (*File, error) {
	d := &decoder{size: int64(len(b)), buf: b}
	f, err := d.file()
	if err != nil {
		return nil, err
	}
	f.data = b
	return f, nil
}

// Close releases the file's mapping, if Open made one. Tensor data slices
// become invalid.
func (f *File) Close() error {
	if f.m == nil {
		return nil
	}
	err := f.m.Close()
	f.m, f.data = nil, nil
	return err
}

// Version returns the GGUF version (2 or 3).
func (f *File) Version() uint32 { return f.version }

// Alignment returns the tensor data alignment.
func (f *File) Alignment() uint64 { return f.alignment }

// DataOffset returns the file offset of the tensor data section.
func (f *File) DataOffset() int64 { return f.dataOffset }

// Size returns the file size in bytes.
func (f *File) Size() int64 { return f.size }

// KVs returns the metadata in file order. The slice is shared: do not
// modify it.
func (f *File) KVs() []KV { return f.kvs }

// Get returns the value of key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.keys[key]
	if !ok {
		return Value{}, false
	}
	return f.kvs[i].Value, true
}

func (f *File) lookup(key string) (Value, error) {
	v, ok := f.Get(key)
	if !ok {
		return Value{}, fmt.Errorf("gguf: %s: %w", key, ErrKeyNotFound)
	}
	return v, nil
}

func typeErr(key string, v Value, want string) error {
	got := v.Type().String()
	if a, ok := v.Array(); ok {
		got = "array of " + a.Elem().String()
	}
	return fmt.Errorf("gguf: %s is %s, want %s", key, got, want)
}

// String returns the string value of key.
func (f *File) String(key string) (string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := v.Str()
	if !ok {
		return "", typeErr(key, v, "string")
	}
	return s, nil
}

// Uint returns the value of key, which may be of any integer type holding a
// non-negative value.
func (f *File) Uint(key string) (uint64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	x, ok := v.Uint()
	if !ok {
		if _, isInt := v.Int(); isInt {
			return 0, fmt.Errorf("gguf: %s is negative (%v)", key, v)
		}
		return 0, typeErr(key, v, "an unsigned integer")
	}
	return x, nil
}

// Int returns the value of key, which may be of any integer type that fits
// an int64.
func (f *File) Int(key string) (int64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	x, ok := v.Int()
	if !ok {
		return 0, typeErr(key, v, "an integer")
	}
	return x, nil
}

// Float returns the value of key, which may be a float32, a float64 or an
// integer.
func (f *File) Float(key string) (float64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	x, ok := v.Float()
	if !ok {
		return 0, typeErr(key, v, "a number")
	}
	return x, nil
}

// Bool returns the bool value of key.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	x, ok := v.Bool()
	if !ok {
		return false, typeErr(key, v, "bool")
	}
	return x, nil
}

// Array returns the array value of key.
func (f *File) Array(key string) (Array, error) {
	v, err := f.lookup(key)
	if err != nil {
		return Array{}, err
	}
	a, ok := v.Array()
	if !ok {
		return Array{}, typeErr(key, v, "array")
	}
	return a, nil
}

// Strings returns the array of strings of key. The slice is shared: do not
// modify it.
func (f *File) Strings(key string) ([]string, error) {
	a, err := f.Array(key)
	if err != nil {
		return nil, err
	}
	s, ok := a.Any().([]string)
	if !ok {
		return nil, typeErr(key, ArrayValue(a), "array of string")
	}
	return s, nil
}

// Float32s returns the array of float32 (or float64, converted) of key. A
// float32 array is shared, not copied: do not modify it.
func (f *File) Float32s(key string) ([]float32, error) {
	a, err := f.Array(key)
	if err != nil {
		return nil, err
	}
	switch x := a.Any().(type) {
	case []float32:
		return x, nil
	case []float64:
		out := make([]float32, len(x))
		for i, v := range x {
			out[i] = float32(v)
		}
		return out, nil
	}
	return nil, typeErr(key, ArrayValue(a), "array of float32")
}

// Int32s returns the array of key as int32s. Any integer element type is
// accepted when every element fits; an int32 array is shared, not copied.
func (f *File) Int32s(key string) ([]int32, error) {
	a, err := f.Array(key)
	if err != nil {
		return nil, err
	}
	if x, ok := a.Any().([]int32); ok {
		return x, nil
	}
	out := make([]int32, a.Len())
	for i := range out {
		v, ok := a.Index(i).Int()
		if !ok || v < math.MinInt32 || v > math.MaxInt32 {
			return nil, typeErr(key, ArrayValue(a), "array of int32")
		}
		out[i] = int32(v)
	}
	return out, nil
}

// Tensors returns the tensor infos in file order. The slice is shared: do
// not modify it.
func (f *File) Tensors() []TensorInfo { return f.tensors }

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.names[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.tensors[i], true
}

// TensorData returns the bytes of the named tensor. For a file from Open or
// ParseBytes it is a slice of the mapping (no copy; valid until Close, never
// to be written); for a file from Parse it is read into a new slice.
func (f *File) TensorData(name string) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: %q: %w", name, ErrTensorNotFound)
	}
	start := uint64(f.dataOffset) + t.Offset
	end := start + t.Size
	if f.data != nil {
		return f.data[start:end:end], nil
	}
	if f.r == nil {
		return nil, fmt.Errorf("gguf: tensor %q: file is closed", name)
	}
	if t.Size > math.MaxInt {
		return nil, fmt.Errorf("gguf: tensor %q: %d bytes do not fit in memory", name, t.Size)
	}
	buf := make([]byte, t.Size)
	if _, err := f.r.ReadAt(buf, int64(start)); err != nil {
		return nil, fmt.Errorf("gguf: read tensor %q: %w", name, err)
	}
	return buf, nil
}

// decoder reads the file's header, metadata and tensor infos.
type decoder struct {
	r      io.ReaderAt
	size   int64
	off    int64
	buf    []byte // window of the file starting at bufOff (the whole file for ParseBytes)
	bufOff int64
}

const windowSize = 64 << 10

func (d *decoder) errf(field string, off int64, format string, args ...any) error {
	return &ParseError{Field: field, Offset: off, Err: fmt.Errorf(format, args...)}
}

// remaining returns the bytes left after the current offset.
func (d *decoder) remaining() int64 { return d.size - d.off }

// read returns the next n bytes and advances. The slice is only valid until
// the next call.
func (d *decoder) read(n int64, field string) ([]byte, error) {
	if n > d.remaining() {
		return nil, &ParseError{Field: field, Offset: d.off,
			Err: fmt.Errorf("%w: need %d bytes, %d left", ErrTruncated, n, d.remaining())}
	}
	lo := d.off - d.bufOff
	if d.off < d.bufOff || lo+n > int64(len(d.buf)) {
		if d.r == nil {
			// ParseBytes: buf is the whole file, checked above.
			panic("gguf: decoder window out of range")
		}
		if n > windowSize {
			b := make([]byte, n)
			if _, err := d.r.ReadAt(b, d.off); err != nil {
				return nil, &ParseError{Field: field, Offset: d.off, Err: err}
			}
			d.off += n
			return b, nil
		}
		w := min(int64(windowSize), d.remaining())
		if cap(d.buf) < int(w) {
			d.buf = make([]byte, windowSize)
		}
		d.buf = d.buf[:w]
		if k, err := d.r.ReadAt(d.buf, d.off); int64(k) < w {
			if err == nil || err == io.EOF {
				err = ErrTruncated
			}
			return nil, &ParseError{Field: field, Offset: d.off, Err: err}
		}
		d.bufOff, lo = d.off, 0
	}
	d.off += n
	return d.buf[lo : lo+n], nil
}

func (d *decoder) u32(field string) (uint32, error) {
	b, err := d.read(4, field)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64(field string) (uint64, error) {
	b, err := d.read(8, field)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// count reads a uint64 count of items each at least minSize bytes long and
// checks that they can fit in the rest of the file.
func (d *decoder) count(field string, minSize int64) (int, error) {
	off := d.off
	n, err := d.u64(field)
	if err != nil {
		return 0, err
	}
	if minSize > 0 && n > uint64(d.remaining()/minSize) {
		return 0, &ParseError{Field: field, Offset: off,
			Err: fmt.Errorf("%w: count %d needs at least %d bytes per item but only %d bytes are left", ErrTruncated, n, minSize, d.remaining())}
	}
	if n > math.MaxInt32 {
		return 0, d.errf(field, off, "count %d is too large", n)
	}
	return int(n), nil
}

func (d *decoder) str(field string) (string, error) {
	off := d.off
	n, err := d.u64(field)
	if err != nil {
		return "", err
	}
	if n > uint64(d.remaining()) {
		return "", &ParseError{Field: field, Offset: off,
			Err: fmt.Errorf("%w: string length %d exceeds the %d bytes left", ErrTruncated, n, d.remaining())}
	}
	b, err := d.read(int64(n), field)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (d *decoder) file() (*File, error) {
	b, err := d.read(4, "header.magic")
	if err != nil {
		return nil, err
	}
	if string(b) != Magic {
		return nil, d.errf("header.magic", 0, "not a GGUF file (magic %q)", b)
	}
	version, err := d.u32("header.version")
	if err != nil {
		return nil, err
	}
	switch {
	case version == 2 || version == 3:
	case version == 1:
		return nil, d.errf("header.version", 4, "GGUF version 1 is not supported (only 2 and 3)")
	case version&0xffff == 0 && bits.ReverseBytes32(version) <= 3:
		return nil, d.errf("header.version", 4, "big-endian GGUF files are not supported")
	default:
		return nil, d.errf("header.version", 4, "unsupported GGUF version %d (want 2 or 3)", version)
	}
	// A tensor info takes at least 24 bytes (empty name, no dims); a KV 13.
	nTensors, err := d.count("header.tensor_count", 24)
	if err != nil {
		return nil, err
	}
	nKV, err := d.count("header.metadata_kv_count", 13)
	if err != nil {
		return nil, err
	}
	f := &File{
		version:   version,
		kvs:       make([]KV, 0, nKV),
		keys:      make(map[string]int, nKV),
		tensors:   make([]TensorInfo, 0, nTensors),
		names:     make(map[string]int, nTensors),
		alignment: DefaultAlignment,
		size:      d.size,
	}
	for i := range nKV {
		off := d.off
		key, err := d.str(fmt.Sprintf("kv[%d].key", i))
		if err != nil {
			return nil, err
		}
		field := fmt.Sprintf("kv[%d] %q", i, key)
		if _, dup := f.keys[key]; dup {
			return nil, d.errf(field, off, "duplicate key")
		}
		typ, err := d.u32(field + " type")
		if err != nil {
			return nil, err
		}
		v, err := d.value(ValueType(typ), field+" value", 0)
		if err != nil {
			return nil, err
		}
		if key == KeyAlignment {
			a, ok := v.Uint()
			if !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
				return nil, d.errf(field, off, "alignment must be a power of two integer, got %s %v", v.Type(), v)
			}
			f.alignment = a
		}
		f.keys[key] = len(f.kvs)
		f.kvs = append(f.kvs, KV{Key: key, Value: v})
	}
	for i := range nTensors {
		t, err := d.tensorInfo(i, f.alignment)
		if err != nil {
			return nil, err
		}
		if _, dup := f.names[t.Name]; dup {
			return nil, d.errf(fmt.Sprintf("tensor[%d] %q name", i, t.Name), d.off, "duplicate tensor name")
		}
		f.names[t.Name] = len(f.tensors)
		f.tensors = append(f.tensors, t)
	}
	// The data section starts at the next multiple of the alignment.
	pad := (f.alignment - uint64(d.off)%f.alignment) % f.alignment
	f.dataOffset = d.off + int64(pad)
	if err := f.checkTensorBounds(); err != nil {
		return nil, err
	}
	return f, nil
}

func (d *decoder) tensorInfo(i int, alignment uint64) (TensorInfo, error) {
	start := d.off
	name, err := d.str(fmt.Sprintf("tensor[%d].name", i))
	if err != nil {
		return TensorInfo{}, err
	}
	field := fmt.Sprintf("tensor[%d] %q", i, name)
	if len(name) > MaxNameLength {
		return TensorInfo{}, d.errf(field+" name", start, "name of %d bytes is longer than %d", len(name), MaxNameLength)
	}
	off := d.off
	nDims, err := d.u32(field + " n_dims")
	if err != nil {
		return TensorInfo{}, err
	}
	if nDims > MaxDims {
		return TensorInfo{}, d.errf(field+" n_dims", off, "%d dimensions, at most %d allowed", nDims, MaxDims)
	}
	t := TensorInfo{Name: name, Dims: make([]uint64, nDims)}
	elems := uint64(1)
	for j := range t.Dims {
		off := d.off
		if t.Dims[j], err = d.u64(fmt.Sprintf("%s dims[%d]", field, j)); err != nil {
			return TensorInfo{}, err
		}
		hi, lo := bits.Mul64(elems, t.Dims[j])
		if hi != 0 || lo > math.MaxInt64 {
			return TensorInfo{}, d.errf(fmt.Sprintf("%s dims[%d]", field, j), off, "dimensions %v overflow the element count", t.Dims[:j+1])
		}
		elems = lo
	}
	off = d.off
	typ, err := d.u32(field + " type")
	if err != nil {
		return TensorInfo{}, err
	}
	t.Type = GGMLType(typ)
	if !t.Type.Valid() {
		return TensorInfo{}, d.errf(field+" type", off, "unknown ggml type %d", typ)
	}
	ne0 := uint64(1)
	if nDims > 0 {
		ne0 = t.Dims[0]
	}
	if ne0%t.Type.BlockSize() != 0 {
		return TensorInfo{}, d.errf(field+" dims[0]", off, "row length %d is not a multiple of the %s block size %d", ne0, t.Type, t.Type.BlockSize())
	}
	size, ok := t.Type.RowSize(elems)
	if !ok || size > math.MaxInt64 {
		return TensorInfo{}, d.errf(field+" dims", off, "size of %d elements of %s overflows", elems, t.Type)
	}
	t.Size = size
	off = d.off
	if t.Offset, err = d.u64(field + " offset"); err != nil {
		return TensorInfo{}, err
	}
	if t.Offset%alignment != 0 {
		return TensorInfo{}, d.errf(field+" offset", off, "data offset %d is not a multiple of the alignment %d", t.Offset, alignment)
	}
	return t, nil
}

// checkTensorBounds checks that every tensor lies inside the data section
// and that no two overlap.
func (f *File) checkTensorBounds() error {
	avail := uint64(0)
	if f.size > f.dataOffset {
		avail = uint64(f.size - f.dataOffset)
	}
	idx := make([]int, 0, len(f.tensors))
	for i, t := range f.tensors {
		if t.Offset > avail || t.Size > avail-t.Offset {
			return &ParseError{Field: fmt.Sprintf("tensor[%d] %q offset", i, t.Name), Offset: f.dataOffset,
				Err: fmt.Errorf("%w: data [%d, +%d) runs past the %d bytes of the data section", ErrTruncated, t.Offset, t.Size, avail)}
		}
		if t.Size > 0 {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch x, y := f.tensors[a].Offset, f.tensors[b].Offset; {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	for k := 1; k < len(idx); k++ {
		p, t := f.tensors[idx[k-1]], f.tensors[idx[k]]
		if p.Offset+p.Size > t.Offset {
			return &ParseError{Field: fmt.Sprintf("tensor[%d] %q offset", idx[k], t.Name), Offset: f.dataOffset,
				Err: fmt.Errorf("data [%d, +%d) overlaps tensor %q [%d, +%d)", t.Offset, t.Size, p.Name, p.Offset, p.Size)}
		}
	}
	return nil
}

// value reads one value of type t.
func (d *decoder) value(t ValueType, field string, depth int) (Value, error) {
	off := d.off
	if !t.Valid() {
		return Value{}, d.errf(field, off-4, "unknown value type %d", uint32(t))
	}
	if t == TypeString {
		s, err := d.str(field)
		if err != nil {
			return Value{}, err
		}
		return String(s), nil
	}
	if t == TypeArray {
		a, err := d.array(field, depth)
		if err != nil {
			return Value{}, err
		}
		return ArrayValue(a), nil
	}
	b, err := d.read(int64(fixedSize[t]), field)
	if err != nil {
		return Value{}, err
	}
	switch t {
	case TypeUint8:
		return Uint8(b[0]), nil
	case TypeInt8:
		return Int8(int8(b[0])), nil
	case TypeUint16:
		return Uint16(binary.LittleEndian.Uint16(b)), nil
	case TypeInt16:
		return Int16(int16(binary.LittleEndian.Uint16(b))), nil
	case TypeUint32:
		return Uint32(binary.LittleEndian.Uint32(b)), nil
	case TypeInt32:
		return Int32(int32(binary.LittleEndian.Uint32(b))), nil
	case TypeFloat32:
		return Float32(math.Float32frombits(binary.LittleEndian.Uint32(b))), nil
	case TypeBool:
		if b[0] > 1 {
			return Value{}, d.errf(field, off, "bool byte %d is neither 0 nor 1", b[0])
		}
		return Bool(b[0] == 1), nil
	case TypeUint64:
		return Uint64(binary.LittleEndian.Uint64(b)), nil
	case TypeInt64:
		return Int64(int64(binary.LittleEndian.Uint64(b))), nil
	default: // TypeFloat64
		return Float64(math.Float64frombits(binary.LittleEndian.Uint64(b))), nil
	}
}

func (d *decoder) array(field string, depth int) (Array, error) {
	off := d.off
	if depth >= maxNesting {
		return Array{}, d.errf(field, off, "arrays nested deeper than %d", maxNesting)
	}
	et, err := d.u32(field + " element type")
	if err != nil {
		return Array{}, err
	}
	t := ValueType(et)
	if !t.Valid() {
		return Array{}, d.errf(field+" element type", off, "unknown value type %d", et)
	}
	n, err := d.count(field+" length", t.minEncodedSize())
	if err != nil {
		return Array{}, err
	}
	switch t {
	case TypeString:
		xs := make([]string, n)
		for i := range xs {
			if xs[i], err = d.str(field); err != nil {
				return Array{}, withIndex(err, field, i)
			}
		}
		return NewArray(xs), nil
	case TypeArray:
		xs := make([]Array, n)
		for i := range xs {
			if xs[i], err = d.array(field, depth+1); err != nil {
				return Array{}, withIndex(err, field, i)
			}
		}
		return NewArray(xs), nil
	}
	// Fixed-size elements: one read for the whole array (bounded above).
	off = d.off
	b, err := d.read(int64(n)*int64(fixedSize[t]), field)
	if err != nil {
		return Array{}, err
	}
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return NewArray(slices.Clone(b)), nil
	case TypeInt8:
		xs := make([]int8, n)
		for i := range xs {
			xs[i] = int8(b[i])
		}
		return NewArray(xs), nil
	case TypeBool:
		xs := make([]bool, n)
		for i := range xs {
			if b[i] > 1 {
				return Array{}, d.errf(fmt.Sprintf("%s[%d]", field, i), off+int64(i), "bool byte %d is neither 0 nor 1", b[i])
			}
			xs[i] = b[i] == 1
		}
		return NewArray(xs), nil
	case TypeUint16:
		return NewArray(decodeInts(b, n, func(b []byte) uint16 { return le.Uint16(b) })), nil
	case TypeInt16:
		return NewArray(decodeInts(b, n, func(b []byte) int16 { return int16(le.Uint16(b)) })), nil
	case TypeUint32:
		return NewArray(decodeInts(b, n, le.Uint32)), nil
	case TypeInt32:
		return NewArray(decodeInts(b, n, func(b []byte) int32 { return int32(le.Uint32(b)) })), nil
	case TypeFloat32:
		return NewArray(decodeInts(b, n, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })), nil
	case TypeUint64:
		return NewArray(decodeInts(b, n, le.Uint64)), nil
	case TypeInt64:
		return NewArray(decodeInts(b, n, func(b []byte) int64 { return int64(le.Uint64(b)) })), nil
	default: // TypeFloat64
		return NewArray(decodeInts(b, n, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })), nil
	}
}

func decodeInts[T ArrayElem](b []byte, n int, dec func([]byte) T) []T {
	xs := make([]T, n)
	if n == 0 {
		return xs
	}
	w := len(b) / n
	for i := range xs {
		xs[i] = dec(b[i*w : i*w+w])
	}
	return xs
}

// withIndex rewrites the field of a ParseError raised for an element of the
// array named field to name element i (built only on error, so that large
// arrays cost no formatting).
func withIndex(err error, field string, i int) error {
	var pe *ParseError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Field, field) {
		pe.Field = fmt.Sprintf("%s[%d]%s", field, i, pe.Field[len(field):])
	}
	return err
}

// ReleasePages drops the file's mapped pages from the process's resident
// memory once the caller has copied what it needs (see mmap.Map.DontNeed);
// later reads fault them back in.
func (f *File) ReleasePages() error { return f.m.DontNeed() }
