//go:build amd64 && gc && !noasm

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
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
