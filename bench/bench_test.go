package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/cpuid/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/bench/roofline"
	"github.com/mnemo-ai/mnemo/kernels"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

func TestParseShape(t *testing.T) {
	tests := []struct {
		in   string
		want Shape
		ok   bool
	}{
		{"4096x4096", Shape{4096, 4096}, true},
		{"11008X4096", Shape{11008, 4096}, true},
		{" 64x32 ", Shape{64, 32}, true},
		{"4096", Shape{}, false},
		{"0x4096", Shape{}, false},
		{"4096x-1", Shape{}, false},
		{"axb", Shape{}, false},
		{"", Shape{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseShape(tt.in)
			if !tt.ok {
				assert.ErrorIs(t, err, ErrBadOptions)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, got, must(ParseShape(got.String())))
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// fakeLimits are made-up roofs, distinct per probe, so tests can check
// which roof each case is compared with.
func fakeLimits() *roofline.Limits {
	p := roofline.Peaks{ReadGBs: 30, ReadImpl: "avx512", CacheReadGBs: 200, GoReadGBs: 29,
		FMAZMMGflops: 250, FMAYMMGflops: 125, BF16Gflops: 500, VNNIGops: 1000, VNNIYMMGops: 510, Int8ZMMGops: 490, Int8YMMGops: 245}
	single, multi := p, p
	single.Threads, multi.Threads = 1, 2
	return &roofline.Limits{Single: single, Multi: multi}
}

func tinyOptions() Options {
	return Options{
		Threads: 2, Shapes: []Shape{{48, 64}, {40, 96}}, Ms: []int{1, 3},
		MinTime: time.Millisecond, Runs: 3, Limits: fakeLimits(),
	}
}

func TestRun(t *testing.T) {
	o := tinyOptions()
	var calls, lastDone, lastTotal int
	o.Progress = func(done, total int, label string) {
		calls++
		assert.LessOrEqual(t, done, total)
		assert.NotEmpty(t, label)
		lastDone, lastTotal = done, total
	}
	rep, err := Run(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, SchemaVersion, rep.Version)
	assert.Equal(t, min(2, rep.Machine.GOMAXPROCS), rep.Threads)
	assert.Equal(t, *fakeLimits(), rep.Limits)
	assert.Equal(t, lastTotal, lastDone)
	assert.Positive(t, calls)

	formats := kernels.Formats()
	impls := kernels.Impls()
	want := 0
	for _, f := range formats {
		for _, sh := range o.Shapes {
			if f.RowOK(sh.K) {
				want += len(impls) * len(o.Ms)
			}
		}
	}
	require.Len(t, rep.Results, want)
	peaks := rep.Limits.At(rep.Threads)
	for _, r := range rep.Results {
		name := fmt.Sprintf("%s/%s/%dx%d/m=%d", r.Impl, r.Format, r.N, r.K, r.M)
		assert.Positive(t, r.Seconds, name)
		assert.Positive(t, r.WeightBytes, name)
		assert.InEpsilon(t, float64(r.WeightBytes)/r.Seconds/1e9, r.GBs, 1e-9, name)
		assert.InEpsilon(t, 2*float64(r.M*r.N*r.K)/r.Seconds/1e9, r.Gops, 1e-9, name)
		assert.InEpsilon(t, 2*float64(r.M*r.N*r.K)/float64(r.WeightBytes), r.Intensity, 1e-9, name)
		assert.Equal(t, "fast", r.Precision, name)
		assert.Equal(t, o.Runs, r.Runs, name)
		assert.Positive(t, r.Iters, name)
		assert.Equal(t, roofProbe(r.Path, r.Tier, r.M), r.Roof, name)
		if r.M == 1 {
			assert.Equal(t, roofline.ReadDRAM, r.Roof, name)
			assert.InEpsilon(t, r.GBs/peaks.ReadGBs, r.Fraction, 1e-9, name)
		} else if r.Roof != "" {
			v, _ := peaks.Value(r.Roof)
			assert.InEpsilon(t, r.Gops/v, r.Fraction, 1e-9, name)
		} else {
			assert.Zero(t, r.Fraction, name)
		}
	}
}

func TestRunMeasuresRoofline(t *testing.T) {
	o := tinyOptions()
	o.Limits = nil
	o.Shapes, o.Ms = []Shape{{16, 64}}, []int{1}
	o.Formats = []format.Type{format.F32}
	o.Impls = []string{"generic"}
	o.Roofline = roofline.Options{ReadBytes: 1 << 20, CacheBytes: 16 << 10, MinTime: time.Millisecond, Runs: 1}
	var prevDone, lastDone, lastTotal int
	o.Progress = func(done, total int, label string) {
		assert.GreaterOrEqual(t, done, prevDone, "progress never goes back")
		assert.LessOrEqual(t, done, total)
		prevDone, lastDone, lastTotal = done, done, total
	}
	rep, err := Run(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, lastTotal, lastDone)
	assert.Greater(t, lastTotal, 2, "roofline probes count as steps")
	assert.Positive(t, rep.Limits.Single.ReadGBs)
	require.Len(t, rep.Results, 1)
	assert.Positive(t, rep.Results[0].Fraction)
}

func TestRunRooflineOnly(t *testing.T) {
	o := tinyOptions()
	o.Limits = nil
	o.RooflineOnly = true
	o.Roofline = roofline.Options{ReadBytes: 1 << 20, CacheBytes: 16 << 10, MinTime: time.Millisecond, Runs: 1}
	rep, err := Run(context.Background(), o)
	require.NoError(t, err)
	assert.Positive(t, rep.Limits.Single.ReadGBs)
	assert.Empty(t, rep.Results)

	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, rep))
	assert.Contains(t, buf.String(), "read (DRAM)")
	assert.NotContains(t, buf.String(), "impl")
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
	}{
		{"negative threads", func(o *Options) { o.Threads = -1 }},
		{"negative runs", func(o *Options) { o.Runs = -1 }},
		{"zero M", func(o *Options) { o.Ms = []int{0} }},
		{"bad shape", func(o *Options) { o.Shapes = []Shape{{0, 4}} }},
		{"format without kernels", func(o *Options) { o.Formats = []format.Type{format.Type(250)} }},
		{"unknown impl", func(o *Options) { o.Impls = []string{"sse9"} }},
		{"negative min time", func(o *Options) { o.MinTime = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tinyOptions()
			tt.edit(&o)
			_, err := Run(context.Background(), o)
			assert.ErrorIs(t, err, ErrBadOptions)
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, tinyOptions())
	assert.ErrorIs(t, err, context.Canceled)
}

func TestRoofProbe(t *testing.T) {
	tests := []struct {
		path kernels.Path
		tier string
		m    int
		want string
	}{
		{kernels.PathF32FMA, "avx512", 1, roofline.ReadDRAM},
		{kernels.PathScalar, "generic", 1, roofline.ReadDRAM},
		{kernels.PathF32FMA, "avx512", 8, roofline.FMAZMM},
		{kernels.PathF32FMA, "avx2", 8, roofline.FMAYMM},
		{kernels.PathBF16Dot, "avx512", 64, roofline.BF16ZMM},
		{kernels.PathInt8Dot, "avx512", 8, roofline.VNNIZMM},
		{kernels.PathInt8Madd, "avx2", 8, roofline.Int8YMM},
		{kernels.PathInt8Dot, "avx2", 8, roofline.VNNIYMM},
		{kernels.PathInt8Madd, "avx512", 8, roofline.Int8ZMM},
		{kernels.PathScalar, "generic", 8, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/m=%d", tt.path, tt.tier, tt.m), func(t *testing.T) {
			assert.Equal(t, tt.want, roofProbe(tt.path.String(), tt.tier, tt.m))
		})
	}
}

func sampleReport(t *testing.T) *Report {
	t.Helper()
	o := tinyOptions()
	o.Shapes = []Shape{{16, 64}}
	rep, err := Run(context.Background(), o)
	require.NoError(t, err)
	require.NotEmpty(t, rep.Results)
	return rep
}

func TestWriteJSON(t *testing.T) {
	rep := sampleReport(t)
	var buf bytes.Buffer
	require.NoError(t, WriteJSON(&buf, rep))

	var doc map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &doc))
	assert.Equal(t, float64(SchemaVersion), doc["version"])
	for _, k := range []string{"time", "machine", "threads", "quick", "limits", "results"} {
		assert.Contains(t, doc, k)
	}
	machine := doc["machine"].(map[string]any)
	for _, k := range []string{"brand", "vendor", "features", "physical_cores", "logical_cores", "gomaxprocs", "goarch"} {
		assert.Contains(t, machine, k)
	}
	limits := doc["limits"].(map[string]any)
	for _, k := range []string{"single", "multi"} {
		peaks := limits[k].(map[string]any)
		for _, f := range []string{"threads", "read_gbs", "read_impl", "fma_zmm_gflops", "bf16_gflops", "vnni_gops", "int8_ymm_gops"} {
			assert.Contains(t, peaks, f, k)
		}
	}
	res := doc["results"].([]any)
	require.Len(t, res, len(rep.Results))
	for _, k := range []string{"impl", "tier", "format", "precision", "path", "n", "k", "m", "weight_bytes",
		"seconds", "gbs", "gops", "unit", "intensity", "roof", "roof_value", "fraction", "runs", "iters"} {
		assert.Contains(t, res[0], k)
	}

	var back Report
	require.NoError(t, json.Unmarshal(buf.Bytes(), &back))
	assert.Equal(t, rep.Results, back.Results)
	assert.Equal(t, rep.Limits, back.Limits)
}

