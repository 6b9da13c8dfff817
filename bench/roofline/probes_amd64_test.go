//go:build amd64 && gc && !noasm

package roofline

import (
	"os"
	"testing"

	"github.com/klauspost/cpuid/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/internal/evex"
)

// The BYTE sequences in the assembly must be what internal/evex encodes for
// the instruction named in the comment above each.
func TestAsmEVEXBytes(t *testing.T) {
	src, err := os.ReadFile("probes_amd64.s")
	require.NoError(t, err)
	n, err := evex.CheckAsm(src)
	require.NoError(t, err)
	assert.Equal(t, 24, n, "VDPBF16PS instructions checked")
}

func needs(t *testing.T, ids ...cpuid.FeatureID) {
	t.Helper()
	if !cpuid.CPU.Supports(ids...) {
		t.Skipf("CPU lacks %v", ids)
	}
}

// seq returns distinct starting accumulators so a probe that drops or mixes
// up accumulators fails.
func seqF32(acc [][]float32) {
	for i := range acc {
		for j := range acc[i] {
			acc[i][j] = float32(i*100 + j)
		}
	}
}

func TestFMAProbes(t *testing.T) {
	for _, n := range []int{0, 1, 3, 1000} {
		t.Run("zmm", func(t *testing.T) {
			needs(t, cpuid.AVX512F)
			var acc [24][16]float32
			rows := make([][]float32, 24)
			for i := range rows {
				rows[i] = acc[i][:]
			}
			seqF32(rows)
			fmaZMM(&acc, 0.5, 0.25, n)
			for i := range acc {
				for j := range acc[i] {
					require.Equal(t, float32(i*100+j)+0.125*float32(n), acc[i][j], "n=%d acc[%d][%d]", n, i, j)
				}
			}
		})
		t.Run("ymm", func(t *testing.T) {
			needs(t, cpuid.AVX2, cpuid.FMA3)
			var acc [12][8]float32
			rows := make([][]float32, 12)
			for i := range rows {
				rows[i] = acc[i][:]
			}
			seqF32(rows)
			fmaYMM(&acc, 0.5, 0.25, n)
			for i := range acc {
				for j := range acc[i] {
					require.Equal(t, float32(i*100+j)+0.125*float32(n), acc[i][j], "n=%d acc[%d][%d]", n, i, j)
				}
			}
		})
	}
}

func TestBF16Probe(t *testing.T) {
	needs(t, cpuid.AVX512F, cpuid.AVX512BF16)
	// a = (1.0, 2.0), b = (0.5, 0.25) as bf16 (low half first):
	// each step adds 1*0.5 + 2*0.25 = 1.
	const a, b = 0x4000_3f80, 0x3e80_3f00
	for _, n := range []int{0, 1, 7, 1000} {
		var acc [24][16]float32
		rows := make([][]float32, 24)
		for i := range rows {
			rows[i] = acc[i][:]
		}
		seqF32(rows)
		bf16ZMM(&acc, a, b, n)
		for i := range acc {
			for j := range acc[i] {
				require.Equal(t, float32(i*100+j+n), acc[i][j], "n=%d acc[%d][%d]", n, i, j)
			}
		}
	}
}

// The int8 probes: a bytes are unsigned (1, 2, 3, 200), b bytes signed
// (-1, 2, -3, 1): each step adds -1 + 4 - 9 + 200 = 194.
const int8A, int8B, int8Step = 0xc8_03_02_01, 0x01_fd_02_ff, 194

func TestInt8Probes(t *testing.T) {
	check := func(t *testing.T, rows [][]int32, n int) {
		t.Helper()
		for i := range rows {
			for j := range rows[i] {
				require.Equal(t, int32(i*100+j+int8Step*n), rows[i][j], "n=%d acc[%d][%d]", n, i, j)
			}
		}
	}
	init := func(rows [][]int32) {
		for i := range rows {
			for j := range rows[i] {
				rows[i][j] = int32(i*100 + j)
			}
		}
	}
	for _, n := range []int{0, 1, 5, 1000} {
		t.Run("vnni_zmm", func(t *testing.T) {
			needs(t, cpuid.AVX512F, cpuid.AVX512VNNI)
			var acc [24][16]int32
			rows := make([][]int32, 24)
			for i := range rows {
				rows[i] = acc[i][:]
			}
			init(rows)
			vnniZMM(&acc, int8A, int8B, n)
			check(t, rows, n)
		})
		t.Run("vnni_ymm", func(t *testing.T) {
			needs(t, cpuid.AVX2, cpuid.AVXVNNI)
			var acc [12][8]int32
			rows := make([][]int32, 12)
			for i := range rows {
				rows[i] = acc[i][:]
			}
			init(rows)
			vnniYMM(&acc, int8A, int8B, n)
			check(t, rows, n)
		})
		t.Run("int8_zmm", func(t *testing.T) {
			needs(t, cpuid.AVX512F, cpuid.AVX512BW)
			var acc [12][16]int32
			rows := make([][]int32, 12)
			for i := range rows {
				rows[i] = acc[i][:]
			}
			init(rows)
			int8ZMM(&acc, int8A, int8B, n)
			check(t, rows, n)
		})
		t.Run("int8_ymm", func(t *testing.T) {
			needs(t, cpuid.AVX2)
			var acc [6][8]int32
			rows := make([][]int32, 6)
			for i := range rows {
				rows[i] = acc[i][:]
			}
			init(rows)
			int8YMM(&acc, int8A, int8B, n)
			check(t, rows, n)
		})
	}
}
