package gguf_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mnemo-ai/mnemo/engine/gguf"
)

// BenchmarkDequantize measures the reference decoders in GB/s of encoded
// input.
func BenchmarkDequantize(b *testing.B) {
	const n = 4096
	r := rand.New(rand.NewPCG(5, 6))
	for _, typ := range []gguf.GGMLType{gguf.F16, gguf.Q8_0, gguf.Q4_0, gguf.Q4_K, gguf.Q6_K, gguf.MXFP4} {
		size, _ := typ.RowSize(n)
		src := make([]byte, size)
		for i := range src {
			src[i] = byte(r.Uint32())
		}
		// Keep F16 scales finite: clear the exponent's top bit of every byte
		// pair (harmless for the quantized payloads).
		for i := 1; i < len(src); i += 2 {
			src[i] &= 0x3F
		}
		dst := make([]float32, n)
		b.Run(fmt.Sprintf("type=%v/n=%d", typ, n), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := gguf.Dequantize(typ, dst, src); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

// BenchmarkParse measures parsing a file whose metadata holds a 32000-token
// vocabulary (the bulk of a real header).
func BenchmarkParse(b *testing.B) {
	toks := make([]string, 32000)
	scores := make([]float32, len(toks))
	for i := range toks {
		toks[i] = fmt.Sprintf("▁tok%d", i)
	}
	w := gguf.NewWriter()
	_ = w.AddKV("tokenizer.ggml.tokens", gguf.ArrayOf(toks))
	_ = w.AddKV("tokenizer.ggml.scores", gguf.ArrayOf(scores))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.Run(fmt.Sprintf("impl=bytes/tokens=%d", len(toks)), func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := gguf.ParseBytes(data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
	})
}
