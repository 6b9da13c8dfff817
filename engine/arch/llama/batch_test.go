package llama_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/kernels"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// TestBatchInvariance runs three sequences alone and then together in
// mixed steps (a prefill chunk beside decode tokens) and requires the same
// logits.
func TestBatchInvariance(t *testing.T) {
	s := synth.Tiny("qwen2")
	path := writeSynth(t, s)
	prompts := [][]int32{{1, 300, 17, 42, 99}, {1, 5, 6}, {1, 260, 261, 262, 263, 264, 265}}
	for _, impl := range kernels.Impls() {
		t.Run(impl.Name, func(t *testing.T) {
			m := openModel(t, path, impl.Name, engine.Options{Weights: "f32", BlockTokens: 4})
			ctx := context.Background()
			alone := make([][]float32, len(prompts))
			for i, p := range prompts {
				seq := &engine.Seq{Table: &kvcache.Table{}, Tokens: p, AllLogits: true}
				out, err := m.Forward(ctx, []*engine.Seq{seq})
				require.NoError(t, err)
				alone[i] = out[0].Data
				seq.Table.Release(m.KV().Pool)
			}
			// Together: step 1 prefills seq 0 fully and the first 2 tokens
			// of seqs 1 and 2; then seq 1 and 2 continue in steps while 0
			// is idle.
			seqs := make([]*engine.Seq, 3)
			got := make([][]float32, 3)
			for i := range seqs {
				seqs[i] = &engine.Seq{Table: &kvcache.Table{}, AllLogits: true}
			}
			plan := [][3]int{{5, 2, 2}, {0, 1, 3}, {0, 0, 2}}
			at := [3]int{}
			for _, step := range plan {
				var batch []*engine.Seq
				var who []int
				for i, n := range step {
					if n > 0 {
						seqs[i].Tokens = prompts[i][at[i] : at[i]+n]
						batch = append(batch, seqs[i])
						who = append(who, i)
					}
				}
				out, err := m.Forward(ctx, batch)
				require.NoError(t, err)
				for j, i := range who {
					got[i] = append(got[i], out[j].Data...)
					at[i] += step[i]
				}
			}
			for i := range prompts {
				require.Len(t, got[i], len(alone[i]))
				assert.InDeltaSlice(t, alone[i], got[i], 1e-4, "sequence %d", i)
			}
		})
	}
}

func TestForwardRejectsBadSteps(t *testing.T) {
	s := synth.Tiny("llama")
	path := writeSynth(t, s)
	m := openModel(t, path, "generic", engine.Options{Weights: "f32", BlockTokens: 4, ContextLength: 16, KVTokens: 24, MaxBatchTokens: 16, MaxSeqs: 2})
	ctx := context.Background()
	tbl := func() *kvcache.Table { return &kvcache.Table{} }
	for _, tt := range []struct {
		name string
		seqs []*engine.Seq
		want error
	}{
		{"no sequences", nil, nil},
		{"empty tokens", []*engine.Seq{{Table: tbl()}}, nil},
		{"no table", []*engine.Seq{{Tokens: []int32{1}}}, nil},
		{"token past vocab", []*engine.Seq{{Table: tbl(), Tokens: []int32{1, int32(s.Vocab)}}}, nil},
		{"negative token", []*engine.Seq{{Table: tbl(), Tokens: []int32{-1}}}, nil},
		{"too many tokens", []*engine.Seq{{Table: tbl(), Tokens: make([]int32, 10)}, {Table: tbl(), Tokens: make([]int32, 7)}}, nil},
		{"too many sequences", []*engine.Seq{{Table: tbl(), Tokens: []int32{1}}, {Table: tbl(), Tokens: []int32{1}}, {Table: tbl(), Tokens: []int32{1}}}, nil},
		{"context exceeded", []*engine.Seq{{Table: &kvcache.Table{Len: 12}, Tokens: make([]int32, 5)}}, engine.ErrContextFull},
	} {
		t.Run(tt.name, func(t *testing.T) {
			free := m.KV().Pool.Free()
			_, err := m.Forward(ctx, tt.seqs)
			require.Error(t, err)
			if tt.want != nil {
				assert.ErrorIs(t, err, tt.want)
			}
			assert.Equal(t, free, m.KV().Pool.Free(), "a refused step reserves nothing")
		})
	}
	// The cache holds 24 tokens: two sequences of 8 fit, a third does not,
	// and the failed step leaves the others untouched.
	a, b, c := &engine.Seq{Table: tbl(), Tokens: make([]int32, 8)}, &engine.Seq{Table: tbl(), Tokens: make([]int32, 8)}, &engine.Seq{Table: tbl(), Tokens: make([]int32, 8)}
	_, err := m.Forward(ctx, []*engine.Seq{a, b})
	require.NoError(t, err)
	c.Tokens = make([]int32, 8)
	a.Tokens = make([]int32, 4)
	_, err = m.Forward(ctx, []*engine.Seq{a, c})
	require.ErrorIs(t, err, kvcache.ErrCacheFull)
	assert.Equal(t, 8, a.Table.Len, "a failed step does not advance any sequence")
	assert.Len(t, a.Table.Blocks, 2, "blocks reserved for the failed step are returned")
	assert.Equal(t, 0, c.Table.Len)
}

