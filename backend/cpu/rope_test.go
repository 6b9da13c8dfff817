package cpu_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/kernels"
)

// TestRoPETables runs one RoPE program over batches that hit, miss and
// collide in its cache of rotation tables (the same position twice,
// positions RopeSlots apart, a chunk longer than the cache, positions seen
// in an earlier run) and checks every row bit for bit against
// kernels.RoPE.
func TestRoPETables(t *testing.T) {
	b, err := cpu.New(backend.Options{Threads: 2})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) })
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 9))
	const heads, hd = 4, 64
	for _, style := range []backend.RopeStyle{backend.RopeNormal, backend.RopeNeoX} {
		rope := backend.Rope{Dims: hd, Base: 10000, Style: style}
		freqs := kernels.RopeFreqs(hd, 10000, kernels.RopeScaling{})
		// One program for the batches of five, so that they meet the
		// tables earlier batches left.
		progs := map[int]backend.Program{}
		defer func() {
			for _, p := range progs {
				p.Close()
			}
		}()
		const n = cpu.RopeSlots
		long := make([]int32, n+44)
		for i := range long {
			long[i] = int32(i)
		}
		for _, positions := range [][]int32{
			{5, 5, 5, 7, 7},                 // repeats in one run
			{5, 7, n + 5, 2*n + 5, 6},       // hits, and three positions sharing a slot
			{n + 5, 5, 2*n + 5, 3*n + 5, 6}, // the slot's owner changes between runs
			long,                            // longer than the cache
			{0, n - 1, n, 2*n - 1, n + 43},  // after the long run
		} {
			t.Run(fmt.Sprintf("%v/%v", style, positions[:5]), func(t *testing.T) {
				m := len(positions)
				p := progs[m]
				if p == nil {
					p, err = b.Compile(ctx, backend.Spec{Op: backend.OpRoPE, M: m, Heads: heads, HeadDim: hd, Rope: rope})
					require.NoError(t, err)
					progs[m] = p
				}
				xb, err := b.Alloc(backend.F32, backend.Shape{m, heads * hd})
				require.NoError(t, err)
				defer xb.Close()
				pb, err := b.Alloc(backend.I32, backend.Shape{m})
				require.NoError(t, err)
				defer pb.Close()
				require.NoError(t, pb.Write(i32Bytes(positions)))
				// Twice: the second run reads the tables the first left.
				for run := range 2 {
					x := xb.(backend.HostBuffer).F32()
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					want := append([]float32(nil), x...)
					for i, pos := range positions {
						kernels.Active().RoPE(want[i*heads*hd:(i+1)*heads*hd], heads, hd, int(pos), freqs, style == backend.RopeNeoX)
					}
					require.NoError(t, p.Run(ctx, []backend.Buffer{xb, pb}, []backend.Buffer{xb}))
					require.Equal(t, want, xb.(backend.HostBuffer).F32(), "run %d", run)
				}
			})
		}
	}
}

func i32Bytes(v []int32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], uint32(x))
	}
	return out
}
