//go:build amd64 && gc && !noasm

package kernels

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/internal/evex"
	"github.com/mnemo-ai/mnemo/kernels/format"
	"github.com/mnemo-ai/mnemo/kernels/internal/asmgen"
)

// TestFP8Tables checks the byte tables the AVX-512 FP8 kernels decode
// through: for all 256 codes, high byte (with the code's sign bit ORed in)
// and low byte form the bf16 of the code's value, which is exact.
func TestFP8Tables(t *testing.T) {
	for i, table := range []*[256]float32{&format.E4M3Table, &format.E5M2Table} {
		tab := &fp8Tabs[i]
		for c := range 256 {
			hi := tab[c&127] | byte(c)&0x80
			lo := tab[128+c&127]
			got := math.Float32frombits(uint32(hi)<<24 | uint32(lo)<<16)
			want := table[c]
			if math.IsNaN(float64(want)) {
				assert.True(t, math.IsNaN(float64(got)), "table %d code %#x", i, c)
				continue
			}
			assert.Equal(t, math.Float32bits(want), math.Float32bits(got), "table %d code %#x", i, c)
		}
	}
}

// TestFPKernelsGenerated fails when fpkern_amd64.{s,go} differ from what
// the generator writes (run go generate ./kernels), and checks every
// encoded AVX512_BF16 instruction against package evex.
func TestFPKernelsGenerated(t *testing.T) {
	s, g, err := asmgen.Generate()
	require.NoError(t, err)
	for i, want := range [][]byte{s, g} {
		got, err := os.ReadFile(asmgen.Files[i])
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got), "%s is stale: run go generate ./kernels", asmgen.Files[i])
	}
	n, err := evex.CheckAsm(s)
	require.NoError(t, err)
	assert.Greater(t, n, 100, "encoded instructions checked")
}

// TestFPPermutations checks that the activation layouts are permutations
// of each 64-element chunk.
func TestFPPermutations(t *testing.T) {
	for _, perm := range []*[64]int{&fastPerm, &exactPerm} {
		var seen [64]bool
		for _, e := range perm {
			require.False(t, seen[e])
			seen[e] = true
		}
	}
}

// TestReadStream checks the benchmarks' streaming read against Go.
func TestReadStream(t *testing.T) {
	if !supported(allImpls[AVX512]) {
		t.Skip("no AVX-512")
	}
	b := make([]byte, 4096)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	var want uint64
	for i := 0; i < len(b); i += 8 {
		want ^= uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
			uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
	}
	assert.Equal(t, want, readStreamAVX512(&b[0], len(b)/256))
}

// TestCvtBF16 checks the activation conversions of the bf16 kernels
// against toBF16 (round to nearest even, subnormals to signed zero, NaN
// stays NaN), in order and in the actBF16Perm order.
func TestCvtBF16(t *testing.T) {
	if !supported(allImpls[AVX512]) {
		t.Skip("no AVX-512")
	}
	const chunks = 3
	x := make([]float32, chunks*64)
	rng := rand.New(rand.NewPCG(5, 6))
	special := []uint32{0x3F808000, 0x3F818000, 0x3F808001, 0x00400000, 0x80000001, 0x7F7FFFFF,
		0x00800000, 0x7F800000, 0xFF800000, 0x7FC00001, 0x80000000, 0}
	for i := range x {
		x[i] = float32(rng.NormFloat64() * math.Exp(4*rng.NormFloat64()))
		if i%3 == 0 {
			x[i] = math.Float32frombits(special[(i/3)%len(special)])
		}
	}
	check := func(what string, got []uint16, elem func(p int) int) {
		for p, h := range got {
			want := toBF16(x[elem(p)])
			if math.IsNaN(float64(format.BF16ToFloat32(want))) {
				assert.True(t, math.IsNaN(float64(format.BF16ToFloat32(h))), "%s: position %d", what, p)
				continue
			}
			assert.Equal(t, want, h, "%s: position %d (%g)", what, p, x[elem(p)])
		}
	}
	out := make([]uint16, len(x))
	cvtBF16AVX512(&x[0], &out[0], len(x)/16)
	check("in order", out, func(p int) int { return p })
	clear(out)
	cvtBF16PermAVX512(&x[0], &out[0], chunks)
	check("permuted", out, func(p int) int { return p/64*64 + fastPerm[p%64] })
}
