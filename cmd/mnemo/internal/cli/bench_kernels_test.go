package cli

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/bench"
	"github.com/mnemo-ai/mnemo/kernels"
)

// tinyBench is a --quick run small enough for a unit test: one tiny shape,
// a small roofline array and 1 ms timings.
var tinyBench = []string{"bench", "kernels", "--quick", "--shapes", "16x64", "--m", "1,2",
	"--read-mib", "2", "--min-time", "1ms", "--runs", "1", "--threads", "2"}

func TestBenchKernels(t *testing.T) {
	dir := t.TempDir()
	jsonPath, plotPath := filepath.Join(dir, "k.json"), filepath.Join(dir, "k.png")
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), append(tinyBench, "--json", jsonPath, "--plot", plotPath), Env{Stdout: &stdout, Stderr: &stderr})
	require.Equal(t, 0, code, stderr.String())
	assert.Empty(t, stderr.String(), "no progress bar when stderr is not a terminal")
	assert.Contains(t, stdout.String(), "read (DRAM)")
	assert.Contains(t, stdout.String(), "16x64")

	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.Equal(t, float64(bench.SchemaVersion), doc["version"])
	assert.Equal(t, true, doc["quick"])
	machine, ok := doc["machine"].(map[string]any)
	require.True(t, ok)
	for _, k := range []string{"brand", "features", "physical_cores", "logical_cores", "gomaxprocs"} {
		assert.Contains(t, machine, k)
	}
	limits, ok := doc["limits"].(map[string]any)
	require.True(t, ok)
	single, ok := limits["single"].(map[string]any)
	require.True(t, ok)
	assert.Positive(t, single["read_gbs"])

	var rep bench.Report
	require.NoError(t, json.Unmarshal(b, &rep))
	want := len(kernels.Formats()) * len(kernels.Impls()) * 2
	require.Len(t, rep.Results, want, "every format × impl × M")
	for _, r := range rep.Results {
		assert.Equal(t, 16, r.N)
		assert.Equal(t, 64, r.K)
		assert.Contains(t, []int{1, 2}, r.M)
		assert.Positive(t, r.Seconds)
		assert.Positive(t, r.GBs)
		assert.Positive(t, r.Gops)
		assert.NotEmpty(t, r.Path)
		assert.NotEmpty(t, r.Unit)
	}

	f, err := os.Open(plotPath)
	require.NoError(t, err)
	defer f.Close()
	_, err = png.Decode(f)
	assert.NoError(t, err, "the plot is a PNG")
}

func TestBenchKernelsFilters(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := append(append([]string{}, tinyBench...), "--formats", "f32", "--impls", "generic", "--precision", "fast,exact")
	jsonPath := filepath.Join(t.TempDir(), "k.json")
	code := Main(t.Context(), append(args, "--json", jsonPath), Env{Stdout: &stdout, Stderr: &stderr})
	require.Equal(t, 0, code, stderr.String())
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var rep bench.Report
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Len(t, rep.Results, 4, "1 format × 1 impl × 2 precisions × 2 M")
	precs := map[string]int{}
	for _, r := range rep.Results {
		assert.Equal(t, "f32", r.Format)
		assert.Equal(t, "generic", r.Impl)
		precs[r.Precision]++
	}
	assert.Equal(t, map[string]int{"fast": 2, "exact": 2}, precs)
}

func TestBenchKernelsRooflineOnly(t *testing.T) {
	var stdout, stderr bytes.Buffer
	jsonPath := filepath.Join(t.TempDir(), "r.json")
	code := Main(t.Context(), append(append([]string{}, tinyBench...), "--roofline-only", "--json", jsonPath), Env{Stdout: &stdout, Stderr: &stderr})
	require.Equal(t, 0, code, stderr.String())
	assert.Contains(t, stdout.String(), "read (DRAM)")
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var rep bench.Report
	require.NoError(t, json.Unmarshal(b, &rep))
	assert.Empty(t, rep.Results)
	assert.Positive(t, rep.Limits.Single.ReadGBs)
	assert.Equal(t, min(2, runtime.GOMAXPROCS(0)), rep.Limits.Multi.Threads, "--threads 2, capped at GOMAXPROCS")
}

func TestBenchKernelsUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad shape", []string{"--shapes", "4096"}, "--shapes"},
		{"bad M", []string{"--m", "1,x"}, `--m: bad batch size "x"`},
		{"zero M", []string{"--m", "0"}, `--m: bad batch size "0"`},
		{"unknown format", []string{"--formats", "fp7"}, "--formats"},
		{"unknown precision", []string{"--precision", "half"}, "--precision"},
		{"negative threads", []string{"--threads", "-1"}, "--threads must be >= 0"},
		{"negative runs", []string{"--runs", "-1"}, "--runs must be >= 0"},
		{"zero read size", []string{"--read-mib", "0"}, "--read-mib must be > 0"},
		{"positional", []string{"extra"}, `unexpected argument "extra"`},
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined"},
		{"unknown impl", []string{"--impls", "sse9"}, "sse9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), append([]string{"bench", "kernels"}, tt.args...), Env{Stdout: &stdout, Stderr: &stderr})
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr.String(), tt.want)
			assert.Contains(t, stderr.String(), "usage: mnemo bench kernels")
		})
	}
}

func TestBenchKernelsFailures(t *testing.T) {
	var stdout, stderr bytes.Buffer
	// An unwritable output file fails the command (exit status 1).
	bad := filepath.Join(t.TempDir(), "missing", "k.json")
	code := Main(t.Context(), append(append([]string{}, tinyBench...), "--formats", "f32", "--impls", "generic", "--json", bad), Env{Stdout: &stdout, Stderr: &stderr})
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "missing")
}
