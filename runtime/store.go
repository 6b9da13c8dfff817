package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// ErrNotFound is returned (wrapped) for a session that is neither live nor
// stored.
var ErrNotFound = errors.New("runtime: session not found")

// Meta is a session's metadata.
type Meta struct {
	Tenant  string
	Created time.Time
	Updated time.Time
	// Fingerprint names the model the session's cache was computed with;
	// a stored session is never restored into a different model.
	Fingerprint string
}

// State is a session's persistent state: everything needed to resume it.
type State struct {
	ID       string
	Meta     Meta
	Tokens   []int32
	Messages []chat.Message
	// Chat is true when the session was last fed chat messages, so the
	// next reply is recorded as an assistant message.
	Chat bool
	// Sampler is the sampler's random number generator state
	// (sample.Sampler.State), nil before the first generation.
	Sampler []byte
	// Table holds the session's KV blocks. On Save it is the live table
	// (read it, never keep or change it after Save returns). On Load a
	// Store may return a table whose blocks it allocated from the pool and
	// filled, owning one reference per block that passes to the session;
	// nil means the KV was not kept, and the runtime recomputes it from
	// Tokens on the next Append or Generate.
	Table *kvcache.Table
}

// Store persists sessions across Close and restarts. The kvcache snapshot
// store implements it with the KV bytes; MemoryStore keeps state without
// KV (restored sessions recompute their cache).
//
// The runtime calls Save when a session is closed and when the runtime
// closes, Load when Open finds no live session, and Delete from
// Runtime.Delete. Implementations must be safe for concurrent use.
type Store interface {
	Save(ctx context.Context, st *State) error
	// Load returns the stored state, or an error wrapping ErrNotFound.
	Load(ctx context.Context, id string) (*State, error)
	// Delete erases the stored state; deleting an absent id is not an
	// error.
	Delete(ctx context.Context, id string) error
}

// LazyStore is a Store that loads a session's state first and its KV
// blocks later. Runtime.Open then returns as soon as the state is read
// (tokens, messages, metadata); the blocks are restored by the session's
// first operation that needs them (Append, Generate, Fork, Rewind...), in
// that caller's goroutine, and an error restoring them is that
// operation's. A session that is closed unused is not saved again (its
// stored state is current). DiskStore implements it.
type LazyStore interface {
	Store
	// LoadState returns the stored state without a table, and how many
	// of its tokens the stored KV blocks hold; errors as Load's.
	LoadState(ctx context.Context, id string) (st *State, cached int, err error)
	// LoadTable restores the KV blocks of st, which LoadState returned
	// (its tokens may have grown since), and returns the table holding
	// them, as Load would have.
	LoadTable(ctx context.Context, st *State) (*kvcache.Table, error)
}

// MemoryStore is a Store in memory that keeps everything but the KV
// bytes. It is for tests and for embedders that only need sessions to
// survive Close.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]*State
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[string]*State{}} }

// Save implements Store.
func (s *MemoryStore) Save(_ context.Context, st *State) error {
	c := cloneState(st)
	c.Table = nil
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[st.ID] = c
	return nil
}

// Load implements Store.
func (s *MemoryStore) Load(_ context.Context, id string) (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[id]
	if !ok {
		return nil, fmt.Errorf("load %q: %w", id, ErrNotFound)
	}
	return cloneState(st), nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

// Len returns the number of stored sessions.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func cloneState(st *State) *State {
	c := *st
	c.Tokens = slices.Clone(st.Tokens)
	c.Messages = slices.Clone(st.Messages)
	c.Sampler = slices.Clone(st.Sampler)
	return &c
}
