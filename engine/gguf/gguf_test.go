package gguf_test

import (
	"bytes"
	"github.com/mnemo-ai/mnemo/internal/testdata"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine/gguf"
)

// allValues has one KV of every value type, including nested arrays.
func allValues() []gguf.KV {
	return []gguf.KV{
		{"general.architecture", gguf.String("llama")},
		{"t.u8", gguf.Uint8(200)},
		{"t.i8", gguf.Int8(-100)},
		{"t.u16", gguf.Uint16(60000)},
		{"t.i16", gguf.Int16(-30000)},
		{"t.u32", gguf.Uint32(4000000000)},
		{"t.i32", gguf.Int32(-2000000000)},
		{"t.f32", gguf.Float32(1.5e-5)},
		{"t.bool", gguf.Bool(true)},
		{"t.str", gguf.String("héllo\x00world")},
		{"t.u64", gguf.Uint64(math.MaxUint64)},
		{"t.i64", gguf.Int64(math.MinInt64)},
		{"t.f64", gguf.Float64(math.Pi)},
		{"t.empty", gguf.String("")},
		{"a.u8", gguf.ArrayOf([]uint8{1, 2, 255})},
		{"a.i8", gguf.ArrayOf([]int8{-1, 0, 127})},
		{"a.u16", gguf.ArrayOf([]uint16{1, 65535})},
		{"a.i16", gguf.ArrayOf([]int16{-32768, 7})},
		{"a.u32", gguf.ArrayOf([]uint32{1, 2, 3})},
		{"a.i32", gguf.ArrayOf([]int32{-5, 5})},
		{"a.f32", gguf.ArrayOf([]float32{0.25, -1, float32(math.Inf(1))})},
		{"a.bool", gguf.ArrayOf([]bool{true, false, true})},
		{"a.str", gguf.ArrayOf([]string{"<s>", "", "▁the"})},
		{"a.u64", gguf.ArrayOf([]uint64{1 << 40})},
		{"a.i64", gguf.ArrayOf([]int64{-1 << 40})},
		{"a.f64", gguf.ArrayOf([]float64{0.5, -2})},
		{"a.empty", gguf.ArrayOf([]int32{})},
		{"a.nested", gguf.ArrayOf([]gguf.Array{
			gguf.NewArray([]int32{1, 2}),
			gguf.NewArray([]string{"x"}),
			gguf.NewArray([]gguf.Array{gguf.NewArray([]float64{2.5})}),
			gguf.NewArray([]bool{}),
		})},
	}
}

type tensor struct {
	name string
	typ  gguf.GGMLType
	dims []uint64
	data []byte
}

func patterned(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)*31 + seed
	}
	return b
}

func testTensors() []tensor {
	return []tensor{
		{"token_embd.weight", gguf.F32, []uint64{4, 3}, patterned(48, 1)},
		{"blk.0.attn_q.weight", gguf.Q8_0, []uint64{64, 2}, patterned(4*34, 2)},
		{"blk.0.ffn_up.weight", gguf.Q4_K, []uint64{256, 1, 1}, patterned(144, 3)},
		{"scalar", gguf.F16, nil, patterned(2, 4)},
		{"empty", gguf.F32, []uint64{0, 5}, nil},
		{"output_norm.weight", gguf.BF16, []uint64{3}, patterned(6, 5)},
	}
}

func build(t testing.TB, kvs []gguf.KV, ts []tensor) []byte {
	t.Helper()
	w := gguf.NewWriter()
	for _, kv := range kvs {
		require.NoError(t, w.AddKV(kv.Key, kv.Value))
	}
	for _, x := range ts {
		require.NoError(t, w.AddTensor(x.name, x.typ, x.dims, x.data))
	}
	var buf bytes.Buffer
	n, err := w.WriteTo(&buf)
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), n)
	return buf.Bytes()
}

