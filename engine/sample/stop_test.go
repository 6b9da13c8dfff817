package sample

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runStopper pushes chunks through a new Stopper and returns every emitted
// piece (Flush last) and whether it stopped.
func runStopper(stops, chunks []string) (pieces []string, stopped bool) {
	s := NewStopper(stops)
	for _, c := range chunks {
		emit, st := s.Push(c)
		pieces = append(pieces, emit)
		if st {
			stopped = true
		}
	}
	return append(pieces, s.Flush()), stopped
}

// firstStop is the reference: the input up to the start of the first stop
// sequence to complete when reading byte by byte (the longest one if several
// complete at the same byte).
func firstStop(text string, stops []string) (string, bool) {
	for end := 1; end <= len(text); end++ {
		at := -1
		for _, s := range stops {
			if s != "" && strings.HasSuffix(text[:end], s) && (at < 0 || end-len(s) < at) {
				at = end - len(s)
			}
		}
		if at >= 0 {
			return text[:at], true
		}
	}
	return text, false
}

func TestStopperChunkings(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		stops []string
		want  string
		stop  bool
	}{
		{"no stops", "hello world", nil, "hello world", false},
		{"empty stop ignored", "hello world", []string{""}, "hello world", false},
		{"stop at end", "hello<|end|>", []string{"<|end|>"}, "hello", true},
		{"stop in the middle", "ab STOP cd", []string{"STOP"}, "ab ", true},
		{"stop at start", "STOPab", []string{"STOP"}, "", true},
		{"absent stop", "a b c d", []string{"xyz"}, "a b c d", false},
		{"partial stop at end is flushed", "abc STO", []string{"STOP"}, "abc STO", false},
		{"self-overlapping stop", "aaab", []string{"aab"}, "a", true},
		{"overlapping stops, first to complete wins", "xabcd", []string{"bcd", "abc"}, "x", true},
		{"shorter stop completes first", "00bcd", []string{"bcd", "c"}, "00b", true},
		{"same end, longer wins", "00bcd", []string{"cd", "bcd"}, "00", true},
		{"overlapping stops, prefix of another", "xabcd", []string{"abcd", "ab"}, "x", true},
		{"longer stop that never completes", "one\n\ntwo", []string{"\n\n\n", "two"}, "one\n\n", true},
		{"repeated prefix", "ababac", []string{"abac"}, "ab", true},
		{"multi-byte text", "héllo wörld ☃ done", []string{"done"}, "héllo wörld ☃ ", true},
		{"multi-byte stop", "日本語のテキスト。終わり", []string{"。終"}, "日本語のテキスト", true},
		{"emoji", "go 🚀🚀 now", []string{"🚀 "}, "go 🚀", true},
		{"newline stop", "line1\nline2\n\nline3", []string{"\n\n"}, "line1\nline2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, stop := firstStop(tt.text, tt.stops)
			require.Equal(t, tt.want, want, "table row disagrees with the reference")
			require.Equal(t, tt.stop, stop)

			// Every single split point, and byte-at-a-time.
			chunkings := [][]string{{tt.text}, byteChunks(tt.text)}
			for i := 0; i <= len(tt.text); i++ {
				chunkings = append(chunkings, []string{tt.text[:i], tt.text[i:]})
			}
			for _, chunks := range chunkings {
				pieces, stopped := runStopper(tt.stops, chunks)
				out := strings.Join(pieces, "")
				assert.Equal(t, tt.want, out, "chunks %q", chunks)
				assert.Equal(t, tt.stop, stopped, "chunks %q", chunks)
				for _, p := range pieces {
					assert.True(t, utf8.ValidString(p), "piece %q splits a rune (chunks %q)", p, chunks)
				}
			}
		})
	}
}

func byteChunks(s string) []string {
	out := make([]string, len(s))
	for i := range len(s) {
		out[i] = s[i : i+1]
	}
	return out
}

func TestStopperHoldsBackOnlyWhatItMust(t *testing.T) {
	s := NewStopper([]string{"</s>", "###"})
	tests := []struct {
		push, emit string
	}{
		{"Hello", "Hello"},
		{" <", " "},      // "<" may start "</s>"
		{"b>", "<b>"},    // it did not
		{" #", " "},      // "#" may start "###"
		{"#", ""},        // "##" still may
		{"!", "##!"},     // it did not
		{"\xe2\x98", ""}, // first two bytes of ☃: held, never split
		{"\x83 </", "☃ "},
	}
	for _, tt := range tests {
		emit, stopped := s.Push(tt.push)
		assert.Equal(t, tt.emit, emit, "push %q", tt.push)
		assert.False(t, stopped)
	}
	emit, stopped := s.Push("s> tail")
	assert.Equal(t, "", emit)
	assert.True(t, stopped)
	assert.True(t, s.Stopped())
	assert.Equal(t, "</s>", s.Matched())
	emit, stopped = s.Push("more")
	assert.Equal(t, "", emit, "nothing after a stop")
	assert.True(t, stopped)
	assert.Equal(t, "", s.Flush())
}

func TestStopperFlush(t *testing.T) {
	s := NewStopper([]string{"END"})
	emit, _ := s.Push("abcEN")
	assert.Equal(t, "abc", emit)
	assert.Equal(t, "EN", s.Flush())
	assert.Equal(t, "", s.Flush(), "flush clears")
	assert.False(t, s.Stopped())
	assert.Equal(t, "", s.Matched())

	// An incomplete rune with no stops is held until flushed.
	var z Stopper
	emit, stopped := z.Push("ok\xf0\x9f")
	assert.Equal(t, "ok", emit)
	assert.False(t, stopped)
	assert.Equal(t, "\xf0\x9f", z.Flush())

	// Invalid bytes are not held forever.
	emit, _ = z.Push("\xffa\x80b")
	assert.Equal(t, "\xffa\x80b", emit)
}

func TestNewStopperCopies(t *testing.T) {
	stops := []string{"x"}
	s := NewStopper(stops)
	stops[0] = "y"
	emit, stopped := s.Push("axb")
	assert.Equal(t, "a", emit)
	assert.True(t, stopped)
}
