package sample

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	nan32  = float32(math.NaN())
	inf32  = float32(math.Inf(1))
	ninf32 = float32(math.Inf(-1))
)

func mustNew(t testing.TB, o Options, vocab int) *Sampler {
	t.Helper()
	s, err := New(o, vocab)
	require.NoError(t, err)
	return s
}

func TestGreedy(t *testing.T) {
	tests := []struct {
		name   string
		logits []float32
		bias   map[int32]float32
		want   int32
	}{
		{"argmax", []float32{0.1, 2, -1, 1.9}, nil, 1},
		{"tie goes to lowest id", []float32{1, 3, 3, 2, 3}, nil, 1},
		{"negative logits", []float32{-5, -2, -3}, nil, 1},
		{"NaN treated as -Inf", []float32{nan32, 1, nan32, 0.5}, nil, 1},
		{"NaN first then equal", []float32{nan32, -1, -1}, nil, 1},
		{"+Inf wins, lowest id", []float32{1, inf32, 2, inf32}, nil, 1},
		{"-Inf never wins", []float32{ninf32, -1e30, ninf32}, nil, 1},
		{"all NaN falls back to 0", []float32{nan32, nan32, nan32}, nil, 0},
		{"all -Inf falls back to 0", []float32{ninf32, ninf32}, nil, 0},
		{"fallback skips banned ids", []float32{nan32, nan32, nan32}, map[int32]float32{0: ninf32, 1: ninf32}, 2},
		{"everything banned falls back to 0", []float32{1, 2}, map[int32]float32{0: ninf32, 1: ninf32}, 0},
		{"ban the argmax", []float32{1, 5, 3}, map[int32]float32{1: ninf32}, 2},
		{"bias overtakes", []float32{1, 5, 3}, map[int32]float32{0: 4.5}, 0},
		{"ban beats +Inf", []float32{1, inf32, 3}, map[int32]float32{1: ninf32}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, Options{LogitBias: tt.bias}, len(tt.logits))
			before := slices.Clone(tt.logits)
			state := s.State()
			assert.Equal(t, tt.want, s.Sample(tt.logits, nil))
			assert.Equal(t, len(before), len(tt.logits))
			for i := range before { // logits are not modified (NaN-aware compare)
				assert.Equal(t, math.Float32bits(before[i]), math.Float32bits(tt.logits[i]), "logit %d modified", i)
			}
			assert.Equal(t, state, s.State(), "greedy must not use the RNG")
		})
	}
}

// TestGreedyIgnoresTruncation checks that greedy equals the limit of the
// sampling chain: truncation settings do not change the argmax.
func TestGreedyIgnoresTruncation(t *testing.T) {
	logits := []float32{0.5, 2, 2, -1, 1}
	s := mustNew(t, Options{TopK: 1, TopP: 0.1, MinP: 0.9}, len(logits))
	assert.Equal(t, int32(1), s.Sample(logits, nil))
}

func TestSampleNoCandidatesFallback(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no truncation", Options{Temperature: 1}},
		{"top-k", Options{Temperature: 1, TopK: 2}},
		{"top-p", Options{Temperature: 1, TopP: 0.5}},
		{"min-p", Options{Temperature: 1, MinP: 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.LogitBias = map[int32]float32{0: ninf32}
			s := mustNew(t, o, 4)
			ref := mustNew(t, o, 4)
			got := s.Sample([]float32{nan32, ninf32, nan32, ninf32}, nil)
			assert.Equal(t, int32(1), got, "lowest id not banned")
			// The RNG advanced by exactly one draw.
			ref.uniform()
			assert.Equal(t, ref.State(), s.State())
		})
	}
}

func TestSampleNeverDrawsBanned(t *testing.T) {
	logits := []float32{5, 5, 5, 5, nan32, 5, ninf32, 5}
	ban := map[int32]float32{0: ninf32, 1: ninf32, 2: ninf32, 5: ninf32, 7: ninf32}
	s := mustNew(t, Options{Temperature: 2, LogitBias: ban, Seed: 3}, len(logits))
	for range 2000 {
		require.Equal(t, int32(3), s.Sample(logits, nil))
	}
}

func TestSamplePosInf(t *testing.T) {
	logits := []float32{1e30, inf32, 3, inf32, nan32}
	s := mustNew(t, Options{Temperature: 0.5, TopP: 0.9, MinP: 0.5, Seed: 9}, len(logits))
	counts := map[int32]int{}
	for range 4000 {
		counts[s.Sample(logits, nil)]++
	}
	assert.Len(t, counts, 2, "only the +Inf tokens are drawn: %v", counts)
	assert.InDelta(t, 2000, counts[1], 200)
	assert.InDelta(t, 2000, counts[3], 200)
}

