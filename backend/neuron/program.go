package neuron

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/neuron/nrt"
)

// Program is a loaded NEFF.
type Program struct {
	b        *Backend
	spec     backend.Spec
	in, out  []backend.Param
	inNames  []string
	outNames []string
	alias    []int // alias[i]: the output input i must be (in-place), or -1
	model    *nrt.Model
	neff     string
	closed   atomic.Bool
}

// Compile loads the NEFF the manifest lists for spec and checks that its
// tensors are the ones the manifest names, with the signature's sizes.
func (b *Backend) Compile(ctx context.Context, spec backend.Spec) (backend.Program, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := b.Supports(spec); err != nil {
		return nil, err
	}
	e := b.index[spec]
	in, out, _ := backend.Signature(spec)
	p := &Program{b: b, spec: spec, in: in, out: out, inNames: e.Inputs, outNames: e.Outputs,
		neff: filepath.Join(b.dir, e.NEFF)}
	p.alias = make([]int, len(in))
	for i, name := range e.Inputs {
		p.alias[i] = -1
		if base, ok := strings.CutSuffix(name, nrt.AliasSuffix); ok {
			for j, o := range e.Outputs {
				if o == base {
					p.alias[i] = j
				}
			}
			if p.alias[i] < 0 {
				return nil, fmt.Errorf("neuron compile %s: input %q has no output %q to alias", spec, name, base)
			}
		}
	}
	data, err := os.ReadFile(p.neff)
	if err != nil {
		return nil, fmt.Errorf("neuron compile %s: %w", spec, err)
	}
	m, err := b.rt.Load(data, -1)
	if err != nil {
		return nil, fmt.Errorf("neuron compile %s: load %s: %w", spec, p.neff, err)
	}
	if err := p.checkIO(m); err != nil {
		return nil, errors.Join(fmt.Errorf("neuron compile %s: %s: %w", spec, p.neff, err), m.Unload())
	}
	p.model = m
	b.leaks.Track(p, "program "+spec.String())
	return p, nil
}

// checkIO verifies that the model's tensors are exactly the manifest's
// names, each the size of its buffer.
func (p *Program) checkIO(m *nrt.Model) error {
	inputs, outputs, err := m.IO()
	if err != nil {
		return err
	}
	for _, side := range []struct {
		what   string
		infos  []nrt.TensorInfo
		names  []string
		params []backend.Param
	}{{"input", inputs, p.inNames, p.in}, {"output", outputs, p.outNames, p.out}} {
		if len(side.infos) != len(side.names) {
			return fmt.Errorf("%w: the NEFF has %d %ss, the manifest names %d", backend.ErrSignature, len(side.infos), side.what, len(side.names))
		}
		for i, name := range side.names {
			want, _ := backend.HostBytes(side.params[i].DType, side.params[i].Shape)
			found := false
			for _, ti := range side.infos {
				if ti.Name != name {
					continue
				}
				found = true
				if ti.Size != want {
					return fmt.Errorf("%w: %s %q is %d bytes, %s%s needs %d", backend.ErrSignature, side.what, name, ti.Size,
						side.params[i].DType, side.params[i].Shape, want)
				}
			}
			if !found {
				return fmt.Errorf("%w: the NEFF has no %s %q", backend.ErrSignature, side.what, name)
			}
		}
	}
	return nil
}

// Spec returns what the program was compiled for.
func (p *Program) Spec() backend.Spec { return p.spec }

// Close unloads the NEFF.
func (p *Program) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.b.leaks.Untrack(p)
	if err := p.model.Unload(); err != nil {
		return fmt.Errorf("neuron close %s: %w", p.spec, err)
	}
	return nil
}

// Run binds the buffers to the NEFF's tensors and executes it. Execution
// errors wrap the runtime's *nrt.StatusError (classify them with
// nrt.IsInput, nrt.IsNumeric, nrt.IsFatalDevice, ...); a fatal device
// error also marks the backend unhealthy.
func (p *Program) Run(ctx context.Context, in, out []backend.Buffer) error {
	if p.closed.Load() {
		return backend.ErrClosed
	}
	if err := p.b.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := backend.CheckRun(p.spec, in, out, p.in, p.out); err != nil {
		return err
	}
	bi, err := p.own(in)
	if err != nil {
		return err
	}
	bo, err := p.own(out)
	if err != nil {
		return err
	}
	for i, j := range p.alias {
		if j >= 0 && bi[i] != bo[j] {
			return fmt.Errorf("run %s: %w: %s is updated in place: pass the same buffer as input %d and output %d",
				p.spec, backend.ErrSignature, p.outNames[j], i, j)
		}
	}
	for i, buf := range bi {
		if _, weights := buf.dt.Format(); weights && !buf.written.Load() {
			return fmt.Errorf("run %s: input %d (%s): weights were never written", p.spec, i, p.in[i].Name)
		}
	}
	if err := p.execute(bi, bo); err != nil {
		if e := p.b.Err(); e != nil {
			return fmt.Errorf("run %s: %w", p.spec, e)
		}
		return fmt.Errorf("run %s: %w", p.spec, err)
	}
	return nil
}

// execute builds the tensor sets for one execution and runs the model.
func (p *Program) execute(bi, bo []*Buffer) (err error) {
	rt := p.b.rt
	ins, err := rt.NewTensorSet()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, ins.Destroy()) }()
	outs, err := rt.NewTensorSet()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, outs.Destroy()) }()
	for i, buf := range bi {
		if err := ins.Add(p.inNames[i], buf.t); err != nil {
			return err
		}
	}
	for i, buf := range bo {
		if err := outs.Add(p.outNames[i], buf.t); err != nil {
			return err
		}
	}
	return p.model.Execute(ins, outs)
}

// own checks that every buffer is an open buffer of this backend.
func (p *Program) own(bufs []backend.Buffer) ([]*Buffer, error) {
	out := make([]*Buffer, len(bufs))
	for i, x := range bufs {
		buf, ok := x.(*Buffer)
		if !ok || buf.b != p.b {
			return nil, fmt.Errorf("run %s: %w: buffer %d belongs to another backend", p.spec, backend.ErrSignature, i)
		}
		if buf.closed.Load() {
			return nil, fmt.Errorf("run %s: buffer %d: %w", p.spec, i, backend.ErrClosed)
		}
		out[i] = buf
	}
	return out, nil
}
