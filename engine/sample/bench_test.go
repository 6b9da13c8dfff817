package sample

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkSample measures one Sample call over a 128k vocabulary (the size
// of Llama 3's) with logits shaped like a language model's: a normal bulk
// plus a few strong candidates. GB/s counts the logits read.
func BenchmarkSample(b *testing.B) {
	const vocab = 128256
	r := rand.New(rand.NewPCG(11, 12))
	logits := make([]float32, vocab)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 2)
	}
	for i := range 20 {
		logits[r.IntN(vocab)] = 12 + float32(i)*0.3
	}
	history := make([]int32, 64)
	for i := range history {
		history[i] = int32(r.IntN(vocab))
	}
	tests := []struct {
		name string
		opts Options
	}{
		{"greedy", Options{}},
		{"temp=0.8/k=40/p=0.95", Options{Temperature: 0.8, TopK: 40, TopP: 0.95}},
		{"temp=0.8/k=40/p=0.95/min_p=0.05/repeat=1.1/last_n=64", Options{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, RepeatPenalty: 1.1, PenaltyLastN: 64}},
		{"temp=0.8/k=0/p=0.95", Options{Temperature: 0.8, TopP: 0.95}},
		{"temp=0.8/k=0/min_p=0.05", Options{Temperature: 0.8, MinP: 0.05}},
		{"temp=1/k=0/p=1", Options{Temperature: 1}},
	}
	for _, tt := range tests {
		b.Run(fmt.Sprintf("vocab=%d/%s", vocab, tt.name), func(b *testing.B) {
			s, err := New(tt.opts, vocab)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.Sample(logits, history)
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(sec*1e9/float64(b.N), "ns/token")
			b.ReportMetric(float64(4*vocab)*float64(b.N)/sec/1e9, "GB/s")
		})
	}
}
