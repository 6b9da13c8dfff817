package runtime_test

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/kvcache"
	"github.com/mnemo-ai/mnemo/runtime"
)

func newRT(t *testing.T, m engine.Model, opt runtime.Options) *runtime.Runtime {
	t.Helper()
	rt, err := runtime.New(m, opt)
	require.NoError(t, err)
	t.Cleanup(func() { rt.Close() })
	return rt
}

func open(t *testing.T, rt *runtime.Runtime, id string) *runtime.Session {
	t.Helper()
	s, err := rt.Open(t.Context(), id, runtime.SessionOptions{})
	require.NoError(t, err)
	return s
}

func gen(t *testing.T, s *runtime.Session, n int) []int32 {
	t.Helper()
	ids, _, res, err := runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: n}))
	require.NoError(t, err)
	require.Len(t, ids, n)
	assert.Equal(t, runtime.FinishLength, res.Finish)
	return ids
}

func seqTokens(n, base int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32((base + 7*i) % 90)
	}
	return out
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"chat-42_x.y:z", true},
		{strings.Repeat("a", runtime.MaxIDLen), true},
		{"", false},
		{"../x", false},
		{"a/b", false},
		{"..", false},
		{".hidden", false},
		{"a\x00b", false},
		{"a b", false},
		{"é", false},
		{strings.Repeat("a", runtime.MaxIDLen+1), false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.id), func(t *testing.T) {
			err := runtime.ValidateID(tt.id)
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, runtime.ErrInvalidID)
			}
		})
	}
}

func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"a", "../x", "a/b", "", "x\x00", "ok.id:1", strings.Repeat("z", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if runtime.ValidateID(id) != nil {
			return
		}
		assert.NotEmpty(t, id)
		assert.LessOrEqual(t, len(id), runtime.MaxIDLen)
		assert.NotContains(t, id, "/")
		assert.NotContains(t, id, "\\")
		assert.NotContains(t, id, "\x00")
		assert.NotEqual(t, byte('.'), id[0])
	})
}

func TestOpenRejectsBadIDs(t *testing.T) {
	rt := newRT(t, newFake(64, 4), runtime.Options{})
	for _, id := range []string{"", "../x", "a\x00", strings.Repeat("x", 1000)} {
		_, err := rt.Open(t.Context(), id, runtime.SessionOptions{})
		assert.ErrorIs(t, err, runtime.ErrInvalidID)
		assert.ErrorIs(t, rt.Delete(t.Context(), id), runtime.ErrInvalidID)
	}
	s := open(t, rt, "ok")
	_, err := s.Fork(t.Context(), "../evil")
	assert.ErrorIs(t, err, runtime.ErrInvalidID)
}

// TestFollowUpPrefillsOnlyNewTokens counts the tokens fed to the model.
func TestFollowUpPrefillsOnlyNewTokens(t *testing.T) {
	m := newFake(64, 4)
	rt := newRT(t, m, runtime.Options{})
	s := open(t, rt, "s")
	prompt := seqTokens(10, 1)
	require.NoError(t, s.Append(t.Context(), prompt))
	assert.Equal(t, 10, m.Fed())
	assert.Equal(t, 10, s.Cached())

	// The first token comes from the logits Append kept: 5 tokens cost 4
	// decode steps (the last sampled token is not fed yet).
	got := gen(t, s, 5)
	assert.Equal(t, m.greedy(prompt, 5), got)
	assert.Equal(t, 14, m.Fed())

	// A follow-up feeds the pending last token and its own 3.
	more := seqTokens(3, 50)
	require.NoError(t, s.Append(t.Context(), more))
	assert.Equal(t, 18, m.Fed())
	hist := append(append(append([]int32(nil), prompt...), got...), more...)
	assert.Equal(t, hist, s.Tokens())

	ids, _, res, err := runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: 3}))
	require.NoError(t, err)
	assert.Equal(t, m.greedy(hist, 3), ids)
	assert.Equal(t, len(hist), res.CachedTokens)
	assert.Zero(t, res.PromptTokens)
	assert.Equal(t, 20, m.Fed())

	// Generate straight after Generate feeds only the pending token.
	hist = append(hist, ids...)
	ids2 := gen(t, s, 2)
	assert.Equal(t, m.greedy(hist, 2), ids2)
	assert.Equal(t, 22, m.Fed())
}

