package nrt

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"
)

// AliasSuffix marks a model input that must be bound to the same tensor as
// the output named without it (compiler-generated in-place state such as KV
// caches: input "cache_k.must_alias_input", output "cache_k").
const AliasSuffix = ".must_alias_input"

// Model is a NEFF loaded on a NeuronCore (nrt_model_t).
type Model struct {
	rt       *Runtime
	h        modelHandle
	neff     []byte          // kept (and pinned) until unload: libnrt may keep it
	pin      *runtime.Pinner // pins neff
	inputs   []TensorInfo
	outputs  []TensorInfo
	unloaded bool
}

// Load loads a NEFF on core vnc (-1: the first free core; vnc_count is
// always -1, as the SDK 2.28 header asks) and reads its tensor info. The
// bytes stay pinned and referenced until Unload; do not modify them.
func (r *Runtime) Load(neff []byte, vnc int) (*Model, error) {
	if len(neff) == 0 {
		return nil, fmt.Errorf("nrt: load: empty NEFF")
	}
	if vnc < -1 {
		return nil, fmt.Errorf("nrt: load: bad core %d", vnc)
	}
	if err := r.lock(); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	if err := r.checkEnv(); err != nil {
		return nil, fmt.Errorf("nrt: load: %w", err)
	}
	pin := new(runtime.Pinner)
	pin.Pin(&neff[0])
	var h modelHandle
	if err := r.check("nrt_load", r.fn.load(unsafe.Pointer(&neff[0]), uintptr(len(neff)), int32(vnc), -1, &h)); err != nil {
		pin.Unpin()
		return nil, err
	}
	infos, err := r.tensorInfoLocked(h)
	if err != nil {
		_ = r.fn.unload(h)
		pin.Unpin()
		return nil, err
	}
	m := &Model{rt: r, h: h, neff: neff, pin: pin}
	for _, ti := range infos {
		if ti.Usage == UsageInput {
			m.inputs = append(m.inputs, ti)
		} else {
			m.outputs = append(m.outputs, ti)
		}
	}
	r.models[m] = struct{}{}
	return m, nil
}

// tensorInfoLocked copies the model's tensor info out of C memory and frees
// the C array.
func (r *Runtime) tensorInfoLocked(h modelHandle) (infos []TensorInfo, err error) {
	var arr unsafe.Pointer
	if err := r.check("nrt_get_model_tensor_info", r.fn.tensorInfo(h, &arr)); err != nil {
		return nil, err
	}
	defer func() {
		if ferr := r.check("nrt_free_model_tensor_info", r.fn.freeTensorInfo(arr)); ferr != nil && err == nil {
			infos, err = nil, ferr
		}
	}()
	infos, fellBack, err := readTensorInfo(arr, r.lib.version)
	if err != nil {
		return nil, err
	}
	if fellBack {
		r.logger.Warn("nrt: tensor dtype codes do not match this libnrt version's table; using the other numbering",
			"libnrt_version", r.lib.version.String())
	}
	return infos, nil
}

// IO returns copies of the model's input and output descriptions, in the
// order libnrt reported them.
func (m *Model) IO() (inputs, outputs []TensorInfo, err error) {
	if err := m.rt.rlock(); err != nil {
		return nil, nil, err
	}
	defer m.rt.mu.RUnlock()
	if m.unloaded {
		return nil, nil, ErrFreed
	}
	return cloneInfos(m.inputs), cloneInfos(m.outputs), nil
}

func cloneInfos(in []TensorInfo) []TensorInfo {
	out := make([]TensorInfo, len(in))
	for i, ti := range in {
		ti.Shape = append([]uint32(nil), ti.Shape...)
		out[i] = ti
	}
	return out
}

// Unload unloads the model (nrt_unload) and unpins its NEFF bytes. It is a
// no-op after Close or a previous Unload.
func (m *Model) Unload() error {
	if err := m.rt.lock(); err != nil {
		return nil
	}
	defer m.rt.mu.Unlock()
	return m.unloadLocked()
}

