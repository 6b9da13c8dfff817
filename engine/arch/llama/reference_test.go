package llama_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/kernels"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// refModel is an independent float64 implementation of the forward pass,
// written from the architecture's definition, for checking the engine.
type refModel struct {
	s synth.Spec
	w map[string][]float64
}

func loadRef(t *testing.T, path string, s synth.Spec) *refModel {
	f, err := gguf.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r := &refModel{s: s, w: map[string][]float64{}}
	for _, ti := range f.Tensors() {
		v, err := f.Dequantize(ti.Name)
		require.NoError(t, err)
		d := make([]float64, len(v))
		for i, x := range v {
			d[i] = float64(x)
		}
		r.w[ti.Name] = d
	}
	// phi3 stores Q, K and V as one tensor, and gate then up as ffn_up.
	d, q, kv := s.Dim, s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	for l := range s.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		if w, ok := r.w[p+"attn_qkv.weight"]; ok {
			r.w[p+"attn_q.weight"], r.w[p+"attn_k.weight"], r.w[p+"attn_v.weight"] = w[:q*d], w[q*d:(q+kv)*d], w[(q+kv)*d:]
		}
		if s.Arch == "phi3" {
			w := r.w[p+"ffn_up.weight"]
			r.w[p+"ffn_gate.weight"], r.w[p+"ffn_up.weight"] = w[:s.FFN*d], w[s.FFN*d:]
		}
	}
	return r
}

// matvec returns W·x for W stored as n rows of len(x).
func matvec(w, x []float64) []float64 {
	k := len(x)
	y := make([]float64, len(w)/k)
	for i := range y {
		for j, xv := range x {
			y[i] += w[i*k+j] * xv
		}
	}
	return y
}

func rmsnorm(x, g []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+1e-5)
	y := make([]float64, len(x))
	for i := range x {
		y[i] = x[i] * inv * g[i%len(g)]
	}
	return y
}

func (r *refModel) rope(x []float64, heads, pos int) {
	hd := r.s.HeadDim
	half := hd / 2
	for h := range heads {
		v := x[h*hd : (h+1)*hd]
		for i := range half {
			th := float64(pos) * math.Pow(r.s.RopeBase, -2*float64(i)/float64(hd))
			a, b := 2*i, 2*i+1
			if r.s.Arch != "llama" {
				a, b = i, i+half
			}
			s, c := math.Sincos(th)
			v[a], v[b] = v[a]*c-v[b]*s, v[a]*s+v[b]*c
		}
	}
}

// logits runs tokens through the model and returns every position's logits.
func (r *refModel) logits(tokens []int32) [][]float64 {
	s := r.s
	d, hd := s.Dim, s.HeadDim
	keys := make([][][]float64, s.Layers)
	vals := make([][][]float64, s.Layers)
	var out [][]float64
	for pos, tok := range tokens {
		x := append([]float64(nil), r.w["token_embd.weight"][int(tok)*d:(int(tok)+1)*d]...)
		for l := range s.Layers {
			p := fmt.Sprintf("blk.%d.", l)
			h := rmsnorm(x, r.w[p+"attn_norm.weight"])
			q, k, v := matvec(r.w[p+"attn_q.weight"], h), matvec(r.w[p+"attn_k.weight"], h), matvec(r.w[p+"attn_v.weight"], h)
			if s.Arch == "qwen2" {
				for i := range q {
					q[i] += r.w[p+"attn_q.bias"][i]
				}
				for i := range k {
					k[i] += r.w[p+"attn_k.bias"][i]
					v[i] += r.w[p+"attn_v.bias"][i]
				}
			}
			if s.Arch == "qwen3" {
				for hh := range s.Heads {
					copy(q[hh*hd:], rmsnorm(q[hh*hd:(hh+1)*hd], r.w[p+"attn_q_norm.weight"]))
				}
				for hh := range s.KVHeads {
					copy(k[hh*hd:], rmsnorm(k[hh*hd:(hh+1)*hd], r.w[p+"attn_k_norm.weight"]))
				}
			}
			r.rope(q, s.Heads, pos)
			r.rope(k, s.KVHeads, pos)
			keys[l] = append(keys[l], k)
			vals[l] = append(vals[l], v)
			o := make([]float64, s.Heads*hd)
			for hh := range s.Heads {
				g := hh / (s.Heads / s.KVHeads)
				sc := make([]float64, pos+1)
				mx := math.Inf(-1)
				for t := range sc {
					for i := range hd {
						sc[t] += q[hh*hd+i] * keys[l][t][g*hd+i]
					}
					sc[t] /= math.Sqrt(float64(hd))
					mx = max(mx, sc[t])
				}
				var sum float64
				for t := range sc {
					sc[t] = math.Exp(sc[t] - mx)
					sum += sc[t]
				}
				for t := range sc {
					for i := range hd {
						o[hh*hd+i] += sc[t] / sum * vals[l][t][g*hd+i]
					}
				}
			}
			a := matvec(r.w[p+"attn_output.weight"], o)
			for i := range x {
				x[i] += a[i]
			}
			h = rmsnorm(x, r.w[p+"ffn_norm.weight"])
			gt, up := matvec(r.w[p+"ffn_gate.weight"], h), matvec(r.w[p+"ffn_up.weight"], h)
			for i := range gt {
				gt[i] = gt[i] / (1 + math.Exp(-gt[i])) * up[i]
			}
			dn := matvec(r.w[p+"ffn_down.weight"], gt)
			for i := range x {
				x[i] += dn[i]
			}
		}
		h := rmsnorm(x, r.w["output_norm.weight"])
		outW := r.w["output.weight"]
		if s.Tied {
			outW = r.w["token_embd.weight"]
		}
		out = append(out, matvec(outW, h))
	}
	return out
}

