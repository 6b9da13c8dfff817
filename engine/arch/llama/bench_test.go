package llama_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// BenchmarkDecode measures decode steps of 1 and 8 sequences on the
// synth.Small model (f16 weights) with the best kernel tier; tok/s counts
// every sequence's token.
func BenchmarkDecode(b *testing.B) {
	path := filepath.Join(b.TempDir(), "small.gguf")
	require.NoError(b, synth.WriteFile(path, synth.Small()))
	for _, w := range []string{"auto", "q8_0", "fp8", "mxfp4"} {
		b.Run("weights="+w, func(b *testing.B) {
			m := openModelB(b, path, w)
			for _, seqs := range []int{1, 8} {
				b.Run(fmt.Sprintf("seqs=%d", seqs), func(b *testing.B) {
					step := decodeBatch(b, m, seqs)
					n := 0
					for b.Loop() {
						step(n)
						n++
					}
					b.ReportMetric(float64(n*seqs)/b.Elapsed().Seconds(), "tok/s")
				})
			}
		})
	}
}

// decodeBatch starts seqs sequences on m and returns a step that decodes
// one token of each (token 5+n%100 at step n), starting the sequences over
// once they hold 1000 tokens. The sequences are released when b ends.
func decodeBatch(b *testing.B, m engine.Model, seqs int) func(n int) {
	batch := make([]*engine.Seq, seqs)
	for i := range batch {
		batch[i] = &engine.Seq{Table: &kvcache.Table{}, Tokens: []int32{int32(1 + i)}}
	}
	release := func() {
		for _, s := range batch {
			s.Table.Release(m.KV().Pool)
		}
	}
	b.Cleanup(release)
	return func(n int) {
		if batch[0].Table.Len >= 1000 {
			release()
		}
		for _, s := range batch {
			s.Tokens = []int32{int32(5 + n%100)}
		}
		_, err := m.Forward(context.Background(), batch)
		require.NoError(b, err)
	}
}
