// Package engine runs models: it loads weights from a model.Source into a
// backend, and runs the forward pass over a batch of sequences whose keys
// and values live in a paged KV cache.
//
// Each architecture lives in its own package under engine/arch and
// registers a constructor with Register; engine/arch/all imports them all.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// Model is a loaded model bound to a backend.
type Model interface {
	// Config returns the model's configuration.
	Config() model.Config
	// KV returns the model's paged KV cache.
	KV() *KV
	// Forward runs one step: each sequence's new tokens are appended after
	// the tokens its table already holds (reserving cache blocks as
	// needed) and the logits the sequences ask for are returned, one slice
	// of rows per sequence. A step is all or nothing: on error no table
	// changes length. Forward is not safe for concurrent use; the runtime
	// serialises steps.
	Forward(ctx context.Context, seqs []*Seq) ([]Logits, error)
	// Close releases the weights, cache and programs.
	Close() error
}

// Seq is one sequence in a step.
type Seq struct {
	// Tokens are the new tokens (a prefill chunk or one decode token).
	Tokens []int32
	// Table is the sequence's block table; Forward reserves blocks in it and
	// advances Len by len(Tokens).
	Table *kvcache.Table
	// AllLogits asks for the logits of every new token; otherwise only the
	// last token's are returned.
	AllLogits bool
}

// Logits are rows of vocabulary scores, row-major.
type Logits struct {
	Rows  int
	Vocab int
	Data  []float32
}

// Row returns row i.
func (l Logits) Row(i int) []float32 { return l.Data[i*l.Vocab : (i+1)*l.Vocab] }

// DefaultBlockTokens is the KV block size when Options.BlockTokens is 0.
const DefaultBlockTokens = 16

// Options configure loading.
type Options struct {
	// Weights selects how matrices are stored: "auto" (the file's format
	// where a kernel exists for it, else q8_0) or a format name from
	// package format (f32, bf16, fp8, mxfp4, nvfp4, q8_0, q4_0, ...).
	Weights string
	// KV is the cache element type: backend.F32 (default), backend.BF16
	// or backend.F8E4M3 (FP8 with no scale: a quarter of f32's bytes,
	// values beyond ±448 saturate).
	KV backend.DType
	// BlockTokens is the number of tokens per KV block (default
	// DefaultBlockTokens).
	BlockTokens int
	// ContextLength caps the tokens of one sequence (default: the model's,
	// at most 4096). It sizes block tables.
	ContextLength int
	// KVTokens is the cache's capacity in tokens across all sequences
	// (default: ContextLength).
	KVTokens int
	// MaxBatchTokens caps the tokens in one step (default 512).
	MaxBatchTokens int
	// MaxSeqs caps the sequences in one step (default 64).
	MaxSeqs int
	// Unfused loads every weight matrix on its own. By default matrices
	// that read the same input and share a format are stacked into one
	// (Q, K and V; gate and up) where the backend supports the fused
	// matmul, so a step runs fewer, larger programs.
	Unfused bool
	// Logger receives load-time information (default slog.Default()).
	Logger *slog.Logger
	// Progress, if set, is called while weights load with the bytes done
	// and the total.
	Progress func(done, total int64)
}

func (o *Options) setDefaults(cfg model.Config) {
	if o.Weights == "" {
		o.Weights = "auto"
	}
	if o.BlockTokens == 0 {
		o.BlockTokens = DefaultBlockTokens
	}
	if o.ContextLength == 0 {
		o.ContextLength = min(cfg.ContextLength, 4096)
		if o.ContextLength <= 0 {
			o.ContextLength = 4096
		}
		if w := cfg.SlidingWindow; w > 0 {
			o.ContextLength = min(o.ContextLength, w)
		}
	}
	if o.KVTokens == 0 {
		o.KVTokens = o.ContextLength
	}
	if o.MaxBatchTokens == 0 {
		o.MaxBatchTokens = 512
	}
	if o.MaxSeqs == 0 {
		o.MaxSeqs = 64
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

func (o *Options) validate(cfg model.Config) error {
	switch {
	case o.KV != backend.F32 && o.KV != backend.BF16 && o.KV != backend.F8E4M3:
		return fmt.Errorf("kv cache type %s: want f32, bf16 or f8e4m3", o.KV)
	case o.BlockTokens <= 0 || o.BlockTokens > 1024:
		return fmt.Errorf("block tokens %d: want 1..1024", o.BlockTokens)
	case o.ContextLength <= 0:
		return fmt.Errorf("context length %d must be positive", o.ContextLength)
	case cfg.ContextLength > 0 && o.ContextLength > cfg.ContextLength:
		return fmt.Errorf("context length %d exceeds the model's %d", o.ContextLength, cfg.ContextLength)
	case cfg.SlidingWindow > 0 && o.ContextLength > cfg.SlidingWindow:
		// Within the window, sliding-window attention is full attention.
		return fmt.Errorf("context length %d exceeds the model's attention window of %d tokens (sliding-window attention is not implemented)",
			o.ContextLength, cfg.SlidingWindow)
	case o.KVTokens < o.BlockTokens:
		return fmt.Errorf("kv cache of %d tokens is smaller than one block of %d", o.KVTokens, o.BlockTokens)
	case o.MaxBatchTokens <= 0 || o.MaxSeqs <= 0:
		return errors.New("max batch tokens and max sequences must be positive")
	}
	return nil
}

// Constructor builds an architecture's Model.
type Constructor func(src model.Source, be backend.Backend, opt Options) (Model, error)

var (
	regMu sync.Mutex
	archs = map[string]Constructor{}
)

// Register makes an architecture available. It panics on a duplicate.
func Register(arch string, c Constructor) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := archs[arch]; dup {
		panic("engine: architecture registered twice: " + arch)
	}
	archs[arch] = c
}

// Architectures returns the registered architecture names, sorted.
func Architectures() []string {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]string, 0, len(archs))
	for a := range archs {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// ErrUnknownArch is returned for a model whose architecture has no
// registered implementation.
var ErrUnknownArch = errors.New("engine: unknown architecture")

// New builds a Model from src on be. src stays owned by the caller and
// must stay open while the Model is used (weights may be used in place).
func New(src model.Source, be backend.Backend, opt Options) (Model, error) {
	cfg := src.Config()
	regMu.Lock()
	c := archs[cfg.Architecture]
	regMu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("%w %q (have %s)", ErrUnknownArch, cfg.Architecture, strings.Join(Architectures(), ", "))
	}
	opt.setDefaults(cfg)
	if err := opt.validate(cfg); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	m, err := c(src, be, opt)
	if err != nil {
		return nil, err
	}
	// The weights now live in the backend in their packed layout: the
	// file's pages need not stay resident.
	if r, ok := src.(interface{ ReleasePages() error }); ok {
		if err := r.ReleasePages(); err != nil {
			opt.Logger.Warn("could not release the model file's pages", "err", err)
		}
	}
	return m, nil
}
