// Package synth writes synthetic Llama-family models: GGUF files with the
// shapes of a real model, a small SentencePiece-style vocabulary and a chat
// template, and seeded random weights. They exercise the whole engine
// without downloading anything; their output is meaningless text, and
// general.name says so.
package synth

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

// Spec describes a synthetic model.
type Spec struct {
	// Arch is "llama", "qwen2" (adds Q/K/V biases), "qwen3" (adds
	// QK-norm) or "phi3" (Q/K/V stored as one tensor, gate and up too).
	Arch                    string
	Vocab, Dim, FFN, Layers int
	Heads, KVHeads, HeadDim int
	Context                 int
	RopeBase                float64
	Tied                    bool
	// SlidingWindow, if positive, is written as the attention window.
	SlidingWindow int
	Seed          uint64
	// Weights is the GGML type of the matrices: F32, F16, BF16, Q8_0 or
	// Q4_0 (norms and biases are always F32).
	Weights gguf.GGMLType
}

// Tiny is a model small enough for unit tests.
func Tiny(arch string) Spec {
	return Spec{Arch: arch, Vocab: 384, Dim: 64, FFN: 160, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16,
		Context: 256, RopeBase: 10000, Seed: 1, Weights: gguf.F32}
}

// Small is the default model of `make run`: about 25M parameters.
func Small() Spec {
	return Spec{Arch: "llama", Vocab: 4096, Dim: 512, FFN: 1408, Layers: 8, Heads: 8, KVHeads: 4, HeadDim: 64,
		Context: 2048, RopeBase: 10000, Seed: 1, Weights: gguf.F16}
}

// TinyLlamaShape has TinyLlama 1.1B's shapes (its real vocabulary size,
// with the synthetic tokenizer's pieces repeated to fill it).
func TinyLlamaShape() Spec {
	return Spec{Arch: "llama", Vocab: 32000, Dim: 2048, FFN: 5632, Layers: 22, Heads: 32, KVHeads: 4, HeadDim: 64,
		Context: 2048, RopeBase: 10000, Seed: 1, Weights: gguf.F16}
}

// Validate checks the shapes.
func (s Spec) Validate() error {
	switch {
	case s.Arch != "llama" && s.Arch != "qwen2" && s.Arch != "qwen3" && s.Arch != "phi3":
		return fmt.Errorf("synth: architecture %q: want llama, qwen2, qwen3 or phi3", s.Arch)
	case s.Vocab < minVocab || s.Dim <= 0 || s.FFN <= 0 || s.Layers <= 0 || s.Context <= 0:
		return fmt.Errorf("synth: sizes must be positive and the vocabulary at least %d", minVocab)
	case s.Heads <= 0 || s.KVHeads <= 0 || s.Heads%s.KVHeads != 0 || s.HeadDim <= 0 || s.HeadDim%2 != 0:
		return fmt.Errorf("synth: heads %d/%d of %d do not fit", s.Heads, s.KVHeads, s.HeadDim)
	}
	switch s.Weights {
	case gguf.F32, gguf.F16, gguf.BF16:
	case gguf.Q8_0, gguf.Q4_0:
		if s.Dim%32 != 0 || s.FFN%32 != 0 || (s.Heads*s.HeadDim)%32 != 0 {
			return fmt.Errorf("synth: %s weights need dimensions that are multiples of 32", s.Weights)
		}
	default:
		return fmt.Errorf("synth: weight type %s not supported", s.Weights)
	}
	return nil
}

// Params returns the number of weights.
func (s Spec) Params() int64 {
	d, q, kv := int64(s.Dim), int64(s.Heads*s.HeadDim), int64(s.KVHeads*s.HeadDim)
	per := 2*d + d*q + 2*d*kv + q*d + 3*d*int64(s.FFN)
	n := int64(s.Vocab)*d + d + int64(s.Layers)*per
	if !s.Tied {
		n += int64(s.Vocab) * d
	}
	return n
}

