//go:build linux

package nrt

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mnemo-ai/mnemo/backend/neuron/nrt/nrttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// addNEFF: out[2,4] = a + b, all f32.
func addNEFF() []byte {
	return nrttest.NEFF{
		Name: "add",
		Tensors: []nrttest.Tensor{
			{Name: "a", DType: "f32", Shape: []uint32{2, 4}},
			{Name: "b", DType: "f32", Shape: []uint32{2, 4}},
			{Out: true, Name: "out", DType: "f32", Shape: []uint32{2, 4}},
		},
		Ops: []string{"add a b -> out"},
	}.Bytes()
}

// kvNEFF appends x (one row of 4 f32) to cache_k at row pos[0] in place and
// writes the argmax of x to tok.
func kvNEFF() []byte {
	return nrttest.NEFF{
		Name: "kv",
		Tensors: []nrttest.Tensor{
			{Name: "x", DType: "f32", Shape: []uint32{1, 4}},
			{Name: "pos", DType: "i32", Shape: []uint32{1}},
			{Name: "cache_k.must_alias_input", DType: "f32", Shape: []uint32{3, 4}},
			{Out: true, Name: "cache_k", DType: "f32", Shape: []uint32{3, 4}},
			{Out: true, Name: "tok", DType: "i32", Shape: []uint32{1}},
		},
		Ops: []string{"kv_append x pos -> cache_k", "argmax x -> tok"},
	}.Bytes()
}

// allocWrite allocates a device tensor on core 0 holding b.
func allocWrite(t *testing.T, rt *Runtime, name string, b []byte) *Tensor {
	t.Helper()
	tn, err := rt.Alloc(PlacementDevice, 0, len(b), name)
	require.NoError(t, err)
	require.NoError(t, tn.Write(b, 0))
	return tn
}

func readAll(t *testing.T, tn *Tensor) []byte {
	t.Helper()
	b := make([]byte, tn.Size())
	require.NoError(t, tn.Read(b, 0))
	return b
}

func TestLayoutMatchesC(t *testing.T) {
	_, fake := openFake(t)
	l := fake.Layout()
	assert.Equal(t, uintptr(infoSize), l.InfoSize)
	assert.Equal(t, uintptr(infoNameOff), l.InfoName)
	assert.Equal(t, uintptr(infoUsageOff), l.InfoUsage)
	assert.Equal(t, uintptr(infoSizeOff), l.InfoSizeField)
	assert.Equal(t, uintptr(infoDTypeOff), l.InfoDType)
	assert.Equal(t, uintptr(infoShapeOff), l.InfoShape)
	assert.Equal(t, uintptr(infoNDimOff), l.InfoNDim)
	assert.Equal(t, uintptr(infoArrayHead), l.ArrayFirst)
	assert.Equal(t, unsafe.Sizeof(cVersion{}), l.VersionSize)
	assert.Equal(t, unsafe.Offsetof(cVersion{}.Detail), l.VersionDetail)
	assert.Equal(t, unsafe.Offsetof(cVersion{}.Git), l.VersionGit)
}

// TestLifecycle follows the developer guide's flow through every bound
// function.
func TestLifecycle(t *testing.T) {
	lib, fake := openFake(t)
	v, err := lib.Version()
	require.NoError(t, err)
	assert.Equal(t, "2.34.10", v.String())
	assert.Equal(t, "fakenrt 2.34.10", v.Detail)
	assert.Equal(t, "fake", v.Git)
	assert.True(t, lib.Has("nrt_tensor_allocate_slice"))
	assert.False(t, lib.Has("nrt_no_such_function"))
	assert.Equal(t, fakes.main, lib.Path())

	rt, err := lib.Init(Config{VisibleCores: "1-2"})
	require.NoError(t, err)
	assert.Equal(t, []string{"NEURON_RT_VISIBLE_CORES=1-2"}, rt.Env())
	n, err := rt.VisibleCores()
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	n, err = rt.TotalCores()
	require.NoError(t, err)
	assert.Equal(t, 4, n)

	m, err := rt.Load(addNEFF(), 0)
	require.NoError(t, err)
	ins, outs, err := m.IO()
	require.NoError(t, err)
	want := TensorInfo{Name: "a", Usage: UsageInput, Size: 32, DType: DTypeF32, RawDType: 0xA, Shape: []uint32{2, 4}, DTypeChecked: true}
	require.Len(t, ins, 2)
	assert.Equal(t, want, ins[0])
	assert.Equal(t, "b", ins[1].Name)
	require.Len(t, outs, 1)
	assert.Equal(t, TensorInfo{Name: "out", Usage: UsageOutput, Size: 32, DType: DTypeF32, RawDType: 0xA, Shape: []uint32{2, 4}, DTypeChecked: true}, outs[0])
	assert.Equal(t, int64(0), fake.Stats().LiveInfos, "tensor info array must be freed right after the copy")
	ins[0].Shape[0] = 99 // IO returns copies
	ins2, _, err := m.IO()
	require.NoError(t, err)
	assert.Equal(t, uint32(2), ins2[0].Shape[0])

	a := allocWrite(t, rt, "a", f32Bytes([]float32{1, 2, 3, 4, 5, 6, 7, 8}))
	b := allocWrite(t, rt, "b", f32Bytes([]float32{10, 20, 30, 40, 50, 60, 70, 80}))
	out, err := rt.Alloc(PlacementDevice, 0, 32, "out")
	require.NoError(t, err)
	assert.Equal(t, "out", out.Name())
	assert.Equal(t, 32, out.Size())
	fresh := readAll(t, out)
	assert.Equal(t, bytes.Repeat([]byte{0xA5}, 32), fresh, "the fake fills fresh memory with 0xA5")

	in, err := rt.NewTensorSet()
	require.NoError(t, err)
	outSet, err := rt.NewTensorSet()
	require.NoError(t, err)
	require.NoError(t, in.Add("a", a))
	require.NoError(t, in.Add("b", b))
	require.NoError(t, outSet.Add("out", out))
	assert.Equal(t, 2, in.Len())
	got, err := in.Get("b")
	require.NoError(t, err)
	assert.Same(t, b, got)
	_, err = in.Get("nope")
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, StatusFailure, se.Code)

	require.NoError(t, m.Execute(in, outSet))
	assert.Equal(t, []float32{11, 22, 33, 44, 55, 66, 77, 88}, bytesF32(readAll(t, out)))

	// Partial reads and writes, memset, copy.
	require.NoError(t, a.Write(f32Bytes([]float32{-1}), 4))
	part := make([]byte, 8)
	require.NoError(t, a.Read(part, 0))
	assert.Equal(t, []float32{1, -1}, bytesF32(part))
	require.NoError(t, out.Memset(0, 8, 0))
	require.NoError(t, b.CopyTo(out, 4, 8, 4))
	assert.Equal(t, []float32{0, 0, 20, 44}, bytesF32(readAll(t, out))[:4])

	require.NoError(t, outSet.Destroy())
	require.NoError(t, in.Destroy())
	require.NoError(t, in.Destroy(), "second Destroy is a no-op")
	for _, tn := range []*Tensor{a, b, out} {
		require.NoError(t, tn.Free())
	}
	require.NoError(t, m.Unload())
	require.NoError(t, m.Unload(), "second Unload is a no-op")
	_, _, err = m.IO()
	assert.ErrorIs(t, err, ErrFreed)
	require.NoError(t, rt.Close())

	st := fake.Stats()
	assert.Equal(t, nrttest.Stats{State: 2, Visible: 2, Inits: 1, Execs: 1}, st)
	_, ok := os.LookupEnv("NEURON_RT_VISIBLE_CORES")
	assert.False(t, ok, "Close restores the environment")
}

