package sample

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzStopper pushes random text through a Stopper in random chunks and
// checks the output against the reference: the input up to the earliest
// stop sequence, which is never emitted, whatever the chunking.
func FuzzStopper(f *testing.F) {
	f.Add("hello STOP world", "STOP", "", "", uint64(1))
	f.Add("aaab", "aab", "ab", "", uint64(2))
	f.Add("xabcd", "bcd", "abc", "d", uint64(3))
	f.Add("héllo ☃ wörld", "☃", "ö", "\xe2", uint64(4))
	f.Add("🚀🚀🚀", "🚀🚀", "", "", uint64(5))
	f.Add("line1\n\nline2", "\n\n", "\n\n\n", "2", uint64(6))
	f.Add("no stop here", "", "", "", uint64(7))
	f.Add("\xf0\x9f\x9a\x80\xff\x80abc", "\x80a", "bc", "", uint64(8))
	f.Fuzz(func(t *testing.T, text, s1, s2, s3 string, seed uint64) {
		stops := []string{s1, s2, s3}
		want, wantStop := firstStop(text, stops)

		r := rand.New(rand.NewPCG(seed, 0))
		var chunks []string
		for rest := text; rest != ""; {
			n := min(len(rest), r.IntN(6))
			chunks = append(chunks, rest[:n]) // empty chunks included
			rest = rest[n:]
		}
		pieces, stopped := runStopper(stops, chunks)
		out := strings.Join(pieces, "")
		if out != want {
			t.Fatalf("output %q, want %q (chunks %q, stops %q)", out, want, chunks, stops)
		}
		if stopped != wantStop {
			t.Fatalf("stopped %v, want %v", stopped, wantStop)
		}
		for _, s := range stops {
			if s != "" && strings.Contains(out, s) {
				t.Fatalf("output %q contains stop %q", out, s)
			}
		}
		valid := utf8.ValidString(text)
		for _, s := range stops {
			valid = valid && utf8.ValidString(s)
		}
		if valid {
			for _, p := range pieces {
				if !utf8.ValidString(p) {
					t.Fatalf("piece %q splits a rune (chunks %q)", p, chunks)
				}
			}
		}
	})
}

// FuzzSample feeds arbitrary logits (NaN and ±Inf included), settings and
// history to Sample: it must not panic, must return an id in range, must
// never pick a NaN/-Inf logit while a better one exists, must return the
// argmax when greedy and stay within the top-k when top-k is on.
func FuzzSample(f *testing.F) {
	le := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	f.Add(le(1, 2, 3, 4), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), uint64(1), []byte{1, 2})
	f.Add(le(nan, nan, nan), uint8(64), uint8(2), uint8(200), uint8(20), uint8(0), uint64(2), []byte{})
	f.Add(le(-inf, inf, nan, 1e38, -1e38), uint8(50), uint8(3), uint8(250), uint8(100), uint8(0xff), uint64(3), []byte{0, 1, 1, 4})
	f.Add(le(0, 0, 0, 0, 0, 0, 0, 0), uint8(255), uint8(0), uint8(128), uint8(0), uint8(0x0f), uint64(4), []byte{7, 7, 7})
	f.Add(le(inf, inf, -inf), uint8(1), uint8(1), uint8(1), uint8(255), uint8(0xf0), uint64(5), []byte{2})
	f.Fuzz(func(t *testing.T, raw []byte, temp, topK, topP, minP, pen uint8, seed uint64, hist []byte) {
		vocab := min(len(raw)/4, 1024)
		if vocab == 0 {
			return
		}
		logits := make([]float32, vocab)
		for i := range logits {
			logits[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		history := make([]int32, len(hist))
		for i, h := range hist {
			history[i] = int32(h) - 8 // a few out-of-range ids
		}
		o := Options{
			Temperature: float32(temp) / 64,
			TopK:        int(topK % 16),
			TopP:        float32(topP) / 255,
			MinP:        float32(minP) / 255,
			Seed:        seed,
		}
		if pen&1 != 0 {
			o.RepeatPenalty = 1 + float32(pen>>4)/8
		}
		if pen&2 != 0 {
			o.PresencePenalty = float32(pen>>4)/8 - 1
		}
		if pen&4 != 0 {
			o.FrequencyPenalty = 2 - float32(pen>>4)/4
		}
		if pen&8 != 0 {
			o.PenaltyLastN = int(pen>>4) - 1
		}
		s, err := New(o, vocab)
		if err != nil {
			t.Fatalf("New(%+v): %v", o, err)
		}
		got := s.Sample(logits, history)
		if got < 0 || int(got) >= vocab {
			t.Fatalf("token %d out of range [0, %d)", got, vocab)
		}
		if pen&7 != 0 {
			return // penalties move logits; the checks below use the raw ones
		}
		clean := func(v float32) float32 { return noNaN(v) }
		best := ninf32
		for _, v := range logits {
			best = max(best, clean(v))
		}
		g := clean(logits[got])
		if best > ninf32 && g == ninf32 {
			t.Fatalf("picked token %d with logit %v while %v exists", got, logits[got], best)
		}
		if o.Temperature == 0 {
			for i, v := range logits {
				if c := clean(v); c > g || (c == g && i < int(got) && best > ninf32) {
					t.Fatalf("greedy picked %d (%v), but %d has %v", got, g, i, v)
				}
			}
		}
		if o.TopK > 0 && best > ninf32 {
			better := 0
			for _, v := range logits {
				if clean(v) > g {
					better++
				}
			}
			if better >= o.TopK {
				t.Fatalf("picked token %d with %d better logits, top-k %d", got, better, o.TopK)
			}
		}
	})
}

// FuzzRestore feeds arbitrary bytes to Restore: it must not panic, and
// whatever it accepts must be exactly what State then returns.
func FuzzRestore(f *testing.F) {
	s, err := New(Options{Temperature: 1, Seed: 99}, 8)
	if err != nil {
		f.Fatal(err)
	}
	good := s.State()
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte("mnsp\x02"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := New(Options{Temperature: 1}, 8)
		if err != nil {
			t.Fatal(err)
		}
		before := r.State()
		if err := r.Restore(b); err != nil {
			if !bytes.Equal(before, r.State()) {
				t.Fatalf("failed Restore changed the state")
			}
			return
		}
		if got := r.State(); !bytes.Equal(got, b) {
			t.Fatalf("State after Restore = %x, want %x", got, b)
		}
	})
}
