package neuron_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/neuron"
	"github.com/mnemo-ai/mnemo/backend/neuron/neurontest"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

var manifestSpecs = []backend.Spec{
	{Op: backend.OpMatMul, M: 8, N: 64, K: 64, Weights: format.F8E4M3Row, Bias: true},
	{Op: backend.OpMatMul, M: 1, N: 64, K: 64, Weights: format.F32},
	{Op: backend.OpRMSNorm, M: 8, N: 64, Eps: 1e-5, Heads: 4},
	{Op: backend.OpAdd, M: 8, N: 64},
	{Op: backend.OpSwiGLU, M: 8, N: 160},
	{Op: backend.OpEmbed, M: 8, N: 384, K: 64, Weights: format.MXFP4},
	{Op: backend.OpRoPE, M: 8, Heads: 4, HeadDim: 16, Rope: backend.Rope{Dims: 16, Base: 500000, Style: backend.RopeNeoX,
		Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OrigContext: 8192}},
	{Op: backend.OpKVWrite, M: 8, KVHeads: 2, HeadDim: 16, BlockTokens: 4, Blocks: 64, KV: backend.BF16},
	{Op: backend.OpAttention, M: 8, Heads: 4, KVHeads: 2, HeadDim: 16, BlockTokens: 4, Blocks: 64, Seqs: 1, MaxBlocks: 64, KV: backend.F32},
	{Op: backend.OpGather, M: 8, N: 64, K: 1},
}

func TestSpecJSONRoundTrip(t *testing.T) {
	for _, s := range manifestSpecs {
		t.Run(s.String(), func(t *testing.T) {
			raw, err := json.Marshal(neuron.EncodeSpec(s))
			require.NoError(t, err)
			var j neuron.SpecJSON
			require.NoError(t, json.Unmarshal(raw, &j))
			got, err := j.Decode()
			require.NoError(t, err)
			assert.Equal(t, s, got)
		})
	}
}

func TestTensorNames(t *testing.T) {
	for _, tt := range []struct {
		spec    backend.Spec
		in, out []string
	}{
		{manifestSpecs[0], []string{"x", "w", "b"}, []string{"y"}},
		{manifestSpecs[6], []string{"x.must_alias_input", "pos"}, []string{"x"}},
		{manifestSpecs[7], []string{"k", "v", "slot", "kcache.must_alias_input", "vcache.must_alias_input"}, []string{"kcache", "vcache"}},
		{manifestSpecs[8], []string{"q", "kcache", "vcache", "table", "seq"}, []string{"o"}},
	} {
		in, out, err := neuron.TensorNames(tt.spec)
		require.NoError(t, err)
		assert.Equal(t, tt.in, in, "%s", tt.spec)
		assert.Equal(t, tt.out, out, "%s", tt.spec)
	}
}

func TestManifestWriteRead(t *testing.T) {
	dir := t.TempDir()
	m, err := neurontest.WriteDir(dir, []int{1, 8}, manifestSpecs)
	require.NoError(t, err)
	got, err := neuron.ReadManifest(dir)
	require.NoError(t, err)
	assert.Equal(t, m, got)
	for _, e := range got.Programs {
		assert.FileExists(t, filepath.Join(dir, e.NEFF))
	}
	assert.Equal(t, []string{
		"add: 1 programs, M in [8]",
		"attention: 1 programs, M in [8]",
		"embed: 1 programs, M in [8], weights mxfp4",
		"gather: 1 programs, M in [8]",
		"kvwrite: 1 programs, M in [8]",
		"matmul: 2 programs, M in [1 8], weights f32 fp8",
		"rmsnorm: 1 programs, M in [8]",
		"rope: 1 programs, M in [8]",
		"swiglu: 1 programs, M in [8]",
	}, got.Summary())
	for n, want := range map[int]int{0: 1, 1: 1, 2: 8, 8: 8, 9: 9} {
		assert.Equal(t, want, got.Bucket(n), "Bucket(%d)", n)
	}
}

