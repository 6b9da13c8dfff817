// Package llama2c reads Andrej Karpathy's llama2.c model checkpoints (the
// legacy "version 0" .bin export that run.c loads) and tokenizer.bin files.
//
// A checkpoint is a header of seven little-endian int32 (dim, hidden_dim,
// n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
// means the classifier is stored separately, a positive one that it shares
// the token embedding) followed by float32 weights in run.c's fixed order.
// The weights are exposed under GGUF/llama.cpp tensor names with the
// dimensions GGUF would give them (row length first), as F32.
package llama2c

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"

	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/internal/mmap"
)

// HeaderSize is the size of the checkpoint header in bytes.
const HeaderSize = 7 * 4

// maxDim bounds every header field, far above any real llama2.c model, so
// that size arithmetic cannot overflow.
const maxDim = 1 << 24

// ErrTensorNotFound is wrapped when a tensor name is absent.
var ErrTensorNotFound = errors.New("tensor not found")

// Header is a checkpoint's configuration.
type Header struct {
	Dim       int // embedding dimension
	HiddenDim int // feed-forward hidden dimension
	Layers    int
	Heads     int
	KVHeads   int
	VocabSize int // always positive here; see SharedClassifier
	SeqLen    int // maximum sequence length
	// SharedClassifier is true when the output projection is the token
	// embedding (the file's vocab_size was positive).
	SharedClassifier bool
}

// HeadSize returns Dim / Heads.
func (h Header) HeadSize() int { return h.Dim / h.Heads }

// KVDim returns KVHeads * HeadSize.
func (h Header) KVDim() int { return h.KVHeads * h.HeadSize() }

// ParseHeader decodes and validates the 28-byte header at the start of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("llama2c: header: file of %d bytes is shorter than the %d-byte header", len(b), HeaderSize)
	}
	var v [7]int32
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	if binary.LittleEndian.Uint32(b) == 0x616b3432 { // "ak42"
		return Header{}, errors.New("llama2c: header: version 1+ export format (magic ak42) is not supported; export with --version 0")
	}
	h := Header{
		Dim: int(v[0]), HiddenDim: int(v[1]), Layers: int(v[2]), Heads: int(v[3]),
		KVHeads: int(v[4]), VocabSize: int(v[5]), SeqLen: int(v[6]),
		SharedClassifier: v[5] > 0,
	}
	if v[5] < 0 {
		h.VocabSize = -int(v[5])
	}
	if err := h.Validate(); err != nil {
		return Header{}, err
	}
	return h, nil
}

// Validate checks that the fields are positive, bounded and consistent.
func (h Header) Validate() error {
	fields := []struct {
		name string
		v    int
	}{
		{"dim", h.Dim}, {"hidden_dim", h.HiddenDim}, {"n_layers", h.Layers}, {"n_heads", h.Heads},
		{"n_kv_heads", h.KVHeads}, {"vocab_size", h.VocabSize}, {"seq_len", h.SeqLen},
	}
	for i, f := range fields {
		if f.v <= 0 || f.v > maxDim {
			return fmt.Errorf("llama2c: header field %s (offset %d) is %d, want 1..%d", f.name, 4*i, f.v, maxDim)
		}
	}
	if h.Dim%h.Heads != 0 {
		return fmt.Errorf("llama2c: header: n_heads %d does not divide dim %d", h.Heads, h.Dim)
	}
	if h.KVHeads > h.Heads || h.Heads%h.KVHeads != 0 {
		return fmt.Errorf("llama2c: header: n_kv_heads %d does not divide n_heads %d", h.KVHeads, h.Heads)
	}
	if h.HeadSize()%2 != 0 {
		return fmt.Errorf("llama2c: header: head size %d (dim/n_heads) is odd", h.HeadSize())
	}
	return nil
}

// Tensor is one weight tensor of a checkpoint: float32, little-endian.
type Tensor struct {
	Name string
	// Dims are in GGUF order: Dims[0] is the row length (the input
	// dimension of a projection).
	Dims []uint64
	// Offset is the file offset of the first byte.
	Offset int64
	// Data is the tensor's bytes in the file (not copied; never write it).
	Data []byte
}

// Type returns gguf.F32: checkpoints hold float32 weights only.
func (Tensor) Type() gguf.GGMLType { return gguf.F32 }

// Elements returns the number of float32 values.
func (t Tensor) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is a parsed checkpoint.
type File struct {
	header  Header
	size    int64
	tensors []Tensor
	names   map[string]int
	m       *mmap.Map
}

// Layout returns the tensors of a checkpoint with header h, in file order,
// with Offset set and Data nil, and the file size they imply.
func Layout(h Header) ([]Tensor, int64, error) {
	if err := h.Validate(); err != nil {
		return nil, 0, err
	}
	dim, hidden, kvDim := uint64(h.Dim), uint64(h.HiddenDim), uint64(h.KVDim())
	vocab := uint64(h.VocabSize)
	var ts []Tensor
	off := uint64(HeaderSize)
	overflow := false
	// add appends one tensor; per-layer tensors are added per layer later.
	add := func(name string, dims ...uint64) {
		n := uint64(4)
		for _, d := range dims {
			hi, lo := bits.Mul64(n, d)
			overflow = overflow || hi != 0
			n = lo
		}
		ts = append(ts, Tensor{Name: name, Dims: dims, Offset: int64(off)})
		sum, carry := bits.Add64(off, n, 0)
		overflow = overflow || carry != 0 || sum > math.MaxInt64
		off = sum
	}
	perLayer := func(suffix string, dims ...uint64) {
		for l := range h.Layers {
			add(fmt.Sprintf("blk.%d.%s", l, suffix), dims...)
		}
	}
	add("token_embd.weight", dim, vocab)
	perLayer("attn_norm.weight", dim)
	perLayer("attn_q.weight", dim, dim)
	perLayer("attn_k.weight", dim, kvDim)
	perLayer("attn_v.weight", dim, kvDim)
	perLayer("attn_output.weight", dim, dim)
	perLayer("ffn_norm.weight", dim)
	perLayer("ffn_gate.weight", dim, hidden)
	perLayer("ffn_down.weight", hidden, dim)
	perLayer("ffn_up.weight", dim, hidden)
	add("output_norm.weight", dim)
	// freq_cis_real and freq_cis_imag: seq_len*head_size/2 floats each,
	// unused by run.c and skipped here.
	skip := uint64(h.SeqLen) * uint64(h.HeadSize()) / 2 * 2 * 4
	off += skip
	if !h.SharedClassifier {
		add("output.weight", dim, vocab)
	}
	if overflow || off > math.MaxInt64 {
		return nil, 0, fmt.Errorf("llama2c: header implies a file too large to address")
	}
	return ts, int64(off), nil
}