func TestSliceSharesStorage(t *testing.T) {
	rt, fake := initFake(t, Config{})
	src := allocWrite(t, rt, "src", []byte{0, 1, 2, 3, 4, 5, 6, 7})
	s, err := src.Slice(2, 4, "view")
	require.NoError(t, err)
	assert.Equal(t, 4, s.Size())
	assert.Equal(t, []byte{2, 3, 4, 5}, readAll(t, s))
	require.NoError(t, s.Write([]byte{9}, 0))
	assert.Equal(t, []byte{0, 1, 9, 3, 4, 5, 6, 7}, readAll(t, src))
	require.NoError(t, src.Free())
	assert.Equal(t, []byte{9, 3, 4, 5}, readAll(t, s), "the slice keeps the storage alive")
	assert.Equal(t, int64(8), fake.Stats().BytesVNC0)
	require.NoError(t, s.Free())
	assert.Equal(t, int64(0), fake.Stats().BytesVNC0)
	_, err = src.Slice(0, 1, "late")
	assert.ErrorIs(t, err, ErrFreed)
	assert.Zero(t, fake.Stats().Misuse)
}

// refE4M3FN decodes OCP E4M3 "FN" (bias 7, no infinities, max 448).
func refE4M3FN(b byte) float32 {
	e, m := int(b>>3&0xF), float64(b&7)
	if e == 15 && m == 7 {
		return float32(math.NaN())
	}
	v := math.Ldexp(1+m/8, e-7)
	if e == 0 {
		v = math.Ldexp(m/8, -6)
	}
	if b&0x80 != 0 {
		v = -v
	}
	return float32(v)
}

func TestE4M3Reference(t *testing.T) {
	assert.Equal(t, float32(448), refE4M3FN(0x7E))
	assert.Equal(t, float32(-448), refE4M3FN(0xFE))
	assert.Equal(t, float32(1), refE4M3FN(0x38))
	assert.Equal(t, float32(math.Ldexp(1, -9)), refE4M3FN(0x01))
	assert.True(t, math.IsNaN(float64(refE4M3FN(0x7F))))
}

func TestMatmul(t *testing.T) {
	const M, K, N = 3, 5, 2
	rt, _ := initFake(t, Config{})
	for _, dt := range []string{"f32", "f8e4"} {
		t.Run("dtype="+dt, func(t *testing.T) {
			neff := nrttest.NEFF{
				Tensors: []nrttest.Tensor{
					{Name: "a", DType: dt, Shape: []uint32{M, K}},
					{Name: "b", DType: dt, Shape: []uint32{K, N}},
					{Out: true, Name: "c", DType: "f32", Shape: []uint32{M, N}},
				},
				Ops: []string{"matmul a b -> c"},
			}.Bytes()
			m, err := rt.Load(neff, -1)
			require.NoError(t, err)
			defer func() { assert.NoError(t, m.Unload()) }()
			av, bv := make([]float32, M*K), make([]float32, K*N)
			var ab, bb []byte
			if dt == "f32" {
				for i := range av {
					av[i] = float32(i%7) - 2.5
				}
				for i := range bv {
					bv[i] = float32(i%3)*0.75 - 1
				}
				ab, bb = f32Bytes(av), f32Bytes(bv)
			} else {
				// FP8 codes spanning normals, subnormals, negatives and the max.
				codes := []byte{0x38, 0x7E, 0x01, 0xB8, 0x40, 0x07, 0xC5, 0x30, 0x4A, 0x5F}
				ab, bb = make([]byte, M*K), make([]byte, K*N)
				for i := range ab {
					ab[i] = codes[i%len(codes)]
					av[i] = refE4M3FN(ab[i])
				}
				for i := range bb {
					bb[i] = codes[(3*i+1)%len(codes)]
					bv[i] = refE4M3FN(bb[i])
				}
			}
			want := make([]float32, M*N)
			for i := range M {
				for j := range N {
					var acc float32
					for k := range K {
						acc = acc + float32(av[i*K+k]*bv[k*N+j])
					}
					want[i*N+j] = acc
				}
			}
			c, err := rt.Alloc(PlacementDevice, 0, 4*M*N, "c")
			require.NoError(t, err)
			tensors := map[string]*Tensor{"a": allocWrite(t, rt, "a", ab), "b": allocWrite(t, rt, "b", bb), "c": c}
			in, out, err := m.Bind(tensors)
			require.NoError(t, err)
			require.NoError(t, m.Execute(in, out))
			assert.InDeltaSlice(t, want, bytesF32(readAll(t, c)), 1e-4)
			require.NoError(t, in.Destroy())
			require.NoError(t, out.Destroy())
			for _, tn := range tensors {
				require.NoError(t, tn.Free())
			}
		})
	}
}

func TestKVAppendAliasing(t *testing.T) {
	rt, fake := initFake(t, Config{})
	m, err := rt.Load(kvNEFF(), 0)
	require.NoError(t, err)
	x := allocWrite(t, rt, "x", make([]byte, 16))
	pos := allocWrite(t, rt, "pos", i32Bytes(0))
	cache, err := rt.Alloc(PlacementDevice, 0, 48, "cache_k")
	require.NoError(t, err)
	require.NoError(t, cache.Memset(0, 48, 0))
	tok := allocWrite(t, rt, "tok", i32Bytes(-1))

	in, out, err := m.Bind(map[string]*Tensor{"x": x, "pos": pos, "cache_k": cache, "tok": tok})
	require.NoError(t, err)
	aliased, err := in.Get("cache_k.must_alias_input")
	require.NoError(t, err)
	assert.Same(t, cache, aliased, "Bind pairs X.must_alias_input with output X")

	rows := [][]float32{{1, 5, 2, 0}, {7, 1, 1, 9}}
	for i, row := range rows {
		require.NoError(t, x.Write(f32Bytes(row), 0))
		require.NoError(t, pos.Write(i32Bytes(int32(i)), 0))
		require.NoError(t, m.Execute(in, out))
	}
	assert.Equal(t, []float32{1, 5, 2, 0, 7, 1, 1, 9, 0, 0, 0, 0}, bytesF32(readAll(t, cache)))
	assert.Equal(t, i32Bytes(3), readAll(t, tok))

	// Out of range position: the fake reports EXEC_OOB, an input error.
	require.NoError(t, pos.Write(i32Bytes(3), 0))
	err = m.Execute(in, out)
	assert.True(t, IsInput(err), "%v", err)

	// Binding a different tensor to the alias input breaks the contract.
	other, err := rt.Alloc(PlacementDevice, 0, 48, "other")
	require.NoError(t, err)
	require.NoError(t, in.Add("cache_k.must_alias_input", other))
	require.NoError(t, pos.Write(i32Bytes(0), 0))
	err = m.Execute(in, out)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, StatusInvalid, se.Code)
	assert.True(t, IsInput(err))

	// Bind rejects unknown names and missing tensors, and cleans up.
	_, _, err = m.Bind(map[string]*Tensor{"x": x, "pos": pos, "cache_k": cache, "tok": tok, "typo": other})
	assert.ErrorContains(t, err, "typo")
	_, _, err = m.Bind(map[string]*Tensor{"x": x, "cache_k": cache, "tok": tok})
	assert.ErrorContains(t, err, `"pos"`)
	_, _, err = m.Bind(map[string]*Tensor{"x": x, "pos": pos, "cache_k": x, "tok": tok})
	assert.ErrorContains(t, err, "16 bytes")
	assert.Equal(t, int64(2), fake.Stats().LiveSets, "failed binds destroy their sets")
}

