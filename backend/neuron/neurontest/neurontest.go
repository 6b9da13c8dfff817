// Package neurontest writes NEFF directories of fake NEFFs for tests of the
// Neuron backend: each program is a NEFF stand-in (package nrttest) whose
// manifest line "op mnemo ..." makes the fake libnrt compute the backend
// op on the host (backend/neuron/testdata/fakenrt/mnemo_ops.c).
package neurontest

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/neuron"
	"github.com/mnemo-ai/mnemo/backend/neuron/nrt/nrttest"
)

// fakeDType is the fake manifest's dtype for a buffer dtype; weights are
// bytes.
func fakeDType(dt backend.DType) string {
	switch dt {
	case backend.F32:
		return "f32"
	case backend.F16:
		return "f16"
	case backend.BF16:
		return "bf16"
	case backend.I32:
		return "i32"
	}
	return "u8"
}

func num(f float32) string { return strconv.FormatFloat(float64(f), 'g', -1, 64) }

// OpLine returns the fake's "mnemo" op line (without "op ") for spec.
func OpLine(s backend.Spec) string {
	parts := []string{"mnemo", s.Op.String()}
	add := func(k string, v int) {
		if v != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
	}
	add("M", s.M)
	add("N", s.N)
	add("K", s.K)
	if s.Op == backend.OpMatMul || s.Op == backend.OpEmbed {
		parts = append(parts, "w="+s.Weights.String())
	}
	if s.Bias {
		parts = append(parts, "bias=1")
	}
	if s.Eps != 0 {
		parts = append(parts, "eps="+num(s.Eps))
	}
	add("heads", s.Heads)
	add("kvheads", s.KVHeads)
	add("hd", s.HeadDim)
	add("bt", s.BlockTokens)
	add("blocks", s.Blocks)
	add("seqs", s.Seqs)
	add("maxb", s.MaxBlocks)
	if s.Op == backend.OpKVWrite || s.Op == backend.OpAttention {
		parts = append(parts, "kv="+s.KV.String())
	}
	if r := s.Rope; s.Op == backend.OpRoPE {
		style := "normal"
		if r.Style == backend.RopeNeoX {
			style = "neox"
		}
		parts = append(parts, fmt.Sprintf("dims=%d", r.Dims), "base="+num(r.Base), "style="+style)
		if r.Factor != 0 {
			parts = append(parts, "factor="+num(r.Factor), "low="+num(r.LowFreqFactor), "high="+num(r.HighFreqFactor),
				fmt.Sprintf("orig=%d", r.OrigContext))
		}
	}
	return strings.Join(parts, " ")
}

// FakeNEFF returns the NEFF stand-in computing spec and its manifest
// entry (without the file name).
func FakeNEFF(s backend.Spec) (nrttest.NEFF, neuron.Entry, error) {
	pin, pout, err := backend.Signature(s)
	if err != nil {
		return nrttest.NEFF{}, neuron.Entry{}, err
	}
	inNames, outNames, err := neuron.TensorNames(s)
	if err != nil {
		return nrttest.NEFF{}, neuron.Entry{}, err
	}
	n := nrttest.NEFF{Name: s.String(), Ops: []string{OpLine(s)}}
	add := func(out bool, name string, p backend.Param) error {
		shape := make([]uint32, len(p.Shape))
		for i, d := range p.Shape {
			shape[i] = uint32(d)
		}
		if _, weights := p.DType.Format(); weights {
			b, err := backend.HostBytes(p.DType, p.Shape)
			if err != nil {
				return err
			}
			if b > math.MaxUint32 {
				return fmt.Errorf("neurontest: %s: weights too large", s)
			}
			shape = []uint32{uint32(b)}
		}
		n.Tensors = append(n.Tensors, nrttest.Tensor{Out: out, Name: name, DType: fakeDType(p.DType), Shape: shape})
		return nil
	}
	for i, p := range pin {
		if err := add(false, inNames[i], p); err != nil {
			return n, neuron.Entry{}, err
		}
	}
	for i, p := range pout {
		if err := add(true, outNames[i], p); err != nil {
			return n, neuron.Entry{}, err
		}
	}
	return n, neuron.Entry{Spec: neuron.EncodeSpec(s), Inputs: inNames, Outputs: outNames}, nil
}

// WriteDir writes one fake NEFF per distinct spec into dir and the
// manifest listing them with the given buckets. Split and GLU matmuls
// (Spec.Parts, Spec.GLU), which the backend refuses, are left out.
func WriteDir(dir string, buckets []int, specs []backend.Spec) (*neuron.Manifest, error) {
	m := &neuron.Manifest{Version: neuron.ManifestVersion, Target: "fake", Buckets: buckets}
	seen := map[backend.Spec]bool{}
	for _, s := range specs {
		if seen[s] || s.Parts != ([backend.MaxParts]int{}) || s.GLU || s.KV == backend.F8E4M3 {
			continue // the neuron backend has no fused outputs or FP8 KV cache
		}
		seen[s] = true
		neff, e, err := FakeNEFF(s)
		if err != nil {
			return nil, fmt.Errorf("neurontest: %w", err)
		}
		e.NEFF = fmt.Sprintf("%03d_%s.neff", len(m.Programs), s.Op)
		if err := os.WriteFile(filepath.Join(dir, e.NEFF), neff.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("neurontest: %w", err)
		}
		m.Programs = append(m.Programs, e)
	}
	if err := neuron.WriteManifest(dir, m); err != nil {
		return nil, err
	}
	return m, nil
}
