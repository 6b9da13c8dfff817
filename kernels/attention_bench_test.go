package kernels

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/mnemo-ai/mnemo/bench/roofline"
)

// attnRoofline measures, once per process, the fp32 FMA peaks the
// attention benchmarks report a fraction of.
var attnRoofline = sync.OnceValues(func() (roofline.Limits, error) {
	return roofline.Measure(context.Background(), roofline.Options{
		Probes:  []string{roofline.FMAZMM, roofline.FMAYMM},
		Runs:    3,
		MinTime: 100 * time.Millisecond,
	})
})

// BenchmarkAttention runs TinyLlama's attention (32 query heads, 4 KV
// heads, head dim 64, 16-token blocks) for one decoding sequence at
// contexts 512 and 2048 and for a 512-token prefill, and the decode at
// 2048 of two shapes with fewer query heads per KV head (Llama 3 8B's: 32
// heads, 8 KV heads, head dim 128; and 24 heads over 8 KV heads, Llama
// 3.2 3B's), reporting GFLOP/s (4·HeadDim FLOP per query head and
// attended position: the q·k dot and the weighted sum of v) and the
// fraction of the fp32 FMA roof measured in the same process for the
// tier's vector width and thread count.
func BenchmarkAttention(b *testing.B) {
	rng := rand.New(rand.NewPCG(12, 12))
	tiny := AttnShape{Heads: 32, KVHeads: 4, HeadDim: 64, BlockTokens: 16}
	cases := []struct {
		name       string
		sh         AttnShape
		rows, size int
	}{
		{"decode/ctx=512", tiny, 1, 512},
		{"decode/ctx=2048", tiny, 1, 2048},
		{"prefill/n=512", tiny, 512, 512},
		{"decode/h=32/kvh=8/hd=128/ctx=2048", AttnShape{Heads: 32, KVHeads: 8, HeadDim: 128, BlockTokens: 16}, 1, 2048},
		{"decode/h=24/kvh=8/hd=128/ctx=2048", AttnShape{Heads: 24, KVHeads: 8, HeadDim: 128, BlockTokens: 16}, 1, 2048},
	}
	for _, kvType := range cacheTypes {
		for _, cs := range cases {
			sh := cs.sh
			c := newAttnCase(rng, sh, kvType, [][2]int{{cs.rows, cs.size}})
			attended := 0
			for j := range cs.rows {
				attended += cs.size - cs.rows + j + 1
			}
			flop := 4 * float64(sh.Heads*sh.HeadDim) * float64(attended)
			o := make([]float32, len(c.q))
			for _, threads := range []int{1, 2} {
				pool := NewPool(threads)
				for _, impl := range Impls() {
					b.Run(fmt.Sprintf("impl=%s/%s/kv=%s/threads=%d", impl.Name, cs.name, kvType, threads), func(b *testing.B) {
						for b.Loop() {
							impl.Attention(pool, o, c.q, c.k, c.v, c.seqs, sh)
						}
						gflops := flop * float64(b.N) / b.Elapsed().Seconds() / 1e9
						b.ReportMetric(gflops, "GFLOP/s")
						if impl.Tier == Generic {
							return
						}
						lim, err := attnRoofline()
						if err != nil {
							b.Fatal(err)
						}
						peak := lim.At(threads).FMAYMMGflops
						if impl.Tier == AVX512 {
							peak = lim.At(threads).FMAZMMGflops
						}
						if peak > 0 {
							b.ReportMetric(gflops/peak, "roof")
						}
					})
				}
				pool.Close()
			}
		}
	}
}

// BenchmarkAttentionCold runs decode attention as a model step meets it:
// each call reads a different layer's cache, and the layers together
// (64 MiB of f32 K and V) are larger than the last-level cache, so the
// keys and values come from memory. It reports GB/s of K and V read.
// (f32 only: the other cache types would need more layers than the
// reference data the cases keep is worth.)
func BenchmarkAttentionCold(b *testing.B) {
	rng := rand.New(rand.NewPCG(13, 13))
	sh := AttnShape{Heads: 32, KVHeads: 4, HeadDim: 64, BlockTokens: 16}
	kvw := sh.KVHeads * sh.HeadDim
	for _, cs := range []struct{ seqs, size int }{{1, 512}, {8, 128}, {8, 512}} {
		for _, kvType := range []cacheType{cacheF32} {
			// Enough layers that the caches together exceed 64 MiB of f32.
			perLayer := cs.seqs * cs.size * kvw * 2 * 4
			layers := max(2, (64<<20)/perLayer)
			lens := make([][2]int, cs.seqs)
			for i := range lens {
				lens[i] = [2]int{1, cs.size}
			}
			cases := make([]*attnCase, layers)
			for i := range cases {
				cases[i] = newAttnCase(rng, sh, kvType, lens)
			}
			bytes := float64(cs.seqs*cs.size*kvw*2) * 4
			o := make([]float32, len(cases[0].q))
			for _, threads := range []int{1, 2} {
				pool := NewPool(threads)
				impl := Best()
				b.Run(fmt.Sprintf("impl=%s/seqs=%d/ctx=%d/kv=%s/threads=%d", impl.Name, cs.seqs, cs.size, kvType, threads), func(b *testing.B) {
					i := 0
					for b.Loop() {
						c := cases[i%layers]
						impl.Attention(pool, o, c.q, c.k, c.v, c.seqs, sh)
						i++
					}
					b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				})
				pool.Close()
			}
		}
	}
}
