package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is a fixed set of worker goroutines that kernels split their work
// across. Work is partitioned statically into one contiguous chunk per
// thread; the calling goroutine runs the first chunk itself, so a Pool of
// one thread spawns nothing. A Pool is safe for concurrent use; calls from
// several goroutines share its workers.
type Pool struct {
	threads int
	tasks   chan task
	wg      sync.WaitGroup
	once    sync.Once
}

type task struct {
	fn     func(lo, hi int)
	lo, hi int
	done   *forDone
}

// forDone counts the chunks of a For call still running on workers.
type forDone struct {
	left atomic.Int32
	wg   sync.WaitGroup
}

func (d *forDone) finish() {
	d.left.Add(-1)
	d.wg.Done()
}

// wait returns when every chunk has finished. The caller usually finishes
// its own chunk within microseconds of the workers, so it polls for up to
// spinFor before it blocks: a goroutine that blocks has to be woken, and
// on a virtual machine whose idle CPU has halted that costs tens of
// microseconds, more than many of the matmuls and attention calls of a
// decode step take in all.
func (d *forDone) wait() {
	poll(func() bool { return d.left.Load() == 0 })
	d.wg.Wait()
}

// NewPool starts a Pool of threads threads (the caller counts as one);
// threads <= 0 means GOMAXPROCS. Close stops it.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, tasks: make(chan task, threads)}
	for range threads - 1 {
		p.wg.Go(func() {
			for {
				t, ok := p.next()
				if !ok {
					return
				}
				t.fn(t.lo, t.hi)
				t.done.finish()
			}
		})
	}
	return p
}

// spinFor is how long an idle worker polls for the next task before it
// blocks. A forward pass calls For hundreds of times per step with short
// gaps between calls; waking a blocked goroutine costs about 10 µs, more
// than many of the chunks it then runs.
const spinFor = 50 * time.Microsecond

// next returns the next task, polling for up to spinFor before blocking;
// ok is false once the pool is closed.
func (p *Pool) next() (task, bool) {
	var t task
	ok := false
	if poll(func() bool {
		select {
		case t, ok = <-p.tasks:
			return true
		default:
			return false
		}
	}) {
		return t, ok
	}
	t, ok = <-p.tasks
	return t, ok
}

// poll calls ready until it reports true or spinFor has passed, yielding
// the processor every 64 calls, and reports whether ready did.
func poll(ready func() bool) bool {
	deadline := time.Now().Add(spinFor)
	for i := 0; !ready(); i++ {
		if i%64 == 63 {
			if time.Now().After(deadline) {
				return false
			}
			runtime.Gosched()
		}
	}
	return true
}

// Threads returns the number of threads work is split across. A nil Pool
// has one.
func (p *Pool) Threads() int {
	if p == nil {
		return 1
	}
	return p.threads
}

// Close stops the workers after the work in flight. Using a Pool after
// Close panics.
func (p *Pool) Close() error {
	p.once.Do(func() {
		close(p.tasks)
		p.wg.Wait()
	})
	return nil
}

// For calls fn on disjoint chunks [lo, hi) that cover [0, n), one per
// thread at most, and returns when all are done. Chunk boundaries are
// multiples of grain (except n itself); fewer than grain*2 units run on the
// caller alone. A nil Pool runs everything on the caller.
func (p *Pool) For(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	units := (n + grain - 1) / grain
	chunks := min(p.Threads(), units)
	if chunks <= 1 {
		fn(0, n)
		return
	}
	done := new(forDone)
	done.left.Store(int32(chunks - 1))
	done.wg.Add(chunks - 1)
	bound := func(c int) int { return min(n, units*c/chunks*grain) }
	for c := 1; c < chunks; c++ {
		p.tasks <- task{fn: fn, lo: bound(c), hi: bound(c + 1), done: done}
	}
	fn(0, bound(1))
	done.wait()
}

var defaultPool = sync.OnceValue(func() *Pool { return NewPool(0) })

// DefaultPool returns the process-wide Pool of GOMAXPROCS threads, started
// on first use.
func DefaultPool() *Pool { return defaultPool() }
