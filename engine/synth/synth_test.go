package synth_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
)

func TestWrittenModelLoads(t *testing.T) {
	for _, arch := range []string{"llama", "qwen2", "qwen3"} {
		for _, wt := range []gguf.GGMLType{gguf.F32, gguf.F16, gguf.Q8_0} {
			s := synth.Tiny(arch)
			s.Weights = wt
			s.Tied = arch == "qwen3"
			path := filepath.Join(t.TempDir(), "m.gguf")
			require.NoError(t, synth.WriteFile(path, s))
			src, err := model.Open(path)
			require.NoError(t, err)
			cfg := src.Config()
			assert.Equal(t, arch, cfg.Architecture)
			assert.Equal(t, s.Vocab, cfg.VocabSize)
			assert.Equal(t, s.Layers, cfg.Layers)
			assert.Equal(t, s.KVHeads, cfg.KVHeads)
			assert.Equal(t, s.Tied, cfg.TiedEmbeddings)
			assert.Equal(t, arch == "qwen2", cfg.AttnBias)
			assert.Equal(t, arch == "qwen3", cfg.QKNorm)
			var n uint64
			for _, ti := range src.Tensors() {
				n += ti.Elements()
				if len(ti.Dims) == 2 {
					assert.Equal(t, wt, ti.Type, ti.Name)
				}
			}
			extra := uint64(0)
			if arch == "qwen2" {
				extra = uint64(s.Layers * (s.Heads + 2*s.KVHeads) * s.HeadDim)
			}
			if arch == "qwen3" {
				extra = uint64(s.Layers * 2 * s.HeadDim)
			}
			assert.Equal(t, uint64(s.Params())+extra, n, "Params counts every weight")
			gs := src.(*model.GGUFSource)
			tok, err := tokenizer.FromGGUF(gs.File())
			require.NoError(t, err)
			ids := tok.Encode("the model said hello", tokenizer.EncodeOptions{})
			assert.Equal(t, "the model said hello", tok.Decode(ids[1:]))
			require.NoError(t, src.Close())
		}
	}
}

func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	s := synth.Tiny("llama")
	a, b := filepath.Join(dir, "a.gguf"), filepath.Join(dir, "b.gguf")
	require.NoError(t, synth.WriteFile(a, s))
	require.NoError(t, synth.WriteFile(b, s))
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	assert.True(t, bytes.Equal(ba, bb), "same spec, same bytes")
	s.Seed++
	require.NoError(t, synth.WriteFile(b, s))
	bb, _ = os.ReadFile(b)
	assert.False(t, bytes.Equal(ba, bb), "another seed, other weights")
}

func TestValidate(t *testing.T) {
	bad := []func(*synth.Spec){
		func(s *synth.Spec) { s.Arch = "gptj" },
		func(s *synth.Spec) { s.Vocab = 10 },
		func(s *synth.Spec) { s.KVHeads = 3 },
		func(s *synth.Spec) { s.HeadDim = 7 },
		func(s *synth.Spec) { s.Weights = gguf.Q4_K },
		func(s *synth.Spec) { s.Weights = gguf.Q8_0; s.FFN = 100 },
	}
	for i, edit := range bad {
		s := synth.Tiny("llama")
		edit(&s)
		assert.Error(t, s.Validate(), "case %d", i)
		assert.Error(t, synth.WriteFile(filepath.Join(t.TempDir(), "x.gguf"), s), "case %d", i)
	}
	assert.NoError(t, synth.Small().Validate())
	assert.NoError(t, synth.TinyLlamaShape().Validate())
	assert.InDelta(t, 1.1e9, float64(synth.TinyLlamaShape().Params()), 0.05e9)
}