func checkFile(t *testing.T, f *gguf.File, kvs []gguf.KV, ts []tensor, align uint64) {
	t.Helper()
	assert.Equal(t, uint32(3), f.Version())
	assert.Equal(t, align, f.Alignment())
	assert.Zero(t, f.DataOffset()%int64(align))
	require.Len(t, f.KVs(), len(kvs))
	for i, kv := range kvs {
		assert.Equal(t, kv.Key, f.KVs()[i].Key, "key order")
		assert.Equal(t, kv.Value, f.KVs()[i].Value, kv.Key)
		v, ok := f.Get(kv.Key)
		assert.True(t, ok)
		assert.Equal(t, kv.Value, v, kv.Key)
	}
	require.Len(t, f.Tensors(), len(ts))
	for i, x := range ts {
		info := f.Tensors()[i]
		assert.Equal(t, x.name, info.Name)
		assert.Equal(t, x.typ, info.Type)
		assert.Equal(t, len(x.dims), len(info.Dims))
		for j := range x.dims {
			assert.Equal(t, x.dims[j], info.Dims[j])
		}
		assert.Equal(t, uint64(len(x.data)), info.Size)
		assert.Zero(t, info.Offset%align, x.name)
		got, err := f.TensorData(x.name)
		require.NoError(t, err)
		assert.Equal(t, len(x.data), len(got))
		assert.True(t, bytes.Equal(x.data, got), x.name)
		byName, ok := f.Tensor(x.name)
		assert.True(t, ok)
		assert.Equal(t, info, byName)
	}
}

func TestRoundTrip(t *testing.T) {
	kvs, ts := allValues(), testTensors()
	b := build(t, kvs, ts)

	t.Run("ParseBytes", func(t *testing.T) {
		f, err := gguf.ParseBytes(b)
		require.NoError(t, err)
		checkFile(t, f, kvs, ts, 32)
		// TensorData aliases the input.
		d, err := f.TensorData("token_embd.weight")
		require.NoError(t, err)
		info, _ := f.Tensor("token_embd.weight")
		assert.Same(t, &b[f.DataOffset()+int64(info.Offset)], &d[0])
	})
	t.Run("Parse", func(t *testing.T) {
		f, err := gguf.Parse(bytes.NewReader(b), int64(len(b)))
		require.NoError(t, err)
		checkFile(t, f, kvs, ts, 32)
	})
	t.Run("Open", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "m.gguf")
		require.NoError(t, os.WriteFile(path, b, 0o644))
		f, err := gguf.Open(path)
		require.NoError(t, err)
		checkFile(t, f, kvs, ts, 32)
		require.NoError(t, f.Close())
	})
	t.Run("rewrite is identical", func(t *testing.T) {
		f, err := gguf.ParseBytes(b)
		require.NoError(t, err)
		assert.Equal(t, b, rewrite(t, f))
	})
}

// rewrite writes f again through the Writer.
func rewrite(t testing.TB, f *gguf.File) []byte {
	t.Helper()
	var ts []tensor
	for _, info := range f.Tensors() {
		d, err := f.TensorData(info.Name)
		require.NoError(t, err)
		ts = append(ts, tensor{info.Name, info.Type, info.Dims, d})
	}
	return build(t, f.KVs(), ts)
}

func TestAlignment(t *testing.T) {
	for _, align := range []uint64{1, 8, 64, 4096} {
		t.Run("align="+itoa(align), func(t *testing.T) {
			kvs := []gguf.KV{{"general.alignment", gguf.Uint32(uint32(align))}, {"x", gguf.String("abc")}}
			ts := testTensors()
			b := build(t, kvs, ts)
			f, err := gguf.ParseBytes(b)
			require.NoError(t, err)
			checkFile(t, f, kvs, ts, align)
			// Layout as llama.cpp expects it: tensors packed in order, each
			// padded to the alignment, no gaps.
			next := uint64(0)
			for _, info := range f.Tensors() {
				assert.Equal(t, next, info.Offset, info.Name)
				next += (info.Size + align - 1) / align * align
			}
			assert.Equal(t, int64(next), f.Size()-f.DataOffset())
		})
	}
}

func itoa(x uint64) string { return strconv.FormatUint(x, 10) }

