package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/runtime"
)

var cachedRE = regexp.MustCompile(`\[session (\S+): (\d+) tokens cached, prefill (\d+) tokens`)

// sessionStats returns the cached and prefilled token counts of a run's
// stats line.
func sessionStats(t *testing.T, stderr string) (cached, prefilled int) {
	t.Helper()
	m := cachedRE.FindStringSubmatch(stderr)
	require.NotNil(t, m, stderr)
	cached, _ = strconv.Atoi(m[2])
	prefilled, _ = strconv.Atoi(m[3])
	return cached, prefilled
}

// referenceConversation runs the turns in one runtime (no store, no
// restart) with the flags' sampling and returns each reply.
func referenceConversation(t *testing.T, path string, n int, turns ...string) []string {
	t.Helper()
	mf := modelFlags{backend: "cpu", weights: "auto", kv: defaultKV, batch: 512}
	l, err := mf.open(Env{Stderr: &strings.Builder{}}, path, nil)
	require.NoError(t, err)
	defer l.Close()
	tok, _, err := loadTokenizer(l.src, "")
	require.NoError(t, err)
	rt, err := runtime.New(l.model, runtime.Options{Tokenizer: tok})
	require.NoError(t, err)
	defer rt.Close()
	opts := sample.Options{TopK: 40, TopP: float32(0.95), MinP: float32(0.05), RepeatPenalty: float32(1.1),
		MaxTokens: n, PenaltyLastN: 64}
	s, err := rt.Open(t.Context(), "ref", runtime.SessionOptions{Sampling: opts})
	require.NoError(t, err)
	var out []string
	for _, turn := range turns {
		require.NoError(t, s.AppendText(t.Context(), turn))
		_, text, _, err := runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{Sampling: &opts}))
		require.NoError(t, err)
		out = append(out, text)
	}
	return out
}

// TestRunSessionRestart runs a conversation over two processes: the
// second prefills only its turn and continues exactly like one process.
func TestRunSessionRestart(t *testing.T) {
	m, state := tinyModel(t), t.TempDir()
	run := func(text string) (string, string) {
		code, out, stderr := runMain(t, "", "run", m, "--session", "conv", "--state-dir", state, "--prompt", text,
			"-n", "8", "--temp", "0")
		require.Equal(t, 0, code, stderr)
		require.True(t, strings.HasPrefix(out, text), out)
		return strings.TrimSuffix(strings.TrimPrefix(out, text), "\n"), stderr
	}
	want := referenceConversation(t, m, 8, "the cat sat", " on the mat")

	reply1, stderr := run("the cat sat")
	cached, first := sessionStats(t, stderr)
	assert.Zero(t, cached, "a new session")
	assert.Equal(t, want[0], reply1)

	reply2, stderr := run(" on the mat")
	assert.Contains(t, stderr, "[session conv: resumed")
	cached, prefilled := sessionStats(t, stderr)
	assert.Equal(t, first+8-1, cached, "the whole history but the last reply token is cached")
	assert.Less(t, prefilled, first, "only the new turn is prefilled")
	assert.Equal(t, want[1], reply2, "the reply continues the conversation")
}

