//go:build amd64 && gc && !noasm

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// TestQuantizeChunks512 compares the AVX-512 activation quantizer with
// quantizeChunk bit for bit, special blocks included, in both activation
// orders and with interleaved rows.
func TestQuantizeChunks512(t *testing.T) {
	if Best().Tier < AVX512 {
		t.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(10, 11))
	var specials [][]float32
	for _, b := range edgeBlocks() {
		specials = append(specials, b)
	}
	for _, f := range int8Formats {
		for _, rb := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/rb=%d", f.t, rb), func(t *testing.T) {
				const chunks = 7
				x := randMatrix(rng, 1, chunks*i8ChunkK)
				for i := range 10 {
					copy(x[32*rng.IntN(chunks*4):], specials[i%len(specials)])
				}
				recs := (chunks-1)*rb + 1
				xq, sa, cr := make([]int8, recs*i8ChunkK), make([]float32, recs*i8Dwords), make([]int32, recs*i8Dwords)
				quantizeChunks512(f, x, rb, xq, sa, cr)
				for c := range chunks {
					r := c * rb
					wq, ws, wc := make([]int8, i8ChunkK), make([]float32, i8Dwords), make([]int32, i8Dwords)
					f.quantizeChunk(wq, ws, wc, x[c*i8ChunkK:(c+1)*i8ChunkK])
					assert.Equal(t, wq, xq[r*i8ChunkK:(r+1)*i8ChunkK], "chunk %d codes", c)
					assert.Equal(t, wc, cr[r*i8Dwords:(r+1)*i8Dwords], "chunk %d corrections", c)
					for d, v := range ws {
						got := sa[r*i8Dwords+d]
						if math.IsNaN(float64(v)) {
							assert.True(t, math.IsNaN(float64(got)), "chunk %d scale %d = %g, want NaN", c, d, got)
						} else {
							assert.Equal(t, v, got, "chunk %d scale %d", c, d)
						}
					}
				}
			})
		}
	}
}

// TestInt8CallSplits runs the int8 kernels on shapes that exercise how
// rowsAsm and rowsAsmBlocks cut the work: the stream kernels with a
// remainder of groups for the one-row kernel and more groups than one call
// takes, several activation tiles and several calls per tile for the
// four-row kernels, on one and on two threads, against the generic kernel
// (same arithmetic, so within implTolerance of Σ|x·w|).
func TestInt8CallSplits(t *testing.T) {
	cases := []struct{ n, k, m int }{
		{4 * (4*5 + 3), 256, 1},       // streams, and groups left over
		{4*i8CallGroups + 44, 128, 1}, // two calls, the second one short
		{4*i8CallGroups + 44, 128, 2}, // several calls per tile
		{4*i8CallGroups + 44, 256, 7}, // two blocks of four rows at once
		{40, 4096, 70},                // three tiles of activation rows
	}
	if testing.Short() {
		cases = cases[:4]
	}
	rng := rand.New(rand.NewPCG(12, 13))
	pool := NewPool(2)
	defer func() { require.NoError(t, pool.Close()) }()
	for _, f := range int8Formats {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/n=%d/k=%d/m=%d", f.t, c.n, c.k, c.m), func(t *testing.T) {
				w, err := Quantize(f.t, c.n, c.k, randMatrix(rng, c.n, c.k), format.Options{})
				require.NoError(t, err)
				x := randMatrix(rng, c.m, c.k)
				want := genericAt(w, x, c.m)
				mag := make([]float64, c.m*c.n)
				row := make([]float32, c.k)
				for j := range c.n {
					w.Row(j, row)
					for i := range c.m {
						for k, v := range row {
							mag[i*c.n+j] += math.Abs(float64(x[i*c.k+k]) * float64(v))
						}
					}
				}
				for _, impl := range Impls()[1:] {
					for _, p := range []*Pool{nil, pool} {
						y := make([]float32, c.m*c.n)
						impl.MatMul(p, y, w, x, c.m)
						checkClose(t, y, want(impl), mag, implTolerance, fmt.Sprintf("impl=%s threads=%d", impl, p.Threads()))
					}
				}
			})
		}
	}
}