// WriteFile writes the model to path atomically (a temporary file renamed
// into place).
func WriteFile(path string, s Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	w, err := build(s)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".synth-*.gguf")
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if _, err := w.WriteTo(bw); err != nil {
		tmp.Close()
		return fmt.Errorf("synth: write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("synth: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("synth: write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil { // CreateTemp makes it 0600
		return fmt.Errorf("synth: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

const minVocab = 3 + 256 + 8

// ChatTemplate is the ChatML template synthetic models carry.
const ChatTemplate = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

var words = strings.Fields(`the of and to in a is that for it as was with be by on not he I this are or his from at
which but have an they you were her she there been one all we their has would when if so no will more out up into do
any your what some can two may other time could these its than then only them also new about like over such our first
model token cache session state memory hello world story once upon little girl boy day happy cat dog sun tree`)

// vocab returns SentencePiece-style pieces: control tokens, 256 byte
// tokens, ChatML markers, every prefix of "▁"+word and single characters,
// filled up to n with pseudo-words.
func vocab(n int) (tokens []string, scores []float32, types []int32) {
	add := func(tok string, typ int32) {
		for _, t := range tokens {
			if t == tok {
				return
			}
		}
		tokens = append(tokens, tok)
		scores = append(scores, -float32(len(tokens)))
		types = append(types, typ)
	}
	add("<unk>", 2)
	add("<s>", 3)
	add("</s>", 3)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), 6)
	}
	add("<|im_start|>", 3)
	add("<|im_end|>", 3)
	add("▁", 1)
	for c := ' ' + 1; c < 127; c++ {
		add(string(c), 1)
	}
	for _, w := range words {
		p := "▁" + w
		for i := len("▁") + 1; i <= len(p) && len(tokens) < n; i++ {
			add(p[:i], 1)
		}
	}
	// Filler: pronounceable pseudo-words of two to four syllables.
	syl := strings.Fields("ka lo mi ne ru sa te vo zi pa do le ma ni so tu be ga hi ro")
	for i := 0; len(tokens) < n; i++ {
		w := "▁"
		for j, v := 0, i+len(syl); v > 0 || j < 2; j, v = j+1, v/len(syl) {
			w += syl[v%len(syl)]
		}
		add(w, 1)
	}
	return tokens[:n], scores[:n], types[:n]
}

// build assembles the GGUF writer for s.
func build(s Spec) (*gguf.Writer, error) {
	w := gguf.NewWriter()
	a := s.Arch
	tokens, scores, types := vocab(s.Vocab)
	kvs := []struct {
		k string
		v gguf.Value
	}{
		{"general.architecture", gguf.String(a)},
		{"general.name", gguf.String(fmt.Sprintf("synthetic %s (random weights, seed %d)", a, s.Seed))},
		{"general.file_type", gguf.Uint32(fileType(s.Weights))},
		{a + ".vocab_size", gguf.Uint32(uint32(s.Vocab))},
		{a + ".context_length", gguf.Uint32(uint32(s.Context))},
		{a + ".embedding_length", gguf.Uint32(uint32(s.Dim))},
		{a + ".feed_forward_length", gguf.Uint32(uint32(s.FFN))},
		{a + ".block_count", gguf.Uint32(uint32(s.Layers))},
		{a + ".attention.head_count", gguf.Uint32(uint32(s.Heads))},
		{a + ".attention.head_count_kv", gguf.Uint32(uint32(s.KVHeads))},
		{a + ".attention.key_length", gguf.Uint32(uint32(s.HeadDim))},
		{a + ".attention.value_length", gguf.Uint32(uint32(s.HeadDim))},
		{a + ".attention.layer_norm_rms_epsilon", gguf.Float32(1e-5)},
		{a + ".rope.freq_base", gguf.Float32(float32(s.RopeBase))},
		{a + ".rope.dimension_count", gguf.Uint32(uint32(s.HeadDim))},
		{"tokenizer.ggml.model", gguf.String("llama")},
		{"tokenizer.ggml.pre", gguf.String("default")},
		{"tokenizer.ggml.tokens", gguf.ArrayOf(tokens)},
		{"tokenizer.ggml.scores", gguf.ArrayOf(scores)},
		{"tokenizer.ggml.token_type", gguf.ArrayOf(types)},
		{"tokenizer.ggml.unknown_token_id", gguf.Uint32(0)},
		{"tokenizer.ggml.bos_token_id", gguf.Uint32(1)},
		{"tokenizer.ggml.eos_token_id", gguf.Uint32(2)},
		{"tokenizer.ggml.add_bos_token", gguf.Bool(true)},
		{"tokenizer.ggml.add_eos_token", gguf.Bool(false)},
		{"tokenizer.chat_template", gguf.String(ChatTemplate)},
	}
	if s.SlidingWindow > 0 {
		kvs = append(kvs, struct {
			k string
			v gguf.Value
		}{a + ".attention.sliding_window", gguf.Uint32(uint32(s.SlidingWindow))})
	}
	for _, kv := range kvs {
		if err := w.AddKV(kv.k, kv.v); err != nil {
			return nil, err
		}
	}
	rng := rand.New(rand.NewPCG(s.Seed, 0x6d6e656d6f))
	q, kv := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	var err error
	mat := func(name string, n, k int) {
		if err == nil {
			err = w.AddTensor(name, s.Weights, []uint64{uint64(k), uint64(n)}, encode(s.Weights, randn(rng, n*k, 1/math.Sqrt(float64(k))), k))
		}
	}
	// stacked writes matrices of ns rows of k as the rows of one tensor
	// (phi3's attn_qkv and gate-then-up ffn_up).
	stacked := func(name string, ns []int, k int) {
		var v []float32
		for _, n := range ns {
			v = append(v, randn(rng, n*k, 1/math.Sqrt(float64(k)))...)
		}
		if err == nil {
			err = w.AddTensor(name, s.Weights, []uint64{uint64(k), uint64(len(v) / k)}, encode(s.Weights, v, k))
		}
	}
	vec := func(name string, n int, mean, std float64) {
		if err == nil {
			v := randn(rng, n, std)
			for i := range v {
				v[i] += float32(mean)
			}
			err = w.AddTensor(name, gguf.F32, []uint64{uint64(n)}, encode(gguf.F32, v, n))
		}
	}
	if err == nil {
		err = w.AddTensor("token_embd.weight", s.Weights, []uint64{uint64(s.Dim), uint64(s.Vocab)},
			encode(s.Weights, randn(rng, s.Vocab*s.Dim, 1), s.Dim))
	}
	vec("output_norm.weight", s.Dim, 1, 0.1)
	if !s.Tied {
		mat("output.weight", s.Vocab, s.Dim)
	}
	for l := range s.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		vec(p+"attn_norm.weight", s.Dim, 1, 0.1)
		if s.Arch == "phi3" {
			stacked(p+"attn_qkv.weight", []int{q, kv, kv}, s.Dim)
		} else {
			mat(p+"attn_q.weight", q, s.Dim)
			mat(p+"attn_k.weight", kv, s.Dim)
			mat(p+"attn_v.weight", kv, s.Dim)
		}
		if s.Arch == "qwen2" {
			vec(p+"attn_q.bias", q, 0, 0.1)
			vec(p+"attn_k.bias", kv, 0, 0.1)
			vec(p+"attn_v.bias", kv, 0, 0.1)
		}
		if s.Arch == "qwen3" {
			vec(p+"attn_q_norm.weight", s.HeadDim, 1, 0.1)
			vec(p+"attn_k_norm.weight", s.HeadDim, 1, 0.1)
		}
		mat(p+"attn_output.weight", s.Dim, q)
		vec(p+"ffn_norm.weight", s.Dim, 1, 0.1)
		if s.Arch == "phi3" {
			stacked(p+"ffn_up.weight", []int{s.FFN, s.FFN}, s.Dim)
		} else {
			mat(p+"ffn_gate.weight", s.FFN, s.Dim)
			mat(p+"ffn_up.weight", s.FFN, s.Dim)
		}
		mat(p+"ffn_down.weight", s.Dim, s.FFN)
	}
	return w, err
}

func randn(rng *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * std)
	}
	return v
}

// encode stores rows of k values in GGML type t.
func encode(t gguf.GGMLType, v []float32, k int) []byte {
	var ft format.Type
	switch t {
	case gguf.F32:
		out := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
		}
		return out
	case gguf.F16:
		ft = format.F16
	case gguf.BF16:
		ft = format.BF16
	case gguf.Q8_0:
		ft = format.Q8_0
	case gguf.Q4_0:
		ft = format.Q4_0
	}
	rb := ft.RowBytes(k)
	out := make([]byte, len(v)/k*rb)
	for i := range len(v) / k {
		format.QuantizeRow(ft, out[i*rb:(i+1)*rb], v[i*k:(i+1)*k], format.Options{})
	}
	return out
}

// fileType returns llama.cpp's general.file_type for the weight type.
func fileType(t gguf.GGMLType) uint32 {
	switch t {
	case gguf.F16:
		return 1
	case gguf.Q4_0:
		return 2
	case gguf.Q8_0:
		return 7
	case gguf.BF16:
		return 32
	}
	return 0
}
