package generate_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	_ "github.com/mnemo-ai/mnemo/engine/arch/llama"
	"github.com/mnemo-ai/mnemo/engine/generate"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
	"github.com/mnemo-ai/mnemo/kvcache"
)

type fixture struct {
	m   engine.Model
	tok *tokenizer.Tokenizer
}

func setup(t *testing.T) fixture {
	path := filepath.Join(t.TempDir(), "m.gguf")
	require.NoError(t, synth.WriteFile(path, synth.Tiny("llama")))
	src, err := model.Open(path)
	require.NoError(t, err)
	be, err := cpu.New(backend.Options{})
	require.NoError(t, err)
	m, err := engine.New(src, be, engine.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	tok, err := tokenizer.FromGGUF(src.(*model.GGUFSource).File())
	require.NoError(t, err)
	t.Cleanup(func() { m.Close(); be.Close(); src.Close() })
	return fixture{m, tok}
}

func (f fixture) gen(t *testing.T, seq *engine.Seq, hist *[]int32, prompt []int32, opts sample.Options) (string, generate.Stats, error) {
	smp, err := sample.New(opts, f.m.Config().VocabSize)
	require.NoError(t, err)
	var out strings.Builder
	st, err := generate.Run(context.Background(), f.m, f.tok, generate.Request{
		Seq: seq, Prompt: prompt, History: hist, Sampler: smp, Options: opts, Context: 200,
		Emit: func(s string) error { out.WriteString(s); return nil },
	})
	return out.String(), st, err
}

// TestResumeEqualsOneCall: generating 6 tokens, then 6 more from the same
// sequence with no new prompt, gives the tokens one call of 12 gives, and
// the cache holds every token but the last sampled one.
func TestResumeEqualsOneCall(t *testing.T) {
	f := setup(t)
	prompt := f.tok.Encode("the cat", tokenizer.EncodeOptions{})
	greedy := sample.Options{MaxTokens: 12}
	var h1 []int32
	s1 := &engine.Seq{Table: &kvcache.Table{}}
	text1, st, err := f.gen(t, s1, &h1, prompt, greedy)
	require.NoError(t, err)
	assert.Equal(t, 12, st.GenTokens)
	assert.Equal(t, generate.StopLength, st.Why)
	assert.Equal(t, len(h1)-1, s1.Table.Len, "the last sampled token waits for the next call")

	var h2 []int32
	s2 := &engine.Seq{Table: &kvcache.Table{}}
	half := greedy
	half.MaxTokens = 6
	a, _, err := f.gen(t, s2, &h2, prompt, half)
	require.NoError(t, err)
	b, st2, err := f.gen(t, s2, &h2, nil, half)
	require.NoError(t, err)
	assert.Equal(t, 1, st2.PromptTokens, "only the pending token is prefilled")
	assert.Equal(t, h1, h2)
	assert.Equal(t, text1, a+b)
}

func TestStops(t *testing.T) {
	f := setup(t)
	prompt := f.tok.Encode("hello", tokenizer.EncodeOptions{})
	var h []int32
	full, _, err := f.gen(t, &engine.Seq{Table: &kvcache.Table{}}, &h, prompt, sample.Options{MaxTokens: 16})
	require.NoError(t, err)
	require.Greater(t, len(full), 6)
	stop := full[len(full)/2 : len(full)/2+3]
	want := full[:strings.Index(full, stop)]
	h = nil
	got, st, err := f.gen(t, &engine.Seq{Table: &kvcache.Table{}}, &h, prompt, sample.Options{MaxTokens: 16, Stop: []string{stop}})
	require.NoError(t, err)
	assert.Equal(t, want, got, "text up to the stop sequence, without it")
	assert.Equal(t, generate.StopString, st.Why)

	// An end token stops at once; its text is not emitted.
	h = nil
	bias := map[int32]float32{f.tok.EOS(): 1000}
	got, st, err = f.gen(t, &engine.Seq{Table: &kvcache.Table{}}, &h, prompt, sample.Options{MaxTokens: 16, LogitBias: bias})
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Equal(t, 0, st.GenTokens)
	assert.Equal(t, generate.StopEnd, st.Why)
}

func TestEmitErrorAndCancel(t *testing.T) {
	f := setup(t)
	prompt := f.tok.Encode("hello", tokenizer.EncodeOptions{})
	smp, err := sample.New(sample.Options{}, f.m.Config().VocabSize)
	require.NoError(t, err)
	boom := errors.New("client went away")
	var h []int32
	seq := &engine.Seq{Table: &kvcache.Table{}}
	_, err = generate.Run(context.Background(), f.m, f.tok, generate.Request{
		Seq: seq, Prompt: prompt, History: &h, Sampler: smp, Options: sample.Options{MaxTokens: 50}, Context: 200,
		Emit: func(string) error { return boom },
	})
	assert.ErrorIs(t, err, boom)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = generate.Run(ctx, f.m, f.tok, generate.Request{
		Seq: &engine.Seq{Table: &kvcache.Table{}}, Prompt: prompt, History: new([]int32), Sampler: smp,
		Options: sample.Options{MaxTokens: 50}, Context: 200, Emit: func(string) error { return nil },
	})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = generate.Run(context.Background(), f.m, f.tok, generate.Request{
		Seq: &engine.Seq{Table: &kvcache.Table{}}, History: new([]int32), Sampler: smp, Context: 200,
		Emit: func(string) error { return nil },
	})
	assert.Error(t, err, "nothing to prefill")
}
