package nrt

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goFake is a libnrt written in Go behind the function table: one model
// with input "x" and output "y" (f32 [2]) whose execution copies x to y. It
// needs no C compiler and checks what the binding hands it: live handles,
// C-memory names, freed info arrays.
type goFake struct {
	mu      sync.Mutex
	fn      funcs
	inited  bool
	next    uintptr
	models  map[modelHandle]bool
	tensors map[tensorHandle][]byte
	sets    map[setHandle]map[string]tensorHandle
	infos   map[unsafe.Pointer][][]uint32 // live info arrays and their shapes
	arrays  [][]uint64                    // info array memory, kept alive
	cmem    map[unsafe.Pointer][]byte     // "malloc" blocks
	fail    map[string]int32              // next call of fn returns the status
	calls   []string
	misuse  []string
}

func newGoFake() *goFake {
	g := &goFake{
		models:  map[modelHandle]bool{},
		tensors: map[tensorHandle][]byte{},
		sets:    map[setHandle]map[string]tensorHandle{},
		infos:   map[unsafe.Pointer][][]uint32{},
		cmem:    map[unsafe.Pointer][]byte{},
		fail:    map[string]int32{},
	}
	g.fn = funcs{
		init: func(fw int32, a, b *byte) int32 {
			return g.call("nrt_init", func() int32 {
				if g.inited || fw != 1 || !g.isCString(a) || !g.isCString(b) {
					return int32(StatusInvalid)
				}
				g.inited = true
				return 0
			})
		},
		close: func() {
			g.call("nrt_close", func() int32 { g.inited = false; return 0 })
		},
		getVersion: func(v *cVersion, size uintptr) int32 {
			return g.call("nrt_get_version", func() int32 {
				if size != unsafe.Sizeof(*v) {
					return int32(StatusInvalid)
				}
				*v = cVersion{Major: 2, Minor: 29, Patch: 1}
				copy(v.Detail[:], "gofake")
				return 0
			})
		},
		getVisibleVNC: func(n *uint32) int32 { return g.call("nrt_get_visible_vnc_count", func() int32 { *n = 2; return 0 }) },
		load: func(neff unsafe.Pointer, size uintptr, vnc, vncCount int32, m *modelHandle) int32 {
			return g.call("nrt_load", func() int32 {
				if neff == nil || string(unsafe.Slice((*byte)(neff), size)) != "gofake-neff" || vncCount != -1 {
					return int32(StatusInvalid)
				}
				*m = modelHandle(g.handle())
				g.models[*m] = true
				return 0
			})
		},
		unload: func(m modelHandle) int32 {
			return g.call("nrt_unload", func() int32 {
				if !g.models[m] {
					return g.bad("unload")
				}
				delete(g.models, m)
				return 0
			})
		},
		tensorInfo: func(m modelHandle, out *unsafe.Pointer) int32 {
			return g.call("nrt_get_model_tensor_info", func() int32 {
				if !g.models[m] {
					return g.bad("tensor info")
				}
				*out = g.infoArray()
				return 0
			})
		},
		freeTensorInfo: func(arr unsafe.Pointer) int32 {
			return g.call("nrt_free_model_tensor_info", func() int32 {
				if _, ok := g.infos[arr]; !ok {
					return g.bad("free info")
				}
				delete(g.infos, arr)
				return 0
			})
		},
		tensorAllocate: func(p, vnc int32, size uintptr, name *byte, t *tensorHandle) int32 {
			return g.call("nrt_tensor_allocate", func() int32 {
				if !g.isCString(name) {
					return g.bad("name not in C memory")
				}
				*t = tensorHandle(g.handle())
				g.tensors[*t] = make([]byte, size)
				return 0
			})
		},
		tensorFree: func(t *tensorHandle) {
			g.call("nrt_tensor_free", func() int32 {
				if _, ok := g.tensors[*t]; !ok {
					g.bad("free")
				}
				for _, s := range g.sets {
					for _, h := range s {
						if h == *t {
							g.bad("free of a tensor in a set")
						}
					}
				}
				delete(g.tensors, *t)
				*t = 0
				return 0
			})
		},
		tensorWrite: func(t tensorHandle, buf unsafe.Pointer, off, n uintptr) int32 {
			return g.call("nrt_tensor_write", func() int32 {
				b, ok := g.tensors[t]
				if !ok {
					return g.bad("write")
				}
				if n > 0 {
					copy(b[off:off+n], unsafe.Slice((*byte)(buf), n))
				}
				return 0
			})
		},
		tensorRead: func(t tensorHandle, buf unsafe.Pointer, off, n uintptr) int32 {
			return g.call("nrt_tensor_read", func() int32 {
				b, ok := g.tensors[t]
				if !ok {
					return g.bad("read")
				}
				if n > 0 {
					copy(unsafe.Slice((*byte)(buf), n), b[off:off+n])
				}
				return 0
			})
		},
		tensorGetSize: func(t tensorHandle) uintptr {
			g.mu.Lock()
			defer g.mu.Unlock()
			return uintptr(len(g.tensors[t]))
		},
		allocSet: func(s *setHandle) int32 {
			return g.call("nrt_allocate_tensor_set", func() int32 {
				*s = setHandle(g.handle())
				g.sets[*s] = map[string]tensorHandle{}
				return 0
			})
		},
		addToSet: func(s setHandle, name *byte, t tensorHandle) int32 {
			return g.call("nrt_add_tensor_to_tensor_set", func() int32 {
				set, ok := g.sets[s]
				if _, tok := g.tensors[t]; !ok || !tok || !g.isCString(name) {
					return g.bad("add")
				}
				set[goString(name)] = t
				return 0
			})
		},
		getFromSet: func(s setHandle, name *byte, t *tensorHandle) int32 {
			return g.call("nrt_get_tensor_from_tensor_set", func() int32 {
				h, ok := g.sets[s][goString(name)]
				if !ok {
					return int32(StatusFailure)
				}
				*t = h
				return 0
			})
		},
		destroySet: func(s *setHandle) {
			g.call("nrt_destroy_tensor_set", func() int32 {
				if _, ok := g.sets[*s]; !ok {
					g.bad("destroy")
				}
				delete(g.sets, *s)
				*s = 0
				return 0
			})
		},
		execute: func(m modelHandle, in, out setHandle) int32 {
			return g.call("nrt_execute", func() int32 {
				x, y := g.sets[in]["x"], g.sets[out]["y"]
				if !g.models[m] || g.tensors[x] == nil || g.tensors[y] == nil {
					return int32(StatusInvalid)
				}
				copy(g.tensors[y], g.tensors[x])
				return 0
			})
		},
		malloc: func(n uintptr) unsafe.Pointer {
			g.mu.Lock()
			defer g.mu.Unlock()
			b := make([]byte, n)
			g.cmem[unsafe.Pointer(&b[0])] = b
			return unsafe.Pointer(&b[0])
		},
		free: func(p unsafe.Pointer) {
			g.mu.Lock()
			defer g.mu.Unlock()
			if _, ok := g.cmem[p]; !ok {
				g.misuse = append(g.misuse, "free of unknown memory")
			}
			delete(g.cmem, p)
		},
	}
	return g
}

