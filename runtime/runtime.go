// Package runtime runs sessions on a model: a session keeps its tokens and
// their KV cache between calls, so a follow-up pays only for its new
// tokens, and many sessions share one model through a continuous-batching
// scheduler.
//
// # Concurrency
//
// One goroutine (the loop) owns the model, every block table and the
// batch state. Session methods send it requests and wait for them; they
// are safe for concurrent use. A session runs one operation (Append,
// Generate, Fork, Rewind) at a time: a second one started while the first
// is in flight fails at once with ErrBusy, it does not wait. Close and
// Runtime.Delete are never busy: they end the operation in flight, which
// fails with ErrSessionClosed.
//
// # Scheduling
//
// Each step the loop builds a batch with Plan: every decoding sequence
// contributes one token, then prefills contribute chunks round-robin,
// under Options.MaxBatchTokens, Options.MaxSeqs and the free cache blocks.
// A client's context is checked at every step boundary; a cancelled
// sequence leaves the batch there. A failed forward step fails only the
// sequences in it.
//
// # Shared blocks
//
// Fork shares every block of the parent's table. A block is written only
// when the table it belongs to is its sole owner: before a sequence writes
// into a partly filled last block that another table also holds, the loop
// drops that block from the writer's table and recomputes its few tokens
// (fewer than one block) as part of the next chunk.
//
// # Persistence and prefix sharing
//
// A DiskStore (Options.Store) keeps sessions in a kvcache snapshot store:
// Close and Session.Save write the state and its KV blocks, Open restores
// the state (tokens, messages, metadata) and the session's first operation
// its blocks (LazyStore; nothing is read at start-up), and a snapshot made
// with another model is refused (ErrFingerprint). Snapshot writes yield to
// the model while it runs (DiskOptions.BackgroundShare). Its
// prefix cache (Options.Cache) lets sessions of one tenant share the
// blocks of an equal prefix: a session with an empty table starts from the
// longest cached prefix of its history, and full blocks are published
// after every step.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// Errors returned by the runtime; check them with errors.Is.
var (
	// ErrClosed is returned once the runtime is closed; generations in
	// flight when it closes end with it.
	ErrClosed = errors.New("runtime: closed")
	// ErrSessionClosed is returned for a session that was closed or
	// deleted, and ends the operation that was in flight on it.
	ErrSessionClosed = errors.New("runtime: session closed")
	// ErrBusy is returned when a session already runs an operation.
	ErrBusy = errors.New("runtime: session busy")
	// ErrExists is returned by Fork when the new id is taken.
	ErrExists = errors.New("runtime: session exists")
	// ErrInvalidID is returned for a malformed session id.
	ErrInvalidID = errors.New("runtime: invalid session id")
	// ErrFingerprint is returned when a stored session was computed with
	// a different model.
	ErrFingerprint = errors.New("runtime: session belongs to another model")
	// ErrNoTokenizer is returned by text and chat methods when the
	// runtime has no tokenizer.
	ErrNoTokenizer = errors.New("runtime: no tokenizer")
)

// MaxIDLen is the longest session id.
const MaxIDLen = 128

