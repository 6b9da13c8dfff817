package llama_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/kernels/format"
	"github.com/mnemo-ai/mnemo/kvcache"
)

func softmax64(v []float32) []float64 {
	mx := math.Inf(-1)
	for _, x := range v {
		mx = max(mx, float64(x))
	}
	p := make([]float64, len(v))
	var s float64
	for i, x := range v {
		p[i] = math.Exp(float64(x) - mx)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

// divergence returns the mean KL(ref‖q) and the top-1 agreement over rows.
func divergence(ref, q engine.Logits) (kl, top1 float64) {
	for r := range ref.Rows {
		p, qq := softmax64(ref.Row(r)), softmax64(q.Row(r))
		bp, bq := 0, 0
		for i := range p {
			if p[i] > 0 {
				kl += p[i] * math.Log(p[i]/max(qq[i], 1e-300))
			}
			if p[i] > p[bp] {
				bp = i
			}
			if qq[i] > qq[bq] {
				bq = i
			}
		}
		if bp == bq {
			top1++
		}
	}
	return kl / float64(ref.Rows), top1 / float64(ref.Rows)
}

// TestQuantizedWeights rewrites a synthetic model in every weight format
// with QuantizeFile, loads it (auto keeps the file's format), and bounds the
// divergence of its logits from the f32 model's. The bounds are a few times
// what each format measured, so a broken format fails while noise passes.
// Measured (mean KL over 20 positions, top-1 agreement): bf16 1.3e-5/1.00,
// f16 1.2e-7/1.00, q8_0 1.4e-4/1.00, fp8 2.1e-3/0.90, mxfp8 2.2e-3/0.85,
// mxfp8_e5m2 7.3e-3/0.50, q4_0 0.020/0.75, nvfp4 0.024/0.65, mxfp4
// 0.036/0.50. Random weights give flat distributions, so top-1 is noisy.
func TestQuantizedWeights(t *testing.T) {
	s := synth.Tiny("llama")
	s.Seed = 3
	path := writeSynth(t, s)
	tokens := []int32{1, 300, 17, 42, 99, 5, 260, 261, 262, 7, 8, 300, 301, 77, 150, 151, 152, 300, 17, 42}
	run := func(t *testing.T, path, weights string) engine.Logits {
		m := openModel(t, path, "", engine.Options{Weights: weights})
		seq := &engine.Seq{Table: &kvcache.Table{}, Tokens: tokens, AllLogits: true}
		out, err := m.Forward(context.Background(), []*engine.Seq{seq})
		require.NoError(t, err)
		return out[0]
	}
	ref := run(t, path, "f32")
	for _, tt := range []struct {
		t       format.Type
		maxKL   float64
		minTop1 float64
	}{
		{format.BF16, 1e-4, 0.9},
		{format.F16, 1e-6, 0.9},
		{format.Q8_0, 1e-3, 0.9},
		{format.F8E4M3Row, 1e-2, 0.7},
		{format.MXF8E4M3, 1e-2, 0.7},
		{format.MXF8E5M2, 3e-2, 0.35},
		{format.Q4_0, 0.08, 0.35},
		{format.NVFP4, 0.1, 0.35},
		{format.MXFP4, 0.15, 0.35},
	} {
		t.Run(tt.t.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "q.gguf")
			st, err := engine.QuantizeFile(path, out, tt.t, nil)
			require.NoError(t, err)
			assert.Equal(t, 2+7*s.Layers, st.Converted, "every matrix converted")
			assert.Equal(t, 1+2*s.Layers, st.Copied, "norms copied")
			f, err := gguf.Open(out)
			require.NoError(t, err)
			ti, ok := f.Tensor("blk.0.ffn_up.weight")
			require.True(t, ok)
			want, mnemo := engine.FileType(tt.t)
			assert.Equal(t, want, ti.Type)
			_, err = f.String(gguf.KeyMnemoTypes)
			assert.Equal(t, mnemo, err == nil, "non-standard types are marked")
			require.NoError(t, f.Close())

			q := run(t, out, "auto")
			kl, top1 := divergence(ref, q)
			t.Logf("%s: KL %.3g, top-1 agreement %.2f", tt.t, kl, top1)
			assert.Less(t, kl, tt.maxKL)
			assert.GreaterOrEqual(t, top1, tt.minTop1)
			// Quantising on load gives the same model as the file.
			onLoad := run(t, path, tt.t.String())
			assert.InDeltaSlice(t, q.Data, onLoad.Data, 1e-4, fmt.Sprintf("%s on load vs from file", tt.t))
		})
	}
}