func TestPenalties(t *testing.T) {
	logits := []float32{2, -1, 0.5, 3, 1, 0}
	history := []int32{0, 1, 1, 3, 3, 3, -1, 99} // -1 and 99 are outside the vocabulary
	tests := []struct {
		name string
		opts Options
		want []float32
	}{
		{"off", Options{}, []float32{2, -1, 0.5, 3, 1, 0}},
		{"repeat only", Options{RepeatPenalty: 1.5},
			[]float32{2 / 1.5, -1 * 1.5, 0.5, 3 / 1.5, 1, 0}},
		{"frequency only", Options{FrequencyPenalty: 0.1},
			[]float32{2 - 0.1, -1 - 0.2, 0.5, 3 - 0.3, 1, 0}},
		{"presence only", Options{PresencePenalty: 0.25},
			[]float32{2 - 0.25, -1 - 0.25, 0.5, 3 - 0.25, 1, 0}},
		{"all three", Options{RepeatPenalty: 1.5, FrequencyPenalty: 0.1, PresencePenalty: 0.2},
			[]float32{2/1.5 - 0.3, -1*1.5 - 0.4, 0.5, 3/1.5 - 0.5, 1, 0}},
		{"negative (encouraging) penalties", Options{FrequencyPenalty: -0.5, PresencePenalty: -1},
			[]float32{2 + 1.5, -1 + 2, 0.5, 3 + 2.5, 1, 0}},
		{"window of 4 sees 3,3 and two ids outside the vocabulary", Options{RepeatPenalty: 1.5, FrequencyPenalty: 0.1, PresencePenalty: 0.2, PenaltyLastN: 2 + 2},
			[]float32{2, -1, 0.5, 3/1.5 - 0.4, 1, 0}},
		{"window -1 is the whole history", Options{PresencePenalty: 1, PenaltyLastN: -1},
			[]float32{1, -2, 0.5, 2, 1, 0}},
		{"window larger than history", Options{PresencePenalty: 1, PenaltyLastN: 1000},
			[]float32{1, -2, 0.5, 2, 1, 0}},
		{"bias then penalty", Options{RepeatPenalty: 2, LogitBias: map[int32]float32{0: -3, 2: 1}},
			[]float32{(2 - 3) * 2, -1 * 2, 1.5, 3.0 / 2, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, tt.opts, len(logits))
			for range 2 { // twice: scratch counts must be reset between calls
				got := s.prepare(logits, history)
				assert.InDeltaSlice(t, tt.want, got, 1e-6)
			}
		})
	}
}

func TestPenaltyChangesGreedyChoice(t *testing.T) {
	logits := []float32{1, 2.5, 2}
	s := mustNew(t, Options{RepeatPenalty: 1.3}, len(logits))
	assert.Equal(t, int32(1), s.Sample(logits, nil))
	assert.Equal(t, int32(2), s.Sample(logits, []int32{1}), "2.5/1.3 < 2")
	assert.Equal(t, int32(2), s.Sample(logits, []int32{1, 0}), "PenaltyLastN 0 sees the whole history")
	s = mustNew(t, Options{RepeatPenalty: 1.3, PenaltyLastN: 1}, len(logits))
	assert.Equal(t, int32(1), s.Sample(logits, []int32{1, 0}), "window of 1 sees only token 0")
}

func TestDeterminism(t *testing.T) {
	const vocab, steps = 50, 300
	r := rand.New(rand.NewPCG(1, 2))
	logits := make([][]float32, steps)
	for i := range logits {
		logits[i] = make([]float32, vocab)
		for j := range logits[i] {
			logits[i][j] = float32(r.NormFloat64())
		}
	}
	run := func(seed uint64) []int32 {
		s := mustNew(t, Options{Temperature: 1, TopK: 20, TopP: 0.95, MinP: 0.01, RepeatPenalty: 1.1, Seed: seed}, vocab)
		var out []int32
		for _, l := range logits {
			out = append(out, s.Sample(l, out))
		}
		return out
	}
	a := run(42)
	assert.Equal(t, a, run(42), "same seed, same stream")
	assert.NotEqual(t, a, run(43), "different seed, different stream")
	assert.Greater(t, len(distinct(a)), 5, "the stream varies")
}

