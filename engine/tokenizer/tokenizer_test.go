package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine/gguf"
)

// spmVocab builds a small SentencePiece vocabulary: <unk> <s> </s>, the
// 256 byte tokens, then pieces with the given scores.
func spmVocab(pieces map[string]float32, extra ...string) *Vocab {
	v := &Vocab{Model: ModelSPM, BOS: 1, EOS: 2, UNK: 0, PAD: -1, EOT: -1, AddBOS: true, AddSpacePrefix: true}
	add := func(s string, score float32, ty TokenType) {
		v.Tokens = append(v.Tokens, s)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, int32(ty))
	}
	add("<unk>", 0, TypeUnknown)
	add("<s>", 0, TypeControl)
	add("</s>", 0, TypeControl)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), 0, TypeByte)
	}
	// deterministic order
	keys := make([]string, 0, len(pieces))
	for k := range pieces {
		keys = append(keys, k)
	}
	sortStrings(keys)
	for _, k := range keys {
		add(k, pieces[k], TypeNormal)
	}
	for _, s := range extra {
		add(s, 0, TypeControl)
	}
	return v
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// bpeVocab builds a byte-level BPE vocabulary: the 256 byte characters,
// then the merge results in merge order, then the special tokens.
func bpeVocab(pre string, merges []string, control, userDefined []string) *Vocab {
	v := &Vocab{Model: ModelBPE, Pre: pre, BOS: -1, EOS: -1, UNK: -1, PAD: -1, EOT: -1}
	seen := map[string]bool{}
	add := func(s string, ty TokenType) {
		if seen[s] {
			return
		}
		seen[s] = true
		v.Tokens = append(v.Tokens, s)
		v.Types = append(v.Types, int32(ty))
	}
	for b := range 256 {
		add(string(byteToRune[b]), TypeNormal)
	}
	for _, m := range merges {
		a, b, _ := splitMerge(m)
		add(a+b, TypeNormal)
	}
	v.Merges = merges
	for _, s := range control {
		add(s, TypeControl)
	}
	for _, s := range userDefined {
		add(s, TypeUserDefined)
	}
	return v
}

func mustNew(t testing.TB, v *Vocab) *Tokenizer {
	t.Helper()
	tok, err := New(v)
	require.NoError(t, err)
	return tok
}

func ids(tok *Tokenizer, pieces ...string) []int32 {
	out := make([]int32, len(pieces))
	for i, p := range pieces {
		id, ok := tok.toID[p]
		if !ok {
			panic("no token " + p)
		}
		out[i] = id
	}
	return out
}