func TestGenerateOnEmptySession(t *testing.T) {
	rt := newRT(t, newFake(64, 4), runtime.Options{})
	s := open(t, rt, "empty")
	_, _, _, err := runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: 2}))
	assert.ErrorContains(t, err, "empty")
	assert.ErrorContains(t, s.Append(t.Context(), []int32{1000}), "outside the vocabulary")
}

func TestAppendRejectsBadTokens(t *testing.T) {
	m := newFake(64, 4)
	rt := newRT(t, m, runtime.Options{ContextLength: 20})
	s := open(t, rt, "s")
	assert.ErrorContains(t, s.Append(t.Context(), []int32{5, 97}), "outside the vocabulary")
	assert.ErrorIs(t, s.Append(t.Context(), seqTokens(21, 0)), engine.ErrContextFull)
	assert.Zero(t, s.Len())
	require.NoError(t, s.Append(t.Context(), seqTokens(18, 0)))
	// Generation stops at the context length.
	ids, _, res, err := runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{}))
	require.NoError(t, err)
	assert.Len(t, ids, 2)
	assert.Equal(t, runtime.FinishLength, res.Finish)
	_, _, _, err = runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{}))
	assert.ErrorIs(t, err, engine.ErrContextFull)
	assert.Equal(t, 19, m.Fed())
}

// TestBusy holds a generation whose consumer is not reading and checks
// that every other operation on the session fails with ErrBusy.
func TestBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newFake(64, 4)
		rt, err := runtime.New(m, runtime.Options{EventBuffer: 2})
		require.NoError(t, err)
		defer rt.Close()
		s, err := rt.Open(t.Context(), "s", runtime.SessionOptions{})
		require.NoError(t, err)
		require.NoError(t, s.Append(t.Context(), seqTokens(5, 3)))
		first := make(chan struct{})
		release := make(chan struct{})
		var got []int32
		var genErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			for ev, err := range s.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: 6}) {
				if ev.Done {
					genErr = err
					break
				}
				got = append(got, ev.Token)
				if len(got) == 1 {
					close(first)
					<-release
				}
			}
		})
		<-first
		synctest.Wait() // the loop is idle: the stream is full
		_, _, _, err = runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: 1}))
		assert.ErrorIs(t, err, runtime.ErrBusy)
		assert.ErrorIs(t, s.Append(t.Context(), []int32{1}), runtime.ErrBusy)
		assert.ErrorIs(t, s.Rewind(t.Context(), 0), runtime.ErrBusy)
		_, err = s.Fork(t.Context(), "f")
		assert.ErrorIs(t, err, runtime.ErrBusy)
		// Other sessions are not held up by the stalled consumer.
		o, err := rt.Open(t.Context(), "other", runtime.SessionOptions{})
		require.NoError(t, err)
		require.NoError(t, o.Append(t.Context(), seqTokens(4, 9)))
		ids, _, _, err := runtime.Collect(o.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: 3}))
		require.NoError(t, err)
		assert.Equal(t, m.greedy(seqTokens(4, 9), 3), ids)
		close(release)
		wg.Wait()
		require.NoError(t, genErr)
		assert.Equal(t, m.greedy(seqTokens(5, 3), 6), got)
		require.NoError(t, s.Append(t.Context(), []int32{1}), "idle again")
	})
}

