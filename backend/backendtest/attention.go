package backendtest

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

func writeI32(t *testing.T, buf backend.Buffer, v []int32) {
	t.Helper()
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(x))
	}
	require.NoError(t, buf.Write(raw))
}

func testRoPE(t *testing.T, b backend.Backend) {
	rng := rand.New(rand.NewPCG(6, 6))
	const m, heads, hd = 3, 2, 8
	for _, style := range []backend.RopeStyle{backend.RopeNormal, backend.RopeNeoX} {
		s := backend.Spec{Op: backend.OpRoPE, M: m, Heads: heads, HeadDim: hd,
			Rope: backend.Rope{Dims: 6, Base: 10000, Style: style}}
		p := compile(t, b, s)
		x := randF32(rng, m*heads*hd)
		xb, pb := alloc(t, b, backend.F32, m, heads*hd), alloc(t, b, backend.I32, m)
		writeF32(t, xb, x)
		pos := []int32{0, 5, 1000}
		writeI32(t, pb, pos)
		require.NoError(t, p.Run(context.Background(), []backend.Buffer{xb, pb}, []backend.Buffer{xb}))
		got := readF32(t, xb)
		for r := range m {
			for h := range heads {
				base := r*heads*hd + h*hd
				for i := range 3 {
					a, c := base+2*i, base+2*i+1
					if style == backend.RopeNeoX {
						a, c = base+i, base+i+3
					}
					ang := float64(pos[r]) * math.Pow(10000, -float64(2*i)/6)
					sn, cs := math.Sincos(ang)
					require.InDelta(t, float64(x[a])*cs-float64(x[c])*sn, float64(got[a]), 1e-4)
					require.InDelta(t, float64(x[a])*sn+float64(x[c])*cs, float64(got[c]), 1e-4)
				}
				assert.Equal(t, x[base+6:base+8], got[base+6:base+8])
			}
		}
	}
}

// testAttention runs a two-sequence step: sequence 0 decodes one token on
// top of 5 cached ones, sequence 1 prefills 4 tokens, one row is padding.
// K/V are written through OpKVWrite into scattered blocks, then attention
// is compared with a float64 reference.
func testAttention(t *testing.T, b backend.Backend) {
	rng := rand.New(rand.NewPCG(7, 7))
	ctx := context.Background()
	const (
		heads, kvHeads, hd = 4, 2, 8
		bt, blocks, maxB   = 4, 8, 3
		kvw                = kvHeads * hd
	)
	for _, kv := range []backend.DType{backend.F32, backend.BF16, backend.F8E4M3} {
		geo := backend.Spec{KVHeads: kvHeads, HeadDim: hd, BlockTokens: bt, Blocks: blocks, KV: kv}
		if kv == backend.F8E4M3 && !compiles(b, backend.Spec{Op: backend.OpKVWrite, M: 5, KVHeads: geo.KVHeads, HeadDim: hd,
			BlockTokens: bt, Blocks: blocks, KV: kv}) {
			continue // an FP8 cache is optional
		}
		kc := alloc(t, b, kv, blocks, bt, kvw)
		vc := alloc(t, b, kv, blocks, bt, kvw)
		tables := [][]int32{{5, 2, 0}, {7, 1, 0}}
		slotOf := func(seq, pos int) int32 { return tables[seq][pos/bt]*bt + int32(pos%bt) }
		// History: sequence 0 has 5 tokens cached.
		hist := backend.Spec{Op: backend.OpKVWrite, M: 5, KVHeads: geo.KVHeads, HeadDim: hd, BlockTokens: bt, Blocks: blocks, KV: kv}
		hk, hv := randF32(rng, 5*kvw), randF32(rng, 5*kvw)
		kb, vb, sb := alloc(t, b, backend.F32, 5, kvw), alloc(t, b, backend.F32, 5, kvw), alloc(t, b, backend.I32, 5)
		writeF32(t, kb, hk)
		writeF32(t, vb, hv)
		writeI32(t, sb, []int32{slotOf(0, 0), slotOf(0, 1), slotOf(0, 2), slotOf(0, 3), slotOf(0, 4)})
		require.NoError(t, compile(t, b, hist).Run(ctx, []backend.Buffer{kb, vb, sb, kc, vc}, []backend.Buffer{kc, vc}))

		// The step: rows 0..3 sequence 1 (prefill), row 4 padding, row 5 sequence 0.
		const m = 6
		step := hist
		step.M = m
		sk, sv := randF32(rng, m*kvw), randF32(rng, m*kvw)
		kb2, vb2, sb2 := alloc(t, b, backend.F32, m, kvw), alloc(t, b, backend.F32, m, kvw), alloc(t, b, backend.I32, m)
		writeF32(t, kb2, sk)
		writeF32(t, vb2, sv)
		writeI32(t, sb2, []int32{slotOf(1, 0), slotOf(1, 1), slotOf(1, 2), slotOf(1, 3), -1, slotOf(0, 5)})
		require.NoError(t, compile(t, b, step).Run(ctx, []backend.Buffer{kb2, vb2, sb2, kc, vc}, []backend.Buffer{kc, vc}))

		as := backend.Spec{Op: backend.OpAttention, M: m, Heads: heads, KVHeads: kvHeads, HeadDim: hd,
			BlockTokens: bt, Blocks: blocks, Seqs: 3, MaxBlocks: maxB, KV: kv}
		q := randF32(rng, m*heads*hd)
		qb, tb, seqb := alloc(t, b, backend.F32, m, heads*hd), alloc(t, b, backend.I32, 3, maxB), alloc(t, b, backend.I32, 3, 3)
		writeF32(t, qb, q)
		writeI32(t, tb, []int32{5, 2, 0, 7, 1, 0, 0, 0, 0})
		writeI32(t, seqb, []int32{5, 1, 6, 0, 4, 4, 0, 0, 0})
		ob := alloc(t, b, backend.F32, m, heads*hd)
		ap := compile(t, b, as)
		require.NoError(t, ap.Run(ctx, []backend.Buffer{qb, kc, vc, tb, seqb}, []backend.Buffer{ob}))
		o := readF32(t, ob)

		round := func(v []float32) []float32 { // what the cache holds
			out := make([]float32, len(v))
			for i, x := range v {
				switch kv {
				case backend.BF16:
					out[i] = format.BF16ToFloat32(format.Float32ToBF16(x))
				case backend.F8E4M3:
					out[i] = format.E4M3ToFloat32(format.Float32ToE4M3(x))
				default:
					out[i] = x
				}
			}
			return out
		}
		keys := map[int][][]float32{}
		vals := map[int][][]float32{}
		for p := range 5 {
			keys[0] = append(keys[0], round(hk[p*kvw:(p+1)*kvw]))
			vals[0] = append(vals[0], round(hv[p*kvw:(p+1)*kvw]))
		}
		for r := range 4 {
			keys[1] = append(keys[1], round(sk[r*kvw:(r+1)*kvw]))
			vals[1] = append(vals[1], round(sv[r*kvw:(r+1)*kvw]))
		}
		keys[0] = append(keys[0], round(sk[5*kvw:6*kvw]))
		vals[0] = append(vals[0], round(sv[5*kvw:6*kvw]))
		check := func(row, seq, n int) {
			want := attnRef(q[row*heads*hd:(row+1)*heads*hd], keys[seq][:n], vals[seq][:n], heads, kvHeads, hd)
			for i := range want {
				require.InDelta(t, want[i], float64(o[row*heads*hd+i]), 1e-4, "%s row %d [%d]", kv, row, i)
			}
		}
		for r := range 4 {
			check(r, 1, r+1) // causal within the prefill chunk
		}
		check(5, 0, 6)
		assert.Equal(t, make([]float32, heads*hd), o[4*heads*hd:5*heads*hd], "padding row is zero")

		// Hostile step descriptions are refused.
		for _, bad := range [][]int32{
			{5, 1, 100, 0, 0, 0, 0, 0, 0}, // longer than its table
			{5, 2, 6, 0, 0, 0, 0, 0, 0},   // rows past M
			{0, 2, 2, 1, 2, 2, 0, 0, 0},   // overlapping rows
			{0, 1, 0, 0, 0, 0, 0, 0, 0},   // fewer tokens than new rows
		} {
			writeI32(t, seqb, bad)
			assert.Error(t, ap.Run(ctx, []backend.Buffer{qb, kc, vc, tb, seqb}, []backend.Buffer{ob}), "seq %v", bad)
		}
		writeI32(t, seqb, []int32{5, 1, 6, 0, 4, 4, 0, 0, 0})
		writeI32(t, tb, []int32{5, 99, 0, 7, 1, 0, 0, 0, 0})
		assert.Error(t, ap.Run(ctx, []backend.Buffer{qb, kc, vc, tb, seqb}, []backend.Buffer{ob}), "block id past the cache")
		writeI32(t, sb2, []int32{0, 1, 2, 3, -1, int32(blocks * bt)})
		assert.Error(t, compile(t, b, step).Run(ctx, []backend.Buffer{kb2, vb2, sb2, kc, vc}, []backend.Buffer{kc, vc}), "slot past the cache")
	}
}