func TestAccessors(t *testing.T) {
	f, err := gguf.ParseBytes(build(t, allValues(), nil))
	require.NoError(t, err)

	s, err := f.String("general.architecture")
	require.NoError(t, err)
	assert.Equal(t, "llama", s)

	for key, want := range map[string]uint64{"t.u8": 200, "t.u16": 60000, "t.u32": 4000000000, "t.u64": math.MaxUint64} {
		got, err := f.Uint(key)
		require.NoError(t, err, key)
		assert.Equal(t, want, got, key)
	}
	_, err = f.Uint("t.i8")
	assert.ErrorContains(t, err, "t.i8 is negative")
	_, err = f.Uint("t.str")
	assert.ErrorContains(t, err, "t.str is string")
	_, err = f.Uint("nope")
	assert.ErrorIs(t, err, gguf.ErrKeyNotFound)
	assert.ErrorContains(t, err, "nope")

	i, err := f.Int("t.i64")
	require.NoError(t, err)
	assert.Equal(t, int64(math.MinInt64), i)
	_, err = f.Int("t.u64")
	assert.Error(t, err, "MaxUint64 does not fit an int64")

	x, err := f.Float("t.f32")
	require.NoError(t, err)
	assert.Equal(t, float64(float32(1.5e-5)), x)
	x, err = f.Float("t.u16")
	require.NoError(t, err)
	assert.Equal(t, 60000.0, x)

	bv, err := f.Bool("t.bool")
	require.NoError(t, err)
	assert.True(t, bv)
	_, err = f.Bool("t.u8")
	assert.ErrorContains(t, err, "want bool")

	ss, err := f.Strings("a.str")
	require.NoError(t, err)
	assert.Equal(t, []string{"<s>", "", "▁the"}, ss)
	_, err = f.Strings("a.i32")
	assert.ErrorContains(t, err, "a.i32 is array of int32, want array of string")

	fs, err := f.Float32s("a.f32")
	require.NoError(t, err)
	assert.Equal(t, []float32{0.25, -1, float32(math.Inf(1))}, fs)
	fs, err = f.Float32s("a.f64")
	require.NoError(t, err)
	assert.Equal(t, []float32{0.5, -2}, fs)

	is, err := f.Int32s("a.i32")
	require.NoError(t, err)
	assert.Equal(t, []int32{-5, 5}, is)
	is, err = f.Int32s("a.u16")
	require.NoError(t, err)
	assert.Equal(t, []int32{1, 65535}, is)
	_, err = f.Int32s("a.u64")
	assert.Error(t, err, "1<<40 does not fit an int32")

	a, err := f.Array("a.nested")
	require.NoError(t, err)
	assert.Equal(t, 4, a.Len())
	inner, ok := a.Index(2).Array()
	require.True(t, ok)
	innermost, ok := inner.Index(0).Array()
	require.True(t, ok)
	assert.Equal(t, gguf.Float64(2.5), innermost.Index(0))
	assert.Equal(t, "[int32 × 2] 1, 2", a.Index(0).String())
	assert.Equal(t, `[string × 3] "<s>", "", ...`, gguf.NewArray(ss).Summary(2))
}

func TestWriterErrors(t *testing.T) {
	w := gguf.NewWriter()
	require.NoError(t, w.AddKV("a", gguf.Uint8(1)))
	assert.ErrorContains(t, w.AddKV("a", gguf.Uint8(1)), "duplicate metadata key")
	assert.ErrorContains(t, w.AddKV("", gguf.Uint8(1)), "empty metadata key")
	assert.ErrorContains(t, w.AddKV("b", gguf.Value{}), "invalid")
	assert.ErrorContains(t, w.AddKV("general.alignment", gguf.Uint32(48)), "power of two")
	assert.ErrorContains(t, w.AddKV("general.alignment", gguf.String("x")), "power of two")
	assert.ErrorContains(t, w.AddKV("general.alignment", gguf.Uint64(64)), "power of two uint32, got uint64")
	require.NoError(t, w.AddTensor("t", gguf.F32, []uint64{2}, make([]byte, 8)))
	assert.ErrorContains(t, w.AddTensor("t", gguf.F32, []uint64{2}, make([]byte, 8)), "duplicate tensor")
	assert.ErrorContains(t, w.AddTensor("u", gguf.F32, []uint64{2}, make([]byte, 7)), "7 bytes of data, want 8")
	assert.ErrorContains(t, w.AddTensor("u", gguf.Q8_0, []uint64{16}, make([]byte, 17)), "not a multiple of the q8_0 block size 32")
	assert.ErrorContains(t, w.AddTensor("u", gguf.GGMLType(4), []uint64{1}, nil), "unknown type")
	assert.ErrorContains(t, w.AddTensor("u", gguf.F32, []uint64{1, 1, 1, 1, 1}, make([]byte, 4)), "5 dimensions")
	assert.ErrorContains(t, w.AddTensor(strings.Repeat("n", 64), gguf.F32, []uint64{1}, make([]byte, 4)), "longer than 63")
	assert.ErrorContains(t, w.AddTensor("u", gguf.F32, []uint64{1 << 32, 1 << 32}, nil), "overflow")
	assert.ErrorContains(t, w.AddTensorF32("u", []uint64{3}, []float32{1, 2}), "8 bytes of data, want 12")
	require.NoError(t, w.AddTensorF32("v", []uint64{2}, []float32{1.5, -2}))
	var buf bytes.Buffer
	_, err := w.WriteTo(&buf)
	require.NoError(t, err)
	f, err := gguf.ParseBytes(buf.Bytes())
	require.NoError(t, err)
	got, err := f.Dequantize("v")
	require.NoError(t, err)
	assert.Equal(t, []float32{1.5, -2}, got)
}

