package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

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
	const heads, hd = 3, 10
	freqs := RopeFreqs(8, 10000, RopeScaling{}) // 2 dims pass through
	for _, neox := range []bool{false, true} {
		x := make([]float32, heads*hd)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		orig := append([]float32(nil), x...)
		const pos = 37
		RoPE(x, heads, hd, pos, freqs, neox)
		for h := range heads {
			for i, f := range freqs {
				a, b := h*hd+2*i, h*hd+2*i+1
				if neox {
					a, b = h*hd+i, h*hd+i+len(freqs)
				}
				s, c := math.Sincos(pos * f)
				assert.InDelta(t, float64(orig[a])*c-float64(orig[b])*s, float64(x[a]), 1e-5)
				assert.InDelta(t, float64(orig[a])*s+float64(orig[b])*c, float64(x[b]), 1e-5)
			}
			assert.Equal(t, orig[h*hd+8:h*hd+10], x[h*hd+8:h*hd+10], "dims past Rope.Dims pass through")
		}
		// Rotation at position 0 is the identity.
		y := append([]float32(nil), orig...)
		RoPE(y, heads, hd, 0, freqs, neox)
		assert.Equal(t, orig, y)
	}
	assert.Panics(t, func() { RoPE(make([]float32, 5), 1, 4, 0, freqs, false) })
}

// attentionRef is a float64 two-pass softmax attention over a contiguous
// list of key/value rows.
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

func TestAttentionPaged(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, tt := range []struct {
		heads, kvHeads, hd, bt, n int
		bf16                      bool
	}{
		{1, 1, 4, 4, 1, false},
		{4, 4, 8, 4, 9, false},
		{8, 2, 16, 16, 40, false},
		{6, 3, 12, 8, 33, true},
		{2, 1, 64, 32, 100, true},
	} {
		const blocks = 20
		kvw := tt.kvHeads * tt.hd
		nb := (tt.n + tt.bt - 1) / tt.bt
		table := make([]int32, nb+1)
		for i, b := range rng.Perm(blocks)[:nb+1] { // scattered blocks
			table[i] = int32(b)
		}
		var k, v KV
		if tt.bf16 {
			k.BF16, v.BF16 = make([]uint16, blocks*tt.bt*kvw), make([]uint16, blocks*tt.bt*kvw)
		} else {
			k.F32, v.F32 = make([]float32, blocks*tt.bt*kvw), make([]float32, blocks*tt.bt*kvw)
		}
		var keys, vals [][]float32
		for p := range tt.n {
			kr, vr := make([]float32, kvw), make([]float32, kvw)
			for i := range kr {
				kr[i], vr[i] = float32(rng.NormFloat64()*2), float32(rng.NormFloat64())
				if tt.bf16 { // the reference sees what the cache holds
					kr[i] = format.BF16ToFloat32(format.Float32ToBF16(kr[i]))
					vr[i] = format.BF16ToFloat32(format.Float32ToBF16(vr[i]))
				}
			}
			off := (int(table[p/tt.bt])*tt.bt + p%tt.bt) * kvw
			k.Put(off, kr)
			v.Put(off, vr)
			keys, vals = append(keys, kr), append(vals, vr)
		}
		q := make([]float32, tt.heads*tt.hd)
		for i := range q {
			q[i] = float32(rng.NormFloat64())
		}
		o := make([]float32, len(q))
		buf := make([]float32, AttentionScratch(tt.heads, tt.kvHeads, tt.hd))
		Attention(o, q, k, v, table, tt.n, tt.heads, tt.kvHeads, tt.hd, tt.bt, buf)
		want := attentionRef(q, keys, vals, tt.heads, tt.kvHeads, tt.hd)
		for i := range want {
			require.InDelta(t, want[i], float64(o[i]), 1e-5, "%+v o[%d]", tt, i)
		}
	}
}

func TestAttentionEmpty(t *testing.T) {
	o := []float32{1, 2, 3, 4}
	buf := make([]float32, AttentionScratch(1, 1, 4))
	Attention(o, make([]float32, 4), KV{F32: make([]float32, 16)}, KV{F32: make([]float32, 16)}, []int32{0}, 0, 1, 1, 4, 4, buf)
	assert.Equal(t, []float32{0, 0, 0, 0}, o, "no positions: zeros")
}
