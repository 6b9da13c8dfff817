package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

// nativeFormats are the tensor types whose bytes the kernels read as they
// are (mnemo's FP8 and NVFP4 types with their companion scale tensors).
var nativeFormats = map[gguf.GGMLType]format.Type{
	gguf.F32:            format.F32,
	gguf.F16:            format.F16,
	gguf.BF16:           format.BF16,
	gguf.Q8_0:           format.Q8_0,
	gguf.Q4_0:           format.Q4_0,
	gguf.MXFP4:          format.MXFP4,
	gguf.MnemoE4M3:      format.F8E4M3Row,
	gguf.MnemoMXFP8E4M3: format.MXF8E4M3,
	gguf.MnemoMXFP8E5M2: format.MXF8E5M2,
	gguf.MnemoNVFP4:     format.NVFP4,
}

// FileType returns the tensor type a weight format is stored as in GGUF,
// and whether that type is mnemo's own (with a "<name>.scale" companion
// for F8E4M3Row and NVFP4).
func FileType(f format.Type) (gguf.GGMLType, bool) {
	for t, nf := range nativeFormats {
		if nf == f {
			return t, t >= gguf.MnemoE4M3
		}
	}
	return 0, false
}

// ScaleTensor names the companion tensor of mnemo's scaled types.
func ScaleTensor(name string) string { return name + ".scale" }

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

// supports reports whether the backend runs matmuls on weights of format
// f with rows of k (always true without a backend: QuantizeFile).
func (l *Loader) supports(f format.Type, k int) bool {
	if !f.RowOK(k) {
		return false
	}
	return l.be == nil || l.be.Supports(backend.Spec{Op: backend.OpMatMul, M: 1, N: 1, K: k, Weights: f}) == nil
}

