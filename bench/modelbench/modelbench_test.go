package modelbench_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/bench/modelbench"
	"github.com/mnemo-ai/mnemo/engine"
	_ "github.com/mnemo-ai/mnemo/engine/arch/llama"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/synth"
)

// tinyModel loads a tiny synthetic Llama with q8_0 weights on the CPU
// backend, closed when t ends.
func tinyModel(t *testing.T) engine.Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.gguf")
	require.NoError(t, synth.WriteFile(path, synth.Tiny("llama")))
	src, err := model.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	be, err := cpu.New(backend.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { be.Close() })
	m, err := engine.New(src, be, engine.Options{Weights: "q8_0", KVTokens: 256, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func TestRun(t *testing.T) {
	m := tinyModel(t)

	res, err := modelbench.Run(context.Background(), m, "tiny", modelbench.Options{Prompt: 20, Gen: 5, BatchSeqs: 3, Reps: 1, Chunk: 8, SkipRoofline: true})
	require.NoError(t, err)
	assert.Equal(t, "q8_0", res.Format)
	assert.Positive(t, res.PrefillTokS)
	assert.Positive(t, res.DecodeTokS)
	assert.Positive(t, res.BatchTokS)
	assert.InDelta(t, res.BatchTokS/res.DecodeTokS, res.BatchSpeedup, 1e-9)
	assert.Positive(t, res.MatrixBytes)
	assert.GreaterOrEqual(t, res.WeightBytes, res.MatrixBytes, "the embedding table is weights too")
	assert.Positive(t, res.KVBytes)
	if runtime.GOOS == "linux" {
		assert.Positive(t, res.RSSBytes)
	}
	assert.Equal(t, m.KV().Blocks, m.KV().Pool.Free(), "every block returned")
	assert.Zero(t, res.KVReadBytes, "no depth, the weights' roofline")
	var out bytes.Buffer
	modelbench.Fprint(&out, res)
	assert.Contains(t, out.String(), "tok/s")

	_, err = modelbench.Run(context.Background(), m, "tiny", modelbench.Options{Prompt: -1, SkipRoofline: true})
	assert.Error(t, err)
}

// TestRunDepth: the decode tests start from the depth (the context's
// last token fits, one more does not), the batch forks it, and every
// block comes back, after an error too.
func TestRunDepth(t *testing.T) {
	m := tinyModel(t)
	ctx := context.Background()
	res, err := modelbench.Run(ctx, m, "tiny", modelbench.Options{Prompt: 8, Gen: 5, Depth: 37, BatchSeqs: 3, Reps: 2, Chunk: 16, SkipRoofline: true})
	require.NoError(t, err)
	assert.Equal(t, 37, res.Depth)
	bpt := int64(m.KV().BytesPerToken())
	assert.Equal(t, (2*37+5+3)*bpt/2, res.KVReadBytes, "the mean context of the tg tokens: 39 to 43")
	assert.Positive(t, res.DecodeTokS)
	assert.Positive(t, res.BatchTokS)
	assert.Equal(t, m.KV().Blocks, m.KV().Pool.Free(), "every block returned")
	var out bytes.Buffer
	modelbench.Fprint(&out, res)
	assert.Contains(t, out.String(), "tg5 @ d37")
	assert.Contains(t, out.String(), "tg×3 @ d37")
	res.ReadGBs, res.DecodeOfRoof = 10, 0.5
	out.Reset()
	modelbench.Fprint(&out, res)
	assert.Contains(t, out.String(), "MB of KV cache read per token counted")

	// The tiny model's context is 256 tokens: the depth, the one-token
	// prompt and 5 generated.
	_, err = modelbench.Run(ctx, m, "tiny", modelbench.Options{Prompt: 8, Gen: 5, Depth: 250, BatchSeqs: 1, Reps: 1, SkipRoofline: true})
	require.NoError(t, err)
	_, err = modelbench.Run(ctx, m, "tiny", modelbench.Options{Prompt: 8, Gen: 5, Depth: 251, BatchSeqs: 1, Reps: 1, SkipRoofline: true})
	assert.ErrorIs(t, err, engine.ErrContextFull)
	assert.Equal(t, m.KV().Blocks, m.KV().Pool.Free(), "every block returned after the error")
	_, err = modelbench.Run(ctx, m, "tiny", modelbench.Options{Depth: -1, SkipRoofline: true})
	assert.Error(t, err)
}

// TestFprintBandwidthMoved checks that the summary says when the read
// probes of the run disagree, and only then, and names the probe the ratio
// used.
func TestFprintBandwidthMoved(t *testing.T) {
	for _, tt := range []struct {
		low, high, paired float64
		moved             bool
	}{{40, 80, 40, true}, {40, 80, 80, true}, {49, 50, 50, false}, {0, 50, 50, false}} {
		r := modelbench.Result{Model: "m", GenTokens: 8, DecodeTokS: 10, ReadGBsLow: tt.low, ReadGBsHigh: tt.high, ReadGBs: tt.paired}
		var out bytes.Buffer
		modelbench.Fprint(&out, r)
		assert.Equal(t, tt.moved, strings.Contains(out.String(), "read bandwidth ranged"), "%v-%v: %s", tt.low, tt.high, out.String())
		assert.Contains(t, out.String(), fmt.Sprintf("%.1f GB/s measured just before", tt.paired))
	}
}

// TestRunPairsProbes runs the probes for real (a short run): each tg
// repetition gets its own, the ratio uses the one before the fastest
// repetition, and the range spans them.
func TestRunPairsProbes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bandwidth probes")
	}
	m := tinyModel(t)
	res, err := modelbench.Run(context.Background(), m, "tiny", modelbench.Options{Prompt: 8, Gen: 4, BatchSeqs: 1, Reps: 2, Chunk: 8})
	require.NoError(t, err)
	assert.Positive(t, res.ReadGBsLow)
	assert.GreaterOrEqual(t, res.ReadGBs, res.ReadGBsLow)
	assert.LessOrEqual(t, res.ReadGBs, res.ReadGBsHigh)
	assert.InDelta(t, res.DecodeTokS*float64(res.MatrixBytes)/(res.ReadGBs*1e9), res.DecodeOfRoof, 1e-9)
}
