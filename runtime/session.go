package runtime

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// Session is a conversation whose tokens and KV cache live in the runtime.
// Its methods are safe for concurrent use; see the package documentation
// for ErrBusy.
type Session struct {
	rt *Runtime
	id string

	// mu guards these for readers; the loop is their only writer once the
	// session is published, and writes them under mu.
	mu       sync.Mutex
	meta     Meta
	tokens   []int32 // history: table.Len of them are in the cache
	msgs     []chat.Message
	chat     bool
	rng      []byte
	sampling sample.Options
	cached   int // table.Len, mirrored for readers
	hit      int // table.Len when the last operation started
	busy     bool
	closed   bool
	// pending: the Store (a LazyStore) still holds the KV blocks of the
	// first cached tokens; the next operation restores them.
	pending bool

	// Loop-owned.
	salt     kvcache.Salt // the tenant's, for the prefix cache
	table    *kvcache.Table
	item     *item
	detached bool
	// logits after the whole history, kept when an Append completes so
	// that Generate can sample its first token without a step; nil when
	// stale.
	logits []float32
}

// ID returns the session's id.
func (s *Session) ID() string { return s.id }

// Len returns the number of tokens in the session's history.
func (s *Session) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens)
}

// Cached returns how many of the history's tokens are in the KV cache
// (the rest are prefilled by the next Append or Generate).
func (s *Session) Cached() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cached
}

// StartCached returns how many of the history's tokens were in the KV
// cache when the session's last Append, SetMessages or Generate started,
// after any rewind and after the prefix cache lookup: for a session that
// began empty, the prompt tokens that a prefix hit saved from prefill.
func (s *Session) StartCached() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hit
}

// Tokens returns a copy of the token history.
func (s *Session) Tokens() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tokens)
}

// Messages returns a copy of the chat messages (see SetMessages).
func (s *Session) Messages() []chat.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// Meta returns the session's metadata.
func (s *Session) Meta() Meta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.meta
}

// state returns a copy of the persistent state, without the table.
func (s *Session) state() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &State{ID: s.id, Meta: s.meta, Tokens: slices.Clone(s.tokens), Messages: slices.Clone(s.msgs),
		Chat: s.chat, Sampler: slices.Clone(s.rng)}
}

// acquire makes s busy for an operation, restoring its KV blocks first
// if they are still in the Store.
func (s *Session) acquire(ctx context.Context) error {
	if _, err := s.rt.live(s.id); err != nil {
		return err
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return fmt.Errorf("session %q: %w", s.id, ErrSessionClosed)
	case s.busy:
		s.mu.Unlock()
		return fmt.Errorf("session %q: %w", s.id, ErrBusy)
	}
	s.busy = true
	pending := s.pending
	s.mu.Unlock()
	if pending {
		if err := s.restore(ctx); err != nil {
			s.release()
			return err
		}
	}
	return nil
}

func (s *Session) isPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// restore reads the KV blocks a LazyStore kept back at Open into the pool
// (in the caller's goroutine: the loop goes on) and gives them to s.
func (s *Session) restore(ctx context.Context) error {
	rt := s.rt
	ls, _ := rt.opt.Store.(LazyStore)
	if ls == nil {
		return fmt.Errorf("session %q: restore: the store cannot restore KV blocks", s.id)
	}
	t, err := ls.LoadTable(ctx, s.state())
	if err != nil {
		return fmt.Errorf("session %q: restore its KV cache: %w", s.id, err)
	}
	installed := false
	derr := rt.do(ctx, func() {
		if s.detached {
			return
		}
		s.table.Release(rt.kv.Pool) // empty: nothing ran on s
		s.table = t
		if s.table.Len > len(s.tokens) {
			s.table.Truncate(rt.kv.Pool, len(s.tokens), rt.kv.BlockTokens)
		}
		s.mu.Lock()
		s.pending = false
		s.cached = s.table.Len
		s.mu.Unlock()
		installed = true
	})
	if !installed {
		t.Release(rt.kv.Pool)
		if derr != nil {
			return derr
		}
		return fmt.Errorf("session %q: %w", s.id, ErrSessionClosed)
	}
	return nil
}

