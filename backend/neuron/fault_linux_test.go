//go:build linux

package neuron_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/neuron"
	"github.com/mnemo-ai/mnemo/backend/neuron/neurontest"
	"github.com/mnemo-ai/mnemo/backend/neuron/nrt"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

var (
	addSpec  = backend.Spec{Op: backend.OpAdd, M: 2, N: 3}
	mmSpec   = backend.Spec{Op: backend.OpMatMul, M: 4, N: 8, K: 32, Weights: format.F32}
	ropeSpec = backend.Spec{Op: backend.OpRoPE, M: 1, Heads: 1, HeadDim: 4, Rope: backend.Rope{Dims: 4, Base: 10000}}
)

func f32b(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func bf32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func mustAlloc(t *testing.T, b backend.Backend, dt backend.DType, shape ...int) backend.Buffer {
	t.Helper()
	buf, err := b.Alloc(dt, shape)
	require.NoError(t, err)
	return buf
}

// addFixture compiles addSpec and allocates its buffers (a = 1..6, b = 10s).
func addFixture(t *testing.T, b backend.Backend) (backend.Program, []backend.Buffer, backend.Buffer) {
	t.Helper()
	p, err := b.Compile(context.Background(), addSpec)
	require.NoError(t, err)
	a, c, y := mustAlloc(t, b, backend.F32, 2, 3), mustAlloc(t, b, backend.F32, 2, 3), mustAlloc(t, b, backend.F32, 2, 3)
	require.NoError(t, a.Write(f32b(1, 2, 3, 4, 5, 6)))
	require.NoError(t, c.Write(f32b(10, 10, 10, 10, 10, 10)))
	return p, []backend.Buffer{a, c}, y
}

func readAll(t *testing.T, buf backend.Buffer) []float32 {
	t.Helper()
	n, err := backend.HostBytes(buf.DType(), buf.Shape())
	require.NoError(t, err)
	raw := make([]byte, n)
	require.NoError(t, buf.Read(raw))
	return bf32(raw)
}

func closeAll(t *testing.T, xs ...interface{ Close() error }) {
	t.Helper()
	for _, x := range xs {
		require.NoError(t, x.Close())
	}
}

// TestInjectedStatuses checks that statuses from nrt_execute surface
// through Program.Run as typed errors, and which of them leave the backend
// usable.
func TestInjectedStatuses(t *testing.T) {
	for _, tt := range []struct {
		name    string
		status  int32
		class   error
		fatal   bool
		written bool // outputs are written despite the error
	}{
		{"bad input", 1002, nrt.ErrInput, false, false},
		{"out of bounds", 1006, nrt.ErrInput, false, false},
		{"NaN produced", 1003, nrt.ErrNumeric, false, true},
		{"busy", 1005, nrt.ErrRetryable, false, false},
		{"timeout", 5, nrt.ErrTimeout, false, false},
		{"HBM uncorrectable", 1201, nrt.ErrFatalDevice, true, false},
		{"unrecoverable", 101, nrt.ErrFatalDevice, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := openNeuron(t, nil, []backend.Spec{addSpec})
			p, in, y := addFixture(t, b)
			require.NoError(t, fake.Inject("nrt_execute", tt.status, 1))
			err := p.Run(context.Background(), in, []backend.Buffer{y})
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.class)
			var se *nrt.StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, nrt.Status(tt.status), se.Code)
			if tt.written {
				assert.Equal(t, []float32{11, 12, 13, 14, 15, 16}, readAll(t, y))
			}
			if tt.fatal {
				assert.ErrorIs(t, err, neuron.ErrUnhealthy)
				assert.ErrorIs(t, b.Err(), neuron.ErrUnhealthy)
				execs := fake.Stats().Execs
				err := p.Run(context.Background(), in, []backend.Buffer{y})
				assert.ErrorIs(t, err, neuron.ErrUnhealthy, "later runs fail fast")
				assert.ErrorIs(t, err, nrt.ErrFatalDevice, "and say why")
				assert.Equal(t, execs, fake.Stats().Execs, "without reaching the device")
				_, err = b.Alloc(backend.F32, backend.Shape{4})
				assert.ErrorIs(t, err, neuron.ErrUnhealthy)
				_, err = b.Compile(context.Background(), addSpec)
				assert.ErrorIs(t, err, neuron.ErrUnhealthy)
				assert.ErrorIs(t, y.Write(make([]byte, 24)), neuron.ErrUnhealthy)
			} else {
				assert.NoError(t, b.Err())
				require.NoError(t, p.Run(context.Background(), in, []backend.Buffer{y}), "the next run works")
				assert.Equal(t, []float32{11, 12, 13, 14, 15, 16}, readAll(t, y))
			}
			closeAll(t, p, in[0], in[1], y)
			require.NoError(t, b.Close())
		})
	}
}

