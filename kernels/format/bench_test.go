package format_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// BenchmarkQuantizeRow and BenchmarkDequantizeRow time the reference row
// codecs (GB/s of float32 input or output).
func BenchmarkQuantizeRow(b *testing.B) {
	const k = 4096
	r := rand.New(rand.NewPCG(1, 1))
	x := randBlock(r, k)
	for _, typ := range format.Types() {
		for _, search := range []bool{false, true} {
			if search && typ != format.MXF8E4M3 && typ != format.MXF8E5M2 && typ != format.MXFP4 && typ != format.NVFP4 {
				continue // Search only changes the MX and NVFP4 quantizers
			}
			b.Run(fmt.Sprintf("type=%v/search=%v/k=%d", typ, search, k), func(b *testing.B) {
				dst := make([]byte, typ.RowBytes(k))
				opt := format.Options{Search: search, TensorScale: format.NVFP4TensorScale(x)}
				for b.Loop() {
					format.QuantizeRow(typ, dst, x, opt)
				}
				b.ReportMetric(float64(4*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

func BenchmarkDequantizeRow(b *testing.B) {
	const k = 4096
	r := rand.New(rand.NewPCG(1, 1))
	x := randBlock(r, k)
	for _, typ := range format.Types() {
		b.Run(fmt.Sprintf("type=%v/k=%d", typ, k), func(b *testing.B) {
			src := quant(typ, x, format.Options{})
			dst := make([]float32, k)
			for b.Loop() {
				format.DequantizeRow(typ, dst, src, 1)
			}
			b.ReportMetric(float64(4*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
