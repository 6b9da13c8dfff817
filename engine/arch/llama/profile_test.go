package llama_test

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/kvcache"
)

var benchModel = flag.String("model", "", "GGUF model for BenchmarkDecodeOps (default: the synthetic small model in mxfp4)")

type profiler interface {
	Runner() *engine.Runner
}

// BenchmarkDecodeOps times every program of decode steps of 1 and 8
// sequences and logs the per-op breakdown of one step (run with -v; pass
// -model FILE for a real model). The ops/step metric counts programs.
func BenchmarkDecodeOps(b *testing.B) {
	path, weights := *benchModel, "auto"
	if path == "" {
		path, weights = filepath.Join(b.TempDir(), "small.gguf"), "mxfp4"
		require.NoError(b, synth.WriteFile(path, synth.Small()))
	}
	for _, unfused := range []bool{false, true} {
		b.Run(fmt.Sprintf("fused=%t", !unfused), func(b *testing.B) {
			m := openModelOpt(b, path, engine.Options{Weights: weights, Unfused: unfused})
			decodeOps(b, m)
		})
	}
}

func decodeOps(b *testing.B, m engine.Model) {
	run := m.(profiler).Runner()
	for _, seqs := range []int{1, 2, 3, 8} {
		b.Run(fmt.Sprintf("seqs=%d", seqs), func(b *testing.B) {
			step := decodeBatch(b, m, seqs)
			step(0) // compile the programs outside the profile
			run.SetProfiling(true)
			defer run.SetProfiling(false)
			n := 0
			for b.Loop() {
				step(n + 1)
				n++
			}
			prof := run.Profile()
			calls := 0
			for _, p := range prof {
				calls += p.Calls
			}
			b.Log("\n" + profileTable(prof, n, b.Elapsed()))
			b.ReportMetric(float64(n*seqs)/b.Elapsed().Seconds(), "tok/s")
			b.ReportMetric(float64(calls)/float64(n), "ops/step")
		})
	}
}

// BenchmarkPrefillOps times every program of a 512-token prefill (one
// chunk, from an empty cache) and logs the per-op breakdown (run with -v;
// -model FILE as for BenchmarkDecodeOps).
func BenchmarkPrefillOps(b *testing.B) {
	path, weights := *benchModel, "auto"
	if path == "" {
		path, weights = filepath.Join(b.TempDir(), "small.gguf"), "mxfp4"
		require.NoError(b, synth.WriteFile(path, synth.Small()))
	}
	m := openModelOpt(b, path, engine.Options{Weights: weights})
	run := m.(profiler).Runner()
	const tokens = 512
	prompt := make([]int32, tokens)
	for i := range prompt {
		prompt[i] = int32(1 + i%100)
	}
	prefill := func() {
		seq := &engine.Seq{Table: &kvcache.Table{}, Tokens: prompt}
		defer seq.Table.Release(m.KV().Pool)
		_, err := m.Forward(context.Background(), []*engine.Seq{seq})
		require.NoError(b, err)
	}
	prefill() // compile the programs outside the profile
	run.SetProfiling(true)
	defer run.SetProfiling(false)
	n := 0
	for b.Loop() {
		prefill()
		n++
	}
	b.Log("\n" + profileTable(run.Profile(), n, b.Elapsed()))
	b.ReportMetric(float64(n*tokens)/b.Elapsed().Seconds(), "tok/s")
}

func label(s backend.Spec) string {
	switch s.Op {
	case backend.OpMatMul:
		l := fmt.Sprintf("matmul M=%d %d×%d %s", s.M, s.N, s.K, s.Weights)
		if s.Bias {
			l += " bias"
		}
		if s.GLU {
			l = fmt.Sprintf("matmul M=%d 2×%d×%d %s glu", s.M, s.N, s.K, s.Weights)
		}
		if s.Parts != ([backend.MaxParts]int{}) {
			l += fmt.Sprintf(" split %v", s.Parts)
		}
		return l
	case backend.OpAttention, backend.OpKVWrite:
		return fmt.Sprintf("%s M=%d", s.Op, s.M)
	case backend.OpRoPE:
		return fmt.Sprintf("%s M=%d heads=%d", s.Op, s.M, s.Heads)
	}
	return fmt.Sprintf("%s M=%d N=%d K=%d", s.Op, s.M, s.N, s.K)
}

// profileTable formats the per-op breakdown of n steps that took elapsed.
func profileTable(prof []engine.OpTime, n int, elapsed time.Duration) string {
	var total time.Duration
	calls := 0
	for _, p := range prof {
		total += p.Time
		calls += p.Calls
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d steps, %v per step, %v in programs, %d programs per step\n", n, elapsed/time.Duration(n), total/time.Duration(n), calls/n)
	fmt.Fprintf(&sb, "%-52s %7s %10s %9s %6s\n", "program", "calls", "µs/step", "µs/call", "share")
	for _, p := range prof {
		fmt.Fprintf(&sb, "%-52s %7d %10.1f %9.2f %5.1f%%\n", label(p.Spec), p.Calls/n,
			float64(p.Time.Microseconds())/float64(n), float64(p.Time.Nanoseconds())/1e3/float64(p.Calls),
			100*float64(p.Time)/float64(total))
	}
	return sb.String()
}

// BenchmarkFusionAB loads the model fused and unfused and alternates
// their steps (decode of 1 and 8 sequences, a prefill chunk of 128
// tokens), so that a noisy machine slows both alike; it reports each
// one's tok/s and the fused speedup.
func BenchmarkFusionAB(b *testing.B) {
	path, weights := *benchModel, "auto"
	if path == "" {
		path, weights = filepath.Join(b.TempDir(), "small.gguf"), "mxfp4"
		require.NoError(b, synth.WriteFile(path, synth.Small()))
	}
	models := []engine.Model{
		openModelOpt(b, path, engine.Options{Weights: weights}),
		openModelOpt(b, path, engine.Options{Weights: weights, Unfused: true}),
	}
	for _, sh := range [][2]int{{1, 1}, {8, 1}, {1, 128}} {
		seqs, tokens := sh[0], sh[1]
		b.Run(fmt.Sprintf("seqs=%d/tokens=%d", seqs, tokens), func(b *testing.B) {
			var spent [2]time.Duration
			batches := make([][]*engine.Seq, 2)
			for j, m := range models {
				for i := range seqs {
					batches[j] = append(batches[j], &engine.Seq{Table: &kvcache.Table{}, Tokens: []int32{int32(1 + i)}})
				}
				defer func() {
					for _, s := range batches[j] {
						s.Table.Release(m.KV().Pool)
					}
				}()
			}
			n := 0
			for b.Loop() {
				for jj := range models {
					j := (jj + n) % 2 // alternate which goes first
					m := models[j]
					for _, s := range batches[j] {
						if s.Table.Len+tokens > 512 {
							s.Table.Release(m.KV().Pool)
						}
						s.Tokens = make([]int32, tokens)
						for i := range s.Tokens {
							s.Tokens[i] = int32(1 + (n+i)%100)
						}
					}
					start := time.Now()
					_, err := m.Forward(context.Background(), batches[j])
					require.NoError(b, err)
					spent[j] += time.Since(start)
				}
				n++
			}
			b.ReportMetric(float64(n*seqs*tokens)/spent[0].Seconds(), "fused-tok/s")
			b.ReportMetric(float64(n*seqs*tokens)/spent[1].Seconds(), "unfused-tok/s")
			b.ReportMetric(spent[1].Seconds()/spent[0].Seconds(), "speedup")
		})
	}
}
