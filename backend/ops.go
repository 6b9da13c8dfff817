package backend

import (
	"fmt"

	"github.com/mnemo-ai/mnemo/kernels/format"
)

// Op is an operation a Program runs. Each Op's doc comment is its
// contract: the Spec fields it reads, its input and output buffers
// (dtype[shape]) and what it computes. Signature returns the same in code.
type Op uint8

// The operations.
const (
	// OpMatMul computes y = x·Wᵀ.
	//	spec: M, N, K, Weights
	//	in:   x f32[M,K], W Weights(Weights)[N,K]
	//	out:  y f32[M,N]
	OpMatMul Op = iota + 1
	// OpRMSNorm computes y[i] = x[i] / sqrt(mean(x[i]²) + Eps) · g for each
	// row i. y may be the same buffer as x.
	//	spec: M, N (row length), Eps
	//	in:   x f32[M,N], g f32[N]
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

	numOps
)

var opNames = [numOps]string{
	OpMatMul:  "matmul",
	OpRMSNorm: "rmsnorm",
	OpAdd:     "add",
	OpSwiGLU:  "swiglu",
	OpEmbed:   "embed",
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
}

func (s Spec) String() string {
	str := fmt.Sprintf("%s M=%d N=%d", s.Op, s.M, s.N)
	if s.K != 0 {
		str += fmt.Sprintf(" K=%d", s.K)
	}
	if s.Op == OpMatMul || s.Op == OpEmbed {
		str += " weights=" + s.Weights.String()
	}
	if s.Eps != 0 {
		str += fmt.Sprintf(" eps=%g", s.Eps)
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
	if s.M <= 0 || s.N <= 0 || s.K < 0 {
		return bad("dimensions must be positive")
	}
	usesK := s.Op == OpMatMul || s.Op == OpEmbed
	if usesK && s.K <= 0 {
		return bad("K must be positive")
	}
	if !usesK && (s.K != 0 || s.Weights != 0) {
		return bad("K and Weights are not used by this op")
	}
	if s.Op != OpRMSNorm && s.Eps != 0 {
		return bad("Eps is only used by rmsnorm")
	}
	if usesK {
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
		return []Param{{"x", F32, Shape{s.M, s.K}}, {"w", w, Shape{s.N, s.K}}},
			[]Param{{"y", F32, mn}}, nil
	case OpRMSNorm:
		if !(s.Eps > 0) {
			return bad("Eps must be positive")
		}
		return []Param{{"x", F32, mn}, {"g", F32, Shape{s.N}}}, []Param{{"y", F32, mn}}, nil
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
