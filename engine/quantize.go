package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

// QuantizeStats describe a QuantizeFile run.
type QuantizeStats struct {
	Converted, Copied int
	InBytes, OutBytes int64
}

// QuantizeFile rewrites the GGUF model in as out with every weight matrix
// (2-D tensor whose rows the format can hold) stored in format t; other
// tensors and all metadata are copied. Formats GGUF has no type for are
// stored with mnemo's own type ids (see gguf.MnemoE4M3) and the file is
// marked with gguf.KeyMnemoTypes, so other GGUF tools refuse it instead of
// misreading it. out is written atomically.
func QuantizeFile(in, out string, t format.Type, progress func(done, total int64)) (QuantizeStats, error) {
	var st QuantizeStats
	ft, mnemoType := FileType(t)
	if ft == 0 && t != format.F32 {
		return st, fmt.Errorf("quantize: no file type for %s", t)
	}
	src, err := model.Open(in)
	if err != nil {
		return st, err
	}
	defer src.Close()
	gs, ok := src.(*model.GGUFSource)
	if !ok {
		return st, fmt.Errorf("quantize %s: only GGUF files can be rewritten", in)
	}
	f := gs.File()
	w := gguf.NewWriter()
	for _, kv := range f.KVs() {
		if kv.Key == gguf.KeyMnemoTypes {
			continue
		}
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			return st, err
		}
	}
	if mnemoType {
		if err := w.AddKV(gguf.KeyMnemoTypes, gguf.String(t.String())); err != nil {
			return st, err
		}
	}
	ld, err := NewLoader(src, nil, "f32", progress)
	if err != nil {
		return st, err
	}
	for _, ti := range src.Tensors() {
		st.InBytes += int64(len(ti.Data))
		if strings.HasSuffix(ti.Name, ".scale") && isCompanion(src, ti.Name) {
			continue // rewritten with its matrix
		}
		if len(ti.Dims) != 2 || ti.Dims[1] < 2 || !t.RowOK(int(ti.Dims[0])) {
			if err := w.AddTensor(ti.Name, ti.Type, ti.Dims, ti.Data); err != nil {
				return st, err
			}
			if comp, err := src.Tensor(ScaleTensor(ti.Name)); err == nil {
				if err := w.AddTensor(comp.Name, comp.Type, comp.Dims, comp.Data); err != nil {
					return st, err
				}
			}
			st.Copied++
			st.OutBytes += int64(len(ti.Data))
			ld.progress(len(ti.Data))
			continue
		}
		k, n := int(ti.Dims[0]), int(ti.Dims[1])
		host, err := ld.encode(ti, t, n, k)
		if err != nil {
			return st, fmt.Errorf("quantize %s: tensor %s: %w", in, ti.Name, err)
		}
		ld.progress(len(ti.Data))
		rb := t.RowBytes(k)
		data, comp := host, []float32(nil)
		switch t {
		case format.F8E4M3Row: // split the per-row scales into the companion
			data = make([]byte, 0, n*k)
			comp = make([]float32, n)
			for i := range n {
				row := host[i*rb : (i+1)*rb]
				data = append(data, row[:k]...)
				comp[i] = math.Float32frombits(binary.LittleEndian.Uint32(row[k:]))
			}
		case format.NVFP4:
			data = host[:n*rb]
			comp = []float32{math.Float32frombits(binary.LittleEndian.Uint32(host[n*rb:]))}
		}
		typ := ft
		if t == format.F32 {
			typ = gguf.F32
		}
		if err := w.AddTensor(ti.Name, typ, ti.Dims, data); err != nil {
			return st, err
		}
		if comp != nil {
			if err := w.AddTensorF32(ScaleTensor(ti.Name), []uint64{uint64(len(comp))}, comp); err != nil {
				return st, err
			}
		}
		st.Converted++
		st.OutBytes += int64(len(data) + 4*len(comp))
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".quantize-*.gguf")
	if err != nil {
		return st, fmt.Errorf("quantize: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := w.WriteFile(tmp.Name()); err != nil {
		return st, fmt.Errorf("quantize %s: %w", out, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil { // CreateTemp makes it 0600
		return st, fmt.Errorf("quantize: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return st, fmt.Errorf("quantize: %w", err)
	}
	return st, nil
}

// isCompanion reports whether name is the scale companion of a matrix in
// src.
func isCompanion(src model.Source, name string) bool {
	_, err := src.Tensor(strings.TrimSuffix(name, ".scale"))
	return err == nil || !errors.Is(err, model.ErrTensorNotFound)
}