func TestWriteTable(t *testing.T) {
	rep := sampleReport(t)
	var buf bytes.Buffer
	require.NoError(t, WriteTable(&buf, rep))
	out := buf.String()
	assert.Contains(t, out, "read (DRAM)")
	assert.Contains(t, out, "bf16 dot zmm")
	assert.Contains(t, out, "500") // the fake bf16 roof
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	// Every result is one line naming its impl, format and shape.
	rows := lines[len(lines)-len(rep.Results):]
	for i, r := range rep.Results {
		f := strings.Fields(rows[i])
		require.GreaterOrEqual(t, len(f), 7, rows[i])
		assert.Equal(t, []string{r.Impl, r.Tier, r.Format}, f[:3])
		assert.Equal(t, fmt.Sprintf("%dx%d", r.N, r.K), f[5])
		assert.Equal(t, fmt.Sprint(r.M), f[6])
	}
	assert.Contains(t, RoofSummary(rep), "read (DRAM) 30.0 GB/s")
	assert.Contains(t, RoofSummary(rep), threads(rep.Threads)+")")

	assert.Error(t, WriteTable(failWriter{}, rep))
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

func TestWritePlot(t *testing.T) {
	rep := sampleReport(t)
	var buf bytes.Buffer
	require.NoError(t, WritePlot(&buf, rep))
	img, err := png.Decode(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Greater(t, img.Bounds().Dx(), img.Bounds().Dy())

	// No results and no roofs still make a valid plot.
	buf.Reset()
	require.NoError(t, WritePlot(&buf, &Report{Threads: 1}))
	_, err = png.Decode(bytes.NewReader(buf.Bytes()))
	assert.NoError(t, err)
}

func TestNumAndDur(t *testing.T) {
	assert.Equal(t, "-", num(0))
	assert.Equal(t, "1.50", num(1.5))
	assert.Equal(t, "31.2", num(31.23))
	assert.Equal(t, "235", num(234.6))
	assert.Equal(t, "2.00s", dur(2))
	assert.Equal(t, "1.5ms", dur(0.0015))
	assert.Equal(t, "250µs", dur(250e-6))
	assert.False(t, math.IsNaN(fakeLimits().Multi.FMAGflops()))
}

// TestComputeRoof checks the compute roof bench model divides prefill by:
// that of the path the kernels run for the format at the impl's tier.
func TestComputeRoof(t *testing.T) {
	avx2Int8 := roofline.Int8YMM
	if cpuid.CPU.Supports(cpuid.AVXVNNI) {
		avx2Int8 = roofline.VNNIYMM // the AVX2 tier's D kernels use AVX-VNNI (Q8_0's only then)
	}
	want := map[kernels.Tier]map[format.Type]string{
		kernels.Generic: {format.MXFP4: "", format.F16: ""},
		kernels.AVX2:    {format.MXFP4: avx2Int8, format.Q4_0: avx2Int8, format.Q8_0: avx2Int8, format.F16: roofline.FMAYMM},
		kernels.AVX512:  {format.MXFP4: roofline.VNNIZMM, format.NVFP4: roofline.VNNIZMM, format.F16: roofline.FMAZMM, format.F8E4M3Row: roofline.BF16ZMM},
	}
	for _, impl := range kernels.Impls() {
		for ft, roof := range want[impl.Tier] {
			assert.Equal(t, roof, ComputeRoof(impl, ft), "%s %s", impl.Name, ft)
		}
	}
}

// TestRoofLabels checks that every roofline probe has a name in the
// tables and plots.
func TestRoofLabels(t *testing.T) {
	for _, probe := range roofline.Probes() {
		assert.NotEmpty(t, roofLabels[probe], probe)
	}
}
