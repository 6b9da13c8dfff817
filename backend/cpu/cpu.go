// Package cpu is the CPU backend: buffers are Go memory and programs call
// package kernels, with the SIMD tier chosen at run time.
package cpu

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/kernels"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

func init() {
	backend.Register("cpu", func(opt backend.Options) (backend.Backend, error) { return New(opt) })
}

// Backend is the CPU backend. It is safe for concurrent use.
type Backend struct {
	impl *kernels.Impl
	pool *kernels.Pool

	closed atomic.Bool
	leaks  backend.Leaks // open buffers and programs, for Close's report

	scratchPool sync.Pool // *[]float32 for split and GLU matmuls
}

var _ backend.Backend = (*Backend)(nil)

// New opens a CPU backend with opt.Threads threads (0: GOMAXPROCS) and the
// kernel tier opt.Kernels (empty: kernels.Select).
func New(opt backend.Options) (*Backend, error) {
	var (
		impl *kernels.Impl
		err  error
	)
	if opt.Kernels == "" {
		impl, err = kernels.Select()
	} else {
		impl, err = kernels.Lookup(opt.Kernels)
	}
	if err != nil {
		return nil, err
	}
	if opt.Threads < 0 {
		return nil, fmt.Errorf("cpu: threads must be >= 0, got %d", opt.Threads)
	}
	return &Backend{impl: impl, pool: kernels.NewPool(opt.Threads)}, nil
}

// Name returns "cpu".
func (b *Backend) Name() string { return "cpu" }

// Impl returns the kernel tier the backend runs.
func (b *Backend) Impl() *kernels.Impl { return b.impl }

// Threads returns the number of threads the backend computes with.
func (b *Backend) Threads() int { return b.pool.Threads() }

// Close stops the worker threads. It reports buffers and programs that are
// still open as an error (they stay usable until closed).
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.pool.Close()
	return b.leaks.Drain("cpu")
}

// Buffer is a CPU buffer. It implements backend.HostBuffer.
type Buffer struct {
	b      *Backend
	dt     backend.DType
	shape  backend.Shape
	bytes  int
	data   []float32       // F32
	raw    []byte          // F16, BF16, I32, F8E4M3: host encoding
	w      *kernels.Matrix // weights, after Write
	view   bool            // a View of another buffer
	closed atomic.Bool
}

var (
	_ backend.HostBuffer  = (*Buffer)(nil)
	_ backend.Viewer      = (*Buffer)(nil)
	_ backend.RangeBuffer = (*Buffer)(nil)
	_ backend.Bucketer    = (*Backend)(nil)
)

// Alloc allocates a zeroed buffer.
func (b *Backend) Alloc(dt backend.DType, shape backend.Shape) (backend.Buffer, error) {
	if b.closed.Load() {
		return nil, backend.ErrClosed
	}
	if !dt.Valid() {
		return nil, fmt.Errorf("cpu alloc: %w: %s", backend.ErrDType, dt)
	}
	n, err := backend.HostBytes(dt, shape)
	if err != nil {
		return nil, fmt.Errorf("cpu alloc %s%s: %w", dt, shape, err)
	}
	buf := &Buffer{b: b, dt: dt, shape: append(backend.Shape(nil), shape...), bytes: n}
	switch dt {
	case backend.F32:
		buf.data = make([]float32, n/4)
	case backend.F16, backend.BF16, backend.I32, backend.F8E4M3:
		buf.raw = make([]byte, n)
	default:
		if !hasKernels(mustFormat(dt)) {
			return nil, fmt.Errorf("cpu alloc %s%s: %w: no kernels for this weight format", dt, shape, backend.ErrUnsupported)
		}
	}
	b.leaks.Track(buf, fmt.Sprintf("buffer %s%s", dt, shape))
	return buf, nil
}

func mustFormat(dt backend.DType) format.Type {
	t, _ := dt.Format()
	return t
}

// DType returns the element type.
func (buf *Buffer) DType() backend.DType { return buf.dt }

// Shape returns the dimensions.
func (buf *Buffer) Shape() backend.Shape { return buf.shape }

// F32 returns the contents of an F32 buffer without copying (nil for other
// dtypes). The slice stays valid until Close.
func (buf *Buffer) F32() []float32 { return buf.data }

// Bytes returns the memory the buffer holds: the packed size of written
// weights, else the host encoding's size.
func (buf *Buffer) Bytes() int {
	if buf.w != nil {
		return buf.w.Bytes()
	}
	return buf.bytes
}

