// Package tokenizer turns text into token ids and back the way llama.cpp
// does for the vocabularies GGUF files carry: SentencePiece-style BPE
// ("llama": score-driven merges, byte fallback) and GPT-2 byte-level BPE
// ("gpt2": rank-driven merges after a pre-tokenizer chosen by
// tokenizer.ggml.pre).
//
// A Tokenizer is built once from a Vocab (New) or a GGUF file (FromGGUF)
// and is safe for concurrent use.
package tokenizer

import (
	"errors"
	"fmt"
	"strings"
)

// Model names as stored in tokenizer.ggml.model.
const (
	// ModelSPM is SentencePiece BPE (Llama 1/2, Mistral, Phi-3).
	ModelSPM = "llama"
	// ModelBPE is GPT-2 style byte-level BPE (GPT-2, Llama 3, Qwen, ...).
	ModelBPE = "gpt2"
)

// TokenType is a token's kind as stored in tokenizer.ggml.token_type.
type TokenType int32

// Token types, with the values GGUF uses.
const (
	TypeUndefined   TokenType = 0
	TypeNormal      TokenType = 1
	TypeUnknown     TokenType = 2
	TypeControl     TokenType = 3
	TypeUserDefined TokenType = 4
	TypeUnused      TokenType = 5
	TypeByte        TokenType = 6
)

// ErrInvalidVocab reports a vocabulary that New cannot use.
var ErrInvalidVocab = errors.New("tokenizer: invalid vocabulary")

// Vocab is what GGUF's tokenizer.ggml.* metadata carries. Special ids are
// -1 when the vocabulary has no such token.
type Vocab struct {
	// Model is ModelSPM or ModelBPE.
	Model string
	// Pre names the BPE pre-tokenizer (tokenizer.ggml.pre); "" means
	// "default". Ignored for SPM.
	Pre string
	// Tokens holds each token's text, indexed by id.
	Tokens []string
	// Scores holds SPM merge scores, one per token (nil: all zero).
	Scores []float32
	// Types holds each token's TokenType value (nil: all normal).
	Types []int32
	// Merges holds BPE merges "left right", in rank order.
	Merges []string

	BOS, EOS, UNK, PAD, EOT int32

	// AddBOS and AddEOS say whether Encode adds BOS/EOS by default.
	AddBOS, AddEOS bool
	// AddSpacePrefix makes SPM prepend a space to the text (and to text
	// following a special token).
	AddSpacePrefix bool
	// Name is general.name; llama.cpp keys a few per-model token
	// attributes on it (Phi-3 strips spaces after special tokens).
	Name string
}

// token attribute bits, as llama.cpp's llama_token_attr.
type attr uint16

const (
	attrUnknown attr = 1 << iota
	attrUnused
	attrNormal
	attrControl
	attrUserDefined
	attrByte
	attrLStrip
	attrRStrip
)

func typeAttr(t TokenType) attr {
	switch t {
	case TypeNormal:
		return attrNormal
	case TypeUnknown:
		return attrUnknown
	case TypeControl:
		return attrControl
	case TypeUserDefined:
		return attrUserDefined
	case TypeUnused:
		return attrUnused
	case TypeByte:
		return attrByte
	}
	return 0
}

func (v *Vocab) validate() error {
	n := len(v.Tokens)
	if n == 0 {
		return fmt.Errorf("%w: no tokens", ErrInvalidVocab)
	}
	if n > 1<<31-1 {
		return fmt.Errorf("%w: %d tokens", ErrInvalidVocab, n)
	}
	switch v.Model {
	case ModelSPM, ModelBPE:
	default:
		return fmt.Errorf("%w: unsupported model %q", ErrInvalidVocab, v.Model)
	}
	if v.Scores != nil && len(v.Scores) != n {
		return fmt.Errorf("%w: %d scores for %d tokens", ErrInvalidVocab, len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) != n {
		return fmt.Errorf("%w: %d token types for %d tokens", ErrInvalidVocab, len(v.Types), n)
	}
	for i, t := range v.Types {
		if t < 0 || t > int32(TypeByte) {
			return fmt.Errorf("%w: token %d has type %d", ErrInvalidVocab, i, t)
		}
	}
	for _, s := range []struct {
		name string
		id   int32
	}{{"bos", v.BOS}, {"eos", v.EOS}, {"unk", v.UNK}, {"pad", v.PAD}, {"eot", v.EOT}} {
		if s.id < -1 || s.id >= int32(n) {
			return fmt.Errorf("%w: %s token id %d out of range [0,%d)", ErrInvalidVocab, s.name, s.id, n)
		}
	}
	if v.AddBOS && v.BOS < 0 {
		return fmt.Errorf("%w: add_bos set without a bos token", ErrInvalidVocab)
	}
	if v.AddEOS && v.EOS < 0 {
		return fmt.Errorf("%w: add_eos set without an eos token", ErrInvalidVocab)
	}
	if v.Model == ModelBPE {
		if _, err := preRegexes(v.Pre); err != nil {
			return err
		}
	}
	return nil
}

// splitMerge splits a merge line as llama.cpp does: at the first space
// after the first byte.
func splitMerge(m string) (string, string, bool) {
	if len(m) < 2 {
		return "", "", false
	}
	i := strings.IndexByte(m[1:], ' ')
	if i < 0 {
		return "", "", false
	}
	return m[:i+1], m[i+2:], true
}
