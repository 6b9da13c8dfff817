package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

// argmaxRef is the obvious loop.
func argmaxRef(x []float32) int {
	best := -1
	for i, v := range x {
		if v == v && (best < 0 || v > x[best]) {
			best = i
		}
	}
	return best
}

func TestArgmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	type tc struct {
		name string
		x    []float32
	}
	cases := []tc{{"empty", nil}, {"one", []float32{3}}, {"all NaN", []float32{nan, nan, nan}}}
	for _, n := range []int{1, 3, 15, 16, 17, 63, 64, 65, 127, 128, 200, 32000, 32003} {
		for _, off := range []int{0, 1, 3} {
			buf := make([]float32, n+off)
			x := buf[off:]
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			cases = append(cases, tc{fmt.Sprintf("random/n=%d/off=%d", n, off), x})
			for _, at := range []int{0, n / 2, n - 1} {
				y := append([]float32(nil), x...)
				y[at] = 10
				y[n-1-at/2] = 10 // a tie: the first wins
				cases = append(cases, tc{fmt.Sprintf("tie/n=%d/off=%d/at=%d", n, off, at), y})
				z := append([]float32(nil), x...)
				for i := range z {
					if i%5 == at%5 {
						z[i] = nan
					}
				}
				z[at] = inf
				cases = append(cases, tc{fmt.Sprintf("nan+inf/n=%d/off=%d/at=%d", n, off, at), z})
			}
			ni := make([]float32, n)
			for i := range ni {
				ni[i] = float32(math.Inf(-1))
				if i%3 == 1 {
					ni[i] = nan
				}
			}
			cases = append(cases, tc{fmt.Sprintf("-inf and NaN/n=%d", n), ni})
			zeros := make([]float32, n)
			zeros[n-1] = float32(math.Copysign(0, -1))
			cases = append(cases, tc{fmt.Sprintf("zeros/n=%d", n), zeros})
			allNaN := make([]float32, n)
			for i := range allNaN {
				allNaN[i] = nan
			}
			cases = append(cases, tc{fmt.Sprintf("all NaN/n=%d", n), allNaN})
		}
	}
	for _, impl := range Impls() {
		for _, c := range cases {
			want := argmaxRef(c.x)
			if got := impl.Argmax(c.x); got != want {
				assert.Equal(t, want, got, "%s %s", impl.Name, c.name)
			}
		}
	}
}

func BenchmarkArgmax(b *testing.B) {
	x := make([]float32, 32000)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	x[31000] = 100
	for _, impl := range Impls() {
		b.Run("impl="+impl.Name+"/n=32000", func(b *testing.B) {
			for b.Loop() {
				impl.Argmax(x)
			}
			b.ReportMetric(float64(len(x))*4*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