// Matrix returns the packed weights of a weight buffer (nil before Write).
func (buf *Buffer) Matrix() *kernels.Matrix { return buf.w }

// Write replaces the contents.
func (buf *Buffer) Write(src []byte) error {
	if buf.closed.Load() {
		return backend.ErrClosed
	}
	if len(src) != buf.bytes {
		return fmt.Errorf("cpu write %s%s: %w: %d bytes, want %d", buf.dt, buf.shape, backend.ErrShape, len(src), buf.bytes)
	}
	switch buf.dt {
	case backend.F32:
		putF32(buf.data, src)
	case backend.F16, backend.BF16, backend.I32, backend.F8E4M3:
		copy(buf.raw, src)
	default:
		t := mustFormat(buf.dt)
		rows, scale := src, float32(0)
		if t == format.NVFP4 {
			rows = src[:len(src)-4]
			scale = math.Float32frombits(binary.LittleEndian.Uint32(src[len(src)-4:]))
			if !(scale > 0) || math.IsInf(float64(scale), 0) {
				return fmt.Errorf("cpu write %s%s: tensor scale %g is not a positive finite number", buf.dt, buf.shape, scale)
			}
		}
		w, err := kernels.Pack(t, buf.shape[0], buf.shape[1], rows, scale)
		if err != nil {
			return fmt.Errorf("cpu write %s%s: %w", buf.dt, buf.shape, err)
		}
		buf.w = w
	}
	return nil
}

// Read copies the contents out. Weight buffers return ErrUnsupported.
func (buf *Buffer) Read(dst []byte) error {
	if buf.closed.Load() {
		return backend.ErrClosed
	}
	if len(dst) != buf.bytes {
		return fmt.Errorf("cpu read %s%s: %w: %d bytes, want %d", buf.dt, buf.shape, backend.ErrShape, len(dst), buf.bytes)
	}
	switch buf.dt {
	case backend.F32:
		getF32(dst, buf.data)
	case backend.F16, backend.BF16, backend.I32, backend.F8E4M3:
		copy(dst, buf.raw)
	default:
		return fmt.Errorf("cpu read %s: %w: weights are packed", buf.dt, backend.ErrUnsupported)
	}
	return nil
}

// ReadAt copies bytes [off, off+len(dst)) of the host encoding into dst
// (all but weight buffers).
func (buf *Buffer) ReadAt(dst []byte, off int) error {
	if err := buf.checkRange("read", len(dst), off); err != nil {
		return err
	}
	if buf.data != nil {
		getF32(dst, buf.data[off/4:off/4+len(dst)/4])
		return nil
	}
	copy(dst, buf.raw[off:])
	return nil
}

// WriteAt replaces bytes [off, off+len(src)) of the host encoding.
func (buf *Buffer) WriteAt(src []byte, off int) error {
	if err := buf.checkRange("write", len(src), off); err != nil {
		return err
	}
	if buf.data != nil {
		putF32(buf.data[off/4:off/4+len(src)/4], src)
		return nil
	}
	copy(buf.raw[off:], src)
	return nil
}

func (buf *Buffer) checkRange(op string, n, off int) error {
	if buf.closed.Load() {
		return backend.ErrClosed
	}
	if _, weights := buf.dt.Format(); weights {
		return fmt.Errorf("cpu %s %s: %w: weights are packed", op, buf.dt, backend.ErrUnsupported)
	}
	align := 2
	switch buf.dt {
	case backend.F32, backend.I32:
		align = 4
	case backend.F8E4M3:
		align = 1
	}
	if off < 0 || n < 0 || off > buf.bytes-n || off%align != 0 || n%align != 0 {
		return fmt.Errorf("cpu %s %s%s: %w: %d bytes at %d of %d", op, buf.dt, buf.shape, backend.ErrShape, n, off, buf.bytes)
	}
	return nil
}

// Close frees the buffer (a view only stops being usable).
func (buf *Buffer) Close() error {
	if buf.closed.Swap(true) {
		return nil
	}
	if !buf.view {
		buf.b.leaks.Untrack(buf)
	}
	buf.data, buf.raw, buf.w = nil, nil, nil
	return nil
}