func TestExecuteValidation(t *testing.T) {
	rt, _ := initFake(t, Config{})
	m, err := rt.Load(addNEFF(), 0)
	require.NoError(t, err)
	a := allocWrite(t, rt, "a", make([]byte, 32))
	short := allocWrite(t, rt, "short", make([]byte, 16))
	out, err := rt.Alloc(PlacementDevice, 0, 32, "out")
	require.NoError(t, err)
	in, err := rt.NewTensorSet()
	require.NoError(t, err)
	outSet, err := rt.NewTensorSet()
	require.NoError(t, err)
	require.NoError(t, in.Add("a", a))
	require.NoError(t, outSet.Add("out", out))

	err = m.Execute(in, outSet) // b missing
	assert.True(t, IsInput(err), "%v", err)
	require.NoError(t, in.Add("b", short))
	err = m.Execute(in, outSet) // b has the wrong size
	assert.True(t, IsInput(err), "%v", err)
	require.NoError(t, in.Add("b", a)) // replace; the key differs from the tensor's name
	require.NoError(t, m.Execute(in, outSet))
	assert.NoError(t, short.Free(), "a replaced entry no longer holds the tensor")
}

func TestExecuteOps(t *testing.T) {
	rt, _ := initFake(t, Config{})
	tests := []struct {
		name  string
		ops   []string
		check func(t *testing.T, err error, out []float32)
	}{
		{"scale", []string{"scale input0 2.5 -> output0"}, func(t *testing.T, err error, out []float32) {
			require.NoError(t, err)
			assert.Equal(t, []float32{2.5, -5}, out)
		}},
		{"copy", []string{"copy input0 -> output0"}, func(t *testing.T, err error, out []float32) {
			require.NoError(t, err)
			assert.Equal(t, []float32{1, -2}, out)
		}},
		{"nan", []string{"copy input0 -> output0", "nan -> output0"}, func(t *testing.T, err error, out []float32) {
			assert.True(t, IsNumeric(err), "%v", err)
			assert.False(t, IsFatalDevice(err))
			assert.True(t, math.IsNaN(float64(out[0])))
			assert.Equal(t, float32(-2), out[1], "outputs are written")
		}},
		{"fail", []string{"fail 1004"}, func(t *testing.T, err error, _ []float32) {
			assert.True(t, IsFatalDevice(err), "%v", err)
			assert.ErrorIs(t, rt.Err(), ErrFatalDevice)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := rt.Load(nrttest.NEFF{
				Tensors: []nrttest.Tensor{
					{Name: "input0", DType: "f32", Shape: []uint32{2}},
					{Out: true, Name: "output0", DType: "f32", Shape: []uint32{2}},
				},
				Ops: tt.ops,
			}.Bytes(), 0)
			require.NoError(t, err)
			x := allocWrite(t, rt, "x", f32Bytes([]float32{1, -2}))
			y := allocWrite(t, rt, "y", make([]byte, 8))
			in, out, err := m.Bind(map[string]*Tensor{"input0": x, "output0": y})
			require.NoError(t, err)
			err = m.Execute(in, out)
			tt.check(t, err, bytesF32(readAll(t, y)))
		})
	}
	assert.Error(t, rt.Err(), "the fatal error sticks")
}

func TestExecuteRepeat(t *testing.T) {
	rt, _ := initFake(t, Config{})
	m, err := rt.Load(nrttest.NEFF{
		Tensors: []nrttest.Tensor{
			{Name: "input0", DType: "f32", Shape: []uint32{2}},
			{Out: true, Name: "output0", DType: "f32", Shape: []uint32{2}},
		},
		Ops: []string{"scale input0 2 -> output0"},
	}.Bytes(), 0)
	require.NoError(t, err)
	x := allocWrite(t, rt, "x", f32Bytes([]float32{1, 3}))
	y := allocWrite(t, rt, "y", make([]byte, 8))
	in, out, err := m.Bind(map[string]*Tensor{"input0": x, "output0": y})
	require.NoError(t, err)
	require.NoError(t, m.ExecuteRepeat(in, out, 3))
	assert.Equal(t, []float32{8, 24}, bytesF32(readAll(t, y)))
	assert.Error(t, m.ExecuteRepeat(in, out, 0))
}

