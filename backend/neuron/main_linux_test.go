//go:build linux

package neuron_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/neuron"
	"github.com/mnemo-ai/mnemo/backend/neuron/neurontest"
	"github.com/mnemo-ai/mnemo/backend/neuron/nrt/nrttest"
)

// fake is the fake libnrt shared by the tests; fakeErr says why it is
// unavailable.
var (
	fake    *nrttest.Fake
	fakeErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mnemo-neuron-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fake, fakeErr = neurontest.BuildFake(dir)
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// needFake skips the test without the fake libnrt and resets it.
func needFake(t *testing.T) *nrttest.Fake {
	t.Helper()
	if fakeErr != nil {
		t.Skipf("fake libnrt unavailable (it is built with $CC or cc): %v", fakeErr)
	}
	fake.Reset()
	return fake
}

// openNeuron writes a NEFF directory for specs and opens the backend on it.
// The test closes it (and checks Close's error); a cleanup closes it too,
// so that a failed test leaves the process's one runtime free.
func openNeuron(t *testing.T, buckets []int, specs []backend.Spec) *neuron.Backend {
	t.Helper()
	needFake(t)
	dir := t.TempDir()
	_, err := neurontest.WriteDir(dir, buckets, specs)
	require.NoError(t, err)
	b, err := neuron.Open(backend.Options{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// recorder wraps a backend and records every well-formed Spec asked of
// it, so a test can write the NEFF directory another backend needs. It
// rounds step sizes to buckets when set.
type recorder struct {
	backend.Backend
	buckets []int

	mu       sync.Mutex
	specs    []backend.Spec
	compiled []backend.Spec
}

func (r *recorder) note(s backend.Spec, compiled bool) {
	if _, _, err := backend.Signature(s); err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.specs, s) {
		r.specs = append(r.specs, s)
	}
	if compiled {
		r.compiled = append(r.compiled, s)
	}
}

func (r *recorder) Supports(s backend.Spec) error {
	r.note(s, false)
	return r.Backend.Supports(s)
}

func (r *recorder) Compile(ctx context.Context, s backend.Spec) (backend.Program, error) {
	p, err := r.Backend.Compile(ctx, s)
	r.note(s, err == nil)
	return p, err
}

func (r *recorder) Bucket(n int) int {
	for _, b := range r.buckets {
		if b >= n {
			return b
		}
	}
	if bk, ok := r.Backend.(backend.Bucketer); ok {
		return bk.Bucket(n)
	}
	return n
}

// compiledMs returns the M of every compiled spec of op.
func (r *recorder) compiledMs(op backend.Op) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ms []int
	for _, s := range r.compiled {
		if s.Op == op && !slices.Contains(ms, s.M) {
			ms = append(ms, s.M)
		}
	}
	slices.Sort(ms)
	return ms
}
