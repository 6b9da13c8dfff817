package nrt

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Tensor is a block of device memory (nrt_tensor_t), or a view of one made
// by Slice.
type Tensor struct {
	rt    *Runtime
	h     tensorHandle
	name  string
	cname *byte // name in C memory, freed with the tensor
	size  int
	sets  int // live set entries referencing the tensor (guarded by rt.mu)
	freed bool
}

// Alloc allocates a tensor of size bytes on core vnc
// (nrt_tensor_allocate). Use PlacementDevice: libnrt 2.32.31 removed
// VIRTUAL and HOST is deprecated. Fresh memory holds unspecified bytes.
func (r *Runtime) Alloc(p Placement, vnc, size int, name string) (*Tensor, error) {
	if size < 0 {
		return nil, fmt.Errorf("nrt: alloc %q: negative size %d", name, size)
	}
	if v := r.lib.version; size >= 4<<30 && v.Major != 0 && !v.AtLeast(2, 30, 50) {
		return nil, fmt.Errorf("nrt: alloc %q: %d bytes on libnrt %s: %w", name, size, v, ErrTooLarge)
	}
	if err := r.lock(); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	cname, err := r.fn.cString(name)
	if err != nil {
		return nil, err
	}
	var h tensorHandle
	if err := r.check("nrt_tensor_allocate", r.fn.tensorAllocate(int32(p), int32(vnc), uintptr(size), cname, &h)); err != nil {
		r.fn.freeCString(cname)
		return nil, err
	}
	return r.adoptLocked(h, name, cname, size)
}

// adoptLocked registers a fresh C tensor after checking its size.
func (r *Runtime) adoptLocked(h tensorHandle, name string, cname *byte, size int) (*Tensor, error) {
	if got := r.fn.tensorGetSize(h); got != uintptr(size) {
		r.fn.tensorFree(&h)
		r.fn.freeCString(cname)
		return nil, fmt.Errorf("nrt: tensor %q: nrt_tensor_get_size says %d bytes, asked for %d", name, got, size)
	}
	t := &Tensor{rt: r, h: h, name: name, cname: cname, size: size}
	r.tensors[t] = struct{}{}
	return t, nil
}

// Name returns the name given at allocation.
func (t *Tensor) Name() string { return t.name }

// Size returns the tensor's size in bytes.
func (t *Tensor) Size() int { return t.size }

// rlock takes the shared runtime lock for a call on a live tensor.
func (t *Tensor) rlock() error {
	if err := t.rt.rlock(); err != nil {
		return err
	}
	if t.freed {
		t.rt.mu.RUnlock()
		return ErrFreed
	}
	return nil
}

func (t *Tensor) checkRange(op string, off, n int) error {
	if off < 0 || n < 0 || off > t.size || n > t.size-off {
		return fmt.Errorf("nrt: %s %q: [%d, %d+%d) outside %d bytes: %w", op, t.name, off, off, n, t.size, ErrOutOfRange)
	}
	return nil
}

// Write copies src into the tensor at byte offset off (nrt_tensor_write,
// synchronous).
func (t *Tensor) Write(src []byte, off int) error {
	if err := t.checkRange("write", off, len(src)); err != nil {
		return err
	}
	if err := t.rlock(); err != nil {
		return err
	}
	defer t.rt.mu.RUnlock()
	err := t.rt.check("nrt_tensor_write", t.rt.fn.tensorWrite(t.h, unsafe.Pointer(unsafe.SliceData(src)), uintptr(off), uintptr(len(src))))
	runtime.KeepAlive(src)
	return err
}

// Read copies len(dst) bytes from the tensor at byte offset off into dst
// (nrt_tensor_read, synchronous).
func (t *Tensor) Read(dst []byte, off int) error {
	if err := t.checkRange("read", off, len(dst)); err != nil {
		return err
	}
	if err := t.rlock(); err != nil {
		return err
	}
	defer t.rt.mu.RUnlock()
	err := t.rt.check("nrt_tensor_read", t.rt.fn.tensorRead(t.h, unsafe.Pointer(unsafe.SliceData(dst)), uintptr(off), uintptr(len(dst))))
	runtime.KeepAlive(dst)
	return err
}

// Memset sets n bytes at offset off to v (nrt_tensor_memset).
func (t *Tensor) Memset(off, n int, v byte) error {
	if t.rt.fn.tensorMemset == nil {
		return fmt.Errorf("nrt_tensor_memset: %w", ErrUnsupported)
	}
	if err := t.checkRange("memset", off, n); err != nil {
		return err
	}
	if err := t.rlock(); err != nil {
		return err
	}
	defer t.rt.mu.RUnlock()
	return t.rt.check("nrt_tensor_memset", t.rt.fn.tensorMemset(t.h, uint64(off), int32(v), uintptr(n)))
}

// CopyTo copies n bytes from t at srcOff to dst at dstOff on the device
// (nrt_tensor_copy). Both device tensors must share a core.
func (t *Tensor) CopyTo(dst *Tensor, srcOff, dstOff, n int) error {
	if t.rt.fn.tensorCopy == nil {
		return fmt.Errorf("nrt_tensor_copy: %w", ErrUnsupported)
	}
	if dst == nil || dst.rt != t.rt {
		return fmt.Errorf("nrt: copy %q: destination from another runtime", t.name)
	}
	if err := t.checkRange("copy", srcOff, n); err != nil {
		return err
	}
	if err := dst.checkRange("copy", dstOff, n); err != nil {
		return err
	}
	if err := t.rlock(); err != nil {
		return err
	}
	defer t.rt.mu.RUnlock()
	if dst.freed {
		return ErrFreed
	}
	return t.rt.check("nrt_tensor_copy", t.rt.fn.tensorCopy(t.h, uintptr(srcOff), dst.h, uintptr(dstOff), uintptr(n)))
}

