package kernels

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// TestForPrep checks forPrep's split: runs of whole units that cover
// [0, m) once, as many as the threads that get prepGrain activations
// each (the last run may have up to a unit less), and all on the caller
// with a nil Pool.
func TestForPrep(t *testing.T) {
	pool := NewPool(2)
	defer func() { require.NoError(t, pool.Close()) }()
	cases := []struct {
		p          *Pool
		m, unit, k int
		runs       int
	}{
		{pool, 512, 4, 2048, 2},
		{pool, 37, 4, 2080, 2},      // 40 padded rows: 83200 activations
		{pool, 8, 4, 5632, 1},       // 45056: not 2·prepGrain
		{pool, 1, 1, 2048, 1},       // decode
		{pool, 16, 1, 4096, 2},      // exactly 2·prepGrain
		{pool, 15, 1, 4096, 1},      // one row short
		{nil, 512, 4, 2048, 1},      // no pool
		{pool, 0, 4, 2048, 0},       // nothing
		{pool, 3, 3, 1 << 16, 1},    // one unit, however large
		{pool, 4096, 1, 1 << 20, 2}, // never more runs than threads
		{pool, 3, 1, 24000, 2},      // the last run a unit short
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("m=%d/unit=%d/k=%d/pool=%v", c.m, c.unit, c.k, c.p != nil), func(t *testing.T) {
			var mu sync.Mutex
			var runs [][2]int
			forPrep(c.p, c.m, c.unit, c.k, func(i0, i1 int) {
				mu.Lock()
				runs = append(runs, [2]int{i0, i1})
				mu.Unlock()
			})
			require.Len(t, runs, c.runs)
			covered := make([]int, c.m)
			for _, r := range runs {
				assert.Zero(t, r[0]%c.unit, "run %v starts inside a unit", r)
				assert.True(t, r[1] == c.m || r[1]%c.unit == 0, "run %v ends inside a unit", r)
				if len(runs) > 1 {
					assert.GreaterOrEqual(t, (r[1]-r[0]+c.unit)*c.k, prepGrain, "run %v too small", r)
				}
				for i := r[0]; i < r[1]; i++ {
					covered[i]++
				}
			}
			for i, n := range covered {
				assert.Equal(t, 1, n, "row %d covered %d times", i, n)
			}
		})
	}
}

// TestPrepSplit checks that every format's activation preparation, at
// every tier and precision, writes the same bytes whether its rows are
// split across threads or not, on shapes large enough to split: padded
// rows (m not a multiple of 4), a last partial chunk, and M = 2 and 3
// (the few-rows layout).
func TestPrepSplit(t *testing.T) {
	pool := NewPool(3)
	defer func() { require.NoError(t, pool.Close()) }()
	rng := rand.New(rand.NewPCG(8, 9))
	shapes := [][2]int{{37, 2080}, {64, 1056}, {2, 1 << 15}, {3, 1 << 15}, {512, 128}}
	for _, ft := range Formats() {
		for _, prec := range []Precision{Fast, Exact} {
			for _, sh := range shapes {
				m, k := sh[0], sh[1]
				if !ft.RowOK(k) {
					continue
				}
				w, err := Quantize(ft, 8, k, randMatrix(rng, 8, k), format.Options{})
				require.NoError(t, err)
				w.Precision = prec
				x := randMatrix(rng, m, k)
				for _, impl := range Impls() {
					g, tier := w.ops.lookup(impl.Tier)
					if g.prep == nil || tier != impl.Tier {
						continue
					}
					what := fmt.Sprintf("%s/%s/%s/m=%d/k=%d", impl.Name, ft, prec, m, k)
					a, b := new(scratch), new(scratch)
					g.prep(nil, w, x, m, a)
					g.prep(pool, w, x, m, b)
					assert.Equal(t, a.f32, b.f32, "%s: f32", what)
					assert.Equal(t, a.u16, b.u16, "%s: bf16", what)
					assert.Equal(t, a.i8, b.i8, "%s: int8", what)
					assert.Equal(t, a.sc, b.sc, "%s: scales", what)
					assert.Equal(t, a.i32, b.i32, "%s: corrections", what)
				}
			}
		}
	}
}