func TestNewRejectsBadVocab(t *testing.T) {
	good := func() *Vocab { return bpeVocab("gpt-2", []string{"a b"}, nil, nil) }
	tests := []struct {
		name   string
		modify func(v *Vocab)
	}{
		{"no tokens", func(v *Vocab) { v.Tokens = nil; v.Types = nil }},
		{"unknown model", func(v *Vocab) { v.Model = "wordpiece" }},
		{"unknown pre", func(v *Vocab) { v.Pre = "no-such-pre" }},
		{"scores length", func(v *Vocab) { v.Scores = []float32{1} }},
		{"types length", func(v *Vocab) { v.Types = v.Types[:3] }},
		{"bad type", func(v *Vocab) { v.Types[0] = 9 }},
		{"bos out of range", func(v *Vocab) { v.BOS = int32(len(v.Tokens)) }},
		{"eos negative", func(v *Vocab) { v.EOS = -2 }},
		{"add bos without bos", func(v *Vocab) { v.AddBOS = true }},
		{"merge without separator", func(v *Vocab) { v.Merges = []string{"ab"} }},
		{"merge of unknown token", func(v *Vocab) { v.Merges = []string{"a zz"} }},
		{"merge making unknown token", func(v *Vocab) { v.Merges = []string{"b c"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := good()
			tt.modify(v)
			_, err := New(v)
			assert.ErrorIs(t, err, ErrInvalidVocab)
		})
	}
	_, err := New(good())
	assert.NoError(t, err)
}

func TestSPMEncode(t *testing.T) {
	tok := mustNew(t, spmVocab(map[string]float32{
		"▁": -1, "h": -2, "e": -2, "l": -2, "o": -2, "w": -2, "r": -2, "d": -2,
		"he": -3, "ll": -1.5, "hell": -4, "hello": -5, "▁hello": -4.5, "▁w": -6, "or": -6, "▁wor": -7,
	}))
	tests := []struct {
		name string
		in   string
		opts EncodeOptions
		want []string
	}{
		{"empty", "", EncodeOptions{NoSpecial: true}, nil},
		{"word with space prefix", "hello", EncodeOptions{NoSpecial: true}, []string{"▁hello"}},
		{"bos", "hello", EncodeOptions{}, []string{"<s>", "▁hello"}},
		{"empty with bos", "", EncodeOptions{}, []string{"<s>"}},
		// "ll" has the best score, so it merges before "he"
		{"score order", "hell", EncodeOptions{NoSpecial: true}, []string{"▁", "hell"}},
		{"two words", "hello world", EncodeOptions{NoSpecial: true}, []string{"▁hello", "▁wor", "l", "d"}},
		{"byte fallback", "hé", EncodeOptions{NoSpecial: true}, []string{"▁", "h", "<0xC3>", "<0xA9>"}},
		{"control text is plain text", "<s>", EncodeOptions{NoSpecial: true}, []string{"▁", "<0x3C>", "<0x73>", "<0x3E>"}},
		{"parse special", "<s>hello", EncodeOptions{NoSpecial: true, ParseSpecial: true}, []string{"<s>", "▁hello"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tok.Encode(tt.in, tt.opts)
			if tt.want == nil {
				assert.Empty(t, got)
				return
			}
			assert.Equal(t, ids(tok, tt.want...), got)
		})
	}
}

func TestSPMUnknownWithoutByteTokens(t *testing.T) {
	v := &Vocab{Model: ModelSPM, Tokens: []string{"<unk>", "▁", "a"}, Types: []int32{2, 1, 1},
		BOS: -1, EOS: -1, UNK: 0, PAD: -1, EOT: -1, AddSpacePrefix: true}
	tok := mustNew(t, v)
	assert.Equal(t, []int32{1, 2, 0, 0}, tok.Encode("aé", EncodeOptions{}), "each byte without a token becomes <unk>")
}

func TestBPEEncode(t *testing.T) {
	merges := []string{"l l", "h e", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d"}
	tok := mustNew(t, bpeVocab("gpt-2", merges, []string{"<|endoftext|>"}, []string{"<user>"}))
	tests := []struct {
		name string
		in   string
		opts EncodeOptions
		want []string
	}{
		{"merged words", "hello world", EncodeOptions{}, []string{"hello", "Ġworld"}},
		{"rank order", "hel", EncodeOptions{}, []string{"he", "l"}},
		{"pre-tokenizer splits before merging", "hello,world", EncodeOptions{}, []string{"hello", ",", "w", "or", "l", "d"}},
		{"bytes", "é", EncodeOptions{}, []string{"Ã", "©"}},
		{"control not parsed", "<|endoftext|>", EncodeOptions{}, []string{"<|", "end", "of", "text", "|>"}},
		{"control parsed", "hello<|endoftext|>", EncodeOptions{ParseSpecial: true}, []string{"hello", "<|endoftext|>"}},
		{"user-defined always parsed", "a<user>b", EncodeOptions{}, []string{"a", "<user>", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []int32
			for _, w := range tt.want {
				if id, ok := tok.toID[w]; ok {
					want = append(want, id)
					continue
				}
				// not a token: expect its characters one by one
				for _, r := range w {
					want = append(want, ids(tok, string(r))...)
				}
			}
			assert.Equal(t, want, tok.Encode(tt.in, tt.opts))
		})
	}
}

func TestSpecialLongestFirst(t *testing.T) {
	// llama.cpp takes longer special texts first, wherever they are.
	tok := mustNew(t, bpeVocab("gpt-2", nil, []string{"<a>", "<a><b>", "b><c"}, nil))
	got := tok.Encode("<a><b><c", EncodeOptions{ParseSpecial: true})
	assert.Equal(t, append(ids(tok, "<a><b>"), ids(tok, "<", "c")...), got)
}

func TestPhi3RStrip(t *testing.T) {
	v := spmVocab(map[string]float32{"▁": -1, "a": -1, "▁a": -0.5}, "<|end|>", "<|endoftext|>")
	v.Name = "Phi3"
	tok := mustNew(t, v)
	// whitespace after <|end|> is dropped, and no space prefix is added
	// for text after a special token is kept as llama.cpp does
	got := tok.Encode("a<|end|>  a", EncodeOptions{NoSpecial: true, ParseSpecial: true})
	assert.Equal(t, ids(tok, "▁a", "<|end|>", "▁a"), got)
	got = tok.Encode("a<|endoftext|> a", EncodeOptions{NoSpecial: true, ParseSpecial: true})
	assert.Equal(t, ids(tok, "▁a", "<|endoftext|>", "▁", "▁a"), got)
}

func TestDecodeAndPiece(t *testing.T) {
	tok := mustNew(t, spmVocab(map[string]float32{"▁": -1, "h": -2, "i": -2, "▁hi": -1}))
	assert.Equal(t, " hi", tok.Piece(tok.toID["▁hi"]))
	assert.Equal(t, "<s>", tok.Piece(1))
	assert.Equal(t, "\xc3", tok.Piece(tok.toID["<0xC3>"]))
	assert.Equal(t, unknownPiece, tok.Piece(0))
	assert.Equal(t, "", tok.Piece(-1))
	assert.Equal(t, "", tok.Piece(int32(tok.NumTokens())))
	enc := tok.Encode("hi é", EncodeOptions{})
	assert.Equal(t, int32(1), enc[0])
	assert.Equal(t, "hi é", tok.Decode(enc))
	assert.Equal(t, "hi", tok.Decode([]int32{1, tok.toID["▁hi"], 2, 99999, -5}))
}

func TestDecoderHoldsBackPartialUTF8(t *testing.T) {
	tok := mustNew(t, spmVocab(map[string]float32{"▁": -1, "a": -1}))
	// "é" = C3 A9, "🦙" = F0 9F A6 99
	seq := tok.Encode("aé🦙a", EncodeOptions{NoSpecial: true})
	d := tok.NewDecoder()
	var outs []string
	for _, id := range seq {
		outs = append(outs, d.Add(id))
	}
	assert.Equal(t, []string{"", "a", "", "é", "", "", "", "🦙", "a"}, outs)
	assert.Equal(t, "", d.Flush())

	d = tok.NewDecoder()
	assert.Equal(t, "", d.Add(tok.toID["<0xF0>"]))
	assert.Equal(t, "", d.Add(tok.toID["<0x9F>"]))
	assert.Equal(t, "\xf0\x9f", d.Flush(), "flush returns the incomplete tail")
	assert.Equal(t, "\xff", d.Add(tok.toID["<0xFF>"]), "an invalid byte is never held back")
}

func TestDecoderMatchesDecode(t *testing.T) {
	tok := mustNew(t, bpeVocab("gpt-2", []string{"Ã ©", "Ġ Ã"}, nil, nil))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var seq []int32
		for range rng.IntN(12) {
			seq = append(seq, int32(rng.IntN(tok.NumTokens())))
		}
		d := tok.NewDecoder()
		var b strings.Builder
		var chunks []string
		for _, id := range seq {
			s := d.Add(id)
			chunks = append(chunks, s)
			b.WriteString(s)
		}
		if utf8.ValidString(tok.Decode(seq)) {
			// a valid stream is never cut inside a character
			for _, c := range chunks {
				assert.True(t, utf8.ValidString(c), "chunk %q of %v", c, seq)
			}
		}
		b.WriteString(d.Flush())
		assert.Equal(t, tok.Decode(seq), b.String())
	}
}

// randomText draws strings mixing ASCII, whitespace runs, Latin-1, CJK,
// emoji and combining marks: the cases pre-tokenizers treat differently.
func randomText(rng *rand.Rand, n int) string {
	alphabet := []string{"a", "Z", "7", " ", "  ", "\n", "\t", "'s", "'LL", ",", "!", "é", "ß", "ü", "нещо", "我", "工作",
		"🦙", "😶\u200d🌫️", "\u0301", "١", "½", "\r\n", "$", "<", "|", "~", "\u00a0", "\u3000", "ក", "ា", "Ω"}
	var b strings.Builder
	for range n {
		b.WriteString(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

func TestRoundTripSynthetic(t *testing.T) {
	spm := mustNew(t, spmVocab(map[string]float32{"▁": -1, "a": -2, "▁a": -1, "é": -3}))
	bpe := mustNew(t, bpeVocab("llama-bpe", []string{"Ġ a", "a a"}, nil, nil))
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		s := randomText(rng, rng.IntN(20))
		assert.Equal(t, s, spm.Decode(spm.Encode(s, EncodeOptions{})), "spm %q", s)
		assert.Equal(t, s, bpe.Decode(bpe.Encode(s, EncodeOptions{})), "bpe %q", s)
	}
}

func TestRoundTripVocabFiles(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 30
	}
	for _, path := range vocabFiles(t) {
		t.Run(path[strings.LastIndexByte(path, '/')+1:], func(t *testing.T) {
			tok := loadTokenizer(t, path)
			rng := rand.New(rand.NewPCG(5, 6))
			for range n {
				s := randomText(rng, rng.IntN(30))
				got := tok.Decode(tok.Encode(s, EncodeOptions{}))
				if tok.model == ModelSPM {
					// SPM cannot tell "▁" typed by the user from a space.
					got = strings.ReplaceAll(got, "▁", " ")
					s = strings.ReplaceAll(s, "▁", " ")
				}
				assert.Equal(t, s, got)
			}
		})
	}
}

func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"", " ", "hello world", "  Hello\n\n", "我想在apple工作1314151天～", "🦙.cpp", "a'll'VE",
		"\u00a0\u3000x", "<|endoftext|>", "<s>", "3333333"} {
		f.Add(s)
	}
	spm := mustNew(f, spmVocab(map[string]float32{"▁": -1, "a": -2, "▁a": -1, "ll": -2, "e": -2}, "<|end|>"))
	bpe := mustNew(f, bpeVocab("qwen2", []string{"Ġ a", "l l", "Ġ Ġ"}, []string{"<|endoftext|>"}, nil))
	def := mustNew(f, bpeVocab("default", []string{"Ġ a", "3 3"}, nil, nil))
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			// invalid bytes are read as U+FFFD, as llama.cpp does; still
			// must not panic
			bpe.Encode(s, EncodeOptions{ParseSpecial: true})
			spm.Encode(s, EncodeOptions{ParseSpecial: true})
			return
		}
		for _, tok := range []*Tokenizer{bpe, def} {
			ids := tok.Encode(s, EncodeOptions{})
			if got := tok.Decode(ids); got != s {
				t.Fatalf("bpe round trip: %q -> %v -> %q", s, ids, got)
			}
		}
		if !strings.Contains(s, "▁") {
			ids := spm.Encode(s, EncodeOptions{})
			if got := spm.Decode(ids); got != s {
				t.Fatalf("spm round trip: %q -> %v -> %q", s, ids, got)
			}
		}
		spm.Encode(s, EncodeOptions{ParseSpecial: true})
		bpe.Encode(s, EncodeOptions{ParseSpecial: true})
	})
}