func (g *goFake) table() *funcs   { return &g.fn }
func (g *goFake) path() string    { return "gofake" }
func (g *goFake) close() error    { return nil }
func (g *goFake) handle() uintptr { g.next += 16; return 0x1000 + g.next }

// call records the call and runs body unless a failure is queued or the
// runtime is not initialised.
func (g *goFake) call(fn string, body func() int32) int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, fn)
	if st, ok := g.fail[fn]; ok {
		delete(g.fail, fn)
		return st
	}
	if !g.inited && fn != "nrt_init" && fn != "nrt_get_version" && fn != "nrt_close" {
		return int32(StatusUninitialized)
	}
	return body()
}

func (g *goFake) bad(what string) int32 {
	g.misuse = append(g.misuse, what)
	return int32(StatusInvalidHandle)
}

func (g *goFake) isCString(p *byte) bool {
	b, ok := g.cmem[unsafe.Pointer(p)]
	return ok && b[len(b)-1] == 0
}

// infoArray lays out nrt_tensor_info_array_t for x and y in Go memory.
func (g *goFake) infoArray() unsafe.Pointer {
	buf := make([]uint64, (infoArrayHead+2*infoSize)/8)
	arr := unsafe.Pointer(&buf[0])
	*(*uint64)(arr) = 2
	var shapes [][]uint32
	for i, name := range []string{"x", "y"} {
		base := unsafe.Add(arr, infoArrayHead+i*infoSize)
		copy(unsafe.Slice((*byte)(base), infoNameMax), name)
		*(*int32)(unsafe.Add(base, infoUsageOff)) = int32(i)
		*(*uint64)(unsafe.Add(base, infoSizeOff)) = 8
		*(*int32)(unsafe.Add(base, infoDTypeOff)) = 1 // FLOAT32 in the sequential table
		shape := []uint32{2}
		shapes = append(shapes, shape)
		*(*unsafe.Pointer)(unsafe.Add(base, infoShapeOff)) = unsafe.Pointer(&shape[0])
		*(*uint32)(unsafe.Add(base, infoNDimOff)) = 1
	}
	g.infos[arr] = shapes
	g.arrays = append(g.arrays, buf)
	return arr
}