// TestLoadAndAllocFaults checks errors from nrt_load and
// nrt_tensor_allocate.
func TestLoadAndAllocFaults(t *testing.T) {
	b := openNeuron(t, nil, []backend.Spec{addSpec})
	require.NoError(t, fake.Inject("nrt_load", 4, 1))
	_, err := b.Compile(context.Background(), addSpec)
	assert.True(t, nrt.IsResource(err), "%v", err)
	require.NoError(t, fake.Inject("nrt_tensor_allocate", 4, 1))
	_, err = b.Alloc(backend.F32, backend.Shape{4})
	assert.True(t, nrt.IsResource(err), "%v", err)
	assert.NoError(t, b.Err(), "resource errors are not fatal")
	require.NoError(t, b.Close())
	assert.Zero(t, fake.Stats().LiveTensors)
}

// TestCloseReportsLeaks closes the backend with a buffer and a program
// open.
func TestCloseReportsLeaks(t *testing.T) {
	b := openNeuron(t, nil, []backend.Spec{addSpec})
	buf := mustAlloc(t, b, backend.F32, 2, 3)
	p, err := b.Compile(context.Background(), addSpec)
	require.NoError(t, err)
	err = b.Close()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "2 buffers or programs still open")
	assert.Contains(t, err.Error(), "buffer f32[2×3]")
	assert.Contains(t, err.Error(), "program add M=2 N=3")
	st := fake.Stats()
	assert.Zero(t, st.LiveTensors+st.LiveModels+st.LiveSets, "the runtime released them")
	assert.Zero(t, st.Misuse)
	assert.ErrorIs(t, buf.Write(make([]byte, 24)), backend.ErrClosed)
	assert.ErrorIs(t, p.Run(context.Background(), nil, nil), backend.ErrClosed)
	assert.NoError(t, buf.Close())
	assert.NoError(t, p.Close())
	assert.NoError(t, b.Close(), "Close is idempotent")
}

// TestCleanClose checks that closing everything leaves nothing live in the
// runtime and reports no leak.
func TestCleanClose(t *testing.T) {
	b := openNeuron(t, nil, []backend.Spec{addSpec})
	p, in, y := addFixture(t, b)
	require.NoError(t, p.Run(context.Background(), in, []backend.Buffer{y}))
	closeAll(t, p, in[0], in[1], y)
	st := fake.Stats()
	assert.Zero(t, st.LiveTensors+st.LiveModels+st.LiveSets+st.LiveInfos)
	require.NoError(t, b.Close())
	st = fake.Stats()
	assert.Zero(t, st.Leaks+st.Misuse)
}

