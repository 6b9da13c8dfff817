package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

func TestRopeFreqs(t *testing.T) {
	f := RopeFreqs(8, 10000, RopeScaling{})
	require.Len(t, f, 4)
	for i, v := range f {
		assert.InDelta(t, math.Pow(10000, -float64(2*i)/8), v, 1e-15)
	}
	// Llama 3.1: factor 8, low 1, high 4, original context 8192.
	s := RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OrigContext: 8192}
	base := RopeFreqs(128, 500000, RopeScaling{})
	scaled := RopeFreqs(128, 500000, s)
	for i := range base {
		wave := 2 * math.Pi / base[i]
		switch {
		case wave < 8192/4.0:
			assert.Equal(t, base[i], scaled[i], "short wavelengths keep their frequency")
		case wave > 8192:
			assert.InDelta(t, base[i]/8, scaled[i], 1e-18, "long wavelengths are divided by the factor")
		default:
			assert.Less(t, scaled[i], base[i])
			assert.Greater(t, scaled[i], base[i]/8)
		}
	}
}

func TestRoPE(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	generic := allImpls[Generic]
	for _, impl := range Impls() {
		for _, tt := range []struct{ heads, hd, dims int }{
			{3, 10, 8}, {2, 8, 8}, {4, 12, 12}, {2, 40, 40}, {3, 64, 64}, {2, 64, 32}, {2, 80, 80}, {2, 128, 128}, {1, 128, 96},
		} {
			for _, neox := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/hd=%d/dims=%d/neox=%v", impl.Name, tt.hd, tt.dims, neox), func(t *testing.T) {
					freqs := RopeFreqs(tt.dims, 10000, RopeScaling{})
					x, ok := guardedOut(tt.heads*tt.hd, 3)
					copy(x, randSlice(rng, len(x), 1))
					orig := append([]float32(nil), x...)
					const pos = 1237
					impl.RoPE(x, tt.heads, tt.hd, pos, freqs, neox)
					require.True(t, ok(), "guard band overwritten")
					ref := append([]float32(nil), orig...)
					generic.RoPE(ref, tt.heads, tt.hd, pos, freqs, neox)
					for h := range tt.heads {
						for i, f := range freqs {
							a, b := h*tt.hd+2*i, h*tt.hd+2*i+1
							if neox {
								a, b = h*tt.hd+i, h*tt.hd+i+len(freqs)
							}
							s, c := math.Sincos(pos * f)
							assert.InDelta(t, float64(orig[a])*c-float64(orig[b])*s, float64(x[a]), 2e-6)
							assert.InDelta(t, float64(orig[a])*s+float64(orig[b])*c, float64(x[b]), 2e-6)
						}
						rest := h*tt.hd + tt.dims
						assert.Equal(t, orig[rest:(h+1)*tt.hd], []float32(x[rest:(h+1)*tt.hd]), "dims past len(freqs)·2 pass through")
					}
					for i := range ref {
						require.InDelta(t, ref[i], x[i], 1e-6, "vs generic [%d]", i)
					}
					// Rotation at position 0 is the identity.
					y := append([]float32(nil), orig...)
					impl.RoPE(y, tt.heads, tt.hd, 0, freqs, neox)
					assert.Equal(t, orig, y)
					// A precomputed table gives exactly RoPE's result.
					cs := make([]float32, RoPETableLen(freqs))
					RoPETable(cs, pos, freqs, neox)
					z, zok := guardedOut(len(orig), 3)
					copy(z, orig)
					impl.RoPEWith(z, tt.heads, tt.hd, cs, neox)
					require.True(t, zok(), "guard band overwritten")
					assert.Equal(t, x, z, "RoPEWith(RoPETable(pos)) is RoPE(pos)")
				})
			}
		}
	}
	assert.Panics(t, func() { RoPE(make([]float32, 5), 1, 4, 0, RopeFreqs(4, 10000, RopeScaling{}), false) })
	assert.Panics(t, func() { RoPETable(make([]float32, 7), 0, RopeFreqs(4, 10000, RopeScaling{}), false) })
	assert.Panics(t, func() { Best().RoPEWith(make([]float32, 8), 1, 4, make([]float32, 16), false) }, "table wider than the head")
}

