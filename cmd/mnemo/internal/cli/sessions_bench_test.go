package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBenchSessions(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Main(t.Context(), []string{"bench", "sessions", "--synth", "tiny", "--turns", "3", "--turn-tokens", "8", "--gen", "3",
		"--weights", "f32"}, Env{Stdout: &out, Stderr: &errOut})
	require.Equal(t, 0, code, errOut.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 1+1+3+1+2, out.String())
	// history: 8, then 8+3+8, then 2·(8+3)+8; the live session prefills
	// the message, plus the last reply token after the first turn.
	for i, want := range [][]string{{"1", "8", "8"}, {"2", "19", "9"}, {"3", "30", "9"}} {
		f := strings.Fields(lines[2+i])
		assert.Equal(t, want, f[:3], lines[2+i])
		assert.Contains(t, lines[2+i], "n/a (persistence not wired yet)")
	}
	assert.Contains(t, lines[5], "total TTFT")
	assert.True(t, strings.HasPrefix(lines[6], "BenchmarkSessions/turn=3/history=30/mode=live 1 "), lines[6])

	code = Main(t.Context(), []string{"bench", "sessions", "--turns", "0"}, Env{Stdout: &out, Stderr: &errOut})
	assert.Equal(t, 2, code)
	code = Main(t.Context(), []string{"bench", "sessions", "a", "b"}, Env{Stdout: &out, Stderr: &errOut})
	assert.Equal(t, 2, code)
}
