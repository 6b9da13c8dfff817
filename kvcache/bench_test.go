package kvcache

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkStoreSave measures snapshot writes: "new" writes every block
// file (fsync each), "shared" only the snapshot record file because the
// blocks are stored already (a session saved again after a few tokens).
func BenchmarkStoreSave(b *testing.B) {
	for _, blockKiB := range []int{64, 1024} {
		for _, mode := range []string{"new", "shared"} {
			const blocks = 16
			b.Run(fmt.Sprintf("mode=%s/blocks=%d/block=%dKiB", mode, blocks, blockKiB), func(b *testing.B) {
				s, err := OpenStore(b.TempDir(), testFP, StoreOptions{})
				require.NoError(b, err)
				bb := blockKiB << 10
				i := 0
				snap := func() *Snapshot {
					if mode == "new" {
						i++
					}
					return testSnapshot(seqTokens(i, blocks*testBT), "meta")
				}
				saveTest(b, s, "warm", snap(), bb)
				for b.Loop() {
					sn := snap()
					require.NoError(b, s.Save("s", sn, patternSource{sn.Blocks, bb}))
				}
				if mode == "new" {
					bytes := float64(blocks * bb)
					b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
				}
			})
		}
	}
}

// BenchmarkMatch measures matching a cached 64-block prompt: "resident"
// finds idle backend blocks, "host" reloads every block from the host tier
// (memcpy through MemIO), the eviction of the previous round's blocks
// included.
func BenchmarkMatch(b *testing.B) {
	const blocks, bb = 64, 64 << 10
	for _, mode := range []string{"resident", "host"} {
		b.Run(fmt.Sprintf("mode=%s/blocks=%d/block=%dKiB", mode, blocks, bb>>10), func(b *testing.B) {
			cfg := Config{HostBytes: 2 * blocks * bb}
			poolBlocks := 2 * blocks
			if mode == "host" {
				poolBlocks = blocks + 1
			}
			f := newFixture(b, poolBlocks, bb, cfg)
			prompts := [][]int32{seqTokens(1, blocks*testBT), seqTokens(2, blocks*testBT)}
			for _, p := range prompts {
				var tb Table
				require.NoError(b, f.prefill(b, Salt{}, &tb, p))
				tb.Release(f.p)
			}
			i := 0
			for b.Loop() {
				p := prompts[0]
				if mode == "host" {
					p = prompts[i%2] // the other prompt's blocks must be evicted first
					i++
				}
				m := f.c.Match(Salt{}, p)
				if len(m.Blocks) != blocks {
					b.Fatalf("matched %d blocks, want %d", len(m.Blocks), blocks)
				}
				m.Release(f.p)
			}
			b.ReportMetric(float64(blocks)*float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
			if mode == "host" {
				b.ReportMetric(float64(blocks*bb)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			}
		})
	}
}