// attentionRef is a float64 two-pass softmax attention of one query row
// over a contiguous list of key/value rows.
func attentionRef(q []float32, keys, vals [][]float32, heads, kvHeads, hd int) []float64 {
	out := make([]float64, heads*hd)
	group := heads / kvHeads
	for h := range heads {
		g := h / group
		scores := make([]float64, len(keys))
		mx := math.Inf(-1)
		for p, k := range keys {
			var s float64
			for d := range hd {
				s += float64(q[h*hd+d]) * float64(k[g*hd+d])
			}
			scores[p] = s / math.Sqrt(float64(hd))
			mx = max(mx, scores[p])
		}
		var sum float64
		for p := range scores {
			scores[p] = math.Exp(scores[p] - mx)
			sum += scores[p]
		}
		for p, v := range vals {
			for d := range hd {
				out[h*hd+d] += scores[p] / sum * float64(v[g*hd+d])
			}
		}
	}
	return out
}

// attnCase is a step over a paged cache: sequences with their blocks
// scattered over the cache, the keys and values each position holds (as
// the cache stores them), and a query per row.
type attnCase struct {
	sh         AttnShape
	k, v       KV
	q          []float32
	rows       int
	seqs       []AttnSeq
	keys, vals [][][]float32 // per sequence, per position
}

// newAttnCase builds a step: each lens[i] = {rows, len} is a sequence
// whose last rows positions are this step's queries; an extra unowned row
// sits between sequences.
// cacheType is a KV storage type under test.
type cacheType int

const (
	cacheF32 cacheType = iota
	cacheBF16
	cacheE4M3
)

var cacheTypes = []cacheType{cacheF32, cacheBF16, cacheE4M3}

func (c cacheType) String() string { return [...]string{"f32", "bf16", "e4m3"}[c] }

// stored returns x as the cache holds it.
func (c cacheType) stored(x float32) float32 {
	switch c {
	case cacheBF16:
		return format.BF16ToFloat32(format.Float32ToBF16(x))
	case cacheE4M3:
		return format.E4M3ToFloat32(format.Float32ToE4M3(x))
	}
	return x
}

func newAttnCase(rng *rand.Rand, sh AttnShape, kt cacheType, lens [][2]int) *attnCase {
	kvw := sh.KVHeads * sh.HeadDim
	nb := 1
	for _, l := range lens {
		nb += (l[1]+sh.BlockTokens-1)/sh.BlockTokens + 1
	}
	blocks := nb + 3
	c := &attnCase{sh: sh}
	switch kt {
	case cacheBF16:
		c.k.BF16, c.v.BF16 = make([]uint16, blocks*sh.BlockTokens*kvw), make([]uint16, blocks*sh.BlockTokens*kvw)
	case cacheE4M3:
		c.k.E4M3, c.v.E4M3 = make([]uint8, blocks*sh.BlockTokens*kvw), make([]uint8, blocks*sh.BlockTokens*kvw)
		for i := range c.k.E4M3 { // unused slots hold NaN
			c.k.E4M3[i], c.v.E4M3[i] = 0x7f, 0xff
		}
	default:
		c.k.F32, c.v.F32 = make([]float32, blocks*sh.BlockTokens*kvw), make([]float32, blocks*sh.BlockTokens*kvw)
		for i := range c.k.F32 { // unused slots hold NaN: reading one poisons the result
			c.k.F32[i], c.v.F32[i] = float32(math.NaN()), float32(math.NaN())
		}
	}
	perm := rng.Perm(blocks)
	row := 0
	for _, l := range lens {
		nbs := (l[1] + sh.BlockTokens - 1) / sh.BlockTokens
		table := make([]int32, nbs+1) // one spare entry past the length
		for i := range table {
			table[i] = int32(perm[0])
			perm = perm[1:]
		}
		var keys, vals [][]float32
		for p := range l[1] {
			kr, vr := randSlice(rng, kvw, 1.5), randSlice(rng, kvw, 1)
			for i := range kr { // the reference sees what the cache holds
				kr[i], vr[i] = kt.stored(kr[i]), kt.stored(vr[i])
			}
			off := (int(table[p/sh.BlockTokens])*sh.BlockTokens + p%sh.BlockTokens) * kvw
			c.k.Put(off, kr)
			c.v.Put(off, vr)
			keys, vals = append(keys, kr), append(vals, vr)
		}
		c.seqs = append(c.seqs, AttnSeq{Row: row, Rows: l[0], Len: l[1], Table: table})
		c.keys, c.vals = append(c.keys, keys), append(c.vals, vals)
		row += l[0] + 1
	}
	c.rows = row
	c.q = randSlice(rng, c.rows*sh.Heads*sh.HeadDim, 1.5)
	return c
}

