package quanterr_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/bench/quanterr"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

// bands are plausible relative-RMSE ranges for weights from either
// distribution, set by each format's mantissa bits and scale granularity
// (about 2^-(m+1)/sqrt(3) relative rounding error for m mantissa bits, more
// for the 4-bit formats, whose grid is coarse and clips).
var bands = map[format.Type][2]float64{
	format.F16:       {5e-5, 1e-3},
	format.BF16:      {4e-4, 8e-3},
	format.F8E4M3Row: {0.01, 0.06},
	format.MXF8E4M3:  {0.01, 0.07},
	format.MXF8E5M2:  {0.02, 0.12},
	format.MXFP4:     {0.05, 0.25},
	format.NVFP4:     {0.04, 0.2},
	format.Q8_0:      {1e-3, 0.02},
	format.Q4_0:      {0.04, 0.25},
}

func TestRunSane(t *testing.T) {
	opts := quanterr.Options{Rows: 16, Cols: 1024, Seed: 1}
	res := quanterr.Run(opts)
	require.Len(t, res, 2*(len(format.Types())-1+4), "two distributions × (every type but f32 + 4 searchable)")

	noSearch := map[string]float64{}
	for _, r := range res {
		if !r.Search {
			noSearch[r.Dist+"/"+r.Type.String()] = r.RelRMSE
		}
	}
	for _, r := range res {
		name := r.Dist + "/" + r.Type.String()
		band, ok := bands[r.Type]
		require.True(t, ok, "no band for %v", r.Type)
		assert.GreaterOrEqual(t, r.RelRMSE, band[0], "%s search=%v", name, r.Search)
		assert.LessOrEqual(t, r.RelRMSE, band[1], "%s search=%v", name, r.Search)
		assert.Greater(t, r.MaxRelErr, 0.0, name)
		assert.LessOrEqual(t, r.MaxRelErr, 1.0, name)
		assert.InDelta(t, float64(r.Type.RowBytes(opts.Cols))*8/float64(opts.Cols), r.BitsPerWeight, 1e-12)
		if r.Search {
			assert.LessOrEqual(t, r.RelRMSE, noSearch[name], "%s: search must not be worse", name)
		}
	}

	// Fewer bits, more error: every 16-bit format beats every 8-bit one,
	// which beats every 4-bit one, on each distribution.
	for _, dist := range []string{quanterr.Gaussian, quanterr.StudentT} {
		worst := map[int]float64{}
		best := map[int]float64{16: 1, 8: 1, 4: 1}
		for _, r := range res {
			if r.Dist != dist {
				continue
			}
			class := 4
			switch {
			case r.BitsPerWeight >= 16:
				class = 16
			case r.BitsPerWeight >= 8:
				class = 8
			}
			worst[class] = max(worst[class], r.RelRMSE)
			best[class] = min(best[class], r.RelRMSE)
		}
		assert.Less(t, worst[16], best[8], dist)
		assert.Less(t, worst[8], best[4], dist)
	}
}

func TestRunDeterministic(t *testing.T) {
	opts := quanterr.Options{Rows: 4, Cols: 256, Seed: 7, Types: []format.Type{format.MXFP4, format.Q4_0}}
	a, b := quanterr.Run(opts), quanterr.Run(opts)
	assert.Equal(t, a, b)
	opts.Seed = 8
	assert.NotEqual(t, a, quanterr.Run(opts))
	assert.Len(t, a, 2*3)
}

func TestFprint(t *testing.T) {
	res := quanterr.Run(quanterr.Options{Rows: 2, Cols: 64, Types: []format.Type{format.NVFP4, format.Q8_0}})
	var buf bytes.Buffer
	require.NoError(t, quanterr.Fprint(&buf, res))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 1+3, "header + nvfp4 ×2 + q8_0")
	assert.Contains(t, lines[0], quanterr.Gaussian)
	assert.Contains(t, lines[0], quanterr.StudentT)
	assert.Regexp(t, `^\s*nvfp4\s+no\s+4\.500\s`, lines[1])
	assert.Regexp(t, `^\s*nvfp4\s+yes\s+4\.500\s`, lines[2])
	assert.Regexp(t, `^\s*q8_0\s+no\s+8\.500\s`, lines[3])
}
