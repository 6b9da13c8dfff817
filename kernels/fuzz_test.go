package kernels

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// FuzzMatMul is differential: a random registered format, shape and
// precision, packed rows made of the fuzzer's bytes (any codes, NaN and
// Inf included; only F8E4M3Row's float32 row scale is replaced by 1 when
// it is not finite, so that a cancelling sum times ±Inf cannot flip
// between +Inf, -Inf and NaN with the summation order), and activations
// that may hold subnormals and zeros, and NaN and ±Inf unless the format
// quantizes activations to int8 blocks at this precision. Every assembly impl must
// match the generic kernel (at the precision its path computes): NaN
// exactly where generic is NaN, the same infinity where generic is
// infinite, and within implTolerance·Σ|x·w| elsewhere. Outputs whose
// finite products could overflow float32 in some summation order
// (Σ|x·w| ≥ 1e37) are not compared. MNEMO_FUZZ_FORMATS=fp8,mxfp8,...
// restricts the formats.
func FuzzMatMul(f *testing.F) {
	f.Add([]byte{0, 0, 3, 17, 2, 0})
	f.Add([]byte{3, 1, 5, 64, 3, 0xff, 0x7f, 0x80, 0xfe, 0x01})
	f.Add([]byte{4, 0, 9, 2, 1, 3, 0xff, 0x7f, 0x00, 0x3c, 0x88})
	f.Add([]byte{5, 1, 1, 4, 4, 5, 0x7c, 0xfc, 0x7d})
	f.Add([]byte{2, 0, 4, 100, 2, 9, 0x80, 0x7f, 0x7f, 0x80, 0x00, 0x01})
	f.Add([]byte{1, 1, 7, 33, 1, 2, 0x00, 0x7c, 0x01, 0x00})
	f.Add([]byte{4, 0, 8, 3, 5, 32, 0x81, 0x3c, 0x7b, 0xff, 0x11})
	formats := Formats()
	if v := os.Getenv("MNEMO_FUZZ_FORMATS"); v != "" { // e.g. fp8,mxfp8
		formats = nil
		for _, name := range strings.Split(v, ",") {
			t, err := format.ParseType(name)
			if err != nil {
				f.Fatal(err)
			}
			formats = append(formats, t)
		}
	}
	impls := Impls()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 6 {
			return
		}
		ft := formats[int(data[0])%len(formats)]
		prec := Precision(data[1] & 1)
		n := 1 + int(data[2])%13
		be := ft.BlockElems()
		k := 1 + int(data[3])%140
		if be > 1 {
			k = be * (1 + int(data[3])%5)
		}
		m := 1 + int(data[4])%6
		flags := data[5]
		body := data[6:]
		h := fnv.New64a()
		h.Write(data)
		rng := rand.New(rand.NewPCG(h.Sum64(), 1))

		rb := ft.RowBytes(k)
		rows := make([]byte, n*rb)
		for i := range rows {
			if len(body) > 0 {
				rows[i] = body[i%len(body)] ^ byte(i/len(body)*29)
			} else {
				rows[i] = byte(rng.Uint32())
			}
		}
		if ft == format.F8E4M3Row {
			for j := range n {
				s := rows[j*rb+k:]
				v := math.Float32frombits(binary.LittleEndian.Uint32(s))
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					binary.LittleEndian.PutUint32(s, math.Float32bits(1))
				}
			}
		}
		if flags&32 != 0 && (ft == format.MXF8E4M3 || ft == format.MXF8E5M2) {
			// Keep the block scales and codes where the scales can be applied
			// to the bf16 weights (mxScaledOK), so that path is fuzzed too.
			lo, hi := mxScaledRange(ft)
			for b := 0; b < len(rows); b += 33 {
				rows[b] = lo + rows[b]%(hi-lo+1)
				for i := b + 1; i < b+33; i++ {
					if rows[i]&0x7F >= 0x7C {
						rows[i] &= 0xBF
					}
				}
			}
		}
		w, err := Pack(ft, n, k, rows, 1)
		if err != nil {
			t.Fatal(err)
		}
		w.Precision = prec
		x := make([]float32, m*k)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 4)
		}
		// Non-finite activations only where they have a defined result: the
		// int8 paths quantize activations per block from the block maximum,
		// which an infinity does not have.
		special := true
		for _, impl := range impls {
			if p := w.Path(impl); p == PathInt8Dot || p == PathInt8Madd {
				special = false
			}
		}
		if !special {
			flags &^= 7
		}
		if flags&1 != 0 {
			x[rng.IntN(len(x))] = float32(math.NaN())
		}
		if flags&2 != 0 {
			x[rng.IntN(len(x))] = float32(math.Inf(1))
		}
		if flags&4 != 0 {
			x[rng.IntN(len(x))] = float32(math.Inf(-1))
		}
		if flags&8 != 0 {
			x[rng.IntN(len(x))] = math.Float32frombits(rng.Uint32() & 0x807FFFFF) // subnormal
		}
		if flags&16 != 0 {
			clear(x[:k])
		}

		// Σ|x·w| over the finite products, per output, in float64.
		mag := make([]float64, m*n)
		wr := make([]float64, k)
		for j := range n {
			values64(ft, wr, rows[j*rb:(j+1)*rb])
			for i := range m {
				var s float64
				for kk, wv := range wr {
					if p := math.Abs(float64(x[i*k+kk]) * wv); !math.IsNaN(p) && !math.IsInf(p, 0) {
						s += p
					}
				}
				mag[i*n+j] = s
			}
		}
		generic := genericAt(w, x, m)
		for _, impl := range impls[1:] {
			y := make([]float32, m*n)
			impl.MatMul(nil, y, w, x, m)
			want := generic(impl)
			for o, g := range want {
				if mag[o] >= 1e37 {
					continue
				}
				got := float64(y[o])
				switch {
				case math.IsNaN(g) || math.IsNaN(got):
					if math.IsNaN(g) != math.IsNaN(got) {
						t.Fatalf("%s %s %s n=%d k=%d m=%d: y[%d] = %g, generic %g", impl, ft, prec, n, k, m, o, got, g)
					}
				case math.IsInf(g, 0) || math.IsInf(got, 0):
					if g != got {
						t.Fatalf("%s %s %s n=%d k=%d m=%d: y[%d] = %g, generic %g", impl, ft, prec, n, k, m, o, got, g)
					}
				case math.Abs(got-g) > implTolerance*mag[o]+1e-30:
					t.Fatalf("%s %s %s n=%d k=%d m=%d: y[%d] = %g, generic %g (Σ|x·w| %g)", impl, ft, prec, n, k, m, o, got, g, mag[o])
				}
			}
		}
	})
}

// values64 decodes a row of ft into float64 without the float32 rounding
// (or overflow) of scale·element that format.DequantizeRow has.
func values64(ft format.Type, dst []float64, row []byte) {
	k := len(dst)
	tmp := make([]float32, k)
	switch ft {
	case format.F8E4M3Row:
		s := float64(math.Float32frombits(binary.LittleEndian.Uint32(row[k:])))
		for i, c := range row[:k] {
			dst[i] = float64(format.E4M3Table[c]) * s
		}
	case format.MXF8E4M3, format.MXF8E5M2:
		table := &format.E4M3Table
		if ft == format.MXF8E5M2 {
			table = &format.E5M2Table
		}
		for b := range k / 32 {
			blk := row[b*33 : (b+1)*33]
			s := float64(format.E8M0ToFloat32(blk[0]))
			for i, c := range blk[1:] {
				dst[b*32+i] = float64(table[c]) * s
			}
		}
	default:
		format.DequantizeRow(ft, tmp, row, 1)
		for i, v := range tmp {
			dst[i] = float64(v)
		}
	}
}