func TestGoFakeLifecycle(t *testing.T) {
	g := newGoFake()
	lib, err := newLib(g)
	require.NoError(t, err)
	v, err := lib.Version()
	require.NoError(t, err)
	assert.Equal(t, Version{Major: 2, Minor: 29, Patch: 1, Detail: "gofake"}, v)
	assert.False(t, lib.Has("nrt_tensor_memset"))
	assert.True(t, lib.Has("nrt_execute"))

	rt, err := lib.Init(Config{})
	require.NoError(t, err)
	n, err := rt.VisibleCores()
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	_, err = rt.TotalCores()
	assert.ErrorIs(t, err, ErrUnsupported)

	m, err := rt.Load([]byte("gofake-neff"), -1)
	require.NoError(t, err)
	ins, outs, err := m.IO()
	require.NoError(t, err)
	assert.Equal(t, []TensorInfo{{Name: "x", Usage: UsageInput, Size: 8, DType: DTypeF32, RawDType: 1, Shape: []uint32{2}, DTypeChecked: true}}, ins)
	assert.Equal(t, "y", outs[0].Name)
	assert.Empty(t, g.infos, "info array freed")

	x, err := rt.Alloc(PlacementDevice, 0, 8, "x")
	require.NoError(t, err)
	y, err := rt.Alloc(PlacementDevice, 0, 8, "y")
	require.NoError(t, err)
	require.NoError(t, x.Write([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 0))
	in, out, err := m.Bind(map[string]*Tensor{"x": x, "y": y})
	require.NoError(t, err)
	require.NoError(t, m.Execute(in, out))
	got := make([]byte, 8)
	require.NoError(t, y.Read(got, 0))
	assert.Equal(t, []byte{1, 2, 3, 4, 5, 6, 7, 8}, got)

	// Optional functions the fake lacks.
	assert.ErrorIs(t, x.Memset(0, 1, 0), ErrUnsupported)
	assert.ErrorIs(t, x.CopyTo(y, 0, 0, 1), ErrUnsupported)
	_, err = x.Slice(0, 1, "s")
	assert.ErrorIs(t, err, ErrUnsupported)
	assert.ErrorIs(t, m.ExecuteRepeat(in, out, 2), ErrUnsupported)
	assert.Equal(t, "NRT_TIMEOUT", lib.StatusString(StatusTimeout))

	// Failures surface as typed errors.
	g.fail["nrt_execute"] = int32(StatusExecNCBusy)
	err = m.Execute(in, out)
	assert.True(t, IsRetryable(err))
	g.fail["nrt_tensor_allocate"] = int32(StatusResource)
	_, err = rt.Alloc(PlacementDevice, 0, 8, "z")
	assert.True(t, IsResource(err))
	_, err = rt.Alloc(PlacementDevice, 0, 8, "bad\x00name")
	assert.ErrorContains(t, err, "NUL")

	require.NoError(t, lib.Close())
	assert.ErrorIs(t, m.Execute(in, out), ErrClosed)
	assert.NoError(t, x.Free())
	assert.Empty(t, g.misuse)
	assert.Empty(t, g.cmem, "every C string was freed")
	assert.Empty(t, g.tensors)
	assert.Empty(t, g.sets)
	assert.Empty(t, g.models)
	assert.Equal(t, "nrt_close", g.calls[len(g.calls)-1])
	_, err = lib.Init(Config{})
	assert.ErrorIs(t, err, ErrLibClosed)
}

func TestGoFakeLoadFailureCleansUp(t *testing.T) {
	g := newGoFake()
	lib, err := newLib(g)
	require.NoError(t, err)
	defer func() { assert.NoError(t, lib.Close()) }()
	rt, err := lib.Init(Config{})
	require.NoError(t, err)
	g.fail["nrt_get_model_tensor_info"] = int32(StatusFailure)
	_, err = rt.Load([]byte("gofake-neff"), 0)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "nrt_get_model_tensor_info", se.Op)
	assert.Empty(t, g.models, "the model was unloaded")
	g.fail["nrt_free_model_tensor_info"] = int32(StatusInvalidHandle)
	_, err = rt.Load([]byte("gofake-neff"), 0)
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "nrt_free_model_tensor_info", se.Op)
	assert.Empty(t, g.models)
}

