package sample

import (
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/stat/distuv"
)

// refProbs is a deliberately naive reference for the sampling chain without
// bias or penalties: a full sort, then top-k, top-p and min-p on the softmax
// at temperature 1, then the softmax at the given temperature over the
// survivors. It returns one probability per token.
func refProbs(logits []float64, o Options) []float64 {
	ids := make([]int, len(logits))
	for i := range ids {
		ids[i] = i
	}
	slices.SortStableFunc(ids, func(a, b int) int {
		switch {
		case logits[a] > logits[b]:
			return -1
		case logits[a] < logits[b]:
			return 1
		}
		return 0
	})
	if o.TopK > 0 && o.TopK < len(ids) {
		ids = ids[:o.TopK]
	}
	softmax := func(ids []int, temp float64) []float64 {
		p := make([]float64, len(ids))
		var sum float64
		for i, id := range ids {
			p[i] = math.Exp((logits[id] - logits[ids[0]]) / temp)
			sum += p[i]
		}
		for i := range p {
			p[i] /= sum
		}
		return p
	}
	if o.TopP > 0 && o.TopP < 1 {
		var cum float64
		for i, p := range softmax(ids, 1) {
			cum += p
			if cum >= float64(o.TopP) {
				ids = ids[:i+1]
				break
			}
		}
	}
	if o.MinP > 0 {
		p := softmax(ids, 1)
		n := 0
		for n < len(ids) && p[n] >= float64(o.MinP)*p[0] {
			n++
		}
		ids = ids[:n]
	}
	out := make([]float64, len(logits))
	for i, p := range softmax(ids, float64(o.Temperature)) {
		out[ids[i]] = p
	}
	return out
}

// TestDistribution draws many tokens and checks, per configuration, that the
// truncated tokens never appear and the others follow the renormalised
// softmax (chi-square goodness of fit, p > 0.001).
func TestDistribution(t *testing.T) {
	logits := []float32{3.0, 2.5, 2.0, 1.0, 0.5, 0.0, -1.0, -2.0}
	// Softmax at temperature 1: 0.441 0.268 0.162 0.060 0.036 0.022 0.008 0.003.
	tests := []struct {
		name string
		opts Options
		kept []int32 // worked out by hand from the probabilities above
	}{
		{"temperature 0.7", Options{Temperature: 0.7}, []int32{0, 1, 2, 3, 4, 5, 6, 7}},
		{"temperature 1.5", Options{Temperature: 1.5}, []int32{0, 1, 2, 3, 4, 5, 6, 7}},
		{"top-k 3 at 0.7", Options{Temperature: 0.7, TopK: 3}, []int32{0, 1, 2}},
		// cumulative 0.441 0.709 0.871 0.931: the token crossing 0.9 is kept.
		{"top-p 0.9 at 0.7", Options{Temperature: 0.7, TopP: 0.9}, []int32{0, 1, 2, 3}},
		// Top-p is computed before temperature (llama.cpp order): at 0.3
		// temperature-first would keep only {0, 1}.
		{"top-p 0.9 at 0.3", Options{Temperature: 0.3, TopP: 0.9}, []int32{0, 1, 2, 3}},
		// logit >= 3 + ln 0.05 = 0.004.
		{"min-p 0.05 at 0.7", Options{Temperature: 0.7, MinP: 0.05}, []int32{0, 1, 2, 3, 4}},
		// top-k 6, then top-p over those 6 (cumulative 0.446 0.717 0.881
		// 0.941 0.978) keeps 5, then min-p 0.1 (logit >= 0.697) keeps 4.
		{"top-k, top-p, min-p at 0.7", Options{Temperature: 0.7, TopK: 6, TopP: 0.95, MinP: 0.1}, []int32{0, 1, 2, 3}},
		{"top-k 1 is greedy", Options{Temperature: 0.7, TopK: 1}, []int32{0}},
	}
	const draws = 20000
	l64 := make([]float64, len(logits))
	for i, v := range logits {
		l64[i] = float64(v)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Seed = 2024
			want := refProbs(l64, o)
			var refKept []int32
			for id, p := range want {
				if p > 0 {
					refKept = append(refKept, int32(id))
				}
			}
			require.Equal(t, tt.kept, refKept, "reference disagrees with the hand-worked kept set")

			s := mustNew(t, o, len(logits))
			counts := make([]int, len(logits))
			for range draws {
				counts[s.Sample(logits, nil)]++
			}
			var chi2 float64
			for id, c := range counts {
				if want[id] == 0 {
					assert.Zero(t, c, "truncated token %d drawn", id)
					continue
				}
				e := want[id] * draws
				chi2 += (float64(c) - e) * (float64(c) - e) / e
			}
			df := len(tt.kept) - 1
			if df == 0 {
				assert.Equal(t, draws, counts[tt.kept[0]])
				return
			}
			critical := distuv.ChiSquared{K: float64(df)}.Quantile(1 - 0.001)
			assert.Less(t, chi2, critical, "chi-square %.2f, df %d, counts %v, want %v", chi2, df, counts, want)
		})
	}
}

// TestDistributionLargeVocab checks the chain on a vocabulary large enough
// for the heap and partial-sort paths, against the same reference, by
// comparing the kept sets exactly and the draw frequencies with chi-square.
func TestDistributionLargeVocab(t *testing.T) {
	const vocab = 3000
	logits := make([]float32, vocab)
	l64 := make([]float64, vocab)
	for i := range logits {
		// A few clear favourites over a flat tail, ids scattered.
		v := -4.0 + float64((i*7919)%1000)*1e-3
		switch i {
		case 2111:
			v = 2
		case 17:
			v = 1.6
		case 2999:
			v = 1.5
		case 1500:
			v = 1
		}
		logits[i], l64[i] = float32(v), float64(float32(v))
	}
	tests := []struct {
		name string
		opts Options
	}{
		{"top-k 40", Options{Temperature: 0.8, TopK: 40}},
		{"top-p 0.5 unsorted", Options{Temperature: 0.8, TopP: 0.5}},
		{"min-p 0.3 unsorted", Options{Temperature: 1.3, MinP: 0.3}},
		{"top-k 100 top-p 0.6", Options{Temperature: 0.8, TopK: 100, TopP: 0.6}},
	}
	draws := 20000
	if testing.Short() {
		draws = 5000
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Seed = 77
			want := refProbs(l64, o)
			s := mustNew(t, o, vocab)
			counts := make([]int, vocab)
			for range draws {
				counts[s.Sample(logits, nil)]++
			}
			// Pool tokens with small expectations into one bin.
			var chi2, poolE float64
			var poolO, bins int
			for id, c := range counts {
				if want[id] == 0 {
					require.Zero(t, c, "truncated token %d drawn", id)
					continue
				}
				e := want[id] * float64(draws)
				if e < 5 {
					poolE += e
					poolO += c
					continue
				}
				chi2 += (float64(c) - e) * (float64(c) - e) / e
				bins++
			}
			if poolE > 0 {
				chi2 += (float64(poolO) - poolE) * (float64(poolO) - poolE) / poolE
				bins++
			}
			require.Greater(t, bins, 1)
			critical := distuv.ChiSquared{K: float64(bins - 1)}.Quantile(1 - 0.001)
			assert.Less(t, chi2, critical, "chi-square %.2f over %d bins", chi2, bins)
		})
	}
}