// TestInjectedStatuses checks each status surfaces as a *StatusError with
// the calling function, the code and exactly the right classifier.
func TestInjectedStatuses(t *testing.T) {
	type classes struct{ resource, retryable, numeric, input, fatal, lifecycle bool }
	tests := []struct {
		fn     string
		status Status
		want   classes
		is     error // an extra sentinel it must match, if any
	}{
		{"nrt_init", StatusFailure, classes{}, nil},
		{"nrt_load", StatusLoadNotEnoughNC, classes{resource: true}, ErrNotEnoughCores},
		{"nrt_load", StatusUnsupportedNEFFVersion, classes{}, nil},
		{"nrt_get_model_tensor_info", StatusResource, classes{resource: true}, nil},
		{"nrt_tensor_allocate", StatusResource, classes{resource: true}, nil},
		{"nrt_tensor_allocate", StatusFailHostMemAlloc, classes{resource: true}, nil},
		{"nrt_tensor_allocate", StatusUninitialized, classes{lifecycle: true}, ErrNotInitialized},
		{"nrt_tensor_write", StatusInvalid, classes{input: true}, nil},
		{"nrt_tensor_read", StatusClosed, classes{lifecycle: true}, ErrClosed},
		{"nrt_tensor_memset", StatusInvalidHandle, classes{}, ErrInvalidHandle},
		{"nrt_tensor_copy", StatusHWError, classes{fatal: true}, nil},
		{"nrt_tensor_allocate_slice", StatusResource, classes{resource: true}, nil},
		{"nrt_allocate_tensor_set", StatusResource, classes{resource: true}, nil},
		{"nrt_add_tensor_to_tensor_set", StatusInvalid, classes{input: true}, nil},
		{"nrt_get_tensor_from_tensor_set", StatusInvalidHandle, classes{}, ErrInvalidHandle},
		{"nrt_get_visible_vnc_count", StatusFailure, classes{}, nil},
		{"nrt_get_total_vnc_count", StatusFailure, classes{}, nil},
		{"nrt_execute", StatusQueueFull, classes{retryable: true}, nil},
		{"nrt_execute", StatusExecNCBusy, classes{retryable: true}, nil},
		{"nrt_execute", StatusTimeout, classes{retryable: true}, ErrTimeout},
		{"nrt_execute", StatusExecCompletedWithNumErr, classes{numeric: true}, nil},
		{"nrt_execute", StatusExecBadInput, classes{input: true}, nil},
		{"nrt_execute", StatusExecOOB, classes{input: true}, nil},
		{"nrt_execute", StatusExecUnitUnrecoverable, classes{fatal: true}, nil},
		{"nrt_execute", StatusExecCompletedWithErr, classes{fatal: true}, nil},
		{"nrt_execute", StatusExecHWErrHBMUE, classes{fatal: true}, nil},
		{"nrt_execute", StatusNetworkProxyFailure, classes{fatal: true}, nil},
		{"nrt_execute", Status(4242), classes{}, nil},
		{"nrt_execute_repeat", StatusExecNCBusy, classes{retryable: true}, nil},
		{"nrt_unload", StatusInvalidHandle, classes{}, ErrInvalidHandle},
	}
	for _, tt := range tests {
		t.Run(tt.fn+"/"+tt.status.String(), func(t *testing.T) {
			lib, fake := openFake(t)
			if tt.fn == "nrt_init" {
				require.NoError(t, fake.Inject(tt.fn, int32(tt.status), 1))
				_, err := lib.Init(Config{VisibleCores: "0"})
				checkStatus(t, err, tt.fn, tt.status)
				_, ok := os.LookupEnv("NEURON_RT_VISIBLE_CORES")
				assert.False(t, ok, "a failed Init restores the environment")
				rt, err := lib.Init(Config{})
				require.NoError(t, err, "Init can be retried")
				require.NoError(t, rt.Close())
				return
			}
			rt, err := lib.Init(Config{})
			require.NoError(t, err)
			defer func() { assert.NoError(t, rt.Close()) }()
			m, err := rt.Load(addNEFF(), 0)
			require.NoError(t, err)
			ts := map[string]*Tensor{}
			for _, n := range []string{"a", "b", "out"} {
				ts[n] = allocWrite(t, rt, n, make([]byte, 32))
			}
			in, out, err := m.Bind(ts)
			require.NoError(t, err)
			require.NoError(t, fake.Inject(tt.fn, int32(tt.status), 1))
			a := ts["a"]
			switch tt.fn {
			case "nrt_load":
				_, err = rt.Load(addNEFF(), 0)
			case "nrt_get_model_tensor_info":
				_, err = rt.Load(addNEFF(), 0)
				assert.Equal(t, int64(1), fake.Stats().LiveModels, "a failed load unloads")
			case "nrt_tensor_allocate":
				_, err = rt.Alloc(PlacementDevice, 0, 8, "t")
			case "nrt_tensor_write":
				err = a.Write([]byte{1}, 0)
			case "nrt_tensor_read":
				err = a.Read(make([]byte, 1), 0)
			case "nrt_tensor_memset":
				err = a.Memset(0, 1, 0)
			case "nrt_tensor_copy":
				err = a.CopyTo(ts["b"], 0, 0, 4)
			case "nrt_tensor_allocate_slice":
				_, err = a.Slice(0, 4, "s")
			case "nrt_allocate_tensor_set":
				_, err = rt.NewTensorSet()
			case "nrt_add_tensor_to_tensor_set":
				err = in.Add("a", a)
				assert.Equal(t, 1, a.sets, "a failed add keeps the old entry count")
			case "nrt_get_tensor_from_tensor_set":
				_, err = in.Get("a")
			case "nrt_get_visible_vnc_count":
				_, err = rt.VisibleCores()
			case "nrt_get_total_vnc_count":
				_, err = rt.TotalCores()
			case "nrt_execute":
				err = m.Execute(in, out)
			case "nrt_execute_repeat":
				err = m.ExecuteRepeat(in, out, 2)
			case "nrt_unload":
				err = m.Unload()
			default:
				t.Fatalf("no action for %s", tt.fn)
			}
			checkStatus(t, err, tt.fn, tt.status)
			got := classes{IsResource(err), IsRetryable(err), IsNumeric(err), IsInput(err), IsFatalDevice(err), IsLifecycle(err)}
			assert.Equal(t, tt.want, got)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
			if tt.want.fatal {
				assert.Equal(t, err, rt.Err())
			} else {
				assert.NoError(t, rt.Err())
			}
		})
	}
}

func checkStatus(t *testing.T, err error, fn string, code Status) {
	t.Helper()
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, fn, se.Op)
	assert.Equal(t, code, se.Code)
	assert.Contains(t, err.Error(), fn)
}

func TestInjectFromEnvironment(t *testing.T) {
	t.Setenv("FAKE_NRT_INJECT", "nrt_tensor_allocate:4:2")
	rt, _ := initFake(t, Config{}) // Reset re-reads FAKE_NRT_INJECT
	_, err := rt.Alloc(PlacementDevice, 0, 8, "first")
	require.NoError(t, err)
	_, err = rt.Alloc(PlacementDevice, 0, 8, "second")
	assert.True(t, IsResource(err), "%v", err)
	_, err = rt.Alloc(PlacementDevice, 0, 8, "third")
	assert.NoError(t, err)
}

func TestUseAfterClose(t *testing.T) {
	lib, fake := openFake(t)
	rt, err := lib.Init(Config{})
	require.NoError(t, err)
	m, err := rt.Load(addNEFF(), 0)
	require.NoError(t, err)
	ts := map[string]*Tensor{}
	for _, n := range []string{"a", "b", "out"} {
		ts[n] = allocWrite(t, rt, n, make([]byte, 32))
	}
	in, out, err := m.Bind(ts)
	require.NoError(t, err)
	require.NoError(t, rt.Close())
	require.NoError(t, rt.Close(), "second Close is a no-op")
	trace := len(fake.Trace())

	a := ts["a"]
	for name, err := range map[string]error{
		"execute": m.Execute(in, out),
		"write":   a.Write([]byte{1}, 0),
		"read":    a.Read(make([]byte, 1), 0),
		"memset":  a.Memset(0, 1, 0),
		"copy":    a.CopyTo(ts["b"], 0, 0, 1),
		"slice":   func() error { _, err := a.Slice(0, 1, "s"); return err }(),
		"add":     in.Add("a", a),
		"get":     func() error { _, err := in.Get("a"); return err }(),
		"io":      func() error { _, _, err := m.IO(); return err }(),
		"alloc":   func() error { _, err := rt.Alloc(PlacementDevice, 0, 1, "x"); return err }(),
		"load":    func() error { _, err := rt.Load(addNEFF(), 0); return err }(),
		"set":     func() error { _, err := rt.NewTensorSet(); return err }(),
		"visible": func() error { _, err := rt.VisibleCores(); return err }(),
	} {
		assert.ErrorIs(t, err, ErrClosed, name)
		assert.True(t, IsLifecycle(err), name)
	}
	assert.NoError(t, a.Free())
	assert.NoError(t, in.Destroy())
	assert.NoError(t, m.Unload())
	assert.Len(t, fake.Trace(), trace, "inert handles never call C")
	st := fake.Stats()
	assert.Zero(t, st.Misuse)
	assert.Zero(t, st.Leaks, "Close released everything before nrt_close")
}

