package gguf_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine/gguf"
)

// raw assembles GGUF bytes field by field, valid or not.
type raw struct{ b []byte }

func (r *raw) u8(x uint8) *raw   { r.b = append(r.b, x); return r }
func (r *raw) u32(x uint32) *raw { r.b = binary.LittleEndian.AppendUint32(r.b, x); return r }
func (r *raw) u64(x uint64) *raw { r.b = binary.LittleEndian.AppendUint64(r.b, x); return r }
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.b = append(r.b, s...); return r }
func (r *raw) pad(a int) *raw {
	for len(r.b)%a != 0 {
		r.b = append(r.b, 0)
	}
	return r
}
func (r *raw) zeros(n int) *raw { r.b = append(r.b, make([]byte, n)...); return r }

func header(nTensors, nKV uint64) *raw {
	r := &raw{b: []byte("GGUF")}
	return r.u32(3).u64(nTensors).u64(nKV)
}

// tinfo appends a tensor info.
func (r *raw) tinfo(name string, typ gguf.GGMLType, off uint64, dims ...uint64) *raw {
	r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	return r.u32(uint32(typ)).u64(off)
}

func TestMalformed(t *testing.T) {
	cases := []struct {
		name  string
		data  []byte
		field string // substring of the error
		msg   string // another substring
	}{
		{"empty", nil, "header.magic", "unexpected end of file"},
		{"bad magic", []byte("GGML\x03\x00\x00\x00"), "header.magic", "not a GGUF file"},
		{"version 1", (&raw{b: []byte("GGUF")}).u32(1).b, "header.version", "version 1"},
		{"big endian", (&raw{b: []byte("GGUF")}).u32(3 << 24).b, "header.version", "big-endian"},
		{"version 4", (&raw{b: []byte("GGUF")}).u32(4).u64(0).u64(0).b, "header.version", "unsupported GGUF version 4"},
		{"truncated header", (&raw{b: []byte("GGUF")}).u32(3).u32(0).b, "header.tensor_count", "unexpected end of file"},
		{"tensor count overflow", header(math.MaxUint64, 0).b, "header.tensor_count", "count 18446744073709551615"},
		{"kv count beyond file", header(0, 1<<40).b, "header.metadata_kv_count", "bytes are left"},
		{"key length beyond file", header(0, 1).u64(1 << 62).zeros(8).b, "kv[0].key", "exceeds the"},
		{"unknown value type", header(0, 1).str("k").u32(13).zeros(8).b, `kv[0] "k" value`, "unknown value type 13"},
		{"truncated value", header(0, 1).str("k").u32(uint32(gguf.TypeUint64)).u32(0).b, `kv[0] "k" value`, "need 8 bytes, 4 left"},
		{"bad bool", header(0, 1).str("k").u32(uint32(gguf.TypeBool)).u8(2).b, `kv[0] "k" value`, "neither 0 nor 1"},
		{"string value length beyond file", header(0, 1).str("k").u32(uint32(gguf.TypeString)).u64(100).str("x").b, `kv[0] "k" value`, "string length 100"},
		{"array length beyond file", header(0, 1).str("k").u32(uint32(gguf.TypeArray)).u32(uint32(gguf.TypeUint32)).u64(1 << 61).zeros(16).b, `kv[0] "k" value length`, "count 2305843009213693952 needs at least 4 bytes"},
		{"array of strings beyond file", header(0, 1).str("k").u32(uint32(gguf.TypeArray)).u32(uint32(gguf.TypeString)).u64(3).str("a").b, `kv[0] "k" value length`, "needs at least 8 bytes"},
		{"string element beyond file", header(0, 1).str("k").u32(uint32(gguf.TypeArray)).u32(uint32(gguf.TypeString)).u64(2).str("a").u64(99).b, `kv[0] "k" value[1]`, "string length 99"},
		{"unknown array element type", header(0, 1).str("k").u32(uint32(gguf.TypeArray)).u32(77).u64(0).b, `kv[0] "k" value element type`, "unknown value type 77"},
		{"bad bool in array", header(0, 1).str("k").u32(uint32(gguf.TypeArray)).u32(uint32(gguf.TypeBool)).u64(2).u8(1).u8(9).b, `kv[0] "k" value[1]`, "neither 0 nor 1"},
		{"nested too deep", deepArray(20), `kv[0] "k" value[0][0][0]`, "nested deeper than 16"},
		{"duplicate key", header(0, 2).str("k").u32(uint32(gguf.TypeUint8)).u8(1).str("k").u32(uint32(gguf.TypeUint8)).u8(1).b, `kv[1] "k"`, "duplicate key"},
		{"alignment zero", header(0, 1).str("general.alignment").u32(uint32(gguf.TypeUint32)).u32(0).b, `"general.alignment"`, "power of two"},
		{"alignment not power of two", header(0, 1).str("general.alignment").u32(uint32(gguf.TypeUint32)).u32(24).b, `"general.alignment"`, "power of two"},
		{"alignment string", header(0, 1).str("general.alignment").u32(uint32(gguf.TypeString)).str("32").b, `"general.alignment"`, "power of two"},
		{"tensor name too long", header(1, 0).tinfo(strings.Repeat("x", 64), gguf.F32, 0, 1).b, "name", "longer than 63"},
		{"too many dims", header(1, 0).tinfo("t", gguf.F32, 0, 1, 1, 1, 1, 1).b, `tensor[0] "t" n_dims`, "5 dimensions"},
		{"dims overflow", header(1, 0).tinfo("t", gguf.F32, 0, 1<<32, 1<<32).b, `tensor[0] "t" dims[1]`, "overflow"},
		{"size overflow", header(1, 0).tinfo("t", gguf.F32, 0, 1<<62).b, `tensor[0] "t" dims`, "overflows"},
		{"unknown ggml type", header(1, 0).tinfo("t", gguf.GGMLType(5), 0, 1).b, `tensor[0] "t" type`, "unknown ggml type 5"},
		{"row not whole blocks", header(1, 0).tinfo("t", gguf.Q8_0, 0, 16).b, `tensor[0] "t" dims[0]`, "not a multiple of the q8_0 block size 32"},
		{"unaligned offset", header(1, 0).tinfo("t", gguf.F32, 4, 1).pad(32).zeros(64).b, `tensor[0] "t" offset`, "not a multiple of the alignment 32"},
		{"data past EOF", header(1, 0).tinfo("t", gguf.F32, 0, 16).pad(32).zeros(60).b, `tensor[0] "t" offset`, "runs past the 60 bytes"},
		{"offset past EOF", header(1, 0).tinfo("t", gguf.F32, 1<<63, 1).pad(32).b, `tensor[0] "t" offset`, "runs past"},
		{"overlapping tensors", header(2, 0).tinfo("a", gguf.F32, 0, 16).tinfo("b", gguf.F32, 32, 16).pad(32).zeros(128).b, `tensor[1] "b" offset`, `overlaps tensor "a"`},
		{"duplicate tensor", header(2, 0).tinfo("a", gguf.F32, 0, 1).tinfo("a", gguf.F32, 32, 1).pad(32).zeros(64).b, `tensor[1] "a" name`, "duplicate tensor name"},
		{"truncated tensor info", header(1, 0).str("t").u32(2).u64(4).b, `tensor[0]`, "unexpected end of file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, parse := range []func([]byte) (*gguf.File, error){
				gguf.ParseBytes,
				func(b []byte) (*gguf.File, error) { return gguf.Parse(bytes.NewReader(b), int64(len(b))) },
			} {
				f, err := parse(c.data)
				require.Error(t, err)
				assert.Nil(t, f)
				var pe *gguf.ParseError
				require.True(t, errors.As(err, &pe), "%v is a ParseError", err)
				assert.Contains(t, err.Error(), c.field)
				assert.Contains(t, err.Error(), c.msg)
				assert.Contains(t, err.Error(), "at offset")
			}
		})
	}
}

