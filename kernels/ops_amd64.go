//go:build amd64 && gc && !noasm

package kernels

// The assembly kernels in ops_amd64.s work on whole vectors (16 floats for
// AVX-512, 8 for AVX2); the wrappers below do the tails in Go. Reference
// loops are in each stub's doc comment.

// expAVX512 sets y[i] = e^x[i] for i < n&^15.
//
//go:noescape
func expAVX512(y, x *float32, n int)

// expAVX2 sets y[i] = e^x[i] for i < n&^7.
//
//go:noescape
func expAVX2(y, x *float32, n int)

// swigluAVX512 sets y[i] = gate[i] / (1 + e^−gate[i]) · up[i] for i < n&^15.
//
//go:noescape
func swigluAVX512(y, gate, up *float32, n int)

// swigluAVX2 sets y[i] = gate[i] / (1 + e^−gate[i]) · up[i] for i < n&^7.
//
//go:noescape
func swigluAVX2(y, gate, up *float32, n int)

// maxAVX512 returns the largest of x[0..n&^63), NaNs skipped (-Inf when
// there is none).
//
//go:noescape
func maxAVX512(x *float32, n int) float32

// findAVX512 returns the first i < n&^15 with x[i] == v, or -1.
//
//go:noescape
func findAVX512(x *float32, n int, v float32) int

// addAVX512 sets y[i] = a[i] + b[i] for i < n&^15.
//
//go:noescape
func addAVX512(y, a, b *float32, n int)

// addAVX2 sets y[i] = a[i] + b[i] for i < n&^7.
//
//go:noescape
func addAVX2(y, a, b *float32, n int)

// sumsqAVX512 returns Σ float64(x[i])² for i < n&^15.
//
//go:noescape
func sumsqAVX512(x *float32, n int) float64

// sumsqAVX2 returns Σ float64(x[i])² for i < n&^7.
//
//go:noescape
func sumsqAVX2(x *float32, n int) float64

// scaleMulAVX512 sets y[i] = x[i]·inv·w[i] for i < n&^15.
//
//go:noescape
func scaleMulAVX512(y, x, w *float32, n int, inv float32)

// scaleMulAVX2 sets y[i] = x[i]·inv·w[i] for i < n&^7.
//
//go:noescape
func scaleMulAVX2(y, x, w *float32, n int, inv float32)

// ropeNormAVX512 rotates pairs of each of heads rows of x (stride floats
// apart): for i < n (a multiple of 16), x[i] = x[i]·c[i] + x[i^1]·s[i].
//
//go:noescape
func ropeNormAVX512(x, c, s *float32, heads, stride, n int)

// ropeNormAVX2 is ropeNormAVX512 with n a multiple of 8.
//
//go:noescape
func ropeNormAVX2(x, c, s *float32, heads, stride, n int)

// ropeNeoxAVX512 rotates halves of each of heads rows of x: for i < n (a
// multiple of 16), a, b = x[i], x[half+i]; x[i] = a·c[i] − b·s[i];
// x[half+i] = a·s[i] + b·c[i].
//
//go:noescape
func ropeNeoxAVX512(x, c, s *float32, heads, stride, half, n int)

// ropeNeoxAVX2 is ropeNeoxAVX512 with n a multiple of 8.
//
//go:noescape
func ropeNeoxAVX2(x, c, s *float32, heads, stride, half, n int)

// vecOps is one tier's vector kernels.
type vecOps struct {
	w        int
	exp      func(y, x *float32, n int)
	swiglu   func(y, gate, up *float32, n int)
	add      func(y, a, b *float32, n int)
	sumsq    func(x *float32, n int) float64
	scaleMul func(y, x, g *float32, n int, inv float32)
	ropeNorm func(x, c, s *float32, heads, stride, n int)
	ropeNeox func(x, c, s *float32, heads, stride, half, n int)
}

// argmaxAVX512 is argmaxGeneric with the maximum and its search in
// AVX-512, the tails in Go.
func argmaxAVX512(x []float32) int {
	if len(x) < 64 {
		return argmaxGeneric(x)
	}
	raceReadSlice(x)
	m := maxAVX512(&x[0], len(x))
	for _, v := range x[len(x)&^63:] {
		m = max32(m, v)
	}
	if i := findAVX512(&x[0], len(x), m); i >= 0 {
		return i
	}
	tail := len(x) &^ 15
	if i := firstIndex(x[tail:], m); i >= 0 {
		return tail + i
	}
	return -1
}

