package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runMain runs the CLI with args and returns the exit status, stdout and
// stderr.
func runMain(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func tinyModel(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	code, _, stderr := runMain(t, "", "synth", "-o", path, "--size", "tiny")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "random")
	return path
}

func TestRunIsDeterministic(t *testing.T) {
	m := tinyModel(t)
	args := []string{"run", m, "--prompt", "the cat", "-n", "12", "--seed", "7", "--stats=false"}
	code, out1, stderr := runMain(t, "", args...)
	require.Equal(t, 0, code, stderr)
	require.True(t, strings.HasPrefix(out1, "the cat"), out1)
	assert.Greater(t, len(out1), len("the cat\n"), "generated something")
	_, out2, _ := runMain(t, "", args...)
	assert.Equal(t, out1, out2, "same seed, same text")
	_, out3, _ := runMain(t, "", "run", m, "--prompt", "the cat", "-n", "12", "--seed", "8", "--stats=false")
	assert.NotEqual(t, out1, out3, "another seed, other text")

	// A prompt on stdin and chat mode work too.
	code, out, stderr := runMain(t, "hello", "run", m, "--chat", "-n", "4", "--temp", "0")
	require.Equal(t, 0, code, stderr)
	assert.NotEmpty(t, strings.TrimSpace(out))
	assert.Contains(t, stderr, "prefill")
}

func TestRunBadInput(t *testing.T) {
	m := tinyModel(t)
	for _, tt := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"run"}, 2, "MODEL"},
		{[]string{"run", m, "--temp", "-1", "--prompt", "x"}, 2, "emperature"},
		{[]string{"run", m, "-n", "0", "--prompt", "x"}, 2, "-n"},
		{[]string{"run", filepath.Join(t.TempDir(), "missing.gguf"), "--prompt", "x"}, 1, "missing.gguf"},
		{[]string{"run", m, "--kv", "int4", "--prompt", "x"}, 2, "--kv"},
		{[]string{"run", m, "--weights", "int3", "--prompt", "x"}, 1, "int3"},
	} {
		code, _, stderr := runMain(t, "", tt.args...)
		assert.Equal(t, tt.code, code, "%v: %s", tt.args, stderr)
		assert.Contains(t, stderr, tt.msg, "%v", tt.args)
	}
}

func TestEval(t *testing.T) {
	m := tinyModel(t)
	out := filepath.Join(t.TempDir(), "logits.f32")
	code, _, stderr := runMain(t, "", "eval", m, "--tokens", "1,300,17,42", "--logits-out", out, "--batch", "3")
	require.Equal(t, 0, code, stderr)
	st, err := os.Stat(out)
	require.NoError(t, err)
	assert.EqualValues(t, 4*384*4, st.Size(), "positions × vocab float32")

	code, _, stderr = runMain(t, "", "eval", m, "--tokens", "1,99999", "--logits-out", out)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "vocabulary")
	code, _, _ = runMain(t, "", "eval", m, "--tokens", "1,x", "--logits-out", out)
	assert.Equal(t, 2, code)
	code, _, _ = runMain(t, "", "eval", m, "--tokens", "1")
	assert.Equal(t, 2, code, "--logits-out is required")
}

func TestBenchModel(t *testing.T) {
	m := tinyModel(t)
	js := filepath.Join(t.TempDir(), "b.json")
	code, out, stderr := runMain(t, "", "bench", "model", m, "-p", "16", "-n", "4", "--batch-seqs", "2", "--reps", "1",
		"--roofline=false", "--json", js)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "tok/s")
	raw, err := os.ReadFile(js)
	require.NoError(t, err)
	var res map[string]any
	require.NoError(t, json.Unmarshal(raw, &res))
	for _, k := range []string{"pp_tok_s", "tg_tok_s", "batch_tok_s", "matrix_bytes", "format"} {
		assert.Contains(t, res, k)
	}
	assert.Greater(t, res["pp_tok_s"].(float64), 0.0)
	// The cache holds whole blocks: eight sequences of 33 tokens need
	// three 16-token blocks each, more than their tokens' worth.
	for _, args := range [][]string{{"-p", "16", "-n", "32"}, {"-p", "100", "-n", "15"}, {"-p", "16", "-n", "15", "--depth", "201"}} {
		code, _, stderr = runMain(t, "", append([]string{"bench", "model", m, "--batch-seqs", "8", "--reps", "1", "--roofline=false"}, args...)...)
		assert.Equal(t, 0, code, "%v: %s", args, stderr)
	}
	code, _, _ = runMain(t, "", "bench", "model", m, "-p", "0")
	assert.Equal(t, 2, code)
	code, _, _ = runMain(t, "", "bench", "model", m, "--depth", "-1")
	assert.Equal(t, 2, code)
	code, _, stderr = runMain(t, "", "bench", "model", m, "--depth", "250", "-n", "8", "--roofline=false")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "context")
}

func TestQuantizeCommand(t *testing.T) {
	m := tinyModel(t)
	out := filepath.Join(t.TempDir(), "q.gguf")
	code, stdout, stderr := runMain(t, "", "quantize", m, out, "--type", "mxfp4")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "mxfp4")
	code, _, stderr = runMain(t, "", "run", out, "--prompt", "the", "-n", "3", "--stats=false")
	require.Equal(t, 0, code, stderr)
	code, stdout, stderr = runMain(t, "", "quantize", m, out, "--type", "fp8")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "other GGUF tools will refuse it")
	code, _, _ = runMain(t, "", "quantize", m, out, "--type", "int3")
	assert.Equal(t, 2, code)
	code, _, _ = runMain(t, "", "quantize", m, m, "--type", "q8_0")
	assert.Equal(t, 2, code, "in place is refused")
}
