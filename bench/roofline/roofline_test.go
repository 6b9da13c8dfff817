package roofline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadKernelsSum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 7, 8, 31, 32, 33, 63, 64, 65, 127, 128, 129, 511, 1000, 4097}
	for _, impl := range readImpls() {
		for _, n := range sizes {
			for _, off := range []int{0, 1, 3} {
				t.Run(fmt.Sprintf("%s/n=%d/off=%d", impl.name, n, off), func(t *testing.T) {
					buf := make([]uint64, n+off+2)
					for i := range buf {
						buf[i] = r.Uint64()
					}
					x := buf[off : off+n]
					var want uint64
					for _, v := range x {
						want += v
					}
					assert.Equal(t, want, impl.sum(x))
				})
			}
		}
	}
}

func TestReadImplsEndWithGo(t *testing.T) {
	impls := readImpls()
	require.NotEmpty(t, impls)
	assert.Equal(t, "go", impls[len(impls)-1].name)
}

func TestSplit(t *testing.T) {
	tests := []struct {
		n, parts, align int
		want            [][2]int
	}{
		{10, 1, 4, [][2]int{{0, 10}}},
		{1000, 2, 64, [][2]int{{0, 448}, {448, 1000}}},
		{100, 3, 1, [][2]int{{0, 33}, {33, 66}, {66, 100}}},
		{5, 2, 8, [][2]int{{0, 0}, {0, 5}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n, tt.parts, tt.align), func(t *testing.T) {
			assert.Equal(t, tt.want, split(tt.n, tt.parts, tt.align))
		})
	}
}

func TestUnitAndValue(t *testing.T) {
	p := Peaks{ReadGBs: 1, CacheReadGBs: 2, GoReadGBs: 3, FMAZMMGflops: 4, FMAYMMGflops: 5,
		BF16Gflops: 6, VNNIGops: 7, Int8ZMMGops: 8, Int8YMMGops: 9, VNNIYMMGops: 10}
	seen := map[float64]bool{}
	for _, probe := range Probes() {
		v, ok := p.Value(probe)
		require.True(t, ok, probe)
		assert.False(t, seen[v], "%s shares a field", probe)
		seen[v] = true
		assert.Contains(t, []string{"GB/s", "GFLOP/s", "GOP/s"}, Unit(probe))
	}
	_, ok := p.Value("nope")
	assert.False(t, ok)
	assert.Equal(t, 5.0, p.FMAGflops())
	assert.Equal(t, 9.0, p.Int8Gops())
	l := Limits{Single: Peaks{Threads: 1}, Multi: Peaks{Threads: 2}}
	assert.Equal(t, 1, l.At(1).Threads)
	assert.Equal(t, 2, l.At(2).Threads)
}

func quickOptions() Options {
	return Options{Threads: 2, ReadBytes: 1 << 20, CacheBytes: 16 << 10, MinTime: time.Millisecond, Runs: 1}
}

func TestMeasure(t *testing.T) {
	var calls, last, total int
	o := quickOptions()
	o.Progress = func(d, tot int) { calls++; last, total = d, tot }
	lim, err := Measure(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, 1, lim.Single.Threads)
	assert.Equal(t, min(2, lim.Multi.Threads), lim.Multi.Threads)
	assert.Equal(t, total, calls)
	assert.Equal(t, total, last)

	avail := map[string]bool{ReadDRAM: true, ReadCache: true, ReadGo: true}
	for _, cp := range computeProbes() {
		avail[cp.id] = true
	}
	for _, pk := range []Peaks{lim.Single, lim.Multi} {
		assert.Equal(t, readImpls()[0].name, pk.ReadImpl)
		for _, probe := range Probes() {
			v, _ := pk.Value(probe)
			if avail[probe] {
				assert.Positive(t, v, probe)
			} else {
				assert.Zero(t, v, probe)
			}
		}
	}
}

func TestMeasureSelectedProbes(t *testing.T) {
	o := quickOptions()
	o.Probes = []string{ReadCache}
	lim, err := Measure(context.Background(), o)
	require.NoError(t, err)
	assert.Positive(t, lim.Single.CacheReadGBs)
	assert.Zero(t, lim.Single.ReadGBs)
	assert.Zero(t, lim.Single.FMAGflops())
}

func TestMeasureErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Measure(ctx, quickOptions())
	assert.ErrorIs(t, err, context.Canceled)

	for _, o := range []Options{{Threads: -1}, {Runs: -2}, {Probes: []string{"bogus"}}} {
		_, err := Measure(context.Background(), o)
		assert.ErrorIs(t, err, ErrBadOptions)
	}
}
