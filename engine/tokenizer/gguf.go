package tokenizer

import (
	"errors"
	"fmt"
	"slices"

	"github.com/mnemo-ai/mnemo/engine/gguf"
)

// GGUF metadata keys read by VocabFromGGUF.
const (
	keyModel       = "tokenizer.ggml.model"
	keyPre         = "tokenizer.ggml.pre"
	keyTokens      = "tokenizer.ggml.tokens"
	keyScores      = "tokenizer.ggml.scores"
	keyTypes       = "tokenizer.ggml.token_type"
	keyMerges      = "tokenizer.ggml.merges"
	keyBOS         = "tokenizer.ggml.bos_token_id"
	keyEOS         = "tokenizer.ggml.eos_token_id"
	keyUNK         = "tokenizer.ggml.unknown_token_id"
	keyPAD         = "tokenizer.ggml.padding_token_id"
	keyEOT         = "tokenizer.ggml.eot_token_id"
	keyAddBOS      = "tokenizer.ggml.add_bos_token"
	keyAddEOS      = "tokenizer.ggml.add_eos_token"
	keySpacePrefix = "tokenizer.ggml.add_space_prefix"
	keyName        = "general.name"
)

// FromGGUF builds the Tokenizer described by f's tokenizer.ggml.* metadata.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, err
	}
	return New(v)
}

// VocabFromGGUF reads the tokenizer.ggml.* metadata of f, filling in
// llama.cpp's defaults for missing keys.
func VocabFromGGUF(f *gguf.File) (*Vocab, error) {
	v := &Vocab{BOS: -1, EOS: -1, UNK: -1, PAD: -1, EOT: -1}
	var err error
	if v.Model, err = f.String(keyModel); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if v.Pre, err = optional(f.String(keyPre)); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if v.Name, err = optional(f.String(keyName)); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if v.Tokens, err = f.Strings(keyTokens); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if v.Scores, err = optional(f.Float32s(keyScores)); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if v.Types, err = optional(f.Int32s(keyTypes)); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	// gguf may share these with the file; the Vocab outlives it.
	v.Tokens, v.Scores, v.Types = slices.Clone(v.Tokens), slices.Clone(v.Scores), slices.Clone(v.Types)
	switch v.Model {
	case ModelSPM:
		v.BOS, v.EOS, v.UNK = 1, 2, 0
		v.AddBOS, v.AddSpacePrefix = true, true
	case ModelBPE:
		v.BOS, v.EOS = 11, 11
		if v.Merges, err = f.Strings(keyMerges); err != nil {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		switch v.Pre {
		case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
			"tekken", "chameleon":
			v.AddBOS = true
		}
	default:
		return nil, fmt.Errorf("%w: unsupported model %q", ErrInvalidVocab, v.Model)
	}
	n := int64(len(v.Tokens))
	for _, s := range []struct {
		key string
		id  *int32
	}{{keyBOS, &v.BOS}, {keyEOS, &v.EOS}, {keyUNK, &v.UNK}, {keyPAD, &v.PAD}, {keyEOT, &v.EOT}} {
		if int64(*s.id) >= n {
			*s.id = -1 // default outside this vocabulary
		}
		x, err := f.Uint(s.key)
		switch {
		case errors.Is(err, gguf.ErrKeyNotFound):
		case err != nil:
			return nil, fmt.Errorf("tokenizer: %w", err)
		case int64(x) < n: // llama.cpp ignores out-of-range ids
			*s.id = int32(x)
		}
	}
	for _, s := range []struct {
		key string
		b   *bool
	}{{keyAddBOS, &v.AddBOS}, {keyAddEOS, &v.AddEOS}, {keySpacePrefix, &v.AddSpacePrefix}} {
		x, err := f.Bool(s.key)
		switch {
		case errors.Is(err, gguf.ErrKeyNotFound):
		case err != nil:
			return nil, fmt.Errorf("tokenizer: %w", err)
		default:
			*s.b = x
		}
	}
	if v.AddBOS && v.BOS < 0 {
		v.AddBOS = false
	}
	if v.AddEOS && v.EOS < 0 {
		v.AddEOS = false
	}
	return v, nil
}

func optional[T any](x T, err error) (T, error) {
	if errors.Is(err, gguf.ErrKeyNotFound) {
		var zero T
		return zero, nil
	}
	return x, err
}