// Open memory-maps and parses the checkpoint at path.
func Open(path string) (*File, error) {
	m, err := mmap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("llama2c: %w", err)
	}
	f, err := Parse(m.Bytes())
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.m = m
	return f, nil
}

// Parse parses a checkpoint held in b; tensor Data are sub-slices of b.
func Parse(b []byte) (*File, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	ts, size, err := Layout(h)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != size {
		cls := "shared classifier"
		if !h.SharedClassifier {
			cls = "separate classifier"
		}
		return nil, fmt.Errorf("llama2c: file has %d bytes but the header (dim %d, hidden_dim %d, %d layers, %d heads, %d kv heads, vocab %d, seq_len %d, %s) implies %d",
			len(b), h.Dim, h.HiddenDim, h.Layers, h.Heads, h.KVHeads, h.VocabSize, h.SeqLen, cls, size)
	}
	f := &File{header: h, size: size, tensors: ts, names: make(map[string]int, len(ts))}
	for i := range ts {
		t := &ts[i]
		end := t.Offset + int64(4*t.Elements())
		t.Data = b[t.Offset:end:end]
		f.names[t.Name] = i
	}
	return f, nil
}

// Header returns the checkpoint's header.
func (f *File) Header() Header { return f.header }

// Size returns the file size in bytes.
func (f *File) Size() int64 { return f.size }

// Tensors returns the tensors in file order. The slice is shared: do not
// modify it.
func (f *File) Tensors() []Tensor { return f.tensors }

// Tensor returns the named tensor.
func (f *File) Tensor(name string) (Tensor, bool) {
	i, ok := f.names[name]
	if !ok {
		return Tensor{}, false
	}
	return f.tensors[i], true
}

// Close releases the mapping; tensor Data become invalid.
func (f *File) Close() error {
	if f.m == nil {
		return nil
	}
	err := f.m.Close()
	f.m = nil
	return err
}

// Tokenizer is a llama2.c tokenizer.bin: per token its bytes and its merge
// score.
type Tokenizer struct {
	MaxTokenLength int
	Tokens         []string
	Scores         []float32
}

// OpenTokenizer reads the tokenizer file at path; see ParseTokenizer.
func OpenTokenizer(path string, vocabSize int) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("llama2c: %w", err)
	}
	t, err := ParseTokenizer(b, vocabSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseTokenizer decodes a tokenizer.bin: int32 max_token_length, then per
// token a float32 score, an int32 length and that many bytes. The file does
// not store the vocabulary size: with vocabSize > 0 exactly that many tokens
// are read (run.c's behaviour; trailing bytes are an error), with vocabSize
// <= 0 tokens are read to the end of b.
func ParseTokenizer(b []byte, vocabSize int) (*Tokenizer, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("llama2c: tokenizer: %d bytes is too short for max_token_length", len(b))
	}
	maxLen := int32(binary.LittleEndian.Uint32(b))
	if maxLen <= 0 {
		return nil, fmt.Errorf("llama2c: tokenizer: max_token_length %d at offset 0 is not positive", maxLen)
	}
	t := &Tokenizer{MaxTokenLength: int(maxLen)}
	// Each token takes at least 8 bytes.
	if vocabSize > 0 {
		if vocabSize > (len(b)-4)/8 {
			return nil, fmt.Errorf("llama2c: tokenizer: %d tokens need at least %d bytes, file has %d", vocabSize, 4+8*vocabSize, len(b))
		}
		t.Tokens = make([]string, 0, vocabSize)
		t.Scores = make([]float32, 0, vocabSize)
	}
	off := 4
	for i := 0; vocabSize <= 0 && off < len(b) || i < vocabSize; i++ {
		if len(b)-off < 8 {
			return nil, fmt.Errorf("llama2c: tokenizer: token %d at offset %d: truncated (%d bytes left)", i, off, len(b)-off)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(b[off:]))
		n := int32(binary.LittleEndian.Uint32(b[off+4:]))
		if n < 0 || int(n) > len(b)-off-8 {
			return nil, fmt.Errorf("llama2c: tokenizer: token %d at offset %d: length %d exceeds the %d bytes left", i, off+4, n, len(b)-off-8)
		}
		off += 8
		t.Tokens = append(t.Tokens, string(b[off:off+int(n)]))
		t.Scores = append(t.Scores, score)
		off += int(n)
	}
	if off != len(b) {
		return nil, fmt.Errorf("llama2c: tokenizer: %d trailing bytes after %d tokens", len(b)-off, len(t.Tokens))
	}
	return t, nil
}

// ReleasePages drops the file's mapped pages from the process's resident
// memory once the caller has copied what it needs (see mmap.Map.DontNeed);
// later reads fault them back in.
func (f *File) ReleasePages() error { return f.m.DontNeed() }