// check runs impl on c with pool and compares every owned row with the
// float64 reference (tol relative to 1 + |want|), every unowned row with
// its untouched sentinel, and the guard band around o.
func (c *attnCase) check(t *testing.T, impl *Impl, pool *Pool, tol float64) []float32 {
	t.Helper()
	width := c.sh.Heads * c.sh.HeadDim
	o, ok := guardedOut(c.rows*width, 5)
	q0 := append([]float32(nil), c.q...)
	impl.Attention(pool, o, c.q, c.k, c.v, c.seqs, c.sh)
	require.True(t, ok(), "guard band overwritten")
	require.Equal(t, q0, c.q, "q is read-only")
	owned := make([]bool, c.rows)
	for si, s := range c.seqs {
		for j := range s.Rows {
			r := s.Row + j
			owned[r] = true
			n := s.Len - s.Rows + j + 1
			want := attentionRef(c.q[r*width:(r+1)*width], c.keys[si][:n], c.vals[si][:n], c.sh.Heads, c.sh.KVHeads, c.sh.HeadDim)
			for i, w := range want {
				got := float64(o[r*width+i])
				if math.Abs(got-w) > tol*(1+math.Abs(w)) {
					require.InDelta(t, w, got, tol*(1+math.Abs(w)), "seq %d row %d (position %d) head %d dim %d",
						si, j, n-1, i/c.sh.HeadDim, i%c.sh.HeadDim)
				}
			}
		}
	}
	for r, own := range owned {
		if !own {
			for i := range width {
				require.Equal(t, math.Float32bits(guardVal), math.Float32bits(o[r*width+i]), "unowned row %d is left alone", r)
			}
		}
	}
	return o
}

func TestAttention(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	pool := NewPool(3)
	defer pool.Close()
	dims := []int{8, 12, 40, 64, 80, 128}
	groups := []int{1, 2, 4, 8}
	if testing.Short() {
		dims, groups = []int{12, 64}, []int{1, 8}
	}
	for _, hd := range dims {
		for _, group := range groups {
			for _, bt := range []int{16, 5} {
				for _, kt := range cacheTypes {
					kvHeads := 2
					if group == 8 {
						kvHeads = 1
					}
					sh := AttnShape{Heads: group * kvHeads, KVHeads: kvHeads, HeadDim: hd, BlockTokens: bt}
					// Decode at 1, bt−1, bt, bt+1 tokens; prefill of a whole
					// prompt; a chunk of prefill on top of cached tokens.
					lens := [][2]int{{1, 1}, {1, bt - 1}, {1, bt}, {1, bt + 1}, {bt + 2, bt + 2}, {3, 3*bt + 1}}
					if bt-1 == 0 {
						lens[1] = [2]int{1, 2}
					}
					c := newAttnCase(rng, sh, kt, lens)
					for _, impl := range Impls() {
						t.Run(fmt.Sprintf("%s/hd=%d/group=%d/kv=%d/bt=%d/kv=%s", impl.Name, hd, group, kvHeads, bt, kt), func(t *testing.T) {
							got := c.check(t, impl, pool, 2e-5)
							serial := c.check(t, impl, nil, 2e-5)
							assert.True(t, sameBits(got, serial), "the split across threads does not change a bit")
							if impl.Tier != Generic {
								ref := c.check(t, allImpls[Generic], nil, 2e-5)
								for i := range ref {
									require.InDelta(t, ref[i], got[i], 4e-6*(1+math.Abs(float64(ref[i]))), "vs generic [%d]", i)
								}
							}
						})
					}
				}
			}
		}
	}
}