func benchText(n int) string {
	rng := rand.New(rand.NewPCG(7, 8))
	var b strings.Builder
	words := []string{"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Hello", "world", "1234567",
		"tokenizer", "llama.cpp", "我想在", "нещо", "🦙", "don't", "(x)", "==", "\n", "    ", "café"}
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(4) != 0 {
			b.WriteByte(' ')
		}
	}
	return b.String()[:n]
}

// BenchmarkEncode shows encoding is not quadratic: MB/s at 100 KB and
// 1 MB should be about the same.
func BenchmarkEncode(b *testing.B) {
	files := vocabFiles(b)
	for _, path := range files {
		name := strings.TrimSuffix(path[strings.LastIndexByte(path, '/')+1:], ".gguf")
		switch name {
		case "llama-spm", "gpt-2", "deepseek-llm":
		default:
			continue
		}
		tok := loadTokenizer(b, path)
		for _, n := range []int{100 << 10, 1 << 20} {
			text := benchText(n)
			b.Run(fmt.Sprintf("vocab=%s/n=%dKB", name, n>>10), func(b *testing.B) {
				b.SetBytes(int64(n))
				for b.Loop() {
					tok.Encode(text, EncodeOptions{})
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
			})
		}
	}
}

// TestSPMWordSplitMatchesWhole checks the word-by-word SPM shortcut against
// merging the whole text at once, on a vocabulary with "▁▁" runs (which
// still allows the split) and on the real SPM vocabularies.
func TestSPMWordSplitMatchesWhole(t *testing.T) {
	toks := map[string]*Tokenizer{
		"synthetic": mustNew(t, spmVocab(map[string]float32{"▁": -1, "▁▁": -0.5, "▁▁▁▁": -0.2, "a": -2, "▁a": -1, "aa": -1.5, "é": -3})),
	}
	if files, err := filepath.Glob(filepath.Join(sharedTestdataOrEmpty(), "tokenizers", "*.gguf")); err == nil {
		for _, p := range files {
			if tok := loadTokenizer(t, p); tok.model == ModelSPM {
				toks[filepath.Base(p)] = tok
			}
		}
	}
	for name, tok := range toks {
		t.Run(name, func(t *testing.T) {
			require.True(t, tok.spmSplit, "vocabulary should allow the word split")
			rng := rand.New(rand.NewPCG(9, 10))
			for range 200 {
				s := strings.ReplaceAll(" "+randomText(rng, rng.IntN(40)), " ", "▁")
				assert.Equal(t, tok.encodeSPM(s, nil), tok.encodeSPMWords(s, nil), "%q", s)
			}
		})
	}
	inner := mustNew(t, spmVocab(map[string]float32{"▁": -1, "a": -1, "b": -1, "a▁": -1, "a▁b": -1}))
	assert.False(t, inner.spmSplit, "a token with an inner ▁ disables the split")
	assert.Equal(t, ids(inner, "a▁b"), inner.Encode("a b", EncodeOptions{NoSpecial: true})[1:])
}

// writeVocabGGUF writes the given metadata to a GGUF file and opens it.
func writeVocabGGUF(t *testing.T, kvs []gguf.KV) *gguf.File {
	t.Helper()
	w := gguf.NewWriter()
	for _, kv := range kvs {
		require.NoError(t, w.AddKV(kv.Key, kv.Value))
	}
	path := filepath.Join(t.TempDir(), "v.gguf")
	require.NoError(t, w.WriteFile(path))
	f, err := gguf.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestVocabFromGGUF(t *testing.T) {
	spmTokens := gguf.ArrayOf([]string{"<unk>", "<s>", "</s>", "▁a"})
	t.Run("spm defaults", func(t *testing.T) {
		f := writeVocabGGUF(t, []gguf.KV{
			{Key: keyModel, Value: gguf.String("llama")},
			{Key: keyTokens, Value: spmTokens},
		})
		v, err := VocabFromGGUF(f)
		require.NoError(t, err)
		assert.Equal(t, ModelSPM, v.Model)
		assert.Equal(t, []int32{1, 2, 0, -1, -1}, []int32{v.BOS, v.EOS, v.UNK, v.PAD, v.EOT})
		assert.True(t, v.AddBOS)
		assert.True(t, v.AddSpacePrefix)
		tok, err := FromGGUF(f)
		require.NoError(t, err)
		assert.Equal(t, []int32{1, 3}, tok.Encode("a", EncodeOptions{}))
	})
	t.Run("keys override defaults", func(t *testing.T) {
		f := writeVocabGGUF(t, []gguf.KV{
			{Key: keyModel, Value: gguf.String("llama")},
			{Key: keyTokens, Value: spmTokens},
			{Key: keyBOS, Value: gguf.Uint32(2)},
			{Key: keyEOS, Value: gguf.Uint32(99)}, // out of range: ignored, as llama.cpp does
			{Key: keyAddBOS, Value: gguf.Bool(false)},
			{Key: keySpacePrefix, Value: gguf.Bool(false)},
		})
		v, err := VocabFromGGUF(f)
		require.NoError(t, err)
		assert.Equal(t, int32(2), v.BOS)
		assert.Equal(t, int32(2), v.EOS)
		assert.False(t, v.AddBOS)
		assert.False(t, v.AddSpacePrefix)
	})
	t.Run("bpe", func(t *testing.T) {
		f := writeVocabGGUF(t, []gguf.KV{
			{Key: keyModel, Value: gguf.String("gpt2")},
			{Key: keyPre, Value: gguf.String("llama-bpe")},
			{Key: keyTokens, Value: gguf.ArrayOf([]string{"a", "b", "ab", "<|begin_of_text|>"})},
			{Key: keyTypes, Value: gguf.ArrayOf([]int32{1, 1, 1, 3})},
			{Key: keyMerges, Value: gguf.ArrayOf([]string{"a b"})},
			{Key: keyBOS, Value: gguf.Uint32(3)},
		})
		tok, err := FromGGUF(f)
		require.NoError(t, err)
		assert.Equal(t, []int32{3, 2}, tok.Encode("ab", EncodeOptions{}), "llama-bpe adds BOS by default")
	})
	errCases := []struct {
		name string
		kvs  []gguf.KV
	}{
		{"no model", []gguf.KV{{Key: keyTokens, Value: spmTokens}}},
		{"no tokens", []gguf.KV{{Key: keyModel, Value: gguf.String("llama")}}},
		{"unknown model", []gguf.KV{{Key: keyModel, Value: gguf.String("t5")}, {Key: keyTokens, Value: spmTokens}}},
		{"bpe without merges", []gguf.KV{{Key: keyModel, Value: gguf.String("gpt2")}, {Key: keyTokens, Value: spmTokens}}},
		{"tokens of wrong type", []gguf.KV{{Key: keyModel, Value: gguf.String("llama")}, {Key: keyTokens, Value: gguf.ArrayOf([]int32{1})}}},
		{"bad bos type", []gguf.KV{{Key: keyModel, Value: gguf.String("llama")}, {Key: keyTokens, Value: spmTokens}, {Key: keyBOS, Value: gguf.String("1")}}},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromGGUF(writeVocabGGUF(t, tc.kvs))
			assert.Error(t, err)
		})
	}
}

