package llama_test

import (
	"context"
	"encoding/binary"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	_ "github.com/mnemo-ai/mnemo/engine/arch/llama"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/internal/testdata"
	"github.com/mnemo-ai/mnemo/kernels"
	"github.com/mnemo-ai/mnemo/kvcache"
)

func argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

// TestLlama2CReference runs the real llama2.c checkpoint with f32 weights
// and reproduces the reference implementation's greedy tokens and logits.
func TestLlama2CReference(t *testing.T) {
	path := testdata.Path(t, "llama2c", "model260k.bin")
	raw, err := os.ReadFile(testdata.Path(t, "llama2c", "greedy_bos_200.ids"))
	require.NoError(t, err)
	var want []int32
	for _, f := range strings.Fields(string(raw)) {
		id, err := strconv.Atoi(f)
		require.NoError(t, err)
		want = append(want, int32(id))
	}
	lraw, err := os.ReadFile(testdata.Path(t, "llama2c", "logits_bos_first8.f32"))
	require.NoError(t, err)

	src, err := model.Open(path)
	require.NoError(t, err)
	defer src.Close()
	for _, impl := range kernels.Impls() {
		t.Run(impl.Name, func(t *testing.T) {
			be, err := cpu.New(backend.Options{Kernels: impl.Name})
			require.NoError(t, err)
			m, err := engine.New(src, be, engine.Options{Weights: "f32", Logger: slog.New(slog.DiscardHandler)})
			require.NoError(t, err)
			defer func() {
				require.NoError(t, m.Close())
				require.NoError(t, be.Close())
			}()
			vocab := m.Config().VocabSize
			require.Equal(t, 512, vocab)
			seq := &engine.Seq{Table: &kvcache.Table{}}
			got := []int32{want[0]}
			for step := 0; step < len(want)-1; step++ {
				seq.Tokens = []int32{got[step]}
				out, err := m.Forward(context.Background(), []*engine.Seq{seq})
				require.NoError(t, err)
				row := out[0].Row(0)
				if step < 8 {
					for j := range vocab {
						ref := math.Float32frombits(binary.LittleEndian.Uint32(lraw[4*(step*vocab+j):]))
						require.InDelta(t, ref, row[j], 1e-4, "step %d logit %d", step, j)
					}
				}
				got = append(got, argmax(row))
			}
			assert.Equal(t, want, got)
			assert.Equal(t, len(want)-1, seq.Table.Len)
		})
	}
}