func TestSymbolTable(t *testing.T) {
	var f funcs
	seen := map[string]bool{}
	required := map[string]bool{}
	for _, s := range f.symbols() {
		require.NotEmpty(t, s.names)
		for _, n := range s.names {
			assert.False(t, seen[n], "duplicate %s", n)
			seen[n] = true
			assert.True(t, strings.HasPrefix(n, "nrt_"), n)
		}
		assert.True(t, isNilFunc(s.fptr), "%s starts unset", s.names[0])
		if s.required {
			required[s.names[0]] = true
		}
	}
	for _, n := range []string{"nrt_init", "nrt_close", "nrt_load", "nrt_unload", "nrt_execute",
		"nrt_tensor_allocate", "nrt_tensor_free", "nrt_tensor_read", "nrt_tensor_write",
		"nrt_get_model_tensor_info", "nrt_free_model_tensor_info", "nrt_allocate_tensor_set",
		"nrt_destroy_tensor_set", "nrt_add_tensor_to_tensor_set"} {
		assert.True(t, required[n], n)
	}
	assert.False(t, required["nrt_get_status_as_str"])
	assert.True(t, seen["nrt_get_visible_nc_count"], "deprecated fallback name")
}

func TestStatusClasses(t *testing.T) {
	fatal := []Status{6, 101, 1004, 1200, 1201, 1202, 1203, 1204, 1205, 1206}
	for _, c := range fatal {
		assert.True(t, IsFatalDevice(&StatusError{Code: c}), "%v", c)
	}
	for _, c := range []Status{0, 1, 2, 3, 4, 5, 7, 9, 10, 11, 13, 14, 15, 1002, 1003, 1005, 1006, 1100, 1207} {
		assert.False(t, IsFatalDevice(&StatusError{Code: c}), "%v", c)
	}
	wrapped := errors.Join(errors.New("context"), &StatusError{Op: "nrt_execute", Code: StatusTimeout})
	assert.True(t, IsRetryable(wrapped))
	assert.ErrorIs(t, wrapped, ErrTimeout)
	assert.True(t, IsLifecycle(ErrClosed))
	assert.False(t, IsLifecycle(ErrFreed))
	assert.Nil(t, statusErr("x", 0))
	assert.Equal(t, "nrt: nrt_load: NRT_LOAD_NOT_ENOUGH_NC (9)", statusErr("nrt_load", 9).Error())
	for s, name := range statusNames {
		assert.Equal(t, name, s.String())
	}
}

// infoBuf builds an nrt_tensor_info_array_t in Go memory.
type infoBuf struct {
	buf    []uint64
	shapes [][]uint32
}

func newInfoBuf(n int) *infoBuf {
	b := &infoBuf{buf: make([]uint64, (infoArrayHead+n*infoSize)/8)}
	binary.LittleEndian.PutUint64(b.bytes()[:8], uint64(n))
	return b
}

func (b *infoBuf) ptr() unsafe.Pointer { return unsafe.Pointer(&b.buf[0]) }
func (b *infoBuf) bytes() []byte {
	return unsafe.Slice((*byte)(b.ptr()), len(b.buf)*8)
}

func (b *infoBuf) set(i int, name []byte, usage int32, size uint64, dtype int32, shape []uint32, ndim uint32) {
	base := infoArrayHead + i*infoSize
	raw := b.bytes()
	copy(raw[base:base+infoNameMax], name)
	le := binary.LittleEndian
	le.PutUint32(raw[base+infoUsageOff:], uint32(usage))
	le.PutUint64(raw[base+infoSizeOff:], size)
	le.PutUint32(raw[base+infoDTypeOff:], uint32(dtype))
	le.PutUint32(raw[base+infoNDimOff:], ndim)
	if len(shape) > 0 {
		b.shapes = append(b.shapes, shape)
		*(*unsafe.Pointer)(unsafe.Add(b.ptr(), base+infoShapeOff)) = unsafe.Pointer(&shape[0])
	}
}