func TestLoadRejectsBadModels(t *testing.T) {
	be, err := cpu.New(backend.Options{})
	require.NoError(t, err)
	defer be.Close()
	dir := t.TempDir()
	s := synth.Tiny("llama")

	// A file without one tensor, and one with a tensor of the wrong shape.
	good := writeSynth(t, s)
	f, err := gguf.Open(good)
	require.NoError(t, err)
	defer f.Close()
	rewrite := func(name string, edit func(ti gguf.TensorInfo, data []byte) (gguf.TensorInfo, []byte, bool)) string {
		w := gguf.NewWriter()
		for _, kv := range f.KVs() {
			require.NoError(t, w.AddKV(kv.Key, kv.Value))
		}
		for _, ti := range f.Tensors() {
			data, err := f.TensorData(ti.Name)
			require.NoError(t, err)
			keep := true
			if ti.Name == "blk.1.ffn_up.weight" {
				ti, data, keep = edit(ti, data)
			}
			if keep {
				require.NoError(t, w.AddTensor(ti.Name, ti.Type, ti.Dims, data))
			}
		}
		p := filepath.Join(dir, name)
		require.NoError(t, w.WriteFile(p))
		return p
	}
	missing := rewrite("missing.gguf", func(ti gguf.TensorInfo, d []byte) (gguf.TensorInfo, []byte, bool) { return ti, d, false })
	wrong := rewrite("wrong.gguf", func(ti gguf.TensorInfo, d []byte) (gguf.TensorInfo, []byte, bool) {
		ti.Dims = []uint64{ti.Dims[1], ti.Dims[0]}
		return ti, d, true
	})
	for _, tt := range []struct {
		path, want string
	}{
		{missing, "blk.1.ffn_up.weight"},
		{wrong, "blk.1.ffn_up.weight"},
	} {
		src, err := model.Open(tt.path)
		require.NoError(t, err)
		_, err = engine.New(src, be, engine.Options{Logger: quiet})
		require.Error(t, err)
		assert.Contains(t, err.Error(), tt.want)
		src.Close()
	}

	// Options that cannot work are refused before loading.
	src, err := model.Open(good)
	require.NoError(t, err)
	defer src.Close()
	for _, opt := range []engine.Options{
		{ContextLength: s.Context + 1},
		{KV: backend.I32},
		{Weights: "int3"},
		{BlockTokens: -1},
	} {
		opt.Logger = quiet
		_, err := engine.New(src, be, opt)
		assert.Error(t, err, "%+v", opt)
	}
	_, err = os.Stat(good)
	require.NoError(t, err)
}

func TestUnknownArchitecture(t *testing.T) {
	var src fakeSource
	src.cfg.Architecture = "gpt-j"
	_, err := engine.New(src, nil, engine.Options{})
	assert.True(t, errors.Is(err, engine.ErrUnknownArch), "%v", err)
	assert.Contains(t, err.Error(), "gpt-j")
}

var quiet = slog.New(slog.DiscardHandler)

type fakeSource struct{ cfg model.Config }

func (f fakeSource) Config() model.Config { return f.cfg }
func (f fakeSource) Tensor(string) (model.Tensor, error) {
	return model.Tensor{}, model.ErrTensorNotFound
}
func (f fakeSource) Tensors() []model.Tensor { return nil }
func (f fakeSource) Close() error            { return nil }
