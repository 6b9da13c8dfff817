package cli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine/gguf"
)

// tinyGGUF writes a small GGUF file: a 100-token vocabulary, a NaN float, a
// nested array, and three tensors of two types.
func tinyGGUF(t *testing.T) string {
	t.Helper()
	w := gguf.NewWriter()
	toks := make([]string, 100)
	for i := range toks {
		toks[i] = fmt.Sprintf("tok%d", i)
	}
	for _, kv := range []gguf.KV{
		{Key: "general.architecture", Value: gguf.String("llama")},
		{Key: "llama.block_count", Value: gguf.Uint32(1)},
		{Key: "llama.odd", Value: gguf.Float32(float32(math.NaN()))},
		{Key: "tokenizer.ggml.tokens", Value: gguf.ArrayOf(toks)},
		{Key: "x.nested", Value: gguf.ArrayOf([]gguf.Array{gguf.NewArray([]int32{7, 8})})},
	} {
		require.NoError(t, w.AddKV(kv.Key, kv.Value))
	}
	require.NoError(t, w.AddTensor("token_embd.weight", gguf.F32, []uint64{4, 100}, make([]byte, 1600)))
	require.NoError(t, w.AddTensor("blk.0.attn_q.weight", gguf.Q8_0, []uint64{64, 4}, make([]byte, 8*34)))
	require.NoError(t, w.AddTensor("output_norm.weight", gguf.F32, []uint64{4}, make([]byte, 16)))
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, w.WriteFile(path))
	return path
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(t.Context(), args, Env{Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

func TestInspectGGUF(t *testing.T) {
	path := tinyGGUF(t)
	code, out, stderr := runCLI(t, "inspect", path)
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{
		"format:  GGUF v3 (alignment 32",
		"metadata (5 keys):",
		`general.architecture  string            "llama"`,
		`tokenizer.ggml.tokens  array[string]     [string × 100] "tok0", "tok1"`,
		`"tok7", ...`,
		"llama.odd",
		"NaN",
		"[array × 1] [int32 × 2] 7, 8",
		"tensors (3):",
		"blk.0.attn_q.weight  q8_0  [64 × 4]",
		"totals:",
		"3 tensors",
		"660 params",
	} {
		assert.Contains(t, collapse(out), collapse(want))
	}
	assert.NotContains(t, out, "tok8", "long arrays are summarised")

	code, out, stderr = runCLI(t, "inspect", "--json", path)
	require.Equal(t, 0, code, stderr)
	var r inspectReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, "gguf", r.Format)
	assert.Equal(t, uint32(3), r.Version)
	require.Len(t, r.Metadata, 5)
	toks := r.Metadata[3]
	assert.Equal(t, "tokenizer.ggml.tokens", toks.Key)
	assert.Equal(t, "array[string]", toks.Type)
	require.NotNil(t, toks.Length)
	assert.Equal(t, 100, *toks.Length)
	assert.Len(t, toks.Items, inspectItems)
	assert.Equal(t, "NaN", r.Metadata[2].Value)
	require.Len(t, r.Tensors, 3)
	assert.Equal(t, inspectTensor{Name: "blk.0.attn_q.weight", Type: "q8_0", Shape: []uint64{64, 4}, Params: 256, Bytes: 272, Offset: r.Tensors[1].Offset}, r.Tensors[1])
	assert.Equal(t, inspectTotals{Tensors: 3, Params: 660, Bytes: 1888, ByType: []inspectType{
		{Type: "f32", Tensors: 2, Params: 404, Bytes: 1616},
		{Type: "q8_0", Tensors: 1, Params: 256, Bytes: 272},
	}}, r.Totals)
	// Offsets point at the tensor data in the file.
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, int64(len(b)), r.Tensors[2].Offset+32, "last tensor is 16 bytes padded to 32")
}

// collapse squeezes runs of spaces so that checks don't depend on column
// widths.
func collapse(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' && len(b) > 0 && b[len(b)-1] == ' ' {
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func TestInspectLlama2C(t *testing.T) {
	// dim 8, hidden 12, 1 layer, 2 heads, 1 kv head, vocab 3 shared, seq 4.
	hdr := []int32{8, 12, 1, 2, 1, 3, 4}
	floats := 3*8 + (8 + 64 + 32 + 32 + 64 + 8 + 3*96) + 8 + 4*4
	var b []byte
	for _, v := range hdr {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	b = append(b, make([]byte, 4*floats)...)
	path := filepath.Join(t.TempDir(), "tiny.bin")
	require.NoError(t, os.WriteFile(path, b, 0o644))

	code, out, stderr := runCLI(t, "inspect", path, "--json")
	require.Equal(t, 0, code, stderr)
	var r inspectReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, "llama2c", r.Format)
	assert.Equal(t, int64(len(b)), r.Size)
	assert.Equal(t, "dim", r.Metadata[0].Key)
	assert.Equal(t, float64(8), r.Metadata[0].Value)
	assert.Equal(t, true, r.Metadata[7].Value)
	assert.Equal(t, 11, r.Totals.Tensors)
	assert.Equal(t, uint64(floats-16), r.Totals.Params, "all floats but the skipped RoPE tables")

	code, out, _ = runCLI(t, "inspect", path)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "llama2.c checkpoint")
	assert.Contains(t, collapse(out), "blk.0.ffn_down.weight f32 [12 × 8] 96 384")
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.gguf")
	// A header claiming 2^40 metadata pairs in a 24-byte file.
	hdr := append([]byte("GGUF"), 3, 0, 0, 0)
	hdr = binary.LittleEndian.AppendUint64(hdr, 0)
	hdr = binary.LittleEndian.AppendUint64(hdr, 1<<40)
	require.NoError(t, os.WriteFile(bad, hdr, 0o644))
	code, out, stderr := runCLI(t, "inspect", bad)
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, stderr, bad)
	assert.Contains(t, stderr, "header.metadata_kv_count at offset 16")

	junk := filepath.Join(dir, "junk.bin")
	require.NoError(t, os.WriteFile(junk, []byte("not a model"), 0o644))
	code, _, stderr = runCLI(t, "inspect", junk)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "neither a GGUF file nor a llama2.c checkpoint")

	code, _, stderr = runCLI(t, "inspect", filepath.Join(dir, "absent.gguf"))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "no such file")

	code, _, stderr = runCLI(t, "inspect")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "missing FILE")
	code, _, _ = runCLI(t, "inspect", "a", "b")
	assert.Equal(t, 2, code)
}
