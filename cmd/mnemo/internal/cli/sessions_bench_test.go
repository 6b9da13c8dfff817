package cli

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBenchSessions(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Main(t.Context(), []string{"bench", "sessions", "--synth", "tiny", "--turns", "3", "--turn-tokens", "8", "--gen", "3",
		"--weights", "f32", "--reps", "1", "--shared-sessions", "4", "--shared-prefix", "48", "--decoders", "2",
		"--decode-tokens", "4"}, Env{Stdout: &out, Stderr: &errOut})
	require.Equal(t, 0, code, errOut.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 1+1+3+2+3+2+3, out.String())
	// history: 8, then 8+3+8, then 2·(8+3)+8; the live session prefills
	// the message, plus the last reply token after the first turn.
	for i, want := range [][]string{{"1", "8", "8"}, {"2", "19", "9"}, {"3", "30", "9"}} {
		f := strings.Fields(lines[2+i])
		assert.Equal(t, want, f[:3], lines[2+i])
		assert.Len(t, f, 12, "live, restored and recompute times, two ratios, decode speed: %s", lines[2+i])
	}
	assert.Contains(t, lines[5], "total TTFT: live")
	assert.Contains(t, lines[5], "restored")
	assert.True(t, strings.HasPrefix(lines[7], "BenchmarkSessions/turn=3/history=30/mode=live 1 "), lines[7])
	assert.True(t, strings.HasPrefix(lines[8], "BenchmarkSessions/turn=3/history=30/mode=restored 1 "), lines[8])

	// 4 sessions share the 48-token prompt (3 blocks of 16): each adds the
	// block holding its last 8 tokens, so 4 sessions use 3+4 blocks where
	// separate ones would use 4·4.
	m := regexp.MustCompile(`shared/sessions=4/prefix=48 1 (\d+) kv_bytes (\d+) separate_kv_bytes`).FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	used, _ := strconv.Atoi(m[1])
	alone, _ := strconv.Atoi(m[2])
	assert.Equal(t, 7*alone, 16*used, "7 blocks used, 16 without sharing")
	assert.Contains(t, out.String(), "prefilled 80 tokens vs 224", "48 once, then 8 per session")
	assert.Regexp(t, `snapshots: [0-9.]+ MB/s written at full speed`, out.String())
	assert.Regexp(t, `snapshots while 2 sessions decode \(paced to 1% of the time\): [0-9.]+ MB/s`, out.String())
	assert.Regexp(t, `BenchmarkSessions/snapshot 1 [0-9.]+ MB/s_idle [0-9.]+ MB/s_decoding [0-9.]+ tok/s_quiet [0-9.]+ tok/s_writing`, out.String())

	code = Main(t.Context(), []string{"bench", "sessions", "--turns", "0"}, Env{Stdout: &out, Stderr: &errOut})
	assert.Equal(t, 2, code)
	code = Main(t.Context(), []string{"bench", "sessions", "a", "b"}, Env{Stdout: &out, Stderr: &errOut})
	assert.Equal(t, 2, code)
	for _, bad := range [][]string{{"--snap-share", "1.5"}, {"--snap-share", "-1"}, {"--synth", "huge"}} {
		code = Main(t.Context(), append([]string{"bench", "sessions"}, bad...), Env{Stdout: &out, Stderr: &errOut})
		assert.Equal(t, 2, code, "%v", bad)
	}
}