func TestCloseOrder(t *testing.T) {
	lib, fake := openFake(t)
	rt, err := lib.Init(Config{})
	require.NoError(t, err)
	m, err := rt.Load(addNEFF(), 0)
	require.NoError(t, err)
	ts := map[string]*Tensor{}
	for _, n := range []string{"a", "b", "out"} {
		ts[n] = allocWrite(t, rt, n, make([]byte, 32))
	}
	_, _, err = m.Bind(ts)
	require.NoError(t, err)
	n := len(fake.Trace())
	require.NoError(t, rt.Close())
	tail := fake.Trace()[n:]
	want := []string{"nrt_destroy_tensor_set", "nrt_destroy_tensor_set", "nrt_tensor_free", "nrt_tensor_free",
		"nrt_tensor_free", "nrt_unload", "nrt_close"}
	assert.Equal(t, want, tail)
	st := fake.Stats()
	assert.Zero(t, st.Leaks)
	assert.Zero(t, st.Misuse)
	assert.Equal(t, int64(0), st.LiveTensors+st.LiveModels+st.LiveSets)
}

func TestFreeInUse(t *testing.T) {
	rt, fake := initFake(t, Config{})
	a := allocWrite(t, rt, "a", make([]byte, 4))
	s1, err := rt.NewTensorSet()
	require.NoError(t, err)
	s2, err := rt.NewTensorSet()
	require.NoError(t, err)
	require.NoError(t, s1.Add("a", a))
	require.NoError(t, s2.Add("alias", a))
	assert.ErrorIs(t, a.Free(), ErrInUse)
	require.NoError(t, s1.Destroy())
	assert.ErrorIs(t, a.Free(), ErrInUse)
	require.NoError(t, s2.Destroy())
	require.NoError(t, a.Free())
	require.NoError(t, a.Free(), "second Free is a no-op")
	assert.ErrorIs(t, a.Write([]byte{1}, 0), ErrFreed)
	assert.ErrorIs(t, s1.Add("a", a), ErrFreed)
	assert.Zero(t, fake.Stats().Misuse)
}

// TestFakeCatchesMisuse drives the raw table the way a buggy binding would
// and checks the fake notices: double free, use after free, stale sets,
// freeing a tensor still in a set.
func TestFakeCatchesMisuse(t *testing.T) {
	rt, fake := initFake(t, Config{})
	fn := rt.fn
	var h tensorHandle
	require.Zero(t, fn.tensorAllocate(0, 0, 8, nil, &h))
	stale := h
	fn.tensorFree(&h)
	assert.Zero(t, h, "nrt_tensor_free NULLs the caller's pointer")
	assert.Zero(t, fake.Stats().Misuse)
	fn.tensorFree(&stale) // double free
	assert.Equal(t, int64(1), fake.Stats().Misuse)
	buf := make([]byte, 8)
	code := fn.tensorRead(stale, unsafe.Pointer(&buf[0]), 0, 8) // use after free
	assert.Equal(t, int32(StatusInvalidHandle), code)
	assert.Equal(t, int64(2), fake.Stats().Misuse)

	var s setHandle
	require.Zero(t, fn.allocSet(&s))
	var t2 tensorHandle
	require.Zero(t, fn.tensorAllocate(0, 0, 8, nil, &t2))
	name, err := fn.cString("k")
	require.NoError(t, err)
	defer fn.freeCString(name)
	require.Zero(t, fn.addToSet(s, name, t2))
	staleSet := s
	fn.destroySet(&s)
	assert.Zero(t, s, "nrt_destroy_tensor_set NULLs the caller's pointer")
	assert.Equal(t, int32(StatusInvalidHandle), fn.addToSet(staleSet, name, t2))
	assert.Equal(t, int64(3), fake.Stats().Misuse)

	require.Zero(t, fn.allocSet(&s))
	require.Zero(t, fn.addToSet(s, name, t2))
	fn.tensorFree(&t2) // still in a live set
	assert.Equal(t, int64(4), fake.Stats().Misuse)
	fn.destroySet(&s)

	var info unsafe.Pointer
	m, err := rt.Load(addNEFF(), 0)
	require.NoError(t, err)
	require.Zero(t, fn.tensorInfo(m.h, &info))
	require.Zero(t, fn.freeTensorInfo(info))
	assert.Equal(t, int32(StatusInvalidHandle), fn.freeTensorInfo(info), "double free of the info array")
	assert.Equal(t, int64(5), fake.Stats().Misuse)
}

func TestBoundsChecks(t *testing.T) {
	rt, fake := initFake(t, Config{})
	a := allocWrite(t, rt, "a", make([]byte, 8))
	b := allocWrite(t, rt, "b", make([]byte, 8))
	n := len(fake.Trace())
	for name, err := range map[string]error{
		"write past end": a.Write(make([]byte, 4), 6),
		"read past end":  a.Read(make([]byte, 9), 0),
		"negative off":   a.Read(make([]byte, 1), -1),
		"memset":         a.Memset(4, 5, 0),
		"copy dst":       a.CopyTo(b, 0, 6, 4),
		"slice":          func() error { _, err := a.Slice(7, 2, "s"); return err }(),
	} {
		assert.ErrorIs(t, err, ErrOutOfRange, name)
	}
	assert.Len(t, fake.Trace(), n, "Go checks ranges before calling C")
	// The fake checks them too.
	buf := make([]byte, 4)
	assert.Equal(t, int32(StatusInvalid), rt.fn.tensorWrite(a.h, unsafe.Pointer(&buf[0]), 6, 4))
	assert.Equal(t, int32(StatusInvalid), rt.fn.tensorRead(a.h, unsafe.Pointer(&buf[0]), 8, 1))
	assert.Equal(t, int32(StatusInvalid), rt.fn.tensorMemset(a.h, 1<<40, 0, 1))
	assert.Equal(t, int32(StatusInvalid), rt.fn.tensorCopy(a.h, 5, b.h, 0, 4))
	require.NoError(t, a.Write(nil, 8), "an empty write at the end is in range")
}

func TestMissingSymbol(t *testing.T) {
	if fakes.err != nil {
		t.Skipf("fake libnrt unavailable: %v", fakes.err)
	}
	_, err := Open(fakes.noExec)
	var se *SymbolError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "nrt_execute", se.Symbol)
	assert.Equal(t, fakes.noExec, se.Path)
	assert.Contains(t, err.Error(), "nrt_execute")
}

