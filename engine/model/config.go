// Package model holds what every model loader produces: the typed model
// configuration (Config, decoded once from file metadata) and the weight
// source (Source: named tensors, whatever the file format). Open detects
// the format (GGUF or a llama2.c checkpoint) and returns a Source.
package model

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/kernels"
)

// RopeStyle says which elements of a head RoPE rotates together.
type RopeStyle int

const (
	// RopeNormal rotates adjacent pairs (x[2i], x[2i+1]): llama.cpp's
	// LLAMA_ROPE_TYPE_NORM, used by llama and llama2.c.
	RopeNormal RopeStyle = iota
	// RopeNeox rotates the two halves (x[i], x[i+d/2]): GPT-NeoX style,
	// used by qwen2 and qwen3.
	RopeNeox
)

// String returns "normal" or "neox".
func (s RopeStyle) String() string {
	switch s {
	case RopeNormal:
		return "normal"
	case RopeNeox:
		return "neox"
	}
	return fmt.Sprintf("RopeStyle(%d)", int(s))
}

// RopeScaling describes context-extension scaling of the RoPE frequencies.
type RopeScaling struct {
	// Type is "none", "linear", "yarn", "llama3" or another name from the
	// file's <arch>.rope.scaling.type.
	Type string
	// Factor is the context scaling factor (1 when none).
	Factor float64
	// LowFreqFactor and HighFreqFactor are llama3's wavelength bounds.
	LowFreqFactor, HighFreqFactor float64
	// OriginalContextLength is the context length the model was trained
	// with before scaling (0 if unknown).
	OriginalContextLength int
}

// Config is a model's hyperparameters: everything a forward pass needs to
// know about shapes and numerics.
type Config struct {
	Architecture string // general.architecture: "llama", "qwen2", "qwen3", ...
	Name         string // general.name, if any

	VocabSize     int
	EmbeddingDim  int // <arch>.embedding_length
	FFNDim        int // <arch>.feed_forward_length (hidden size of the MLP)
	Layers        int // <arch>.block_count
	Heads         int // <arch>.attention.head_count
	KVHeads       int // <arch>.attention.head_count_kv (grouped-query attention)
	HeadDim       int // <arch>.attention.key_length, default EmbeddingDim/Heads
	ValueHeadDim  int // <arch>.attention.value_length, default HeadDim
	ContextLength int // <arch>.context_length (training context)

	NormEpsilon float64 // <arch>.attention.layer_norm_rms_epsilon

	RopeBase    float64 // <arch>.rope.freq_base, default 10000
	RopeDims    int     // <arch>.rope.dimension_count, default HeadDim
	RopeStyle   RopeStyle
	RopeScaling RopeScaling
	// SlidingWindow is <arch>.attention.sliding_window: each token attends
	// to at most this many (0: all). Within it, that is full attention.
	SlidingWindow int
	// RopeFreqs is true when the file has a rope_freqs.weight tensor of
	// per-frequency divisors (how llama.cpp stores llama3 scaling); without
	// llama3 metadata, ConfigFromGGUF turns it into RopeScaling.
	RopeFreqs bool

	// TiedEmbeddings is true when there is no output.weight and the token
	// embedding doubles as the output projection.
	TiedEmbeddings bool
	// QKNorm is true when queries and keys are RMS-normalised per head
	// before RoPE (qwen3: blk.N.attn_q_norm.weight, attn_k_norm.weight).
	QKNorm bool
	// AttnBias is true when the Q, K and V projections have biases
	// (qwen2: blk.N.attn_q.bias, ...).
	AttnBias bool

	// ExpertCount and ExpertUsedCount are the mixture-of-experts sizes (0
	// for dense models).
	ExpertCount, ExpertUsedCount int
}

// Limits Validate enforces, far above any real model, so that size
// arithmetic downstream cannot overflow.
const (
	maxDim     = 1 << 20
	maxVocab   = 1 << 24
	maxLayers  = 1 << 12
	maxHeads   = 1 << 12
	maxContext = 1 << 26
)

// neoxArchs use the half-split RoPE (llama.cpp's LLAMA_ROPE_TYPE_NEOX).
var neoxArchs = map[string]bool{
	"qwen": true, "qwen2": true, "qwen2moe": true, "qwen3": true, "qwen3moe": true,
	"phi2": true, "phi3": true, "gemma": true, "gemma2": true, "gemma3": true,
	"falcon": true, "gptneox": true, "stablelm": true, "starcoder2": true, "olmo2": true,
}

// RopeStyleFor returns the RoPE style llama.cpp uses for an architecture.
func RopeStyleFor(arch string) RopeStyle {
	if neoxArchs[arch] {
		return RopeNeox
	}
	return RopeNormal
}

