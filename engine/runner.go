package engine

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mnemo-ai/mnemo/backend"
)

// Runner holds what every architecture needs around its graph: a cache of
// compiled programs keyed by Spec, and activation buffers reused across
// steps (views of one buffer at its largest size where the backend allows,
// else one buffer per bucket shape).
type Runner struct {
	be    backend.Backend
	progs map[backend.Spec]backend.Program
	max   map[string]backend.Buffer // name → buffer at the largest shape (Viewer backends)
	exact map[string]backend.Buffer // name+shape → buffer
	raw   []byte
	prof  map[backend.Spec]*OpTime // nil unless profiling
}

// OpTime is the time a Runner spent running the programs of one Spec
// while profiling.
type OpTime struct {
	Spec  backend.Spec
	Calls int
	Time  time.Duration
}

// SetProfiling starts (on) or stops timing every program the Runner runs.
// Starting clears what was recorded. Timing adds two clock reads per
// program; backends that run asynchronously are timed as they return.
func (r *Runner) SetProfiling(on bool) {
	r.prof = nil
	if on {
		r.prof = map[backend.Spec]*OpTime{}
	}
}

// Profile returns the time recorded per Spec since SetProfiling(true),
// most time first.
func (r *Runner) Profile() []OpTime {
	out := make([]OpTime, 0, len(r.prof))
	for _, t := range r.prof {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b OpTime) int { return cmp.Compare(b.Time, a.Time) })
	return out
}

// NewRunner returns a Runner on be.
func NewRunner(be backend.Backend) *Runner {
	return &Runner{be: be, progs: map[backend.Spec]backend.Program{},
		max: map[string]backend.Buffer{}, exact: map[string]backend.Buffer{}}
}

// Backend returns the runner's backend.
func (r *Runner) Backend() backend.Backend { return r.be }

// Bucket rounds a step dimension up as the backend wants (powers of two
// unless it says otherwise).
func (r *Runner) Bucket(n int) int {
	if b, ok := r.be.(backend.Bucketer); ok {
		return b.Bucket(n)
	}
	p := 1
	for p < n {
		p *= 2
	}
	return p
}

// Run compiles spec on first use and runs it.
func (r *Runner) Run(ctx context.Context, spec backend.Spec, in, out []backend.Buffer) error {
	p, ok := r.progs[spec]
	if !ok {
		var err error
		if p, err = r.be.Compile(ctx, spec); err != nil {
			return err
		}
		r.progs[spec] = p
	}
	if r.prof == nil {
		return p.Run(ctx, in, out)
	}
	start := time.Now()
	err := p.Run(ctx, in, out)
	t := r.prof[spec]
	if t == nil {
		t = &OpTime{Spec: spec}
		r.prof[spec] = t
	}
	t.Calls++
	t.Time += time.Since(start)
	return err
}

// Buf returns the activation buffer called name with the given shape.
// maxRows is the largest first dimension the buffer will be asked for;
// backends with views allocate that once.
func (r *Runner) Buf(name string, dt backend.DType, shape backend.Shape, maxRows int) (backend.Buffer, error) {
	if big, ok := r.max[name]; ok {
		if big.Shape()[0] >= shape[0] && big.DType() == dt {
			return big.(backend.Viewer).View(shape)
		}
	}
	key := fmt.Sprint(name, dt, shape)
	if b, ok := r.exact[key]; ok {
		return b, nil
	}
	full := append(backend.Shape{max(maxRows, shape[0])}, shape[1:]...)
	b, err := r.be.Alloc(dt, full)
	if err != nil {
		return nil, fmt.Errorf("activation %s%s: %w", name, full, err)
	}
	if v, ok := b.(backend.Viewer); ok {
		if old := r.max[name]; old != nil {
			old.Close()
		}
		r.max[name] = b
		return v.View(shape)
	}
	b.Close()
	b, err = r.be.Alloc(dt, shape)
	if err != nil {
		return nil, fmt.Errorf("activation %s%s: %w", name, shape, err)
	}
	r.exact[key] = b
	return b, nil
}

// WriteI32 writes int32s into buf.
func (r *Runner) WriteI32(buf backend.Buffer, v []int32) error {
	r.raw = i32Bytes(v, r.raw)
	return buf.Write(r.raw)
}

// ReadF32 reads an f32 buffer, without a copy when it lives in host memory.
func (r *Runner) ReadF32(buf backend.Buffer) ([]float32, error) {
	if h, ok := buf.(backend.HostBuffer); ok && h.F32() != nil {
		return h.F32(), nil
	}
	n, err := backend.HostBytes(buf.DType(), buf.Shape())
	if err != nil {
		return nil, err
	}
	raw := make([]byte, n)
	if err := buf.Read(raw); err != nil {
		return nil, err
	}
	out := make([]float32, n/4)
	for i := range out {
		out[i] = float32frombits(raw[4*i:])
	}
	return out, nil
}

// Close frees every program and buffer.
func (r *Runner) Close() error {
	for _, p := range r.progs {
		p.Close()
	}
	for _, b := range r.max {
		b.Close()
	}
	for _, b := range r.exact {
		b.Close()
	}
	clear(r.progs)
	clear(r.max)
	clear(r.exact)
	return nil
}
