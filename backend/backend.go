// Package backend defines what the engine asks of a compute device: buffers
// in the device's memory and programs that run operations on them.
//
// The unit of work is a Program: an operation compiled for fixed shapes (a
// shape bucket), because the least flexible backend — the Neuron runtime —
// runs ahead-of-time compiled graphs with static shapes. The engine compiles
// the programs it needs once (per bucket) and then runs them every step,
// binding buffers that stay in backend memory: weights and KV blocks are
// written once; per step only the small inputs (token ids, positions, block
// tables) are written and the logits read back.
//
// Backends register by name (Register) and are opened with Open. Optional
// capabilities are small interfaces found by type assertion (HostBuffer).
package backend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// DType is the element type of a Buffer.
type DType uint8

// The element types. Weight formats wrap a format.Type (see Weights).
const (
	F32 DType = iota
	F16
	BF16
	I32
	// F8E4M3 is OCP FP8 E4M3 (the FN variant: no infinities, ±448 at
	// most), one byte an element, with no scale; for KV caches.
	F8E4M3
	// weightBase + format.Type is a packed weight matrix of that format.
	weightBase DType = 64
)

// Weights returns the DType of a weight matrix stored in format t. Such a
// buffer has shape [N, K] and its host encoding is N rows of
// t.RowBytes(K) bytes (format's file layout); for NVFP4 the rows are
// followed by the float32 per-tensor scale (4 bytes, little-endian).
func Weights(t format.Type) DType { return weightBase + DType(t) }

// Format returns the weight format of a weight DType.
func (d DType) Format() (format.Type, bool) {
	if d < weightBase {
		return 0, false
	}
	t := format.Type(d - weightBase)
	return t, t.Valid()
}

// Valid reports whether d is a known DType.
func (d DType) Valid() bool {
	if d < weightBase {
		return d <= F8E4M3
	}
	_, ok := d.Format()
	return ok
}

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case F16:
		return "f16"
	case BF16:
		return "bf16"
	case I32:
		return "i32"
	case F8E4M3:
		return "f8e4m3"
	}
	if t, ok := d.Format(); ok {
		return "weights:" + t.String()
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Shape is a buffer's dimensions, outermost first (row-major).
type Shape []int

// Elems returns the number of elements, or -1 if a dimension is negative
// or the product overflows an int.
func (s Shape) Elems() int {
	n := 1
	for _, d := range s {
		if d < 0 || (d > 0 && n > int(^uint(0)>>1)/d) {
			return -1
		}
		n *= d
	}
	return n
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, "×") + "]"
}

// HostBytes returns the size of a buffer's host encoding (what Write takes
// and Read returns), or an error if dt and shape do not fit together.
func HostBytes(dt DType, shape Shape) (int, error) {
	n := shape.Elems()
	if n < 0 || len(shape) == 0 {
		return 0, fmt.Errorf("%w: %s", ErrShape, shape)
	}
	switch dt {
	case F32, I32:
		return 4 * n, nil
	case F16, BF16:
		return 2 * n, nil
	case F8E4M3:
		return n, nil
	}
	t, ok := dt.Format()
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrDType, dt)
	}
	if len(shape) != 2 || !t.RowOK(shape[1]) || shape[0] == 0 {
		return 0, fmt.Errorf("%w: %s weights need [N, K] with K a multiple of %d, got %s", ErrShape, t, t.BlockElems(), shape)
	}
	b := shape[0] * t.RowBytes(shape[1])
	if t == format.NVFP4 {
		b += 4
	}
	return b, nil
}

// Buffer is memory owned by a backend.
type Buffer interface {
	// DType returns the element type.
	DType() DType
	// Shape returns the dimensions.
	Shape() Shape
	// Write replaces the contents with src, in the host encoding
	// (little-endian elements; see Weights for weight matrices). len(src)
	// must equal HostBytes(DType(), Shape()).
	Write(src []byte) error
	// Read copies the contents, in the host encoding, into dst, whose
	// length must equal HostBytes(DType(), Shape()). Weight buffers may not
	// support Read (ErrUnsupported).
	Read(dst []byte) error
	// Close frees the memory. Later calls on the buffer return ErrClosed.
	Close() error
}

// HostBuffer is implemented by buffers that live in host memory; the CPU
// backend's buffers do. F32 returns the contents as float32s without a
// copy (nil for other dtypes).
type HostBuffer interface {
	Buffer
	F32() []float32
}

// Viewer is implemented by buffers that can expose a prefix of themselves
// under another shape without copying (the CPU backend's can). The engine
// then allocates activations once at their largest size. A view shares
// memory with its parent; closing it does not free the parent, and it must
// not be used after the parent is closed.
type Viewer interface {
	View(shape Shape) (Buffer, error)
}