func writeSynth(t *testing.T, s synth.Spec) string {
	path := filepath.Join(t.TempDir(), s.Arch+".gguf")
	require.NoError(t, synth.WriteFile(path, s))
	return path
}

func openModel(t *testing.T, path, impl string, opt engine.Options) engine.Model {
	src, err := model.Open(path)
	require.NoError(t, err)
	be, err := cpu.New(backend.Options{Kernels: impl})
	require.NoError(t, err)
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := engine.New(src, be, opt)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, m.Close())
		require.NoError(t, be.Close())
		require.NoError(t, src.Close())
	})
	return m
}

// maxRelErr returns max |got − want| / (max |want|) over a row.
func maxRelErr(got []float32, want []float64) float64 {
	var worst, scale float64
	for i, w := range want {
		worst = max(worst, math.Abs(float64(got[i])-w))
		scale = max(scale, math.Abs(w))
	}
	return worst / scale
}

var testTokens = []int32{1, 300, 17, 42, 99, 5, 260, 261, 262, 7, 8, 300, 301, 77}

// TestForwardMatchesReference checks every architecture, KV dtype and
// kernel tier against the float64 reference, prefilling the prompt in one
// step and in uneven chunks and decoding token by token.
func TestForwardMatchesReference(t *testing.T) {
	for _, arch := range []string{"llama", "qwen2", "qwen3", "phi3"} {
		s := synth.Tiny(arch)
		s.Tied = arch == "qwen3"
		path := writeSynth(t, s)
		want := loadRef(t, path, s).logits(testTokens)
		for _, kv := range []backend.DType{backend.F32, backend.BF16, backend.F8E4M3} {
			tol := 1e-5
			switch kv {
			case backend.BF16:
				tol = 2e-2 // keys and values rounded to bf16
			case backend.F8E4M3:
				tol = 0.1 // keys and values rounded to 3 mantissa bits (measured ≤ 0.03 at the first position)
			}
			for _, impl := range kernels.Impls() {
				t.Run(fmt.Sprintf("%s/kv=%s/%s", arch, kv, impl.Name), func(t *testing.T) {
					m := openModel(t, path, impl.Name, engine.Options{Weights: "f32", KV: kv, BlockTokens: 4})
					ctx := context.Background()
					for _, chunks := range [][]int{{len(testTokens)}, {3, 5, 6}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}} {
						seq := &engine.Seq{Table: &kvcache.Table{}, AllLogits: true}
						at := 0
						for _, n := range chunks {
							seq.Tokens = testTokens[at : at+n]
							out, err := m.Forward(ctx, []*engine.Seq{seq})
							require.NoError(t, err)
							require.Equal(t, n, out[0].Rows)
							for j := range n {
								e := maxRelErr(out[0].Row(j), want[at+j])
								require.Less(t, e, tol, "chunks %v position %d", chunks, at+j)
							}
							at += n
						}
						seq.Table.Release(m.KV().Pool)
					}
					require.Equal(t, m.KV().Blocks, m.KV().Pool.Free(), "every block returned")
				})
			}
		}
	}
}

func openModelB(b *testing.B, path, weights string) engine.Model {
	return openModelOpt(b, path, engine.Options{Weights: weights})
}

// openModelOpt opens a benchmark model with room for 8 sequences of 1100
// tokens.
func openModelOpt(b *testing.B, path string, opt engine.Options) engine.Model {
	src, err := model.Open(path)
	require.NoError(b, err)
	be, err := cpu.New(backend.Options{})
	require.NoError(b, err)
	opt.Logger, opt.KVTokens, opt.ContextLength = slog.New(slog.DiscardHandler), 8*1100, 1100
	m, err := engine.New(src, be, opt)
	require.NoError(b, err)
	b.Cleanup(func() { m.Close(); be.Close(); src.Close() })
	return m
}