// key returns "<arch>.<suffix>".
func (c Config) key(suffix string) string { return c.Architecture + "." + suffix }

// ConfigFromGGUF decodes the configuration from a GGUF file's metadata
// (general.architecture and the <arch>.* keys), applying llama.cpp's
// defaults, and validates it. Tensor presence decides TiedEmbeddings,
// QKNorm, AttnBias and RopeFreqs.
func ConfigFromGGUF(f *gguf.File) (Config, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return Config{}, fmt.Errorf("model: %w", err)
	}
	c := Config{Architecture: arch, RopeStyle: RopeStyleFor(arch)}
	c.Name, _ = f.String("general.name")

	r := reader{f: f, arch: arch}
	c.EmbeddingDim = r.int("embedding_length", true, 0)
	c.Layers = r.int("block_count", true, 0)
	c.FFNDim = r.int("feed_forward_length", true, 0)
	c.Heads = r.int("attention.head_count", true, 0)
	c.KVHeads = r.int("attention.head_count_kv", false, c.Heads)
	c.ContextLength = r.int("context_length", true, 0)
	c.NormEpsilon = r.float("attention.layer_norm_rms_epsilon", true, 0)
	c.ExpertCount = r.int("expert_count", false, 0)
	c.ExpertUsedCount = r.int("expert_used_count", false, 0)
	if r.err != nil {
		return Config{}, r.err
	}
	defHead := 0
	if _, ok := f.Get(c.key("attention.key_length")); !ok && c.Heads > 0 {
		if c.EmbeddingDim%c.Heads != 0 {
			return Config{}, fmt.Errorf("model: %s %d does not divide %s %d (and %s is not set)",
				c.key("attention.head_count"), c.Heads, c.key("embedding_length"), c.EmbeddingDim, c.key("attention.key_length"))
		}
		defHead = c.EmbeddingDim / c.Heads
	}
	c.HeadDim = r.int("attention.key_length", false, defHead)
	c.ValueHeadDim = r.int("attention.value_length", false, c.HeadDim)
	c.RopeDims = r.int("rope.dimension_count", false, c.HeadDim)
	c.RopeBase = r.float("rope.freq_base", false, 10000)

	c.RopeScaling = RopeScaling{Type: "none", Factor: 1}
	if s, err := f.String(c.key("rope.scaling.type")); err == nil {
		c.RopeScaling.Type = s
	} else if !errors.Is(err, gguf.ErrKeyNotFound) {
		return Config{}, fmt.Errorf("model: %w", err)
	}
	if fac := r.float("rope.scaling.factor", false, 0); fac != 0 {
		c.RopeScaling.Factor = fac
		if c.RopeScaling.Type == "none" {
			c.RopeScaling.Type = "linear" // llama.cpp's default scaling type
		}
	} else if lin := r.float("rope.scale_linear", false, 0); lin != 0 {
		c.RopeScaling.Type, c.RopeScaling.Factor = "linear", lin
	}
	lo, hi := 0.0, 0.0
	if c.RopeScaling.Type == "llama3" {
		lo, hi = 1, 4
	}
	c.RopeScaling.LowFreqFactor = r.float("rope.scaling.low_freq_factor", false, lo)
	c.RopeScaling.HighFreqFactor = r.float("rope.scaling.high_freq_factor", false, hi)
	c.RopeScaling.OriginalContextLength = r.int("rope.scaling.original_context_length", false, 0)
	c.SlidingWindow = r.int("attention.sliding_window", false, 0)

	c.VocabSize = r.int("vocab_size", false, 0)
	if r.err != nil {
		return Config{}, r.err
	}
	if c.VocabSize == 0 {
		if a, err := f.Array("tokenizer.ggml.tokens"); err == nil {
			c.VocabSize = a.Len()
		} else if t, ok := f.Tensor("token_embd.weight"); ok && len(t.Dims) == 2 && t.Dims[1] <= maxVocab {
			c.VocabSize = int(t.Dims[1])
		} else {
			return Config{}, fmt.Errorf("model: vocabulary size unknown: no %s, tokenizer.ggml.tokens or token_embd.weight", c.key("vocab_size"))
		}
	}

	_, hasOutput := f.Tensor("output.weight")
	c.TiedEmbeddings = !hasOutput
	_, c.QKNorm = f.Tensor("blk.0.attn_q_norm.weight")
	_, c.AttnBias = f.Tensor("blk.0.attn_q.bias")
	if _, long := f.Tensor("rope_factors_long.weight"); long {
		return Config{}, errors.New("model: LongRoPE scaling (rope_factors_long.weight, rope_factors_short.weight) is not supported")
	}
	if _, c.RopeFreqs = f.Tensor("rope_freqs.weight"); c.RopeFreqs && c.RopeScaling.Type != "llama3" {
		// llama.cpp stores Llama 3.1/3.2 scaling as this tensor alone.
		factors, err := f.Dequantize("rope_freqs.weight")
		if err != nil {
			return Config{}, fmt.Errorf("model: %w", err)
		}
		if c.RopeScaling, err = ropeFromFactors(factors, c.RopeDims, c.RopeBase, c.RopeScaling); err != nil {
			return Config{}, err
		}
	}

	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// reader reads <arch>.* keys, remembering the first error.