// ValidateID checks a session id: 1 to MaxIDLen bytes of ASCII letters,
// digits, '_', '-', '.' and ':', starting with a letter or digit. Ids can
// therefore name files and object keys safely (no '/', no "..", no NUL).
func ValidateID(id string) error {
	if id == "" || len(id) > MaxIDLen {
		return fmt.Errorf("%w: length %d, want 1..%d", ErrInvalidID, len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || i > 0 && (c == '_' || c == '-' || c == '.' || c == ':') {
			continue
		}
		return fmt.Errorf("%w: byte %#x at %d", ErrInvalidID, c, i)
	}
	return nil
}

// Options configure a Runtime.
type Options struct {
	// MaxBatchTokens caps the tokens of one step (default 512). It must
	// not exceed the engine's limit.
	MaxBatchTokens int
	// MaxSeqs caps the sequences of one step (default 64). It must not
	// exceed the engine's limit.
	MaxSeqs int
	// PrefillChunk caps one sequence's prefill tokens in a step (default
	// MaxBatchTokens).
	PrefillChunk int
	// ContextLength caps a session's tokens (default: the model's, at most
	// 4096, as the engine's default).
	ContextLength int
	// Tokenizer decodes generated text, finds end-of-generation tokens and
	// encodes text and chat; without it, events carry token ids only.
	Tokenizer *tokenizer.Tokenizer
	// Template is the chat template for AppendMessages (a Jinja source;
	// default ChatML).
	Template string
	// Store persists sessions on Close; nil keeps nothing. A Store with a
	// Pacer() *kvcache.Pacer method (DiskStore) is told when the runtime
	// runs steps, so that its background writes yield to the model.
	Store Store
	// Fingerprint names the model; sessions record it and a stored
	// session with another fingerprint is refused.
	Fingerprint string
	// Cache, if set, is the prefix cache attached to the model's pool
	// (DiskStore.Cache): a session whose table is empty starts from the
	// longest cached prefix of its tokens, and full blocks are published
	// after every step, so sessions of one tenant share equal prefixes
	// (a common system prompt is computed and stored once).
	Cache *kvcache.Cache
	// Secret derives each tenant's salt for Cache (kvcache.TenantSalt), so
	// that prefix sharing never crosses tenants; it must be the
	// DiskStore's.
	Secret []byte
	// EventBuffer is how many undelivered events a generation may hold
	// before it sits out steps (default 64).
	EventBuffer int
	// Logger receives a trace record per step at level -8 (default
	// slog.Default()).
	Logger *slog.Logger
	// Now returns the time for metadata (default time.Now).
	Now func() time.Time
}

// Runtime runs sessions on one model. It does not own the model: close the
// model after Close returns.
type Runtime struct {
	m    engine.Model
	kv   *engine.KV
	opt  Options
	vocb int

	reqs    chan func()
	wake    chan struct{}
	closing chan struct{}
	done    chan struct{}
	stop    context.CancelFunc
	ctx     context.Context // the loop's, cancelled by Close
	pacer   *kvcache.Pacer  // the Store's, nil if it has none

	mu       sync.Mutex
	sessions map[string]*Session
	closed   bool
	closeErr error
	once     sync.Once

	// Loop-owned state: touched only by the loop goroutine.
	waiting, running []*item
	stepNo           int64
	stats            Stats
}

// Stats count the loop's work since New.
type Stats struct {
	// Steps is the number of forward steps that succeeded.
	Steps int64
	// Tokens were fed in them: PrefillTokens in prefill chunks (including
	// recomputed shared tails), DecodeTokens one per decoding sequence.
	Tokens, PrefillTokens, DecodeTokens int64
}

// New starts a runtime on m.
func New(m engine.Model, opt Options) (*Runtime, error) {
	cfg := m.Config()
	if opt.MaxBatchTokens == 0 {
		opt.MaxBatchTokens = 512
	}
	if opt.MaxSeqs == 0 {
		opt.MaxSeqs = 64
	}
	if opt.PrefillChunk == 0 {
		opt.PrefillChunk = opt.MaxBatchTokens
	}
	if opt.ContextLength == 0 {
		opt.ContextLength = min(cfg.ContextLength, 4096)
		if opt.ContextLength <= 0 {
			opt.ContextLength = 4096
		}
	}
	if opt.EventBuffer == 0 {
		opt.EventBuffer = 64
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	switch {
	case opt.MaxBatchTokens < 0 || opt.MaxSeqs < 0 || opt.PrefillChunk < 0 || opt.ContextLength < 0:
		return nil, errors.New("runtime: negative limit in options")
	case opt.EventBuffer < 2:
		return nil, fmt.Errorf("runtime: event buffer %d, want at least 2", opt.EventBuffer)
	case m.KV() == nil || m.KV().Pool == nil || m.KV().BlockTokens <= 0:
		return nil, errors.New("runtime: model has no KV cache")
	case cfg.VocabSize <= 0:
		return nil, fmt.Errorf("runtime: vocabulary size %d", cfg.VocabSize)
	}
	if opt.Template == "" {
		t, err := chat.Builtin("chatml")
		if err != nil {
			return nil, fmt.Errorf("runtime: %w", err)
		}
		opt.Template = t
	}
	ctx, cancel := context.WithCancel(context.Background())
	rt := &Runtime{
		m: m, kv: m.KV(), opt: opt, vocb: cfg.VocabSize,
		reqs: make(chan func()), wake: make(chan struct{}, 1),
		closing: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, stop: cancel, sessions: map[string]*Session{},
	}
	if p, ok := opt.Store.(interface{ Pacer() *kvcache.Pacer }); ok {
		rt.pacer = p.Pacer()
	}
	go rt.loop()
	return rt, nil
}

// Options returns the runtime's options with defaults filled in.
func (rt *Runtime) Options() Options { return rt.opt }

// Pool returns the model's cache block pool.
func (rt *Runtime) Pool() *kvcache.Pool { return rt.kv.Pool }

// Stats returns the loop's counters.
func (rt *Runtime) Stats() Stats {
	var st Stats
	if rt.do(context.Background(), func() { st = rt.stats }) != nil {
		<-rt.done
		st = rt.stats // the loop has exited: nothing writes it any more
	}
	return st
}

// do runs fn on the loop goroutine between steps and waits for it.
func (rt *Runtime) do(ctx context.Context, fn func()) error {
	ran := make(chan struct{})
	select {
	case rt.reqs <- func() { fn(); close(ran) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-rt.done:
		return ErrClosed
	}
	<-ran
	return nil
}

// kick wakes the loop if it is idle.
func (rt *Runtime) kick() {
	select {
	case rt.wake <- struct{}{}:
	default:
	}
}

// SessionOptions configure a new session.
type SessionOptions struct {
	// Tenant owns the session (metadata; prefix sharing never crosses
	// tenants once it lands).
	Tenant string
	// Sampling is the session's default sampling; Seed seeds its random
	// number generator, whose state persists across generations.
	Sampling sample.Options
}

// Open returns the live session id, else restores it from the Store, else
// creates it. opt applies only to a new session. With a LazyStore the KV
// blocks are restored by the session's first operation, not by Open.
func (rt *Runtime) Open(ctx context.Context, id string, opt SessionOptions) (*Session, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	if s, err := rt.live(id); s != nil || err != nil {
		return s, err
	}
	var st *State
	pending := 0 // tokens of stored KV that the first operation restores
	if rt.opt.Store != nil {
		// Load without the lock; another Open of the same id may race
		// this one, and the first to register wins.
		var loaded *State
		var err error
		if ls, ok := rt.opt.Store.(LazyStore); ok {
			loaded, pending, err = ls.LoadState(ctx, id)
		} else {
			loaded, err = rt.opt.Store.Load(ctx, id)
		}
		switch {
		case err == nil:
			if loaded.Meta.Fingerprint != rt.opt.Fingerprint {
				if loaded.Table != nil {
					loaded.Table.Release(rt.kv.Pool)
				}
				return nil, fmt.Errorf("open %q: %w (%q, this is %q)", id, ErrFingerprint, loaded.Meta.Fingerprint, rt.opt.Fingerprint)
			}
			loaded.ID = id
			st = loaded
		case !errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("open %q: %w", id, err)
		}
	}
	if st == nil {
		now := rt.opt.Now()
		st = &State{ID: id, Meta: Meta{Tenant: opt.Tenant, Created: now, Updated: now, Fingerprint: rt.opt.Fingerprint}}
	}
	s := rt.newSession(st, opt.Sampling)
	if pending > 0 {
		s.pending = true
		s.cached = min(pending, len(s.tokens))
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if other := rt.sessions[id]; other != nil || rt.closed {
		s.table.Release(rt.kv.Pool)
		if rt.closed {
			return nil, ErrClosed
		}
		return other, nil
	}
	rt.sessions[id] = s
	return s, nil
}

// live returns the live session id, or ErrClosed.
func (rt *Runtime) live(id string) (*Session, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return nil, ErrClosed
	}
	return rt.sessions[id], nil
}

func (rt *Runtime) newSession(st *State, so sample.Options) *Session {
	s := &Session{rt: rt, id: st.ID, meta: st.Meta, tokens: st.Tokens, msgs: st.Messages, chat: st.Chat,
		rng: st.Sampler, sampling: so, table: st.Table}
	if rt.opt.Cache != nil {
		s.salt = kvcache.TenantSalt(rt.opt.Secret, st.Meta.Tenant)
	}
	if s.table == nil {
		s.table = &kvcache.Table{}
	}
	if s.table.Len > len(s.tokens) {
		s.table.Truncate(rt.kv.Pool, len(s.tokens), rt.kv.BlockTokens)
	}
	s.cached = s.table.Len
	return s
}

// Session returns the live session id, or nil.
func (rt *Runtime) Session(id string) *Session {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.sessions[id]
}

// Sessions returns the ids of the live sessions.
func (rt *Runtime) Sessions() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	ids := make([]string, 0, len(rt.sessions))
	for id := range rt.sessions {
		ids = append(ids, id)
	}
	return ids
}

// Delete erases session id: its operation in flight fails with
// ErrSessionClosed, its blocks are released, its stored state is deleted,
// and its prefix blocks are erased from the prefix cache (Options.Cache)
// and its host and disk tiers, except those another session — live or
// stored — still holds (kvcache.Cache.Forget). Deleting an unknown id is
// not an error.
func (rt *Runtime) Delete(ctx context.Context, id string) error {
	return rt.remove(ctx, id, true)
}

// Discard is Delete without the erase: the session's published prefix
// blocks stay in the prefix cache, where later sessions of its tenant
// reuse them (a stateless request's temporary session, say).
func (rt *Runtime) Discard(ctx context.Context, id string) error {
	return rt.remove(ctx, id, false)
}

func (rt *Runtime) remove(ctx context.Context, id string, erase bool) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	var salt kvcache.Salt
	var tokens []int32
	if s := rt.Session(id); s != nil {
		if err := s.detach(ctx, false); err != nil && !errors.Is(err, ErrSessionClosed) {
			return err
		}
		// detach released the table, so Forget sees only other holders.
		salt, tokens = s.salt, s.Tokens()
	}
	if rt.opt.Store != nil {
		del := rt.opt.Store.Delete
		if d, ok := rt.opt.Store.(*DiskStore); ok && !erase {
			del = d.discard
		}
		if err := del(ctx, id); err != nil {
			return fmt.Errorf("delete %q: %w", id, err)
		}
	}
	if erase && rt.opt.Cache != nil && len(tokens) > 0 {
		rt.opt.Cache.Forget(salt, tokens)
	}
	return nil
}

// Close stops the runtime: generations in flight end with ErrClosed, the
// loop exits, live sessions are saved to the Store (if any) and every
// block they hold is released. Close is idempotent.
func (rt *Runtime) Close() error {
	rt.once.Do(func() {
		rt.mu.Lock()
		rt.closed = true
		rt.mu.Unlock()
		close(rt.closing)
		rt.stop()
		<-rt.done
		rt.mu.Lock()
		live := rt.sessions
		rt.sessions = map[string]*Session{}
		rt.mu.Unlock()
		var errs []error
		for _, s := range live {
			s.mu.Lock()
			s.closed = true
			s.mu.Unlock()
			if err := rt.save(context.Background(), s); err != nil {
				errs = append(errs, err)
			}
			s.table.Release(rt.kv.Pool)
		}
		rt.closeErr = errors.Join(errs...)
	})
	return rt.closeErr
}

// save writes s to the Store. The loop must no longer touch s.table.
func (rt *Runtime) save(ctx context.Context, s *Session) error {
	if rt.opt.Store == nil || s.isPending() {
		return nil // a session never used since Open is stored as it is
	}
	st := s.state()
	st.Table = s.table
	if err := rt.opt.Store.Save(ctx, st); err != nil {
		return fmt.Errorf("save session %q: %w", s.id, err)
	}
	return nil
}