func TestSessionsCommands(t *testing.T) {
	m, state := tinyModel(t), t.TempDir()
	code, _, stderr := runMain(t, "", "run", m, "--session", "chat-1", "--state-dir", state, "--chat",
		"--prompt", "hello there", "-n", "4", "--temp", "0")
	require.Equal(t, 0, code, stderr)
	sd := []string{"--state-dir", state}

	code, out, stderr := runMain(t, "", append([]string{"sessions", "list"}, sd...)...)
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	f := strings.Fields(lines[1])
	assert.Equal(t, "chat-1", f[0])
	tokens, err := strconv.Atoi(f[1])
	require.NoError(t, err)
	assert.Greater(t, tokens, 4)
	assert.Contains(t, lines[1], "KiB")
	assert.Contains(t, lines[1], "tiny.gguf")

	code, out, stderr = runMain(t, "", append([]string{"sessions", "show", "chat-1"}, sd...)...)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "[user]\nhello there\n")
	assert.Contains(t, out, "[assistant]")
	assert.Contains(t, out, "messages: 2")

	exp := filepath.Join(t.TempDir(), "chat.mnemo")
	code, _, stderr = runMain(t, "", append([]string{"sessions", "export", "chat-1", "-o", exp}, sd...)...)
	require.Equal(t, 0, code, stderr)
	code, _, stderr = runMain(t, "", append([]string{"sessions", "import", exp, m}, sd...)...)
	assert.Equal(t, 1, code, "the id exists")
	assert.Contains(t, stderr, "session exists")
	code, _, stderr = runMain(t, "", append([]string{"sessions", "import", exp, m, "--as", "chat-2"}, sd...)...)
	require.Equal(t, 0, code, stderr)
	_, out, _ = runMain(t, "", append([]string{"sessions", "show", "chat-2"}, sd...)...)
	assert.Contains(t, out, "[user]\nhello there\n", "the import has the messages")

	// The imported session resumes with its KV.
	code, _, stderr = runMain(t, "", "run", m, "--session", "chat-2", "--state-dir", state, "--prompt", " more",
		"-n", "2", "--temp", "0")
	require.Equal(t, 0, code, stderr)
	cached, _ := sessionStats(t, stderr)
	assert.GreaterOrEqual(t, cached, tokens-1)

	code, _, stderr = runMain(t, "", append([]string{"sessions", "rm", "chat-1", "chat-2"}, sd...)...)
	require.Equal(t, 0, code, stderr)
	_, out, _ = runMain(t, "", append([]string{"sessions", "list"}, sd...)...)
	assert.Equal(t, 1, len(strings.Split(strings.TrimSpace(out), "\n")), out)
	code, _, stderr = runMain(t, "", append([]string{"sessions", "show", "chat-1"}, sd...)...)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "not found")

	t.Run("corrupted export", func(t *testing.T) {
		data, err := os.ReadFile(exp)
		require.NoError(t, err)
		for _, tt := range []struct {
			name string
			edit func([]byte) []byte
		}{
			{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }},
			{"truncated", func(b []byte) []byte { return b[:len(b)-7] }},
		} {
			bad := filepath.Join(t.TempDir(), "bad.mnemo")
			require.NoError(t, os.WriteFile(bad, tt.edit(append([]byte(nil), data...)), 0o600))
			code, _, stderr := runMain(t, "", append([]string{"sessions", "import", bad, m, "--as", "bad"}, sd...)...)
			assert.Equal(t, 1, code, tt.name)
			assert.Contains(t, stderr, "bad session export", tt.name)
			assert.Contains(t, stderr, "checksum", tt.name)
		}
		_, out, _ := runMain(t, "", append([]string{"sessions", "list"}, sd...)...)
		assert.NotContains(t, out, "bad", "nothing installed")
	})

	t.Run("hostile ids", func(t *testing.T) {
		for _, args := range [][]string{
			{"sessions", "show", "../../etc/passwd"},
			{"sessions", "rm", "a/b"},
			{"sessions", "export", "..", "-o", filepath.Join(t.TempDir(), "x")},
			{"sessions", "import", exp, m, "--as", "../escape"},
			{"run", m, "--session", "/abs", "--prompt", "x"},
			{"run", m, "--session", "nul\x00", "--prompt", "x"},
		} {
			code, _, stderr := runMain(t, "", append(args, sd...)...)
			assert.Equal(t, 2, code, "%q: %s", args, stderr)
			assert.Contains(t, stderr, "invalid session id", "%q", args)
		}
	})
}

// TestSessionFingerprintMismatch: a session saved with one model is
// refused by another (another seed, same file name), naming what
// differs, both when resumed and when imported.
func TestSessionFingerprintMismatch(t *testing.T) {
	m, state := tinyModel(t), t.TempDir()
	other := filepath.Join(t.TempDir(), filepath.Base(m))
	code, _, stderr := runMain(t, "", "synth", "-o", other, "--size", "tiny", "--seed", "2")
	require.Equal(t, 0, code, stderr)

	code, _, stderr = runMain(t, "", "run", m, "--session", "s", "--state-dir", state, "--prompt", "hi", "-n", "2")
	require.Equal(t, 0, code, stderr)
	code, _, stderr = runMain(t, "", "run", other, "--session", "s", "--state-dir", state, "--prompt", "hi", "-n", "2")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "saved with another model")
	assert.Contains(t, stderr, "fingerprint mismatch: model differs")

	code, _, stderr = runMain(t, "", "run", m, "--session", "s", "--state-dir", state, "--kv", "f32", "--prompt", "hi", "-n", "2")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `KV type "bf16", want "f32"`, "another KV type is another fingerprint")
	code, _, stderr = runMain(t, "", "run", m, "--session", "s", "--state-dir", state, "--kv", "fp8", "--prompt", "hi", "-n", "2")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `KV type "bf16", want "fp8"`)
	code, _, stderr = runMain(t, "", "run", m, "--session", "s8", "--state-dir", state, "--kv", "fp8", "--prompt", "hi", "-n", "2")
	require.Equal(t, 0, code, stderr)
	code, _, stderr = runMain(t, "", "run", m, "--session", "s8", "--state-dir", state, "--kv", "fp8", "--prompt", " again", "-n", "2")
	require.Equal(t, 0, code, "an FP8 cache is saved and restored: %s", stderr)

	exp := filepath.Join(t.TempDir(), "s.mnemo")
	code, _, stderr = runMain(t, "", "sessions", "export", "s", "-o", exp, "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	code, _, stderr = runMain(t, "", "sessions", "import", exp, other, "--as", "s2", "--state-dir", state)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "fingerprint mismatch: model differs")
}