func TestReadTensorInfo(t *testing.T) {
	v := Version{Major: 2, Minor: 31}
	tests := []struct {
		name    string
		fill    func(b *infoBuf)
		wantErr string
	}{
		{"ok", func(b *infoBuf) { b.set(0, []byte("in"), 0, 16, 0xA, []uint32{2, 2}, 2) }, ""},
		{"scalar without shape", func(b *infoBuf) { b.set(0, []byte("s"), 1, 4, 0xA, nil, 0) }, ""},
		{"name without NUL", func(b *infoBuf) { b.set(0, []byte(strings.Repeat("n", 256)), 0, 4, 0xA, nil, 0) }, "NUL"},
		{"bad usage", func(b *infoBuf) { b.set(0, []byte("u"), 2, 4, 0xA, nil, 0) }, "usage"},
		{"ndim too big", func(b *infoBuf) { b.set(0, []byte("d"), 0, 4, 0xA, []uint32{1}, 65) }, "ndim"},
		{"nil shape", func(b *infoBuf) { b.set(0, []byte("d"), 0, 4, 0xA, nil, 1) }, "nil shape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newInfoBuf(1)
			tt.fill(b)
			infos, _, err := readTensorInfo(b.ptr(), v)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, infos, 1)
			assert.Equal(t, DTypeF32, infos[0].DType)
			assert.True(t, infos[0].DTypeChecked)
		})
	}
	b := newInfoBuf(0)
	binary.LittleEndian.PutUint64(b.bytes(), maxInfoCount+1)
	_, _, err := readTensorInfo(b.ptr(), v)
	assert.ErrorContains(t, err, "exceeds")
	_, _, err = readTensorInfo(nil, v)
	assert.Error(t, err)
}

func TestDTypeTables(t *testing.T) {
	for code, d := range sdk228DTypes {
		assert.Equal(t, code == 0, d == DTypeUnknown, "code %d", code)
	}
	assert.Equal(t, DTypeF32, sdk228DTypes[0xA])
	assert.Equal(t, DTypeF32, legacyDTypes[1])
	p, _ := Version{Major: 2, Minor: 30}.dtypeTables()
	assert.Equal(t, sdk228DTypes, p)
	p, _ = Version{Major: 2, Minor: 29, Patch: 99}.dtypeTables()
	assert.Equal(t, legacyDTypes, p)
	p, _ = Version{}.dtypeTables()
	assert.Equal(t, sdk228DTypes, p, "unknown version: assume new")
	// Raw code 1 is u64 (8 bytes) in the SDK 2.28 table and f32 (4 bytes)
	// in the sequential one: the size decides.
	infos := []TensorInfo{{RawDType: 1, Size: 8, Shape: []uint32{1}}}
	assert.False(t, applyDTypes(infos, Version{Major: 2, Minor: 31}))
	assert.Equal(t, DTypeU64, infos[0].DType)
	infos = []TensorInfo{{RawDType: 1, Size: 4, Shape: []uint32{1}}}
	assert.True(t, applyDTypes(infos, Version{Major: 2, Minor: 31}), "falls back to sequential f32")
	assert.Equal(t, DTypeF32, infos[0].DType)
	infos = []TensorInfo{{RawDType: 1, Size: 3, Shape: []uint32{1}}}
	assert.False(t, applyDTypes(infos, Version{Major: 2, Minor: 31}), "neither fits: keep the primary")
	assert.Equal(t, DTypeU64, infos[0].DType)
	assert.False(t, infos[0].DTypeChecked)
	assert.Equal(t, "f8e4", DTypeF8E4.String())
	assert.Equal(t, 0, DType(200).Size())
}

func FuzzReadTensorInfo(f *testing.F) {
	f.Add([]byte("x\x00"), int32(0), uint64(16), int32(0xA), uint32(2), uint32(2))
	f.Add([]byte("y"), int32(1), uint64(3), int32(1), uint32(0), uint32(0))
	f.Add(make([]byte, 300), int32(5), uint64(1<<63), int32(-1), uint32(70), uint32(1))
	f.Fuzz(func(t *testing.T, name []byte, usage int32, size uint64, dtype int32, ndim, dim uint32) {
		b := newInfoBuf(2)
		shape := make([]uint32, 64)
		for i := range shape {
			shape[i] = dim
		}
		b.set(0, name, usage, size, dtype, shape, ndim)
		b.set(1, []byte("ok"), 1, 4, 0xA, nil, 0)
		infos, _, err := readTensorInfo(b.ptr(), Version{Major: 2, Minor: 31})
		if err != nil {
			return
		}
		require.Len(t, infos, 2)
		ti := infos[0]
		assert.NotContains(t, ti.Name, "\x00")
		assert.Less(t, len(ti.Name), infoNameMax)
		assert.Len(t, ti.Shape, int(ndim))
		assert.True(t, ti.Usage == UsageInput || ti.Usage == UsageOutput)
		if ti.DTypeChecked {
			assert.Equal(t, ti.Size, ti.Elems()*ti.DType.Size())
		}
	})
}