func TestCancelMidGeneration(t *testing.T) {
	m := newFake(64, 4)
	rt := newRT(t, m, runtime.Options{})
	s := open(t, rt, "s")
	prompt := seqTokens(6, 2)
	require.NoError(t, s.Append(t.Context(), prompt))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []int32
	var final error
	for ev, err := range s.Generate(ctx, runtime.GenerateOptions{}) {
		if ev.Done {
			final = err
			break
		}
		got = append(got, ev.Token)
		if len(got) == 3 {
			cancel()
		}
	}
	assert.ErrorIs(t, final, context.Canceled)
	require.GreaterOrEqual(t, len(got), 3)
	assert.Equal(t, m.greedy(prompt, len(got)), got)
	assert.Equal(t, append(prompt, got...), s.Tokens(), "every streamed token is in the history")

	// Breaking out of the loop cancels too, and leaves the session idle.
	n := 0
	for ev := range s.Generate(t.Context(), runtime.GenerateOptions{}) {
		require.False(t, ev.Done)
		n++
		if n == 2 {
			break
		}
	}
	hist := s.Tokens()
	assert.Equal(t, append(append(prompt, got...), m.greedy(append(prompt, got...), len(hist)-len(prompt)-len(got))...), hist)
	ids := gen(t, s, 2)
	assert.Equal(t, m.greedy(hist, 2), ids)
}

func TestForwardErrorFailsOnlyItsStep(t *testing.T) {
	m := newFake(64, 4)
	m.fail = func(seqs []*engine.Seq) error {
		for _, s := range seqs {
			for _, id := range s.Tokens {
				if id == 96 {
					return errInjected
				}
			}
		}
		return nil
	}
	rt := newRT(t, m, runtime.Options{})
	bad := open(t, rt, "bad")
	good := open(t, rt, "good")
	assert.ErrorIs(t, bad.Append(t.Context(), []int32{1, 2, 96}), errInjected)
	assert.Equal(t, 0, bad.Cached(), "a failed step changes no table")
	require.NoError(t, good.Append(t.Context(), seqTokens(5, 1)))
	assert.Equal(t, m.greedy(seqTokens(5, 1), 4), gen(t, good, 4))
	require.NoError(t, bad.Rewind(t.Context(), 2))
	require.NoError(t, bad.Append(t.Context(), []int32{3}))
	assert.Equal(t, m.greedy([]int32{1, 2, 3}, 2), gen(t, bad, 2))
}

func TestCacheFull(t *testing.T) {
	m := newFake(4, 4) // 16 token slots
	rt := newRT(t, m, runtime.Options{})
	s := open(t, rt, "s")
	err := s.Append(t.Context(), seqTokens(20, 0))
	assert.ErrorIs(t, err, kvcache.ErrCacheFull)
	assert.Equal(t, 16, s.Cached(), "prefill stops where the cache does")
	require.NoError(t, rt.Delete(t.Context(), "s"))
	assert.Equal(t, 4, m.kv.Pool.Free())
}

// TestForkSharesBlocks forks a session whose last block is partly filled;
// both branches continue, each as if alone (the fake panics on a write
// into a shared block and reads tokens back from the blocks).
func TestForkSharesBlocks(t *testing.T) {
	m := newFake(64, 4)
	rt := newRT(t, m, runtime.Options{})
	a := open(t, rt, "a")
	prompt := seqTokens(10, 5)
	require.NoError(t, a.Append(t.Context(), prompt))
	free := m.kv.Pool.Free()
	b, err := a.Fork(t.Context(), "b")
	require.NoError(t, err)
	assert.Equal(t, free, m.kv.Pool.Free(), "a fork allocates nothing")
	assert.Equal(t, prompt, b.Tokens())
	assert.Same(t, b, rt.Session("b"))
	_, err = a.Fork(t.Context(), "b")
	assert.ErrorIs(t, err, runtime.ErrExists)

	fed := m.Fed()
	require.NoError(t, a.Append(t.Context(), []int32{1}))
	require.NoError(t, b.Append(t.Context(), []int32{2}))
	// Each branch recomputed the 2 tokens of the shared partial block
	// (only the first writer needs to; the second then owns it alone).
	assert.LessOrEqual(t, m.Fed()-fed, 2+2+1)
	ga, gb := gen(t, a, 6), gen(t, b, 6)
	assert.Equal(t, m.greedy(append(prompt[:10:10], 1), 6), ga)
	assert.Equal(t, m.greedy(append(prompt[:10:10], 2), 6), gb)
	assert.NotEqual(t, ga, gb)

	require.NoError(t, rt.Delete(t.Context(), "a"))
	assert.Equal(t, m.greedy(append(append(prompt[:10:10], 2), gb...), 3), gen(t, b, 3), "b survives a's deletion")
	require.NoError(t, b.Close())
	assert.Equal(t, m.kv.Pool.Blocks(), m.kv.Pool.Free())
}

