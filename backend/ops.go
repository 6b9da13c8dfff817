package backend

import (
	"fmt"
	"slices"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// Op is an operation a Program runs. Each Op's doc comment is its
// contract: the Spec fields it reads, its input and output buffers
// (dtype[shape]) and what it computes. Signature returns the same in code.
type Op uint8

// The operations.
const (
	// OpMatMul computes y = x·Wᵀ, plus a bias row b when Bias is set.
	//	spec: M, N, K, Weights, Bias, Parts, GLU
	//	in:   x f32[M,K], W Weights(Weights)[N,K] (, b f32[N])
	//	out:  y f32[M,N]
	// With Parts (two or more positive sizes summing to N, then zeros), y
	// is split by columns into one output per part instead: y_i
	// f32[M,Parts[i]] holds columns [Parts[0]+…+Parts[i−1], that + Parts[i])
	// of x·Wᵀ (+ b). It runs the stacked rows of several matrices, such as
	// Q, K and V, as one matmul; unsplit it is the sequence of matmuls
	// y_i = x·W_iᵀ (+ b_i).
	// With GLU, W holds 2N rows, the gate rows then the up rows, and
	//	in:   x f32[M,K], W Weights(Weights)[2N,K]
	//	out:  y f32[M,N] = silu(x·W[:N]ᵀ) · (x·W[N:]ᵀ)
	// which is OpMatMul of the gate and of the up matrix followed by
	// OpSwiGLU. GLU takes neither Bias nor Parts.
	OpMatMul Op = iota + 1
	// OpRMSNorm computes y[i] = x[i] / sqrt(mean(x[i]²) + Eps) · g for each
	// row i. With Heads > 0 each row is Heads segments of N/Heads values,
	// each normalised on its own with the same g (per-head QK-norm). y may
	// be the same buffer as x.
	//	spec: M, N (row length), Eps, Heads
	//	in:   x f32[M,N], g f32[N] (f32[N/Heads] with Heads)
	//	out:  y f32[M,N]
	OpRMSNorm
	// OpAdd computes y = a + b elementwise. y may be a or b.
	//	spec: M, N
	//	in:   a f32[M,N], b f32[M,N]
	//	out:  y f32[M,N]
	OpAdd
	// OpSwiGLU computes y = silu(gate) · up, silu(v) = v / (1 + e^−v).
	// y may be gate or up.
	//	spec: M, N
	//	in:   gate f32[M,N], up f32[M,N]
	//	out:  y f32[M,N]
	OpSwiGLU
	// OpEmbed gathers rows of an embedding table: y[i] = table[ids[i]].
	// An id outside [0, K) is an error and leaves y unspecified.
	//	spec: M, N (vocabulary rows), K (embedding width), Weights
	//	in:   ids i32[M], table Weights(Weights)[N,K]
	//	out:  y f32[M,K]
	OpEmbed
	// OpRoPE rotates each head of x in place by its token's position (rotary
	// position embedding), on the first Rope.Dims dimensions of each head:
	// pairs (2i, 2i+1) for RopeNormal, (i, i+Dims/2) for RopeNeoX, by angle
	// pos·θ_i with θ_i = Base^(−2i/Dims), adjusted by Rope.Scaling.
	//	spec: M, Heads, HeadDim, Rope
	//	in:   x f32[M,Heads·HeadDim], pos i32[M]
	//	out:  x (the same buffer)
	OpRoPE
	// OpKVWrite stores each row's key and value at its cache slot
	// (block·BlockTokens + offset); a slot of −1 skips the row (bucket
	// padding). The caches are updated in place: pass them as inputs and
	// as outputs.
	//	spec: M, KVHeads, HeadDim, BlockTokens, Blocks, KV
	//	in:   k f32[M,KVHeads·HeadDim], v f32[M,KVHeads·HeadDim], slot i32[M],
	//	      kcache KV[Blocks,BlockTokens,KVHeads·HeadDim], vcache (same)
	//	out:  kcache, vcache (the same buffers)
	OpKVWrite
	// OpAttention is causal attention of the step's queries over the paged
	// cache (grouped-query: head h reads KV head h/(Heads/KVHeads)), with
	// scores scaled by 1/sqrt(HeadDim) and a softmax per query.
	// Sequence s owns rows [seq[s,0], seq[s,0]+seq[s,1]) of q; after the
	// step it holds seq[s,2] tokens, so its row j is at position
	// seq[s,2]−seq[s,1]+j and attends to positions 0..that one, found
	// through its block table row. Rows no sequence owns get zeros; unused
	// sequence slots have seq[s,1] = 0.
	//	spec: M, Heads, KVHeads, HeadDim, BlockTokens, Blocks, Seqs, MaxBlocks, KV
	//	in:   q f32[M,Heads·HeadDim], kcache KV[Blocks,BlockTokens,KVHeads·HeadDim],
	//	      vcache (same), table i32[Seqs,MaxBlocks], seq i32[Seqs,3]
	//	out:  o f32[M,Heads·HeadDim]
	OpAttention
	// OpGather copies rows: y[i] = x[idx[i]]. An index outside [0, M) is an
	// error. K is the number of rows gathered.
	//	spec: M, N, K
	//	in:   x f32[M,N], idx i32[K]
	//	out:  y f32[K,N]
	OpGather

	numOps
)

var opNames = [numOps]string{
	OpMatMul:    "matmul",
	OpRMSNorm:   "rmsnorm",
	OpAdd:       "add",
	OpSwiGLU:    "swiglu",
	OpEmbed:     "embed",
	OpRoPE:      "rope",
	OpKVWrite:   "kvwrite",
	OpAttention: "attention",
	OpGather:    "gather",
}

func (o Op) String() string {
	if o > 0 && o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Spec describes a Program: the operation and the static shapes it is
// compiled for. Fields an Op does not read must be zero. Spec is
// comparable, so it can key a program cache.
type Spec struct {
	Op Op
	// M is the number of activation rows (tokens in the step), the bucket.
	M int
	// N and K are the op's other dimensions (see each Op).
	N, K int
	// Weights is the format of the op's weight matrix, if it has one.
	Weights format.Type
	// Eps is RMSNorm's epsilon.
	Eps float32
	// Bias adds a bias input to OpMatMul.
	Bias bool
	// Parts splits OpMatMul's output by columns (see OpMatMul).
	Parts [MaxParts]int
	// GLU makes OpMatMul a gated linear unit over stacked gate and up
	// rows (see OpMatMul).
	GLU bool

	// Attention geometry (OpRoPE, OpKVWrite, OpAttention).
	Heads, KVHeads, HeadDim int
	// Paged cache geometry: tokens per block, blocks in the cache, the
	// sequences in the step (bucket) and the block-table width.
	BlockTokens, Blocks, Seqs, MaxBlocks int
	// KV is the cache's element type.
	KV DType
	// Rope parameterises OpRoPE.
	Rope Rope
}

// MaxParts is the most outputs a split OpMatMul has (Spec.Parts).
const MaxParts = 4

// RopeStyle says which dimensions RoPE rotates together.
type RopeStyle uint8

const (
	// RopeNormal rotates adjacent pairs (2i, 2i+1), as GGUF's llama does.
	RopeNormal RopeStyle = iota
	// RopeNeoX rotates (i, i+Dims/2), as qwen2, qwen3 and NeoX do.
	RopeNeoX
)

// Rope describes a rotary position embedding.
type Rope struct {
	// Dims is the number of dimensions of each head rotated (even, at
	// most HeadDim; the rest pass through).
	Dims int
	// Base is the frequency base θ (10000 for Llama 2, 500000 for Llama 3).
	Base  float32
	Style RopeStyle
	// Factor, LowFreqFactor, HighFreqFactor and OrigContext are Llama 3's
	// frequency scaling; Factor 0 means none.
	Factor, LowFreqFactor, HighFreqFactor float32
	OrigContext                           int
}

func (s Spec) String() string {
	str := fmt.Sprintf("%s M=%d", s.Op, s.M)
	if s.N != 0 {
		str += fmt.Sprintf(" N=%d", s.N)
	}
	if s.K != 0 {
		str += fmt.Sprintf(" K=%d", s.K)
	}
	if s.Op == OpMatMul || s.Op == OpEmbed {
		str += " weights=" + s.Weights.String()
	}
	if s.Bias {
		str += " bias"
	}
	if s.Parts != ([MaxParts]int{}) {
		str += " parts="
		for i, p := range s.Parts {
			if p == 0 {
				break
			}
			if i > 0 {
				str += "+"
			}
			str += fmt.Sprint(p)
		}
	}
	if s.GLU {
		str += " glu"
	}
	if s.Eps != 0 {
		str += fmt.Sprintf(" eps=%g", s.Eps)
	}
	if s.Heads != 0 || s.KVHeads != 0 || s.HeadDim != 0 {
		str += fmt.Sprintf(" heads=%d/%d×%d", s.Heads, s.KVHeads, s.HeadDim)
	}
	if s.Blocks != 0 {
		str += fmt.Sprintf(" kv=%s blocks=%d×%d seqs=%d×%d", s.KV, s.Blocks, s.BlockTokens, s.Seqs, s.MaxBlocks)
	}
	if s.Rope != (Rope{}) {
		str += fmt.Sprintf(" rope=%+v", s.Rope)
	}
	return str
}

// Param is one buffer in an operation's signature.
type Param struct {
	Name  string
	DType DType
	Shape Shape
}

// Signature returns the input and output buffers spec's program takes, or
// an error if spec is malformed (an unknown op, a non-positive dimension, a
// field the op does not use set, or a weight shape its format cannot hold).
func Signature(s Spec) (in, out []Param, err error) {
	bad := func(why string) ([]Param, []Param, error) {
		return nil, nil, fmt.Errorf("%w: %s: %s", ErrShape, s, why)
	}
	switch s.Op {
	case OpRoPE, OpKVWrite, OpAttention:
		return attnSignature(s)
	}
	if s.M <= 0 || s.N <= 0 || s.K < 0 {
		return bad("dimensions must be positive")
	}
	if s.Heads != 0 && (s.Op != OpRMSNorm || s.N%s.Heads != 0) {
		return bad("Heads is only used by rmsnorm, and must divide N")
	}
	if s.KVHeads != 0 || s.HeadDim != 0 || s.BlockTokens != 0 || s.Blocks != 0 ||
		s.Seqs != 0 || s.MaxBlocks != 0 || s.KV != 0 || s.Rope != (Rope{}) {
		return bad("attention fields are not used by this op")
	}
	usesK := s.Op == OpMatMul || s.Op == OpEmbed || s.Op == OpGather
	usesW := s.Op == OpMatMul || s.Op == OpEmbed
	if usesK && s.K <= 0 {
		return bad("K must be positive")
	}
	if !usesK && s.K != 0 || !usesW && s.Weights != 0 {
		return bad("K and Weights are not used by this op")
	}
	if s.Bias && s.Op != OpMatMul {
		return bad("Bias is only used by matmul")
	}
	parts := 0
	if s.Parts != ([MaxParts]int{}) {
		sum := 0
		for i, p := range s.Parts {
			if p < 0 || p == 0 && slices.ContainsFunc(s.Parts[i:], func(q int) bool { return q != 0 }) {
				return bad("Parts must be positive sizes followed by zeros")
			}
			if p > 0 {
				parts++
				sum += p
			}
		}
		if s.Op != OpMatMul || parts < 2 || sum != s.N || s.GLU {
			return bad("Parts is only used by matmul without GLU, with two or more parts summing to N")
		}
	}
	if s.GLU && (s.Op != OpMatMul || s.Bias) {
		return bad("GLU is only used by matmul without Bias")
	}
	if s.Op != OpRMSNorm && s.Eps != 0 {
		return bad("Eps is only used by rmsnorm")
	}
	if usesW {
		if !s.Weights.Valid() {
			return bad("unknown weight format")
		}
		if !s.Weights.RowOK(s.K) {
			return bad(fmt.Sprintf("weights %s need K a multiple of %d", s.Weights, s.Weights.BlockElems()))
		}
	}
	w := Weights(s.Weights)
	mn := Shape{s.M, s.N}
	switch s.Op {
	case OpMatMul:
		rows := s.N
		if s.GLU {
			if s.N > int(^uint(0)>>2) {
				return bad("N too large")
			}
			rows = 2 * s.N
		}
		in := []Param{{"x", F32, Shape{s.M, s.K}}, {"w", w, Shape{rows, s.K}}}
		if s.Bias {
			in = append(in, Param{"b", F32, Shape{s.N}})
		}
		if parts == 0 {
			return in, []Param{{"y", F32, mn}}, nil
		}
		out := make([]Param, parts)
		for i := range out {
			out[i] = Param{fmt.Sprintf("y%d", i), F32, Shape{s.M, s.Parts[i]}}
		}
		return in, out, nil
	case OpGather:
		return []Param{{"x", F32, mn}, {"idx", I32, Shape{s.K}}}, []Param{{"y", F32, Shape{s.K, s.N}}}, nil
	case OpRMSNorm:
		if !(s.Eps > 0) {
			return bad("Eps must be positive")
		}
		g := s.N
		if s.Heads > 0 {
			g = s.N / s.Heads
		}
		return []Param{{"x", F32, mn}, {"g", F32, Shape{g}}}, []Param{{"y", F32, mn}}, nil
	case OpAdd:
		return []Param{{"a", F32, mn}, {"b", F32, mn}}, []Param{{"y", F32, mn}}, nil
	case OpSwiGLU:
		return []Param{{"gate", F32, mn}, {"up", F32, mn}}, []Param{{"y", F32, mn}}, nil
	case OpEmbed:
		return []Param{{"ids", I32, Shape{s.M}}, {"table", w, Shape{s.N, s.K}}},
			[]Param{{"y", F32, Shape{s.M, s.K}}}, nil
	}
	return bad("unknown op")
}

func attnSignature(s Spec) (in, out []Param, err error) {
	bad := func(why string) ([]Param, []Param, error) {
		return nil, nil, fmt.Errorf("%w: %s: %s", ErrShape, s, why)
	}
	if s.N != 0 || s.K != 0 || s.Weights != 0 || s.Eps != 0 || s.Bias || s.Parts != ([MaxParts]int{}) || s.GLU {
		return bad("N, K, Weights, Eps, Bias, Parts and GLU are not used by this op")
	}
	if s.M <= 0 || s.HeadDim <= 0 {
		return bad("M and HeadDim must be positive")
	}
	pos := []Param{{"pos", I32, Shape{s.M}}}
	switch s.Op {
	case OpRoPE:
		r := s.Rope
		if s.Heads <= 0 || s.KVHeads != 0 || s.BlockTokens != 0 || s.Blocks != 0 || s.Seqs != 0 || s.MaxBlocks != 0 || s.KV != 0 {
			return bad("rope takes M, Heads, HeadDim and Rope only")
		}
		if r.Dims <= 0 || r.Dims%2 != 0 || r.Dims > s.HeadDim || !(r.Base > 1) {
			return bad("rope needs even 0 < Dims <= HeadDim and Base > 1")
		}
		if r.Factor != 0 && !(r.Factor >= 1 && r.HighFreqFactor > r.LowFreqFactor && r.LowFreqFactor > 0 && r.OrigContext > 0) {
			return bad("rope scaling needs Factor >= 1, 0 < LowFreqFactor < HighFreqFactor and OrigContext > 0")
		}
		x := Param{"x", F32, Shape{s.M, s.Heads * s.HeadDim}}
		return append([]Param{x}, pos...), []Param{x}, nil
	}
	if s.KVHeads <= 0 || s.BlockTokens <= 0 || s.Blocks <= 0 {
		return bad("KVHeads, BlockTokens and Blocks must be positive")
	}
	if s.KV != F32 && s.KV != BF16 && s.KV != F8E4M3 {
		return bad("the KV cache must be f32, bf16 or f8e4m3")
	}
	if s.Rope != (Rope{}) {
		return bad("Rope is only used by rope")
	}
	kvw := s.KVHeads * s.HeadDim
	cache := Shape{s.Blocks, s.BlockTokens, kvw}
	kc, vc := Param{"kcache", s.KV, cache}, Param{"vcache", s.KV, cache}
	switch s.Op {
	case OpKVWrite:
		if s.Heads != 0 || s.Seqs != 0 || s.MaxBlocks != 0 {
			return bad("kvwrite does not take Heads, Seqs or MaxBlocks")
		}
		return []Param{{"k", F32, Shape{s.M, kvw}}, {"v", F32, Shape{s.M, kvw}}, {"slot", I32, Shape{s.M}}, kc, vc},
			[]Param{kc, vc}, nil
	default: // OpAttention
		if s.Heads <= 0 || s.Heads%s.KVHeads != 0 {
			return bad("Heads must be a positive multiple of KVHeads")
		}
		if s.Seqs <= 0 || s.MaxBlocks <= 0 {
			return bad("Seqs and MaxBlocks must be positive")
		}
		q := Shape{s.M, s.Heads * s.HeadDim}
		return []Param{{"q", F32, q}, kc, vc, {"table", I32, Shape{s.Seqs, s.MaxBlocks}}, {"seq", I32, Shape{s.Seqs, 3}}},
			[]Param{{"o", F32, q}}, nil
	}
}