// storeKVOf returns the KV type of the model directory in state that
// holds session id ("" if none does).
func storeKVOf(t *testing.T, state, id string) string {
	t.Helper()
	stores, err := modelStores(state)
	require.NoError(t, err)
	for _, ms := range stores {
		if has, _ := ms.hasSession(id); has {
			return ms.info.KV
		}
	}
	return ""
}

// TestKVDefault: without --kv, a new session gets bf16 and a stored one
// is resumed with the KV type it was saved with (not forked afresh under
// the default); serve and import take the stored type the same way, and
// eval keeps f32, the reference.
func TestKVDefault(t *testing.T) {
	m, state := tinyModel(t), t.TempDir()
	run := func(id string, extra ...string) string {
		t.Helper()
		args := append([]string{"run", m, "--session", id, "--state-dir", state, "--prompt", "hi", "-n", "2"}, extra...)
		code, _, stderr := runMain(t, "", args...)
		require.Equal(t, 0, code, stderr)
		return stderr
	}
	run("old", "--kv", "f32")
	assert.Equal(t, "f32", storeKVOf(t, state, "old"))
	assert.Contains(t, run("old"), "[session old: resumed", "a session saved with f32 resumes without --kv")
	run("new")
	assert.Equal(t, "bf16", storeKVOf(t, state, "new"), "a new session gets the default")
	assert.Contains(t, run("old"), "[session old: resumed", "with both stores present")
	assert.Equal(t, "f32", storeKVOf(t, state, "old"))

	// serve's choice (any session, bf16 first): f32 while only the f32
	// store has sessions, bf16 once it does too; a store another process
	// holds counts, so that serve stops at its lock.
	src, err := model.Open(m)
	require.NoError(t, err)
	defer src.Close()
	mf := modelFlags{backend: "cpu", weights: "auto"}
	assert.Equal(t, "bf16", storedKV(state, m, src, &mf, "", ""))
	assert.Equal(t, "f32", storedKV(state, m, src, &mf, "", "old"))
	assert.Empty(t, storedKV(state, m, src, &mf, "", "nobody"))
	assert.Empty(t, storedKV(t.TempDir(), m, src, &mf, "", ""), "an empty state directory")
	code, _, stderr := runMain(t, "", "sessions", "rm", "new", "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "f32", storedKV(state, m, src, &mf, "", ""), "only the f32 store has sessions")
	stores, err := modelStores(state)
	require.NoError(t, err)
	for _, ms := range stores {
		if ms.info.KV == "bf16" {
			unlock, err := lockStore(ms.dir)
			require.NoError(t, err)
			assert.Equal(t, "bf16", storedKV(state, m, src, &mf, "", ""), "a busy store")
			assert.Equal(t, "f32", storedKV(state, m, src, &mf, "", "old"), "the store holding the session wins")
			unlock()
		}
	}

	// import takes the exported session's type; an explicit other one
	// is refused.
	exp := filepath.Join(t.TempDir(), "old.mnemo")
	code, _, stderr = runMain(t, "", "sessions", "export", "old", "-o", exp, "--state-dir", state)
	require.Equal(t, 0, code, stderr)
	other := t.TempDir()
	code, _, stderr = runMain(t, "", "sessions", "import", exp, m, "--kv", "bf16", "--state-dir", other)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `KV type "f32", want "bf16"`)
	code, _, stderr = runMain(t, "", "sessions", "import", exp, m, "--kv", "int4", "--state-dir", other)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "--kv")
	code, _, stderr = runMain(t, "", "sessions", "import", exp, m, "--state-dir", other)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "f32", storeKVOf(t, other, "old"))
	code, _, stderr = runMain(t, "", "run", m, "--session", "old", "--state-dir", other, "--prompt", "hi", "-n", "2")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "[session old: resumed")

	// eval: f32 unless told.
	dir := t.TempDir()
	logits := func(name string, extra ...string) []byte {
		t.Helper()
		out := filepath.Join(dir, name)
		code, _, stderr := runMain(t, "", append([]string{"eval", m, "--tokens", "1,5,9,3,7,2,8,4", "--logits-out", out}, extra...)...)
		require.Equal(t, 0, code, stderr)
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		return b
	}
	def, f32, bf16 := logits("def"), logits("f32", "--kv", "f32"), logits("bf16", "--kv", "bf16")
	assert.Equal(t, f32, def)
	assert.NotEqual(t, bf16, def, "bf16 keys and values round")
}
