package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// item is one operation in flight: an append (prefill only) or a
// generation. Everything but done, events, err and res (published by
// closing done) belongs to the loop.
type item struct {
	s      *Session
	ctx    context.Context
	gen    bool
	seq    Seq
	events chan Event
	done   chan struct{}
	err    error
	res    Result

	unwake   func() bool
	start    time.Time
	finished bool

	// generation
	smp       *sample.Sampler
	stop      *sample.Stopper
	dec       *tokenizer.Decoder
	maxTokens int
	reply     strings.Builder
}

// enqueue makes it the session's operation and queues it with toks
// appended to the history (on the loop).
// With haveLogits, a generation samples its first token from the
// session's kept logits instead of feeding the last token again.
func (rt *Runtime) enqueue(ctx context.Context, it *item, toks []int32, haveLogits bool) error {
	s := it.s
	if len(toks) > 0 {
		s.logits = nil
	}
	it.ctx = ctx
	it.start = time.Now()
	s.mu.Lock()
	s.tokens = append(s.tokens, toks...)
	s.meta.Updated = rt.opt.Now()
	s.mu.Unlock()
	rt.matchPrefix(s)
	it.res.CachedTokens = s.table.Len
	s.mu.Lock()
	s.hit = s.table.Len
	s.mu.Unlock()
	if it.gen && s.table.Len == len(s.tokens) && !haveLogits {
		if len(s.tokens) == 0 {
			return fmt.Errorf("session %q: nothing to generate from: the session is empty", s.id)
		}
		// Everything is cached, but the last token's logits are needed:
		// feed it again.
		s.table.Truncate(rt.kv.Pool, s.table.Len-1, rt.kv.BlockTokens)
		it.res.CachedTokens--
	}
	it.res.PromptTokens = len(s.tokens) - s.table.Len
	if it.res.PromptTokens == 0 && !it.gen {
		it.finished = true
		close(it.done)
		return nil
	}
	s.item = it
	it.unwake = context.AfterFunc(ctx, rt.kick)
	rt.waiting = append(rt.waiting, it)
	return nil
}

// matchPrefix gives a session with an empty table the longest prefix of
// its history that the prefix cache holds (on the loop). The last token
// is left out: its logits are needed.
func (rt *Runtime) matchPrefix(s *Session) {
	if rt.opt.Cache == nil || len(s.table.Blocks) > 0 || len(s.tokens) < 2 {
		return
	}
	t := rt.opt.Cache.Match(s.salt, s.tokens[:len(s.tokens)-1])
	if t.Len == 0 {
		t.Release(rt.kv.Pool)
		return
	}
	s.table = t
	s.logits = nil
	s.setCached()
}

// prepareGen builds the sampler, stopper and decoder of a generation (on
// the loop).
func (rt *Runtime) prepareGen(it *item, opt GenerateOptions) error {
	s := it.s
	if len(s.tokens) >= rt.opt.ContextLength {
		return fmt.Errorf("session %q: %w: no room to generate in %d tokens", s.id, engine.ErrContextFull, rt.opt.ContextLength)
	}
	s.mu.Lock()
	so, rng := s.sampling, s.rng
	s.mu.Unlock()
	if opt.Sampling != nil {
		so = *opt.Sampling
	}
	smp, err := sample.New(so, rt.vocb)
	if err != nil {
		return fmt.Errorf("session %q: %w", s.id, err)
	}
	if rng != nil {
		if err := smp.Restore(rng); err != nil {
			return fmt.Errorf("session %q: %w", s.id, err)
		}
	}
	it.smp = smp
	it.stop = sample.NewStopper(so.Stop)
	it.maxTokens = so.MaxTokens
	if opt.MaxTokens > 0 {
		it.maxTokens = opt.MaxTokens
	}
	if rt.opt.Tokenizer != nil {
		it.dec = rt.opt.Tokenizer.NewDecoder()
	}
	return nil
}

// rewind truncates s to n tokens (on the loop; s has no item in flight).
func (rt *Runtime) rewind(s *Session, n int) {
	if n >= len(s.tokens) {
		return
	}
	s.logits = nil
	s.mu.Lock()
	s.tokens = s.tokens[:n:n]
	s.meta.Updated = rt.opt.Now()
	s.mu.Unlock()
	if s.table.Len > n {
		s.table.Truncate(rt.kv.Pool, n, rt.kv.BlockTokens)
		s.setCached()
	}
}

