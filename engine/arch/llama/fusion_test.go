package llama_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// matmulCounts runs one prefill step and one decode step with profiling
// and returns, per step, the matmul programs run, and how many of them
// were split (Parts) or GLU matmuls.
func matmulCounts(t *testing.T, m engine.Model) (all, split, glu int, logits [][]float32) {
	run := m.(profiler).Runner()
	run.SetProfiling(true)
	defer run.SetProfiling(false)
	seq := &engine.Seq{Table: &kvcache.Table{}, Tokens: testTokens[:5], AllLogits: true}
	defer seq.Table.Release(m.KV().Pool)
	for _, toks := range [][]int32{testTokens[:5], testTokens[5:6]} {
		seq.Tokens = toks
		out, err := m.Forward(context.Background(), []*engine.Seq{seq})
		require.NoError(t, err)
		for r := range out[0].Rows {
			logits = append(logits, out[0].Row(r))
		}
	}
	for _, p := range run.Profile() {
		if p.Spec.Op != backend.OpMatMul {
			continue
		}
		all += p.Calls
		if p.Spec.Parts != ([backend.MaxParts]int{}) {
			split += p.Calls
		}
		if p.Spec.GLU {
			glu += p.Calls
		}
	}
	return all / 2, split / 2, glu / 2, logits
}

// TestFusion checks that Q/K/V and gate/up run as one matmul each where
// their formats match, that the fused model computes what the unfused one
// does, and that NVFP4 (one scale per matrix) is not stacked.
func TestFusion(t *testing.T) {
	for _, tt := range []struct {
		arch, weights string
		fused         bool
		tol           float64
	}{
		{"llama", "f32", true, 1e-5},
		{"qwen2", "f32", true, 1e-5},
		{"qwen3", "f32", true, 1e-5},
		{"qwen2", "q8_0", true, 1e-4},
		{"llama", "mxfp4", true, 1e-4},
		{"llama", "fp8", true, 1e-4},
		{"llama", "nvfp4", false, 1e-4},
	} {
		t.Run(tt.arch+"/"+tt.weights, func(t *testing.T) {
			s := synth.Tiny(tt.arch)
			path := writeSynth(t, s)
			fused := openModel(t, path, "", engine.Options{Weights: tt.weights, BlockTokens: 4})
			apart := openModel(t, path, "", engine.Options{Weights: tt.weights, BlockTokens: 4, Unfused: true})
			all, split, glu, got := matmulCounts(t, fused)
			wantAll, _, _, want := matmulCounts(t, apart)
			assert.Equal(t, 7*s.Layers+1, wantAll, "unfused: 7 matmuls per layer and the logits")
			if tt.fused {
				assert.Equal(t, 4*s.Layers+1, all, "fused: qkv, wo, gate+up, down per layer and the logits")
				assert.Equal(t, s.Layers, split, "one split QKV matmul per layer")
				assert.Equal(t, s.Layers, glu, "one GLU matmul per layer")
			} else {
				assert.Equal(t, wantAll, all, "%s matrices are never stacked", tt.weights)
			}
			require.Len(t, got, len(want))
			for i := range want {
				assert.Less(t, relErr(got[i], want[i]), tt.tol, "logits row %d", i)
			}
		})
	}
}

// TestFusionMixedFormats rewrites a model so that layer 0's K and layer
// 1's up projection are stored as f32 beside f16 matrices: those layers
// must run that group apart, the others fused, with the logits unchanged.
func TestFusionMixedFormats(t *testing.T) {
	s := synth.Tiny("qwen2")
	s.Weights = gguf.F16
	s.Layers = 3
	src := writeSynth(t, s)
	f, err := gguf.Open(src)
	require.NoError(t, err)
	defer f.Close()
	w := gguf.NewWriter()
	for _, kv := range f.KVs() {
		require.NoError(t, w.AddKV(kv.Key, kv.Value))
	}
	for _, ti := range f.Tensors() {
		if ti.Name == "blk.0.attn_k.weight" || ti.Name == "blk.1.ffn_up.weight" {
			v, err := f.Dequantize(ti.Name)
			require.NoError(t, err)
			require.NoError(t, w.AddTensorF32(ti.Name, ti.Dims, v))
			continue
		}
		data, err := f.TensorData(ti.Name)
		require.NoError(t, err)
		require.NoError(t, w.AddTensor(ti.Name, ti.Type, ti.Dims, data))
	}
	path := filepath.Join(t.TempDir(), "mixed.gguf")
	require.NoError(t, w.WriteFile(path))

	mixed := openModel(t, path, "", engine.Options{BlockTokens: 4})
	apart := openModel(t, path, "", engine.Options{BlockTokens: 4, Unfused: true})
	all, split, glu, got := matmulCounts(t, mixed)
	_, _, _, want := matmulCounts(t, apart)
	// Layer 0: q, k, v apart + wo + gate/up + down = 6; layer 1: qkv + wo
	// + gate, up apart + down = 5; layer 2: 4; and the logits.
	assert.Equal(t, 6+5+4+1, all)
	assert.Equal(t, 2, split, "layers 1 and 2 fuse Q/K/V")
	assert.Equal(t, 2, glu, "layers 0 and 2 fuse gate/up")
	require.Len(t, got, len(want))
	for i := range want {
		assert.Less(t, relErr(got[i], want[i]), 1e-5, "logits row %d", i)
	}
	assert.Equal(t, mixed.(interface{ WeightBytes() int64 }).WeightBytes(), apart.(interface{ WeightBytes() int64 }).WeightBytes(),
		"stacking stores the same bytes")
}