func (m *Model) unloadLocked() error {
	if m.unloaded {
		return nil
	}
	m.unloaded = true
	delete(m.rt.models, m)
	err := m.rt.check("nrt_unload", m.rt.fn.unload(m.h))
	m.pin.Unpin()
	m.neff = nil
	return err
}

// Execute runs the model synchronously on the input and output sets
// (nrt_execute). Executions on different models, or on one model from
// several goroutines, run concurrently; the sets must not change meanwhile
// (set changes wait for executions to finish). A NaN in the outputs gives an
// error for which IsNumeric is true, with the outputs written.
func (m *Model) Execute(in, out *TensorSet) error {
	return m.execute(in, out, 1)
}

// ExecuteRepeat runs the model n times, feeding outputs back as inputs
// (nrt_execute_repeat; needs a NEFF compiled for it).
func (m *Model) ExecuteRepeat(in, out *TensorSet, n int) error {
	if m.rt.fn.executeRepeat == nil {
		return fmt.Errorf("nrt_execute_repeat: %w", ErrUnsupported)
	}
	if n < 1 || n > 1<<30 {
		return fmt.Errorf("nrt: execute repeat: bad count %d", n)
	}
	return m.execute(in, out, n)
}

func (m *Model) execute(in, out *TensorSet, n int) error {
	if in == nil || out == nil {
		return fmt.Errorf("nrt: execute: nil tensor set")
	}
	r := m.rt
	if in.rt != r || out.rt != r {
		return fmt.Errorf("nrt: execute: tensor set from another runtime")
	}
	if err := r.rlock(); err != nil {
		return err
	}
	defer r.mu.RUnlock()
	if m.unloaded || in.destroyed || out.destroyed {
		return ErrFreed
	}
	var code int32
	op := "nrt_execute"
	if n == 1 {
		code = r.fn.execute(m.h, in.h, out.h)
	} else {
		op = "nrt_execute_repeat"
		code = r.fn.executeRepeat(m.h, in.h, out.h, int32(n))
	}
	runtime.KeepAlive(in)
	runtime.KeepAlive(out)
	return r.check(op, code)
}

// Bind builds an input and an output set for the model from tensors keyed
// by model tensor name. An input "X.must_alias_input" absent from tensors
// is bound to tensors["X"], the aliased output. Every model tensor must be
// bound; extra entries are an error too (they usually mean a typo).
func (m *Model) Bind(tensors map[string]*Tensor) (in, out *TensorSet, err error) {
	inputs, outputs, err := m.IO()
	if err != nil {
		return nil, nil, err
	}
	used := map[string]bool{}
	pick := func(ti TensorInfo) (*Tensor, error) {
		if t, ok := tensors[ti.Name]; ok {
			used[ti.Name] = true
			return t, nil
		}
		if base, ok := strings.CutSuffix(ti.Name, AliasSuffix); ok && ti.Usage == UsageInput {
			if t, ok := tensors[base]; ok {
				return t, nil
			}
		}
		return nil, fmt.Errorf("nrt: bind: no tensor for %s %q", ti.Usage, ti.Name)
	}
	if in, err = m.rt.NewTensorSet(); err != nil {
		return nil, nil, err
	}
	if out, err = m.rt.NewTensorSet(); err != nil {
		_ = in.Destroy()
		return nil, nil, err
	}
	fail := func(err error) (*TensorSet, *TensorSet, error) {
		_ = in.Destroy()
		_ = out.Destroy()
		return nil, nil, err
	}
	for _, group := range []struct {
		infos []TensorInfo
		set   *TensorSet
	}{{inputs, in}, {outputs, out}} {
		for _, ti := range group.infos {
			t, err := pick(ti)
			if err != nil {
				return fail(err)
			}
			if t.Size() != ti.Size {
				return fail(fmt.Errorf("nrt: bind %q: tensor is %d bytes, model wants %d", ti.Name, t.Size(), ti.Size))
			}
			if err := group.set.Add(ti.Name, t); err != nil {
				return fail(fmt.Errorf("nrt: bind %q: %w", ti.Name, err))
			}
		}
	}
	for name := range tensors {
		if !used[name] {
			return fail(fmt.Errorf("nrt: bind: %q is not a tensor of the model", name))
		}
	}
	return in, out, nil
}
