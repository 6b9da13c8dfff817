package llama2c_test

import (
	"encoding/binary"
	"github.com/mnemo-ai/mnemo/internal/testdata"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine/llama2c"
)

// checkpoint writes a checkpoint in run.c's layout, written out here field
// by field; value k of the weights (counting from the first weight) is
// float32(k), so every tensor's first value tells where it starts.
func checkpoint(h [7]int32) []byte {
	dim, hidden, layers, heads, kvHeads, vocab, seq := int(h[0]), int(h[1]), int(h[2]), int(h[3]), int(h[4]), int(h[5]), int(h[6])
	if vocab < 0 {
		vocab = -vocab
	}
	hs := dim / heads
	n := vocab*dim + layers*(dim+dim*dim+2*dim*kvHeads*hs+dim*dim+dim+3*dim*hidden) + dim + seq*hs
	if h[5] < 0 {
		n += vocab * dim
	}
	b := make([]byte, 0, 28+4*n)
	for _, v := range h {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	for k := range n {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(k)))
	}
	return b
}

func first(t *testing.T, f *llama2c.File, name string) float32 {
	t.Helper()
	x, ok := f.Tensor(name)
	require.True(t, ok, name)
	return math.Float32frombits(binary.LittleEndian.Uint32(x.Data))
}

