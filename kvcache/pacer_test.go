package kvcache

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewPacerRejectsBadShares(t *testing.T) {
	for _, share := range []float64{0, -0.5, 1.01, math.NaN(), math.Inf(1)} {
		_, err := NewPacer(share)
		assert.Error(t, err, "share %g", share)
	}
	p, err := NewPacer(0.25)
	require.NoError(t, err)
	assert.Equal(t, 0.25, p.Share())
}

// fakeClock is a settable clock for the Pacer's schedule.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestPacerSchedule(t *testing.T) {
	p, err := NewPacer(0.05)
	require.NoError(t, err)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p.now = clk.now

	wait, _ := p.charge(time.Millisecond)
	assert.Zero(t, wait, "idle: no pause")
	assert.False(t, p.Busy())

	p.SetBusy(true)
	assert.True(t, p.Busy())
	wait, idle := p.charge(time.Millisecond)
	assert.Equal(t, 19*time.Millisecond, wait, "1 ms of work at a 5%% share pauses 19 ms")
	require.NotNil(t, idle)
	// A second writer at the same moment shares the budget: it waits
	// behind the first one's pause.
	wait, _ = p.charge(time.Millisecond)
	assert.Equal(t, 38*time.Millisecond, wait)
	assert.Equal(t, 57*time.Millisecond, p.Paused())

	// Once the schedule has passed, work is charged from now.
	clk.t = clk.t.Add(time.Second)
	wait, _ = p.charge(2 * time.Millisecond)
	assert.Equal(t, 38*time.Millisecond, wait)

	// Going idle forgets the schedule and ends pauses.
	p.SetBusy(false)
	select {
	case <-idle:
	default:
		t.Fatal("going idle did not signal the pauses in progress")
	}
	wait, _ = p.charge(time.Millisecond)
	assert.Zero(t, wait)
	p.SetBusy(true)
	wait, _ = p.charge(time.Millisecond)
	assert.Equal(t, 19*time.Millisecond, wait, "no debt carried over an idle period")

	full, err := NewPacer(1)
	require.NoError(t, err)
	full.SetBusy(true)
	wait, _ = full.charge(time.Second)
	assert.Zero(t, wait, "share 1 never pauses")
}

func TestPacerIdleEndsPause(t *testing.T) {
	p, err := NewPacer(0.001)
	require.NoError(t, err)
	p.SetBusy(true)
	done := make(chan struct{})
	go func() {
		p.Pace(time.Hour) // a pause of about 1000 hours unless cut short
		close(done)
	}()
	require.Eventually(t, func() bool { return p.Paused() > 0 }, 10*time.Second, time.Millisecond)
	p.SetBusy(false)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Pace did not return when the pacer went idle")
	}
}

func TestNilPacer(t *testing.T) {
	var p *Pacer
	p.SetBusy(true)
	p.Pace(time.Hour)
	assert.False(t, p.Busy())
	assert.Zero(t, p.Paused())
}

// TestSavePaces: a Store with a busy Pacer pauses between block writes
// and charges every block; an idle one never pauses.
func TestSavePaces(t *testing.T) {
	const bb = 4096
	for _, busy := range []bool{false, true} {
		p, err := NewPacer(0.5)
		require.NoError(t, err)
		p.SetBusy(busy)
		s, err := OpenStore(t.TempDir(), testFP, StoreOptions{Pacer: p})
		require.NoError(t, err)
		snap := testSnapshot(seqTokens(1, 40), "m")
		saveTest(t, s, "a", snap, bb)
		if busy {
			assert.Positive(t, p.Paused(), "a busy pacer pauses the writer")
		} else {
			assert.Zero(t, p.Paused())
		}
		got, err := s.Load("a")
		require.NoError(t, err)
		assert.Equal(t, snap, got, "pacing changes nothing stored")
	}
}