// TestAttentionPrefillTile covers long prefill: many tiles of rows per
// sequence, each tile's causal mask cutting through blocks.
func TestAttentionPrefillTile(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	n := 150
	if testing.Short() {
		n = 70
	}
	for _, sh := range []AttnShape{
		{Heads: 8, KVHeads: 2, HeadDim: 64, BlockTokens: 16},
		{Heads: 8, KVHeads: 2, HeadDim: 80, BlockTokens: 32},
		{Heads: 4, KVHeads: 4, HeadDim: 48, BlockTokens: 48},
	} {
		for _, kt := range cacheTypes {
			c := newAttnCase(rng, sh, kt, [][2]int{{n, n}, {n - 20, n + 7}})
			for _, impl := range Impls() {
				t.Run(fmt.Sprintf("%s/hd=%d/bt=%d/kv=%s", impl.Name, sh.HeadDim, sh.BlockTokens, kt), func(t *testing.T) {
					c.check(t, impl, nil, 2e-5)
				})
			}
		}
	}
}

// goPrims are the flash-attention primitives in plain Go with vector
// width w, so the flash driver is tested on every architecture and with
// widths the assembly does not use.
func goPrims(w int) *attnPrims {
	f32 := func(p *float32, n int) []float32 { return unsafeSlice(p, n) }
	widen := func(p *uint16, n int) *float32 {
		f := make([]float32, n)
		for i, b := range unsafeSlice(p, n) {
			f[i] = format.BF16ToFloat32(b)
		}
		return &f[0]
	}
	pr := &attnPrims{
		w: w,
		dots: func(s, q *float32, nq, hdp int, k *float32, kstride, nk, sstride int) {
			ss, qs, ks := f32(s, (nq-1)*sstride+nk), f32(q, nq*hdp), f32(k, (nk-1)*kstride+hdp)
			for i := range nq {
				for j := range nk {
					var acc float32
					for d := range hdp {
						acc += qs[i*hdp+d] * ks[j*kstride+d]
					}
					ss[i*sstride+j] = acc
				}
			}
		},
		softmax: func(s *float32, sstride, ncol, nq int, m, l, c *float32) {
			ss, ms, ls, cs := f32(s, (nq-1)*sstride+ncol), f32(m, nq), f32(l, nq), f32(c, nq)
			for i := range nq {
				row := ss[i*sstride : i*sstride+ncol]
				mx := ms[i]
				for _, v := range row {
					mx = max(mx, v)
				}
				cs[i] = float32(math.Exp(float64(ms[i] - mx)))
				var sum float32
				for j, v := range row {
					row[j] = float32(math.Exp(float64(v - mx)))
					sum += row[j]
				}
				ls[i] = ls[i]*cs[i] + sum
				ms[i] = mx
			}
		},
		axpy: func(o, p, c *float32, nq, nk, pstride int, v *float32, vstride, hdp int) {
			os, ps, cs, vs := f32(o, nq*hdp), f32(p, (nq-1)*pstride+nk), f32(c, nq), f32(v, (nk-1)*vstride+hdp)
			for i := range nq {
				oi := os[i*hdp : (i+1)*hdp]
				for d := range oi {
					oi[d] *= cs[i]
				}
				for j := range nk {
					pj := ps[i*pstride+j]
					for d := range oi {
						oi[d] += pj * vs[j*vstride+d]
					}
				}
			}
		},
		scale: func(y, x *float32, n int, a float32) {
			ys, xs := f32(y, n&^(w-1)), f32(x, n&^(w-1))
			for i, v := range xs {
				ys[i] = v * a
			}
		},
		bf16Rows: func(dst *float32, src *uint16, rows, n, dstride, sstride int) {
			ds, ss := f32(dst, (rows-1)*dstride+n), unsafeSlice(src, (rows-1)*sstride+n)
			for r := range rows {
				for i := range n {
					ds[r*dstride+i] = format.BF16ToFloat32(ss[r*sstride+i])
				}
			}
		},
		e4m3Rows: func(dst *float32, src *uint8, rows, n, dstride, sstride int) {
			ds, ss := f32(dst, (rows-1)*dstride+n), unsafeSlice(src, (rows-1)*sstride+n)
			for r := range rows {
				for i := range n {
					ds[r*dstride+i] = format.E4M3ToFloat32(ss[r*sstride+i])
				}
			}
		},
	}
	// The in-place bf16 and four-by-four variants: the same sums on widened
	// copies, checking what the driver promises them.
	pr.dotsBF16 = func(s, q *float32, nq, hdp int, k *uint16, kstride, nk, sstride int) {
		pr.dots(s, q, nq, hdp, widen(k, (nk-1)*kstride+hdp), kstride, nk, sstride)
	}
	pr.axpyBF16 = func(o, p, c *float32, nq, nk, pstride int, v *uint16, vstride, hdp int) {
		pr.axpy(o, p, c, nq, nk, pstride, widen(v, (nk-1)*vstride+hdp), vstride, hdp)
	}
	pr.dots4 = func(s, q *float32, nq, hdp int, k *float32, kstride, nk, sstride int) {
		if nq%4 != 0 || nk%4 != 0 {
			panic("dots4: not multiples of 4")
		}
		pr.dots(s, q, nq, hdp, k, kstride, nk, sstride)
	}
	pr.dots4BF16 = func(s, q *float32, nq, hdp int, k *uint16, kstride, nk, sstride int) {
		pr.dots4(s, q, nq, hdp, widen(k, (nk-1)*kstride+hdp), kstride, nk, sstride)
	}
	return pr
}

