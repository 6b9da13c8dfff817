package llama_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/gguf"
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