func TestMissingLibrary(t *testing.T) {
	missing := t.TempDir() + "/libnrt.so.1"
	t.Setenv(EnvLibPath, missing)
	assert.Equal(t, []string{missing, DefaultLibPath, LibName}, SearchPaths())
	// By soname the loader would find a libnrt.so.1 already loaded (the
	// fake), so search a name nothing provides instead.
	paths := []string{missing, t.TempDir() + "/opt/libnrt.so.1", "libnrt-mnemo-absent.so.1"}
	_, err := openFirst(paths)
	var nf *NotFoundError
	require.ErrorAs(t, err, &nf)
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Equal(t, paths, nf.Paths)
	require.Len(t, nf.Errs, len(paths))
	for _, p := range paths {
		assert.Contains(t, err.Error(), p)
	}
	_, err = Open(missing)
	require.ErrorAs(t, err, &nf)
	assert.Equal(t, []string{missing}, nf.Paths, "an explicit path is the only candidate")
}

func TestStatusStrings(t *testing.T) {
	lib, _ := openFake(t)
	assert.Equal(t, "fake: neuron core busy", lib.StatusString(StatusExecNCBusy))
	assert.Equal(t, "NRT_EXEC_HW_ERR_NC_UE", lib.StatusString(StatusExecHWErrNCUE), "unknown to the library")
	assert.Equal(t, "NRT_STATUS(4242)", Status(4242).String())

	old, err := Open(fakes.noStatus)
	require.NoError(t, err)
	defer func() { assert.NoError(t, old.Close()) }()
	assert.False(t, old.Has("nrt_get_status_as_str"))
	assert.Equal(t, "NRT_EXEC_NC_BUSY", old.StatusString(StatusExecNCBusy))
}

func TestDTypeVersionGating(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ioOf := func(t *testing.T, lib *Lib) []TensorInfo {
		rt, err := lib.Init(Config{Logger: logger})
		require.NoError(t, err)
		defer func() { assert.NoError(t, rt.Close()) }()
		m, err := rt.Load(nrttest.NEFF{Tensors: []nrttest.Tensor{
			{Name: "w", DType: "bf16", Shape: []uint32{4, 2}},
			{Name: "ids", DType: "i64", Shape: []uint32{3}},
			{Out: true, Name: "y", DType: "f32", Shape: []uint32{}},
		}}.Bytes(), 0)
		require.NoError(t, err)
		ins, outs, err := m.IO()
		require.NoError(t, err)
		return append(ins, outs...)
	}
	wantTypes := []DType{DTypeBF16, DTypeI64, DTypeF32}
	types := func(infos []TensorInfo) (ds []DType, raw []int32, checked []bool) {
		for _, ti := range infos {
			ds, raw, checked = append(ds, ti.DType), append(raw, ti.RawDType), append(checked, ti.DTypeChecked)
		}
		return
	}

	t.Run("legacy build", func(t *testing.T) {
		if fakes.err != nil {
			t.Skipf("fake libnrt unavailable: %v", fakes.err)
		}
		fakes.legacyCtl.Reset()
		lib, err := Open(fakes.legacy)
		require.NoError(t, err)
		defer func() { assert.NoError(t, lib.Close()) }()
		v, _ := lib.Version()
		assert.Equal(t, "2.27.0", v.String())
		ds, raw, checked := types(ioOf(t, lib))
		assert.Equal(t, wantTypes, ds)
		assert.Equal(t, []int32{3, 10, 1}, raw)
		assert.Equal(t, []bool{true, true, true}, checked)
		assert.Empty(t, logs.String())
	})
	t.Run("codes disagree with version", func(t *testing.T) {
		_, fake := openFake(t)
		fake.SetVersion(2, 31, 0, nrttest.DTypesLegacy)
		lib, err := Open(fakes.main)
		require.NoError(t, err)
		defer func() { assert.NoError(t, lib.Close()) }()
		ds, raw, checked := types(ioOf(t, lib))
		assert.Equal(t, wantTypes, ds, "the size cross-check picks the legacy table")
		assert.Equal(t, []int32{3, 10, 1}, raw)
		assert.Equal(t, []bool{true, true, true}, checked)
		assert.Contains(t, logs.String(), "do not match")
	})
	t.Run("large tensor guard", func(t *testing.T) {
		_, fake := openFake(t)
		fake.SetVersion(2, 30, 49, nrttest.DTypesByVersion)
		lib, err := Open(fakes.main)
		require.NoError(t, err)
		defer func() { assert.NoError(t, lib.Close()) }()
		rt, err := lib.Init(Config{})
		require.NoError(t, err)
		defer func() { assert.NoError(t, rt.Close()) }()
		n := len(fake.Trace())
		_, err = rt.Alloc(PlacementDevice, 0, 4<<30, "big")
		assert.ErrorIs(t, err, ErrTooLarge)
		assert.Len(t, fake.Trace(), n, "refused before calling C")
		// Virtual placement still exists before 2.32.31.
		tn, err := rt.Alloc(PlacementVirtual, 0, 8, "virt")
		require.NoError(t, err)
		require.NoError(t, tn.Free())
	})
	t.Run("virtual placement removed", func(t *testing.T) {
		rt, _ := initFake(t, Config{})
		_, err := rt.Alloc(PlacementVirtual, 0, 8, "virt")
		assert.True(t, IsInput(err), "%v", err)
	})
}

func TestEnvironment(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		visible int
		status  Status // of nrt_init, 0 for success
	}{
		{"all cores", Config{}, 4, 0},
		{"range", Config{VisibleCores: "1-3"}, 3, 0},
		{"list", Config{VisibleCores: "0,1"}, 2, 0},
		{"num cores", Config{NumCores: 2}, 2, 0},
		{"visible wins over num", Config{VisibleCores: "2", NumCores: 3}, 1, 0},
		{"not contiguous", Config{VisibleCores: "0,2"}, 0, StatusFailure},
		{"too many", Config{NumCores: 9}, 0, StatusLoadNotEnoughNC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lib, fake := openFake(t)
			rt, err := lib.Init(tt.cfg)
			if tt.status != 0 {
				checkStatus(t, err, "nrt_init", tt.status)
				return
			}
			require.NoError(t, err)
			defer func() { assert.NoError(t, rt.Close()) }()
			n, err := rt.VisibleCores()
			require.NoError(t, err)
			assert.Equal(t, tt.visible, n)
			assert.Equal(t, int64(tt.visible), fake.Stats().Visible, "the fake read the environment at nrt_init")
		})
	}
	t.Run("bad config", func(t *testing.T) {
		lib, _ := openFake(t)
		for _, cfg := range []Config{{NumCores: -1}, {LogicalNCConfig: 3}, {ExecTimeout: -1}, {Env: map[string]string{"": "x"}}} {
			_, err := lib.Init(cfg)
			assert.Error(t, err)
		}
	})
	t.Run("lnc must match the NEFF", func(t *testing.T) {
		rt, _ := initFake(t, Config{LogicalNCConfig: 1, Env: map[string]string{"NEURON_RT_LOG_LEVEL_NRT": "ERROR"}})
		assert.Contains(t, rt.Env(), "NEURON_RT_LOG_LEVEL_NRT=ERROR")
		_, err := rt.Load(addNEFF(), 0)
		assert.True(t, IsInput(err), "%v", err)
		_, err = rt.Load(nrttest.NEFF{LNC: 1, Tensors: []nrttest.Tensor{{Name: "x", DType: "u8", Shape: []uint32{1}}}}.Bytes(), 0)
		assert.NoError(t, err)
	})
	t.Run("environment fixed after init", func(t *testing.T) {
		rt, _ := initFake(t, Config{LogLevel: "ERROR"})
		t.Setenv("NEURON_RT_LOG_LEVEL", "TRACE")
		_, err := rt.Load(addNEFF(), 0)
		assert.ErrorIs(t, err, ErrEnvChanged)
	})
	t.Run("exec timeout", func(t *testing.T) {
		if testing.Short() {
			t.Skip("sleeps for a second")
		}
		rt, _ := initFake(t, Config{ExecTimeout: time.Second})
		assert.Contains(t, rt.Env(), "NEURON_RT_EXEC_TIMEOUT=1")
		m, err := rt.Load(nrttest.NEFF{Ops: []string{"sleep_ms 1500"}}.Bytes(), 0)
		require.NoError(t, err)
		in, out, err := m.Bind(nil)
		require.NoError(t, err)
		err = m.Execute(in, out)
		assert.ErrorIs(t, err, ErrTimeout)
		assert.True(t, IsRetryable(err))
	})
}

