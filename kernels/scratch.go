package kernels

import "sync"

// scratch holds per-call buffers (converted activations) reused across
// calls through a sync.Pool, so kernels do not allocate in steady state.
type scratch struct {
	f32 []float32 // padded f32 activations
	u16 []uint16  // bf16 activations
	i8  []int8    // int8 activations
	sc  []float32 // per-block activation scales
	i32 []int32   // per-block activation sums (for offset formats)
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch  { return scratchPool.Get().(*scratch) }
func putScratch(s *scratch) { scratchPool.Put(s) }

// grow returns b resized to n elements, reallocating only when the
// capacity is short. Contents are not preserved.
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}