// View returns a buffer of the given shape over the start of buf's memory
// (all but weight buffers).
func (buf *Buffer) View(shape backend.Shape) (backend.Buffer, error) {
	if buf.closed.Load() {
		return nil, backend.ErrClosed
	}
	n, err := backend.HostBytes(buf.dt, shape)
	if err != nil {
		return nil, fmt.Errorf("cpu view %s%s: %w", buf.dt, shape, err)
	}
	if buf.w != nil || n > buf.bytes {
		return nil, fmt.Errorf("cpu view %s%s of %s: %w", buf.dt, shape, buf.shape, backend.ErrShape)
	}
	v := &Buffer{b: buf.b, dt: buf.dt, shape: append(backend.Shape(nil), shape...), bytes: n, view: true}
	if buf.data != nil {
		v.data = buf.data[:n/4]
	} else {
		v.raw = buf.raw[:n]
	}
	return v, nil
}

// Bucket returns n: CPU programs are compiled for any size.
func (b *Backend) Bucket(n int) int { return n }

func (buf *Buffer) i32() []int32 {
	if len(buf.raw) == 0 {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&buf.raw[0])), len(buf.raw)/4)
}

// Supports reports whether spec can be compiled.
func (b *Backend) Supports(spec backend.Spec) error {
	if _, _, err := backend.Signature(spec); err != nil {
		return err
	}
	switch spec.Op {
	case backend.OpMatMul, backend.OpEmbed:
		if !hasKernels(spec.Weights) {
			return fmt.Errorf("cpu: %w: no kernels for weight format %s", backend.ErrUnsupported, spec.Weights)
		}
	case backend.OpRMSNorm, backend.OpAdd, backend.OpSwiGLU, backend.OpRoPE, backend.OpKVWrite, backend.OpAttention, backend.OpGather:
	default:
		return fmt.Errorf("cpu: %w: op %s", backend.ErrUnsupported, spec.Op)
	}
	return nil
}

func hasKernels(t format.Type) bool {
	for _, f := range kernels.Formats() {
		if f == t {
			return true
		}
	}
	return false
}

// elemGrain is the number of elements below which an elementwise op or a
// set of normalised rows is not split across threads.
const elemGrain = 1 << 14

// Program is a compiled CPU operation.
type Program struct {
	b       *Backend
	spec    backend.Spec
	in, out []backend.Param
	freqs   []float64 // OpRoPE
	ropes   ropeCache // OpRoPE
	closed  atomic.Bool
}

// Compile prepares a program for spec.
func (b *Backend) Compile(ctx context.Context, spec backend.Spec) (backend.Program, error) {
	if b.closed.Load() {
		return nil, backend.ErrClosed
	}
	if err := b.Supports(spec); err != nil {
		return nil, err
	}
	in, out, _ := backend.Signature(spec)
	p := &Program{b: b, spec: spec, in: in, out: out}
	if r := spec.Rope; spec.Op == backend.OpRoPE {
		p.freqs = kernels.RopeFreqs(r.Dims, float64(r.Base), kernels.RopeScaling{
			Factor: float64(r.Factor), LowFreqFactor: float64(r.LowFreqFactor),
			HighFreqFactor: float64(r.HighFreqFactor), OrigContext: r.OrigContext,
		})
	}
	b.leaks.Track(p, "program "+spec.String())
	return p, nil
}

// Spec returns what the program was compiled for.
func (p *Program) Spec() backend.Spec { return p.spec }

// Close releases the program.
func (p *Program) Close() error {
	if !p.closed.Swap(true) {
		p.b.leaks.Untrack(p)
	}
	return nil
}

