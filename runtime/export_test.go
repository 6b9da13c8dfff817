package runtime

import (
	"context"

	"github.com/mnemo-ai/mnemo/kvcache"
)

// Gather makes the loop take the next n requests (and nothing else) as
// soon as they arrive, so that their work is queued before the next step
// whatever the goroutine scheduling. It returns once the loop waits for
// them.
func Gather(rt *Runtime, n int) {
	started := make(chan struct{})
	go rt.do(context.Background(), func() {
		close(started)
		for range n {
			(<-rt.reqs)()
		}
	})
	<-started
}

// DecodeMeta decodes snapshot metadata (for fuzzing).
func DecodeMeta(b []byte) (*State, error) { return decodeMeta(b, nil) }

// Blobs returns the store's block files (for tests of what Delete leaves).
func (d *DiskStore) Blobs() *kvcache.Blobs { return d.store.Blobs() }
