package tokenizer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCustomSplittersMatchRegex checks the hand-written splitters against
// the regexes they stand for, run by regexp2 on the collapsed text: on the
// conformance inputs and on random text.
func TestCustomSplittersMatchRegex(t *testing.T) {
	var texts []string
	if td := sharedTestdataOrEmpty(); td != "" {
		if b, err := os.ReadFile(filepath.Join(td, "tokenizers", "gpt-2.gguf.inp")); err == nil {
			texts = append(texts, strings.Split(string(b), "\n__ggml_vocab_test__\n")...)
		}
	}
	rng := rand.New(rand.NewPCG(11, 12))
	n := 2000
	if testing.Short() {
		n = 200
	}
	for range n {
		texts = append(texts, randomText(rng, rng.IntN(40)))
	}
	texts = append(texts, "a\x1cb \x1f", "\v\f x", "''s '", "a  \n\n  b", "   ", "\r\n\r\n", "x'S'Ll'RE 'm", "١٢٣4567", "\u2028\u00a0 a", "a\u0301\u0302b")
	for _, pre := range []string{"gpt-2", "llama-bpe", "qwen2", "starcoder", "falcon", "default"} {
		t.Run(pre, func(t *testing.T) {
			custom, err := compilePretokenizer(pre, true)
			require.NoError(t, err)
			regex, err := compilePretokenizer(pre, false)
			require.NoError(t, err)
			for _, s := range texts {
				cpts := []rune(s)
				want, err := regex.split(cpts)
				require.NoError(t, err)
				got, err := custom.split(cpts)
				require.NoError(t, err)
				assert.Equal(t, want, got, "%q", s)
			}
		})
	}
}

func TestCollapseRegex(t *testing.T) {
	tests := []struct{ in, want string }{
		{`\p{L}+`, "[\u00d2A-Za-z]+"},
		{`[^\s\p{L}\p{N}]`, "[^\\s\u00d2A-Za-z\u00d10-9]"},
		{`\p{M}`, "[\u00d4]"},
		{`\[\p{N}`, "\\[[\u00d10-9]"},
		{`\p{Han}`, `\p{Han}`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, collapseRegex(tt.in), tt.in)
	}
}
