package engine

import (
	"errors"
	"fmt"

	"github.com/mnemo-ai/mnemo/kvcache"
)

// ErrContextFull is returned when a sequence would grow past the context
// length the model was loaded with.
var ErrContextFull = errors.New("engine: context length exceeded")

// Step is the host-side description of one forward step, built by
// PlanStep: rows are the new tokens of all sequences, in order, padded to a
// bucket.
type Step struct {
	Rows, Bucket int // tokens in the step and the bucket they are padded to
	Seqs         int // sequence slots (a bucket)
	MaxBlocks    int // block-table width
	IDs          []int32
	Pos          []int32 // position of each row in its sequence
	Slots        []int32 // cache slot of each row; −1 for padding
	Table        []int32 // [Seqs, MaxBlocks]
	Seq          []int32 // [Seqs, 3]: first row, new tokens, tokens after the step
	// LogitRows lists the rows whose logits are returned, in sequence
	// order; LogitBucket is its padded length, LogitSeq[i] the number of
	// rows sequence i gets.
	LogitRows   []int32
	LogitBucket int
	LogitSeq    []int
	// tables and their lengths before the step, for rollback
	reserved []*kvcache.Table
	oldLen   []int
}

// Geometry is what PlanStep needs to know about the model and cache.
type Geometry struct {
	Vocab, Context, BlockTokens, MaxBatchTokens, MaxSeqs int
	Pool                                                 *kvcache.Pool
	Bucket                                               func(int) int
}

// PlanStep validates seqs, reserves cache blocks for their new tokens and
// returns the step. On error nothing is reserved. Call Commit after a
// successful forward pass, Abort otherwise.
func PlanStep(g Geometry, seqs []*Seq) (*Step, error) {
	if len(seqs) == 0 || len(seqs) > g.MaxSeqs {
		return nil, fmt.Errorf("engine: %d sequences in a step, want 1..%d", len(seqs), g.MaxSeqs)
	}
	rows := 0
	for i, s := range seqs {
		if s == nil || s.Table == nil {
			return nil, fmt.Errorf("engine: sequence %d has no block table", i)
		}
		if len(s.Tokens) == 0 {
			return nil, fmt.Errorf("engine: sequence %d has no new tokens", i)
		}
		for j, id := range s.Tokens {
			if id < 0 || int(id) >= g.Vocab {
				return nil, fmt.Errorf("engine: sequence %d token %d: id %d outside the vocabulary [0, %d)", i, j, id, g.Vocab)
			}
		}
		if s.Table.Len+len(s.Tokens) > g.Context {
			return nil, fmt.Errorf("%w: sequence %d would hold %d tokens, the limit is %d", ErrContextFull, i, s.Table.Len+len(s.Tokens), g.Context)
		}
		for _, o := range seqs[:i] {
			if o.Table == s.Table {
				return nil, fmt.Errorf("engine: sequences share a block table")
			}
		}
		rows += len(s.Tokens)
	}
	if rows > g.MaxBatchTokens {
		return nil, fmt.Errorf("engine: %d tokens in a step, the limit is %d", rows, g.MaxBatchTokens)
	}
	st := &Step{Rows: rows, Bucket: g.Bucket(rows), Seqs: g.Bucket(len(seqs)),
		MaxBlocks: (g.Context + g.BlockTokens - 1) / g.BlockTokens}
	for _, s := range seqs {
		if err := s.Table.Reserve(g.Pool, len(s.Tokens), g.BlockTokens); err != nil {
			st.Abort(g.Pool, g.BlockTokens)
			return nil, err
		}
		st.reserved = append(st.reserved, s.Table)
		st.oldLen = append(st.oldLen, s.Table.Len)
	}
	st.IDs = make([]int32, st.Bucket)
	st.Pos = make([]int32, st.Bucket)
	st.Slots = make([]int32, st.Bucket)
	for i := range st.Slots {
		st.Slots[i] = -1
	}
	st.Table = make([]int32, st.Seqs*st.MaxBlocks)
	st.Seq = make([]int32, st.Seqs*3)
	st.LogitSeq = make([]int, len(seqs))
	r := 0
	for si, s := range seqs {
		n, base := len(s.Tokens), s.Table.Len
		copy(st.IDs[r:], s.Tokens)
		for j := range n {
			b, off := s.Table.Slot(base+j, g.BlockTokens)
			st.Pos[r+j] = int32(base + j)
			st.Slots[r+j] = int32(int(b)*g.BlockTokens + off)
		}
		for j, b := range s.Table.Blocks {
			st.Table[si*st.MaxBlocks+j] = int32(b)
		}
		st.Seq[3*si], st.Seq[3*si+1], st.Seq[3*si+2] = int32(r), int32(n), int32(base+n)
		if s.AllLogits {
			for j := range n {
				st.LogitRows = append(st.LogitRows, int32(r+j))
			}
			st.LogitSeq[si] = n
		} else {
			st.LogitRows = append(st.LogitRows, int32(r+n-1))
			st.LogitSeq[si] = 1
		}
		r += n
	}
	st.LogitBucket = g.Bucket(len(st.LogitRows))
	for len(st.LogitRows) < st.LogitBucket {
		st.LogitRows = append(st.LogitRows, 0)
	}
	return st, nil
}

// Commit advances every sequence's table past its new tokens.
func (st *Step) Commit() {
	for i, t := range st.reserved {
		t.Len = st.oldLen[i] + int(st.Seq[3*i+1])
	}
	st.reserved = nil
}

// Abort releases the blocks the step reserved.
func (st *Step) Abort(pool *kvcache.Pool, blockTokens int) {
	for i, t := range st.reserved {
		t.Truncate(pool, st.oldLen[i], blockTokens)
	}
	st.reserved = nil
}