// RangeBuffer is implemented by buffers that can read and write part of
// their host encoding, such as one block of a KV cache. off and len are in
// bytes of the host encoding and must lie within it.
type RangeBuffer interface {
	ReadAt(dst []byte, off int) error
	WriteAt(src []byte, off int) error
}

// Bucketer is implemented by backends that want step sizes rounded to
// their own buckets. Bucket returns the smallest size >= n that programs
// should be compiled for. Without it the engine uses powers of two.
type Bucketer interface {
	Bucket(n int) int
}

// Program is an operation compiled for fixed shapes.
type Program interface {
	// Spec returns what the program was compiled for.
	Spec() Spec
	// Run executes the program on the given buffers, whose dtypes and
	// shapes must match the operation's signature (see Op). A buffer may
	// appear as both an input and an output where the op says it is
	// updated in place. Run is safe for concurrent use with different
	// output buffers.
	Run(ctx context.Context, in, out []Buffer) error
	// Close releases the program.
	Close() error
}

// Backend is a compute device.
type Backend interface {
	// Name returns the registered name ("cpu", "neuron").
	Name() string
	// Alloc allocates a zeroed buffer.
	Alloc(dt DType, shape Shape) (Buffer, error)
	// Supports reports whether Compile would accept spec: nil, or an error
	// wrapping ErrUnsupported that says why. The engine uses it to refuse
	// a model or route an op elsewhere before any work.
	Supports(spec Spec) error
	// Compile prepares a Program for spec.
	Compile(ctx context.Context, spec Spec) (Program, error)
	// Close releases the backend. Buffers and programs must be closed
	// first; a backend may report the ones still open as an error.
	Close() error
}

// Errors common to all backends. Backends wrap them with detail.
var (
	ErrShape       = errors.New("backend: bad shape")
	ErrDType       = errors.New("backend: bad dtype")
	ErrUnsupported = errors.New("backend: unsupported")
	ErrClosed      = errors.New("backend: closed")
	ErrSignature   = errors.New("backend: buffers do not match the program")
)

// Options configure a backend when it is opened.
type Options struct {
	// Threads caps the threads a CPU backend computes with (0: GOMAXPROCS).
	Threads int
	// Kernels names the CPU kernel tier ("", "generic", "avx2", "avx512");
	// empty means the default (kernels.Select).
	Kernels string
	// Dir is a backend-specific directory (the Neuron backend's NEFF
	// directory).
	Dir string
}

// Factory opens a backend.
type Factory func(Options) (Backend, error)

var (
	regMu    sync.Mutex
	registry = map[string]Factory{}
)

// Register makes a backend available by name. It panics on a duplicate.
func Register(name string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("backend: registered twice: " + name)
	}
	registry[name] = f
}

// Names returns the registered backend names, sorted.
func Names() []string {
	regMu.Lock()
	defer regMu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open opens the backend registered under name.
func Open(name string, opt Options) (Backend, error) {
	regMu.Lock()
	f := registry[name]
	regMu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("backend: unknown backend %q (have %s)", name, strings.Join(Names(), ", "))
	}
	b, err := f(opt)
	if err != nil {
		return nil, fmt.Errorf("open backend %s: %w", name, err)
	}
	return b, nil
}

// CheckRun verifies a Run call's input and output buffers against a
// program's signature, naming the program and the first mismatch.
func CheckRun(spec Spec, in, out []Buffer, wantIn, wantOut []Param) error {
	if err := CheckBuffers("input", in, wantIn); err != nil {
		return fmt.Errorf("run %s: %w", spec, err)
	}
	if err := CheckBuffers("output", out, wantOut); err != nil {
		return fmt.Errorf("run %s: %w", spec, err)
	}
	return nil
}

// CheckBuffers verifies that bufs match want (dtype and shape), naming the
// first mismatch. Backends call it at the top of Run.
func CheckBuffers(role string, bufs []Buffer, want []Param) error {
	if len(bufs) != len(want) {
		return fmt.Errorf("%w: %d %s buffers, want %d", ErrSignature, len(bufs), role, len(want))
	}
	for i, b := range bufs {
		if b == nil {
			return fmt.Errorf("%w: %s %d (%s) is nil", ErrSignature, role, i, want[i].Name)
		}
		if b.DType() != want[i].DType || !slices.Equal(b.Shape(), want[i].Shape) {
			return fmt.Errorf("%w: %s %d (%s) is %s%s, want %s%s", ErrSignature, role, i, want[i].Name,
				b.DType(), b.Shape(), want[i].DType, want[i].Shape)
		}
	}
	return nil
}
