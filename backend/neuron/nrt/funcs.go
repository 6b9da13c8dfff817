package nrt

import (
	"fmt"
	"strings"
	"unsafe"
)

// funcs is the raw libnrt function table: one typed Go func per C function
// (C type to Go: enum/int/NRT_STATUS to int32, size_t to uintptr, handles
// to the named uintptr types, other pointers to Go pointers or
// unsafe.Pointer). Optional functions may be nil. The loader fills it with
// purego; unit tests fill it with Go closures.
type funcs struct {
	// NRT_STATUS nrt_init(nrt_framework_type_t framework, const char *fw_version, const char *fal_version);
	init func(framework int32, fwVersion, falVersion *byte) int32
	// void nrt_close(void);
	close func()
	// NRT_STATUS nrt_get_version(nrt_version_t *ver, size_t size); (optional, callable before init)
	getVersion func(ver *cVersion, size uintptr) int32
	// NRT_STATUS nrt_get_total_vnc_count(uint32_t *vnc_count); (optional; falls back to nrt_get_total_nc_count)
	getTotalVNC func(n *uint32) int32
	// NRT_STATUS nrt_get_visible_vnc_count(uint32_t *vnc_count); (optional; falls back to nrt_get_visible_nc_count)
	getVisibleVNC func(n *uint32) int32
	// NRT_STATUS nrt_load(const void *neff_bytes, size_t size, int32_t vnc, int32_t vnc_count, nrt_model_t **model);
	load func(neff unsafe.Pointer, size uintptr, vnc, vncCount int32, model *modelHandle) int32
	// NRT_STATUS nrt_unload(nrt_model_t *model);
	unload func(model modelHandle) int32
	// NRT_STATUS nrt_get_model_tensor_info(nrt_model_t *model, nrt_tensor_info_array_t **tensor_info);
	tensorInfo func(model modelHandle, info *unsafe.Pointer) int32
	// NRT_STATUS nrt_free_model_tensor_info(nrt_tensor_info_array_t *tensor_info);
	freeTensorInfo func(info unsafe.Pointer) int32
	// NRT_STATUS nrt_tensor_allocate(nrt_tensor_placement_t tensor_placement, int vnc, size_t size, const char *name, nrt_tensor_t **tensor);
	tensorAllocate func(placement, vnc int32, size uintptr, name *byte, tensor *tensorHandle) int32
	// void nrt_tensor_free(nrt_tensor_t **tensor);
	tensorFree func(tensor *tensorHandle)
	// NRT_STATUS nrt_tensor_write(nrt_tensor_t *tensor, const void *buf, size_t offset, size_t size);
	tensorWrite func(tensor tensorHandle, buf unsafe.Pointer, offset, size uintptr) int32
	// NRT_STATUS nrt_tensor_read(const nrt_tensor_t *tensor, void *buf, size_t offset, size_t size);
	tensorRead func(tensor tensorHandle, buf unsafe.Pointer, offset, size uintptr) int32
	// size_t nrt_tensor_get_size(const nrt_tensor_t *tensor);
	tensorGetSize func(tensor tensorHandle) uintptr
	// NRT_STATUS nrt_tensor_memset(nrt_tensor_t *tensor, uint64_t offset, int value, size_t size); (optional)
	tensorMemset func(tensor tensorHandle, offset uint64, value int32, size uintptr) int32
	// NRT_STATUS nrt_tensor_copy(const nrt_tensor_t *src, size_t src_offset, nrt_tensor_t *dst, size_t dst_offset, size_t size); (optional)
	tensorCopy func(src tensorHandle, srcOffset uintptr, dst tensorHandle, dstOffset, size uintptr) int32
	// NRT_STATUS nrt_tensor_allocate_slice(const nrt_tensor_t *tensor_source, size_t offset, size_t size, const char *name, nrt_tensor_t **tensor_slice); (optional)
	tensorSlice func(src tensorHandle, offset, size uintptr, name *byte, slice *tensorHandle) int32
	// NRT_STATUS nrt_allocate_tensor_set(nrt_tensor_set_t **result);
	allocSet func(set *setHandle) int32
	// NRT_STATUS nrt_add_tensor_to_tensor_set(nrt_tensor_set_t *tensor_set, const char *tensor_name, nrt_tensor_t *tensor);
	addToSet func(set setHandle, name *byte, tensor tensorHandle) int32
	// NRT_STATUS nrt_get_tensor_from_tensor_set(nrt_tensor_set_t *tensor_set, const char *tensor_name, nrt_tensor_t **tensor);
	getFromSet func(set setHandle, name *byte, tensor *tensorHandle) int32
	// void nrt_destroy_tensor_set(nrt_tensor_set_t **tensor_set);
	destroySet func(set *setHandle)
	// NRT_STATUS nrt_execute(nrt_model_t *model, const nrt_tensor_set_t *input_set, nrt_tensor_set_t *output_set);
	execute func(model modelHandle, in, out setHandle) int32
	// NRT_STATUS nrt_execute_repeat(nrt_model_t *model, const nrt_tensor_set_t *input_set, nrt_tensor_set_t *output_set, int repeat_count); (optional)
	executeRepeat func(model modelHandle, in, out setHandle, repeat int32) int32
	// const char *nrt_get_status_as_str(NRT_STATUS status); (optional)
	statusStr func(status int32) *byte

	// void *malloc(size_t size); from libc, for names handed to C.
	malloc func(size uintptr) unsafe.Pointer
	// void free(void *ptr); from libc.
	free func(ptr unsafe.Pointer)
}