func (s *Session) setCached() {
	s.mu.Lock()
	s.cached = s.table.Len
	s.mu.Unlock()
}

// send delivers an event; Plan holds generations without room for two.
func (it *item) send(ev Event) {
	if ev.Text != "" || ev.Token >= 0 {
		it.events <- ev
	}
}

// finish ends it with err (nil: success) and takes it out of the queues.
func (rt *Runtime) finish(it *item, err error) {
	if it.finished {
		return
	}
	it.finished = true
	rt.waiting = slices.DeleteFunc(rt.waiting, func(x *item) bool { return x == it })
	rt.running = slices.DeleteFunc(rt.running, func(x *item) bool { return x == it })
	s := it.s
	s.item = nil
	if it.gen {
		if err == nil && !it.stop.Stopped() {
			var tail string
			if it.dec != nil {
				tail, _ = it.stop.Push(it.dec.Flush())
			}
			tail += it.stop.Flush()
			it.reply.WriteString(tail)
			it.send(Event{Token: -1, Text: tail})
		}
		s.mu.Lock()
		s.rng = it.smp.State()
		if s.chat {
			s.msgs = append(s.msgs, assistant(it.reply.String()))
		}
		s.mu.Unlock()
		close(it.events)
	}
	s.mu.Lock()
	s.meta.Updated = rt.opt.Now()
	s.mu.Unlock()
	it.err = err
	it.res.Duration = time.Since(it.start)
	if it.unwake != nil {
		it.unwake()
	}
	close(it.done)
}

// levelTrace is the slog level of per-step logs.
const levelTrace = slog.Level(-8)

func assistant(text string) chat.Message { return chat.Message{Role: "assistant", Content: text} }

func (rt *Runtime) loop() {
	defer close(rt.done)
	defer rt.pacer.SetBusy(false)
	for {
		if !rt.runnable() {
			// Idle: background writes may use the machine.
			rt.pacer.SetBusy(false)
			select {
			case fn := <-rt.reqs:
				fn()
			case <-rt.wake:
			case <-rt.closing:
				rt.shutdown()
				return
			}
		}
		for drained := false; !drained; {
			select {
			case fn := <-rt.reqs:
				fn()
			case <-rt.closing:
				rt.shutdown()
				return
			default:
				drained = true
			}
		}
		rt.pacer.SetBusy(rt.runnable())
		rt.step()
	}
}

// held reports whether a generation's consumer is too far behind for it
// to take part in a step (a step sends at most two events).
func (it *item) held() bool {
	return it.gen && len(it.events) > cap(it.events)-2
}

func (rt *Runtime) runnable() bool {
	for _, it := range rt.waiting {
		if !it.held() {
			return true
		}
	}
	for _, it := range rt.running {
		if !it.held() {
			return true
		}
	}
	return false
}

func (rt *Runtime) shutdown() {
	for _, it := range slices.Concat(rt.waiting, rt.running) {
		rt.finish(it, ErrClosed)
	}
}

