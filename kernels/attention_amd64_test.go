//go:build amd64 && gc && !noasm

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// bf16Block returns n random bf16 values at an odd element offset (so
// rows are not 64-byte aligned) and the same values widened to f32, at an
// offset of one float.
func bf16Block(rng *rand.Rand, n int) ([]uint16, []float32) {
	b := make([]uint16, n+1)[1:]
	f := make([]float32, n+1)[1:]
	for i := range b {
		b[i] = format.Float32ToBF16(float32(rng.NormFloat64() * 1.5))
		f[i] = format.BF16ToFloat32(b[i])
	}
	return b, f
}

// TestAttnPrimsBF16 checks the AVX-512 primitives that read a bf16 cache
// in place against the f32 ones on the widened values, bit for bit (they
// run the same arithmetic), and dots4 against a float64 reference, on
// strides wider than a row, odd row counts and unaligned rows.
func TestAttnPrimsBF16(t *testing.T) {
	if Best().Tier < AVX512 {
		t.Skip("no AVX-512")
	}
	rng := rand.New(rand.NewPCG(21, 21))
	for _, hdp := range []int{16, 48, 64, 128} {
		for _, nq := range []int{1, 3, 4, 8, 9} {
			for _, nk := range []int{1, 4, 7, 16} {
				t.Run(fmt.Sprintf("hdp=%d/nq=%d/nk=%d", hdp, nq, nk), func(t *testing.T) {
					kstride := hdp + 16*rng.IntN(3) // rows of other heads in between
					kb, kf := bf16Block(rng, (nk-1)*kstride+hdp)
					q := randSlice(rng, roundUp(nq, 4)*hdp, 1)
					sstride := roundUp(nk, 16) + 16
					score := func(f func(s []float32), rows int) []float32 {
						s := make([]float32, rows*sstride)
						for i := range s {
							s[i] = 7 // untouched past nk
						}
						f(s)
						return s
					}
					want := score(func(s []float32) { dotsAVX512(&s[0], &q[0], nq, hdp, &kf[0], kstride, nk, sstride) }, nq)
					got := score(func(s []float32) { dotsBF16AVX512(&s[0], &q[0], nq, hdp, &kb[0], kstride, nk, sstride) }, nq)
					require.True(t, sameBits(want, got), "dotsBF16 = dots on the widened keys")

					// dots4: nq and nk rounded down to multiples of 4; what
					// it leaves alone stays 7.
					nq4, nk4 := nq&^3, nk&^3
					d4 := score(func(s []float32) { dots4AVX512(&s[0], &q[0], nq4, hdp, &kf[0], kstride, nk4, sstride) }, nq)
					d4b := score(func(s []float32) { dots4BF16AVX512(&s[0], &q[0], nq4, hdp, &kb[0], kstride, nk4, sstride) }, nq)
					require.True(t, sameBits(d4, d4b), "dots4BF16 = dots4 on the widened keys")
					for i := range nq {
						for j := range sstride {
							if i >= nq4 || j >= nk4 {
								require.Equal(t, float32(7), d4[i*sstride+j], "row %d col %d left alone", i, j)
								continue
							}
							var ref float64
							for d := range hdp {
								ref += float64(q[i*hdp+d]) * float64(kf[j*kstride+d])
							}
							require.InDelta(t, ref, d4[i*sstride+j], 1e-5*(1+math.Abs(ref)), "row %d key %d", i, j)
						}
					}

					// axpy: o = o·c + Σ p·v.
					vb, vf := bf16Block(rng, (nk-1)*kstride+hdp)
					p := randSlice(rng, nq*sstride, 1)
					c := randSlice(rng, nq, 1)
					o0 := randSlice(rng, nq*hdp, 1)
					oa, ob := append([]float32(nil), o0...), append([]float32(nil), o0...)
					axpyAVX512(&oa[0], &p[0], &c[0], nq, nk, sstride, &vf[0], kstride, hdp)
					axpyBF16AVX512(&ob[0], &p[0], &c[0], nq, nk, sstride, &vb[0], kstride, hdp)
					require.True(t, sameBits(oa, ob), "axpyBF16 = axpy on the widened values")
				})
			}
		}
	}
	for _, n16 := range []int{1, 3, 8} {
		t.Run(fmt.Sprintf("transpose/n16=%d", n16), func(t *testing.T) {
			sstride := 16*n16 + 5
			kb, kf := bf16Block(rng, 15*sstride+16*n16)
			dstride := 16 + 3
			ta, tb := make([]float32, 16*n16*dstride), make([]float32, 16*n16*dstride)
			transposeAVX512(&ta[0], &kf[0], sstride, n16, dstride)
			transposeBF16AVX512(&tb[0], &kb[0], sstride, n16, dstride)
			require.True(t, sameBits(ta, tb), "transposeBF16 = transpose on the widened rows")
			for d := range 16 * n16 {
				for r := range 16 {
					require.Equal(t, kf[r*sstride+d], ta[d*dstride+r])
				}
			}
		})
	}
}
