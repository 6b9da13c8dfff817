package kernels

import "math"

// RMSNorm writes y = x / sqrt(mean(x²) + eps) · g for one row. y may be x.
// The sum of squares is accumulated in float64 so long rows lose nothing.
func RMSNorm(y, x, g []float32, eps float32) {
	if len(x) != len(g) || len(y) != len(x) {
		panic("kernels: RMSNorm: slice length does not match")
	}
	if len(x) == 0 {
		return
	}
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	for i, v := range x {
		y[i] = v * inv * g[i]
	}
}

// Add writes y = a + b elementwise. y may be a or b.
func Add(y, a, b []float32) {
	if len(a) != len(b) || len(y) != len(a) {
		panic("kernels: Add: slice length does not match")
	}
	for i := range y {
		y[i] = a[i] + b[i]
	}
}

// SwiGLU writes y = silu(gate) · up, silu(v) = v / (1 + e^−v). y may be
// gate or up.
func SwiGLU(y, gate, up []float32) {
	if len(gate) != len(up) || len(y) != len(gate) {
		panic("kernels: SwiGLU: slice length does not match")
	}
	for i := range y {
		g := gate[i]
		y[i] = g / (1 + float32(math.Exp(float64(-g)))) * up[i]
	}
}