func TestOneRuntimePerProcess(t *testing.T) {
	lib, fake := openFake(t)
	rt, err := lib.Init(Config{})
	require.NoError(t, err)
	_, err = lib.Init(Config{})
	assert.ErrorIs(t, err, ErrAlreadyInitialized)
	other, err := Open(fakes.noStatus)
	require.NoError(t, err)
	_, err = other.Init(Config{})
	assert.ErrorIs(t, err, ErrAlreadyInitialized, "one runtime per process, whatever the Lib")
	require.NoError(t, other.Close())
	_, err = other.Init(Config{})
	assert.ErrorIs(t, err, ErrLibClosed)

	a := allocWrite(t, rt, "a", []byte{1})
	require.NoError(t, rt.Close())
	rt2, err := lib.Init(Config{})
	require.NoError(t, err, "re-init after close")
	assert.Equal(t, int64(2), fake.Stats().Inits)
	assert.ErrorIs(t, a.Write([]byte{1}, 0), ErrClosed, "handles of the old runtime stay inert")
	require.NoError(t, lib.Close(), "Lib.Close closes the live runtime")
	_, err = rt2.Alloc(PlacementDevice, 0, 1, "x")
	assert.ErrorIs(t, err, ErrClosed)
}

func TestNEFFRejected(t *testing.T) {
	rt, _ := initFake(t, Config{})
	good := addNEFF()
	tests := []struct {
		name string
		neff []byte
		want Status
	}{
		{"bad magic", nrttest.NEFF{Magic: "TARNEFF"}.Bytes(), StatusInvalid},
		{"truncated", good[:len(good)-3], StatusInvalid},
		{"header only", good[:nrttest.HeaderSize-1], StatusInvalid},
		{"future version", nrttest.NEFF{VersionMajor: 3}.Bytes(), StatusUnsupportedNEFFVersion},
		{"bad manifest", nrttest.NEFF{Ops: []string{"frobnicate"}}.Bytes(), StatusInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rt.Load(tt.neff, 0)
			checkStatus(t, err, "nrt_load", tt.want)
		})
	}
	_, err := rt.Load(good, 7)
	assert.ErrorIs(t, err, ErrNotEnoughCores)
	_, err = rt.Load(nil, 0)
	assert.Error(t, err)
}

func TestMemoryBudget(t *testing.T) {
	t.Setenv("FAKE_NRT_HBM_BYTES", "4096")
	rt, fake := initFake(t, Config{})
	a, err := rt.Alloc(PlacementDevice, 0, 3000, "a")
	require.NoError(t, err)
	_, err = rt.Alloc(PlacementDevice, 0, 2000, "b")
	assert.True(t, IsResource(err), "%v", err)
	b, err := rt.Alloc(PlacementDevice, 1, 2000, "b") // the budget is per core
	require.NoError(t, err)
	assert.Equal(t, nrttest.Stats{LiveTensors: 2, BytesVNC0: 3000, BytesVNC1: 2000, State: 1, Visible: 4, Inits: 1},
		fake.Stats())
	var many []nrttest.Tensor // a manifest over the 1096 bytes left on core 0
	for i := range 40 {
		many = append(many, nrttest.Tensor{Name: fmt.Sprintf("padded_input_name_%02d", i), DType: "u8", Shape: []uint32{1}})
	}
	big := nrttest.NEFF{Tensors: many}.Bytes()
	require.Greater(t, len(big)-nrttest.HeaderSize, 1096)
	_, err = rt.Load(big, 0)
	assert.True(t, IsResource(err), "%v", err)
	m, err := rt.Load(big, 2) // another core has room
	require.NoError(t, err)
	require.NoError(t, m.Unload())
	require.NoError(t, a.Free())
	require.NoError(t, b.Free())
	assert.Equal(t, int64(0), fake.Stats().BytesVNC0)
}