func distinct(ids []int32) map[int32]bool {
	m := map[int32]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func TestStateRestore(t *testing.T) {
	opts := Options{Temperature: 1.2, TopK: 8, Seed: 7}
	logits := []float32{1, 1.5, 0.2, 0.9, 1.1, 0.3, 0.8, 1.4, 1.0, 0.7}
	s := mustNew(t, opts, len(logits))
	for range 17 {
		s.Sample(logits, nil)
	}
	state := s.State()
	want := make([]int32, 200)
	for i := range want {
		want[i] = s.Sample(logits, nil)
	}

	other := opts
	other.Seed = 12345 // the state, not the seed, decides the stream
	r := mustNew(t, other, len(logits))
	require.NoError(t, r.Restore(state))
	got := make([]int32, len(want))
	for i := range got {
		got[i] = r.Sample(logits, nil)
	}
	assert.Equal(t, want, got)
	assert.Equal(t, s.State(), r.State())
}

func TestRestoreRejects(t *testing.T) {
	s := mustNew(t, Options{Temperature: 1, Seed: 5}, 4)
	good := s.State()
	require.Len(t, good, stateSize)

	bad := map[string][]byte{
		"nil":      nil,
		"garbage":  []byte("definitely not a sampler state!!"),
		"too long": append(slices.Clone(good), 0),
	}
	for n := range len(good) {
		bad[fmt.Sprintf("truncated to %d", n)] = good[:n]
	}
	for i := range good {
		b := slices.Clone(good)
		b[i] ^= 0x10
		bad[fmt.Sprintf("bit flip at %d", i)] = b
	}
	v2 := slices.Clone(good)
	v2[len(stateMagic)] = 2
	bad["version 2"] = v2

	snapshot := s.State()
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			err := s.Restore(b)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrBadState)
			assert.Equal(t, snapshot, s.State(), "a failed Restore leaves the state unchanged")
		})
	}
	// The version error names the version even though the CRC and, for a
	// longer future format, the length also fail.
	assert.ErrorContains(t, s.Restore(v2), "version 2")
	assert.ErrorContains(t, s.Restore(append(v2, 1, 2, 3)), "version 2")
	assert.ErrorContains(t, s.Restore(good[:3]), "3 bytes")
}

func TestTopKMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 7, 100, 1000} {
		for _, k := range []int{1, 2, 5, 40, n - 1, n} {
			if k < 1 || k > n {
				continue
			}
			buf := make([]float32, n)
			for i := range buf {
				switch r.IntN(10) {
				case 0:
					buf[i] = ninf32
				case 1:
					buf[i] = inf32
				default:
					buf[i] = float32(r.IntN(8)) // many ties
				}
			}
			var all []cand
			for i, v := range buf {
				if v != ninf32 {
					all = append(all, cand{int32(i), v})
				}
			}
			sortDesc(all)
			want := all[:min(k, len(all))]
			assert.Equal(t, want, topK(buf, k, make([]cand, 0, k)), "n=%d k=%d", n, k)

		}
	}
}

// TestMassSelect checks the quickselect behind unsorted top-p against a
// full sort and a cumulative sum, with many ties and +Inf logits.
func TestMassSelect(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 2, 3, 33, 100, 1000, 5000} {
		for _, p := range []float64{0.01, 0.3, 0.5, 0.9, 0.999, 1} {
			for _, withInf := range []bool{false, true} {
				c := make([]cand, n)
				for i := range c {
					v := float32(r.IntN(50)) * 0.1
					if withInf && r.IntN(20) == 0 {
						v = inf32
					}
					c[i] = cand{int32(i), v}
				}
				r.Shuffle(n, func(i, j int) { c[i], c[j] = c[j], c[i] })
				lmax := ninf32
				for _, x := range c {
					lmax = max(lmax, x.logit)
				}
				w := make([]float64, n)
				var total float64
				for i, x := range c {
					w[i] = weight(x.logit, lmax, 1)
					total += w[i]
				}
				sorted := slices.Clone(c)
				sortDesc(sorted)
				want, cum := n, 0.0
				for i, x := range sorted {
					cum += weight(x.logit, lmax, 1)
					if cum >= p*total {
						want = i + 1
						break
					}
				}
				got := massSelect(c, w, lmax, p*total)
				assert.Equal(t, want, got, "n=%d p=%v inf=%v", n, p, withInf)
				assert.Equal(t, sorted[:want], sortedCopy(c[:min(got, n)]), "n=%d p=%v inf=%v", n, p, withInf)
				assert.Equal(t, sorted, sortedCopy(c), "massSelect permutes")
			}
		}
	}
}

func sortedCopy(c []cand) []cand {
	c = slices.Clone(c)
	sortDesc(c)
	return c
}

