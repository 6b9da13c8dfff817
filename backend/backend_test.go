package backend

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

func TestHostBytes(t *testing.T) {
	for _, tt := range []struct {
		dt    DType
		shape Shape
		want  int
		ok    bool
	}{
		{F32, Shape{3, 5}, 60, true},
		{BF16, Shape{7}, 14, true},
		{I32, Shape{2, 2, 2}, 32, true},
		{Weights(format.Q8_0), Shape{3, 64}, 3 * 2 * 34, true},
		{Weights(format.NVFP4), Shape{2, 32}, 2*2*9 + 4, true},
		{Weights(format.F8E4M3Row), Shape{2, 10}, 2 * 14, true},
		{F32, Shape{}, 0, false},
		{F32, Shape{-1}, 0, false},
		{F32, Shape{1 << 62, 4}, 0, false},
		{Weights(format.Q4_0), Shape{2, 31}, 0, false},
		{Weights(format.Q4_0), Shape{0, 32}, 0, false},
		{DType(9), Shape{1}, 0, false},
	} {
		got, err := HostBytes(tt.dt, tt.shape)
		if tt.ok {
			require.NoError(t, err, "%s%s", tt.dt, tt.shape)
			assert.Equal(t, tt.want, got, "%s%s", tt.dt, tt.shape)
		} else {
			assert.Error(t, err, "%s%s", tt.dt, tt.shape)
		}
	}
}

func TestDTypeFormat(t *testing.T) {
	for _, ft := range format.Types() {
		d := Weights(ft)
		got, ok := d.Format()
		require.True(t, ok)
		assert.Equal(t, ft, got)
		assert.True(t, d.Valid())
		assert.Equal(t, "weights:"+ft.String(), d.String())
	}
	_, ok := F32.Format()
	assert.False(t, ok)
	assert.False(t, DType(200).Valid())
}

func TestSignature(t *testing.T) {
	in, out, err := Signature(Spec{Op: OpMatMul, M: 4, N: 8, K: 64, Weights: format.MXFP4})
	require.NoError(t, err)
	assert.Equal(t, []Param{{"x", F32, Shape{4, 64}}, {"w", Weights(format.MXFP4), Shape{8, 64}}}, in)
	assert.Equal(t, []Param{{"y", F32, Shape{4, 8}}}, out)
	in, out, err = Signature(Spec{Op: OpEmbed, M: 3, N: 100, K: 32, Weights: format.Q8_0})
	require.NoError(t, err)
	assert.Equal(t, Shape{3}, in[0].Shape)
	assert.Equal(t, Shape{3, 32}, out[0].Shape)
	_, _, err = Signature(Spec{Op: OpAdd, M: 1, N: 1, Eps: 1})
	assert.ErrorIs(t, err, ErrShape)
	_, _, err = Signature(Spec{Op: OpMatMul, M: 1, N: 1, K: 32, Weights: format.Type(99)})
	assert.ErrorContains(t, err, "unknown weight format")
}

func TestLeaks(t *testing.T) {
	var l Leaks
	require.NoError(t, l.Drain("x"))
	a, b := new(int), new(int)
	l.Track(a, "buffer b")
	l.Track(b, "buffer a")
	l.Untrack(new(int)) // unknown: ignored
	err := l.Drain("cpu")
	assert.EqualError(t, err, "cpu: closed with 2 buffers or programs still open: buffer a; buffer b")
	assert.NoError(t, l.Drain("cpu"), "Drain forgets")
	l.Untrack(a) // after Drain: harmless
}

func TestSignaturePartsGLU(t *testing.T) {
	in, out, err := Signature(Spec{Op: OpMatMul, M: 2, N: 12, K: 32, Weights: format.Q8_0, Bias: true, Parts: [MaxParts]int{8, 2, 2}})
	require.NoError(t, err)
	assert.Equal(t, []Param{{"x", F32, Shape{2, 32}}, {"w", Weights(format.Q8_0), Shape{12, 32}}, {"b", F32, Shape{12}}}, in)
	assert.Equal(t, []Param{{"y0", F32, Shape{2, 8}}, {"y1", F32, Shape{2, 2}}, {"y2", F32, Shape{2, 2}}}, out)
	in, out, err = Signature(Spec{Op: OpMatMul, M: 3, N: 5, K: 32, Weights: format.MXFP4, GLU: true})
	require.NoError(t, err)
	assert.Equal(t, Shape{10, 32}, in[1].Shape, "GLU weights hold gate and up rows")
	assert.Equal(t, []Param{{"y", F32, Shape{3, 5}}}, out)
	assert.Contains(t, Spec{Op: OpMatMul, M: 1, N: 4, K: 32, Parts: [MaxParts]int{3, 1}}.String(), "parts=3+1")
	assert.Contains(t, Spec{Op: OpMatMul, M: 1, N: 4, K: 32, GLU: true}.String(), " glu")
	for _, tt := range []struct {
		name string
		s    Spec
	}{
		{"one part", Spec{Op: OpMatMul, M: 1, N: 4, K: 32, Parts: [MaxParts]int{4}}},
		{"parts do not sum to N", Spec{Op: OpMatMul, M: 1, N: 4, K: 32, Parts: [MaxParts]int{2, 1}}},
		{"gap in parts", Spec{Op: OpMatMul, M: 1, N: 4, K: 32, Parts: [MaxParts]int{2, 0, 2}}},
		{"negative part", Spec{Op: OpMatMul, M: 1, N: 4, K: 32, Parts: [MaxParts]int{6, -2}}},
		{"parts on add", Spec{Op: OpAdd, M: 1, N: 4, Parts: [MaxParts]int{2, 2}}},
		{"parts with glu", Spec{Op: OpMatMul, M: 1, N: 4, K: 32, Parts: [MaxParts]int{2, 2}, GLU: true}},
		{"glu with bias", Spec{Op: OpMatMul, M: 1, N: 4, K: 32, GLU: true, Bias: true}},
		{"glu on swiglu", Spec{Op: OpSwiGLU, M: 1, N: 4, GLU: true}},
		{"glu on rope", Spec{Op: OpRoPE, M: 1, Heads: 1, HeadDim: 4, Rope: Rope{Dims: 4, Base: 10000}, GLU: true}},
		{"bias on rope", Spec{Op: OpRoPE, M: 1, Heads: 1, HeadDim: 4, Rope: Rope{Dims: 4, Base: 10000}, Bias: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Signature(tt.s)
			assert.ErrorIs(t, err, ErrShape)
		})
	}
}
