package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/bench/quanterr"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

func TestBenchQuant(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quant.json")
	var stdout, stderr bytes.Buffer
	env := Env{Stdout: &stdout, Stderr: &stderr}
	code := Main(t.Context(), []string{"bench", "quant", "--rows", "4", "--cols", "64", "--seed", "3", "--json", path}, env)
	require.Equal(t, 0, code, stderr.String())
	assert.Contains(t, stdout.String(), "4×64 matrices, seed 3")
	for _, typ := range format.Types()[1:] {
		assert.Contains(t, stdout.String(), typ.String())
	}

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var got []quanterr.Result
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, quanterr.Run(quanterr.Options{Rows: 4, Cols: 64, Seed: 3}), got, "JSON holds the same results")
}

func TestBenchQuantUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"cols not a block multiple", []string{"--cols", "33"}, "--cols must be a positive multiple of 32"},
		{"rows zero", []string{"--rows", "0"}, "--rows must be positive"},
		{"positional", []string{"extra"}, `unexpected argument "extra"`},
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), append([]string{"bench", "quant"}, tt.args...), Env{Stdout: &stdout, Stderr: &stderr})
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr.String(), tt.want)
			assert.Empty(t, stdout.String())
		})
	}
}