type reader struct {
	f    *gguf.File
	arch string
	err  error
}

func (r *reader) int(suffix string, required bool, def int) int {
	if r.err != nil {
		return 0
	}
	key := r.arch + "." + suffix
	v, ok := r.f.Get(key)
	if !ok {
		if required {
			r.err = fmt.Errorf("model: missing required key %s", key)
		}
		return def
	}
	if a, isArr := v.Array(); isArr {
		r.err = fmt.Errorf("model: %s is a per-layer array of %d values; only one value for all layers is supported", key, a.Len())
		return 0
	}
	x, err := r.f.Uint(key)
	if err != nil {
		r.err = fmt.Errorf("model: %w", err)
		return 0
	}
	if x > math.MaxInt32 {
		r.err = fmt.Errorf("model: %s is %d, too large", key, x)
		return 0
	}
	return int(x)
}

func (r *reader) float(suffix string, required bool, def float64) float64 {
	if r.err != nil {
		return 0
	}
	key := r.arch + "." + suffix
	x, err := r.f.Float(key)
	if errors.Is(err, gguf.ErrKeyNotFound) {
		if required {
			r.err = fmt.Errorf("model: missing required key %s", key)
		}
		return def
	}
	if err != nil {
		r.err = fmt.Errorf("model: %w", err)
		return 0
	}
	return x
}

// Validate checks sizes and their relations; errors name the GGUF key
// (<arch>.*) of the offending field.
func (c Config) Validate() error {
	if c.Architecture == "" || strings.ContainsAny(c.Architecture, " \t\n") {
		return fmt.Errorf("model: general.architecture %q is not a valid name", c.Architecture)
	}
	sizes := []struct {
		key string
		v   int
		max int
	}{
		{"vocab_size", c.VocabSize, maxVocab},
		{"embedding_length", c.EmbeddingDim, maxDim},
		{"feed_forward_length", c.FFNDim, maxDim},
		{"block_count", c.Layers, maxLayers},
		{"attention.head_count", c.Heads, maxHeads},
		{"attention.head_count_kv", c.KVHeads, maxHeads},
		{"attention.key_length", c.HeadDim, maxDim},
		{"attention.value_length", c.ValueHeadDim, maxDim},
		{"context_length", c.ContextLength, maxContext},
		{"rope.dimension_count", c.RopeDims, maxDim},
	}
	for _, s := range sizes {
		if s.v <= 0 || s.v > s.max {
			return fmt.Errorf("model: %s is %d, want 1..%d", c.key(s.key), s.v, s.max)
		}
	}
	if c.SlidingWindow < 0 || c.SlidingWindow > maxContext {
		return fmt.Errorf("model: %s is %d, want 0..%d", c.key("attention.sliding_window"), c.SlidingWindow, maxContext)
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("model: %s %d does not divide %s %d", c.key("attention.head_count_kv"), c.KVHeads, c.key("attention.head_count"), c.Heads)
	}
	if c.RopeDims > c.HeadDim || c.RopeDims%2 != 0 {
		return fmt.Errorf("model: %s %d must be even and at most the head size %d", c.key("rope.dimension_count"), c.RopeDims, c.HeadDim)
	}
	if !(c.NormEpsilon > 0 && c.NormEpsilon < 1) {
		return fmt.Errorf("model: %s is %g, want a small positive number", c.key("attention.layer_norm_rms_epsilon"), c.NormEpsilon)
	}
	if !(c.RopeBase > 0) || math.IsInf(c.RopeBase, 0) {
		return fmt.Errorf("model: %s is %g, want a positive number", c.key("rope.freq_base"), c.RopeBase)
	}
	if !(c.RopeScaling.Factor > 0) || math.IsInf(c.RopeScaling.Factor, 0) {
		return fmt.Errorf("model: %s is %g, want a positive number", c.key("rope.scaling.factor"), c.RopeScaling.Factor)
	}
	if c.RopeStyle != RopeNormal && c.RopeStyle != RopeNeox {
		return fmt.Errorf("model: unknown RoPE style %v", c.RopeStyle)
	}
	if c.ExpertUsedCount > c.ExpertCount {
		return fmt.Errorf("model: %s %d exceeds %s %d", c.key("expert_used_count"), c.ExpertUsedCount, c.key("expert_count"), c.ExpertCount)
	}
	return nil
}

