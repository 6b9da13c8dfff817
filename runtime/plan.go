package runtime

import "slices"

// Seq is the scheduler's view of one sequence with work to do: what Plan
// needs to decide how many of its tokens go into the next step.
type Seq struct {
	// ID identifies the sequence to the caller of Plan; Plan ignores it.
	ID uint64
	// Pending is the number of tokens still to feed (at least 1).
	Pending int
	// Decode marks a generating sequence in its decode phase: it feeds one
	// token per step.
	Decode bool
	// Len and Blocks are the tokens and blocks its block table holds, for
	// counting the blocks a chunk needs.
	Len, Blocks int
	// LastServed is the number of the last step the sequence was part of
	// (0: never). Sequences served longer ago go first.
	LastServed int64
	// Held marks a sequence that must sit this step out (its consumer has
	// not read its last events yet).
	Held bool
}

// Budget limits one step.
type Budget struct {
	// MaxTokens caps the tokens of the step; MaxSeqs its sequences.
	MaxTokens, MaxSeqs int
	// Chunk caps the prefill tokens of one sequence in one step.
	Chunk int
	// FreeBlocks is the number of free cache blocks; BlockTokens the
	// tokens per block.
	FreeBlocks, BlockTokens int
}

// Chunk is one sequence's share of a step: its next N pending tokens.
type Chunk struct {
	Seq *Seq
	N   int
}

// Step is the plan of one forward step.
type Step struct {
	// Chunks lists the sequences in the step, decode tokens first.
	Chunks []Chunk
	// Admitted is how many of the waiting sequences (a prefix, in order)
	// got a chunk and are now running.
	Admitted int
	// Blocked lists sequences that could not get a cache block. If the
	// step is empty they cannot progress until blocks are freed.
	Blocked []*Seq
}

// Tokens returns the tokens in the step.
func (s Step) Tokens() int {
	n := 0
	for _, c := range s.Chunks {
		n += c.N
	}
	return n
}

// Plan forms the next step from the running sequences (already admitted:
// decoding, or part way through their prefill) and the waiting ones
// (arrival order). It is pure: it reads its arguments and changes nothing.
//
// The order is:
//  1. every running decode sequence contributes its one token, the ones
//     served longest ago first;
//  2. running prefills get chunks of up to b.Chunk tokens, longest ago
//     first (round-robin, since serving a sequence makes it the most
//     recent);
//  3. waiting sequences are admitted in order, each with a chunk, until the
//     budget runs out; the first that does not fit stops admission, so a
//     long prompt is never overtaken forever by short ones.
//
// Every chunk's new blocks come out of b.FreeBlocks; a sequence whose
// next token needs a block when none is left is reported in Blocked.
// Held sequences are skipped.
func Plan(waiting, running []*Seq, b Budget) Step {
	var st Step
	tokens, free := b.MaxTokens, b.FreeBlocks
	chunk := max(b.Chunk, 1)
	// room returns how many of n tokens fit in the blocks left, and the
	// blocks they take.
	room := func(s *Seq, n int) (int, int) {
		if b.BlockTokens <= 0 {
			return n, 0
		}
		fits := (s.Blocks+free)*b.BlockTokens - s.Len
		n = max(min(n, fits), 0)
		need := max((s.Len+n+b.BlockTokens-1)/b.BlockTokens-s.Blocks, 0)
		return n, need
	}
	add := func(s *Seq, n int) bool {
		if len(st.Chunks) >= b.MaxSeqs || tokens <= 0 {
			return false
		}
		n, need := room(s, min(n, tokens))
		if n == 0 {
			st.Blocked = append(st.Blocked, s)
			return false
		}
		st.Chunks = append(st.Chunks, Chunk{Seq: s, N: n})
		tokens -= n
		free -= need
		return true
	}
	order := slices.Clone(running)
	slices.SortStableFunc(order, func(x, y *Seq) int {
		switch {
		case x.LastServed < y.LastServed:
			return -1
		case x.LastServed > y.LastServed:
			return 1
		}
		return 0
	})
	for _, s := range order {
		if s.Decode && !s.Held {
			add(s, 1)
		}
	}
	for _, s := range order {
		if !s.Decode && !s.Held && s.Pending > 0 {
			add(s, min(s.Pending, chunk))
		}
	}
	for _, s := range waiting {
		if s.Held || s.Pending <= 0 {
			st.Admitted++
			continue
		}
		if !add(s, min(s.Pending, chunk)) {
			break
		}
		st.Admitted++
	}
	return st
}