// step reaps cancelled items, plans a step, runs it and hands out the
// results.
func (rt *Runtime) step() {
	for _, it := range slices.Concat(rt.waiting, rt.running) {
		if err := it.ctx.Err(); err != nil {
			rt.finish(it, err)
		}
	}
	pool, bt := rt.kv.Pool, rt.kv.BlockTokens
	all := slices.Concat(rt.waiting, rt.running)
	if len(all) == 0 {
		return
	}
	views := func(items []*item) []*Seq {
		out := make([]*Seq, len(items))
		for i, it := range items {
			t := it.s.table
			// Never write into a block another table holds: drop a shared,
			// partly filled last block and recompute its tokens.
			if r := t.Len % bt; r != 0 && pool.Refs(t.Blocks[len(t.Blocks)-1]) > 1 {
				t.Truncate(pool, t.Len-r, bt)
				it.s.setCached()
			}
			it.seq.Pending = len(it.s.tokens) - t.Len
			it.seq.Decode = it.gen && it.res.GenTokens > 0 && it.seq.Pending == 1
			it.seq.Len, it.seq.Blocks = t.Len, len(t.Blocks)
			it.seq.Held = it.held()
			out[i] = &it.seq
		}
		return out
	}
	owner := make(map[*Seq]*item, len(all))
	for _, it := range all {
		owner[&it.seq] = it
	}
	plan := Plan(views(rt.waiting), views(rt.running), Budget{
		MaxTokens: rt.opt.MaxBatchTokens, MaxSeqs: rt.opt.MaxSeqs, Chunk: rt.opt.PrefillChunk,
		FreeBlocks: pool.Free(), BlockTokens: bt,
	})
	rt.running = append(rt.running, rt.waiting[:plan.Admitted]...)
	rt.waiting = slices.Delete(rt.waiting, 0, plan.Admitted)
	if len(plan.Chunks) == 0 {
		for _, sq := range plan.Blocked {
			rt.finish(owner[sq], fmt.Errorf("session %q: %w: %d blocks free", owner[sq].s.id, kvcache.ErrCacheFull, pool.Free()))
		}
		if len(plan.Blocked) == 0 {
			// Nothing can run although something was runnable: fail it
			// rather than spin (a bookkeeping bug, never expected). Held
			// as planned, not as now: a consumer may have drained its
			// events since, and the next step serves it.
			for _, it := range all {
				if !it.seq.Held {
					rt.finish(it, fmt.Errorf("session %q: runtime: sequence cannot be scheduled", it.s.id))
				}
			}
		}
		return
	}
	seqs := make([]*engine.Seq, len(plan.Chunks))
	items := make([]*item, len(plan.Chunks))
	for i, c := range plan.Chunks {
		it := owner[c.Seq]
		t := it.s.table
		items[i] = it
		seqs[i] = &engine.Seq{Tokens: it.s.tokens[t.Len : t.Len+c.N], Table: t}
	}
	if rt.opt.Logger.Enabled(rt.ctx, levelTrace) {
		rt.opt.Logger.Log(rt.ctx, levelTrace, "step", "batch_size", len(seqs), "tokens", plan.Tokens(),
			"waiting", len(rt.waiting), "free_blocks", pool.Free())
	}
	out, err := rt.m.Forward(rt.ctx, seqs)
	if err != nil {
		if rt.ctx.Err() != nil {
			err = ErrClosed
		}
		for _, it := range items {
			rt.finish(it, fmt.Errorf("session %q: forward: %w", it.s.id, err))
		}
		return
	}
	rt.stepNo++
	rt.stats.Steps++
	for i, c := range plan.Chunks {
		it := items[i]
		it.seq.LastServed = rt.stepNo
		rt.stats.Tokens += int64(c.N)
		if c.Seq.Decode {
			rt.stats.DecodeTokens++
		} else {
			rt.stats.PrefillTokens += int64(c.N)
		}
		if pc := rt.opt.Cache; pc != nil {
			// Cannot fail: the history holds the table's tokens.
			_ = pc.Publish(it.s.salt, it.s.tokens, it.s.table)
		}
		it.s.setCached()
		if it.s.table.Len < len(it.s.tokens) {
			continue
		}
		if !it.gen {
			it.s.logits = append(it.s.logits[:0], out[i].Row(out[i].Rows-1)...)
			rt.finish(it, nil)
			continue
		}
		rt.sampleNext(it, out[i].Row(out[i].Rows-1))
	}
}

// sampleNext draws a generation's next token from the logits after its
// whole history, streams it and decides whether to stop.
func (rt *Runtime) sampleNext(it *item, logits []float32) {
	s := it.s
	id := it.smp.Sample(logits, s.tokens)
	if it.res.GenTokens == 0 {
		it.res.TTFT = time.Since(it.start)
	}
	if tok := rt.opt.Tokenizer; tok != nil && tok.IsEOG(id) {
		it.res.Finish = FinishStop
		rt.finish(it, nil)
		return
	}
	it.res.GenTokens++
	s.logits = nil
	s.mu.Lock()
	s.tokens = append(s.tokens, id)
	s.mu.Unlock()
	var text string
	var stopped bool
	if it.dec != nil {
		text, stopped = it.stop.Push(it.dec.Add(id))
	}
	it.reply.WriteString(text)
	it.send(Event{Token: id, Text: text})
	switch {
	case stopped:
		it.res.Finish = FinishStop
	case it.maxTokens > 0 && it.res.GenTokens >= it.maxTokens, len(s.tokens) >= rt.opt.ContextLength:
		it.res.Finish = FinishLength
	default:
		return
	}
	rt.finish(it, nil)
}
