package kvcache_test

import (
	"fmt"
	"os"

	"github.com/mnemo-ai/mnemo/kvcache"
)

// Example shows a session's life: the runtime wires a Cache and a Store
// over the engine's pool (here a MemIO stands in for NewBufferIO(kv.K,
// kv.V)), shares a prefix between two sessions, saves one, and restores it
// after a restart.
func Example() {
	dir, _ := os.MkdirTemp("", "kvcache-example")
	defer os.RemoveAll(dir)
	const blockTokens = 4
	fp := kvcache.NewFingerprint([]byte("model file id"), []byte("config+tokenizer"), "f32", blockTokens)
	salt := kvcache.TenantSalt([]byte("server secret"), "tenant-1")

	start := func() (*kvcache.Pool, *kvcache.Cache, *kvcache.Store) {
		pool := kvcache.NewPool(16) // engine.KV's pool
		store, err := kvcache.OpenStore(dir, fp, kvcache.StoreOptions{})
		if err != nil {
			panic(err)
		}
		c, err := kvcache.NewCache(pool, kvcache.Config{Fingerprint: fp, IO: kvcache.NewMemIO(16, 256),
			HostBytes: 1 << 20, Disk: store.Blobs(), DiskBytes: 16 << 20})
		if err != nil {
			panic(err)
		}
		return pool, c, store
	}
	pool, c, store := start()

	// Session A: nothing cached yet; the engine's step reserves blocks
	// (Table.Reserve) and writes K/V, then the runtime publishes.
	prompt := []int32{1, 10, 11, 12, 13, 14, 15, 16, 17, 18}
	a := c.Match(salt, prompt[:len(prompt)-1])
	fmt.Println("A matched", a.Len)
	_ = a.Reserve(pool, len(prompt)-a.Len, blockTokens) // engine.PlanStep does this
	a.Len = len(prompt)                                 // engine Step.Commit does this
	_ = c.Publish(salt, prompt, a)

	// Session B shares A's two full blocks.
	b := c.Match(salt, append(prompt[:8:8], 99, 98))
	fmt.Println("B matched", b.Len)
	b.Release(pool)

	// Save A, "restart", restore it when it is next used.
	if err := c.Save(store, "sess-a", salt, prompt, a, []byte("runtime metadata")); err != nil {
		panic(err)
	}
	a.Release(pool)
	pool, c, store = start()
	snap, _ := store.Load("sess-a")
	r, err := c.Restore(salt, snap)
	if err != nil {
		panic(err)
	}
	fmt.Println("restored", r.Len, "tokens,", string(snap.Meta))
	r.Release(pool)
	// Output:
	// A matched 0
	// B matched 8
	// restored 10 tokens, runtime metadata
}
