package model_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/internal/testdata"
	"github.com/mnemo-ai/mnemo/kernels"
)

func kv(key string, v gguf.Value) gguf.KV { return gguf.KV{Key: key, Value: v} }

// llamaKVs is a tiny llama's metadata: dim 16, 2 layers, 4 heads, 2 KV heads.
func llamaKVs(arch string) []gguf.KV {
	return []gguf.KV{
		kv("general.architecture", gguf.String(arch)),
		kv("general.name", gguf.String("tiny")),
		kv(arch+".block_count", gguf.Uint32(2)),
		kv(arch+".embedding_length", gguf.Uint32(16)),
		kv(arch+".feed_forward_length", gguf.Uint32(24)),
		kv(arch+".attention.head_count", gguf.Uint32(4)),
		kv(arch+".attention.head_count_kv", gguf.Uint32(2)),
		kv(arch+".context_length", gguf.Uint64(128)),
		kv(arch+".attention.layer_norm_rms_epsilon", gguf.Float32(1e-6)),
		kv("tokenizer.ggml.tokens", gguf.ArrayOf([]string{"a", "b", "c", "d", "e"})),
	}
}

type tensor struct {
	name string
	dims []uint64
	data []float32 // nil: zeros
}

func writeGGUF(t *testing.T, kvs []gguf.KV, tensors []tensor) *gguf.File {
	t.Helper()
	w := gguf.NewWriter()
	for _, x := range kvs {
		require.NoError(t, w.AddKV(x.Key, x.Value))
	}
	for _, x := range tensors {
		n := uint64(4)
		for _, d := range x.dims {
			n *= d
		}
		data := make([]byte, n)
		for i, v := range x.data {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
		}
		require.NoError(t, w.AddTensor(x.name, gguf.F32, x.dims, data))
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	require.NoError(t, w.WriteFile(path))
	f, err := gguf.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestConfigFromGGUF(t *testing.T) {
	t.Run("llama defaults", func(t *testing.T) {
		kvs := llamaKVs("llama")
		kvs = append(kvs[:6], kvs[7:]...) // no head_count_kv: defaults to head_count
		f := writeGGUF(t, kvs, []tensor{{"token_embd.weight", []uint64{16, 5}, nil}})
		c, err := model.ConfigFromGGUF(f)
		require.NoError(t, err)
		assert.Equal(t, model.Config{
			Architecture: "llama", Name: "tiny", VocabSize: 5, EmbeddingDim: 16, FFNDim: 24, Layers: 2,
			Heads: 4, KVHeads: 4, HeadDim: 4, ValueHeadDim: 4, ContextLength: 128,
			NormEpsilon: float64(float32(1e-6)), RopeBase: 10000, RopeDims: 4, RopeStyle: model.RopeNormal,
			RopeScaling: model.RopeScaling{Type: "none", Factor: 1}, TiedEmbeddings: true,
		}, c)
	})
	t.Run("llama3 scaling", func(t *testing.T) {
		kvs := append(llamaKVs("llama"),
			kv("llama.rope.freq_base", gguf.Float32(500000)),
			kv("llama.rope.dimension_count", gguf.Uint32(2)),
			kv("llama.rope.scaling.type", gguf.String("llama3")),
			kv("llama.rope.scaling.factor", gguf.Float32(8)),
			kv("llama.rope.scaling.original_context_length", gguf.Uint32(8192)),
			kv("llama.vocab_size", gguf.Uint32(7)),
		)
		f := writeGGUF(t, kvs, []tensor{{"output.weight", []uint64{16, 7}, nil}, {"rope_freqs.weight", []uint64{2}, nil}})
		c, err := model.ConfigFromGGUF(f)
		require.NoError(t, err)
		assert.Equal(t, 500000.0, c.RopeBase)
		assert.Equal(t, 2, c.RopeDims)
		assert.Equal(t, model.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContextLength: 8192}, c.RopeScaling)
		assert.True(t, c.RopeFreqs)
		assert.False(t, c.TiedEmbeddings)
		assert.Equal(t, 7, c.VocabSize, "<arch>.vocab_size wins over the token list")
	})
	t.Run("linear scaling", func(t *testing.T) {
		f := writeGGUF(t, append(llamaKVs("llama"), kv("llama.rope.scaling.factor", gguf.Float32(2))), nil)
		c, err := model.ConfigFromGGUF(f)
		require.NoError(t, err)
		assert.Equal(t, model.RopeScaling{Type: "linear", Factor: 2}, c.RopeScaling)
	})
	t.Run("qwen3", func(t *testing.T) {
		kvs := append(llamaKVs("qwen3"), kv("qwen3.attention.key_length", gguf.Uint32(8)), kv("qwen3.attention.value_length", gguf.Uint32(8)))
		f := writeGGUF(t, kvs, []tensor{{"blk.0.attn_q_norm.weight", []uint64{8}, nil}})
		c, err := model.ConfigFromGGUF(f)
		require.NoError(t, err)
		assert.Equal(t, model.RopeNeox, c.RopeStyle)
		assert.Equal(t, 8, c.HeadDim)
		assert.Equal(t, 8, c.RopeDims)
		assert.True(t, c.QKNorm)
		assert.False(t, c.AttnBias)
	})
	t.Run("qwen2", func(t *testing.T) {
		f := writeGGUF(t, llamaKVs("qwen2"), []tensor{{"blk.0.attn_q.bias", []uint64{16}, nil}})
		c, err := model.ConfigFromGGUF(f)
		require.NoError(t, err)
		assert.Equal(t, model.RopeNeox, c.RopeStyle)
		assert.True(t, c.AttnBias)
		assert.False(t, c.QKNorm)
	})
}

// with returns llamaKVs("llama") with key set to v (appended if new) or
// removed when v is the zero Value.
func with(key string, v gguf.Value) []gguf.KV {
	var out []gguf.KV
	found := false
	for _, x := range llamaKVs("llama") {
		if x.Key == key {
			found = true
			if v.Valid() {
				out = append(out, kv(key, v))
			}
			continue
		}
		out = append(out, x)
	}
	if !found && v.Valid() {
		out = append(out, kv(key, v))
	}
	return out
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		kvs  []gguf.KV
		msg  string
	}{
		{"no architecture", with("general.architecture", gguf.Value{}), "general.architecture: key not found"},
		{"missing block_count", with("llama.block_count", gguf.Value{}), "missing required key llama.block_count"},
		{"missing epsilon", with("llama.attention.layer_norm_rms_epsilon", gguf.Value{}), "missing required key llama.attention.layer_norm_rms_epsilon"},
		{"string block_count", with("llama.block_count", gguf.String("2")), "llama.block_count is string"},
		{"negative heads", with("llama.attention.head_count", gguf.Int32(-4)), "llama.attention.head_count is negative"},
		{"per-layer heads", with("llama.attention.head_count", gguf.ArrayOf([]int32{4, 4})), "llama.attention.head_count is a per-layer array"},
		{"heads not dividing embedding", with("llama.attention.head_count", gguf.Uint32(3)), "llama.attention.head_count 3 does not divide llama.embedding_length 16"},
		{"kv heads not dividing heads", with("llama.attention.head_count_kv", gguf.Uint32(3)), "llama.attention.head_count_kv 3 does not divide llama.attention.head_count 4"},
		{"zero layers", with("llama.block_count", gguf.Uint32(0)), "llama.block_count is 0"},
		{"zero kv heads", with("llama.attention.head_count_kv", gguf.Uint32(0)), "llama.attention.head_count_kv is 0"},
		{"absurd ffn", with("llama.feed_forward_length", gguf.Uint64(1<<40)), "llama.feed_forward_length is 1099511627776, too large"},
		{"absurd context", with("llama.context_length", gguf.Uint32(1<<30)), "llama.context_length is 1073741824, want 1.."},
		{"odd rope dims", with("llama.rope.dimension_count", gguf.Uint32(3)), "llama.rope.dimension_count 3 must be even"},
		{"zero epsilon", with("llama.attention.layer_norm_rms_epsilon", gguf.Float32(0)), "llama.attention.layer_norm_rms_epsilon is 0"},
		{"nan rope base", with("llama.rope.freq_base", gguf.Float32(float32(math.NaN()))), "llama.rope.freq_base is NaN"},
		{"no vocab", with("tokenizer.ggml.tokens", gguf.Value{}), "vocabulary size unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := writeGGUF(t, c.kvs, nil)
			_, err := model.ConfigFromGGUF(f)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
}

func TestOpenGGUF(t *testing.T) {
	w := gguf.NewWriter()
	for _, x := range llamaKVs("llama") {
		require.NoError(t, w.AddKV(x.Key, x.Value))
	}
	emb := make([]byte, 16*5*4)
	binary.LittleEndian.PutUint32(emb[4:], math.Float32bits(2.5))
	require.NoError(t, w.AddTensor("token_embd.weight", gguf.F32, []uint64{16, 5}, emb))
	require.NoError(t, w.AddTensor("output_norm.weight", gguf.F16, []uint64{16}, make([]byte, 32)))
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, w.WriteFile(path))

	s, err := model.Open(path)
	require.NoError(t, err)
	defer s.Close()
	assert.IsType(t, &model.GGUFSource{}, s)
	assert.Equal(t, 16, s.Config().EmbeddingDim)
	require.Len(t, s.Tensors(), 2)
	e, err := s.Tensor("token_embd.weight")
	require.NoError(t, err)
	assert.Equal(t, gguf.F32, e.Type)
	assert.Equal(t, []uint64{16, 5}, e.Dims)
	assert.Equal(t, uint64(80), e.Elements())
	assert.Equal(t, emb, e.Data)
	n, err := s.Tensor("output_norm.weight")
	require.NoError(t, err)
	assert.Equal(t, gguf.F16, n.Type)

	_, err = s.Tensor("blk.0.attn_q.weight")
	assert.ErrorIs(t, err, model.ErrTensorNotFound)
	assert.ErrorContains(t, err, `"blk.0.attn_q.weight"`)
	assert.ErrorContains(t, err, path)
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.bin")
	require.NoError(t, os.WriteFile(junk, []byte("hello world, not a model at all"), 0o644))
	_, err := model.Open(junk)
	assert.ErrorContains(t, err, "not a GGUF file and not a llama2.c checkpoint")

	bad := filepath.Join(dir, "bad.gguf")
	require.NoError(t, os.WriteFile(bad, []byte("GGUF\x03\x00\x00\x00"), 0o644))
	_, err = model.Open(bad)
	assert.ErrorContains(t, err, "header.tensor_count")
	assert.ErrorContains(t, err, bad)

	noCfg := filepath.Join(dir, "nocfg.gguf")
	w := gguf.NewWriter()
	require.NoError(t, w.AddKV("general.architecture", gguf.String("llama")))
	require.NoError(t, w.WriteFile(noCfg))
	_, err = model.Open(noCfg)
	assert.ErrorContains(t, err, "missing required key llama.embedding_length")

	_, err = model.Open(filepath.Join(dir, "absent.gguf"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestOpenLlama2C(t *testing.T) {
	// dim 8, hidden 12, 1 layer, 2 heads, 1 kv head, vocab 3 (separate
	// classifier), seq_len 4.
	hdr := []int32{8, 12, 1, 2, 1, -3, 4}
	floats := 3*8 + (8 + 64 + 32 + 32 + 64 + 8 + 3*96) + 8 + 4*4 + 3*8
	b := make([]byte, 0, 28+4*floats)
	for _, v := range hdr {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	b = append(b, make([]byte, 4*floats)...)
	path := filepath.Join(t.TempDir(), "tiny.bin")
	require.NoError(t, os.WriteFile(path, b, 0o644))

	s, err := model.Open(path)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, model.Config{
		Architecture: "llama", VocabSize: 3, EmbeddingDim: 8, FFNDim: 12, Layers: 1, Heads: 2, KVHeads: 1,
		HeadDim: 4, ValueHeadDim: 4, ContextLength: 4, NormEpsilon: 1e-5, RopeBase: 10000, RopeDims: 4,
		RopeStyle: model.RopeNormal, RopeScaling: model.RopeScaling{Type: "none", Factor: 1},
	}, s.Config())
	require.NoError(t, s.Config().Validate())
	out, err := s.Tensor("output.weight")
	require.NoError(t, err)
	assert.Equal(t, []uint64{8, 3}, out.Dims)
	assert.Len(t, out.Data, 96)
	_, err = s.Tensor("blk.1.attn_q.weight")
	assert.ErrorIs(t, err, model.ErrTensorNotFound)
	assert.ErrorContains(t, err, path)
	assert.Len(t, s.Tensors(), 1+9+1+1)
}

func TestModel260K(t *testing.T) {
	path := testdata.Path(t, "llama2c", "model260k.bin")
	s, err := model.Open(path)
	require.NoError(t, err)
	defer s.Close()
	c := s.Config()
	assert.Equal(t, 64, c.EmbeddingDim)
	assert.Equal(t, 5, c.Layers)
	assert.Equal(t, 8, c.Heads)
	assert.Equal(t, 4, c.KVHeads)
	assert.Equal(t, 8, c.HeadDim)
	assert.Equal(t, 512, c.VocabSize)
	assert.Equal(t, 512, c.ContextLength)
	assert.True(t, c.TiedEmbeddings)
	_, err = s.Tensor("output.weight")
	assert.ErrorIs(t, err, model.ErrTensorNotFound)
}

func TestTensorFloat32s(t *testing.T) {
	x := model.Tensor{Name: "w", Type: gguf.F16, Dims: []uint64{2}, Data: []byte{0x00, 0x3C, 0x00, 0xC0}}
	got, err := x.Float32s()
	require.NoError(t, err)
	assert.Equal(t, []float32{1, -2}, got)

	x = model.Tensor{Name: "blk.0.w", Type: gguf.IQ4_XS, Dims: []uint64{256}, Data: make([]byte, 136)}
	_, err = x.Float32s()
	assert.ErrorIs(t, err, gguf.ErrUnsupportedType)
	assert.ErrorContains(t, err, `tensor "blk.0.w"`)
	assert.ErrorContains(t, err, "iq4_xs")

	x = model.Tensor{Name: "short", Type: gguf.F32, Dims: []uint64{4}, Data: make([]byte, 8)}
	_, err = x.Float32s()
	assert.ErrorContains(t, err, `tensor "short"`)
}

func FuzzConfigFromGGUF(f *testing.F) {
	for _, arch := range []string{"llama", "qwen3"} {
		w := gguf.NewWriter()
		for _, x := range llamaKVs(arch) {
			if err := w.AddKV(x.Key, x.Value); err != nil {
				f.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := gguf.ParseBytes(data)
		if err != nil {
			return
		}
		c, err := model.ConfigFromGGUF(file)
		if err != nil {
			return
		}
		// Whatever is accepted is valid and consistent.
		require.NoError(t, c.Validate())
		assert.Zero(t, c.Heads%c.KVHeads)
		assert.LessOrEqual(t, c.RopeDims, c.HeadDim)
	})
}

// llama3Factors is how llama.cpp's converter writes rope_freqs.weight for
// Llama 3 scaling: one divisor per rotary frequency.
func llama3Factors(dims int, base, factor, low, high float64, orig int) []float32 {
	out := make([]float32, dims/2)
	for i := range out {
		wave := 2 * math.Pi * math.Pow(base, 2*float64(i)/float64(dims))
		switch {
		case wave < float64(orig)/high:
			out[i] = 1
		case wave > float64(orig)/low:
			out[i] = float32(factor)
		default:
			s := (float64(orig)/wave - low) / (high - low)
			out[i] = float32(1 / ((1-s)/factor + s))
		}
	}
	return out
}

func writeRopeFreqs(t *testing.T, kvs []gguf.KV, factors []float32) *gguf.File {
	t.Helper()
	return writeGGUF(t, kvs, []tensor{{"rope_freqs.weight", []uint64{uint64(len(factors))}, factors}})
}

// TestRopeFreqsTensor: a file whose Llama 3 scaling is only the
// rope_freqs.weight tensor (as llama.cpp writes Llama 3.1 and 3.2) gets
// scaling parameters that reproduce the tensor's frequencies; divisors
// that Llama 3 scaling cannot express are refused.
func TestRopeFreqsTensor(t *testing.T) {
	const base = 500000.0
	// One head, all rotary: 16 dimensions put one frequency between the
	// thresholds of Llama 3.1's scaling, 128 (as in the real models) many.
	headMeta := func(dims int) []gguf.KV {
		meta := append(llamaKVs("llama"), kv("llama.rope.freq_base", gguf.Float32(base)),
			kv("llama.attention.key_length", gguf.Uint32(uint32(dims))), kv("llama.attention.value_length", gguf.Uint32(uint32(dims))))
		for i, x := range meta {
			if x.Key == "llama.attention.head_count" || x.Key == "llama.attention.head_count_kv" {
				meta[i].Value = gguf.Uint32(1)
			}
		}
		return meta
	}
	const dims = 16
	meta := headMeta(dims)
	for _, dims := range []int{16, 128} {
		t.Run(fmt.Sprint("dims=", dims), func(t *testing.T) { testRopeFreqs(t, headMeta(dims), dims, base) })
	}
	for _, tc := range []struct {
		name    string
		factors []float32
		msg     string
	}{
		{"wrong length", []float32{1, 1, 8}, "3 values"},
		{"below one", []float32{1, 0.5, 1, 1, 1, 1, 1, 1}, "divisors >= 1"},
		{"decreasing", []float32{1, 1, 8, 8, 8, 4, 8, 8}, "not decreasing"},
		{"NaN", []float32{1, 1, float32(math.NaN()), 8, 8, 8, 8, 8}, "divisors >= 1"},
		{"not llama3", []float32{1, 1.1, 1.2, 1.3, 5, 7.5, 7.9, 8}, "Llama 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.ConfigFromGGUF(writeRopeFreqs(t, meta, tc.factors))
			require.Error(t, err)
			assert.Contains(t, err.Error(), "rope_freqs.weight")
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func testRopeFreqs(t *testing.T, meta []gguf.KV, dims int, base float64) {
	for _, tc := range []struct {
		name              string
		factor, low, high float64
		orig              int
		wantScaled        bool
	}{
		{"llama 3.1", 8, 1, 4, 8192, true},
		{"llama 3.2", 32, 1, 4, 8192, true},
		{"other thresholds", 16, 2, 7, 4096, true},
		{"a step", 8, 1, 1.0001, 8192, true},
		{"all ones", 1, 1, 4, 8192, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			factors := llama3Factors(dims, base, tc.factor, tc.low, tc.high, tc.orig)
			c, err := model.ConfigFromGGUF(writeRopeFreqs(t, meta, factors))
			require.NoError(t, err)
			assert.True(t, c.RopeFreqs)
			if !tc.wantScaled {
				assert.Equal(t, "none", c.RopeScaling.Type)
				return
			}
			require.Equal(t, "llama3", c.RopeScaling.Type)
			assert.InDelta(t, tc.factor, c.RopeScaling.Factor, 1e-6)
			s := c.RopeScaling
			got := kernels.RopeFreqs(dims, base, kernels.RopeScaling{Factor: s.Factor, LowFreqFactor: s.LowFreqFactor,
				HighFreqFactor: s.HighFreqFactor, OrigContext: s.OriginalContextLength})
			plain := kernels.RopeFreqs(dims, base, kernels.RopeScaling{})
			for i := range got {
				assert.InEpsilon(t, plain[i]/float64(factors[i]), got[i], 1e-5, "frequency %d", i)
			}
		})
	}
}

func TestPhi3Config(t *testing.T) {
	kvs := append(llamaKVs("phi3"), kv("phi3.attention.sliding_window", gguf.Uint32(2047)))
	c, err := model.ConfigFromGGUF(writeGGUF(t, kvs, nil))
	require.NoError(t, err)
	assert.Equal(t, 2047, c.SlidingWindow)
	assert.Equal(t, model.RopeNeox, c.RopeStyle)

	_, err = model.ConfigFromGGUF(writeGGUF(t, llamaKVs("phi3"), []tensor{{"rope_factors_long.weight", []uint64{2}, nil}}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "LongRoPE")
}