// TestTopPUnsorted runs the top-p stage without top-k (buckets, then
// quickselect) against a full sort for logit shapes whose boundary falls in
// the first bucket, a middle one and the catch-all last one.
func TestTopPUnsorted(t *testing.T) {
	const vocab = 5000
	r := rand.New(rand.NewPCG(9, 10))
	shapes := map[string]func(i int) float32{
		"nearly flat":      func(i int) float32 { return float32(i%7) * 1e-3 },
		"normal sigma 3":   func(int) float32 { return float32(r.NormFloat64() * 3) },
		"spread sigma 40":  func(int) float32 { return float32(r.NormFloat64() * 40) },
		"ties on a grid":   func(int) float32 { return float32(r.IntN(40)) * 0.25 },
		"one huge logit":   func(i int) float32 { return map[bool]float32{true: 1e30, false: -1e30}[i == 4321] },
		"peak and a floor": func(i int) float32 { return map[bool]float32{true: 50, false: float32(i%3) - 20}[i < 3] },
	}
	for name, shape := range shapes {
		logits := make([]float32, vocab)
		for i := range logits {
			logits[i] = shape(i)
		}
		all := make([]cand, vocab)
		for i, v := range logits {
			all[i] = cand{int32(i), v}
		}
		sortDesc(all)
		for _, p := range []float32{0.05, 0.5, 0.9, 0.95, 0.999} {
			t.Run(fmt.Sprintf("%s/p=%v", name, p), func(t *testing.T) {
				s := mustNew(t, Options{Temperature: 1, TopP: p}, vocab)
				c, lmax := s.candidates(s.prepare(logits, nil))
				kept := s.truncateTopP(c, lmax)

				var total, cum float64
				for _, x := range all {
					total += math.Exp(float64(x.logit) - float64(all[0].logit))
				}
				n := 0
				for n < len(all) {
					cum += math.Exp(float64(all[n].logit) - float64(all[0].logit))
					n++
					if cum >= float64(p)*total {
						break
					}
				}
				assert.Equal(t, all[:n], sortedCopy(kept))
			})
		}
	}
}

func TestSampleDoesNotAllocate(t *testing.T) {
	const vocab = 4096
	r := rand.New(rand.NewPCG(5, 6))
	logits := make([]float32, vocab)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 3)
	}
	history := make([]int32, 256)
	for i := range history {
		history[i] = int32(r.IntN(vocab))
	}
	tests := []struct {
		name string
		opts Options
	}{
		{"greedy", Options{RepeatPenalty: 1.1}},
		{"top-k", Options{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1.1, PresencePenalty: 0.5,
			LogitBias: map[int32]float32{1: ninf32}}},
		{"top-p without top-k", Options{Temperature: 0.8, TopP: 0.9, FrequencyPenalty: 0.2}},
		{"no truncation", Options{Temperature: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, tt.opts, vocab)
			s.Sample(logits, history) // allocates the scratch
			allocs := testing.AllocsPerRun(20, func() { s.Sample(logits, history) })
			assert.Zero(t, allocs)
		})
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// TestStreamGolden pins the token streams of a few configurations for fixed
// seeds. Sessions persist the RNG state and expect a restored sampler to
// continue the same stream, so any change to the chain or to how the RNG is
// used must be deliberate: rerun with -update and say why in the commit.
func TestStreamGolden(t *testing.T) {
	const vocab, steps = 300, 40
	r := rand.New(rand.NewPCG(13, 14))
	logits := make([]float32, vocab)
	configs := []struct {
		name string
		opts Options
	}{
		{"greedy+penalties", Options{RepeatPenalty: 1.3, FrequencyPenalty: 0.5, PresencePenalty: 0.5, PenaltyLastN: 16}},
		{"temp", Options{Temperature: 0.9, Seed: 1}},
		{"top-k+top-p+min-p", Options{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, Seed: 2}},
		{"top-p unsorted+bias", Options{Temperature: 1.1, TopP: 0.9, Seed: 3, LogitBias: map[int32]float32{5: ninf32, 7: 2}}},
	}
	var sb strings.Builder
	for _, c := range configs {
		s := mustNew(t, c.opts, vocab)
		var hist []int32
		for range steps {
			for i := range logits {
				logits[i] = float32(r.NormFloat64() * 2)
			}
			hist = append(hist, s.Sample(logits, hist))
		}
		fmt.Fprintf(&sb, "%s: %v\n", c.name, hist)
	}
	path := filepath.Join("testdata", "stream.golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(sb.String()), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run with -update to create it")
	assert.Equal(t, string(want), sb.String())
}
