package engine

import (
	"fmt"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// KV is a model's paged KV cache: one key and one value buffer per layer,
// each [Blocks, BlockTokens, KVHeads·HeadDim] in the backend, and the pool
// that hands out their blocks.
type KV struct {
	Pool        *kvcache.Pool
	BlockTokens int
	Blocks      int
	DType       backend.DType
	// Width is KVHeads·HeadDim, the elements per token per layer.
	Width int
	K, V  []backend.Buffer
}

// NewKV allocates a cache of capacity tokens (rounded up to whole blocks)
// for layers layers.
func NewKV(be backend.Backend, layers, width, blockTokens, capacity int, dt backend.DType) (*KV, error) {
	blocks := (capacity + blockTokens - 1) / blockTokens
	kv := &KV{Pool: kvcache.NewPool(blocks), BlockTokens: blockTokens, Blocks: blocks, DType: dt, Width: width}
	for l := range layers {
		for _, list := range []*[]backend.Buffer{&kv.K, &kv.V} {
			buf, err := be.Alloc(dt, backend.Shape{blocks, blockTokens, width})
			if err != nil {
				kv.Close()
				return nil, fmt.Errorf("kv cache layer %d: %w", l, err)
			}
			*list = append(*list, buf)
		}
	}
	return kv, nil
}

// BytesPerToken returns the cache bytes one token takes across all layers.
func (kv *KV) BytesPerToken() int {
	elem := 4
	switch kv.DType {
	case backend.BF16:
		elem = 2
	case backend.F8E4M3:
		elem = 1
	}
	return 2 * len(kv.K) * kv.Width * elem
}

// Close frees the buffers.
func (kv *KV) Close() error {
	for _, b := range append(kv.K, kv.V...) {
		b.Close()
	}
	kv.K, kv.V = nil, nil
	return nil
}
