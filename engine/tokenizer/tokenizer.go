package tokenizer

import (
	"fmt"
	"slices"
	"strings"
)

// Tokenizer encodes and decodes text for one vocabulary. It is immutable
// after New and safe for concurrent use.
type Tokenizer struct {
	model          string
	tokens         []string
	scores         []float32
	attrs          []attr
	toID           map[string]int32
	bos, eos, unk  int32
	pad, eot       int32
	addBOS, addEOS bool
	addSpacePrefix bool
	eog            map[int32]bool // end-of-generation tokens

	// special tokens (control, user-defined, unknown) in the order
	// llama.cpp tries them (longest text first), and a byte trie over
	// their texts to find which ones a text holds
	special []int32
	trie    specialTrie

	// SPM
	byteTok [256]int32 // <0xNN> token (or the raw byte as a token), -1 if none
	// spmSplit: no token holds "▁" after another character, so no merge
	// can cross the start of a "▁" run and words can be merged one by one.
	spmSplit bool

	// BPE
	pre           *pretokenizer
	ranks         map[uint64]bpeMerge
	byteSym       [256]int32 // token of the GPT-2 char standing for each byte, -1 if none
	ignoreMerges  bool
	byteDecode    map[rune]byte
	pieceBytesBPE []string // decoded bytes of each token (normal tokens)
}

type bpeMerge struct {
	rank   int32
	result int32
}

// New validates v and builds a Tokenizer. The Tokenizer keeps references to
// v's slices; do not modify them afterwards.
func New(v *Vocab) (*Tokenizer, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	n := len(v.Tokens)
	t := &Tokenizer{
		model:          v.Model,
		tokens:         v.Tokens,
		scores:         v.Scores,
		attrs:          make([]attr, n),
		toID:           make(map[string]int32, n),
		bos:            v.BOS,
		eos:            v.EOS,
		unk:            v.UNK,
		pad:            v.PAD,
		eot:            v.EOT,
		addBOS:         v.AddBOS,
		addEOS:         v.AddEOS,
		addSpacePrefix: v.AddSpacePrefix && v.Model == ModelSPM,
	}
	if t.scores == nil {
		t.scores = make([]float32, n)
	}
	if slices.Contains(v.Tokens, "") {
		// llama.cpp renames empty tokens so they can never match.
		t.tokens = slices.Clone(v.Tokens)
		for i, s := range t.tokens {
			if s == "" {
				t.tokens[i] = fmt.Sprintf("[EMPTY_%d]", i)
			}
		}
	}
	for i, s := range t.tokens {
		t.toID[s] = int32(i) // the last of duplicate texts wins, as in llama.cpp
		ty := TypeNormal
		if v.Types != nil {
			ty = TokenType(v.Types[i])
		}
		t.attrs[i] = typeAttr(ty)
	}
	t.fixAttrs(v)
	t.buildSpecial()

	switch v.Model {
	case ModelSPM:
		t.spmSplit = true
		for _, s := range t.tokens {
			if spmInnerSpace(s) {
				t.spmSplit = false
				break
			}
		}
		for b := range 256 {
			t.byteTok[b] = -1
			if id, ok := t.toID[fmt.Sprintf("<0x%02X>", b)]; ok {
				t.byteTok[b] = id
			} else if id, ok := t.toID[string([]byte{byte(b)})]; ok {
				t.byteTok[b] = id
			}
		}
	case ModelBPE:
		pre, err := newPretokenizer(v.Pre)
		if err != nil {
			return nil, err
		}
		t.pre = pre
		t.ignoreMerges = ignoresMerges(v.Pre)
		if err := t.buildMerges(v.Merges); err != nil {
			return nil, err
		}
		t.byteDecode = make(map[rune]byte, 256)
		for b := range 256 {
			r := byteToRune[b]
			t.byteDecode[r] = byte(b)
			t.byteSym[b] = -1
			if id, ok := t.toID[string(r)]; ok {
				t.byteSym[b] = id
			}
		}
		t.pieceBytesBPE = make([]string, n)
		for i, s := range t.tokens {
			t.pieceBytesBPE[i] = t.decodeByteLevel(s)
		}
	}
	return t, nil
}

