package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// fakeModel is an engine.Model whose "KV cache" stores the token ids
// themselves: each step writes every new token into its slot, and the
// logits after a sequence are one-hot on a hash of the tokens read back
// from its blocks. So a follow-up that reads a corrupted or missing block
// (a shared block overwritten by a fork, a stale slot after a rewind)
// predicts a different token, and greedy decoding is a pure function of
// the history.
type fakeModel struct {
	kv     *engine.KV
	vocab  int
	ctxLen int

	mu    sync.Mutex
	slots []int32 // [blocks*blockTokens], -1 when never written
	calls int
	fed   int
	steps [][]int // tokens per sequence of each step
	// fail, if set, is consulted before each step; an error fails it.
	fail func(seqs []*engine.Seq) error
}

func newFake(blocks, blockTokens int) *fakeModel {
	m := &fakeModel{
		kv:    &engine.KV{Pool: kvcache.NewPool(blocks), BlockTokens: blockTokens, Blocks: blocks},
		vocab: 97, ctxLen: 256, slots: make([]int32, blocks*blockTokens),
	}
	for i := range m.slots {
		m.slots[i] = -1
	}
	return m
}

func (m *fakeModel) Config() model.Config {
	return model.Config{Architecture: "fake", VocabSize: m.vocab, ContextLength: m.ctxLen}
}

func (m *fakeModel) KV() *engine.KV { return m.kv }

func (m *fakeModel) Close() error { return nil }

// Fed returns the number of tokens fed so far.
func (m *fakeModel) Fed() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fed
}

// Steps returns the tokens per sequence of every step so far.
func (m *fakeModel) Steps() [][]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]int(nil), m.steps...)
}

var errInjected = errors.New("injected failure")

func (m *fakeModel) Forward(ctx context.Context, seqs []*engine.Seq) ([]engine.Logits, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail != nil {
		if err := m.fail(seqs); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bt := m.kv.BlockTokens
	var sizes []int
	for i, s := range seqs {
		if len(s.Tokens) == 0 {
			return nil, fmt.Errorf("fake: sequence %d has no tokens", i)
		}
		if s.Table.Len+len(s.Tokens) > m.ctxLen {
			return nil, engine.ErrContextFull
		}
		for _, o := range seqs[:i] {
			if o.Table == s.Table {
				return nil, errors.New("fake: shared table")
			}
		}
		sizes = append(sizes, len(s.Tokens))
	}
	var done []*engine.Seq
	for _, s := range seqs {
		if err := s.Table.Reserve(m.kv.Pool, len(s.Tokens), bt); err != nil {
			for _, d := range done {
				d.Table.Truncate(m.kv.Pool, d.Table.Len, bt)
			}
			return nil, err
		}
		done = append(done, s)
	}
	out := make([]engine.Logits, len(seqs))
	for i, s := range seqs {
		for j, id := range s.Tokens {
			pos := s.Table.Len + j
			b, off := s.Table.Slot(pos, bt)
			if m.kv.Pool.Refs(b) != 1 {
				panic("fake: write into a shared block")
			}
			m.slots[int(b)*bt+off] = id
		}
		s.Table.Len += len(s.Tokens)
		m.fed += len(s.Tokens)
		out[i] = engine.Logits{Rows: 1, Vocab: m.vocab, Data: m.logits(s.Table)}
	}
	m.steps = append(m.steps, sizes)
	return out, nil
}

// logits are one-hot on the hash of the tokens the table holds.
func (m *fakeModel) logits(t *kvcache.Table) []float32 {
	h := fnv.New32a()
	bt := m.kv.BlockTokens
	for pos := range t.Len {
		b, off := t.Slot(pos, bt)
		v := m.slots[int(b)*bt+off]
		h.Write([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
	}
	l := make([]float32, m.vocab)
	l[int(h.Sum32()%uint32(m.vocab))] = 1
	return l
}

// nextToken is what the fake predicts after history.
func (m *fakeModel) nextToken(history []int32) int32 {
	h := fnv.New32a()
	for _, v := range history {
		h.Write([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
	}
	return int32(h.Sum32() % uint32(m.vocab))
}

// greedy returns the n tokens greedy decoding produces after history.
func (m *fakeModel) greedy(history []int32, n int) []int32 {
	h := append([]int32(nil), history...)
	var out []int32
	for range n {
		id := m.nextToken(h)
		out = append(out, id)
		h = append(h, id)
	}
	return out
}