// ropeFromFactors reads rope_freqs.weight — per-frequency divisors of the
// RoPE frequencies, as llama.cpp stores Llama 3 scaling — into Llama 3
// scaling parameters: the largest divisor is Factor, the wavelengths
// where the divisors leave 1 and reach Factor give LowFreqFactor and
// HighFreqFactor (relative to an original context of 8192, or the
// metadata's; only their ratios matter). Divisors that Llama 3 scaling
// cannot reproduce are an error, not silently ignored. All ones mean no
// scaling.
func ropeFromFactors(factors []float32, dims int, base float64, meta RopeScaling) (RopeScaling, error) {
	const name = "rope_freqs.weight"
	if len(factors) != dims/2 {
		return meta, fmt.Errorf("model: %s has %d values for %d rotary dimensions, want %d", name, len(factors), dims, dims/2)
	}
	factor := 1.0
	for i, f := range factors {
		if !(f >= 1) || math.IsInf(float64(f), 0) || (i > 0 && f < factors[i-1]) {
			return meta, fmt.Errorf("model: %s[%d] = %g: want finite divisors >= 1, not decreasing", name, i, f)
		}
		factor = max(factor, float64(f))
	}
	if factor == 1 {
		return meta, nil
	}
	orig := meta.OriginalContextLength
	if orig <= 0 {
		orig = 8192
	}
	wave := func(i int) float64 { return 2 * math.Pi * math.Pow(base, 2*float64(i)/float64(dims)) }
	// Between the regions s = (orig/wave − low)/(high − low) =
	// A/wave − B, with s from 1/f = (1−s)/factor + s; fit A and B to the
	// first and last smooth points, then check every divisor.
	var smooth []int
	lastOne, firstFull := -1, len(factors)
	for i, f := range factors {
		switch {
		case f == 1:
			lastOne = i
		case float64(f) >= factor*(1-1e-6):
			firstFull = min(firstFull, i)
		default:
			smooth = append(smooth, i)
		}
	}
	sOf := func(f float32) float64 { return (1/float64(f) - 1/factor) / (1 - 1/factor) }
	var low, high float64
	switch {
	case len(smooth) >= 2:
		i, j := smooth[0], smooth[len(smooth)-1]
		a := (sOf(factors[i]) - sOf(factors[j])) / (1/wave(i) - 1/wave(j))
		b := a/wave(i) - sOf(factors[i])
		if !(a > 0) {
			return meta, fmt.Errorf("model: %s does not describe Llama 3 rope scaling", name)
		}
		low = float64(orig) * b / a
		high = low + float64(orig)/a
	case len(smooth) == 1 && lastOne >= 0:
		// One point between: put the high threshold just past the last
		// undivided wavelength and solve s = (1/w − 1/L)/(1/H − 1/L)
		// for the low one.
		// Any H in (lower bound, w) leaves L between w and the first
		// fully divided wavelength; take the geometric middle.
		w, sm := wave(smooth[0]), sOf(factors[smooth[0]])
		lb := max(wave(lastOne), sm*w)
		if firstFull < len(factors) {
			lb = max(lb, sm/(1/w-(1-sm)/wave(firstFull)))
		}
		hw := math.Sqrt(lb * w)
		lw := (1 - sm) / (1/w - sm/hw)
		high, low = float64(orig)/hw, float64(orig)/lw
	case len(smooth) == 0 && lastOne >= 0 && firstFull < len(factors):
		// A step: put the thresholds just outside the two wavelengths.
		high = float64(orig) / (wave(lastOne) * (1 + 1e-9))
		low = float64(orig) / (wave(firstFull) * (1 - 1e-9))
	default:
		return meta, fmt.Errorf("model: %s does not describe Llama 3 rope scaling", name)
	}
	s := RopeScaling{Type: "llama3", Factor: factor, LowFreqFactor: low, HighFreqFactor: high, OriginalContextLength: orig}
	if !(low > 0 && low < high) {
		return meta, fmt.Errorf("model: %s does not describe Llama 3 rope scaling (low %g, high %g)", name, low, high)
	}
	// Check every divisor against the scaling the kernels will apply.
	scaled := kernels.RopeFreqs(dims, base, kernels.RopeScaling{Factor: factor, LowFreqFactor: low, HighFreqFactor: high, OrigContext: orig})
	plain := kernels.RopeFreqs(dims, base, kernels.RopeScaling{})
	for i, f := range factors {
		if want := plain[i] / scaled[i]; math.Abs(float64(f)-want) > 1e-4*want {
			return meta, fmt.Errorf("model: %s[%d] = %g, Llama 3 scaling gives %g: not supported", name, i, f, want)
		}
	}
	return s, nil
}