func init() {
	opTable[AVX512] = vecOps{
		w: 16, exp: expAVX512, swiglu: swigluAVX512, add: addAVX512,
		sumsq: sumsqAVX512, scaleMul: scaleMulAVX512,
		ropeNorm: ropeNormAVX512, ropeNeox: ropeNeoxAVX512,
	}.kernels(&attnPrims{w: 16, dots: dotsAVX512, softmax: softmaxAVX512, axpy: axpyAVX512, bf16Rows: bf16RowsAVX512, e4m3Rows: e4m3RowsAVX512, scale: scaleAVX512,
		transpose: transposeAVX512, dotsT: dotsTAVX512, prefetch: prefetchRows,
		dotsBF16: dotsBF16AVX512, axpyBF16: axpyBF16AVX512, transposeBF16: transposeBF16AVX512,
		dots4: dots4AVX512, dots4BF16: dots4BF16AVX512})
	opTable[AVX512].argmax = argmaxAVX512
	opTable[AVX2] = vecOps{
		w: 8, exp: expAVX2, swiglu: swigluAVX2, add: addAVX2,
		sumsq: sumsqAVX2, scaleMul: scaleMulAVX2,
		ropeNorm: ropeNormAVX2, ropeNeox: ropeNeoxAVX2,
	}.kernels(&attnPrims{w: 8, dots: dotsAVX2, softmax: softmaxAVX2, axpy: axpyAVX2, bf16Rows: bf16RowsAVX2, scale: scaleAVX2, prefetch: prefetchRows})
}

func (v vecOps) kernels(attn *attnPrims) opKernels {
	mask := v.w - 1
	return opKernels{
		rmsnorm: func(y, x, g []float32, eps float32) {
			n := len(x)
			nv := n &^ mask
			raceReadSlice(x)
			var ss float64
			if nv > 0 {
				ss = v.sumsq(&x[0], nv)
			}
			for _, e := range x[nv:] {
				ss += float64(e) * float64(e)
			}
			inv := rmsInv(ss, n, eps)
			if nv > 0 {
				raceReadSlice(g)
				raceWriteSlice(y)
				v.scaleMul(&y[0], &x[0], &g[0], nv, inv)
			}
			rmsScaleGeneric(y[nv:], x[nv:], g[nv:], inv)
		},
		add: func(y, a, b []float32) {
			nv := len(y) &^ mask
			if nv > 0 {
				raceReadSlice(a)
				raceReadSlice(b)
				raceWriteSlice(y)
				v.add(&y[0], &a[0], &b[0], nv)
			}
			addGeneric(y[nv:], a[nv:], b[nv:])
		},
		swiglu: func(y, gate, up []float32) {
			nv := len(y) &^ mask
			if nv > 0 {
				raceReadSlice(gate)
				raceReadSlice(up)
				raceWriteSlice(y)
				v.swiglu(&y[0], &gate[0], &up[0], nv)
			}
			swigluGeneric(y[nv:], gate[nv:], up[nv:])
		},
		exp: func(y, x []float32) {
			nv := len(y) &^ mask
			if nv > 0 {
				raceReadSlice(x)
				raceWriteSlice(y)
				v.exp(&y[0], &x[0], nv)
			}
			expGeneric(y[nv:], x[nv:])
		},
		rope: func(x []float32, heads, headDim int, cs []float32, neox bool) {
			if heads == 0 || len(cs) == 0 {
				return
			}
			half := len(cs) / 4
			raceReadSlice(cs)
			raceWriteSlice(x)
			if neox {
				nv := half &^ mask
				if nv > 0 {
					v.ropeNeox(&x[0], &cs[0], &cs[2*half], heads, headDim, half, nv)
				}
				ropeNeoxTail(x, heads, headDim, cs, nv)
				return
			}
			nv := 2 * half &^ mask
			if nv > 0 {
				v.ropeNorm(&x[0], &cs[0], &cs[2*half], heads, headDim, nv)
			}
			ropeNormTail(x, heads, headDim, cs, nv)
		},
		attn: attn,
	}
}
