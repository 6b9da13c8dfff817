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

func TestRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	require.NoError(t, synth.WriteFile(path, synth.Tiny("llama")))
	src, err := model.Open(path)
	require.NoError(t, err)
	defer src.Close()
	be, err := cpu.New(backend.Options{})
	require.NoError(t, err)
	defer be.Close()
	m, err := engine.New(src, be, engine.Options{Weights: "q8_0", KVTokens: 256, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer m.Close()

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
	var out bytes.Buffer
	modelbench.Fprint(&out, res)
	assert.Contains(t, out.String(), "tok/s")

	_, err = modelbench.Run(context.Background(), m, "tiny", modelbench.Options{Prompt: -1, SkipRoofline: true})
	assert.Error(t, err)
}

// TestFprintBandwidthMoved checks that the summary says when the read
// probes before and after the decode test disagree, and only then.
func TestFprintBandwidthMoved(t *testing.T) {
	for _, tt := range []struct {
		before, after float64
		moved         bool
	}{{40, 80, true}, {80, 40, true}, {49, 50, false}, {0, 50, false}} {
		r := modelbench.Result{Model: "m", GenTokens: 8, DecodeTokS: 10, ReadGBsBefore: tt.before, ReadGBsAfter: tt.after, ReadGBs: max(tt.before, tt.after)}
		var out bytes.Buffer
		modelbench.Fprint(&out, r)
		assert.Equal(t, tt.moved, strings.Contains(out.String(), "read bandwidth moved"), "%v → %v: %s", tt.before, tt.after, out.String())
		assert.Contains(t, out.String(), fmt.Sprintf("%.1f GB/s measured now", max(tt.before, tt.after)))
	}
}