// fixAttrs applies llama.cpp's load-time attribute fix-ups: end-of-turn
// looking tokens become control tokens, and Phi-3 strips whitespace after
// its special tokens.
func (t *Tokenizer) fixAttrs(v *Vocab) {
	t.eog = map[int32]bool{}
	defer func() {
		for _, id := range []int32{t.eos, t.eot} {
			if id >= 0 {
				t.eog[id] = true
			}
		}
	}()
	for _, s := range []string{
		"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>",
		"<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "<｜end▁of▁sentence｜>",
	} {
		if id, ok := t.toID[s]; ok {
			if t.attrs[id]&attrControl == 0 {
				t.attrs[id] = attrControl
			}
			t.eog[id] = true
			if t.eot < 0 && s != "<|return|>" && s != "<|call|>" && s != "<|eom_id|>" {
				t.eot = id
			}
		}
	}
	name := strings.ToLower(v.Name)
	if strings.Contains(name, "phi-3") || strings.Contains(name, "phi3") {
		for id, a := range t.attrs {
			if a&(attrControl|attrUserDefined|attrUnknown) != 0 {
				t.attrs[id] |= attrRStrip
			}
		}
		if id, ok := t.toID["</s>"]; ok {
			t.attrs[id] |= attrRStrip
		}
		for _, s := range []string{"<unk>", "<s>", "<|endoftext|>"} {
			if id, ok := t.toID[s]; ok {
				t.attrs[id] &^= attrRStrip
			}
		}
	}
}

func (t *Tokenizer) buildMerges(merges []string) error {
	t.ranks = make(map[uint64]bpeMerge, len(merges))
	for i, m := range merges {
		a, b, ok := splitMerge(m)
		if !ok {
			return fmt.Errorf("%w: merge %d %q has no separator", ErrInvalidVocab, i, m)
		}
		ia, oka := t.toID[a]
		ib, okb := t.toID[b]
		if !oka || !okb {
			return fmt.Errorf("%w: merge %d %q refers to an unknown token", ErrInvalidVocab, i, m)
		}
		r, ok := t.toID[a+b]
		if !ok {
			return fmt.Errorf("%w: merge %d %q makes an unknown token", ErrInvalidVocab, i, m)
		}
		k := pairKey(ia, ib)
		if _, dup := t.ranks[k]; !dup {
			t.ranks[k] = bpeMerge{rank: int32(i), result: r}
		}
	}
	return nil
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// NumTokens returns the vocabulary size.
func (t *Tokenizer) NumTokens() int { return len(t.tokens) }

// BOS returns the beginning-of-sequence token, -1 if none.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS returns the end-of-sequence token, -1 if none.
func (t *Tokenizer) EOS() int32 { return t.eos }

// EOT returns the end-of-turn token, -1 if none.
func (t *Tokenizer) EOT() int32 { return t.eot }

// IsEOG reports whether id ends generation: EOS, EOT, and the other
// end-of-turn markers llama.cpp recognizes by text (<|im_end|>, <|end|>,
// <end_of_turn>, <|eom_id|>, ...).
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// IsControl reports whether id is a control token (BOS, EOS, chat markers).
func (t *Tokenizer) IsControl(id int32) bool {
	return id >= 0 && int(id) < len(t.attrs) && t.attrs[id]&attrControl != 0
}

// Token returns the raw vocabulary text of id ("" when out of range).
func (t *Tokenizer) Token(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// EncodeOptions controls Encode.
type EncodeOptions struct {
	// NoSpecial suppresses the BOS/EOS tokens the vocabulary asks for
	// (its AddBOS/AddEOS flags); the zero value adds them.
	NoSpecial bool
	// ParseSpecial matches control tokens (such as "<|im_start|>") in the
	// text as whole tokens. User-defined tokens are always matched, as
	// llama.cpp does.
	ParseSpecial bool
}

// fragment is a piece of the text: raw text [start,end) or a token.
type fragment struct {
	start, end int
	id         int32 // -1 for raw text
}

// Encode tokenizes text.
func (t *Tokenizer) Encode(text string, opts EncodeOptions) []int32 {
	out := make([]int32, 0, len(text)/3+2)
	frags := t.partition(text, opts.ParseSpecial)
	addSpecial := !opts.NoSpecial
	if addSpecial && t.addBOS {
		out = append(out, t.bos)
	}
	switch t.model {
	case ModelSPM:
		prevSpecial := true
		for _, f := range frags {
			if f.id >= 0 {
				out = append(out, f.id)
				prevSpecial = true
				continue
			}
			s := text[f.start:f.end]
			if t.addSpacePrefix && prevSpecial {
				s = " " + s
			}
			out = t.encodeSPMWords(strings.ReplaceAll(s, " ", "▁"), out)
			prevSpecial = false
		}
	case ModelBPE:
		var st bpeState
		for _, f := range frags {
			if f.id >= 0 {
				out = append(out, f.id)
				continue
			}
			out = t.encodeBPE(text[f.start:f.end], out, &st)
		}
	}
	if addSpecial && t.addEOS {
		out = append(out, t.eos)
	}
	return out
}
