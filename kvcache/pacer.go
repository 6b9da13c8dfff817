package kvcache

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBackgroundShare is the share of wall time background writes
// (snapshots) take while the model runs, unless configured otherwise. A
// writer that preempts one of the model's threads stalls the whole step
// at its next barrier, so on a machine whose cores all run the model a
// share costs decode speed at two or more times its size: measured on 2
// cores (mnemo bench sessions --snap-share), 1% cost 0.8-3.8% of decode
// speed, 2% 3.3-10%, 5% 12%.
const DefaultBackgroundShare = 0.01

// Pacer keeps background work (snapshot writes) from slowing the model
// down. The model's driver marks when it is running (SetBusy); background
// writers report each piece of work they did (Pace). While busy, Pace
// pauses its caller so that all writers together use at most Share of the
// wall time — one writer at a 5% share pauses 19 ms after each 1 ms of
// work; two writers share the same budget. While idle, Pace returns at
// once and writers run at full speed; a pause ends early when the driver
// goes idle. A nil *Pacer never pauses. Pacer is safe for concurrent use.
type Pacer struct {
	share float64
	now   func() time.Time // tests replace it

	busy   atomic.Bool
	mu     sync.Mutex
	next   time.Time // background work may resume at next
	idle   chan struct{}
	paused time.Duration // pauses asked for so far
}

// NewPacer returns a Pacer that allows background work share of the wall
// time while busy, 0 < share <= 1 (1: never pauses).
func NewPacer(share float64) (*Pacer, error) {
	if !(share > 0 && share <= 1) {
		return nil, fmt.Errorf("kvcache: background share %g, want 0 < share <= 1", share)
	}
	return &Pacer{share: share, now: time.Now, idle: make(chan struct{})}, nil
}

// Share returns the share of wall time background work gets while busy.
func (p *Pacer) Share() float64 { return p.share }

// SetBusy marks whether the model is running. Going idle ends the pauses
// in progress.
func (p *Pacer) SetBusy(busy bool) {
	if p == nil || p.busy.Swap(busy) == busy {
		return
	}
	if !busy {
		p.mu.Lock()
		close(p.idle)
		p.idle = make(chan struct{})
		p.next = time.Time{}
		p.mu.Unlock()
	}
}

// Busy reports whether the model is running.
func (p *Pacer) Busy() bool { return p != nil && p.busy.Load() }

// Pace accounts for d of background work that just ended and, while busy,
// pauses until the writers' time is back within the share.
func (p *Pacer) Pace(d time.Duration) {
	wait, idle := p.charge(d)
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-idle:
	}
}

// charge adds d of work to the schedule and returns how long its caller
// must pause (0 when idle) and the channel closed when the driver goes
// idle.
func (p *Pacer) charge(d time.Duration) (time.Duration, <-chan struct{}) {
	if p == nil || p.share >= 1 || d <= 0 || !p.busy.Load() {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(d) * (1/p.share - 1)))
	wait := p.next.Sub(now)
	p.paused += wait
	return wait, p.idle
}

// Paused returns the total of the pauses Pace has asked writers for (a
// pause cut short by going idle counts whole).
func (p *Pacer) Paused() time.Duration {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}