// TestConcurrentExecute runs executes on two models from several goroutines
// while another goroutine allocates and frees; run it with -race.
func TestConcurrentExecute(t *testing.T) {
	rt, fake := initFake(t, Config{VisibleCores: "0-1"})
	iters := 200
	if testing.Short() {
		iters = 50
	}
	var models [2]*Model
	for i := range models {
		m, err := rt.Load(addNEFF(), i)
		require.NoError(t, err)
		models[i] = m
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		m := models[w%2]
		a := allocWrite(t, rt, "a", make([]byte, 32))
		b := allocWrite(t, rt, "b", f32Bytes(slices.Repeat([]float32{float32(w)}, 8)))
		out, err := rt.Alloc(PlacementDevice, 0, 32, "out")
		require.NoError(t, err)
		in, outSet, err := m.Bind(map[string]*Tensor{"a": a, "b": b, "out": out})
		require.NoError(t, err)
		wg.Go(func() {
			got := make([]byte, 32)
			for i := range iters {
				if err := a.Write(f32Bytes(slices.Repeat([]float32{float32(i)}, 8)), 0); err != nil {
					errs <- err
					return
				}
				if err := m.Execute(in, outSet); err != nil {
					errs <- err
					return
				}
				if err := out.Read(got, 0); err != nil {
					errs <- err
					return
				}
				if v := bytesF32(got)[7]; v != float32(i+w) {
					errs <- errors.New("wrong sum")
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range iters {
			tn, err := rt.Alloc(PlacementDevice, 0, 64, "churn")
			if err == nil {
				err = tn.Free()
			}
			if err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, int64(4*iters), fake.Stats().Execs)
	assert.Zero(t, fake.Stats().Misuse)
}

// TestFakeStateMachine drives the raw table around the runtime's lifetime:
// the fake answers 13 before nrt_init, 14 after nrt_close, and refuses a
// second nrt_init.
func TestFakeStateMachine(t *testing.T) {
	lib, fake := openFake(t)
	fn := lib.fn
	var s setHandle
	assert.Equal(t, int32(StatusUninitialized), fn.allocSet(&s))
	t.Setenv("NEURON_RT_VISIBLE_CORES", "0-2")
	var n uint32
	require.Zero(t, fn.getVisibleVNC(&n), "core counts work before init")
	assert.Equal(t, uint32(3), n)

	rt, err := lib.Init(Config{})
	require.NoError(t, err)
	empty, err := fn.cString("")
	require.NoError(t, err)
	defer fn.freeCString(empty)
	assert.Equal(t, int32(StatusFailure), fn.init(1, empty, empty), "second nrt_init while initialised")
	var leaked tensorHandle
	require.Zero(t, fn.tensorAllocate(0, 0, 8, nil, &leaked)) // behind the binding's back
	require.NoError(t, rt.Close())
	assert.Equal(t, int32(StatusClosed), fn.allocSet(&s))
	st := fake.Stats()
	assert.Equal(t, int64(2), st.State)
	assert.Equal(t, int64(1), st.Leaks, "nrt_close counts and releases what is still live")
	assert.Zero(t, st.LiveTensors)
}

// TestStrictModeAborts re-runs this test binary with FAKE_NRT_STRICT=1 and
// a double free: the fake must abort the process.
func TestStrictModeAborts(t *testing.T) {
	if os.Getenv("MNEMO_FAKENRT_STRICT_CHILD") == "1" {
		// No core dump from the abort.
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}))
		lib, _ := openFake(t)
		rt, err := lib.Init(Config{})
		require.NoError(t, err)
		var h tensorHandle
		require.Zero(t, rt.fn.tensorAllocate(0, 0, 8, nil, &h))
		stale := h
		rt.fn.tensorFree(&h)
		rt.fn.tensorFree(&stale)
		t.Fatal("the fake did not abort on a double free")
	}
	if fakes.err != nil {
		t.Skipf("fake libnrt unavailable: %v", fakes.err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStrictModeAborts$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MNEMO_FAKENRT_STRICT_CHILD=1", "FAKE_NRT_STRICT=1", envPrebuilt+"="+fakes.dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	assert.Contains(t, string(out), "fakenrt: misuse: nrt_tensor_free")
	assert.NotContains(t, string(out), "did not abort")
}

// TestBucketSlices binds two NEFF buckets to one KV tensor: the small bucket
// through a slice of the first rows, the large one to the whole tensor.
func TestBucketSlices(t *testing.T) {
	rt, fake := initFake(t, Config{})
	bucket := func(rows uint32) *Model {
		m, err := rt.Load(nrttest.NEFF{
			Tensors: []nrttest.Tensor{
				{Name: "x", DType: "f32", Shape: []uint32{1, 2}},
				{Name: "pos", DType: "i32", Shape: []uint32{1}},
				{Name: "kv.must_alias_input", DType: "f32", Shape: []uint32{rows, 2}},
				{Out: true, Name: "kv", DType: "f32", Shape: []uint32{rows, 2}},
			},
			Ops: []string{"kv_append x pos -> kv"},
		}.Bytes(), 0)
		require.NoError(t, err)
		return m
	}
	small, large := bucket(2), bucket(4)
	kv, err := rt.Alloc(PlacementDevice, 0, 4*2*4, "kv")
	require.NoError(t, err)
	require.NoError(t, kv.Memset(0, kv.Size(), 0))
	before := fake.Stats().BytesVNC0
	view, err := kv.Slice(0, 2*2*4, "kv[:2]")
	require.NoError(t, err)
	assert.Equal(t, before, fake.Stats().BytesVNC0, "a slice adds no storage")
	x := allocWrite(t, rt, "x", f32Bytes([]float32{1, 2}))
	pos := allocWrite(t, rt, "pos", i32Bytes(1))
	sin, sout, err := small.Bind(map[string]*Tensor{"x": x, "pos": pos, "kv": view})
	require.NoError(t, err)
	lin, lout, err := large.Bind(map[string]*Tensor{"x": x, "pos": pos, "kv": kv})
	require.NoError(t, err)

	require.NoError(t, small.Execute(sin, sout))
	require.NoError(t, x.Write(f32Bytes([]float32{3, 4}), 0))
	require.NoError(t, pos.Write(i32Bytes(3), 0))
	require.NoError(t, large.Execute(lin, lout))
	assert.Equal(t, []float32{0, 0, 1, 2, 0, 0, 3, 4}, bytesF32(readAll(t, kv)))
	assert.Equal(t, []float32{0, 0, 1, 2}, bytesF32(readAll(t, view)))
	require.NoError(t, pos.Write(i32Bytes(2), 0))
	assert.True(t, IsInput(small.Execute(sin, sout)), "row 2 is outside the small bucket")
}

func BenchmarkFake(b *testing.B) {
	if fakes.err != nil {
		b.Skipf("fake libnrt unavailable: %v", fakes.err)
	}
	fakes.ctl.Reset()
	lib, err := Open(fakes.main)
	require.NoError(b, err)
	defer func() { assert.NoError(b, lib.Close()) }()
	rt, err := lib.Init(Config{})
	require.NoError(b, err)
	m, err := rt.Load(nrttest.NEFF{Tensors: []nrttest.Tensor{
		{Name: "input0", DType: "f32", Shape: []uint32{1}},
		{Out: true, Name: "output0", DType: "f32", Shape: []uint32{1}},
	}, Ops: []string{"copy input0 -> output0"}}.Bytes(), 0)
	require.NoError(b, err)
	x, err := rt.Alloc(PlacementDevice, 0, 1<<20, "x")
	require.NoError(b, err)
	in4, err := rt.Alloc(PlacementDevice, 0, 4, "in")
	require.NoError(b, err)
	out4, err := rt.Alloc(PlacementDevice, 0, 4, "out")
	require.NoError(b, err)
	in, out, err := m.Bind(map[string]*Tensor{"input0": in4, "output0": out4})
	require.NoError(b, err)
	b.Run("impl=fakenrt/op=execute", func(b *testing.B) {
		for b.Loop() {
			if err := m.Execute(in, out); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{64, 1 << 20} {
		buf := make([]byte, n)
		b.Run(fmt.Sprintf("impl=fakenrt/op=write/bytes=%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				if err := x.Write(buf, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

// TestBusyModel runs one model from two goroutines with FAKE_NRT_BUSY=1
// until one execution finds the model busy.
func TestBusyModel(t *testing.T) {
	t.Setenv("FAKE_NRT_BUSY", "1")
	rt, _ := initFake(t, Config{})
	m, err := rt.Load(nrttest.NEFF{Ops: []string{"sleep_ms 5"}}.Bytes(), 0)
	require.NoError(t, err)
	in, out, err := m.Bind(nil)
	require.NoError(t, err)
	var busy atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			for i := 0; i < 2000 && !busy.Load(); i++ {
				err := m.Execute(in, out)
				if errors.Is(err, ErrRetryable) {
					busy.Store(true)
					return
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.True(t, busy.Load(), "overlapping executions must report NRT_EXEC_NC_BUSY")
}
