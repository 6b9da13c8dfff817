package roofline

import (
	"fmt"
	"testing"
)

// BenchmarkRead runs each read kernel on one thread over an L2-resident
// array and a DRAM-sized one (16 MiB under -short), reporting GB/s.
func BenchmarkRead(b *testing.B) {
	dram := 256 << 20
	if testing.Short() {
		dram = 16 << 20
	}
	var big []uint64 // allocated on first use
	for _, impl := range readImpls() {
		for _, size := range []int{256 << 10, dram} {
			b.Run(fmt.Sprintf("impl=%s/bytes=%d", impl.name, size), func(b *testing.B) {
				if len(big) < size/8 {
					big = make([]uint64, size/8)
					fillParallel(big, 1)
				}
				x := big[:size/8]
				var s uint64
				for b.Loop() {
					s += impl.sum(x)
				}
				keep([]uint64{s})
				b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkCompute runs each compute probe on one thread, reporting its
// peak in GFLOP/s (GOP/s for the int8 probes, under the same key so
// benchstat lines them up).
func BenchmarkCompute(b *testing.B) {
	const iters = 1 << 12
	for _, cp := range computeProbes() {
		b.Run("probe="+cp.id, func(b *testing.B) {
			run := cp.newRun()
			for b.Loop() {
				run(iters)
			}
			b.ReportMetric(cp.opsPerIter*iters*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
