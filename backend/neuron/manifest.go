package neuron

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/neuron/nrt"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

// ManifestName is the manifest's file name inside a NEFF directory.
const ManifestName = "manifest.json"

// ManifestVersion is the manifest format this package reads and writes.
const ManifestVersion = 1

// Manifest describes a NEFF directory: which program (Spec) each NEFF
// file was compiled for and the names of its input and output tensors.
type Manifest struct {
	// Version is ManifestVersion.
	Version int `json:"version"`
	// Target says what the NEFFs were compiled for ("trn2", "trn3", or
	// "fake" for the test stand-ins); informational.
	Target string `json:"target,omitempty"`
	// Buckets are the step sizes (rows, sequences, logit rows) the
	// programs were compiled for, ascending; Bucket rounds up to them.
	Buckets []int `json:"buckets"`
	// Programs lists one entry per compiled program.
	Programs []Entry `json:"programs"`
}

// Entry is one compiled program.
type Entry struct {
	Spec SpecJSON `json:"spec"`
	// NEFF is the file's path relative to the directory.
	NEFF string `json:"neff"`
	// Inputs and Outputs name the NEFF's tensors in the order of the op's
	// signature (backend.Signature). A buffer updated in place is the
	// input "X.must_alias_input" and the output "X".
	Inputs  []string `json:"inputs"`
	Outputs []string `json:"outputs"`
	// WeightLayout names the device layout the NEFF expects its weight
	// input in; empty means the backend's host encoding (backend.Weights),
	// which is what Buffer.Write stores. This version repacks into no
	// other layout, so a program with one is unsupported (the NKI kernels
	// in kernels/nki declare "trn2_fp8_kn" and "trn3_mx_kn").
	WeightLayout string `json:"weight_layout,omitempty"`
}

// SpecJSON is a backend.Spec in the manifest: the op and weight formats by
// name, fields the op does not read omitted.
type SpecJSON struct {
	Op          string    `json:"op"`
	M           int       `json:"m,omitempty"`
	N           int       `json:"n,omitempty"`
	K           int       `json:"k,omitempty"`
	Weights     string    `json:"weights,omitempty"`
	Eps         float32   `json:"eps,omitempty"`
	Bias        bool      `json:"bias,omitempty"`
	Heads       int       `json:"heads,omitempty"`
	KVHeads     int       `json:"kv_heads,omitempty"`
	HeadDim     int       `json:"head_dim,omitempty"`
	BlockTokens int       `json:"block_tokens,omitempty"`
	Blocks      int       `json:"blocks,omitempty"`
	Seqs        int       `json:"seqs,omitempty"`
	MaxBlocks   int       `json:"max_blocks,omitempty"`
	KV          string    `json:"kv,omitempty"`
	Rope        *RopeJSON `json:"rope,omitempty"`
}

// RopeJSON is a backend.Rope in the manifest.
type RopeJSON struct {
	Dims           int     `json:"dims"`
	Base           float32 `json:"base"`
	Style          string  `json:"style"` // "normal" or "neox"
	Factor         float32 `json:"factor,omitempty"`
	LowFreqFactor  float32 `json:"low_freq_factor,omitempty"`
	HighFreqFactor float32 `json:"high_freq_factor,omitempty"`
	OrigContext    int     `json:"orig_context,omitempty"`
}

var errManifest = errors.New("neuron: bad manifest")

// usesWeights reports whether op reads Spec.Weights.
func usesWeights(op backend.Op) bool { return op == backend.OpMatMul || op == backend.OpEmbed }

// usesKV reports whether op reads Spec.KV.
func usesKV(op backend.Op) bool { return op == backend.OpKVWrite || op == backend.OpAttention }

// EncodeSpec returns s in manifest form.
func EncodeSpec(s backend.Spec) SpecJSON {
	j := SpecJSON{Op: s.Op.String(), M: s.M, N: s.N, K: s.K, Eps: s.Eps, Bias: s.Bias,
		Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim, BlockTokens: s.BlockTokens,
		Blocks: s.Blocks, Seqs: s.Seqs, MaxBlocks: s.MaxBlocks}
	if usesWeights(s.Op) || s.Weights != 0 {
		j.Weights = s.Weights.String()
	}
	if usesKV(s.Op) || s.KV != 0 {
		j.KV = s.KV.String()
	}
	if r := s.Rope; r != (backend.Rope{}) {
		style := "normal"
		if r.Style == backend.RopeNeoX {
			style = "neox"
		}
		j.Rope = &RopeJSON{Dims: r.Dims, Base: r.Base, Style: style, Factor: r.Factor,
			LowFreqFactor: r.LowFreqFactor, HighFreqFactor: r.HighFreqFactor, OrigContext: r.OrigContext}
	}
	return j
}

