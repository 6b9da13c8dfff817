package kernels

import (
	"errors"
	"fmt"
	"sync"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// Precision selects how a matmul treats its f32 activations.
type Precision uint8

const (
	// Fast converts activations once per call to what the weight format's
	// fastest path consumes: bf16 for BF16 and FP8 weights (VDPBF16PS), int8
	// per 32-element block with an f32 scale for MXFP4, NVFP4, Q4_0 and Q8_0
	// (VPDPBUSD), f32 for F32 and F16. Relative error against exact f32
	// activations is about 2e-4 for bf16 and 4e-3 for int8 blocks. The
	// AVX2 tier has no bf16 dot product: for BF16 and FP8 weights its Fast
	// runs the Exact path (Matrix.Path reports PathF32FMA).
	Fast Precision = iota
	// Exact keeps activations in f32: each weight is decoded exactly to f32
	// and multiplied with an f32 FMA.
	Exact
)

func (p Precision) String() string {
	switch p {
	case Fast:
		return "fast"
	case Exact:
		return "exact"
	}
	return fmt.Sprintf("Precision(%d)", uint8(p))
}

// Path names the arithmetic a matmul runs on, so benchmarks can compare it
// with the matching compute roof.
type Path uint8

// The compute paths.
const (
	PathF32FMA   Path = iota // f32 multiply-add
	PathBF16Dot              // bf16 pairs dotted into f32 (VDPBF16PS)
	PathInt8Dot              // u8×s8 dot into s32 (VPDPBUSD)
	PathInt8Madd             // u8×s8 through VPMADDUBSW+VPMADDWD (AVX2)
	PathScalar               // generic Go
)

func (p Path) String() string {
	switch p {
	case PathF32FMA:
		return "f32-fma"
	case PathBF16Dot:
		return "bf16-dot"
	case PathInt8Dot:
		return "int8-vnni"
	case PathInt8Madd:
		return "int8-madd"
	case PathScalar:
		return "scalar"
	}
	return fmt.Sprintf("Path(%d)", uint8(p))
}

// Matrix is a weight matrix W of N rows (outputs) by K columns (inputs),
// packed at load time into the layout its format's kernels stream: groups of
// rows interleaved so that one group is one linear read. A Matrix is
// read-only after Pack and safe for concurrent use.
type Matrix struct {
	// Type is the storage format of the weights.
	Type format.Type
	// N and K are the logical shape: N output rows of K elements.
	N, K int
	// Precision selects the activation path (see Precision). It may be
	// changed between calls.
	Precision Precision
	// TensorScale is NVFP4's per-tensor scale (1 for other formats).
	TensorScale float32

	ops   *formatKernels
	group int       // rows per interleaved group
	np    int       // N rounded up to a multiple of group
	kp    int       // K padded as the format's layout needs
	data  []byte    // packed weights
	scale []float32 // per-row or per-block scales, if the layout keeps them apart
	// generic makes every tier run the generic kernels: the weights hold
	// a value the assembly ones cannot take exactly (see e8Fast).
	generic bool
}

// Bytes returns the packed size of the weights (what a GEMV streams).
func (w *Matrix) Bytes() int { return len(w.data) + 4*len(w.scale) }

// Path reports the arithmetic impl runs for this matrix at its Precision.
func (w *Matrix) Path(impl *Impl) Path {
	g, _ := w.ops.lookup(impl.Tier)
	return g.path(w.Precision)
}

// PathFor returns the arithmetic impl's matmul runs for weights of type t
// at precision p (PathScalar for a type without kernels).
func (impl *Impl) PathFor(t format.Type, p Precision) Path {
	f, err := kernelsFor(t)
	if err != nil {
		return PathScalar
	}
	g, _ := f.lookup(impl.Tier)
	return g.path(p)
}

// Row writes row i of W, decoded to f32, into dst[:K]. Embedding lookups
// use it; so do tests as a reference.
func (w *Matrix) Row(i int, dst []float32) {
	if i < 0 || i >= w.N {
		panic("kernels: Matrix.Row: row index out of range")
	}
	if len(dst) < w.K {
		panic("kernels: Matrix.Row: dst shorter than K")
	}
	w.ops.row(w, i, dst[:w.K])
}

// ErrShape reports weights whose shape or size does not fit their format.
var ErrShape = errors.New("kernels: bad weight shape")

// maxElems bounds N*K so that byte offsets never overflow on any platform.
const maxElems = 1 << 40

// Pack builds a Matrix from n rows of k elements in the file encoding of
// type t (format.Type.RowBytes(k) bytes per row, rows in order).
// tensorScale is NVFP4's per-tensor scale (0 means 1) and ignored by other
// formats. Pack copies what it needs; rows may be reused afterwards.
func Pack(t format.Type, n, k int, rows []byte, tensorScale float32) (*Matrix, error) {
	ops, err := kernelsFor(t)
	if err != nil {
		return nil, err
	}
	if n <= 0 || k <= 0 || n > maxElems/k {
		return nil, fmt.Errorf("%w: %s %d×%d", ErrShape, t, n, k)
	}
	if !t.RowOK(k) {
		return nil, fmt.Errorf("%w: %s needs K a multiple of %d, got %d", ErrShape, t, t.BlockElems(), k)
	}
	if want := n * t.RowBytes(k); len(rows) != want {
		return nil, fmt.Errorf("%w: %s %d×%d needs %d bytes, got %d", ErrShape, t, n, k, want, len(rows))
	}
	if tensorScale == 0 {
		tensorScale = 1
	}
	w := &Matrix{Type: t, N: n, K: k, TensorScale: tensorScale, ops: ops}
	ops.pack(w, rows)
	return w, nil
}

// Quantize encodes the n×k row-major matrix src into type t with the
// quantizer options opt and packs it. For NVFP4 an unset opt.TensorScale is
// computed from src.
func Quantize(t format.Type, n, k int, src []float32, opt format.Options) (*Matrix, error) {
	if n <= 0 || k <= 0 || n > maxElems/k || len(src) != n*k {
		return nil, fmt.Errorf("%w: %s %d×%d from %d values", ErrShape, t, n, k, len(src))
	}
	if !t.RowOK(k) {
		return nil, fmt.Errorf("%w: %s needs K a multiple of %d, got %d", ErrShape, t, t.BlockElems(), k)
	}
	if t == format.NVFP4 && opt.TensorScale == 0 {
		opt.TensorScale = format.NVFP4TensorScale(src)
	}
	rb := t.RowBytes(k)
	rows := make([]byte, n*rb)
	for i := range n {
		format.QuantizeRow(t, rows[i*rb:(i+1)*rb], src[i*k:(i+1)*k], opt)
	}
	return Pack(t, n, k, rows, opt.TensorScale)
}

// minParallelMACs is the smallest matmul (in multiply-adds) worth splitting
// across threads.
const minParallelMACs = 1 << 17

// MatMul computes y = x·Wᵀ with impl: x holds m rows of K activations, y
// receives m rows of N outputs (row-major, y[i*N+j] = Σ_k x[i*K+k]·W[j][k]).
// Work is split across p's threads; a nil p runs on the caller. It panics
// if a slice is shorter than its shape needs.
func (impl *Impl) MatMul(p *Pool, y []float32, w *Matrix, x []float32, m int) {
	if m < 0 || len(x) < m*w.K || len(y) < m*w.N {
		panic("kernels: MatMul: slice length does not match shape")
	}
	if m == 0 {
		return
	}
	g, _ := w.ops.lookup(impl.Tier)
	s := getScratch()
	defer putScratch(s)
	if m*w.N*w.K < minParallelMACs {
		p = nil
	}
	if g.prep != nil {
		g.prep(p, w, x[:m*w.K], m, s)
	}
	p.For(w.N, w.group, func(n0, n1 int) {
		g.rows(w, y, x, m, n0, n1, s)
	})
}

// prepGrain is the fewest activations worth a thread of their own when
// an activation preparation is split (about 4 µs of quantizing).
const prepGrain = 1 << 15

// forPrep runs fn over rows [0, m) of k activations each, in runs of
// whole units of unit rows (the last run ends at m): on p's threads, as
// many as have prepGrain activations each, or on the caller alone.
// Preparing a prefill's activations on the caller alone left the other
// threads idle (M = 512, K = 2048: 130 µs per matmul), long enough for
// them to block and need waking for the rows.
func forPrep(p *Pool, m, unit, k int, fn func(i0, i1 int)) {
	units := (m + unit - 1) / unit
	t := min(p.Threads(), units*unit*k/prepGrain, units)
	if t <= 1 {
		if m > 0 {
			fn(0, m)
		}
		return
	}
	p.For(units, (units+t-1)/t, func(lo, hi int) {
		fn(lo*unit, min(m, hi*unit))
	})
}

// MatMul runs the Active Impl's MatMul on the DefaultPool.
func MatMul(y []float32, w *Matrix, x []float32, m int) {
	Active().MatMul(DefaultPool(), y, w, x, m)
}

// gemm is one format's matmul at one tier.
type gemm struct {
	// path reports the arithmetic used at a precision.
	path func(Precision) Path
	// prep, if set, converts the m×K activations once per call into s
	// (bf16, int8 blocks, padded f32, ...), on p's threads (see forPrep).
	// It runs before the rows calls.
	prep func(p *Pool, w *Matrix, x []float32, m int, s *scratch)
	// rows computes y[i*N+j] for i < m and n0 <= j < n1. n0 is a multiple
	// of w.group; n1 is one too, or N. Calls for disjoint ranges run
	// concurrently and must only read s.
	rows func(w *Matrix, y, x []float32, m, n0, n1 int, s *scratch)
}

// formatKernels is everything the kernels know about one weight format.
type formatKernels struct {
	// pack sets w.group, w.np, w.kp, w.data and w.scale from rows in the
	// file encoding (length already checked).
	pack func(w *Matrix, rows []byte)
	// row decodes packed row i into dst (len K).
	row func(w *Matrix, i int, dst []float32)
	// tiers holds the gemm of each tier; a nil entry falls back to the next
	// lower tier. tiers[Generic] is always set.
	tiers [numTiers]*gemm
}

// lookup returns the gemm for tier, falling back to lower tiers, and the
// tier it belongs to.
func (f *formatKernels) lookup(t Tier) (*gemm, Tier) {
	for ; t > Generic; t-- {
		if g := f.tiers[t]; g != nil {
			return g, t
		}
	}
	return f.tiers[Generic], Generic
}

var (
	registryMu sync.Mutex
	registry   = map[format.Type]*formatKernels{}
)

// entry returns format t's registry entry, creating it. Callers hold
// registryMu.
func entry(t format.Type) *formatKernels {
	f := registry[t]
	if f == nil {
		f = &formatKernels{}
		registry[t] = f
	}
	return f
}

// registerFormat adds format t's packing, row decoding and generic gemm.
// Called from init.
func registerFormat(t format.Type, pack func(w *Matrix, rows []byte), row func(w *Matrix, i int, dst []float32), generic *gemm) {
	registryMu.Lock()
	defer registryMu.Unlock()
	f := entry(t)
	if f.pack != nil {
		panic("kernels: format registered twice: " + t.String())
	}
	f.pack, f.row, f.tiers[Generic] = pack, row, generic
}

// registerTier adds format t's gemm for an assembly tier. Called from init,
// in any order relative to registerFormat.
func registerTier(t format.Type, tier Tier, g *gemm) {
	registryMu.Lock()
	defer registryMu.Unlock()
	f := entry(t)
	if tier == Generic || f.tiers[tier] != nil {
		panic("kernels: tier registered twice for " + t.String())
	}
	f.tiers[tier] = g
}

// Formats returns the weight formats that have kernels.
func Formats() []format.Type {
	var out []format.Type
	for _, t := range format.Types() {
		if _, err := kernelsFor(t); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// TierFor reports which tier actually runs format t under impl (lower than
// impl's own when the format has no kernel at that tier).
func (impl *Impl) TierFor(t format.Type) Tier {
	f, err := kernelsFor(t)
	if err != nil {
		return Generic
	}
	_, tier := f.lookup(impl.Tier)
	return tier
}

func kernelsFor(t format.Type) (*formatKernels, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	f := registry[t]
	if f == nil || f.pack == nil {
		return nil, fmt.Errorf("kernels: no matmul kernels for weight format %s", t)
	}
	return f, nil
}
