//go:build linux

package neuron_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	_ "github.com/mnemo-ai/mnemo/engine/arch/llama" // llama, qwen2, qwen3
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// modelTol bounds max|neuron − cpu| / max|cpu| over each step's logits
// and each KV buffer. The fake computes every op in the CPU kernels'
// float32 order except matmul, which it accumulates in double on exactly
// decoded weights and unrounded activations; the CPU's quantized-weight
// kernels round activations (to bf16 for fp8, to int8 blocks for mxfp4,
// like backendtest's tolerances), so those formats get looser bounds
// (TestQuantizedMatMulExact checks the fake's quantized matmul tightly).
// Measured on amd64: f32 3e-7, fp8 4e-3, mxfp4 1.6e-2.
func modelTol(weights string) float64 {
	switch weights {
	case "f32":
		return 1e-5
	case "fp8":
		return 1e-2
	}
	return 5e-2
}

// step is one forward step of the script: tokens per sequence (0: the
// sequence sits the step out).
type step []int

// script: A prefills 5 (bucket 8), decodes 1 (bucket 1); B prefills 5
// (bucket 8, A's cache must survive); both decode together (M=2, bucket 8);
// A decodes alone again (bucket 1).
var script = []step{{5, 0}, {1, 0}, {0, 5}, {1, 1}, {1, 0}}

var buckets = []int{1, 8, 16}

type runResult struct {
	logits [][]float32 // per step and sequence, all rows concatenated
	kv     [][]byte    // K and V of every layer after the script
}

// runScript opens the model on be and runs the script.
func runScript(t *testing.T, path string, be backend.Backend, opt engine.Options) runResult {
	src, err := model.Open(path)
	require.NoError(t, err)
	defer src.Close()
	opt.Logger = slog.New(slog.DiscardHandler)
	m, err := engine.New(src, be, opt)
	require.NoError(t, err)
	defer func() { require.NoError(t, m.Close()) }()
	seqs := []*engine.Seq{{Table: &kvcache.Table{}, AllLogits: true}, {Table: &kvcache.Table{}, AllLogits: true}}
	var res runResult
	next := int32(1)
	ctx := context.Background()
	for _, st := range script {
		var active []*engine.Seq
		for i, n := range st {
			if n == 0 {
				continue
			}
			toks := make([]int32, n)
			for j := range toks {
				toks[j] = next
				next = (next*7 + 3) % 384
			}
			seqs[i].Tokens = toks
			active = append(active, seqs[i])
		}
		out, err := m.Forward(ctx, active)
		require.NoError(t, err)
		for _, l := range out {
			res.logits = append(res.logits, l.Data)
		}
	}
	kv := m.KV()
	for _, b := range append(append([]backend.Buffer{}, kv.K...), kv.V...) {
		n, err := backend.HostBytes(b.DType(), b.Shape())
		require.NoError(t, err)
		raw := make([]byte, n)
		require.NoError(t, b.Read(raw))
		res.kv = append(res.kv, raw)
	}
	for _, s := range seqs {
		s.Table.Release(kv.Pool)
	}
	return res
}

func decodeKV(raw []byte, dt backend.DType) []float64 {
	if dt == backend.BF16 {
		out := make([]float64, len(raw)/2)
		for i := range out {
			out[i] = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16))
		}
		return out
	}
	out := make([]float64, len(raw)/4)
	for i := range out {
		out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
	}
	return out
}

// relErr returns max|got − want| / max|want|.
func relErr(got, want []float64) float64 {
	var worst, scale float64
	for i := range want {
		worst = max(worst, math.Abs(got[i]-want[i]))
		scale = max(scale, math.Abs(want[i]))
	}
	if scale == 0 {
		return worst
	}
	return worst / scale
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestModelMatchesCPU runs synthetic models through the neuron backend over
// the fake and checks the logits of prefill and decode steps, and the KV
// cache left on the device, against the CPU backend.
func TestModelMatchesCPU(t *testing.T) {
	needFake(t)
	cases := []struct {
		arch, weights string
		kv            backend.DType
	}{
		{"llama", "f32", backend.F32},
		{"qwen2", "f32", backend.BF16},
		{"llama", "fp8", backend.F32},
		{"qwen2", "mxfp4", backend.F32},
		{"qwen3", "f32", backend.F32},
	}
	if testing.Short() {
		cases = cases[:3]
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/weights=%s/kv=%s", c.arch, c.weights, c.kv), func(t *testing.T) {
			s := synth.Tiny(c.arch)
			path := filepath.Join(t.TempDir(), c.arch+".gguf")
			require.NoError(t, synth.WriteFile(path, s))
			opt := engine.Options{Weights: c.weights, KV: c.kv, BlockTokens: 4, MaxBatchTokens: 16, MaxSeqs: 8}

			cb, err := cpu.New(backend.Options{Threads: 1})
			require.NoError(t, err)
			rec := &recorder{Backend: cb, buckets: buckets}
			// The CPU backend would stack Q/K/V and gate/up, which the
			// neuron backend refuses: record the unfused programs it
			// falls back to.
			cpuOpt := opt
			cpuOpt.Unfused = true
			want := runScript(t, path, rec, cpuOpt)
			require.NoError(t, cb.Close())

			nb := openNeuron(t, buckets, rec.specs)
			nrec := &recorder{Backend: nb}
			got := runScript(t, path, nrec, opt)
			require.NoError(t, nb.Close())

			assert.Equal(t, []int{1, 8}, nrec.compiledMs(backend.OpMatMul)[:2], "decode and prefill buckets")
			assert.Contains(t, nrec.compiledMs(backend.OpKVWrite), 1)
			assert.Contains(t, nrec.compiledMs(backend.OpKVWrite), 8)
			require.Len(t, got.logits, len(want.logits))
			tol, worst := modelTol(c.weights), 0.0
			for i := range want.logits {
				e := relErr(f64s(got.logits[i]), f64s(want.logits[i]))
				assert.Less(t, e, tol, "logits %d", i)
				worst = max(worst, e)
			}
			t.Logf("max relative logits difference %.2g (tolerance %g)", worst, tol)
			require.Len(t, got.kv, len(want.kv))
			kvTol := tol
			if c.kv == backend.BF16 {
				kvTol = max(tol, 1e-2) // one bf16 rounding step either way
			}
			for i := range want.kv {
				w := decodeKV(want.kv[i], c.kv)
				g := decodeKV(got.kv[i], c.kv)
				assert.Less(t, relErr(g, w), kvTol, "kv buffer %d", i)
				assert.NotEqual(t, make([]float64, len(w)), w, "kv buffer %d was written", i)
			}
		})
	}
}