func attnRef(q []float32, keys, vals [][]float32, heads, kvHeads, hd int) []float64 {
	out := make([]float64, heads*hd)
	group := heads / kvHeads
	for h := range heads {
		g := h / group
		sc := make([]float64, len(keys))
		mx := math.Inf(-1)
		for p, k := range keys {
			for d := range hd {
				sc[p] += float64(q[h*hd+d]) * float64(k[g*hd+d])
			}
			sc[p] /= math.Sqrt(float64(hd))
			mx = max(mx, sc[p])
		}
		var sum float64
		for p := range sc {
			sc[p] = math.Exp(sc[p] - mx)
			sum += sc[p]
		}
		for p, v := range vals {
			for d := range hd {
				out[h*hd+d] += sc[p] / sum * float64(v[g*hd+d])
			}
		}
	}
	return out
}

// testBiasHeadsGather covers the matmul bias, per-head RMSNorm and row
// gathers the engine uses for qwen2 biases, qwen3 QK-norm and logits rows.
func testBiasHeadsGather(t *testing.T, b backend.Backend) {
	rng := rand.New(rand.NewPCG(9, 9))
	ctx := context.Background()
	const m, n, k = 3, 8, 32
	host, dec := quantRows(format.F32, n, k, randF32(rng, n*k))
	wb := alloc(t, b, backend.Weights(format.F32), n, k)
	require.NoError(t, wb.Write(host))
	x, bias := randF32(rng, m*k), randF32(rng, n)
	xb, bb, yb := alloc(t, b, backend.F32, m, k), alloc(t, b, backend.F32, n), alloc(t, b, backend.F32, m, n)
	writeF32(t, xb, x)
	writeF32(t, bb, bias)
	p := compile(t, b, backend.Spec{Op: backend.OpMatMul, M: m, N: n, K: k, Weights: format.F32, Bias: true})
	require.NoError(t, p.Run(ctx, []backend.Buffer{xb, wb, bb}, []backend.Buffer{yb}))
	y := readF32(t, yb)
	for i := range m {
		for j := range n {
			ref := float64(bias[j])
			for kk := range k {
				ref += float64(x[i*k+kk]) * float64(dec[j*k+kk])
			}
			require.InDelta(t, ref, float64(y[i*n+j]), 1e-4, "bias y[%d,%d]", i, j)
		}
	}

	// Per-head RMSNorm: 2 heads of 4.
	g := randF32(rng, 4)
	gb := alloc(t, b, backend.F32, 4)
	writeF32(t, gb, g)
	hn := compile(t, b, backend.Spec{Op: backend.OpRMSNorm, M: m, N: n, Eps: 1e-6, Heads: 2})
	yb2 := alloc(t, b, backend.F32, m, n)
	require.NoError(t, hn.Run(ctx, []backend.Buffer{yb, gb}, []backend.Buffer{yb2}))
	got := readF32(t, yb2)
	for seg := range m * 2 {
		var ss float64
		for d := range 4 {
			ss += float64(y[seg*4+d]) * float64(y[seg*4+d])
		}
		inv := 1 / math.Sqrt(ss/4+1e-6)
		for d := range 4 {
			require.InDelta(t, float64(y[seg*4+d])*inv*float64(g[d]), float64(got[seg*4+d]), 1e-5, "head norm seg %d", seg)
		}
	}

	// Gather rows 2 and 0.
	gp := compile(t, b, backend.Spec{Op: backend.OpGather, M: m, N: n, K: 2})
	idx := alloc(t, b, backend.I32, 2)
	writeI32(t, idx, []int32{2, 0})
	out := alloc(t, b, backend.F32, 2, n)
	require.NoError(t, gp.Run(ctx, []backend.Buffer{yb, idx}, []backend.Buffer{out}))
	rows := readF32(t, out)
	assert.Equal(t, y[2*n:3*n], rows[:n])
	assert.Equal(t, y[:n], rows[n:])
	writeI32(t, idx, []int32{3, 0})
	assert.Error(t, gp.Run(ctx, []backend.Buffer{yb, idx}, []backend.Buffer{out}), "row past M")
}

// compiles reports whether b compiles s (backends may leave out optional
// dtypes, refusing them with an error).
func compiles(b backend.Backend, s backend.Spec) bool {
	p, err := b.Compile(context.Background(), s)
	if err != nil {
		return false
	}
	p.Close()
	return true
}