// relErr returns max |got − want| / max |want|.
func relErr(got, want []float32) float64 {
	w := make([]float64, len(want))
	for i, v := range want {
		w[i] = float64(v)
	}
	return maxRelErr(got, w)
}

// TestPhi3StoredFused: phi3 files store Q, K and V as one tensor and gate
// then up as ffn_up; they run as one split and one GLU matmul per layer
// in every weight format (NVFP4 too: the file's matrix is one tensor),
// Unfused or not, and a backend that cannot split them is refused with an
// error naming the tensor.
func TestPhi3StoredFused(t *testing.T) {
	s := synth.Tiny("phi3")
	path := writeSynth(t, s)
	for _, weights := range []string{"f32", "q8_0", "nvfp4"} {
		for _, unfused := range []bool{false, true} {
			m := openModel(t, path, "", engine.Options{Weights: weights, BlockTokens: 4, Unfused: unfused})
			all, split, glu, _ := matmulCounts(t, m)
			assert.Equal(t, 4*s.Layers+1, all, "%s unfused=%v", weights, unfused)
			assert.Equal(t, s.Layers, split)
			assert.Equal(t, s.Layers, glu)
		}
	}
}

// noSplit is a CPU backend that refuses split and GLU matmuls, like the
// neuron backend.
type noSplit struct{ *cpu.Backend }

func (b noSplit) Supports(s backend.Spec) error {
	if s.Parts != ([backend.MaxParts]int{}) || s.GLU {
		return fmt.Errorf("%w: no split or GLU matmuls", backend.ErrUnsupported)
	}
	return b.Backend.Supports(s)
}

func TestPhi3NeedsSplitMatmuls(t *testing.T) {
	path := writeSynth(t, synth.Tiny("phi3"))
	src, err := model.Open(path)
	require.NoError(t, err)
	defer src.Close()
	be0, err := cpu.New(backend.Options{})
	require.NoError(t, err)
	_, err = engine.New(src, noSplit{be0}, engine.Options{Weights: "f32", BlockTokens: 4, Logger: slog.New(slog.DiscardHandler)})
	require.ErrorIs(t, err, backend.ErrUnsupported)
	assert.Contains(t, err.Error(), "blk.0.attn_qkv.weight is stored fused")
	require.NoError(t, be0.Close(), "nothing left allocated")
	be, err := cpu.New(backend.Options{})
	require.NoError(t, err)
	defer be.Close()

	// The other architectures fall back to separate matrices.
	lpath := writeSynth(t, synth.Tiny("llama"))
	lsrc, err := model.Open(lpath)
	require.NoError(t, err)
	defer lsrc.Close()
	m, err := engine.New(lsrc, noSplit{be}, engine.Options{Weights: "f32", BlockTokens: 4, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	all, split, glu, _ := matmulCounts(t, m)
	assert.Equal(t, 7*2+1, all)
	assert.Zero(t, split+glu)
	require.NoError(t, m.Close())
}

// TestSlidingWindow: a model whose attention slides over a window (phi3)
// runs with its context capped at the window, where sliding attention is
// full attention, and refuses a longer context rather than attending past
// the window.
func TestSlidingWindow(t *testing.T) {
	s := synth.Tiny("phi3")
	s.SlidingWindow = 64
	path := writeSynth(t, s)
	src, err := model.Open(path)
	require.NoError(t, err)
	defer src.Close()
	assert.Equal(t, 64, src.Config().SlidingWindow)
	be, err := cpu.New(backend.Options{})
	require.NoError(t, err)
	defer be.Close()
	quiet := slog.New(slog.DiscardHandler)
	_, err = engine.New(src, be, engine.Options{ContextLength: 65, Logger: quiet})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "attention window of 64 tokens")
	m, err := engine.New(src, be, engine.Options{Logger: quiet})
	require.NoError(t, err)
	defer m.Close()
	seq := &engine.Seq{Table: &kvcache.Table{}, Tokens: make([]int32, 65)}
	_, err = m.Forward(context.Background(), []*engine.Seq{seq})
	assert.ErrorIs(t, err, engine.ErrContextFull, "the default context is the window")
	seq.Table.Release(m.KV().Pool)
}
