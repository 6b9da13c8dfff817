package kernels

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// F32 weights: groups of 8 rows, 64-byte chunks (16 floats), K padded to a
// multiple of 16 with zeros.
var f32Layout = layout{group: 8, chunk: 64}

func init() {
	registerFormat(format.F32, packF32, rowF32, &gemm{
		path: func(Precision) Path { return PathScalar },
		prep: prepPadF32,
		rows: rowsF32Generic,
	})
}

func packF32(w *Matrix, rows []byte) {
	l := f32Layout
	w.kp = roundUp(w.K, 16)
	l.rowBytes = w.kp * 4
	rb := w.K * 4
	w.group = l.group
	w.data, w.np = l.interleave(w.N, func(i int) []byte { return rows[i*rb : (i+1)*rb] })
}

func (w *Matrix) f32Layout() layout {
	l := f32Layout
	l.rowBytes = w.kp * 4
	return l
}

func rowF32(w *Matrix, i int, dst []float32) {
	l := w.f32Layout()
	buf := make([]byte, l.rowBytes)
	l.gather(w.data, i, buf)
	for k := range dst {
		dst[k] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*k:]))
	}
}

// prepPadF32 copies x into s.f32 with each row padded with zeros to w.kp,
// when K is not already a multiple of 16.
func prepPadF32(w *Matrix, x []float32, m int, s *scratch) {
	if w.kp == w.K {
		return
	}
	s.f32 = grow(s.f32, m*w.kp)
	for i := range m {
		row := s.f32[i*w.kp : (i+1)*w.kp]
		copy(row, x[i*w.K:(i+1)*w.K])
		clear(row[w.K:])
	}
}

// paddedF32 returns the activations as rows of w.kp floats: x itself when no
// padding was needed, else the copy prepPadF32 made.
func paddedF32(w *Matrix, x []float32, s *scratch) []float32 {
	if w.kp == w.K {
		return x
	}
	return s.f32
}

// asF32 reinterprets packed little-endian f32 bytes as floats.
func asF32(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// rowsF32Generic is the reference F32 kernel: for each group of 8 rows and
// each activation row, 8 accumulators over the 16-float chunks.
func rowsF32Generic(w *Matrix, y, x []float32, m, n0, n1 int, s *scratch) {
	const g, c = 8, 16
	xs := paddedF32(w, x, s)
	wf := asF32(w.data)
	chunks := w.kp / c
	for n := n0; n < n1; n += g {
		grp := wf[n*w.kp : (n+g)*w.kp]
		for i := range m {
			xr := xs[i*w.kp : (i+1)*w.kp]
			var acc [g]float32
			for ch := range chunks {
				xc := xr[ch*c : ch*c+c]
				blk := grp[ch*g*c : (ch+1)*g*c]
				for r := range g {
					wr := blk[r*c : r*c+c]
					a := acc[r]
					for e, xv := range xc {
						a += wr[e] * xv
					}
					acc[r] = a
				}
			}
			yr := y[i*w.N : (i+1)*w.N]
			for r := range min(g, w.N-n) {
				yr[n+r] = acc[r]
			}
		}
	}
}
