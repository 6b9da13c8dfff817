package bench

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/mnemo-ai/mnemo/kernels"
)

// maxGenericOps skips generic-Go cases above this many operations per
// call: they take seconds each and say nothing new.
const maxGenericOps = 1 << 33

// BenchmarkMatMul runs every impl × format × shape × M (QuickShapes under
// -short) and reports GB/s of weight bytes and GFLOP/s (GOP/s for the int8
// paths are reported under the same GFLOP/s key so benchstat lines up).
// Unlike Run it uses one packed copy of the weights, so small matrices may
// be served from cache; use `mnemo bench kernels` for memory-bound numbers.
func BenchmarkMatMul(b *testing.B) {
	shapes := DefaultShapes()
	if testing.Short() {
		shapes = QuickShapes()
	}
	pool := kernels.NewPool(0)
	defer pool.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range kernels.Formats() {
		for _, sh := range shapes {
			if !f.RowOK(sh.K) {
				continue
			}
			var w *kernels.Matrix // packed on first use, for this format and shape only
			for _, impl := range kernels.Impls() {
				for _, m := range DefaultMs() {
					ops := 2 * float64(m) * float64(sh.N) * float64(sh.K)
					name := fmt.Sprintf("impl=%s/format=%s/m=%d/n=%d/k=%d", impl.Name, f, m, sh.N, sh.K)
					b.Run(name, func(b *testing.B) {
						if impl.Name == "generic" && ops > maxGenericOps {
							b.Skip("generic Go is too slow for this size")
						}
						if w == nil {
							src := randomF32(rng, sh.N*sh.K)
							mats, err := packCopies(f, sh, src, 1)
							if err != nil {
								b.Fatal(err)
							}
							w = mats[0]
						}
						x := randomF32(rng, m*sh.K)
						y := make([]float32, m*sh.N)
						for b.Loop() {
							impl.MatMul(pool, y, w, x, m)
						}
						sec := b.Elapsed().Seconds()
						b.ReportMetric(float64(w.Bytes())*float64(b.N)/sec/1e9, "GB/s")
						b.ReportMetric(ops*float64(b.N)/sec/1e9, "GFLOP/s")
					})
				}
			}
		}
	}
}