// target returns the format a tensor of GGML type t is stored in: with
// "auto", the file's own format where the backend has a kernel for it,
// else Q8_0, else F32.
func (l *Loader) target(t gguf.GGMLType, k int) (format.Type, error) {
	if l.weights == "auto" {
		if f, ok := nativeFormats[t]; ok && l.supports(f, k) {
			return f, nil
		}
		if l.supports(format.Q8_0, k) {
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
	if !l.supports(f, k) {
		return 0, fmt.Errorf("weights %s: the %s backend has no kernel for them", f, l.be.Name())
	}
	return f, nil
}

// Matrix loads the named n×k matrix (GGUF dims [k, n]).
func (l *Loader) Matrix(name string, n, k int) (backend.Buffer, format.Type, error) {
	t, err := l.tensor2D(name, n, k)
	if err != nil {
		return nil, 0, err
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
	l.bytes += int64(bufferBytes(buf, len(host)))
	l.progress(len(t.Data))
	return buf, ft, nil
}

// tensor2D returns the named n×k matrix tensor (GGUF dims [k, n]).
func (l *Loader) tensor2D(name string, n, k int) (model.Tensor, error) {
	t, err := l.src.Tensor(name)
	if err != nil {
		return t, err
	}
	if !slices.Equal(t.Dims, []uint64{uint64(k), uint64(n)}) {
		return t, fmt.Errorf("tensor %s: shape %v, want [%d %d]", name, t.Dims, k, n)
	}
	return t, nil
}

// StackFormat returns the format the named matrices, each of ns[i] rows
// of k, would be stored in, and whether Stack can load them as one matrix:
// they must all get the same format, one that keeps no scale per matrix
// (NVFP4 does).
func (l *Loader) StackFormat(names []string, ns []int, k int) (format.Type, bool, error) {
	var ft format.Type
	for i, name := range names {
		t, err := l.tensor2D(name, ns[i], k)
		if err != nil {
			return 0, false, err
		}
		f, err := l.target(t.Type, k)
		if err != nil {
			return 0, false, err
		}
		if i > 0 && f != ft {
			return ft, false, nil
		}
		ft = f
	}
	return ft, len(names) > 0 && ft != format.NVFP4, nil
}

// Stack loads the named matrices, each of ns[i] rows of k, as the rows of
// one matrix in the order given, or fails if StackFormat says they cannot
// be stacked.
func (l *Loader) Stack(names []string, ns []int, k int) (backend.Buffer, format.Type, error) {
	ft, ok, err := l.StackFormat(names, ns, k)
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, fmt.Errorf("tensors %s: formats differ or cannot be stacked", strings.Join(names, ", "))
	}
	n, read := 0, 0
	for _, r := range ns {
		n += r
	}
	host := make([]byte, 0, n*ft.RowBytes(k))
	for i, name := range names {
		t, _ := l.src.Tensor(name) // found by StackFormat
		rows, err := l.encode(t, ft, ns[i], k)
		if err != nil {
			return nil, 0, fmt.Errorf("tensor %s: %w", name, err)
		}
		host = append(host, rows...)
		read += len(t.Data)
	}
	what := strings.Join(names, "+")
	buf, err := l.be.Alloc(backend.Weights(ft), backend.Shape{n, k})
	if err != nil {
		return nil, 0, fmt.Errorf("tensors %s: %w", what, err)
	}
	if err := buf.Write(host); err != nil {
		buf.Close()
		return nil, 0, fmt.Errorf("tensors %s: %w", what, err)
	}
	l.bytes += int64(bufferBytes(buf, len(host)))
	l.progress(read)
	return buf, ft, nil
}

// fileRows returns t's rows in the file encoding of its native format
// (format.Type.RowBytes per row; NVFP4's tensor scale separately),
// assembling the companion scale tensor of mnemo's scaled types.
func (l *Loader) fileRows(t model.Tensor, ft format.Type, n, k int) (rows []byte, tensorScale float32, err error) {
	raw := uint64(n) * func() uint64 { r, _ := t.Type.RowSize(uint64(k)); return r }()
	if uint64(len(t.Data)) != raw {
		return nil, 0, fmt.Errorf("%d bytes of data, want %d", len(t.Data), raw)
	}
	switch ft {
	case format.F8E4M3Row:
		sc, err := l.scales(t.Name, n)
		if err != nil {
			return nil, 0, err
		}
		rows = make([]byte, 0, n*ft.RowBytes(k))
		for i := range n {
			rows = append(rows, t.Data[i*k:(i+1)*k]...)
			rows = binary.LittleEndian.AppendUint32(rows, math.Float32bits(sc[i]))
		}
		return rows, 0, nil
	case format.NVFP4:
		sc, err := l.scales(t.Name, 1)
		if err != nil {
			return nil, 0, err
		}
		if !(sc[0] > 0) || math.IsInf(float64(sc[0]), 0) {
			return nil, 0, fmt.Errorf("tensor scale %g is not a positive finite number", sc[0])
		}
		return t.Data, sc[0], nil
	}
	return t.Data, 0, nil
}

func (l *Loader) scales(name string, n int) ([]float32, error) {
	st, err := l.src.Tensor(ScaleTensor(name))
	if err != nil {
		return nil, err
	}
	if st.Type != gguf.F32 || !slices.Equal(st.Dims, []uint64{uint64(n)}) || len(st.Data) != 4*n {
		return nil, fmt.Errorf("companion %s: want %d f32 values, got %s %v", st.Name, n, st.Type, st.Dims)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32frombits(st.Data[4*i:])
	}
	return v, nil
}

// encode returns the host encoding of t (n rows of k) in format ft.
func (l *Loader) encode(t model.Tensor, ft format.Type, n, k int) ([]byte, error) {
	var decode func(i int, row []float32) error
	if native, ok := nativeFormats[t.Type]; ok {
		rows, scale, err := l.fileRows(t, native, n, k)
		if err != nil {
			return nil, err
		}
		if native == ft {
			if ft == format.NVFP4 {
				rows = binary.LittleEndian.AppendUint32(append([]byte(nil), rows...), math.Float32bits(scale))
			}
			return rows, nil
		}
		rb := native.RowBytes(k)
		decode = func(i int, row []float32) error {
			format.DequantizeRow(native, row, rows[i*rb:(i+1)*rb], scale)
			return nil
		}
	} else {
		srb, ok := t.Type.RowSize(uint64(k))
		if !ok || !gguf.CanDequantize(t.Type) {
			return nil, fmt.Errorf("%w: %s", gguf.ErrUnsupportedType, t.Type)
		}
		if uint64(len(t.Data)) != srb*uint64(n) {
			return nil, fmt.Errorf("%d bytes of data, want %d", len(t.Data), srb*uint64(n))
		}
		decode = func(i int, row []float32) error {
			return gguf.Dequantize(t.Type, row, t.Data[uint64(i)*srb:uint64(i+1)*srb])
		}
	}
	return Requantize(ft, n, k, decode)
}

// Requantize encodes n rows of k values, produced by decode, in format ft
// (the host encoding of a weight buffer: NVFP4's tensor scale, computed
// from the whole matrix, follows the rows).
func Requantize(ft format.Type, n, k int, decode func(i int, row []float32) error) ([]byte, error) {
	row := make([]float32, k)
	opt := format.Options{}
	if ft == format.NVFP4 { // the tensor scale needs the whole tensor's amax
		var amax float32
		for i := range n {
			if err := decode(i, row); err != nil {
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
		if err := decode(i, row); err != nil {
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
	return l.Vectors([]string{name}, []int{n})
}

// Vectors loads the named 1-D tensors, of ns[i] elements each, one after
// another as one f32 buffer (the biases of stacked matrices).
func (l *Loader) Vectors(names []string, ns []int) (backend.Buffer, error) {
	total, read := 0, 0
	for _, n := range ns {
		total += n
	}
	v := make([]float32, 0, total)
	for i, name := range names {
		t, err := l.src.Tensor(name)
		if err != nil {
			return nil, err
		}
		n := ns[i]
		if !slices.Equal(t.Dims, []uint64{uint64(n)}) {
			return nil, fmt.Errorf("tensor %s: shape %v, want [%d]", name, t.Dims, n)
		}
		if err := gguf.Dequantize(t.Type, v[len(v):len(v)+n], t.Data); err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		v = v[:len(v)+n]
		read += len(t.Data)
	}
	what := strings.Join(names, "+")
	buf, err := l.be.Alloc(backend.F32, backend.Shape{total})
	if err != nil {
		return nil, fmt.Errorf("tensor %s: %w", what, err)
	}
	if err := buf.Write(f32Bytes(v)); err != nil {
		buf.Close()
		return nil, fmt.Errorf("tensor %s: %w", what, err)
	}
	l.bytes += int64(4 * total)
	l.progress(read)
	return buf, nil
}

// bufferBytes returns the memory a backend buffer holds, if the backend
// says (packed layouts can be larger than the file encoding), else n.
func bufferBytes(b backend.Buffer, n int) int {
	if s, ok := b.(interface{ Bytes() int }); ok {
		return s.Bytes()
	}
	return n
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