// deepArray nests arrays n deep in one KV.
func deepArray(n int) []byte {
	r := header(0, 1).str("k").u32(uint32(gguf.TypeArray))
	for range n {
		r.u32(uint32(gguf.TypeArray)).u64(1)
	}
	return r.b
}

// TestTruncatedEverywhere cuts a valid file at every length: each prefix
// shorter than the tensor infos fails cleanly, and no prefix panics.
func TestTruncatedEverywhere(t *testing.T) {
	b := build(t, allValues(), testTensors())
	full, err := gguf.ParseBytes(b)
	require.NoError(t, err)
	for n := range len(b) {
		f, err := gguf.ParseBytes(b[:n])
		if n < int(full.DataOffset()) {
			require.Error(t, err, "prefix %d", n)
			assert.ErrorIs(t, err, gguf.ErrTruncated, "prefix %d", n)
			continue
		}
		// The data section is cut: some tensor runs past the end.
		if err == nil {
			// Only trailing padding was cut.
			for _, info := range f.Tensors() {
				assert.LessOrEqual(t, f.DataOffset()+int64(info.Offset+info.Size), int64(n))
			}
		} else {
			assert.ErrorIs(t, err, gguf.ErrTruncated)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(build(f, allValues(), testTensors()))
	f.Add(build(f, []gguf.KV{{"general.alignment", gguf.Uint32(8)}}, testTensors()[:2]))
	f.Add(build(f, nil, nil))
	f.Add(deepArray(3))
	f.Add(header(2, 0).tinfo("a", gguf.F32, 0, 16).tinfo("b", gguf.F32, 32, 16).pad(32).zeros(128).b)
	f.Fuzz(func(t *testing.T, data []byte) {
		fb, errB := gguf.ParseBytes(data)
		fr, errR := gguf.Parse(bytes.NewReader(data), int64(len(data)))
		require.Equal(t, errB == nil, errR == nil, "ParseBytes and Parse disagree: %v / %v", errB, errR)
		if errB != nil {
			assert.Equal(t, errB.Error(), errR.Error())
			var pe *gguf.ParseError
			assert.True(t, errors.As(errB, &pe), "%v is a ParseError", errB)
			return
		}
		assert.Equal(t, fb.KVs(), fr.KVs())
		assert.Equal(t, fb.Tensors(), fr.Tensors())
		// Whatever parses, re-encodes to a file with the same content.
		g, err := gguf.ParseBytes(rewrite(t, fb))
		require.NoError(t, err)
		assert.Equal(t, len(fb.KVs()), len(g.KVs()))
		for i, kv := range fb.KVs() {
			assert.Equal(t, kv.Key, g.KVs()[i].Key)
		}
		for _, info := range fb.Tensors() {
			a, err := fb.TensorData(info.Name)
			require.NoError(t, err)
			b, err := g.TensorData(info.Name)
			require.NoError(t, err)
			assert.Equal(t, a, b)
		}
	})
}
