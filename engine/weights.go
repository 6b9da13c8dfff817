package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

// nativeFormats are the GGML types whose bytes the kernels read as they are.
var nativeFormats = map[gguf.GGMLType]format.Type{
	gguf.F32:   format.F32,
	gguf.F16:   format.F16,
	gguf.BF16:  format.BF16,
	gguf.Q8_0:  format.Q8_0,
	gguf.Q4_0:  format.Q4_0,
	gguf.MXFP4: format.MXFP4,
}

// Loader moves weights from a model.Source into a backend, converting
// formats as Options.Weights asks. It counts bytes for progress reports.
type Loader struct {
	src     model.Source
	be      backend.Backend
	weights string
	done    int64
	total   int64
	report  func(done, total int64)
	bytes   int64 // backend bytes of everything loaded
}

// NewLoader returns a Loader; weights is Options.Weights.
func NewLoader(src model.Source, be backend.Backend, weights string, progress func(done, total int64)) (*Loader, error) {
	if weights != "auto" {
		if _, err := format.ParseType(weights); err != nil {
			return nil, fmt.Errorf("weights %q: want auto or one of %v", weights, format.Types())
		}
	}
	l := &Loader{src: src, be: be, weights: weights, report: progress}
	for _, t := range src.Tensors() {
		l.total += int64(len(t.Data))
	}
	return l, nil
}

// Bytes returns the backend bytes of everything loaded so far.
func (l *Loader) Bytes() int64 { return l.bytes }

func (l *Loader) progress(n int) {
	l.done += int64(n)
	if l.report != nil {
		l.report(l.done, l.total)
	}
}

// target returns the format a tensor of GGML type t is stored in.
func (l *Loader) target(t gguf.GGMLType, k int) (format.Type, error) {
	if l.weights == "auto" {
		if f, ok := nativeFormats[t]; ok {
			return f, nil
		}
		if format.Q8_0.RowOK(k) {
			return format.Q8_0, nil
		}
		return format.F32, nil
	}
	f, err := format.ParseType(l.weights)
	if err != nil {
		return 0, err
	}
	if !f.RowOK(k) {
		// Rows this format cannot hold (K not a block multiple) stay f32.
		return format.F32, nil
	}
	return f, nil
}

// Matrix loads the named n×k matrix (GGUF dims [k, n]).
func (l *Loader) Matrix(name string, n, k int) (backend.Buffer, format.Type, error) {
	t, err := l.src.Tensor(name)
	if err != nil {
		return nil, 0, err
	}
	if !slices.Equal(t.Dims, []uint64{uint64(k), uint64(n)}) {
		return nil, 0, fmt.Errorf("tensor %s: shape %v, want [%d %d]", name, t.Dims, k, n)
	}
	ft, err := l.target(t.Type, k)
	if err != nil {
		return nil, 0, err
	}
	host, err := l.encode(t, ft, n, k)
	if err != nil {
		return nil, 0, fmt.Errorf("tensor %s: %w", name, err)
	}
	buf, err := l.be.Alloc(backend.Weights(ft), backend.Shape{n, k})
	if err != nil {
		return nil, 0, fmt.Errorf("tensor %s: %w", name, err)
	}
	if err := buf.Write(host); err != nil {
		buf.Close()
		return nil, 0, fmt.Errorf("tensor %s: %w", name, err)
	}
	l.bytes += int64(len(host))
	l.progress(len(t.Data))
	return buf, ft, nil
}

// encode returns the host encoding of t (n rows of k) in format ft.
func (l *Loader) encode(t model.Tensor, ft format.Type, n, k int) ([]byte, error) {
	if native, ok := nativeFormats[t.Type]; ok && native == ft {
		if want := n * ft.RowBytes(k); len(t.Data) != want {
			return nil, fmt.Errorf("%d bytes of data, want %d", len(t.Data), want)
		}
		return t.Data, nil
	}
	srb, ok := t.Type.RowSize(uint64(k))
	if !ok || !gguf.CanDequantize(t.Type) {
		return nil, fmt.Errorf("%w: %s", gguf.ErrUnsupportedType, t.Type)
	}
	if uint64(len(t.Data)) != srb*uint64(n) {
		return nil, fmt.Errorf("%d bytes of data, want %d", len(t.Data), srb*uint64(n))
	}
	row := make([]float32, k)
	decode := func(i int) error {
		return gguf.Dequantize(t.Type, row, t.Data[uint64(i)*srb:uint64(i+1)*srb])
	}
	opt := format.Options{}
	if ft == format.NVFP4 { // the tensor scale needs the whole tensor's amax
		var amax float32
		for i := range n {
			if err := decode(i); err != nil {
				return nil, err
			}
			for _, v := range row {
				if a := float32(math.Abs(float64(v))); a > amax && !math.IsInf(float64(a), 0) {
					amax = a
				}
			}
		}
		opt.TensorScale = format.NVFP4TensorScale([]float32{amax})
	}
	rb := ft.RowBytes(k)
	host := make([]byte, n*rb, n*rb+4)
	for i := range n {
		if err := decode(i); err != nil {
			return nil, err
		}
		format.QuantizeRow(ft, host[i*rb:(i+1)*rb], row, opt)
	}
	if ft == format.NVFP4 {
		host = binary.LittleEndian.AppendUint32(host, math.Float32bits(opt.TensorScale))
	}
	return host, nil
}

// Vector loads the named 1-D tensor of n elements as an f32 buffer.
func (l *Loader) Vector(name string, n int) (backend.Buffer, error) {
	t, err := l.src.Tensor(name)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(t.Dims, []uint64{uint64(n)}) {
		return nil, fmt.Errorf("tensor %s: shape %v, want [%d]", name, t.Dims, n)
	}
	v := make([]float32, n)
	if err := gguf.Dequantize(t.Type, v, t.Data); err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	buf, err := l.be.Alloc(backend.F32, backend.Shape{n})
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	if err := buf.Write(f32Bytes(v)); err != nil {
		buf.Close()
		return nil, fmt.Errorf("tensor %s: %w", name, err)
	}
	l.bytes += int64(4 * n)
	l.progress(len(t.Data))
	return buf, nil
}

func f32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

func i32Bytes(v []int32, out []byte) []byte {
	out = out[:0]
	for _, x := range v {
		out = binary.LittleEndian.AppendUint32(out, uint32(x))
	}
	return out
}

func float32frombits(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }
