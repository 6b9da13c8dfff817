// Package llama implements the Llama family of decoder-only transformers:
// llama (Llama 2/3, TinyLlama, Mistral, SmolLM, llama2.c checkpoints),
// qwen2 (biases on Q, K and V), qwen3 (per-head RMSNorm of Q and K) and
// phi3 (Q, K and V stored as one tensor, gate and up as one; NeoX RoPE;
// its LongRoPE variants are refused).
// Each layer is RMSNorm → attention with RoPE and grouped-query heads →
// residual add → RMSNorm → SwiGLU MLP → residual add.
//
// Where the backend supports it and their formats match, a layer's Q, K
// and V matrices are loaded stacked into one and run as one split matmul
// (backend.Spec.Parts), and its gate and up matrices as one GLU matmul
// (backend.Spec.GLU), so a decode step runs 4 matmuls per layer instead of
// 7 and no separate SwiGLU; engine.Options.Unfused turns this off.
package llama

import (
	"context"
	"errors"
	"fmt"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

func init() {
	for _, arch := range []string{"llama", "qwen2", "qwen3", "phi3"} {
		engine.Register(arch, New)
	}
}

type matrix struct {
	buf    backend.Buffer
	format format.Type
	n, k   int
	bias   backend.Buffer // nil without a bias
}

type layer struct {
	attnNorm, ffnNorm backend.Buffer
	qNorm, kNorm      backend.Buffer // qwen3
	// qkv stacks Q, K and V (with their biases) for one split matmul, and
	// gateUp stacks gate and up for one GLU matmul; when a stack's buf is
	// nil its matrices are loaded apart (formats differ, or the backend
	// does not fuse).
	qkv, gateUp    matrix
	wq, wk, wv, wo matrix
	gate, up, down matrix
}

// matrices returns the layer's loaded weight matrices.
func (ly *layer) matrices() []matrix {
	var out []matrix
	for _, w := range []matrix{ly.qkv, ly.wq, ly.wk, ly.wv, ly.wo, ly.gateUp, ly.gate, ly.up, ly.down} {
		if w.buf != nil {
			out = append(out, w)
		}
	}
	return out
}

// Model is a loaded Llama-family model.
type Model struct {
	cfg    model.Config
	opt    engine.Options
	run    *engine.Runner
	kv     *engine.KV
	embed  matrix
	output matrix
	norm   backend.Buffer
	layers []layer
	// gateApart is set if some layer runs gate and up apart (and needs
	// the up activation buffer).
	gateApart bool
	rope      backend.Rope
	eps       float32
	bytes     int64
	owned     []backend.Buffer
}

var _ engine.Model = (*Model)(nil)

// New loads a Llama-family model from src onto be.
func New(src model.Source, be backend.Backend, opt engine.Options) (engine.Model, error) {
	cfg := src.Config()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ExpertCount > 0 {
		return nil, fmt.Errorf("llama: mixture-of-experts models are not supported (%d experts)", cfg.ExpertCount)
	}
	if cfg.ValueHeadDim != 0 && cfg.ValueHeadDim != cfg.HeadDim {
		return nil, fmt.Errorf("llama: value head size %d differs from key head size %d", cfg.ValueHeadDim, cfg.HeadDim)
	}
	m := &Model{cfg: cfg, opt: opt, run: engine.NewRunner(be), eps: float32(cfg.NormEpsilon)}
	// The cache first: allocated before the weights' transient load
	// copies are freed, it gets fresh pages, which stay out of resident
	// memory until tokens are written to them.
	kv, err := engine.NewKV(be, cfg.Layers, cfg.KVHeads*cfg.HeadDim, opt.BlockTokens, opt.KVTokens, opt.KV)
	if err != nil {
		m.Close()
		return nil, err
	}
	m.kv = kv
	if err := m.load(src, be); err != nil {
		m.Close()
		return nil, err
	}
	style := backend.RopeNormal
	if cfg.RopeStyle == model.RopeNeox {
		style = backend.RopeNeoX
	}
	m.rope = backend.Rope{Dims: cfg.RopeDims, Base: float32(cfg.RopeBase), Style: style}
	if s := cfg.RopeScaling; s.Type == "llama3" {
		m.rope.Factor, m.rope.LowFreqFactor, m.rope.HighFreqFactor = float32(s.Factor), float32(s.LowFreqFactor), float32(s.HighFreqFactor)
		m.rope.OrigContext = s.OriginalContextLength
	} else if s.Type != "" && s.Type != "none" && s.Factor != 1 && s.Factor != 0 {
		m.Close()
		return nil, fmt.Errorf("llama: rope scaling %q is not supported", s.Type)
	}
	fusedQKV, fusedFFN := 0, 0
	for _, ly := range m.layers {
		if ly.qkv.buf != nil {
			fusedQKV++
		}
		if ly.gateUp.buf != nil {
			fusedFFN++
		}
	}
	opt.Logger.Info("model loaded", "arch", cfg.Architecture, "layers", cfg.Layers, "dim", cfg.EmbeddingDim,
		"weights_bytes", m.bytes, "kv_bytes_per_token", kv.BytesPerToken(), "kv_tokens", kv.Blocks*kv.BlockTokens,
		"fused_qkv_layers", fusedQKV, "fused_gate_up_layers", fusedFFN, "backend", be.Name())
	return m, nil
}

func (m *Model) load(src model.Source, be backend.Backend) error {
	cfg := m.cfg
	ld, err := engine.NewLoader(src, be, m.opt.Weights, m.opt.Progress)
	if err != nil {
		return err
	}
	d, hd := cfg.EmbeddingDim, cfg.HeadDim
	mat := func(name string, n, k int) (matrix, error) {
		b, f, err := ld.Matrix(name, n, k)
		if err != nil {
			return matrix{}, err
		}
		m.owned = append(m.owned, b)
		return matrix{buf: b, format: f, n: n, k: k}, nil
	}
	vec := func(name string, n int) (backend.Buffer, error) {
		b, err := ld.Vector(name, n)
		if err != nil {
			return nil, err
		}
		m.owned = append(m.owned, b)
		return b, nil
	}
	if m.embed, err = mat("token_embd.weight", cfg.VocabSize, d); err != nil {
		return err
	}
	if cfg.TiedEmbeddings {
		m.output = m.embed
	} else if m.output, err = mat("output.weight", cfg.VocabSize, d); err != nil {
		return err
	}
	if m.norm, err = vec("output_norm.weight", d); err != nil {
		return err
	}
	// stack loads names as one matrix of ns rows when they share a format
	// that the backend runs spec (N and Weights filled in here) on.
	stack := func(names []string, ns []int, spec backend.Spec) (matrix, error) {
		if m.opt.Unfused {
			return matrix{}, nil
		}
		ft, ok, err := ld.StackFormat(names, ns, d)
		if err != nil || !ok {
			return matrix{}, err
		}
		n := 0
		for _, r := range ns {
			n += r
		}
		spec.N, spec.K, spec.Weights = n, d, ft
		if spec.GLU {
			spec.N = n / 2
		}
		if be.Supports(spec) != nil {
			return matrix{}, nil
		}
		b, ft, err := ld.Stack(names, ns, d)
		if err != nil {
			return matrix{}, err
		}
		m.owned = append(m.owned, b)
		return matrix{buf: b, format: ft, n: n, k: d}, nil
	}
	qw, kvw := cfg.Heads*hd, cfg.KVHeads*hd
	qkvSpec := backend.Spec{Op: backend.OpMatMul, M: 1, Bias: cfg.AttnBias, Parts: [backend.MaxParts]int{qw, kvw, kvw}}
	gluSpec := backend.Spec{Op: backend.OpMatMul, M: 1, GLU: true}
	// fused loads a matrix the file already stacks (phi3's attn_qkv and
	// gate-then-up ffn_up) for spec, which the backend must run.
	fused := func(name string, n int, spec backend.Spec) (matrix, error) {
		w, err := mat(name, n, d)
		if err != nil {
			return w, err
		}
		spec.K, spec.Weights = d, w.format
		if err := be.Supports(spec); err != nil {
			return w, fmt.Errorf("llama: %s is stored fused and this backend cannot split it: %w", name, err)
		}
		return w, nil
	}
	for l := range cfg.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		var ly layer
		qkvNames := []string{p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"}
		qkvRows := []int{qw, kvw, kvw}
		if _, terr := src.Tensor(p + "attn_qkv.weight"); terr == nil {
			spec := qkvSpec
			spec.N = qw + 2*kvw
			ly.qkv, err = fused(p+"attn_qkv.weight", spec.N, spec)
		} else {
			ly.qkv, err = stack(qkvNames, qkvRows, qkvSpec)
		}
		if err != nil {
			return err
		}
		if cfg.Architecture == "phi3" { // ffn_up holds the gate rows, then the up rows
			spec := gluSpec
			spec.N = cfg.FFNDim
			ly.gateUp, err = fused(p+"ffn_up.weight", 2*cfg.FFNDim, spec)
		} else {
			ly.gateUp, err = stack([]string{p + "ffn_gate.weight", p + "ffn_up.weight"}, []int{cfg.FFNDim, cfg.FFNDim}, gluSpec)
		}
		if err != nil {
			return err
		}
		steps := []func() error{
			func() (err error) { ly.attnNorm, err = vec(p+"attn_norm.weight", d); return },
			func() (err error) { ly.ffnNorm, err = vec(p+"ffn_norm.weight", d); return },
			func() (err error) { ly.wo, err = mat(p+"attn_output.weight", d, qw); return },
			func() (err error) { ly.down, err = mat(p+"ffn_down.weight", d, cfg.FFNDim); return },
		}
		if ly.qkv.buf == nil {
			steps = append(steps,
				func() (err error) { ly.wq, err = mat(qkvNames[0], qw, d); return },
				func() (err error) { ly.wk, err = mat(qkvNames[1], kvw, d); return },
				func() (err error) { ly.wv, err = mat(qkvNames[2], kvw, d); return },
			)
		}
		if ly.gateUp.buf == nil {
			steps = append(steps,
				func() (err error) { ly.gate, err = mat(p+"ffn_gate.weight", cfg.FFNDim, d); return },
				func() (err error) { ly.up, err = mat(p+"ffn_up.weight", cfg.FFNDim, d); return },
			)
		}
		biases := []string{p + "attn_q.bias", p + "attn_k.bias", p + "attn_v.bias"}
		switch {
		case cfg.AttnBias && ly.qkv.buf != nil:
			steps = append(steps, func() (err error) {
				ly.qkv.bias, err = ld.Vectors(biases, qkvRows)
				if err == nil {
					m.owned = append(m.owned, ly.qkv.bias)
				}
				return err
			})
		case cfg.AttnBias:
			steps = append(steps,
				func() (err error) { ly.wq.bias, err = vec(biases[0], qw); return },
				func() (err error) { ly.wk.bias, err = vec(biases[1], kvw); return },
				func() (err error) { ly.wv.bias, err = vec(biases[2], kvw); return },
			)
		}
		if cfg.QKNorm {
			steps = append(steps,
				func() (err error) { ly.qNorm, err = vec(p+"attn_q_norm.weight", hd); return },
				func() (err error) { ly.kNorm, err = vec(p+"attn_k_norm.weight", hd); return },
			)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		m.layers = append(m.layers, ly)
		m.gateApart = m.gateApart || ly.gateUp.buf == nil
	}
	m.bytes = ld.Bytes()
	return nil
}

// Config returns the model's configuration.
func (m *Model) Config() model.Config { return m.cfg }

// KV returns the model's cache.
func (m *Model) KV() *engine.KV { return m.kv }

// WeightBytes returns the backend bytes of the weights.
func (m *Model) WeightBytes() int64 { return m.bytes }

// MatrixBytes returns the bytes of the weight matrices a decode step
// streams (every layer matrix and the output projection; not the
// embedding table, of which a step reads one row per token), by format.
func (m *Model) MatrixBytes() map[format.Type]int64 {
	out := map[format.Type]int64{}
	add := func(w matrix) { out[w.format] += int64(w.n) * int64(w.format.RowBytes(w.k)) }
	for _, ly := range m.layers {
		for _, w := range ly.matrices() {
			add(w)
		}
	}
	add(m.output)
	return out
}

// Close frees everything the model holds.
func (m *Model) Close() error {
	var errs []error
	errs = append(errs, m.run.Close())
	if m.kv != nil {
		errs = append(errs, m.kv.Close())
	}
	for _, b := range m.owned {
		errs = append(errs, b.Close())
	}
	m.owned = nil
	return errors.Join(errs...)
}

// Forward runs one step over seqs.
func (m *Model) Forward(ctx context.Context, seqs []*engine.Seq) ([]engine.Logits, error) {
	cfg := m.cfg
	st, err := engine.PlanStep(engine.Geometry{
		Vocab: cfg.VocabSize, Context: m.opt.ContextLength, BlockTokens: m.kv.BlockTokens,
		MaxBatchTokens: m.opt.MaxBatchTokens, MaxSeqs: m.opt.MaxSeqs, Pool: m.kv.Pool, Bucket: m.run.Bucket,
	}, seqs)
	if err != nil {
		return nil, err
	}
	logits, err := m.forward(ctx, st)
	if err != nil {
		st.Abort(m.kv.Pool, m.kv.BlockTokens)
		return nil, err
	}
	st.Commit()
	out := make([]engine.Logits, len(seqs))
	v, r := cfg.VocabSize, 0
	for i, n := range st.LogitSeq {
		out[i] = engine.Logits{Rows: n, Vocab: v, Data: append([]float32(nil), logits[r*v:(r+n)*v]...)}
		r += n
	}
	return out, nil
}

func (m *Model) forward(ctx context.Context, st *engine.Step) ([]float32, error) {
	cfg, r := m.cfg, m.run
	M, maxM := st.Bucket, m.run.Bucket(m.opt.MaxBatchTokens)
	d, hd := cfg.EmbeddingDim, cfg.HeadDim
	qw, kvw := cfg.Heads*hd, cfg.KVHeads*hd
	var err error
	buf := func(name string, dt backend.DType, cols int) backend.Buffer {
		if err != nil {
			return nil
		}
		var b backend.Buffer
		shape := backend.Shape{M, cols}
		if cols == 0 {
			shape = backend.Shape{M}
		}
		b, err = r.Buf(name, dt, shape, maxM)
		return b
	}
	ids, pos, slots := buf("ids", backend.I32, 0), buf("pos", backend.I32, 0), buf("slots", backend.I32, 0)
	x, h := buf("x", backend.F32, d), buf("h", backend.F32, d)
	q, k, v, o := buf("q", backend.F32, qw), buf("k", backend.F32, kvw), buf("v", backend.F32, kvw), buf("o", backend.F32, qw)
	g := buf("gate", backend.F32, cfg.FFNDim)
	var u backend.Buffer
	if m.gateApart {
		u = buf("up", backend.F32, cfg.FFNDim)
	}
	if err != nil {
		return nil, err
	}
	table, err := r.Buf("table", backend.I32, backend.Shape{st.Seqs, st.MaxBlocks}, st.Seqs)
	if err != nil {
		return nil, err
	}
	seqb, err := r.Buf("seq", backend.I32, backend.Shape{st.Seqs, 3}, st.Seqs)
	if err != nil {
		return nil, err
	}
	for _, w := range []struct {
		b backend.Buffer
		v []int32
	}{{ids, st.IDs}, {pos, st.Pos}, {slots, st.Slots}, {table, st.Table}, {seqb, st.Seq}} {
		if err := r.WriteI32(w.b, w.v); err != nil {
			return nil, err
		}
	}

	matmul := func(dst, src backend.Buffer, w matrix) error {
		s := backend.Spec{Op: backend.OpMatMul, M: M, N: w.n, K: w.k, Weights: w.format, Bias: w.bias != nil}
		in := []backend.Buffer{src, w.buf}
		if w.bias != nil {
			in = append(in, w.bias)
		}
		return r.Run(ctx, s, in, []backend.Buffer{dst})
	}
	norm := func(dst, src, g backend.Buffer, n, heads int) error {
		return r.Run(ctx, backend.Spec{Op: backend.OpRMSNorm, M: M, N: n, Eps: m.eps, Heads: heads},
			[]backend.Buffer{src, g}, []backend.Buffer{dst})
	}
	add := func(dst, a, b backend.Buffer, n int) error {
		return r.Run(ctx, backend.Spec{Op: backend.OpAdd, M: M, N: n}, []backend.Buffer{a, b}, []backend.Buffer{dst})
	}
	rope := func(t backend.Buffer, heads int) error {
		return r.Run(ctx, backend.Spec{Op: backend.OpRoPE, M: M, Heads: heads, HeadDim: hd, Rope: m.rope},
			[]backend.Buffer{t, pos}, []backend.Buffer{t})
	}
	kvGeo := backend.Spec{KVHeads: cfg.KVHeads, HeadDim: hd, BlockTokens: m.kv.BlockTokens, Blocks: m.kv.Blocks, KV: m.kv.DType}

	if err := r.Run(ctx, backend.Spec{Op: backend.OpEmbed, M: M, N: cfg.VocabSize, K: d, Weights: m.embed.format},
		[]backend.Buffer{ids, m.embed.buf}, []backend.Buffer{x}); err != nil {
		return nil, err
	}
	write := kvGeo
	write.Op, write.M = backend.OpKVWrite, M
	attn := kvGeo
	attn.Op, attn.M, attn.Heads, attn.Seqs, attn.MaxBlocks = backend.OpAttention, M, cfg.Heads, st.Seqs, st.MaxBlocks
	layer := func(l int, ly *layer) error {
		kc, vc := m.kv.K[l], m.kv.V[l]
		if err := norm(h, x, ly.attnNorm, d, 0); err != nil {
			return err
		}
		if w := ly.qkv; w.buf != nil {
			s := backend.Spec{Op: backend.OpMatMul, M: M, N: w.n, K: w.k, Weights: w.format, Bias: w.bias != nil,
				Parts: [backend.MaxParts]int{qw, kvw, kvw}}
			in := []backend.Buffer{h, w.buf}
			if w.bias != nil {
				in = append(in, w.bias)
			}
			if err := r.Run(ctx, s, in, []backend.Buffer{q, k, v}); err != nil {
				return err
			}
		} else {
			for _, mm := range []struct {
				dst backend.Buffer
				w   matrix
			}{{q, ly.wq}, {k, ly.wk}, {v, ly.wv}} {
				if err := matmul(mm.dst, h, mm.w); err != nil {
					return err
				}
			}
		}
		if cfg.QKNorm {
			if err := norm(q, q, ly.qNorm, qw, cfg.Heads); err != nil {
				return err
			}
			if err := norm(k, k, ly.kNorm, kvw, cfg.KVHeads); err != nil {
				return err
			}
		}
		if err := rope(q, cfg.Heads); err != nil {
			return err
		}
		if err := rope(k, cfg.KVHeads); err != nil {
			return err
		}
		if err := r.Run(ctx, write, []backend.Buffer{k, v, slots, kc, vc}, []backend.Buffer{kc, vc}); err != nil {
			return err
		}
		if err := r.Run(ctx, attn, []backend.Buffer{q, kc, vc, table, seqb}, []backend.Buffer{o}); err != nil {
			return err
		}
		if err := matmul(h, o, ly.wo); err != nil {
			return err
		}
		if err := add(x, x, h, d); err != nil {
			return err
		}
		if err := norm(h, x, ly.ffnNorm, d, 0); err != nil {
			return err
		}
		if w := ly.gateUp; w.buf != nil {
			s := backend.Spec{Op: backend.OpMatMul, M: M, N: cfg.FFNDim, K: w.k, Weights: w.format, GLU: true}
			if err := r.Run(ctx, s, []backend.Buffer{h, w.buf}, []backend.Buffer{g}); err != nil {
				return err
			}
		} else {
			if err := matmul(g, h, ly.gate); err != nil {
				return err
			}
			if err := matmul(u, h, ly.up); err != nil {
				return err
			}
			if err := r.Run(ctx, backend.Spec{Op: backend.OpSwiGLU, M: M, N: cfg.FFNDim}, []backend.Buffer{g, u}, []backend.Buffer{g}); err != nil {
				return err
			}
		}
		if err := matmul(h, g, ly.down); err != nil {
			return err
		}
		return add(x, x, h, d)
	}
	for l := range m.layers {
		if err := layer(l, &m.layers[l]); err != nil {
			return nil, fmt.Errorf("layer %d: %w", l, err)
		}
	}
	if err := norm(h, x, m.norm, d, 0); err != nil {
		return nil, err
	}
	R, maxR := st.LogitBucket, st.LogitBucket
	idx, err := r.Buf("logit_idx", backend.I32, backend.Shape{R}, maxR)
	if err != nil {
		return nil, err
	}
	if err := r.WriteI32(idx, st.LogitRows); err != nil {
		return nil, err
	}
	hr, err := r.Buf("logit_h", backend.F32, backend.Shape{R, d}, maxR)
	if err != nil {
		return nil, err
	}
	if err := r.Run(ctx, backend.Spec{Op: backend.OpGather, M: M, N: d, K: R}, []backend.Buffer{h, idx}, []backend.Buffer{hr}); err != nil {
		return nil, err
	}
	lg, err := r.Buf("logits", backend.F32, backend.Shape{R, cfg.VocabSize}, R)
	if err != nil {
		return nil, err
	}
	s := backend.Spec{Op: backend.OpMatMul, M: R, N: cfg.VocabSize, K: d, Weights: m.output.format}
	if err := r.Run(ctx, s, []backend.Buffer{hr, m.output.buf}, []backend.Buffer{lg}); err != nil {
		return nil, err
	}
	return r.ReadF32(lg)
}

// Runner returns the runner the model's programs run on (for profiling).
func (m *Model) Runner() *engine.Runner { return m.run }