// Run executes the program.
func (p *Program) Run(ctx context.Context, in, out []backend.Buffer) error {
	if p.closed.Load() || p.b.closed.Load() {
		return backend.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.CheckRun(p.spec, in, out, p.in, p.out); err != nil {
		return err
	}
	// Signatures have at most 5 inputs and MaxParts outputs: the checked
	// buffers stay on the stack.
	var ibuf [5]*Buffer
	var obuf [backend.MaxParts]*Buffer
	bi, err := p.own(in, ibuf[:0])
	if err != nil {
		return err
	}
	bo, err := p.own(out, obuf[:0])
	if err != nil {
		return err
	}
	s := p.spec
	switch s.Op {
	case backend.OpMatMul:
		return p.matmul(bi, bo)
	case backend.OpRMSNorm:
		x, g, y := bi[0].data, bi[1].data, bo[0].data
		seg := len(g)
		p.b.pool.For(s.M*s.N/seg, max(1, elemGrain/seg), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				p.b.impl.RMSNorm(y[i*seg:(i+1)*seg], x[i*seg:(i+1)*seg], g, s.Eps)
			}
		})
	case backend.OpGather:
		x, y := bi[0].data, bo[0].data
		for i, r := range bi[1].i32() {
			if r < 0 || int(r) >= s.M {
				return fmt.Errorf("run %s: row index %d at %d is outside [0, %d)", s, r, i, s.M)
			}
			copy(y[i*s.N:(i+1)*s.N], x[int(r)*s.N:(int(r)+1)*s.N])
		}
	case backend.OpAdd:
		y, a, c := bo[0].data, bi[0].data, bi[1].data
		p.b.pool.For(len(y), elemGrain, func(lo, hi int) { p.b.impl.Add(y[lo:hi], a[lo:hi], c[lo:hi]) })
	case backend.OpSwiGLU:
		y, gate, up := bo[0].data, bi[0].data, bi[1].data
		p.b.pool.For(len(y), elemGrain, func(lo, hi int) { p.b.impl.SwiGLU(y[lo:hi], gate[lo:hi], up[lo:hi]) })
	case backend.OpEmbed:
		w := bi[1].w
		if w == nil {
			return fmt.Errorf("run %s: embedding table was never written", s)
		}
		y := bo[0].data
		for i, id := range bi[0].i32() {
			if id < 0 || int(id) >= s.N {
				return fmt.Errorf("run %s: token id %d at row %d is outside the vocabulary [0, %d)", s, id, i, s.N)
			}
			w.Row(int(id), y[i*s.K:(i+1)*s.K])
		}
	case backend.OpRoPE:
		x, width, positions := bo[0].data, s.Heads*s.HeadDim, bi[1].i32()
		for i, pos := range positions {
			if pos < 0 {
				return fmt.Errorf("run %s: negative position %d at row %d", s, pos, i)
			}
		}
		p.rope(x[:len(positions)*width], positions)
	case backend.OpKVWrite:
		return p.kvWrite(bi)
	case backend.OpAttention:
		return p.attention(bi, bo[0].data)
	}
	return nil
}

// splitElems caps the elements of x·Wᵀ a split or GLU matmul holds in
// scratch at once: larger steps run in chunks of rows.
const splitElems = 1 << 22

func (p *Program) matmul(bi, bo []*Buffer) error {
	s, impl := p.spec, p.b.impl
	w := bi[1].w
	if w == nil {
		return fmt.Errorf("run %s: weights were never written", s)
	}
	x := bi[0].data
	var bias []float32
	if s.Bias {
		bias = bi[2].data
	}
	if s.Parts == ([backend.MaxParts]int{}) && !s.GLU {
		y := bo[0].data
		impl.MatMul(p.b.pool, y, w, x, s.M)
		for i := 0; bias != nil && i < s.M; i++ {
			impl.Add(y[i*s.N:(i+1)*s.N], y[i*s.N:(i+1)*s.N], bias)
		}
		return nil
	}
	// The whole product goes to scratch, then to the outputs: split by
	// columns (Parts) or through SwiGLU (GLU).
	n := w.N
	rows := max(1, min(s.M, splitElems/n))
	tmp := p.b.scratch(rows * n)
	defer p.b.scratchPool.Put(tmp)
	for r0 := 0; r0 < s.M; r0 += rows {
		m := min(rows, s.M-r0)
		y := (*tmp)[:m*n]
		impl.MatMul(p.b.pool, y, w, x[r0*s.K:(r0+m)*s.K], m)
		if s.GLU {
			out := bo[0].data[r0*s.N:]
			p.b.pool.For(m, max(1, elemGrain/s.N), func(lo, hi int) {
				for i := lo; i < hi; i++ {
					impl.SwiGLU(out[i*s.N:(i+1)*s.N], y[i*n:i*n+s.N], y[i*n+s.N:(i+1)*n])
				}
			})
			continue
		}
		for i := range m {
			row := y[i*n : (i+1)*n]
			if bias != nil {
				impl.Add(row, row, bias)
			}
			off := 0
			for j, o := range bo {
				np := s.Parts[j]
				copy(o.data[(r0+i)*np:(r0+i+1)*np], row[off:off+np])
				off += np
			}
		}
	}
	return nil
}

// scratch returns a scratch slice of n float32s from the backend's pool;
// put it back with scratchPool.Put.
func (b *Backend) scratch(n int) *[]float32 {
	s, _ := b.scratchPool.Get().(*[]float32)
	if s == nil {
		s = new([]float32)
	}
	if cap(*s) < n {
		*s = make([]float32, n)
	}
	*s = (*s)[:n]
	return s
}