func TestEncodeConcurrent(t *testing.T) {
	toks := []*Tokenizer{
		mustNew(t, bpeVocab("deepseek-coder", []string{"Ġ a", "a a"}, []string{"<|x|>"}, nil)), // regexp2 path
		mustNew(t, bpeVocab("qwen2", []string{"Ġ a"}, nil, nil)),
		mustNew(t, spmVocab(map[string]float32{"▁": -1, "a": -2, "▁a": -1})),
	}
	rng := rand.New(rand.NewPCG(13, 14))
	texts := make([]string, 50)
	for i := range texts {
		texts[i] = randomText(rng, 40)
	}
	for _, tok := range toks {
		want := make([][]int32, len(texts))
		for i, s := range texts {
			want[i] = tok.Encode(s, EncodeOptions{ParseSpecial: true})
		}
		var wg sync.WaitGroup
		got := make([][][]int32, 4)
		for g := range got {
			wg.Go(func() {
				for _, s := range texts {
					got[g] = append(got[g], tok.Encode(s, EncodeOptions{ParseSpecial: true}))
				}
			})
		}
		wg.Wait()
		for g := range got {
			assert.Equal(t, want, got[g])
		}
	}
}

func TestSpecialIDs(t *testing.T) {
	v := spmVocab(map[string]float32{"▁": -1}, "<|end|>", "<|im_end|>", "<|user|>")
	tok := mustNew(t, v)
	end, imEnd, user := tok.toID["<|end|>"], tok.toID["<|im_end|>"], tok.toID["<|user|>"]
	assert.Equal(t, int32(1), tok.BOS())
	assert.Equal(t, int32(2), tok.EOS())
	assert.Contains(t, []int32{end, imEnd}, tok.EOT(), "EOT found by its text")
	for _, id := range []int32{2, end, imEnd} {
		assert.True(t, tok.IsEOG(id), tok.Token(id))
	}
	assert.False(t, tok.IsEOG(user))
	assert.False(t, tok.IsEOG(1))
	assert.True(t, tok.IsControl(user))
	assert.False(t, tok.IsControl(tok.toID["▁"]))
	assert.False(t, tok.IsControl(-1))
	assert.Equal(t, "<|user|>", tok.Token(user))
	assert.Equal(t, "", tok.Token(99999))
}