func TestRewindThenReappend(t *testing.T) {
	m := newFake(64, 4)
	rt := newRT(t, m, runtime.Options{})
	s := open(t, rt, "s")
	prompt := seqTokens(13, 4)
	require.NoError(t, s.Append(t.Context(), prompt))
	want := gen(t, s, 5)
	for _, k := range []int{13, 12, 8, 7, 0} {
		require.NoError(t, s.Rewind(t.Context(), k))
		assert.Equal(t, prompt[:k], s.Tokens())
		fed := m.Fed()
		require.NoError(t, s.Append(t.Context(), prompt[k:]))
		assert.Equal(t, 13-k, m.Fed()-fed, "rewind to %d re-feeds only the cut", k)
		assert.Equal(t, want, gen(t, s, 5), "rewind to %d", k)
	}
	assert.Error(t, s.Rewind(t.Context(), 1000))
	assert.Error(t, s.Rewind(t.Context(), -1))
}

func TestDeleteReleasesEveryBlock(t *testing.T) {
	m := newFake(256, 4)
	store := runtime.NewMemoryStore()
	rt := newRT(t, m, runtime.Options{Store: store})
	var all []string
	for i := range 4 {
		id := fmt.Sprint("s", i)
		s := open(t, rt, id)
		require.NoError(t, s.Append(t.Context(), seqTokens(9+i*5, i)))
		gen(t, s, 3)
		f, err := s.Fork(t.Context(), id+"-fork")
		require.NoError(t, err)
		require.NoError(t, f.Append(t.Context(), []int32{int32(i)}))
		all = append(all, id, id+"-fork")
	}
	require.NoError(t, rt.Session("s0").Close())
	assert.Equal(t, 1, store.Len())
	// A generation in flight on a deleted session ends with
	// ErrSessionClosed.
	s1 := rt.Session("s1")
	var final error
	for ev, err := range s1.Generate(t.Context(), runtime.GenerateOptions{}) {
		if ev.Done {
			final = err
			break
		}
		require.NoError(t, rt.Delete(t.Context(), "s1"))
	}
	assert.ErrorIs(t, final, runtime.ErrSessionClosed)
	assert.ErrorIs(t, s1.Append(t.Context(), []int32{1}), runtime.ErrSessionClosed)
	for _, id := range all {
		require.NoError(t, rt.Delete(t.Context(), id))
	}
	assert.Equal(t, m.kv.Pool.Blocks(), m.kv.Pool.Free())
	assert.Zero(t, store.Len())
	assert.Empty(t, rt.Sessions())
}