func TestParse(t *testing.T) {
	// dim 8, hidden 12, 2 layers, 4 heads, 2 kv heads, vocab 10, seq 6.
	for _, shared := range []bool{true, false} {
		name := "shared"
		vocab := int32(10)
		if !shared {
			name, vocab = "separate", -10
		}
		t.Run(name, func(t *testing.T) {
			b := checkpoint([7]int32{8, 12, 2, 4, 2, vocab, 6})
			f, err := llama2c.Parse(b)
			require.NoError(t, err)
			h := f.Header()
			assert.Equal(t, llama2c.Header{Dim: 8, HiddenDim: 12, Layers: 2, Heads: 4, KVHeads: 2, VocabSize: 10, SeqLen: 6, SharedClassifier: shared}, h)
			assert.Equal(t, 2, h.HeadSize())
			assert.Equal(t, 4, h.KVDim())

			// Offsets in run.c's order (in floats after the header):
			// embedding 80, rms_att 2*8, wq 2*64, wk 2*32, wv 2*32, wo 2*64,
			// rms_ffn 2*8, w1 2*96, w2 2*96, w3 2*96, rms_final 8, freqs 6*2.
			want := map[string]float32{
				"token_embd.weight":        0,
				"blk.0.attn_norm.weight":   80,
				"blk.1.attn_norm.weight":   88,
				"blk.0.attn_q.weight":      96,
				"blk.1.attn_q.weight":      160,
				"blk.0.attn_k.weight":      224,
				"blk.0.attn_v.weight":      288,
				"blk.1.attn_v.weight":      320,
				"blk.0.attn_output.weight": 352,
				"blk.0.ffn_norm.weight":    480,
				"blk.0.ffn_gate.weight":    496,
				"blk.0.ffn_down.weight":    688,
				"blk.0.ffn_up.weight":      880,
				"blk.1.ffn_up.weight":      976,
				"output_norm.weight":       1072,
			}
			for n, v := range want {
				assert.Equal(t, v, first(t, f, n), n)
			}
			q, _ := f.Tensor("blk.0.attn_q.weight")
			assert.Equal(t, []uint64{8, 8}, q.Dims)
			k, _ := f.Tensor("blk.1.attn_k.weight")
			assert.Equal(t, []uint64{8, 4}, k.Dims)
			down, _ := f.Tensor("blk.0.ffn_down.weight")
			assert.Equal(t, []uint64{12, 8}, down.Dims)
			gate, _ := f.Tensor("blk.0.ffn_gate.weight")
			assert.Equal(t, []uint64{8, 12}, gate.Dims)
			assert.Len(t, gate.Data, 4*96)
			emb, _ := f.Tensor("token_embd.weight")
			assert.Equal(t, []uint64{8, 10}, emb.Dims)

			out, ok := f.Tensor("output.weight")
			if shared {
				assert.False(t, ok)
				assert.Len(t, f.Tensors(), 1+9*2+1)
			} else {
				require.True(t, ok)
				assert.Equal(t, []uint64{8, 10}, out.Dims)
				assert.Equal(t, float32(1080+12), first(t, f, "output.weight"))
				assert.Equal(t, int64(len(b)), out.Offset+int64(len(out.Data)))
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	good := checkpoint([7]int32{8, 12, 2, 4, 2, 10, 6})
	hdr := func(v ...int32) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, uint32(x))
		}
		return append(b, make([]byte, 64)...)
	}
	cases := []struct {
		name string
		data []byte
		msg  string
	}{
		{"short", good[:20], "shorter than the 28-byte header"},
		{"zero dim", hdr(0, 12, 2, 4, 2, 10, 6), "dim (offset 0) is 0"},
		{"negative layers", hdr(8, 12, -2, 4, 2, 10, 6), "n_layers (offset 8) is -2"},
		{"zero vocab", hdr(8, 12, 2, 4, 2, 0, 6), "vocab_size (offset 20) is 0"},
		{"huge seq", hdr(8, 12, 2, 4, 2, 10, math.MaxInt32), "seq_len (offset 24)"},
		{"heads not dividing dim", hdr(8, 12, 2, 3, 1, 10, 6), "n_heads 3 does not divide dim 8"},
		{"kv heads not dividing heads", hdr(8, 12, 2, 4, 3, 10, 6), "n_kv_heads 3 does not divide n_heads 4"},
		{"odd head size", hdr(9, 12, 2, 3, 3, 10, 6), "head size 3"},
		{"truncated", good[:len(good)-4], "but the header"},
		{"trailing", append(append([]byte{}, good...), 0, 0, 0, 0), "implies 4396"},
		{"classifier missing", checkpoint([7]int32{8, 12, 2, 4, 2, 10, 6})[:], ""},
		{"version 1 export", append([]byte("24ka"), make([]byte, 60)...), "ak42"},
	}
	// A separate-classifier header on a shared-classifier file is short by
	// the classifier.
	cases[10].data = append([]byte{}, good...)
	binary.LittleEndian.PutUint32(cases[10].data[20:], uint32(0xFFFFFFF6)) // -10
	cases[10].msg = "separate classifier) implies"
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := llama2c.Parse(c.data)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
}

func TestModel260K(t *testing.T) {
	path := testdata.Path(t, "llama2c", "model260k.bin")
	f, err := llama2c.Open(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, llama2c.Header{Dim: 64, HiddenDim: 172, Layers: 5, Heads: 8, KVHeads: 4, VocabSize: 512, SeqLen: 512, SharedClassifier: true}, f.Header())
	assert.Len(t, f.Tensors(), 1+9*5+1)
	k, ok := f.Tensor("blk.4.attn_k.weight")
	require.True(t, ok)
	assert.Equal(t, []uint64{64, 32}, k.Dims)
	// RMS norm weights of a trained model are positive and near 1.
	norm, ok := f.Tensor("output_norm.weight")
	require.True(t, ok)
	for i := range 64 {
		v := math.Float32frombits(binary.LittleEndian.Uint32(norm.Data[4*i:]))
		assert.Greater(t, v, float32(0))
		assert.Less(t, v, float32(20))
	}
	require.NoError(t, f.Close())
}

func tokenizerBin(maxLen int32, toks []string, scores []float32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(maxLen))
	for i, s := range toks {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(scores[i]))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func TestTokenizer(t *testing.T) {
	toks := []string{"<unk>", "<s>", "</s>", "<0x00>", " the", "", "é"}
	scores := []float32{0, 0, 0, 0, -1.5, -2, -3.25}
	b := tokenizerBin(5, toks, scores)

	for _, n := range []int{len(toks), 0} {
		tk, err := llama2c.ParseTokenizer(b, n)
		require.NoError(t, err)
		assert.Equal(t, 5, tk.MaxTokenLength)
		assert.Equal(t, toks, tk.Tokens)
		assert.Equal(t, scores, tk.Scores)
	}
	path := filepath.Join(t.TempDir(), "tokenizer.bin")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	tk, err := llama2c.OpenTokenizer(path, len(toks))
	require.NoError(t, err)
	assert.Equal(t, toks, tk.Tokens)

	cases := []struct {
		name  string
		data  []byte
		vocab int
		msg   string
	}{
		{"empty", nil, 0, "too short"},
		{"bad max length", tokenizerBin(0, nil, nil), 0, "max_token_length 0"},
		{"more tokens than bytes", b, 1000, "1000 tokens need at least"},
		{"fewer tokens than file", b, 3, "trailing bytes after 3 tokens"},
		{"truncated token", b[:len(b)-1], 0, "token 6 at offset"},
		{"length past end", tokenizerBin(5, []string{"ab"}, []float32{0})[:13], 0, "length 2 exceeds the 1 bytes left"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := llama2c.ParseTokenizer(c.data, c.vocab)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(checkpoint([7]int32{8, 12, 2, 4, 2, 10, 6}))
	f.Add(checkpoint([7]int32{4, 4, 1, 2, 1, -3, 2}))
	f.Add([]byte("24ka0000000000000000000000000000"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := llama2c.Parse(data)
		if err != nil {
			return
		}
		// Every tensor lies inside the file, in order, without overlap.
		end := int64(llama2c.HeaderSize)
		for _, x := range file.Tensors() {
			assert.GreaterOrEqual(t, x.Offset, end)
			assert.Equal(t, uint64(len(x.Data)), 4*x.Elements())
			end = x.Offset + int64(len(x.Data))
		}
		assert.LessOrEqual(t, end, int64(len(data)))
	})
}

func FuzzParseTokenizer(f *testing.F) {
	f.Add(tokenizerBin(5, []string{"a", "bc"}, []float32{1, 2}), 2)
	f.Add(tokenizerBin(5, []string{"a", "bc"}, []float32{1, 2}), 0)
	f.Fuzz(func(t *testing.T, data []byte, vocab int) {
		tk, err := llama2c.ParseTokenizer(data, vocab)
		if err != nil {
			return
		}
		assert.Equal(t, len(tk.Tokens), len(tk.Scores))
		if vocab > 0 {
			assert.Len(t, tk.Tokens, vocab)
		}
	})
}
