//go:build amd64 && gc && !noasm

package roofline

import "github.com/klauspost/cpuid/v2"

// The probes in probes_amd64.s. Each stub's comment is its reference loop.

// sumAVX512 returns the wrapping sum of p[0:n]; n is a multiple of 64.
//
//go:noescape
func sumAVX512(p *uint64, n int) uint64

// sumAVX2 returns the wrapping sum of p[0:n]; n is a multiple of 32.
//
//go:noescape
func sumAVX2(p *uint64, n int) uint64

// fmaZMM does n times: for i, j: acc[i][j] += a*b (fused).
//
//go:noescape
func fmaZMM(acc *[24][16]float32, a, b float32, n int)

// fmaYMM does n times: for i, j: acc[i][j] += a*b (fused).
//
//go:noescape
func fmaYMM(acc *[12][8]float32, a, b float32, n int)

// bf16ZMM does n times: for i, j: acc[i][j] += lo(a)*lo(b) + hi(a)*hi(b),
// where lo and hi are the bf16 halves of the 32-bit words.
//
//go:noescape
func bf16ZMM(acc *[24][16]float32, a, b uint32, n int)

// vnniZMM does n times: for i, j: acc[i][j] += Σk u8(a>>8k)*s8(b>>8k).
//
//go:noescape
func vnniZMM(acc *[24][16]int32, a, b uint32, n int)

// vnniYMM is vnniZMM on ymm registers with the AVX-VNNI (VEX) encoding and
// 12 accumulators.
//
//go:noescape
func vnniYMM(acc *[12][8]int32, a, b uint32, n int)

// int8YMM does n times: for i, j: acc[i][j] += Σk u8(a>>8k)*s8(b>>8k),
// through VPMADDUBSW+VPMADDWD (saturating at the int16 step).
//
//go:noescape
func int8YMM(acc *[6][8]int32, a, b uint32, n int)

// int8ZMM is int8YMM on zmm registers with 12 accumulators.
//
//go:noescape
func int8ZMM(acc *[12][16]int32, a, b uint32, n int)

func hasAVX512() bool { return cpuid.CPU.Supports(cpuid.AVX512F) }

func readImpls() []readImpl {
	var r []readImpl
	if hasAVX512() {
		r = append(r, readImpl{"avx512", func(x []uint64) uint64 {
			return sumBlocks(x, 64, sumAVX512)
		}})
	}
	if cpuid.CPU.Supports(cpuid.AVX2) {
		r = append(r, readImpl{"avx2", func(x []uint64) uint64 {
			return sumBlocks(x, 32, sumAVX2)
		}})
	}
	return append(r, readImpl{"go", sumGo})
}

// sumBlocks runs asm over the whole blocks of x and Go over the tail.
func sumBlocks(x []uint64, block int, asm func(*uint64, int) uint64) uint64 {
	n := len(x) &^ (block - 1)
	var s uint64
	if n > 0 {
		s = asm(&x[0], n)
	}
	return s + sumGo(x[n:])
}

func computeProbes() []computeProbe {
	var ps []computeProbe
	if cpuid.CPU.Supports(cpuid.AVX512F) {
		ps = append(ps, computeProbe{id: FMAZMM, opsPerIter: 24 * 16 * 2, newRun: func() func(int) {
			var acc [24][16]float32
			return func(n int) { fmaZMM(&acc, 1, 0, n) }
		}})
	}
	if cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3) {
		ps = append(ps, computeProbe{id: FMAYMM, opsPerIter: 12 * 8 * 2, newRun: func() func(int) {
			var acc [12][8]float32
			return func(n int) { fmaYMM(&acc, 1, 0, n) }
		}})
	}
	if cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512BF16) {
		ps = append(ps, computeProbe{id: BF16ZMM, opsPerIter: 24 * 16 * 4, newRun: func() func(int) {
			var acc [24][16]float32
			return func(n int) { bf16ZMM(&acc, 0x3f803f80, 0, n) }
		}})
	}
	if cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512VNNI) {
		ps = append(ps, computeProbe{id: VNNIZMM, opsPerIter: 24 * 64 * 2, newRun: func() func(int) {
			var acc [24][16]int32
			return func(n int) { vnniZMM(&acc, 0x01010101, 0, n) }
		}})
	}
	if cpuid.CPU.Supports(cpuid.AVX2, cpuid.AVXVNNI) {
		ps = append(ps, computeProbe{id: VNNIYMM, opsPerIter: 12 * 32 * 2, newRun: func() func(int) {
			var acc [12][8]int32
			return func(n int) { vnniYMM(&acc, 0x01010101, 0, n) }
		}})
	}
	if cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512BW) {
		ps = append(ps, computeProbe{id: Int8ZMM, opsPerIter: 12 * 64 * 2, newRun: func() func(int) {
			var acc [12][16]int32
			return func(n int) { int8ZMM(&acc, 0x01010101, 0, n) }
		}})
	}
	if cpuid.CPU.Supports(cpuid.AVX2) {
		ps = append(ps, computeProbe{id: Int8YMM, opsPerIter: 6 * 32 * 2, newRun: func() func(int) {
			var acc [6][8]int32
			return func(n int) { int8YMM(&acc, 0x01010101, 0, n) }
		}})
	}
	return ps
}