func unsafeSlice[T any](p *T, n int) []T { return unsafe.Slice(p, n) }

func TestAttentionFlashDriver(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	for _, w := range []int{1, 4, 16} {
		for _, kt := range cacheTypes {
			for _, hd := range []int{8, 12, 40} {
				t.Run(fmt.Sprintf("w=%d/hd=%d/kv=%s", w, hd, kt), func(t *testing.T) {
					sh := AttnShape{Heads: 4, KVHeads: 2, HeadDim: hd, BlockTokens: 5}
					c := newAttnCase(rng, sh, kt, [][2]int{{1, 1}, {1, 6}, {9, 9}, {4, 13}})
					// The generic tier with flash primitives in Go.
					opTable[Generic].attn = goPrims(w)
					defer func() { opTable[Generic].attn = nil }()
					c.check(t, allImpls[Generic], nil, 2e-5)
				})
			}
		}
	}
}

// TestAttentionNaN: a NaN key makes the heads reading it NaN from its
// position on; other KV heads, and rows before it, stay exact.
func TestAttentionNaN(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	sh := AttnShape{Heads: 4, KVHeads: 2, HeadDim: 16, BlockTokens: 4}
	for _, impl := range Impls() {
		for _, kt := range cacheTypes {
			t.Run(fmt.Sprintf("%s/kv=%s", impl.Name, kt), func(t *testing.T) {
				c := newAttnCase(rng, sh, kt, [][2]int{{10, 10}})
				const bad = 6 // position
				kvw := sh.KVHeads * sh.HeadDim
				off := (int(c.seqs[0].Table[bad/4])*4+bad%4)*kvw + 3 // KV head 0, dim 3
				switch kt {
				case cacheBF16:
					c.k.BF16[off] = 0x7fc0
				case cacheE4M3:
					c.k.E4M3[off] = 0x7f
				default:
					c.k.F32[off] = float32(math.NaN())
				}
				width := sh.Heads * sh.HeadDim
				o := make([]float32, c.rows*width)
				impl.Attention(nil, o, c.q, c.k, c.v, c.seqs, sh)
				for r := range 10 {
					for h := range sh.Heads {
						out := o[r*width+h*sh.HeadDim : r*width+(h+1)*sh.HeadDim]
						nan := math.IsNaN(float64(out[0]))
						assert.Equal(t, r >= bad && h < 2, nan, "row %d head %d", r, h)
					}
				}
			})
		}
	}
}

