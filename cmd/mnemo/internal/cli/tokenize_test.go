package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine/gguf"
)

// tinyVocabGGUF writes a vocab-only GGUF with a small SentencePiece
// vocabulary: <unk> <s> </s> <|im_start|>, the 256 byte tokens, then a few
// pieces. It returns the path and the id of each piece.
func tinyVocabGGUF(t *testing.T) (string, map[string]int) {
	t.Helper()
	toks := []string{"<unk>", "<s>", "</s>", "<|im_start|>"}
	types := []int32{2, 3, 3, 3}
	for b := range 256 {
		toks = append(toks, fmt.Sprintf("<0x%02X>", b))
		types = append(types, 6)
	}
	pieces := []string{"▁", "h", "i", "hi", "▁hi", "t", "e", "r", "th", "er", "ere", "there", "▁there"}
	toks = append(toks, pieces...)
	for range pieces {
		types = append(types, 1)
	}
	scores := make([]float32, len(toks))
	id := map[string]int{}
	for i, s := range toks {
		id[s] = i
		if len([]rune(s)) == 1 {
			scores[i] = -10 // merged pieces score higher than single characters
		}
	}
	w := gguf.NewWriter()
	for _, kv := range []gguf.KV{
		{Key: "general.architecture", Value: gguf.String("llama")},
		{Key: "tokenizer.ggml.model", Value: gguf.String("llama")},
		{Key: "tokenizer.ggml.tokens", Value: gguf.ArrayOf(toks)},
		{Key: "tokenizer.ggml.scores", Value: gguf.ArrayOf(scores)},
		{Key: "tokenizer.ggml.token_type", Value: gguf.ArrayOf(types)},
		{Key: "tokenizer.ggml.bos_token_id", Value: gguf.Uint32(1)},
		{Key: "tokenizer.ggml.eos_token_id", Value: gguf.Uint32(2)},
	} {
		require.NoError(t, w.AddKV(kv.Key, kv.Value))
	}
	path := filepath.Join(t.TempDir(), "vocab.gguf")
	require.NoError(t, w.WriteFile(path))
	return path, id
}

func runTok(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(t.Context(), args, Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func joinIDs(ids ...int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, " ") + "\n"
}

func TestTokenize(t *testing.T) {
	path, id := tinyVocabGGUF(t)
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"bos added", "", []string{path, "hi there"}, joinIDs(id["<s>"], id["▁hi"], id["▁there"])},
		{"no bos", "", []string{path, "hi there", "--no-bos"}, joinIDs(id["▁hi"], id["▁there"])},
		{"byte fallback", "", []string{"--no-bos", path, "hé"}, ""},
		{"control not parsed", "", []string{path, "--no-bos", "<|im_start|>"}, ""},
		{"control parsed", "", []string{path, "--no-bos", "--special", "<|im_start|>hi"}, joinIDs(id["<|im_start|>"], id["▁hi"])},
		{"pieces", "", []string{path, "--pieces", "hi"}, fmt.Sprintf("%d:%q %d:%q\n", id["<s>"], "<s>", id["▁hi"], " hi")},
		{"stdin", "hi", []string{path, "-", "--no-bos"}, joinIDs(id["▁hi"])},
	}
	// expected values that depend on the byte tokens
	tests[2].want = joinIDs(id["▁"], id["h"], id["<0xC3>"], id["<0xA9>"])
	tests[3].want = joinIDs(id["▁"], id["<0x3C>"], id["<0x7C>"], id["i"], id["<0x6D>"], id["<0x5F>"],
		id["<0x73>"], id["t"], id["<0x61>"], id["r"], id["t"], id["<0x7C>"], id["<0x3E>"])
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := runTok(t, tt.stdin, append([]string{"tokenize"}, tt.args...)...)
			require.Equal(t, 0, code, stderr)
			assert.Equal(t, tt.want, out)
		})
	}
}

func TestDetokenize(t *testing.T) {
	path, id := tinyVocabGGUF(t)
	code, out, stderr := runTok(t, "", "detokenize", path,
		fmt.Sprint(id["<s>"]), fmt.Sprint(id["▁hi"]), fmt.Sprintf("%d %d", id["<0xC3>"], id["<0xA9>"]))
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "hié\n", out)

	// round trip through both commands
	code, out, stderr = runTok(t, "", "tokenize", path, "hi there é")
	require.Equal(t, 0, code, stderr)
	code, back, stderr := runTok(t, "", "detokenize", path, strings.TrimSpace(out))
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "hi there é\n", back)
}

func TestTokenizeErrors(t *testing.T) {
	path, id := tinyVocabGGUF(t)
	n := len(id)
	notGGUF := filepath.Join(t.TempDir(), "x.gguf")
	require.NoError(t, os.WriteFile(notGGUF, []byte("not a gguf file at all"), 0o644))
	tests := []struct {
		name     string
		args     []string
		code     int
		stderrIn string
	}{
		{"missing file", []string{"tokenize", filepath.Join(t.TempDir(), "none.gguf"), "hi"}, 1, "open model"},
		{"not gguf", []string{"tokenize", notGGUF, "hi"}, 1, "open model"},
		{"no text", []string{"tokenize", path}, 2, "want MODEL and TEXT"},
		{"bad flag", []string{"tokenize", path, "hi", "--nope"}, 2, "flag provided but not defined"},
		{"detok no ids", []string{"detokenize", path}, 2, "at least one token id"},
		{"detok non-numeric", []string{"detokenize", path, "12", "abc"}, 2, `token id "abc" is not an integer`},
		{"detok out of range", []string{"detokenize", path, "1", "99999"}, 1, fmt.Sprintf("token id 99999 out of range [0,%d)", n)},
		{"detok negative", []string{"detokenize", path, "--", "-5"}, 1, "token id -5 out of range"},
		{"detok missing file", []string{"detokenize", filepath.Join(t.TempDir(), "none.gguf"), "1"}, 1, "open model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runTok(t, "", tt.args...)
			assert.Equal(t, tt.code, code)
			assert.Contains(t, stderr, tt.stderrIn)
		})
	}
}

// TestTokenizeSharedVocab runs the command on a real vocabulary from the
// shared test data, against its reference tokenization.
func TestTokenizeSharedVocab(t *testing.T) {
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		require.NotEqual(t, dir, filepath.Dir(dir), "go.mod not found")
		dir = filepath.Dir(dir)
	}
	base := filepath.Join(filepath.Dir(dir), "shared", "testdata", "tokenizers", "llama-spm.gguf")
	if _, err := os.Stat(base); err != nil {
		t.Skipf("shared test data not found (%s)", base)
	}
	inp, err := os.ReadFile(base + ".inp")
	require.NoError(t, err)
	outs, err := os.ReadFile(base + ".out")
	require.NoError(t, err)
	inputs := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	wants := strings.Split(string(outs), "\n")
	for i := range min(len(inputs)-1, 12) {
		if inputs[i] == "" || strings.HasPrefix(inputs[i], "-") {
			continue
		}
		code, out, stderr := runTok(t, "", "tokenize", "--no-bos", base, "--", inputs[i])
		require.Equal(t, 0, code, stderr)
		assert.Equal(t, strings.TrimSpace(wants[i]), strings.TrimSpace(out), "input %q", inputs[i])
	}
}
