package cpu

import (
	"sync"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/kernels"
)

// ropeSlots is how many positions' rotation tables a RoPE program keeps.
// Every layer of a forward pass rotates the same positions, so a step
// computes each position's sines and cosines once instead of once per
// layer. It covers a prefill chunk of 1024 tokens: at 256, a 512-token
// chunk bypassed the cache and recomputed its tables in every layer, 4%
// of a TinyLlama-shaped prefill (the K program, 4 heads, took 724 µs a
// layer, the Q program with 32 heads 904 µs). A slot's table is allocated
// when first used: 4·headDim/2 floats (512 bytes at head size 64).
const ropeSlots = 1024

// ropeCache holds a RoPE program's rotation tables, direct-mapped by
// position. Its lock covers a whole run, so that a run's tables cannot be
// refilled under it by a concurrent run of the same program.
type ropeCache struct {
	mu   sync.Mutex
	gen  uint64               // runs so far
	pos  [ropeSlots]int32     // the position slot i holds
	used [ropeSlots]uint64    // the run that last used slot i
	tabs [ropeSlots][]float32 // nil: empty
	rows [][]float32          // the table of each row of the current run
}

// rope rotates the rows of x (one per position).
func (p *Program) rope(x []float32, positions []int32) {
	s := p.spec
	width, neox := s.Heads*s.HeadDim, s.Rope.Style == backend.RopeNeoX
	impl := p.b.impl
	grain := max(1, elemGrain/width)
	if len(positions) > ropeSlots {
		// A long prefill chunk: its tables would evict each other.
		p.b.pool.For(len(positions), grain, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				impl.RoPE(x[i*width:(i+1)*width], s.Heads, s.HeadDim, int(positions[i]), p.freqs, neox)
			}
		})
		return
	}
	c := &p.ropes
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	n := kernels.RoPETableLen(p.freqs)
	c.rows = c.rows[:0]
	for _, pos := range positions {
		i := int(pos) % ropeSlots
		var tab []float32
		switch {
		case c.tabs[i] != nil && c.pos[i] == pos:
			tab = c.tabs[i]
		case c.used[i] != c.gen:
			if c.tabs[i] == nil {
				c.tabs[i] = make([]float32, n)
			}
			tab, c.pos[i] = c.tabs[i], pos
			kernels.RoPETable(tab, int(pos), p.freqs, neox)
		default:
			// Another position of this run holds the slot.
			tab = make([]float32, n)
			kernels.RoPETable(tab, int(pos), p.freqs, neox)
		}
		c.used[i] = c.gen
		c.rows = append(c.rows, tab)
	}
	rows := c.rows
	p.b.pool.For(len(positions), grain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			impl.RoPEWith(x[i*width:(i+1)*width], s.Heads, s.HeadDim, rows[i], neox)
		}
	})
}
