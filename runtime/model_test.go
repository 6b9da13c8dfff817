package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	_ "github.com/mnemo-ai/mnemo/engine/arch/all"
	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
	"github.com/mnemo-ai/mnemo/runtime"
)

// recorder wraps a Model, counting the tokens fed and keeping the logits
// of the last step.
type recorder struct {
	engine.Model
	mu   sync.Mutex
	fed  int
	last []float32
}

func (r *recorder) Forward(ctx context.Context, seqs []*engine.Seq) ([]engine.Logits, error) {
	out, err := r.Model.Forward(ctx, seqs)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		for _, s := range seqs {
			r.fed += len(s.Tokens)
		}
		l := out[len(out)-1]
		r.last = append(r.last[:0], l.Row(l.Rows-1)...)
	}
	return out, err
}

func (r *recorder) Fed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fed
}

func (r *recorder) Last() []float32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]float32(nil), r.last...)
}

// tinyModel opens synth.Tiny("llama") on the CPU backend.
func tinyModel(t *testing.T) (*recorder, *tokenizer.Tokenizer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, synth.WriteFile(path, synth.Tiny("llama")))
	src, err := model.Open(path)
	require.NoError(t, err)
	be, err := cpu.New(backend.Options{})
	require.NoError(t, err)
	m, err := engine.New(src, be, engine.Options{Weights: "f32", BlockTokens: 4, KVTokens: 4096, MaxSeqs: 16,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	gs, ok := src.(*model.GGUFSource)
	require.True(t, ok)
	tok, err := tokenizer.FromGGUF(gs.File())
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, m.Close())
		assert.NoError(t, be.Close())
		assert.NoError(t, src.Close())
	})
	return &recorder{Model: m}, tok
}

func prompts(n int) [][]int32 {
	out := make([][]int32, n)
	for i := range out {
		p := []int32{1}
		for j := range 3 + 5*i {
			p = append(p, int32(3+(i*31+j*17)%300))
		}
		out[i] = p
	}
	return out
}

// TestBatchInvarianceEndToEnd generates greedily for several sessions,
// first one at a time, then all at once through the scheduler (prefill
// chunks beside decode tokens), and requires the same tokens.
func TestBatchInvarianceEndToEnd(t *testing.T) {
	m, _ := tinyModel(t)
	const n, gen = 6, 12
	ps := prompts(n)
	// No tokenizer: no end token cuts a generation short.
	rt := newRT(t, m, runtime.Options{MaxBatchTokens: 24, PrefillChunk: 5, MaxSeqs: 16})
	alone := make([][]int32, n)
	for i, p := range ps {
		s := open(t, rt, fmt.Sprint("alone", i))
		require.NoError(t, s.Append(t.Context(), p))
		alone[i], _, _, _ = runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: gen}))
		require.NoError(t, s.Close())
	}
	aloneSteps := rt.Stats().Steps
	together := make([][]int32, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	var sessions []*runtime.Session
	for i := range ps {
		sessions = append(sessions, open(t, rt, fmt.Sprint("together", i)))
	}
	runtime.Gather(rt, n) // every Append is queued before the first step
	for i, p := range ps {
		s := sessions[i]
		wg.Go(func() {
			if errs[i] = s.Append(t.Context(), p); errs[i] != nil {
				return
			}
			together[i], _, _, errs[i] = runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: gen}))
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		assert.Len(t, alone[i], gen)
		assert.Equal(t, alone[i], together[i], "session %d", i)
	}
	assert.Less(t, rt.Stats().Steps-aloneSteps, aloneSteps, "the concurrent run batched its steps")
}

// TestModelFollowUpRewindFork checks on the real engine that a follow-up
// prefills only its new tokens, that rewinding and re-appending gives the
// same logits, and that a fork continues exactly like its parent.
func TestModelFollowUpRewindFork(t *testing.T) {
	m, tok := tinyModel(t)
	rt := newRT(t, m, runtime.Options{Tokenizer: tok})
	s := open(t, rt, "s")
	p := prompts(3)[2]
	require.NoError(t, s.Append(t.Context(), p))
	assert.Equal(t, len(p), m.Fed())
	want := m.Last()

	more := []int32{40, 41, 42}
	require.NoError(t, s.Append(t.Context(), more))
	assert.Equal(t, len(p)+3, m.Fed(), "the follow-up fed only its tokens")
	afterMore := m.Last()

	for _, k := range []int{len(p) - 1, len(p) - 5, 1} {
		require.NoError(t, s.Rewind(t.Context(), k))
		fed := m.Fed()
		require.NoError(t, s.Append(t.Context(), p[k:]))
		assert.Equal(t, len(p)-k, m.Fed()-fed)
		assert.InDeltaSlice(t, want, m.Last(), 1e-4, "rewind to %d", k)
	}
	f, err := s.Fork(t.Context(), "f")
	require.NoError(t, err)
	require.NoError(t, f.Append(t.Context(), more))
	assert.InDeltaSlice(t, afterMore, m.Last(), 1e-4, "fork")
	require.NoError(t, s.Append(t.Context(), more))
	assert.InDeltaSlice(t, afterMore, m.Last(), 1e-4, "parent after fork")
	a := gen(t, s, 6)
	b := gen(t, f, 6)
	assert.Equal(t, a, b)
	require.NoError(t, rt.Delete(t.Context(), "s"))
	require.NoError(t, rt.Delete(t.Context(), "f"))
	assert.Equal(t, rt.Pool().Blocks(), rt.Pool().Free())
}

// TestChatTurns drives a two-turn chat: the second turn reuses the first
// turn's cache and generated text streams as events.
func TestChatTurns(t *testing.T) {
	m, tok := tinyModel(t)
	rt := newRT(t, m, runtime.Options{Tokenizer: tok})
	s := open(t, rt, "chat")
	require.NoError(t, s.AppendMessages(t.Context(), chat.Message{Role: "user", Content: "hello there"}))
	first := s.Len()
	ids, text, res, err := runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: 8}))
	require.NoError(t, err)
	assert.Equal(t, len(ids), res.GenTokens)
	assert.Equal(t, tok.Decode(ids), text)
	msgs := s.Messages()
	require.Len(t, msgs, 2)
	assert.Equal(t, "assistant", msgs[1].Role)
	assert.Equal(t, text, msgs[1].Content)

	fed := m.Fed()
	require.NoError(t, s.AppendMessages(t.Context(), chat.Message{Role: "user", Content: "and again"}))
	assert.Less(t, m.Fed()-fed, s.Len()-first, "the second turn reused the first turn's cache")
	_, _, res, err = runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: 4}))
	require.NoError(t, err)
	assert.Positive(t, res.CachedTokens)
}
