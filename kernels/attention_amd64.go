//go:build amd64 && gc && !noasm

package kernels

// Flash-attention primitives in ops_amd64.s; see attnPrims for what each
// computes. hdp, sstride and pstride are multiples of the vector width
// (16 floats for AVX-512, 8 for AVX2); nk > 0.

// dotsAVX512 sets s[i·sstride+j] = Σ_{d<hdp} q[i·hdp+d]·k[j·kstride+d].
//
//go:noescape
func dotsAVX512(s, q *float32, nq, hdp int, k *float32, kstride, nk, sstride int)

// dotsBF16AVX512 is dotsAVX512 with bf16 keys (kstride in elements).
//
//go:noescape
func dotsBF16AVX512(s, q *float32, nq, hdp int, k *uint16, kstride, nk, sstride int)

// dots4AVX512 is dotsAVX512 for nq and nk multiples of 4, four query rows
// and four keys at a time.
//
//go:noescape
func dots4AVX512(s, q *float32, nq, hdp int, k *float32, kstride, nk, sstride int)

// dots4BF16AVX512 is dots4AVX512 with bf16 keys (kstride in elements).
//
//go:noescape
func dots4BF16AVX512(s, q *float32, nq, hdp int, k *uint16, kstride, nk, sstride int)

// dotsAVX2 is dotsAVX512 for AVX2.
//
//go:noescape
func dotsAVX2(s, q *float32, nq, hdp int, k *float32, kstride, nk, sstride int)

// softmaxAVX512 runs, for each row i < nq of s (ncol scores, sstride
// floats apart): mx = max(m[i], max_j s_ij);
// c[i] = e^(m[i]−mx); s_ij = e^(s_ij−mx); l[i] = l[i]·c[i] + Σ_j s_ij;
// m[i] = mx.
//
//go:noescape
func softmaxAVX512(s *float32, sstride, ncol, nq int, m, l, c *float32)

// softmaxAVX2 is softmaxAVX512 for AVX2.
//
//go:noescape
func softmaxAVX2(s *float32, sstride, ncol, nq int, m, l, c *float32)

// axpyAVX512 sets o[i·hdp+d] = o[i·hdp+d]·c[i] + Σ_{j<nk}
// p[i·pstride+j]·v[j·vstride+d] for i < nq, d < hdp.
//
//go:noescape
func axpyAVX512(o, p, c *float32, nq, nk, pstride int, v *float32, vstride, hdp int)

// axpyBF16AVX512 is axpyAVX512 with bf16 values (vstride in elements).
//
//go:noescape
func axpyBF16AVX512(o, p, c *float32, nq, nk, pstride int, v *uint16, vstride, hdp int)

// axpyAVX2 is axpyAVX512 for AVX2.
//
//go:noescape
func axpyAVX2(o, p, c *float32, nq, nk, pstride int, v *float32, vstride, hdp int)

// bf16RowsAVX512 sets dst[r·dstride+i] = float32(src[r·sstride+i]) (bf16
// bits shifted into the top half) for r < rows, i < n.
//
//go:noescape
func bf16RowsAVX512(dst *float32, src *uint16, rows, n, dstride, sstride int)

// e4m3RowsAVX512 sets dst[r·dstride+i] = the value of E4M3 code
// src[r·sstride+i] for r < rows, i < n (a multiple of 16).
//
//go:noescape
func e4m3RowsAVX512(dst *float32, src *uint8, rows, n, dstride, sstride int)

// bf16RowsAVX2 is bf16RowsAVX512 for AVX2.
//
//go:noescape
func bf16RowsAVX2(dst *float32, src *uint16, rows, n, dstride, sstride int)

// scaleAVX512 sets y[i] = x[i]·a for i < n&^15.
//
//go:noescape
func scaleAVX512(y, x *float32, n int, a float32)

// scaleAVX2 sets y[i] = x[i]·a for i < n&^7.
//
//go:noescape
func scaleAVX2(y, x *float32, n int, a float32)

// transposeAVX512 sets dst[d·dstride+t] = src[t·sstride+d] for t < 16,
// d < 16·n16.
//
//go:noescape
func transposeAVX512(dst, src *float32, sstride, n16, dstride int)

// transposeBF16AVX512 is transposeAVX512 from bf16 rows.
//
//go:noescape
func transposeBF16AVX512(dst *float32, src *uint16, sstride, n16, dstride int)

// dotsTAVX512 sets s[i·sstride+j] = Σ_{d<hdp} q[i·hdp+d]·kt[d·ktstride+j]
// for i < nq, j < 16.
//
//go:noescape
func dotsTAVX512(s, q *float32, nq, hdp int, kt *float32, ktstride, sstride int)

// prefetchRows prefetches every cache line of rows rows of n bytes, stride
// bytes apart, from p. It reads nothing a program can observe.
//
//go:noescape
func prefetchRows(p *byte, rows, stride, n int)