// TestCloseWithActiveStreams closes the runtime under running
// generations: each ends with ErrClosed, the sessions are saved, every
// block is released and no goroutine is left.
func TestCloseWithActiveStreams(t *testing.T) {
	before := goruntime.NumGoroutine()
	m := newFake(256, 4)
	store := runtime.NewMemoryStore()
	rt, err := runtime.New(m, runtime.Options{Store: store, EventBuffer: 2})
	require.NoError(t, err)
	const n = 5
	started := make(chan struct{}, n)
	proceed := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		s, err := rt.Open(t.Context(), fmt.Sprint("s", i), runtime.SessionOptions{})
		require.NoError(t, err)
		require.NoError(t, s.Append(t.Context(), seqTokens(3+i, i)))
		go func() {
			k := 0
			for ev, err := range s.Generate(context.Background(), runtime.GenerateOptions{}) {
				if ev.Done {
					errs <- err
					return
				}
				if k++; k == 2 {
					started <- struct{}{}
					<-proceed // hold the stream: it cannot finish before Close
				}
			}
		}()
	}
	for range n {
		<-started
	}
	require.NoError(t, rt.Close())
	close(proceed)
	for range n {
		assert.ErrorIs(t, <-errs, runtime.ErrClosed)
	}
	assert.Equal(t, n, store.Len())
	assert.Equal(t, m.kv.Pool.Blocks(), m.kv.Pool.Free())
	_, err = rt.Open(t.Context(), "late", runtime.SessionOptions{})
	assert.ErrorIs(t, err, runtime.ErrClosed)
	require.NoError(t, rt.Close(), "idempotent")
	after := goruntime.NumGoroutine()
	for i := 0; i < 200 && after > before; i++ {
		time.Sleep(time.Millisecond)
		after = goruntime.NumGoroutine()
	}
	assert.LessOrEqual(t, after, before, "goroutines leaked")
}

// TestStoreRoundTrip closes a session mid-conversation and reopens it from
// the store (which keeps no KV): the continuation, sampler randomness
// included, equals a conversation that was never interrupted.
func TestStoreRoundTrip(t *testing.T) {
	so := runtime.SessionOptions{Tenant: "acme", Sampling: sample.Options{Temperature: 1.5, Seed: 7}}
	run := func(interrupt bool) []int32 {
		m := newFake(128, 4)
		store := runtime.NewMemoryStore()
		rt := newRT(t, m, runtime.Options{Store: store, Fingerprint: "fake-1"})
		s, err := rt.Open(t.Context(), "conv", so)
		require.NoError(t, err)
		require.NoError(t, s.Append(t.Context(), seqTokens(7, 1)))
		gen(t, s, 4)
		if interrupt {
			require.NoError(t, s.Close())
			assert.ErrorIs(t, s.Close(), runtime.ErrSessionClosed)
			assert.Nil(t, rt.Session("conv"))
			s, err = rt.Open(t.Context(), "conv", runtime.SessionOptions{})
			require.NoError(t, err)
			assert.Equal(t, "acme", s.Meta().Tenant)
			assert.Equal(t, "fake-1", s.Meta().Fingerprint)
			assert.Zero(t, s.Cached(), "the KV is recomputed")
		}
		require.NoError(t, s.Append(t.Context(), []int32{3}))
		return s.Tokens()[7:]
	}
	a, b := run(false), run(true)
	assert.Equal(t, a, b)
	assert.Len(t, a, 5)
}

func TestFingerprintMismatch(t *testing.T) {
	store := runtime.NewMemoryStore()
	m := newFake(64, 4)
	rt1 := newRT(t, m, runtime.Options{Store: store, Fingerprint: "model-a"})
	s := open(t, rt1, "x")
	require.NoError(t, s.Append(t.Context(), seqTokens(3, 0)))
	require.NoError(t, rt1.Close())
	rt2 := newRT(t, m, runtime.Options{Store: store, Fingerprint: "model-b"})
	_, err := rt2.Open(t.Context(), "x", runtime.SessionOptions{})
	assert.ErrorIs(t, err, runtime.ErrFingerprint)
}

