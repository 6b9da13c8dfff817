package runtime_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/runtime"
)

// chunks renders a step as id:n pairs.
func chunks(st runtime.Step) [][2]int {
	var out [][2]int
	for _, c := range st.Chunks {
		out = append(out, [2]int{int(c.Seq.ID), c.N})
	}
	return out
}

func ids(seqs []*runtime.Seq) []int {
	var out []int
	for _, s := range seqs {
		out = append(out, int(s.ID))
	}
	return out
}

func TestPlan(t *testing.T) {
	big := runtime.Budget{MaxTokens: 64, MaxSeqs: 8, Chunk: 16, FreeBlocks: 100, BlockTokens: 4}
	dec := func(id uint64, last int64) *runtime.Seq {
		return &runtime.Seq{ID: id, Pending: 1, Decode: true, Len: 5, Blocks: 2, LastServed: last}
	}
	pre := func(id uint64, pending int, last int64) *runtime.Seq {
		return &runtime.Seq{ID: id, Pending: pending, LastServed: last}
	}
	tests := []struct {
		name     string
		waiting  []*runtime.Seq
		running  []*runtime.Seq
		budget   runtime.Budget
		want     [][2]int
		admitted int
		blocked  []int
	}{
		{name: "empty", budget: big},
		{
			name:    "decode first then prefill",
			running: []*runtime.Seq{pre(1, 40, 3), dec(2, 3), dec(3, 2)},
			budget:  big,
			want:    [][2]int{{3, 1}, {2, 1}, {1, 16}},
		},
		{
			name:    "prefill round-robin by last served",
			running: []*runtime.Seq{pre(1, 40, 7), pre(2, 40, 5), pre(3, 40, 6)},
			budget:  runtime.Budget{MaxTokens: 20, MaxSeqs: 8, Chunk: 16, FreeBlocks: 100, BlockTokens: 4},
			want:    [][2]int{{2, 16}, {3, 4}},
		},
		{
			name:     "waiting admitted in order after running",
			waiting:  []*runtime.Seq{pre(10, 5, 0), pre(11, 30, 0), pre(12, 2, 0)},
			running:  []*runtime.Seq{dec(1, 1)},
			budget:   runtime.Budget{MaxTokens: 10, MaxSeqs: 8, Chunk: 16, FreeBlocks: 100, BlockTokens: 4},
			want:     [][2]int{{1, 1}, {10, 5}, {11, 4}},
			admitted: 2,
		},
		{
			name:     "admission stops at the first that does not fit",
			waiting:  []*runtime.Seq{pre(10, 5, 0), pre(11, 5, 0)},
			running:  []*runtime.Seq{dec(1, 1), dec(2, 1)},
			budget:   runtime.Budget{MaxTokens: 7, MaxSeqs: 3, Chunk: 16, FreeBlocks: 100, BlockTokens: 4},
			want:     [][2]int{{1, 1}, {2, 1}, {10, 5}},
			admitted: 1,
		},
		{
			name:    "max seqs rotates decoders by last served",
			running: []*runtime.Seq{dec(1, 9), dec(2, 8), dec(3, 7), dec(4, 9)},
			budget:  runtime.Budget{MaxTokens: 64, MaxSeqs: 2, Chunk: 16, FreeBlocks: 100, BlockTokens: 4},
			want:    [][2]int{{3, 1}, {2, 1}},
		},
		{
			name:    "held sequences sit out",
			running: []*runtime.Seq{{ID: 1, Pending: 1, Decode: true, Held: true}, dec(2, 1)},
			budget:  big,
			want:    [][2]int{{2, 1}},
		},
		{
			// seq 1 needs no new block (5 of 8 slots used); seq 2 needs
			// one; seq 3's prefill gets the one block left.
			name:    "chunks limited by free blocks",
			running: []*runtime.Seq{dec(1, 1), {ID: 2, Pending: 1, Decode: true, Len: 8, Blocks: 2, LastServed: 2}, pre(3, 10, 3)},
			budget:  runtime.Budget{MaxTokens: 64, MaxSeqs: 8, Chunk: 16, FreeBlocks: 2, BlockTokens: 4},
			want:    [][2]int{{1, 1}, {2, 1}, {3, 4}},
		},
		{
			name:    "no block left",
			running: []*runtime.Seq{{ID: 1, Pending: 1, Decode: true, Len: 8, Blocks: 2}, dec(2, 1), pre(3, 3, 0)},
			budget:  runtime.Budget{MaxTokens: 64, MaxSeqs: 8, Chunk: 16, FreeBlocks: 0, BlockTokens: 4},
			want:    [][2]int{{2, 1}},
			blocked: []int{1, 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := runtime.Plan(tt.waiting, tt.running, tt.budget)
			assert.Equal(t, tt.want, chunks(st))
			assert.Equal(t, tt.admitted, st.Admitted)
			assert.Equal(t, tt.blocked, ids(st.Blocked))
			assert.LessOrEqual(t, st.Tokens(), tt.budget.MaxTokens)
			assert.LessOrEqual(t, len(st.Chunks), tt.budget.MaxSeqs)
		})
	}
}

// TestPlanNoStarvation simulates many sequences under a tight budget:
// every one finishes, and no running prefill waits more steps than there
// are sequences.
func TestPlanNoStarvation(t *testing.T) {
	const n = 12
	var waiting, running []*runtime.Seq
	for i := range n {
		waiting = append(waiting, &runtime.Seq{ID: uint64(i), Pending: 3 + 7*i})
	}
	b := runtime.Budget{MaxTokens: 9, MaxSeqs: 3, Chunk: 4}
	wait := map[uint64]int{}
	for step := int64(1); len(waiting)+len(running) > 0; step++ {
		require.Less(t, step, int64(1000), "no progress")
		st := runtime.Plan(waiting, running, b)
		require.NotEmpty(t, st.Chunks)
		running = append(running, waiting[:st.Admitted]...)
		waiting = waiting[st.Admitted:]
		served := map[uint64]bool{}
		for _, c := range st.Chunks {
			c.Seq.Pending -= c.N
			c.Seq.LastServed = step
			served[c.Seq.ID] = true
		}
		var left []*runtime.Seq
		for _, s := range running {
			if !served[s.ID] {
				wait[s.ID]++
				assert.LessOrEqual(t, wait[s.ID], n, "sequence %d starved", s.ID)
			} else {
				wait[s.ID] = 0
			}
			if s.Pending > 0 {
				left = append(left, s)
			}
		}
		running = left
	}
}