// TestConcurrentPrograms runs two programs from several goroutines at once
// (run it with -race).
func TestConcurrentPrograms(t *testing.T) {
	b := openNeuron(t, nil, []backend.Spec{addSpec, mmSpec})
	ctx := context.Background()
	add, in, y := addFixture(t, b)
	require.NoError(t, y.Close())
	mm, err := b.Compile(ctx, mmSpec)
	require.NoError(t, err)
	w := mustAlloc(t, b, backend.Weights(format.F32), 8, 32)
	x := mustAlloc(t, b, backend.F32, 4, 32)
	wv, xv := make([]float32, 8*32), make([]float32, 4*32)
	for i := range wv {
		wv[i] = float32(i%7) - 3
	}
	for i := range xv {
		xv[i] = float32(i%5) * 0.5
	}
	require.NoError(t, w.Write(f32b(wv...)))
	require.NoError(t, x.Write(f32b(xv...)))
	want := make([]float32, 4*8)
	for i := range 4 {
		for j := range 8 {
			for k := range 32 {
				want[i*8+j] += xv[i*32+k] * wv[j*32+k]
			}
		}
	}
	const workers = 4
	outs := make([]backend.Buffer, 2*workers)
	for i := range workers {
		outs[2*i] = mustAlloc(t, b, backend.F32, 2, 3)
		outs[2*i+1] = mustAlloc(t, b, backend.F32, 4, 8)
	}
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	var wg sync.WaitGroup
	errs := make([]error, 2*workers)
	for i := range 2 * workers {
		wg.Go(func() {
			for range rounds {
				var err error
				if i%2 == 0 {
					err = add.Run(ctx, in, []backend.Buffer{outs[i]})
				} else {
					err = mm.Run(ctx, []backend.Buffer{x, w}, []backend.Buffer{outs[i]})
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for i, o := range outs {
		if i%2 == 0 {
			assert.Equal(t, []float32{11, 12, 13, 14, 15, 16}, readAll(t, o))
		} else {
			assert.Equal(t, want, readAll(t, o))
		}
	}
	closeAll(t, add, mm, in[0], in[1], w, x)
	for _, o := range outs {
		require.NoError(t, o.Close())
	}
	require.NoError(t, b.Close())
}

// TestAliasing checks the in-place convention: RoPE's x must be the same
// buffer in and out, and the NEFF sees one tensor under both names.
func TestAliasing(t *testing.T) {
	b := openNeuron(t, nil, []backend.Spec{ropeSpec})
	ctx := context.Background()
	p, err := b.Compile(ctx, ropeSpec)
	require.NoError(t, err)
	x, x2, pos := mustAlloc(t, b, backend.F32, 1, 4), mustAlloc(t, b, backend.F32, 1, 4), mustAlloc(t, b, backend.I32, 1)
	require.NoError(t, x.Write(f32b(1, 0, 1, 0)))
	err = p.Run(ctx, []backend.Buffer{x, pos}, []backend.Buffer{x2})
	assert.ErrorIs(t, err, backend.ErrSignature)
	require.NoError(t, p.Run(ctx, []backend.Buffer{x, pos}, []backend.Buffer{x}))
	assert.Equal(t, []float32{1, 0, 1, 0}, readAll(t, x), "position 0 is the identity")
	closeAll(t, p, x, x2, pos)
	require.NoError(t, b.Close())
}

// TestSupportsAndBucket checks that only the manifest's specs are
// supported and that step sizes round up to its buckets.
func TestSupportsAndBucket(t *testing.T) {
	b := openNeuron(t, []int{1, 8, 64}, []backend.Spec{addSpec, mmSpec})
	assert.NoError(t, b.Supports(addSpec))
	assert.NoError(t, b.Supports(mmSpec))
	other := mmSpec
	other.Weights = format.Q4_0
	err := b.Supports(other)
	assert.ErrorIs(t, err, backend.ErrUnsupported)
	assert.Contains(t, err.Error(), "no NEFF for matmul")
	_, err = b.Compile(context.Background(), other)
	assert.ErrorIs(t, err, backend.ErrUnsupported)
	assert.ErrorIs(t, b.Supports(backend.Spec{Op: backend.OpAdd}), backend.ErrShape)
	for n, want := range map[int]int{1: 1, 2: 8, 5: 8, 8: 8, 9: 64, 64: 64, 65: 65} {
		assert.Equal(t, want, b.Bucket(n), "Bucket(%d)", n)
	}
	assert.Len(t, b.Describe(), 4)
	require.NoError(t, b.Close())
}

// TestWeightLayoutUnsupported checks that a NEFF wanting weights in a
// device layout the backend does not produce is reported unsupported.
func TestWeightLayoutUnsupported(t *testing.T) {
	needFake(t)
	dir := t.TempDir()
	m, err := neurontest.WriteDir(dir, nil, []backend.Spec{mmSpec})
	require.NoError(t, err)
	m.Programs[0].WeightLayout = "trn2_fp8_kn"
	require.NoError(t, neuron.WriteManifest(dir, m))
	b, err := neuron.Open(backend.Options{Dir: dir})
	require.NoError(t, err)
	err = b.Supports(mmSpec)
	assert.ErrorIs(t, err, backend.ErrUnsupported)
	assert.ErrorContains(t, err, `layout "trn2_fp8_kn"`)
	_, err = b.Compile(context.Background(), mmSpec)
	assert.ErrorIs(t, err, backend.ErrUnsupported)
	require.NoError(t, b.Close())
}

// TestNEFFMismatch checks that Compile refuses a NEFF whose tensors differ
// from the manifest's.
func TestNEFFMismatch(t *testing.T) {
	needFake(t)
	dir := t.TempDir()
	m, err := neurontest.WriteDir(dir, nil, []backend.Spec{addSpec})
	require.NoError(t, err)
	m.Programs[0].Inputs[1] = "c"
	require.NoError(t, neuron.WriteManifest(dir, m))
	b, err := neuron.Open(backend.Options{Dir: dir})
	require.NoError(t, err)
	_, err = b.Compile(context.Background(), addSpec)
	assert.ErrorIs(t, err, backend.ErrSignature)
	assert.Contains(t, err.Error(), `no input "c"`)
	require.NoError(t, b.Close())
	assert.Zero(t, fake.Stats().LiveModels, "the NEFF was unloaded")
}

// TestOpenErrors checks why Open refuses.
func TestOpenErrors(t *testing.T) {
	needFake(t)
	dir := t.TempDir()
	_, err := neurontest.WriteDir(dir, nil, []backend.Spec{addSpec})
	require.NoError(t, err)
	t.Run("no dir", func(t *testing.T) {
		t.Setenv(neuron.EnvNEFFDir, "")
		_, err := neuron.Open(backend.Options{})
		assert.ErrorIs(t, err, neuron.ErrNoNEFFDir)
	})
	t.Run("dir from env", func(t *testing.T) {
		t.Setenv(neuron.EnvNEFFDir, dir)
		b, err := neuron.Open(backend.Options{})
		require.NoError(t, err)
		assert.NoError(t, b.Supports(addSpec))
		require.NoError(t, b.Close())
	})
	t.Run("no manifest", func(t *testing.T) {
		_, err := neuron.Open(backend.Options{Dir: t.TempDir()})
		assert.ErrorContains(t, err, "manifest.json")
	})
	t.Run("no cores", func(t *testing.T) {
		t.Setenv("FAKE_NRT_TOTAL_CORES", "0")
		_, err := neuron.Open(backend.Options{Dir: dir})
		assert.ErrorIs(t, err, neuron.ErrNoCores)
	})
	t.Run("too old", func(t *testing.T) {
		fake.SetVersion(1, 9, 0, 0)
		defer fake.Reset()
		_, err := neuron.Open(backend.Options{Dir: dir})
		assert.ErrorIs(t, err, neuron.ErrVersion)
		assert.ErrorContains(t, err, "1.9.0")
	})
	t.Run("registered", func(t *testing.T) {
		b, err := backend.Open("neuron", backend.Options{Dir: dir})
		require.NoError(t, err)
		assert.Equal(t, "neuron", b.Name())
		require.NoError(t, b.Close())
	})
}

// TestQuantizedMatMulExact checks the fake's matmul on quantized weights
// against a float64 product of the exactly decoded weights (format's
// decoders): the fake accumulates in double, so only the final rounding to
// float32 separates them.
func TestQuantizedMatMulExact(t *testing.T) {
	const m, n, k = 3, 5, 64
	var specs []backend.Spec
	for _, ft := range []format.Type{format.F8E4M3Row, format.MXFP4, format.MXF8E4M3, format.NVFP4} {
		specs = append(specs, backend.Spec{Op: backend.OpMatMul, M: m, N: n, K: k, Weights: ft})
	}
	b := openNeuron(t, nil, specs)
	ctx := context.Background()
	x := mustAlloc(t, b, backend.F32, m, k)
	y := mustAlloc(t, b, backend.F32, m, n)
	xv := make([]float32, m*k)
	for i := range xv {
		xv[i] = float32(math.Sin(float64(i)*0.37)) * 3
	}
	require.NoError(t, x.Write(f32b(xv...)))
	for _, s := range specs {
		t.Run(s.Weights.String(), func(t *testing.T) {
			wv := make([]float32, n*k)
			for i := range wv {
				wv[i] = float32(math.Cos(float64(i)*0.11)) * float32(1+i%3)
			}
			opt := format.Options{}
			if s.Weights == format.NVFP4 {
				opt.TensorScale = format.NVFP4TensorScale(wv)
			}
			rb := s.Weights.RowBytes(k)
			host, dec := make([]byte, n*rb), make([]float32, n*k)
			for j := range n {
				format.QuantizeRow(s.Weights, host[j*rb:(j+1)*rb], wv[j*k:(j+1)*k], opt)
				format.DequantizeRow(s.Weights, dec[j*k:(j+1)*k], host[j*rb:(j+1)*rb], opt.TensorScale)
			}
			if s.Weights == format.NVFP4 {
				host = binary.LittleEndian.AppendUint32(host, math.Float32bits(opt.TensorScale))
			}
			w := mustAlloc(t, b, backend.Weights(s.Weights), n, k)
			defer w.Close()
			require.NoError(t, w.Write(host))
			p, err := b.Compile(ctx, s)
			require.NoError(t, err)
			defer p.Close()
			require.NoError(t, p.Run(ctx, []backend.Buffer{x, w}, []backend.Buffer{y}))
			got := readAll(t, y)
			for i := range m {
				for j := range n {
					var ref float64
					for kk := range k {
						ref += float64(xv[i*k+kk]) * float64(dec[j*k+kk])
					}
					assert.Equal(t, float32(ref), got[i*n+j], "y[%d,%d]", i, j)
				}
			}
		})
	}
	closeAll(t, x, y)
	require.NoError(t, b.Close())
}