// Slice returns a view of n bytes of t at offset off, sharing its storage
// (nrt_tensor_allocate_slice). The storage lives until the last of t and
// its slices is freed; each must be freed on its own.
func (t *Tensor) Slice(off, n int, name string) (*Tensor, error) {
	r := t.rt
	if r.fn.tensorSlice == nil {
		return nil, fmt.Errorf("nrt_tensor_allocate_slice: %w", ErrUnsupported)
	}
	if err := t.checkRange("slice", off, n); err != nil {
		return nil, err
	}
	if err := r.lock(); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	if t.freed {
		return nil, ErrFreed
	}
	cname, err := r.fn.cString(name)
	if err != nil {
		return nil, err
	}
	var h tensorHandle
	if err := r.check("nrt_tensor_allocate_slice", r.fn.tensorSlice(t.h, uintptr(off), uintptr(n), cname, &h)); err != nil {
		r.fn.freeCString(cname)
		return nil, err
	}
	return r.adoptLocked(h, name, cname, n)
}

// Free frees the tensor (nrt_tensor_free). It fails with ErrInUse while a
// live tensor set references the tensor, and is a no-op after Close or a
// previous Free.
func (t *Tensor) Free() error {
	if err := t.rt.lock(); err != nil {
		return nil
	}
	defer t.rt.mu.Unlock()
	if t.freed {
		return nil
	}
	if t.sets > 0 {
		return fmt.Errorf("nrt: free %q: %w", t.name, ErrInUse)
	}
	t.freeLocked()
	return nil
}

func (t *Tensor) freeLocked() {
	if t.freed {
		return
	}
	t.freed = true
	delete(t.rt.tensors, t)
	t.rt.fn.tensorFree(&t.h)
	t.rt.fn.freeCString(t.cname)
	t.cname = nil
}

// TensorSet maps names to tensors for one side of an execution
// (nrt_tensor_set_t). It keeps the tensors it holds alive: they cannot be
// freed until the set is destroyed or the entry replaced.
type TensorSet struct {
	rt        *Runtime
	h         setHandle
	entries   map[string]*Tensor
	cnames    []*byte // keys in C memory, freed at Destroy
	destroyed bool
}

// NewTensorSet allocates an empty set (nrt_allocate_tensor_set).
func (r *Runtime) NewTensorSet() (*TensorSet, error) {
	if err := r.lock(); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	var h setHandle
	if err := r.check("nrt_allocate_tensor_set", r.fn.allocSet(&h)); err != nil {
		return nil, err
	}
	s := &TensorSet{rt: r, h: h, entries: map[string]*Tensor{}}
	r.sets[s] = struct{}{}
	return s, nil
}

// Add binds t under name, replacing any tensor bound to that name
// (nrt_add_tensor_to_tensor_set). The name may differ from the tensor's own.
func (s *TensorSet) Add(name string, t *Tensor) error {
	if t == nil || t.rt != s.rt {
		return fmt.Errorf("nrt: set add %q: tensor from another runtime", name)
	}
	r := s.rt
	if err := r.lock(); err != nil {
		return err
	}
	defer r.mu.Unlock()
	if s.destroyed || t.freed {
		return ErrFreed
	}
	cname, err := r.fn.cString(name)
	if err != nil {
		return err
	}
	if err := r.check("nrt_add_tensor_to_tensor_set", r.fn.addToSet(s.h, cname, t.h)); err != nil {
		r.fn.freeCString(cname)
		return err
	}
	// libnrt may keep the key pointer: keep every key until Destroy.
	s.cnames = append(s.cnames, cname)
	if old := s.entries[name]; old != nil {
		old.sets--
	}
	s.entries[name] = t
	t.sets++
	return nil
}

// Get returns the tensor bound to name (nrt_get_tensor_from_tensor_set);
// an unknown name is a *StatusError with NRT_FAILURE, as libnrt reports it.
func (s *TensorSet) Get(name string) (*Tensor, error) {
	r := s.rt
	if err := r.rlock(); err != nil {
		return nil, err
	}
	defer r.mu.RUnlock()
	if s.destroyed {
		return nil, ErrFreed
	}
	cname, err := r.fn.cString(name)
	if err != nil {
		return nil, err
	}
	defer r.fn.freeCString(cname)
	var h tensorHandle
	if err := r.check("nrt_get_tensor_from_tensor_set", r.fn.getFromSet(s.h, cname, &h)); err != nil {
		return nil, err
	}
	t := s.entries[name]
	if t == nil || t.h != h {
		return nil, fmt.Errorf("nrt: set get %q: libnrt returned a tensor this set did not bind", name)
	}
	return t, nil
}

// Len returns the number of bound names.
func (s *TensorSet) Len() int {
	s.rt.mu.RLock()
	defer s.rt.mu.RUnlock()
	return len(s.entries)
}

// Destroy destroys the set (nrt_destroy_tensor_set; the tensors stay) and
// releases its hold on them. It is a no-op after Close or a previous
// Destroy.
func (s *TensorSet) Destroy() error {
	if err := s.rt.lock(); err != nil {
		return nil
	}
	defer s.rt.mu.Unlock()
	s.destroyLocked()
	return nil
}

func (s *TensorSet) destroyLocked() {
	if s.destroyed {
		return
	}
	s.destroyed = true
	delete(s.rt.sets, s)
	s.rt.fn.destroySet(&s.h)
	for _, t := range s.entries {
		t.sets--
	}
	s.entries = nil
	for _, c := range s.cnames {
		s.rt.fn.freeCString(c)
	}
	s.cnames = nil
}
