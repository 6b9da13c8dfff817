package kernels

import "math"

// opKernels is one tier's elementwise and normalisation kernels and its
// attention primitives (nil attn: the row-by-row reference).
type opKernels struct {
	rmsnorm func(y, x, g []float32, eps float32)
	add     func(y, a, b []float32)
	swiglu  func(y, gate, up []float32)
	exp     func(y, x []float32)
	rope    func(x []float32, heads, headDim int, cs []float32, neox bool)
	argmax  func(x []float32) int // nil: argmaxGeneric
	attn    *attnPrims
}

// opTable holds each tier's kernels; the assembly tiers fill theirs in
// init (ops_amd64.go).
var opTable = [numTiers]opKernels{
	Generic: {
		rmsnorm: rmsnormGeneric,
		add:     addGeneric,
		swiglu:  swigluGeneric,
		exp:     expGeneric,
		rope:    ropeGeneric,
	},
}

// ops returns impl's kernels, or the generic ones for a tier this build
// has none for.
func (impl *Impl) ops() *opKernels {
	if impl == nil || opTable[impl.Tier].rmsnorm == nil {
		return &opTable[Generic]
	}
	return &opTable[impl.Tier]
}

// RMSNorm writes y = x / sqrt(mean(x²) + eps) · g for one row with the
// Active Impl. y may be x.
func RMSNorm(y, x, g []float32, eps float32) { Active().RMSNorm(y, x, g, eps) }

// Add writes y = a + b elementwise with the Active Impl. y may be a or b.
func Add(y, a, b []float32) { Active().Add(y, a, b) }

// SwiGLU writes y = silu(gate) · up, silu(v) = v / (1 + e^−v), with the
// Active Impl. y may be gate or up.
func SwiGLU(y, gate, up []float32) { Active().SwiGLU(y, gate, up) }

// RMSNorm writes y = x / sqrt(mean(x²) + eps) · g for one row. y may be x.
// Every tier accumulates the sum of squares in float64 and then computes
// y[i] = (x[i]·inv)·g[i] with inv rounded to float32, so tiers agree to
// the last bit except for the order of the float64 sum.
func (impl *Impl) RMSNorm(y, x, g []float32, eps float32) {
	if len(x) != len(g) || len(y) != len(x) {
		panic("kernels: RMSNorm: slice length does not match")
	}
	if len(x) == 0 {
		return
	}
	impl.ops().rmsnorm(y, x, g, eps)
}

// Add writes y = a + b elementwise. y may be a or b. Every tier gives the
// same bits.
func (impl *Impl) Add(y, a, b []float32) {
	if len(a) != len(b) || len(y) != len(a) {
		panic("kernels: Add: slice length does not match")
	}
	impl.ops().add(y, a, b)
}

// SwiGLU writes y = silu(gate) · up, silu(v) = v / (1 + e^−v). y may be
// gate or up. The generic tier takes e^−v from math.Exp; the assembly
// tiers use a vectorised exp within 2 ulp of it (see Exp).
func (impl *Impl) SwiGLU(y, gate, up []float32) {
	if len(gate) != len(up) || len(y) != len(gate) {
		panic("kernels: SwiGLU: slice length does not match")
	}
	impl.ops().swiglu(y, gate, up)
}

// Exp writes y[i] = e^x[i]. y may be x. The generic tier rounds math.Exp;
// the assembly tiers evaluate a degree-7 polynomial after a Cody–Waite
// range reduction, within 2 ulp of the exact value for results in the
// normal range, flushing to 0 below e^−104 and overflowing to +Inf above
// e^88.73, with NaN giving NaN.
func (impl *Impl) Exp(y, x []float32) {
	if len(y) != len(x) {
		panic("kernels: Exp: slice length does not match")
	}
	impl.ops().exp(y, x)
}

func rmsnormGeneric(y, x, g []float32, eps float32) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	rmsScaleGeneric(y, x, g, rmsInv(ss, len(x), eps))
}

// rmsInv returns 1/sqrt(ss/n + eps) rounded to float32.
func rmsInv(ss float64, n int, eps float32) float32 {
	return float32(1 / math.Sqrt(ss/float64(n)+float64(eps)))
}

func rmsScaleGeneric(y, x, g []float32, inv float32) {
	g = g[:len(x)]
	y = y[:len(x)]
	for i, v := range x {
		y[i] = v * inv * g[i]
	}
}

func addGeneric(y, a, b []float32) {
	a, b = a[:len(y)], b[:len(y)]
	for i := range y {
		y[i] = a[i] + b[i]
	}
}

func swigluGeneric(y, gate, up []float32) {
	gate, up = gate[:len(y)], up[:len(y)]
	for i := range y {
		g := gate[i]
		y[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}

func expGeneric(y, x []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] = float32(math.Exp(float64(v)))
	}
}

// Argmax returns the index of the first largest value of x with the
// Active Impl, NaNs skipped; -1 if x is empty or all NaN.
func Argmax(x []float32) int { return Active().Argmax(x) }

// Argmax returns the index of the first largest value of x, NaNs skipped
// (so a −Inf can win); -1 if x is empty or all NaN. Every tier returns the
// same index.
func (impl *Impl) Argmax(x []float32) int {
	if k := impl.ops().argmax; k != nil {
		return k(x)
	}
	return argmaxGeneric(x)
}

// argmaxGeneric finds the maximum with four independent running maxima
// (no index bookkeeping in the loop), then its first index.
func argmaxGeneric(x []float32) int {
	m0, m1, m2, m3 := float32(math.Inf(-1)), float32(math.Inf(-1)), float32(math.Inf(-1)), float32(math.Inf(-1))
	i := 0
	for ; i+4 <= len(x); i += 4 {
		b := x[i : i+4 : i+4]
		if b[0] > m0 {
			m0 = b[0]
		}
		if b[1] > m1 {
			m1 = b[1]
		}
		if b[2] > m2 {
			m2 = b[2]
		}
		if b[3] > m3 {
			m3 = b[3]
		}
	}
	for ; i < len(x); i++ {
		if x[i] > m0 {
			m0 = x[i]
		}
	}
	return firstIndex(x, max32(max32(m0, m1), max32(m2, m3)))
}

func max32(a, b float32) float32 {
	if b > a {
		return b
	}
	return a
}

// firstIndex returns the first i with x[i] == m (m not NaN), or -1; when
// m is −Inf and x has none, x is all NaN (or empty).
func firstIndex(x []float32, m float32) int {
	for i, v := range x {
		if v == m {
			return i
		}
	}
	return -1
}