// Decode returns the backend.Spec j describes, checked with
// backend.Signature.
func (j SpecJSON) Decode() (backend.Spec, error) {
	var s backend.Spec
	for op := backend.Op(1); op < 64; op++ {
		if op.String() == j.Op {
			s.Op = op
		}
	}
	if s.Op == 0 {
		return s, fmt.Errorf("%w: unknown op %q", errManifest, j.Op)
	}
	s.M, s.N, s.K, s.Eps, s.Bias = j.M, j.N, j.K, j.Eps, j.Bias
	s.Heads, s.KVHeads, s.HeadDim = j.Heads, j.KVHeads, j.HeadDim
	s.BlockTokens, s.Blocks, s.Seqs, s.MaxBlocks = j.BlockTokens, j.Blocks, j.Seqs, j.MaxBlocks
	if usesWeights(s.Op) || j.Weights != "" {
		t, err := format.ParseType(j.Weights)
		if err != nil {
			return s, fmt.Errorf("%w: %s: %w", errManifest, j.Op, err)
		}
		s.Weights = t
	}
	switch j.KV {
	case "":
		if usesKV(s.Op) {
			return s, fmt.Errorf("%w: %s needs kv", errManifest, j.Op)
		}
	case "f32":
		s.KV = backend.F32
	case "bf16":
		s.KV = backend.BF16
	default:
		return s, fmt.Errorf("%w: kv %q: want f32 or bf16", errManifest, j.KV)
	}
	if r := j.Rope; r != nil {
		s.Rope = backend.Rope{Dims: r.Dims, Base: r.Base, Factor: r.Factor, LowFreqFactor: r.LowFreqFactor,
			HighFreqFactor: r.HighFreqFactor, OrigContext: r.OrigContext}
		switch r.Style {
		case "normal":
		case "neox":
			s.Rope.Style = backend.RopeNeoX
		default:
			return s, fmt.Errorf("%w: rope style %q: want normal or neox", errManifest, r.Style)
		}
	}
	if _, _, err := backend.Signature(s); err != nil {
		return s, fmt.Errorf("%w: %w", errManifest, err)
	}
	return s, nil
}

// TensorNames returns the NEFF tensor names a program for s binds its
// buffers to by default: the signature's parameter names, with the
// in-place buffers (OpRoPE's x, OpKVWrite's caches) as
// "X.must_alias_input" inputs.
func TensorNames(s backend.Spec) (in, out []string, err error) {
	pin, pout, err := backend.Signature(s)
	if err != nil {
		return nil, nil, err
	}
	outs := map[string]bool{}
	for _, p := range pout {
		out = append(out, p.Name)
		outs[p.Name] = true
	}
	for _, p := range pin {
		name := p.Name
		if outs[name] {
			name += nrt.AliasSuffix
		}
		in = append(in, name)
	}
	return in, out, nil
}

// ParseManifest decodes and validates a manifest.
func ParseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", errManifest, err)
	}
	if _, err := m.index(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ReadManifest reads dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("neuron: read manifest: %w", err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestName), err)
	}
	return m, nil
}

// WriteManifest writes m to dir/manifest.json.
func WriteManifest(dir string, m *Manifest) error {
	if _, err := m.index(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return fmt.Errorf("neuron: encode manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("neuron: write manifest: %w", err)
	}
	return nil
}

// index validates m and maps each Spec to its entry.
func (m *Manifest) index() (map[backend.Spec]*Entry, error) {
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", errManifest, m.Version, ManifestVersion)
	}
	for i, b := range m.Buckets {
		if b <= 0 || i > 0 && b <= m.Buckets[i-1] {
			return nil, fmt.Errorf("%w: buckets %v must be positive and ascending", errManifest, m.Buckets)
		}
	}
	idx := make(map[backend.Spec]*Entry, len(m.Programs))
	for i := range m.Programs {
		e := &m.Programs[i]
		s, err := e.Spec.Decode()
		if err != nil {
			return nil, fmt.Errorf("program %d: %w", i, err)
		}
		if _, dup := idx[s]; dup {
			return nil, fmt.Errorf("%w: program %d: %s listed twice", errManifest, i, s)
		}
		if e.NEFF == "" || !filepath.IsLocal(e.NEFF) {
			return nil, fmt.Errorf("%w: program %d: NEFF path %q must be relative and inside the directory", errManifest, i, e.NEFF)
		}
		pin, pout, _ := backend.Signature(s)
		if len(e.Inputs) != len(pin) || len(e.Outputs) != len(pout) {
			return nil, fmt.Errorf("%w: program %d (%s): %d inputs and %d outputs, the op has %d and %d",
				errManifest, i, s, len(e.Inputs), len(e.Outputs), len(pin), len(pout))
		}
		for _, n := range slices.Concat(e.Inputs, e.Outputs) {
			if n == "" || len(n) >= 256 || strings.ContainsRune(n, 0) {
				return nil, fmt.Errorf("%w: program %d (%s): bad tensor name %q", errManifest, i, s, n)
			}
		}
		idx[s] = e
	}
	return idx, nil
}

// Bucket returns the smallest bucket >= n, or n if no bucket is that
// large (no program will then match, and Supports says so).
func (m *Manifest) Bucket(n int) int {
	for _, b := range m.Buckets {
		if b >= n {
			return b
		}
	}
	return n
}

// Summary lists the manifest's programs by op: the number of programs and
// the distinct M values (buckets) and weight formats of each.
func (m *Manifest) Summary() []string {
	type agg struct {
		n   int
		ms  []int
		fmt []string
	}
	ops := map[string]*agg{}
	var names []string
	for _, e := range m.Programs {
		a := ops[e.Spec.Op]
		if a == nil {
			a = &agg{}
			ops[e.Spec.Op] = a
			names = append(names, e.Spec.Op)
		}
		a.n++
		if !slices.Contains(a.ms, e.Spec.M) {
			a.ms = append(a.ms, e.Spec.M)
		}
		if e.Spec.Weights != "" && !slices.Contains(a.fmt, e.Spec.Weights) {
			a.fmt = append(a.fmt, e.Spec.Weights)
		}
	}
	slices.Sort(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		a := ops[n]
		slices.Sort(a.ms)
		line := fmt.Sprintf("%s: %d programs, M in %v", n, a.n, a.ms)
		if len(a.fmt) > 0 {
			slices.Sort(a.fmt)
			line += ", weights " + strings.Join(a.fmt, " ")
		}
		out = append(out, line)
	}
	return out
}
