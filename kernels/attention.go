package kernels

import (
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// RopeScaling is Llama 3's rotary frequency scaling; the zero value means
// none.
type RopeScaling struct {
	Factor, LowFreqFactor, HighFreqFactor float64
	OrigContext                           int
}

// RopeFreqs returns the rotation frequencies θ_i = base^(−2i/dims) for
// i < dims/2, adjusted by s as Llama 3 does: wavelengths shorter than
// OrigContext/HighFreqFactor keep their frequency, longer than
// OrigContext/LowFreqFactor are divided by Factor, and those between are
// interpolated smoothly.
func RopeFreqs(dims int, base float64, s RopeScaling) []float64 {
	f := make([]float64, dims/2)
	for i := range f {
		f[i] = math.Pow(base, -2*float64(i)/float64(dims))
	}
	if s.Factor == 0 {
		return f
	}
	lowWave := float64(s.OrigContext) / s.LowFreqFactor
	highWave := float64(s.OrigContext) / s.HighFreqFactor
	for i, freq := range f {
		wave := 2 * math.Pi / freq
		switch {
		case wave < highWave:
		case wave > lowWave:
			f[i] = freq / s.Factor
		default:
			smooth := (float64(s.OrigContext)/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			f[i] = (1-smooth)*freq/s.Factor + smooth*freq
		}
	}
	return f
}

// RoPE rotates x with the Active Impl (see Impl.RoPE).
func RoPE(x []float32, heads, headDim, pos int, freqs []float64, neox bool) {
	Active().RoPE(x, heads, headDim, pos, freqs, neox)
}

// RoPE rotates each of the heads in x (heads·headDim values, one token) by
// angle pos·freqs[i] on dimension pairs (2i, 2i+1), or (i, i+len(freqs))
// when neox is set. Dimensions past 2·len(freqs) pass through. The angles
// and their sines and cosines are computed once per call in float64 and
// rounded to float32; each rotated value is then x0·cos − x1·sin (or
// x0·sin + x1·cos) with float32 products, the same in every tier.
func (impl *Impl) RoPE(x []float32, heads, headDim, pos int, freqs []float64, neox bool) {
	half := len(freqs)
	if len(x) != heads*headDim || 2*half > headDim {
		panic("kernels: RoPE: slice length does not match")
	}
	var buf [512]float32
	var cs []float32
	if 4*half <= len(buf) {
		cs = buf[:4*half]
	} else {
		cs = make([]float32, 4*half)
	}
	ropeTable(cs, pos, freqs, neox)
	impl.ops().rope(x, heads, headDim, cs, neox)
}

// RoPETableLen returns the length of a rotation table for freqs.
func RoPETableLen(freqs []float64) int { return 4 * len(freqs) }

// RoPETable fills cs (RoPETableLen(freqs) floats) with the rotation of
// position pos, for RoPEWith: a caller that rotates many rows at the same
// positions (every layer of a forward pass does) computes the sines and
// cosines once.
func RoPETable(cs []float32, pos int, freqs []float64, neox bool) {
	if len(cs) != 4*len(freqs) {
		panic("kernels: RoPETable: table length does not match")
	}
	ropeTable(cs, pos, freqs, neox)
}

// RoPEWith rotates x as RoPE does, with the table RoPETable filled for the
// position, frequencies and layout: the result is bit for bit RoPE's.
func (impl *Impl) RoPEWith(x []float32, heads, headDim int, cs []float32, neox bool) {
	if len(x) != heads*headDim || len(cs)%4 != 0 || len(cs)/2 > headDim {
		panic("kernels: RoPEWith: slice length does not match")
	}
	impl.ops().rope(x, heads, headDim, cs, neox)
}

// ropeTable fills cs (4·len(freqs) floats) with the rotation of position
// pos in the layout the rope kernels read: cosines in cs[:2h] and signed
// sines in cs[2h:], h = len(freqs). For pairs (2i, 2i+1) both entries of a
// pair repeat: c = (cos, cos), s = (−sin, sin), so that y = x·c + swap(x)·s.
// For neox, cs[i] = cos and cs[2h+i] = sin for i < h.
func ropeTable(cs []float32, pos int, freqs []float64, neox bool) {
	h := len(freqs)
	for i, f := range freqs {
		s, c := math.Sincos(float64(pos) * f)
		if neox {
			cs[i], cs[2*h+i] = float32(c), float32(s)
			continue
		}
		cs[2*i], cs[2*i+1] = float32(c), float32(c)
		cs[2*h+2*i], cs[2*h+2*i+1] = -float32(s), float32(s)
	}
}

func ropeGeneric(x []float32, heads, headDim int, cs []float32, neox bool) {
	if neox {
		ropeNeoxTail(x, heads, headDim, cs, 0)
	} else {
		ropeNormTail(x, heads, headDim, cs, 0)
	}
}

// ropeNormTail rotates dimensions [from, 2h) of each head (from even).
func ropeNormTail(x []float32, heads, headDim int, cs []float32, from int) {
	h := len(cs) / 4
	c, s := cs[:2*h], cs[2*h:]
	for hd := range heads {
		v := x[hd*headDim : hd*headDim+2*h]
		for i := from; i < 2*h; i += 2 {
			x0, x1 := v[i], v[i+1]
			v[i] = x0*c[i] + x1*s[i]
			v[i+1] = x1*c[i+1] + x0*s[i+1]
		}
	}
}

// ropeNeoxTail rotates pairs (i, i+h) for i in [from, h) of each head.
func ropeNeoxTail(x []float32, heads, headDim int, cs []float32, from int) {
	h := len(cs) / 4
	c, s := cs[:h], cs[2*h:3*h]
	for hd := range heads {
		v := x[hd*headDim : hd*headDim+2*h]
		for i := from; i < h; i++ {
			x0, x1 := v[i], v[i+h]
			v[i] = x0*c[i] - x1*s[i]
			v[i+h] = x0*s[i] + x1*c[i]
		}
	}
}

// KV is a cache's storage: exactly one of F32, BF16 and E4M3 is set. Rows
// are [blocks, blockTokens, kvHeads·headDim]. E4M3 holds OCP FP8 E4M3
// codes with no scale: values beyond ±448 saturate, NaN stays NaN.
type KV struct {
	F32  []float32
	BF16 []uint16
	E4M3 []uint8
}

// Len returns the number of elements.
func (kv KV) Len() int {
	switch {
	case kv.F32 != nil:
		return len(kv.F32)
	case kv.BF16 != nil:
		return len(kv.BF16)
	}
	return len(kv.E4M3)
}

// valid reports whether exactly one storage is set.
func (kv KV) valid() bool {
	f, b, e := kv.F32 != nil, kv.BF16 != nil, kv.E4M3 != nil
	return f && !b && !e || !f && b && !e || !f && !b && e
}

// sameType reports whether kv and o have the same storage type.
func (kv KV) sameType(o KV) bool {
	return (kv.F32 == nil) == (o.F32 == nil) && (kv.BF16 == nil) == (o.BF16 == nil) && (kv.E4M3 == nil) == (o.E4M3 == nil)
}

// row returns n values starting at element off, decoded into buf if the
// cache is not f32.
func (kv KV) row(off, n int, buf []float32) []float32 {
	switch {
	case kv.F32 != nil:
		return kv.F32[off : off+n]
	case kv.BF16 != nil:
		for i, b := range kv.BF16[off : off+n] {
			buf[i] = format.BF16ToFloat32(b)
		}
	default:
		for i, c := range kv.E4M3[off : off+n] {
			buf[i] = format.E4M3Table[c]
		}
	}
	return buf[:n]
}

// addr returns the address of element off and the element size in bytes.
func (kv KV) addr(off int) (*byte, int) {
	switch {
	case kv.F32 != nil:
		return (*byte)(unsafe.Pointer(&kv.F32[off])), 4
	case kv.BF16 != nil:
		return (*byte)(unsafe.Pointer(&kv.BF16[off])), 2
	}
	return &kv.E4M3[off], 1
}

// Put stores v at element offset off.
func (kv KV) Put(off int, v []float32) {
	switch {
	case kv.F32 != nil:
		copy(kv.F32[off:off+len(v)], v)
	case kv.BF16 != nil:
		for i, x := range v {
			kv.BF16[off+i] = format.Float32ToBF16(x)
		}
	default:
		dst := kv.E4M3[off : off+len(v)]
		for i, x := range v {
			dst[i] = float32ToE4M3(x)
		}
	}
}

// float32ToE4M3 is format.Float32ToE4M3 (round to nearest even, saturate
// at ±448, NaN to NaN) on the float32 bits, fast enough for every KV
// write.
func float32ToE4M3(x float32) uint8 {
	b := math.Float32bits(x)
	sign := uint8(b>>24) & 0x80
	a := b &^ (1 << 31)
	switch {
	case a > 0x7f800000: // NaN
		return sign | 0x7f
	case a >= 0x43e80000: // ≥ 464, the midpoint of 448 and 480: saturate
		return sign | 0x7e
	case a < 0x3c800000: // < 2^-6: subnormal codes, steps of 2^-9
		// x·2^9 rounded to even, exact in float32 arithmetic.
		q := math.Float32frombits(a) * 512
		r := uint8(q)
		if f := q - float32(r); f > 0.5 || (f == 0.5 && r&1 == 1) {
			r++
		}
		return sign | r
	}
	// Normal: keep 3 mantissa bits, rounding to nearest even; a carry
	// moves into the exponent, as it should.
	a += 0x7ffff + (a>>20)&1
	return sign | uint8((a>>20)-(120<<3))
}

// AttnShape is the geometry of attention over a paged KV cache: query
// heads, KV heads (grouped-query: query head h reads KV head
// h/(Heads/KVHeads)), the head dimension and the tokens per cache block.
type AttnShape struct {
	Heads, KVHeads, HeadDim, BlockTokens int
}

// AttnSeq is one sequence's part of a step: its query rows [Row, Row+Rows)
// and, after the step, Len tokens in the cache blocks listed in Table. Row
// j is at position Len−Rows+j and attends to positions 0 through that one.
type AttnSeq struct {
	Row, Rows, Len int
	Table          []int32
}

// Attention runs Impl.Attention with the Active Impl.
func Attention(p *Pool, o, q []float32, k, v KV, seqs []AttnSeq, sh AttnShape) {
	Active().Attention(p, o, q, k, v, seqs, sh)
}

// Attention computes causal attention for every query row of seqs: with
// width = Heads·HeadDim, row r of q and o is q[r·width:(r+1)·width], and
// head h of a row at position P gets
//
//	o[h] = Σ_{p≤P} softmax_p(q[h]·k_p[g]/sqrt(HeadDim)) · v_p[g],  g = h/(Heads/KVHeads)
//
// with k_p, v_p the rows of position p in the sequence's cache blocks.
// Rows of o that no sequence owns are left alone. The work is scheduled
// dynamically over the Pool's threads (nil: the caller's) in items of one
// sequence, one KV head and a tile of rows (each sequence's last, largest,
// tiles first); the result does not depend on the number of threads.
//
// The generic tier runs a one-pass online softmax per row and head in
// float32 with math.Exp (items are rows). The assembly tiers run flash
// attention: the query heads of a KV head and a tile of rows (about 64
// query vectors) together against each cache block, so every K/V row
// loaded serves the whole group and tile (AVX-512 reads a bf16 cache in
// place, widening each vector as it loads it; other cache types are
// widened once per block); the scores are SIMD dot products (AVX-512:
// from 8 query vectors against the block transposed once per tile, keys
// in the vector lanes; below that four query vectors and four keys at a
// time), the softmax runs on up to four blocks at a time with the
// vectorised exp of Impl.Exp, and the weighted sum of V is SIMD
// multiply-adds. Results agree with the generic tier within a few
// 1e−6·(1+|o|). A NaN in a query, or in a key or value a head attends to,
// makes that head's output NaN.
//
// The sequences' rows must not overlap. Attention panics if a sequence's
// rows are outside q, or its Len exceeds its table or a block id is outside
// the cache.
func (impl *Impl) Attention(p *Pool, o, q []float32, k, v KV, seqs []AttnSeq, sh AttnShape) {
	width := sh.Heads * sh.HeadDim
	if sh.KVHeads <= 0 || sh.HeadDim <= 0 || sh.BlockTokens <= 0 || sh.Heads%sh.KVHeads != 0 ||
		len(q) != len(o) || len(q)%max(width, 1) != 0 || !k.valid() || !k.sameType(v) || k.Len() != v.Len() {
		panic("kernels: Attention: bad shape")
	}
	blockElems := sh.BlockTokens * sh.KVHeads * sh.HeadDim
	rows := len(q) / max(width, 1)
	pr := impl.ops().attn
	group := sh.Heads / sh.KVHeads
	tile, perTile := 1, 1
	if pr != nil {
		// A tile of rows holds about 64 query vectors of one KV head.
		tile, perTile = max(1, 64/group), sh.KVHeads
	}
	n := 0
	for _, s := range seqs {
		n += (max(s.Rows, 0) + tile - 1) / tile * perTile
	}
	items := make([]attnItem, 0, n)
	for si, s := range seqs {
		if s.Rows == 0 {
			continue
		}
		if s.Rows < 0 || s.Row < 0 || s.Row+s.Rows > rows || s.Len < s.Rows || s.Len > len(s.Table)*sh.BlockTokens {
			panic("kernels: Attention: sequence does not fit")
		}
		for _, b := range s.Table[:(s.Len+sh.BlockTokens-1)/sh.BlockTokens] {
			if b < 0 || (int(b)+1)*blockElems > k.Len() {
				panic("kernels: Attention: block outside the cache")
			}
		}
		// Tiles from the last (the most keys) to the first, so that the
		// dynamic schedule starts with the largest items.
		for r1 := s.Rows; r1 > 0; r1 -= tile {
			r0 := max(0, r1-tile)
			if pr == nil {
				items = append(items, attnItem{seq: int32(si), g: -1, r0: int32(r0), r1: int32(r1)})
				continue
			}
			for g := range sh.KVHeads {
				items = append(items, attnItem{seq: int32(si), g: int32(g), r0: int32(r0), r1: int32(r1)})
			}
		}
	}
	if len(items) == 0 {
		return
	}
	var next atomic.Int64
	p.For(min(p.Threads(), len(items)), 1, func(_, _ int) {
		sc := attnScratchPool.Get().(*attnScratch)
		defer attnScratchPool.Put(sc)
		for {
			i := int(next.Add(1)) - 1
			if i >= len(items) {
				return
			}
			it := items[i]
			s := seqs[it.seq]
			if pr == nil {
				for r := int(it.r0); r < int(it.r1); r++ {
					row := s.Row + r
					attentionRow(o[row*width:(row+1)*width], q[row*width:(row+1)*width], k, v, s.Table,
						s.Len-s.Rows+r+1, sh, sc)
				}
				continue
			}
			pr.flash(o, q, k, v, s, sh, int(it.g), int(it.r0), int(it.r1), sc)
		}
	})
}

// attnItem is one unit of attention work: rows [r0, r1) of sequence seq,
// for the query heads of KV head g (all heads if g < 0).
type attnItem struct {
	seq, g, r0, r1 int32
}

// attnScratch holds one worker's buffers.
type attnScratch struct {
	q, o, s, m, l, c, k, v []float32
	one                    []float32 // all 1
	kt                     []float32 // a transposed block of keys
}

var attnScratchPool = sync.Pool{New: func() any { return new(attnScratch) }}

// attentionRow is the reference: one query row over positions [0, n), all
// heads, a one-pass online softmax in float32.
func attentionRow(o, q []float32, k, v KV, table []int32, n int, sh AttnShape, sc *attnScratch) {
	heads, headDim, bt := sh.Heads, sh.HeadDim, sh.BlockTokens
	kvw := sh.KVHeads * headDim
	sc.k = grow(sc.k, kvw)
	sc.v = grow(sc.v, kvw)
	sc.o = grow(sc.o, heads*headDim)
	sc.m = grow(sc.m, heads)
	sc.l = grow(sc.l, heads)
	kbuf, vbuf, acc, mx, sum := sc.k, sc.v, sc.o, sc.m, sc.l
	clear(acc)
	for h := range heads {
		mx[h] = float32(math.Inf(-1))
		sum[h] = 0
	}
	scale := float32(1 / math.Sqrt(float64(headDim)))
	group := heads / sh.KVHeads
	for p := range n {
		off := (int(table[p/bt])*bt + p%bt) * kvw
		kr := k.row(off, kvw, kbuf)
		vr := v.row(off, kvw, vbuf)
		for h := range heads {
			g := h / group
			kh := kr[g*headDim : (g+1)*headDim]
			qh := q[h*headDim : (h+1)*headDim]
			var s float32
			for d, qv := range qh {
				s += qv * kh[d]
			}
			s *= scale
			ah := acc[h*headDim : (h+1)*headDim]
			vh := vr[g*headDim : (g+1)*headDim]
			if s > mx[h] {
				c := float32(math.Exp(float64(mx[h] - s)))
				sum[h] *= c
				for d := range ah {
					ah[d] *= c
				}
				mx[h] = s
			}
			e := float32(math.Exp(float64(s - mx[h])))
			sum[h] += e
			for d, vv := range vh {
				ah[d] += e * vv
			}
		}
	}
	for h := range heads {
		ah := acc[h*headDim : (h+1)*headDim]
		oh := o[h*headDim : (h+1)*headDim]
		if sum[h] == 0 {
			clear(oh)
			continue
		}
		inv := 1 / sum[h]
		for d := range oh {
			oh[d] = ah[d] * inv
		}
	}
}

// superBlocks is the number of cache blocks whose scores go through one
// softmax pass (amortising its per-row work over more keys).
const superBlocks = 4

// attnPrims are one tier's flash-attention primitives. Rows are padded to
// a multiple of w floats (the vector width) with zeros; score rows to a
// multiple of w with −Inf.
type attnPrims struct {
	w int
	// dots sets s[i·sstride+j] = Σ_{d<hdp} q[i·hdp+d]·k[j·kstride+d] for
	// i < nq, j < nk.
	dots func(s, q *float32, nq, hdp int, k *float32, kstride, nk, sstride int)
	// softmax runs the online softmax update on nq rows of ncol scores,
	// sstride apart: mx =
	// max(m[i], max_j s_ij), c[i] = e^(m[i]−mx), s_ij = e^(s_ij−mx), l[i] =
	// l[i]·c[i] + Σ_j s_ij, m[i] = mx.
	softmax func(s *float32, sstride, ncol, nq int, m, l, c *float32)
	// axpy sets o_i = o_i·c[i] + Σ_{j<nk} p[i·pstride+j]·v_j over hdp
	// floats, v_j at v[j·vstride:].
	axpy func(o, p, c *float32, nq, nk, pstride int, v *float32, vstride, hdp int)
	// bf16Rows widens rows·n bf16 values (n a multiple of w).
	bf16Rows func(dst *float32, src *uint16, rows, n, dstride, sstride int)
	// e4m3Rows, if set, decodes rows·n E4M3 codes (n a multiple of 16).
	e4m3Rows func(dst *float32, src *uint8, rows, n, dstride, sstride int)
	// scale sets y[i] = x[i]·a for i < n&^(w−1).
	scale func(y, x *float32, n int, a float32)
	// transpose and dotsT, if set, score full blocks of a multiple of 16
	// keys with keys in the vector lanes: transpose sets
	// dst[d·dstride+t] = src[t·sstride+d] for t < 16, d < 16·n16, and
	// dotsT sets s[i·sstride+j] = Σ_{d<hdp} q[i·hdp+d]·kt[d·ktstride+j] for
	// j < 16. They replace dots' horizontal sums by one transpose of the
	// block per tile.
	transpose func(dst, src *float32, sstride, n16, dstride int)
	dotsT     func(s, q *float32, nq, hdp int, kt *float32, ktstride, sstride int)
	// prefetch, if set, asks the caches for rows rows of n bytes, stride
	// bytes apart, from p.
	prefetch func(p *byte, rows, stride, n int)
	// dotsBF16, axpyBF16 and transposeBF16, if set, are dots, axpy and
	// transpose reading bf16 keys and values (strides in elements) where
	// the others read f32: flash then scores and sums a bf16 cache in
	// place, when the head dimension is a multiple of w, instead of
	// widening each block into scratch first.
	dotsBF16      func(s, q *float32, nq, hdp int, k *uint16, kstride, nk, sstride int)
	axpyBF16      func(o, p, c *float32, nq, nk, pstride int, v *uint16, vstride, hdp int)
	transposeBF16 func(dst *float32, src *uint16, sstride, n16, dstride int)
	// dots4 and dots4BF16, if set, are dots and dotsBF16 for nq and nk
	// multiples of 4, faster where they apply; flash pads the query rows to
	// a multiple of 4 with zeros for them.
	dots4     func(s, q *float32, nq, hdp int, k *float32, kstride, nk, sstride int)
	dots4BF16 func(s, q *float32, nq, hdp int, k *uint16, kstride, nk, sstride int)
}

// attnAhead is how many cache blocks ahead flash prefetches: before it
// scores block b it asks for the keys of block b+attnAhead, and before it
// adds block b's values those of block b+attnAhead. In a model the caches
// come from memory (the weights streamed between two layers' attention
// evict them), and the cores do not run far enough ahead of one block's
// arithmetic to overlap the next block's loads; one block of prefetches at
// a time (64 lines for 16 f32 rows of 64) keeps the requests within what
// a core has in flight. BenchmarkAttentionCold measures it.
const attnAhead = 4

// prefetchBlock prefetches kv's rows of KV head g in block b of s (none
// past position pLast).
func (pr *attnPrims) prefetchBlock(kv KV, s AttnSeq, sh AttnShape, g, b, pLast int) {
	bt := sh.BlockTokens
	if pr.prefetch == nil || b*bt > pLast {
		return
	}
	hd, kvw := sh.HeadDim, sh.KVHeads*sh.HeadDim
	nk := min(bt, pLast+1-b*bt)
	p, es := kv.addr(int(s.Table[b])*bt*kvw + g*hd)
	pr.prefetch(p, nk, kvw*es, hd*es)
}

// scaleRow sets y = x·a, the whole vectors with pr.scale.
func (pr *attnPrims) scaleRow(y, x []float32, a float32) {
	y = y[:len(x)]
	nv := len(x) &^ (pr.w - 1)
	if nv > 0 {
		raceReadSlice(x[:nv])
		raceWriteSlice(y[:nv])
		pr.scale(&y[0], &x[0], nv, a)
	}
	for i, v := range x[nv:] {
		y[nv+i] = v * a
	}
}

// flash computes rows [r0, r1) of sequence s for the query heads of KV head
// g: the tile's nq = (r1−r0)·group query vectors (pre-scaled by
// 1/sqrt(HeadDim), padded) against each cache block in turn, with an online
// softmax per query vector.
func (pr *attnPrims) flash(o, q []float32, k, v KV, s AttnSeq, sh AttnShape, g, r0, r1 int, sc *attnScratch) {
	group := sh.Heads / sh.KVHeads
	hd, bt, w := sh.HeadDim, sh.BlockTokens, pr.w
	hdp := roundUp(hd, w)
	nkp := roundUp(bt, w)
	kvw := sh.KVHeads * hd
	width := sh.Heads * hd
	nq := (r1 - r0) * group
	nq4 := roundUp(nq, 4) // rows of q and scores, zero rows padding for dots4
	sc.q = grow(sc.q, nq4*hdp)
	sc.o = grow(sc.o, nq*hdp)
	sstride := superBlocks * nkp
	sc.s = grow(sc.s, nq4*sstride)
	sc.m = grow(sc.m, nq)
	sc.l = grow(sc.l, nq)
	sc.c = grow(sc.c, nq)
	if len(sc.one) < nq {
		sc.one = make([]float32, nq)
		for i := range sc.one {
			sc.one[i] = 1
		}
	}
	qp, acc, sm, m, l, c, ones := sc.q, sc.o, sc.s, sc.m, sc.l, sc.c, sc.one
	scale := float32(1 / math.Sqrt(float64(hd)))
	for r := r0; r < r1; r++ {
		src := q[(s.Row+r)*width+g*group*hd:]
		for h := range group {
			dst := qp[((r-r0)*group+h)*hdp:][:hdp]
			pr.scaleRow(dst, src[h*hd:(h+1)*hd], scale)
			clear(dst[hd:])
		}
	}
	clear(qp[nq*hdp:])
	clear(acc)
	inf := float32(math.Inf(-1))
	for i := range nq {
		m[i], l[i] = inf, 0
	}
	start := s.Len - s.Rows // position of row 0
	p0, pLast := start+r0, start+r1-1
	// Keys and values are read in place from an f32 cache, and from a bf16
	// one if the tier has the primitives, when rows need no padding;
	// otherwise each block is widened into scratch where it is used: one
	// block of keys and one of values, so that they stay in L1 (four
	// blocks of both, at head dimension 128, would not).
	f32Direct := k.F32 != nil && hd%w == 0
	bf16Direct := k.BF16 != nil && hd%w == 0 && pr.dotsBF16 != nil && pr.axpyBF16 != nil &&
		(pr.dotsT == nil || pr.transposeBF16 != nil)
	// Past 8 query vectors (prefill), widening a block of bf16 values once
	// costs less than axpyBF16 widening them for every pair of rows.
	bf16DirectV := bf16Direct && nq <= 8
	if !f32Direct && !bf16Direct {
		sc.k = grow(sc.k, bt*hdp)
	}
	if !f32Direct && !bf16DirectV {
		sc.v = grow(sc.v, bt*hdp)
	}
	// The transposed scoring pays for its transpose from 8 query vectors.
	useT := pr.dotsT != nil && bt%16 == 0 && hdp%16 == 0 && nq >= 8
	var kt []float32
	if useT {
		sc.kt = grow(sc.kt, hdp*bt)
		kt = sc.kt
	}
	// Up to superBlocks cache blocks at a time share one softmax pass: the
	// scores of block t fill columns [t·nkp, (t+1)·nkp) of sm.
	for b0 := 0; b0*bt <= pLast; b0 += superBlocks {
		nb := min(superBlocks, (pLast-b0*bt)/bt+1)
		for t := range nb {
			b := b0 + t
			nk := min(bt, pLast+1-b*bt)
			base := int(s.Table[b])*bt*kvw + g*hd
			pr.prefetchBlock(k, s, sh, g, b+attnAhead, pLast)
			st := scoreTile{sm: sm[t*nkp:], qp: qp, kt: kt, nq: nq, nq4: nq4, hdp: hdp, sstride: sstride, useT: useT && nk == bt}
			if bf16Direct {
				scoreBlock(&st, pr.transposeBF16, pr.dotsT, pr.dots4BF16, pr.dotsBF16, cacheRows(k.BF16, base, nk, kvw, hd), kvw, nk)
			} else {
				kp, stride := pr.f32Rows(k, f32Direct, sc.k, base, nk, kvw, hd, hdp)
				scoreBlock(&st, pr.transpose, pr.dotsT, pr.dots4, pr.dots, kp, stride, nk)
			}
			if nk < nkp {
				for i := range nq {
					row := sm[i*sstride+t*nkp+nk : i*sstride+(t+1)*nkp]
					for j := range row {
						row[j] = inf
					}
				}
			}
			if b*bt+nk-1 > p0 { // causal mask inside the tile
				for r := r0; r < r1; r++ {
					lo := max(0, start+r+1-b*bt)
					if lo >= nk {
						continue
					}
					for h := range group {
						row := sm[((r-r0)*group+h)*sstride+t*nkp:][lo:nk]
						for j := range row {
							row[j] = inf
						}
					}
				}
			}
		}
		pr.softmax(&sm[0], sstride, nb*nkp, nq, &m[0], &l[0], &c[0])
		for t := range nb {
			cf := &c[0] // block 0 rescales the accumulators; the others add
			if t > 0 {
				cf = &ones[0]
			}
			b := b0 + t
			nk := min(bt, pLast+1-b*bt)
			base := int(s.Table[b])*bt*kvw + g*hd
			pr.prefetchBlock(v, s, sh, g, b+attnAhead, pLast)
			if bf16DirectV {
				vb := cacheRows(v.BF16, base, nk, kvw, hd)
				pr.axpyBF16(&acc[0], &sm[t*nkp], cf, nq, nk, sstride, &vb[0], kvw, hdp)
				continue
			}
			vp, stride := pr.f32Rows(v, f32Direct, sc.v, base, nk, kvw, hd, hdp)
			pr.axpy(&acc[0], &sm[t*nkp], cf, nq, nk, sstride, &vp[0], stride, hdp)
		}
	}
	for r := r0; r < r1; r++ {
		dst := o[(s.Row+r)*width+g*group*hd:]
		for h := range group {
			i := (r-r0)*group + h
			pr.scaleRow(dst[h*hd:(h+1)*hd], acc[i*hdp:i*hdp+hd], 1/l[i])
		}
	}
}

// scoreTile is what scoreBlock needs of flash's state: the scores of the
// block (from column 0 of sm), the padded queries and transposition
// scratch, and whether the block goes through the transposed scoring.
type scoreTile struct {
	sm, qp, kt            []float32
	nq, nq4, hdp, sstride int
	useT                  bool
}

// scoreBlock scores the nk keys of kp (rows stride elements apart, f32 or
// bf16) against the tile's queries with the given primitives: through
// transpose and dotsT if st.useT, else dots4 on the first nk&^3 keys (if
// the tier has it) and dots on the rest.
func scoreBlock[T float32 | uint16](st *scoreTile, transpose func(dst *float32, src *T, sstride, n16, dstride int),
	dotsT func(s, q *float32, nq, hdp int, kt *float32, ktstride, sstride int),
	dots4, dots func(s, q *float32, nq, hdp int, k *T, kstride, nk, sstride int), kp []T, stride, nk int) {
	if st.useT {
		for jg := 0; jg < nk; jg += 16 {
			transpose(&st.kt[jg], &kp[jg*stride], stride, st.hdp/16, nk)
			dotsT(&st.sm[jg], &st.qp[0], st.nq, st.hdp, &st.kt[jg], nk, st.sstride)
		}
		return
	}
	n4 := 0
	if dots4 != nil {
		n4 = nk &^ 3
	}
	if n4 > 0 {
		dots4(&st.sm[0], &st.qp[0], st.nq4, st.hdp, &kp[0], stride, n4, st.sstride)
	}
	if n4 < nk {
		dots(&st.sm[n4], &st.qp[0], st.nq, st.hdp, &kp[n4*stride], stride, nk-n4, st.sstride)
	}
}

// cacheRows returns the nk rows of hd elements, kvw apart, that start at
// element base of a cache's storage, reported to the race detector as read.
func cacheRows[T any](c []T, base, nk, kvw, hd int) []T {
	rows := c[base : base+(nk-1)*kvw+hd]
	raceReadSlice(rows)
	return rows
}

// f32Rows returns the nk cache rows at base as f32 rows and their stride:
// in place if direct (an f32 cache, no padding), else widened by load into
// buf.
func (pr *attnPrims) f32Rows(kv KV, direct bool, buf []float32, base, nk, kvw, hd, hdp int) ([]float32, int) {
	if direct {
		return cacheRows(kv.F32, base, nk, kvw, hd), kvw
	}
	buf = buf[:nk*hdp]
	pr.load(buf, kv, base, nk, kvw, hd, hdp)
	return buf, hdp
}

// load copies nk cache rows of hd values (row t at base+t·kvw) into dst
// rows of hdp floats, widening bf16 and E4M3 and zeroing the padding.
func (pr *attnPrims) load(dst []float32, kv KV, base, nk, kvw, hd, hdp int) {
	if kv.F32 != nil {
		for t := range nk {
			row := dst[t*hdp : (t+1)*hdp]
			copy(row, kv.F32[base+t*kvw:base+t*kvw+hd])
			clear(row[hd:])
		}
		return
	}
	if kv.E4M3 != nil {
		src := cacheRows(kv.E4M3, base, nk, kvw, hd)
		nv := 0
		if pr.e4m3Rows != nil {
			nv = hd &^ 15
		}
		if nv > 0 {
			pr.e4m3Rows(&dst[0], &src[0], nk, nv, hdp, kvw)
		}
		for t := range nk {
			row := dst[t*hdp : (t+1)*hdp]
			for d := nv; d < hd; d++ {
				row[d] = format.E4M3Table[src[t*kvw+d]]
			}
			clear(row[hd:])
		}
		return
	}
	src := cacheRows(kv.BF16, base, nk, kvw, hd)
	nv := hd &^ (pr.w - 1)
	if nv > 0 {
		pr.bf16Rows(&dst[0], &src[0], nk, nv, hdp, kvw)
	}
	if nv == hdp {
		return
	}
	for t := range nk {
		row := dst[t*hdp : (t+1)*hdp]
		for d := nv; d < hd; d++ {
			row[d] = format.BF16ToFloat32(src[t*kvw+d])
		}
		clear(row[hd:])
	}
}