func TestParseManifestErrors(t *testing.T) {
	ok := `{"version":1,"buckets":[1,8],"programs":[{"spec":{"op":"add","m":8,"n":4},"neff":"a.neff","inputs":["a","b"],"outputs":["y"]}]}`
	_, err := neuron.ParseManifest([]byte(ok))
	require.NoError(t, err)
	for _, tt := range []struct{ name, data string }{
		{"not json", `{`},
		{"version", `{"version":2}`},
		{"buckets", `{"version":1,"buckets":[8,1]}`},
		{"zero bucket", `{"version":1,"buckets":[0]}`},
		{"unknown op", `{"version":1,"programs":[{"spec":{"op":"conv","m":1},"neff":"a","inputs":[],"outputs":[]}]}`},
		{"bad shape", `{"version":1,"programs":[{"spec":{"op":"add","m":0,"n":4},"neff":"a","inputs":["a","b"],"outputs":["y"]}]}`},
		{"weights", `{"version":1,"programs":[{"spec":{"op":"matmul","m":1,"n":4,"k":32,"weights":"int3"},"neff":"a","inputs":["x","w"],"outputs":["y"]}]}`},
		{"kv missing", `{"version":1,"programs":[{"spec":{"op":"kvwrite","m":1,"kv_heads":1,"head_dim":4,"block_tokens":4,"blocks":2},"neff":"a","inputs":["k","v","s","a","b"],"outputs":["a","b"]}]}`},
		{"kv dtype", `{"version":1,"programs":[{"spec":{"op":"kvwrite","m":1,"kv_heads":1,"head_dim":4,"block_tokens":4,"blocks":2,"kv":"i32"},"neff":"a","inputs":["k","v","s","a","b"],"outputs":["a","b"]}]}`},
		{"rope style", `{"version":1,"programs":[{"spec":{"op":"rope","m":1,"heads":1,"head_dim":4,"rope":{"dims":4,"base":10000,"style":"odd"}},"neff":"a","inputs":["x","p"],"outputs":["x"]}]}`},
		{"escaping path", `{"version":1,"programs":[{"spec":{"op":"add","m":8,"n":4},"neff":"../a.neff","inputs":["a","b"],"outputs":["y"]}]}`},
		{"absolute path", `{"version":1,"programs":[{"spec":{"op":"add","m":8,"n":4},"neff":"/a.neff","inputs":["a","b"],"outputs":["y"]}]}`},
		{"input count", `{"version":1,"programs":[{"spec":{"op":"add","m":8,"n":4},"neff":"a","inputs":["a"],"outputs":["y"]}]}`},
		{"empty name", `{"version":1,"programs":[{"spec":{"op":"add","m":8,"n":4},"neff":"a","inputs":["a",""],"outputs":["y"]}]}`},
		{"duplicate", `{"version":1,"programs":[{"spec":{"op":"add","m":8,"n":4},"neff":"a","inputs":["a","b"],"outputs":["y"]},{"spec":{"op":"add","m":8,"n":4},"neff":"b","inputs":["a","b"],"outputs":["y"]}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := neuron.ParseManifest([]byte(tt.data))
			assert.Error(t, err)
		})
	}
}

func TestReadManifestMissing(t *testing.T) {
	_, err := neuron.ReadManifest(t.TempDir())
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func FuzzParseManifest(f *testing.F) {
	dir := f.TempDir()
	if _, err := neurontest.WriteDir(dir, []int{1, 8}, manifestSpecs); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(dir, neuron.ManifestName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"programs":[{"spec":{"op":"add","m":8,"n":4},"neff":"a","inputs":["a","b"],"outputs":["y"]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := neuron.ParseManifest(data)
		if err != nil {
			return
		}
		// A valid manifest survives a round trip through its encoding.
		raw, err := json.Marshal(m)
		require.NoError(t, err)
		m2, err := neuron.ParseManifest(raw)
		require.NoError(t, err)
		assert.Equal(t, len(m.Programs), len(m2.Programs))
		for i := range m.Programs {
			s1, err1 := m.Programs[i].Spec.Decode()
			s2, err2 := m2.Programs[i].Spec.Decode()
			require.NoError(t, err1)
			require.NoError(t, err2)
			assert.Equal(t, s1, s2)
		}
	})
}