func (s *Session) release() {
	s.mu.Lock()
	s.busy = false
	s.mu.Unlock()
}

// Append adds tokens to the session and prefills them (only them: the
// cache already holds the history). On error the tokens stay in the
// history, and whatever part of them was not prefilled is prefilled by the
// next Append or Generate; Rewind undoes them.
func (s *Session) Append(ctx context.Context, tokens []int32) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	return s.appendLocked(ctx, func() ([]int32, error) { return tokens, nil })
}

// AppendText encodes text with the runtime's tokenizer (adding BOS when
// the session is empty) and appends it.
func (s *Session) AppendText(ctx context.Context, text string) error {
	tok := s.rt.opt.Tokenizer
	if tok == nil {
		return ErrNoTokenizer
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	ids := tok.Encode(text, tokenizer.EncodeOptions{NoSpecial: s.Len() > 0})
	return s.appendLocked(ctx, func() ([]int32, error) { return ids, nil })
}

// AppendMessages adds chat messages and prefills them; see SetMessages.
func (s *Session) AppendMessages(ctx context.Context, msgs ...chat.Message) error {
	return s.setMessages(ctx, func(old []chat.Message) []chat.Message { return append(slices.Clone(old), msgs...) })
}

// SetMessages makes msgs the session's conversation: it renders them with
// the chat template (with the assistant's generation prompt), keeps the
// longest prefix of the history that the rendering shares, rewinds to it
// and prefills the rest. Sending the whole conversation each turn (as
// OpenAI clients do) thus costs only the new turn, and editing an earlier
// turn recomputes from the edit on. The next Generate's reply is recorded
// as an assistant message.
func (s *Session) SetMessages(ctx context.Context, msgs []chat.Message) error {
	return s.setMessages(ctx, func([]chat.Message) []chat.Message { return slices.Clone(msgs) })
}

func (s *Session) setMessages(ctx context.Context, next func([]chat.Message) []chat.Message) error {
	tok := s.rt.opt.Tokenizer
	if tok == nil {
		return ErrNoTokenizer
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	msgs := next(s.Messages())
	text, err := chat.Render(s.rt.opt.Template, msgs, chat.Options{AddGenerationPrompt: true,
		BOSToken: tok.Token(tok.BOS()), EOSToken: tok.Token(tok.EOS())})
	if err != nil {
		return fmt.Errorf("session %q: %w", s.id, err)
	}
	ids := tok.Encode(text, tokenizer.EncodeOptions{ParseSpecial: true})
	return s.appendLocked(ctx, func() ([]int32, error) {
		common := 0
		for common < len(ids) && common < len(s.tokens) && ids[common] == s.tokens[common] {
			common++
		}
		s.rt.rewind(s, common)
		s.mu.Lock()
		s.msgs, s.chat = msgs, true
		s.mu.Unlock()
		return ids[common:], nil
	})
}

// appendLocked runs an append whose new tokens newTokens computes on the
// loop (it may rewind first).
func (s *Session) appendLocked(ctx context.Context, newTokens func() ([]int32, error)) error {
	it := &item{s: s, done: make(chan struct{})}
	var err error
	if derr := s.rt.do(ctx, func() {
		var toks []int32
		if toks, err = s.admit(newTokens); err == nil {
			err = s.rt.enqueue(ctx, it, toks, false)
		}
	}); derr != nil {
		return derr
	}
	if err != nil {
		return err
	}
	<-it.done
	return it.err
}

// admit checks the session can take more work and returns the new tokens
// (on the loop).
func (s *Session) admit(newTokens func() ([]int32, error)) ([]int32, error) {
	if s.detached {
		return nil, fmt.Errorf("session %q: %w", s.id, ErrSessionClosed)
	}
	toks, err := newTokens()
	if err != nil {
		return nil, err
	}
	for i, id := range toks {
		if id < 0 || int(id) >= s.rt.vocb {
			return nil, fmt.Errorf("session %q: token %d: id %d outside the vocabulary [0, %d)", s.id, i, id, s.rt.vocb)
		}
	}
	if n := len(s.tokens) + len(toks); n > s.rt.opt.ContextLength {
		return nil, fmt.Errorf("session %q: %w: %d tokens, the limit is %d", s.id, engine.ErrContextFull, n, s.rt.opt.ContextLength)
	}
	return toks, nil
}

// GenerateOptions configure one generation.
type GenerateOptions struct {
	// Sampling overrides the session's sampling options for this
	// generation; the session's random number generator state carries
	// over either way. Its Stop sequences end the generation.
	Sampling *sample.Options
	// MaxTokens caps the generated tokens (0: Sampling.MaxTokens, and if
	// that is 0 too, until an end token or the context length).
	MaxTokens int
}

// Finish says why a generation ended.
type Finish string

// The reasons a generation ends without error.
const (
	FinishStop   Finish = "stop"   // an end-of-generation token or a stop sequence
	FinishLength Finish = "length" // MaxTokens or the context length
)

// Result describes a finished operation.
type Result struct {
	Finish Finish
	// CachedTokens were already in the cache; PromptTokens were prefilled
	// by this call; GenTokens were generated.
	CachedTokens, PromptTokens, GenTokens int
	// TTFT is the time from the call to the first generated token;
	// Duration to the end.
	TTFT, Duration time.Duration
}

// Event is one item of a generation stream.
type Event struct {
	// Token is the generated token id (-1 on the final event).
	Token int32
	// Text is the text that is now safe to show: stop sequences and
	// incomplete UTF-8 are held back, so it may be empty, and a later
	// event may carry the text of several tokens.
	Text string
	// Done marks the final event; Result is set on it.
	Done   bool
	Result *Result
}

// Generate samples tokens after the session's history (prefilling what
// the cache lacks first) and streams them. The last pair yielded has
// Done set and a non-nil Result; its error is nil on success, else the
// reason (ctx's error, ErrBusy, ErrSessionClosed, ErrClosed, or a failed
// forward step). Breaking out of the loop early cancels the generation;
// it returns once the session is idle again. Generated tokens stay in the
// history, the last one not yet in the cache (the next call feeds it).
// The work starts when the sequence is iterated.
func (s *Session) Generate(ctx context.Context, opt GenerateOptions) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		final := func(r Result, err error) { yield(Event{Token: -1, Done: true, Result: &r}, err) }
		if err := s.acquire(ctx); err != nil {
			final(Result{}, err)
			return
		}
		defer s.release()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		it := &item{s: s, gen: true, done: make(chan struct{}), events: make(chan Event, s.rt.opt.EventBuffer)}
		var err error
		if derr := s.rt.do(ctx, func() {
			if _, err = s.admit(func() ([]int32, error) { return nil, nil }); err != nil {
				return
			}
			if err = s.rt.prepareGen(it, opt); err != nil {
				return
			}
			logits := s.logits
			if logits == nil || s.table.Len != len(s.tokens) {
				logits = nil
			}
			if err = s.rt.enqueue(ctx, it, nil, logits != nil); err == nil && logits != nil {
				s.rt.sampleNext(it, logits)
			}
		}); derr != nil {
			final(Result{}, derr)
			return
		}
		if err != nil {
			final(Result{}, err)
			return
		}
		for ev := range it.events {
			s.rt.kick()
			if !yield(ev, nil) {
				cancel()
				for range it.events {
				}
				return
			}
		}
		<-it.done
		final(it.res, it.err)
	}
}