// TestSchedulerBatches checks that concurrent sessions share steps:
// decode tokens of several sessions ride in one step.
func TestSchedulerBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newFake(256, 4)
		// Hold the first step until every session has queued its work.
		gate := make(chan struct{})
		m.fail = func([]*engine.Seq) error { <-gate; return nil }
		rt, err := runtime.New(m, runtime.Options{MaxBatchTokens: 16, PrefillChunk: 8})
		require.NoError(t, err)
		defer rt.Close()
		const n = 4
		var wg sync.WaitGroup
		results := make([][]int32, n)
		for i := range n {
			s, err := rt.Open(t.Context(), fmt.Sprint("s", i), runtime.SessionOptions{})
			require.NoError(t, err)
			wg.Go(func() {
				if err := s.Append(t.Context(), seqTokens(20, i)); err != nil {
					return
				}
				results[i], _, _, _ = runtime.Collect(s.Generate(t.Context(), runtime.GenerateOptions{MaxTokens: 10}))
			})
		}
		synctest.Wait()
		close(gate)
		wg.Wait()
		for i := range n {
			assert.Equal(t, m.greedy(seqTokens(20, i), 10), results[i])
		}
		multi := 0
		for _, st := range m.Steps() {
			tot := 0
			for _, k := range st {
				tot += k
				assert.LessOrEqual(t, k, 8, "prefill chunk")
			}
			assert.LessOrEqual(t, tot, 16, "step budget")
			if len(st) > 1 {
				multi++
			}
		}
		assert.Positive(t, multi, "some steps batch several sessions")
		assert.Equal(t, int64(n*(20+9)), rt.Stats().Tokens)
	})
}

// TestConcurrentSessions runs many goroutines appending, generating,
// forking, rewinding, closing and deleting sessions at once. Every
// generation must match the fake's greedy prediction for the history
// (so no shared block was overwritten), and once everything is deleted
// the pool is whole again.
func TestConcurrentSessions(t *testing.T) {
	m := newFake(1024, 4)
	rt := newRT(t, m, runtime.Options{MaxBatchTokens: 32, MaxSeqs: 8, PrefillChunk: 6, Store: runtime.NewMemoryStore()})
	workers, rounds := 8, 30
	if testing.Short() {
		rounds = 12
	}
	shared := open(t, rt, "shared")
	require.NoError(t, shared.Append(t.Context(), seqTokens(5, 0)))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			id := fmt.Sprint("w", w)
			s, err := rt.Open(ctx, id, runtime.SessionOptions{})
			if err != nil {
				fail("open: %v", err)
				return
			}
			for r := range rounds {
				switch (w + r) % 6 {
				case 0, 1:
					if err := s.Append(ctx, seqTokens(1+(w*r)%9, w+r)); err != nil {
						fail("append: %v", err)
					}
				case 2:
					h := s.Tokens()
					if len(h) == 0 {
						continue
					}
					ids, _, _, err := runtime.Collect(s.Generate(ctx, runtime.GenerateOptions{MaxTokens: 1 + r%5}))
					if err != nil {
						fail("generate: %v", err)
					} else if want := m.greedy(h, len(ids)); !equal(ids, want) {
						fail("%s round %d: got %v want %v", id, r, ids, want)
					}
				case 3:
					f, err := s.Fork(ctx, fmt.Sprint(id, "-", r))
					if err != nil {
						fail("fork: %v", err)
						continue
					}
					old := s
					s = f
					if r%2 == 0 {
						_ = rt.Delete(ctx, old.ID())
					} else {
						_ = old.Close()
					}
				case 4:
					if n := s.Len(); n > 0 {
						if err := s.Rewind(ctx, n/2); err != nil {
							fail("rewind: %v", err)
						}
					}
				case 5:
					// Contend on a shared session: ErrBusy is fine.
					ctx, cancel := context.WithCancel(ctx)
					for ev := range shared.Generate(ctx, runtime.GenerateOptions{MaxTokens: 3}) {
						if ev.Done {
							break
						}
						cancel()
					}
					cancel()
					if err := shared.Rewind(ctx, 5); err != nil && !errors.Is(err, runtime.ErrBusy) && !errors.Is(err, context.Canceled) {
						fail("rewind shared: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	assert.Empty(t, failures)
	st := rt.Stats()
	assert.Positive(t, st.DecodeTokens)
	assert.Positive(t, st.PrefillTokens)
	for _, id := range rt.Sessions() {
		require.NoError(t, rt.Delete(t.Context(), id))
	}
	assert.Equal(t, m.kv.Pool.Blocks(), m.kv.Pool.Free())
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