// symbol names one table entry: the C names to try in order and whether the
// library is unusable without it.
type symbol struct {
	names    []string
	required bool
	fptr     any
}

// symbols lists every libnrt function the table binds.
func (f *funcs) symbols() []symbol {
	req := func(name string, fptr any) symbol { return symbol{[]string{name}, true, fptr} }
	opt := func(fptr any, names ...string) symbol { return symbol{names, false, fptr} }
	return []symbol{
		req("nrt_init", &f.init),
		req("nrt_close", &f.close),
		opt(&f.getVersion, "nrt_get_version"),
		opt(&f.getTotalVNC, "nrt_get_total_vnc_count", "nrt_get_total_nc_count"),
		opt(&f.getVisibleVNC, "nrt_get_visible_vnc_count", "nrt_get_visible_nc_count"),
		req("nrt_load", &f.load),
		req("nrt_unload", &f.unload),
		req("nrt_get_model_tensor_info", &f.tensorInfo),
		req("nrt_free_model_tensor_info", &f.freeTensorInfo),
		req("nrt_tensor_allocate", &f.tensorAllocate),
		req("nrt_tensor_free", &f.tensorFree),
		req("nrt_tensor_write", &f.tensorWrite),
		req("nrt_tensor_read", &f.tensorRead),
		req("nrt_tensor_get_size", &f.tensorGetSize),
		opt(&f.tensorMemset, "nrt_tensor_memset"),
		opt(&f.tensorCopy, "nrt_tensor_copy"),
		opt(&f.tensorSlice, "nrt_tensor_allocate_slice"),
		req("nrt_allocate_tensor_set", &f.allocSet),
		req("nrt_add_tensor_to_tensor_set", &f.addToSet),
		req("nrt_get_tensor_from_tensor_set", &f.getFromSet),
		req("nrt_destroy_tensor_set", &f.destroySet),
		req("nrt_execute", &f.execute),
		opt(&f.executeRepeat, "nrt_execute_repeat"),
		opt(&f.statusStr, "nrt_get_status_as_str"),
	}
}

// library is where a function table comes from: libnrt loaded with dlopen,
// or a Go fake in tests.
type library interface {
	// table returns the bound functions; it stays valid until close.
	table() *funcs
	// path names the library for errors.
	path() string
	// close releases the library (dlclose).
	close() error
}

// cString copies s into C memory as a NUL-terminated string, which the
// caller frees with freeCString.
func (f *funcs) cString(s string) (*byte, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, fmt.Errorf("nrt: name %q contains a NUL byte", s)
	}
	p := f.malloc(uintptr(len(s) + 1))
	if p == nil {
		return nil, fmt.Errorf("nrt: malloc %d bytes failed", len(s)+1)
	}
	b := unsafe.Slice((*byte)(p), len(s)+1)
	copy(b, s)
	b[len(s)] = 0
	return (*byte)(p), nil
}

// freeCString releases a cString result; nil is a no-op.
func (f *funcs) freeCString(p *byte) {
	if p != nil {
		f.free(unsafe.Pointer(p))
	}
}

// goString copies a NUL-terminated C string (nil gives "").
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}