func TestGGMLTypes(t *testing.T) {
	cases := []struct {
		typ         gguf.GGMLType
		id          uint32
		name        string
		block, size uint64
	}{
		{gguf.F32, 0, "f32", 1, 4},
		{gguf.F16, 1, "f16", 1, 2},
		{gguf.Q4_0, 2, "q4_0", 32, 18},
		{gguf.Q4_1, 3, "q4_1", 32, 20},
		{gguf.Q5_0, 6, "q5_0", 32, 22},
		{gguf.Q5_1, 7, "q5_1", 32, 24},
		{gguf.Q8_0, 8, "q8_0", 32, 34},
		{gguf.Q4_K, 12, "q4_K", 256, 144},
		{gguf.Q5_K, 13, "q5_K", 256, 176},
		{gguf.Q6_K, 14, "q6_K", 256, 210},
		{gguf.BF16, 30, "bf16", 1, 2},
		{gguf.MXFP4, 39, "mxfp4", 32, 17},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.id, uint32(c.typ))
			assert.Equal(t, c.name, c.typ.String())
			assert.Equal(t, c.block, c.typ.BlockSize())
			assert.Equal(t, c.size, c.typ.TypeSize())
			p, err := gguf.ParseGGMLType(strings.ToUpper(c.name))
			require.NoError(t, err)
			assert.Equal(t, c.typ, p)
		})
	}
	assert.False(t, gguf.GGMLType(4).Valid())
	assert.Equal(t, "GGMLType(4)", gguf.GGMLType(4).String())
	_, err := gguf.ParseGGMLType("q9_9")
	assert.Error(t, err)
}

// TestLlamaCppFiles reads vocab-only GGUF files written by llama.cpp.
func TestLlamaCppFiles(t *testing.T) {
	dir := testdata.Path(t, "tokenizers")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.gguf"))
	if len(paths) == 0 {
		t.Skipf("no tokenizer GGUF files in %s", dir)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			f, err := gguf.Open(p)
			require.NoError(t, err)
			defer f.Close()
			arch, err := f.String("general.architecture")
			require.NoError(t, err)
			assert.NotEmpty(t, arch)
			toks, err := f.Strings("tokenizer.ggml.tokens")
			require.NoError(t, err)
			assert.Greater(t, len(toks), 1000)
			if a, err := f.Array("tokenizer.ggml.token_type"); err == nil {
				assert.Equal(t, len(toks), a.Len())
			}
			// Re-encoding the metadata gives a file that parses to the same.
			g, err := gguf.ParseBytes(rewrite(t, f))
			require.NoError(t, err)
			assert.Equal(t, f.KVs(), g.KVs())
		})
	}
	if p := filepath.Join(dir, "llama-spm.gguf"); fileExists(p) {
		f, err := gguf.Open(p)
		require.NoError(t, err)
		defer f.Close()
		toks, err := f.Strings("tokenizer.ggml.tokens")
		require.NoError(t, err)
		assert.Len(t, toks, 32000)
		assert.Equal(t, "<s>", toks[1])
		scores, err := f.Float32s("tokenizer.ggml.scores")
		require.NoError(t, err)
		assert.Len(t, scores, 32000)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

type failWriter struct{ left int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, os.ErrClosed
	}
	w.left -= len(p)
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	w := gguf.NewWriter()
	require.NoError(t, w.AddKV("a", gguf.String(strings.Repeat("x", 100000))))
	require.NoError(t, w.AddTensorF32("t", []uint64{4}, make([]float32, 4)))
	n, err := w.WriteTo(&failWriter{left: 70000})
	assert.ErrorIs(t, err, os.ErrClosed)
	assert.Equal(t, int64(70000), n)
	assert.Error(t, w.WriteFile(filepath.Join(t.TempDir(), "missing-dir", "x.gguf")))
}