// Collect runs a generation to its end and returns the tokens, the text
// and the result.
func Collect(events iter.Seq2[Event, error]) ([]int32, string, Result, error) {
	var ids []int32
	var text strings.Builder
	var res Result
	for ev, err := range events {
		if ev.Done {
			if ev.Result != nil {
				res = *ev.Result
			}
			return ids, text.String(), res, err
		}
		ids = append(ids, ev.Token)
		text.WriteString(ev.Text)
	}
	return ids, text.String(), res, errors.New("runtime: generation ended without a final event")
}

// Fork creates session newID with a copy of this session's history,
// messages, sampler state and metadata, sharing every KV block (nothing is
// copied or recomputed except, lazily, a partly filled last block). Both
// continue independently.
func (s *Session) Fork(ctx context.Context, newID string) (*Session, error) {
	if err := ValidateID(newID); err != nil {
		return nil, err
	}
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	rt := s.rt
	var child *Session
	var err error
	if derr := rt.do(ctx, func() {
		if s.detached {
			err = fmt.Errorf("session %q: %w", s.id, ErrSessionClosed)
			return
		}
		st := s.state()
		st.ID = newID
		st.Meta.Created = rt.opt.Now()
		st.Meta.Updated = st.Meta.Created
		st.Table = s.table.Fork(rt.kv.Pool)
		s.mu.Lock()
		so := s.sampling
		s.mu.Unlock()
		c := rt.newSession(st, so)
		rt.mu.Lock()
		defer rt.mu.Unlock()
		if rt.sessions[newID] != nil || rt.closed {
			st.Table.Release(rt.kv.Pool)
			err = fmt.Errorf("fork %q: %w", newID, ErrExists)
			if rt.closed {
				err = ErrClosed
			}
			return
		}
		rt.sessions[newID] = c
		child = c
	}); derr != nil {
		return nil, derr
	}
	return child, err
}

