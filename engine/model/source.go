package model

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/llama2c"
)

// ErrTensorNotFound is wrapped by Source.Tensor for an absent name.
var ErrTensorNotFound = errors.New("tensor not found")

// Tensor is one weight tensor as stored in the file.
type Tensor struct {
	Name string
	Type gguf.GGMLType
	// Dims are in GGUF order: Dims[0] is the row length.
	Dims []uint64
	// Data is the stored bytes (memory-mapped: never write them; valid
	// until the Source is closed).
	Data []byte
}

// Elements returns the number of elements.
func (t Tensor) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Float32s decodes the tensor to float32 (the reference path); the error
// names the tensor and its type when the type cannot be decoded.
func (t Tensor) Float32s() ([]float32, error) {
	n := t.Elements()
	if n > uint64(len(t.Data))*8 {
		return nil, fmt.Errorf("model: tensor %q: %d elements in %d bytes", t.Name, n, len(t.Data))
	}
	dst := make([]float32, n)
	if err := gguf.Dequantize(t.Type, dst, t.Data); err != nil {
		return nil, fmt.Errorf("model: tensor %q: %w", t.Name, err)
	}
	return dst, nil
}

// Source is a model's configuration and weights, whatever the file format.
// Tensors are named as in GGUF/llama.cpp (token_embd.weight,
// blk.N.attn_q.weight, output_norm.weight, output.weight, ...).
type Source interface {
	// Config returns the validated model configuration.
	Config() Config
	// Tensor returns the named tensor, or an error wrapping
	// ErrTensorNotFound that names the tensor and the file.
	Tensor(name string) (Tensor, error)
	// Tensors returns every tensor in file order.
	Tensors() []Tensor
	// Close releases the file; tensor data become invalid.
	Close() error
}

// Open opens a model file, detecting its format: GGUF by its magic, else a
// llama2.c checkpoint.
func Open(path string) (Source, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	var magic [4]byte
	_, err = io.ReadFull(fh, magic[:])
	fh.Close()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("model: read %s: %w", path, err)
	}
	if bytes.Equal(magic[:], []byte(gguf.Magic)) {
		f, err := gguf.Open(path)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		s, err := FromGGUF(f, path)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return s, nil
	}
	f, err := llama2c.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %s is not a GGUF file and not a llama2.c checkpoint: %w", path, err)
	}
	return FromLlama2C(f, path), nil
}

// GGUFSource is a Source over a GGUF file.
type GGUFSource struct {
	name    string
	file    *gguf.File
	config  Config
	tensors []Tensor
	index   map[string]int
}

// FromGGUF returns a Source over a parsed GGUF file; name (usually the
// path) appears in errors. Closing the Source closes f.
func FromGGUF(f *gguf.File, name string) (*GGUFSource, error) {
	c, err := ConfigFromGGUF(f)
	if err != nil {
		return nil, err
	}
	s := &GGUFSource{name: name, file: f, config: c, index: make(map[string]int, len(f.Tensors()))}
	for i, info := range f.Tensors() {
		data, err := f.TensorData(info.Name)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		s.tensors = append(s.tensors, Tensor{Name: info.Name, Type: info.Type, Dims: info.Dims, Data: data})
		s.index[info.Name] = i
	}
	return s, nil
}

// File returns the underlying GGUF file (for its tokenizer metadata).
func (s *GGUFSource) File() *gguf.File { return s.file }

// Config implements Source.
func (s *GGUFSource) Config() Config { return s.config }

// Tensors implements Source.
func (s *GGUFSource) Tensors() []Tensor { return s.tensors }

// Tensor implements Source.
func (s *GGUFSource) Tensor(name string) (Tensor, error) {
	i, ok := s.index[name]
	if !ok {
		return Tensor{}, fmt.Errorf("model: %q in %s: %w", name, s.name, ErrTensorNotFound)
	}
	return s.tensors[i], nil
}

// Close implements Source.
func (s *GGUFSource) Close() error { return s.file.Close() }

// Llama2CSource is a Source over a llama2.c checkpoint.
type Llama2CSource struct {
	name    string
	file    *llama2c.File
	config  Config
	tensors []Tensor
	index   map[string]int
}

// Llama2C defaults that the checkpoint format does not store (run.c's
// constants).
const (
	Llama2CNormEpsilon = 1e-5
	Llama2CRopeBase    = 10000
)

// ConfigFromLlama2C returns the configuration of a llama2.c checkpoint:
// architecture llama, normal RoPE with base 10000 over the whole head, RMS
// norm epsilon 1e-5, tied embeddings when the classifier is shared.
func ConfigFromLlama2C(h llama2c.Header) Config {
	return Config{
		Architecture:   "llama",
		VocabSize:      h.VocabSize,
		EmbeddingDim:   h.Dim,
		FFNDim:         h.HiddenDim,
		Layers:         h.Layers,
		Heads:          h.Heads,
		KVHeads:        h.KVHeads,
		HeadDim:        h.HeadSize(),
		ValueHeadDim:   h.HeadSize(),
		ContextLength:  h.SeqLen,
		NormEpsilon:    Llama2CNormEpsilon,
		RopeBase:       Llama2CRopeBase,
		RopeDims:       h.HeadSize(),
		RopeStyle:      RopeNormal,
		RopeScaling:    RopeScaling{Type: "none", Factor: 1},
		TiedEmbeddings: h.SharedClassifier,
	}
}

// FromLlama2C returns a Source over a parsed checkpoint; name (usually the
// path) appears in errors. Closing the Source closes f.
func FromLlama2C(f *llama2c.File, name string) *Llama2CSource {
	s := &Llama2CSource{name: name, file: f, config: ConfigFromLlama2C(f.Header()), index: map[string]int{}}
	for i, t := range f.Tensors() {
		s.tensors = append(s.tensors, Tensor{Name: t.Name, Type: gguf.F32, Dims: t.Dims, Data: t.Data})
		s.index[t.Name] = i
	}
	return s
}

// File returns the underlying checkpoint.
func (s *Llama2CSource) File() *llama2c.File { return s.file }

// Config implements Source.
func (s *Llama2CSource) Config() Config { return s.config }

// Tensors implements Source.
func (s *Llama2CSource) Tensors() []Tensor { return s.tensors }

// Tensor implements Source.
func (s *Llama2CSource) Tensor(name string) (Tensor, error) {
	i, ok := s.index[name]
	if !ok {
		return Tensor{}, fmt.Errorf("model: %q in %s: %w", name, s.name, ErrTensorNotFound)
	}
	return s.tensors[i], nil
}

// Close implements Source.
func (s *Llama2CSource) Close() error { return s.file.Close() }

// ReleasePages drops the GGUF file's mapped pages from resident memory.
func (s *GGUFSource) ReleasePages() error { return s.file.ReleasePages() }

// ReleasePages drops the checkpoint's mapped pages from resident memory.
func (s *Llama2CSource) ReleasePages() error { return s.file.ReleasePages() }
