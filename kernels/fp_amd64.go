//go:build amd64 && gc && !noasm

package kernels

import (
	"math"
	"unsafe"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

//go:generate go run ./internal/asmgen/cmd -out .

// fpKernel is the signature of the generated float-format kernels
// (fpkern_amd64.go): groups groups of fpGroup packed rows at w, gstride
// bytes apart (E8M0 scales at sc, gstride/32 bytes apart, for MX; for
// the kernels with asmgen's pfNext, bytes at sc, walked like w, to prefetch;
// decode tables at tab for the AVX-512 FP8 kernels; row multipliers at rmul),
// against mb activation rows at x (xstride bytes apart), over chunks 64-byte
// chunks of each row; the fpGroup outputs of each group and activation row
// are stored to y (rows ystride bytes apart), or added to it if accum != 0.
type fpKernel func(w, sc, tab *byte, rmul *float32, x *byte, y *float32, groups, chunks, xstride, ystride, gstride, accum int)

// Activation layouts the kernels read (per 64-element chunk for the
// permuted ones; see fp8ToBF16 and fp8ToF32 in internal/asmgen).
const (
	actF32      = iota // f32, natural order
	actBF16            // bf16, natural order
	actBF16Perm        // bf16, position v*32+8L+j holds element 16L+8v+j
	actF32Perm         // f32, position v*16+4L+j holds element 16L+4v+j
)

// fpAsm is one assembly kernel family with its activation layout.
type fpAsm struct {
	ks  []fpKernel // for mb = 1, 2, 4, 6 (as many as generated)
	act int
	tab *[256]byte
	// scaled, if set, replaces this family for MX matrices whose scales
	// can be applied to the bf16 weights (Matrix.mxScaledOK).
	scaled *fpAsm
}

// fp8Tabs holds, for E4M3 and E5M2, the bf16 of codes 0..127: high bytes
// (0:128), then low bytes (128:256). The sign bit is ORed in separately.
var fp8Tabs = func() (t [2][256]byte) {
	for c := range 128 {
		for i, v := range [2]float32{format.E4M3Table[c], format.E5M2Table[c]} {
			b := math.Float32bits(v)
			t[i][c], t[i][128+c] = byte(b>>24), byte(b>>16)
		}
	}
	return t
}()

func fp8Tab(t format.Type) *[256]byte {
	if t == format.MXF8E5M2 {
		return &fp8Tabs[1]
	}
	return &fp8Tabs[0]
}

func init() {
	f32Path := func(Precision) Path { return PathF32FMA }
	bf16Path := func(p Precision) Path {
		if p == Fast {
			return PathBF16Dot
		}
		return PathF32FMA
	}
	reg := func(t format.Type, tier Tier, path func(Precision) Path, fast, exact *fpAsm) {
		registerTier(t, tier, &gemm{
			path: path,
			prep: func(p *Pool, w *Matrix, x []float32, m int, s *scratch) {
				a := exact
				if w.Precision == Fast {
					a = fast
				}
				prepAct(p, a.act, w, x, m, s)
			},
			rows: func(w *Matrix, y, x []float32, m, n0, n1 int, s *scratch) {
				a := exact
				if w.Precision == Fast {
					a = fast
				}
				a.rows(w, y, m, n0, n1, s)
			},
		})
	}
	k512 := func(a, b, c fpKernel) []fpKernel { return []fpKernel{a, b, c} }
	k2 := func(a, b fpKernel) []fpKernel { return []fpKernel{a, b} }

	// AVX-512.
	fp8Dot := &fpAsm{ks: k512(fp8DotAVX512m1, fp8DotAVX512m2, fp8DotAVX512m4), act: actBF16Perm}
	fp8FMA := &fpAsm{ks: k512(fp8FMAAVX512m1, fp8FMAAVX512m2, fp8FMAAVX512m4), act: actF32Perm}
	reg(format.F8E4M3Row, AVX512, bf16Path, fp8Dot.with(&fp8Tabs[0]), fp8FMA.with(&fp8Tabs[0]))
	mxDot := &fpAsm{ks: k512(fp8DotMXAVX512m1, fp8DotMXAVX512m2, fp8DotMXAVX512m4), act: actBF16Perm,
		scaled: &fpAsm{ks: k512(fp8DotMXAVX512m1, fp8DotMXSAVX512m2, fp8DotMXSAVX512m4), act: actBF16Perm}}
	mxFMA := &fpAsm{ks: k512(fp8FMAMXAVX512m1, fp8FMAMXAVX512m2, fp8FMAMXAVX512m4), act: actF32Perm}
	for _, t := range []format.Type{format.MXF8E4M3, format.MXF8E5M2} {
		reg(t, AVX512, bf16Path, mxDot.with(fp8Tab(t)), mxFMA.with(fp8Tab(t)))
	}
	bf16Dot := &fpAsm{ks: []fpKernel{bf16DotAVX512m1, bf16DotAVX512m2, bf16DotAVX512m4, bf16DotAVX512m6}, act: actBF16}
	bf16FMA := &fpAsm{ks: k512(bf16FMAAVX512m1, bf16FMAAVX512m2, bf16FMAAVX512m4), act: actF32}
	reg(format.BF16, AVX512, bf16Path, bf16Dot, bf16FMA)
	f16 := &fpAsm{ks: k512(f16FMAAVX512m1, f16FMAAVX512m2, f16FMAAVX512m4), act: actF32}
	reg(format.F16, AVX512, f32Path, f16, f16)
	f32 := &fpAsm{ks: []fpKernel{f32FMAAVX512m1, f32FMAAVX512m2, f32FMAAVX512m4, f32FMAAVX512m6}, act: actF32}
	reg(format.F32, AVX512, f32Path, f32, f32)

	// AVX2 has no bf16 dot: Fast runs the exact f32 path.
	e4m3 := &fpAsm{ks: k2(e4m3FMAAVX2m1, e4m3FMAAVX2m2), act: actF32}
	reg(format.F8E4M3Row, AVX2, f32Path, e4m3, e4m3)
	e4m3MX := &fpAsm{ks: k2(e4m3FMAMXAVX2m1, e4m3FMAMXAVX2m2), act: actF32}
	reg(format.MXF8E4M3, AVX2, f32Path, e4m3MX, e4m3MX)
	e5m2MX := &fpAsm{ks: k2(e5m2FMAMXAVX2m1, e5m2FMAMXAVX2m2), act: actF32}
	reg(format.MXF8E5M2, AVX2, f32Path, e5m2MX, e5m2MX)
	bf16 := &fpAsm{ks: k2(bf16FMAAVX2m1, bf16FMAAVX2m2), act: actF32}
	reg(format.BF16, AVX2, f32Path, bf16, bf16)
	f16x := &fpAsm{ks: k2(f16FMAAVX2m1, f16FMAAVX2m2), act: actF32}
	reg(format.F16, AVX2, f32Path, f16x, f16x)
	f32x := &fpAsm{ks: k2(f32FMAAVX2m1, f32FMAAVX2m2), act: actF32}
	reg(format.F32, AVX2, f32Path, f32x, f32x)
}

func (a *fpAsm) with(tab *[256]byte) *fpAsm {
	b := *a
	b.tab = tab
	if a.scaled != nil {
		b.scaled = a.scaled.with(tab)
	}
	return &b
}

// Position permutations of the activation layouts inside a 64-element
// chunk: perm[p] is the element stored at position p.
var fastPerm, exactPerm = func() (fast, exact [64]int) {
	for v := range 2 {
		for l := range 4 {
			for j := range 8 {
				fast[v*32+8*l+j] = 16*l + 8*v + j
			}
		}
	}
	for v := range 4 {
		for l := range 4 {
			for j := range 4 {
				exact[v*16+4*l+j] = 16*l + 4*v + j
			}
		}
	}
	return fast, exact
}()

// actPad is the padding (elements) after each activation row of the
// assembly kernels: with rows a power of two bytes long, the rows a kernel
// reads together would map to the same L1 sets.
const actPad = 128

// actStride returns the distance, in elements, between the activation rows
// prepAct writes for w.
func actStride(w *Matrix) int { return w.kp + actPad }

// prepAct converts x into the activation layout kind, rows of w.kp
// elements, zero padded, actStride(w) elements apart, in s.u16 (bf16) or
// s.f32.
func prepAct(p *Pool, kind int, w *Matrix, x []float32, m int, s *scratch) {
	kp, k, st := w.kp, w.K, actStride(w)
	switch kind {
	case actBF16, actBF16Perm:
		s.u16 = grow(s.u16, m*st)
		raceReadSlice(x[:m*k])
		forPrep(p, m, 1, k, func(i0, i1 int) {
			for i := i0; i < i1; i++ {
				prepBF16Row(kind, x[i*k:(i+1)*k], s.u16[i*st:i*st+kp])
			}
		})
	default:
		s.f32 = grow(s.f32, m*st)
		forPrep(p, m, 1, k, func(i0, i1 int) {
			for i := i0; i < i1; i++ {
				prepF32Row(kind, x[i*k:(i+1)*k], s.f32[i*st:i*st+kp])
			}
		})
	}
}

// prepBF16Row converts one activation row xr into out (len w.kp) as
// prepAct's bf16 layouts.
func prepBF16Row(kind int, xr []float32, out []uint16) {
	k, kp := len(xr), len(out)
	if kind == actBF16 {
		n := k / 16 * 16
		if n > 0 {
			cvtBF16AVX512(&xr[0], &out[0], n/16)
		}
		for j, v := range xr[n:] {
			out[n+j] = toBF16(v)
		}
		clear(out[k:])
		return
	}
	full := k / 64 * 64
	if full > 0 {
		cvtBF16PermAVX512(&xr[0], &out[0], full/64)
	}
	for c := full; c < kp; c += 64 { // a last, partial chunk
		for p, e := range &fastPerm {
			out[c+p] = 0
			if c+e < k {
				out[c+p] = toBF16(xr[c+e])
			}
		}
	}
}

// prepF32Row copies one activation row xr into out (len w.kp) as
// prepAct's f32 layouts.
func prepF32Row(kind int, xr, out []float32) {
	k, kp := len(xr), len(out)
	if kind == actF32 {
		copy(out, xr)
		clear(out[k:])
		return
	}
	for c := 0; c < kp; c += 64 {
		if c+64 <= k {
			src := xr[c : c+64]
			for p, e := range &exactPerm {
				out[c+p] = src[e]
			}
			continue
		}
		for p, e := range &exactPerm {
			out[c+p] = 0
			if c+e < k {
				out[c+p] = xr[c+e]
			}
		}
	}
}

// Cache blocking of the GEMM loops (m above one kernel call): K is cut in
// blocks whose activations for one kernel call (up to 4 rows) fit in about
// fpActL1 bytes of L1; within a K block, activation rows are taken in
// blocks of about fpActBlock bytes (kept in L2) and weight groups in blocks
// of about fpWeightBlock bytes, which every activation row of the block
// reuses from L2. K blocks after the first add to y. Batch 1 (and up to 4)
// streams each group whole, in order.
//
// Above one kernel call and up to fpSmallM rows (batched decode), the
// weights stream from memory and each block serves only a few kernel calls:
// blocks are fpWeightBlockSmall bytes. Above one kernel call, the kernels
// that can (asmgen's pfNext) prefetch the next block into L2 while they run
// over this one from cache.
const (
	fpActBlock         = 512 << 10
	fpWeightBlock      = 256 << 10
	fpWeightBlockSmall = 32 << 10
	fpSmallM           = 16
	fpActL1            = 16 << 10
)

// rows computes y for activation rows [0, m) and outputs [n0, n1) from the
// activations prepAct left in s.
func (a *fpAsm) rows(w *Matrix, y []float32, m, n0, n1 int, s *scratch) {
	if a.scaled != nil && w.mxScaledOK() {
		a = a.scaled
	}
	var xb []byte
	var xstride int
	if a.act == actBF16 || a.act == actBF16Perm {
		xb = unsafe.Slice((*byte)(unsafe.Pointer(&s.u16[0])), 2*len(s.u16))
		xstride = 2 * actStride(w)
	} else {
		xb = unsafe.Slice((*byte)(unsafe.Pointer(&s.f32[0])), 4*len(s.f32))
		xstride = 4 * actStride(w)
	}
	l := w.fpLayout()
	chunks := l.rowBytes / fpChunk
	actChunk := xstride / actStride(w) * w.kp / chunks // activation bytes per chunk
	gb := l.groupBytes()
	mx := fpInfos[w.Type].mx
	codes := w.np * w.kp * fpInfos[w.Type].elemBytes
	var tab *byte
	if a.tab != nil {
		tab = &a.tab[0]
	}
	g0, g1 := n0/fpGroup, n1/fpGroup // full groups
	tail := n1 - g1*fpGroup          // rows of a last, partial group
	raceReadSlice(w.data)
	raceReadSlice(w.scale)
	raceReadSlice(xb)
	for i := range m {
		raceWriteSlice(y[i*w.N+n0 : i*w.N+n1])
	}

	mbs := []int{1, 2, 4, 6}[:len(a.ks)]
	maxMB := mbs[len(mbs)-1]
	kc := chunks
	if m > maxMB {
		kc = min(chunks, max(1, fpActL1/(maxMB*actChunk)))
	}
	mc := max(maxMB, fpActBlock/(kc*actChunk)/maxMB*maxMB)
	wblock := fpWeightBlock
	if m > maxMB && m <= fpSmallM {
		wblock = fpWeightBlockSmall
	}
	ncg := max(1, wblock/(fpGroup*fpChunk*kc))
	// kern runs activation rows [i, i+mb) against groups [g, g+ng) over
	// chunks [c, c+nc); pf is where a kernel with asmgen's pfNext starts
	// prefetching (the next block of weights, or this one).
	kern := func(i, mb, g, ng, c, nc int, yp *float32, ystride int, pf *byte) {
		k := a.ks[0]
		for j, v := range mbs {
			if v == mb {
				k = a.ks[j]
			}
		}
		off := g*gb + c*fpGroup*fpChunk
		sc := pf
		if mx {
			sc = &w.data[codes+off/32]
		}
		accum := 0
		if c > 0 {
			accum = 1
		}
		k(&w.data[off], sc, tab, &w.scale[g*fpGroup], &xb[i*xstride+c*actChunk], yp,
			ng, nc, xstride, ystride, gb, accum)
	}
	step := func(left int) int {
		for j := len(mbs) - 1; j > 0; j-- {
			if left >= mbs[j] {
				return mbs[j]
			}
		}
		return 1
	}
	// Within a block of activation rows the smaller kernels run first, and
	// the last two calls prefetch the next weight block (blocks go by
	// groups, then by chunks) so that it streams from memory while they
	// run from cache.
	first := func(left int) int {
		if r := left % maxMB; left > maxMB && r > 0 {
			return step(r)
		}
		return step(left)
	}
	for c := 0; c < chunks; c += kc {
		nc := min(kc, chunks-c)
		for i0 := 0; i0 < m; i0 += mc {
			i1 := min(m, i0+mc)
			for gb0 := g0; gb0 < g1; gb0 += ncg {
				ng := min(ncg, g1-gb0)
				here := &w.data[gb0*gb+c*fpGroup*fpChunk]
				next := here
				switch {
				case m <= maxMB:
				case gb0+ncg < g1:
					next = &w.data[(gb0+ncg)*gb+c*fpGroup*fpChunk]
				case c+kc < chunks:
					next = &w.data[g0*gb+(c+kc)*fpGroup*fpChunk]
				}
				for i := i0; i < i1; {
					mb := first(i1 - i)
					pf := here
					if i+mb > i1-2*maxMB {
						pf = next
					}
					kern(i, mb, gb0, ng, c, nc, &y[i*w.N+gb0*fpGroup], 4*w.N, pf)
					i += mb
				}
			}
		}
	}
	if tail > 0 {
		var tmp [6 * fpGroup]float32
		for i := 0; i < m; {
			mb := step(m - i)
			kern(i, mb, g1, 1, 0, chunks, &tmp[0], 4*fpGroup, &w.data[g1*gb])
			for ii := range mb {
				copy(y[(i+ii)*w.N+g1*fpGroup:(i+ii)*w.N+n1], tmp[ii*fpGroup:])
			}
			i += mb
		}
	}
}