// Rewind truncates the history to its first n tokens (to edit or drop the
// last turn) and releases the cache blocks past them. Chat messages are
// left alone: the next SetMessages compares its rendering with the tokens.
func (s *Session) Rewind(ctx context.Context, n int) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	var err error
	if derr := s.rt.do(ctx, func() {
		switch {
		case s.detached:
			err = fmt.Errorf("session %q: %w", s.id, ErrSessionClosed)
		case n < 0 || n > len(s.tokens):
			err = fmt.Errorf("session %q: rewind to %d of %d tokens", s.id, n, len(s.tokens))
		default:
			s.rt.rewind(s, n)
		}
	}); derr != nil {
		return derr
	}
	return err
}

// Close unloads the session: an operation in flight fails with
// ErrSessionClosed, the state is saved to the Store (if any) and the KV
// blocks are released. Open restores it from the Store; without one it
// is gone. Closing a closed session returns an error wrapping
// ErrSessionClosed.
func (s *Session) Close() error {
	return s.detach(context.Background(), true)
}

// detach takes s out of the runtime, then saves it (if save) and releases
// its blocks.
func (s *Session) detach(ctx context.Context, save bool) error {
	rt := s.rt
	var err error
	derr := rt.do(ctx, func() {
		if s.detached {
			err = fmt.Errorf("session %q: %w", s.id, ErrSessionClosed)
			return
		}
		s.detached = true
		if s.item != nil {
			rt.finish(s.item, fmt.Errorf("session %q: %w", s.id, ErrSessionClosed))
		}
		rt.mu.Lock()
		if rt.sessions[s.id] == s {
			delete(rt.sessions, s.id)
		}
		rt.mu.Unlock()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
	})
	switch {
	case errors.Is(derr, ErrClosed):
		return nil // Runtime.Close saved and released it
	case derr != nil:
		return derr
	case err != nil:
		return err
	}
	// The loop no longer knows s: its table is ours.
	if save {
		err = rt.save(ctx, s)
	}
	s.table.Release(rt.kv.Pool)
	return err
}

// Save writes the session's current state to the Store without closing
// it: the state and a fork of its block table are taken between two
// steps, and the snapshot is written while the loop goes on (the session
// may keep generating; its next write into the shared partial last block
// copies or recomputes that block). Without a Store it does nothing.
func (s *Session) Save(ctx context.Context) error {
	rt := s.rt
	if rt.opt.Store == nil || s.isPending() {
		return nil // stored as it is
	}
	var st *State
	var err error
	if derr := rt.do(ctx, func() {
		if s.detached {
			err = fmt.Errorf("session %q: %w", s.id, ErrSessionClosed)
			return
		}
		st = s.state()
		st.Table = s.table.Fork(rt.kv.Pool)
	}); derr != nil {
		return derr
	}
	if err != nil {
		return err
	}
	defer st.Table.Release(rt.kv.Pool)
	if err := rt.opt.Store.Save(ctx, st); err != nil {
		return fmt.Errorf("save session %q: %w", s.id, err)
	}
	return nil
}
