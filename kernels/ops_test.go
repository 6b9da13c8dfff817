package kernels

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRMSNorm(t *testing.T) {
	x := []float32{1, -2, 3, -4}
	g := []float32{1, 0.5, 2, 1}
	y := make([]float32, 4)
	RMSNorm(y, x, g, 1e-6)
	inv := 1 / math.Sqrt((1+4+9+16)/4.0+1e-6)
	for i := range x {
		assert.InDelta(t, float64(x[i])*inv*float64(g[i]), float64(y[i]), 1e-6)
	}
	RMSNorm(x, x, g, 1e-6) // in place
	assert.Equal(t, y, x)
	assert.Panics(t, func() { RMSNorm(y, x, g[:3], 1e-6) })
}

func TestAddSwiGLU(t *testing.T) {
	a := []float32{1, 2, -3}
	b := []float32{0.5, -2, 10}
	y := make([]float32, 3)
	Add(y, a, b)
	assert.Equal(t, []float32{1.5, 0, 7}, y)
	SwiGLU(y, a, b)
	for i := range a {
		s := float64(a[i]) / (1 + math.Exp(-float64(a[i])))
		assert.InDelta(t, s*float64(b[i]), float64(y[i]), 1e-6)
	}
	SwiGLU(a, a, b) // in place
	assert.Equal(t, y, a)
	assert.Panics(t, func() { Add(y, a, b[:2]) })
	assert.Panics(t, func() { SwiGLU(y[:2], a, b) })
}