func kvOf(buf *Buffer) kernels.KV {
	switch buf.dt {
	case backend.F32:
		return kernels.KV{F32: buf.data}
	case backend.F8E4M3:
		return kernels.KV{E4M3: buf.raw}
	}
	return kernels.KV{BF16: unsafe.Slice((*uint16)(unsafe.Pointer(&buf.raw[0])), len(buf.raw)/2)}
}

func (p *Program) kvWrite(bi []*Buffer) error {
	s := p.spec
	kvw := s.KVHeads * s.HeadDim
	slots := bi[2].i32()
	limit := s.Blocks * s.BlockTokens
	for i, slot := range slots {
		if slot < -1 || int(slot) >= limit {
			return fmt.Errorf("run %s: slot %d at row %d is outside the cache [0, %d)", s, slot, i, limit)
		}
	}
	kc, vc := kvOf(bi[3]), kvOf(bi[4])
	k, v := bi[0].data, bi[1].data
	for i, slot := range slots {
		if slot >= 0 {
			kc.Put(int(slot)*kvw, k[i*kvw:(i+1)*kvw])
			vc.Put(int(slot)*kvw, v[i*kvw:(i+1)*kvw])
		}
	}
	return nil
}

func (p *Program) attention(bi []*Buffer, o []float32) error {
	s := p.spec
	q := bi[0].data
	kc, vc := kvOf(bi[1]), kvOf(bi[2])
	table, seq := bi[3].i32(), bi[4].i32()
	width := s.Heads * s.HeadDim
	// Validate every sequence before any work: rows in range and disjoint,
	// lengths within the table, block ids within the cache.
	owner := make([]int32, s.M)
	for i := range owner {
		owner[i] = -1
	}
	for si := range s.Seqs {
		first, n, total := int(seq[3*si]), int(seq[3*si+1]), int(seq[3*si+2])
		if n == 0 {
			continue
		}
		if n < 0 || first < 0 || first+n > s.M || total < n || total > s.MaxBlocks*s.BlockTokens {
			return fmt.Errorf("run %s: sequence %d (rows %d+%d, %d tokens) does not fit the step or its table", s, si, first, n, total)
		}
		for _, b := range table[si*s.MaxBlocks : si*s.MaxBlocks+(total+s.BlockTokens-1)/s.BlockTokens] {
			if b < 0 || int(b) >= s.Blocks {
				return fmt.Errorf("run %s: sequence %d uses block %d outside the cache [0, %d)", s, si, b, s.Blocks)
			}
		}
		for r := first; r < first+n; r++ {
			if owner[r] >= 0 {
				return fmt.Errorf("run %s: row %d belongs to sequences %d and %d", s, r, owner[r], si)
			}
			owner[r] = int32(si)
		}
	}
	var seqs []kernels.AttnSeq
	for si := range s.Seqs {
		first, n, total := int(seq[3*si]), int(seq[3*si+1]), int(seq[3*si+2])
		if n > 0 {
			seqs = append(seqs, kernels.AttnSeq{Row: first, Rows: n, Len: total, Table: table[si*s.MaxBlocks : (si+1)*s.MaxBlocks]})
		}
	}
	for r, si := range owner {
		if si < 0 {
			clear(o[r*width : (r+1)*width])
		}
	}
	p.b.impl.Attention(p.b.pool, o, q, kc, vc, seqs,
		kernels.AttnShape{Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim, BlockTokens: s.BlockTokens})
	return nil
}

// own checks that every buffer is an open buffer of this backend and
// appends them to out.
func (p *Program) own(bufs []backend.Buffer, out []*Buffer) ([]*Buffer, error) {
	for i, x := range bufs {
		buf, ok := x.(*Buffer)
		if !ok || buf.b != p.b {
			return nil, fmt.Errorf("run %s: %w: buffer %d belongs to another backend", p.spec, backend.ErrSignature, i)
		}
		if buf.closed.Load() {
			return nil, fmt.Errorf("run %s: buffer %d: %w", p.spec, i, backend.ErrClosed)
		}
		out = append(out, buf)
	}
	return out, nil
}

// littleEndian is whether float32s in memory are already in the host
// encoding (little-endian), so that they copy as bytes.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// getF32 encodes src into dst (4·len(src) bytes, little-endian).
func getF32(dst []byte, src []float32) {
	if littleEndian && len(src) > 0 {
		copy(dst, unsafe.Slice((*byte)(unsafe.Pointer(&src[0])), 4*len(src)))
		return
	}
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

// putF32 decodes src (4·len(dst) bytes, little-endian) into dst.
func putF32(dst []float32, src []byte) {
	if littleEndian && len(dst) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)), src)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}