func TestAttentionPanics(t *testing.T) {
	sh := AttnShape{Heads: 2, KVHeads: 1, HeadDim: 4, BlockTokens: 4}
	k := KV{F32: make([]float32, 2*4*4)}
	o, q := make([]float32, 8), make([]float32, 8)
	for _, tt := range []struct {
		name string
		seqs []AttnSeq
		sh   AttnShape
	}{
		{"rows past q", []AttnSeq{{Row: 0, Rows: 2, Len: 2, Table: []int32{0}}}, sh},
		{"longer than table", []AttnSeq{{Row: 0, Rows: 1, Len: 5, Table: []int32{0}}}, sh},
		{"block past cache", []AttnSeq{{Row: 0, Rows: 1, Len: 1, Table: []int32{2}}}, sh},
		{"fewer tokens than rows", []AttnSeq{{Row: 0, Rows: 1, Len: 0, Table: []int32{0}}}, sh},
		{"heads not a multiple", nil, AttnShape{Heads: 3, KVHeads: 2, HeadDim: 4, BlockTokens: 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Panics(t, func() { Attention(nil, o, q, k, k, tt.seqs, tt.sh) })
		})
	}
	assert.Panics(t, func() { Attention(nil, o, q, k, KV{BF16: make([]uint16, 32)}, nil, sh) }, "mixed cache types")
	assert.Panics(t, func() { Attention(nil, o, q, KV{E4M3: make([]uint8, 32)}, k, nil, sh) }, "mixed cache types")
	assert.Panics(t, func() { Attention(nil, o, q, KV{}, KV{}, nil, sh) }, "no cache")
	two := KV{F32: make([]float32, 32), E4M3: make([]uint8, 32)}
	assert.Panics(t, func() { Attention(nil, o, q, two, two, nil, sh) }, "two storages")
}

// FuzzAttention is differential: every assembly tier against the generic
// one on shapes and data decoded from the input.
func FuzzAttention(f *testing.F) {
	f.Add(uint8(7), uint8(1), uint8(1), uint8(3), uint8(20), uint8(5), false, uint64(1))
	f.Add(uint8(63), uint8(3), uint8(0), uint8(15), uint8(40), uint8(40), true, uint64(2))
	f.Add(uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), false, uint64(3))
	f.Fuzz(func(t *testing.T, hd, group, kvHeads, bt, n, rows uint8, bf16 bool, seed uint64) {
		sh := AttnShape{HeadDim: int(hd)%80 + 1, KVHeads: int(kvHeads)%2 + 1, BlockTokens: int(bt)%33 + 1}
		sh.Heads = sh.KVHeads * (int(group)%4 + 1)
		total := int(n)%48 + 1
		r := int(rows)%total + 1
		rng := rand.New(rand.NewPCG(seed, 99))
		kt := cacheF32 // the cache type: bf16, or the seed's low bit
		switch {
		case bf16:
			kt = cacheBF16
		case seed&1 == 1:
			kt = cacheE4M3
		}
		c := newAttnCase(rng, sh, kt, [][2]int{{r, total}, {1, total/2 + 1}})
		want := make([]float32, len(c.q))
		allImpls[Generic].Attention(nil, want, c.q, c.k, c.v, c.seqs, sh)
		for _, impl := range Impls()[1:] {
			got := make([]float32, len(c.q))
			impl.Attention(nil, got, c.q, c.k, c.v, c.seqs, sh)
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); !(d <= 4e-6*(1+math.Abs(float64(want[i])))) {
					t.Fatalf("%s %+v rows %d/%d: o[%d] = %g, generic %g", impl.Name, sh, r, total, i, got[i], want[i])
				}
			}
		}
	})
}
