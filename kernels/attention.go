package kernels

import (
	"math"

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

// RoPE rotates each of the heads in x (heads·headDim values, one token) by
// angle pos·freqs[i] on dimension pairs (2i, 2i+1), or (i, i+len(freqs))
// when neox is set. Dimensions past 2·len(freqs) pass through. Angles are
// computed in float64.
func RoPE(x []float32, heads, headDim, pos int, freqs []float64, neox bool) {
	half := len(freqs)
	if len(x) != heads*headDim || 2*half > headDim {
		panic("kernels: RoPE: slice length does not match")
	}
	var cs [256][2]float32
	var cosSin [][2]float32
	if half <= len(cs) {
		cosSin = cs[:half]
	} else {
		cosSin = make([][2]float32, half)
	}
	for i, f := range freqs {
		s, c := math.Sincos(float64(pos) * f)
		cosSin[i] = [2]float32{float32(c), float32(s)}
	}
	for h := range heads {
		v := x[h*headDim : (h+1)*headDim]
		for i, cs := range cosSin {
			a, b := 2*i, 2*i+1
			if neox {
				a, b = i, i+half
			}
			x0, x1 := v[a], v[b]
			v[a] = x0*cs[0] - x1*cs[1]
			v[b] = x0*cs[1] + x1*cs[0]
		}
	}
}

// KV is a cache's storage: exactly one of F32 and BF16 is set. Rows are
// [blocks, blockTokens, kvHeads·headDim].
type KV struct {
	F32  []float32
	BF16 []uint16
}

// row returns row r (kvHeads·headDim values starting at element off),
// decoded into buf if the cache is bf16.
func (kv KV) row(off, n int, buf []float32) []float32 {
	if kv.F32 != nil {
		return kv.F32[off : off+n]
	}
	for i, b := range kv.BF16[off : off+n] {
		buf[i] = format.BF16ToFloat32(b)
	}
	return buf[:n]
}

// Put stores v at element offset off.
func (kv KV) Put(off int, v []float32) {
	if kv.F32 != nil {
		copy(kv.F32[off:off+len(v)], v)
		return
	}
	for i, x := range v {
		kv.BF16[off+i] = format.Float32ToBF16(x)
	}
}

// Attention computes one query row's attention over positions [0, n) of a
// sequence whose keys and values live in the cache blocks listed in table:
// o[h] = Σ_p softmax_p(q[h]·k_p[g]/sqrt(headDim)) · v_p[g] with g =
// h/(heads/kvHeads). It runs an online softmax, one pass over the cache.
// buf needs 2·kvHeads·headDim + heads·headDim + heads·2 floats.
func Attention(o, q []float32, k, v KV, table []int32, n, heads, kvHeads, headDim, blockTokens int, buf []float32) {
	if len(o) != heads*headDim || len(q) != len(o) || kvHeads <= 0 || heads%kvHeads != 0 ||
		n > len(table)*blockTokens || len(buf) < 2*kvHeads*headDim+heads*headDim+2*heads {
		panic("kernels: Attention: slice length does not match")
	}
	kvw := kvHeads * headDim
	kbuf, vbuf := buf[:kvw], buf[kvw:2*kvw]
	acc := buf[2*kvw : 2*kvw+heads*headDim]
	mx := buf[2*kvw+heads*headDim : 2*kvw+heads*headDim+heads]
	sum := buf[2*kvw+heads*headDim+heads : 2*kvw+heads*headDim+2*heads]
	clear(acc)
	for h := range heads {
		mx[h] = float32(math.Inf(-1))
		sum[h] = 0
	}
	scale := float32(1 / math.Sqrt(float64(headDim)))
	group := heads / kvHeads
	for p := range n {
		off := (int(table[p/blockTokens])*blockTokens + p%blockTokens) * kvw
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

// AttentionScratch returns the buf length Attention needs.
func AttentionScratch(heads, kvHeads, headDim int) int {
	return 2*kvHeads*headDim + heads*headDim + 2*heads
}
