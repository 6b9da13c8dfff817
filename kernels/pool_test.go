package kernels

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPoolForCoversRangeOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := NewPool(threads)
		for _, n := range []int{0, 1, 2, 7, 8, 9, 63, 64, 65, 1000} {
			for _, grain := range []int{0, 1, 4, 8, 16} {
				hits := make([]int32, n)
				var calls atomic.Int32
				p.For(n, grain, func(lo, hi int) {
					calls.Add(1)
					require.LessOrEqual(t, lo, hi)
					if grain > 1 && lo != 0 {
						assert.Zero(t, lo%grain, "chunk start %d not a multiple of grain %d", lo, grain)
					}
					for i := lo; i < hi; i++ {
						atomic.AddInt32(&hits[i], 1)
					}
				})
				for i, h := range hits {
					require.EqualValues(t, 1, h, "threads=%d n=%d grain=%d index %d", threads, n, grain, i)
				}
				assert.LessOrEqual(t, int(calls.Load()), threads)
			}
		}
		require.NoError(t, p.Close())
		require.NoError(t, p.Close(), "Close is idempotent")
	}
}

func TestPoolConcurrentCallers(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	var wg sync.WaitGroup
	var total atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 50 {
				p.For(100, 1, func(lo, hi int) { total.Add(int64(hi - lo)) })
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 8*50*100, total.Load())
}

func TestNilPoolRunsOnCaller(t *testing.T) {
	var p *Pool
	assert.Equal(t, 1, p.Threads())
	n := 0
	p.For(10, 3, func(lo, hi int) { n += hi - lo })
	assert.Equal(t, 10, n)
}

// BenchmarkPoolFor measures a For whose worker chunk takes a few
// microseconds longer than the caller's, as the halves of a matmul do: the
// time per call is the work plus the cost of joining the worker.
func BenchmarkPoolFor(b *testing.B) {
	p := NewPool(2)
	defer p.Close()
	var sink atomic.Int64
	work := func(n int) {
		x := int64(1)
		for i := range n {
			x = x*31 + int64(i)
		}
		sink.Add(x)
	}
	for _, spins := range []int{0, 2000, 20000} {
		b.Run(fmt.Sprintf("worker-extra=%d", spins), func(b *testing.B) {
			for b.Loop() {
				p.For(2, 1, func(lo, _ int) {
					if lo > 0 {
						work(spins)
					}
				})
			}
		})
	}
}
