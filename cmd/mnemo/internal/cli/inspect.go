package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/llama2c"
)

func init() {
	register(&Command{
		Name:    "inspect",
		Args:    "FILE [--json]",
		Summary: "show a model file's format, metadata, tensors and sizes (GGUF or llama2.c)",
		Run:     runInspect,
	})
}

// inspectItems is how many leading items of a metadata array are shown.
const inspectItems = 8

type inspectReport struct {
	File       string          `json:"file"`
	Format     string          `json:"format"` // "gguf" or "llama2c"
	Version    uint32          `json:"version,omitempty"`
	Size       int64           `json:"size"`
	Alignment  uint64          `json:"alignment,omitempty"`
	DataOffset int64           `json:"data_offset,omitempty"`
	Metadata   []inspectKV     `json:"metadata"`
	Tensors    []inspectTensor `json:"tensors"`
	Totals     inspectTotals   `json:"totals"`
}

type inspectKV struct {
	Key  string `json:"key"`
	Type string `json:"type"` // value type; "array[elem]" for arrays
	// Value is the scalar value (non-finite floats as strings).
	Value any `json:"value,omitempty"`
	// Length and Items describe an array: its length and at most
	// inspectItems leading items (nested arrays as summary strings).
	Length *int  `json:"length,omitempty"`
	Items  []any `json:"items,omitempty"`

	text string // the value as printed
}

type inspectTensor struct {
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	Shape  []uint64 `json:"shape"` // GGUF order, row length first
	Params uint64   `json:"params"`
	Bytes  uint64   `json:"bytes"`
	Offset int64    `json:"offset"` // file offset of the data
}

type inspectTotals struct {
	Tensors int           `json:"tensors"`
	Params  uint64        `json:"params"`
	Bytes   uint64        `json:"bytes"`
	ByType  []inspectType `json:"by_type"`
}

type inspectType struct {
	Type    string `json:"type"`
	Tensors int    `json:"tensors"`
	Params  uint64 `json:"params"`
	Bytes   uint64 `json:"bytes"`
}

func runInspect(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "inspect")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef("missing FILE")
	case len(pos) > 1:
		return usagef("unexpected argument %q", pos[1])
	}
	r, err := inspectFile(pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return r.print(env.Stdout)
}

// inspectFile builds the report, detecting the format by the GGUF magic.
func inspectFile(path string) (*inspectReport, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	magic := make([]byte, 4)
	n, _ := io.ReadFull(fh, magic)
	fh.Close()
	if string(magic[:n]) == gguf.Magic {
		f, err := gguf.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return ggufReport(path, f), nil
	}
	f, err := llama2c.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s is neither a GGUF file nor a llama2.c checkpoint: %w", path, err)
	}
	defer f.Close()
	return llama2cReport(path, f), nil
}

func ggufReport(path string, f *gguf.File) *inspectReport {
	r := &inspectReport{File: path, Format: "gguf", Version: f.Version(), Size: f.Size(),
		Alignment: f.Alignment(), DataOffset: f.DataOffset(), Metadata: []inspectKV{}}
	for _, kv := range f.KVs() {
		r.Metadata = append(r.Metadata, describeValue(kv.Key, kv.Value))
	}
	for _, t := range f.Tensors() {
		r.addTensor(t.Name, t.Type, t.Dims, t.Size, f.DataOffset()+int64(t.Offset))
	}
	r.total()
	return r
}

func llama2cReport(path string, f *llama2c.File) *inspectReport {
	h := f.Header()
	r := &inspectReport{File: path, Format: "llama2c", Size: f.Size()}
	for _, kv := range []struct {
		k string
		v int
	}{
		{"dim", h.Dim}, {"hidden_dim", h.HiddenDim}, {"n_layers", h.Layers}, {"n_heads", h.Heads},
		{"n_kv_heads", h.KVHeads}, {"vocab_size", h.VocabSize}, {"seq_len", h.SeqLen},
	} {
		r.Metadata = append(r.Metadata, describeValue(kv.k, gguf.Int32(int32(kv.v))))
	}
	r.Metadata = append(r.Metadata, describeValue("shared_classifier", gguf.Bool(h.SharedClassifier)))
	for _, t := range f.Tensors() {
		r.addTensor(t.Name, gguf.F32, t.Dims, uint64(len(t.Data)), t.Offset)
	}
	r.total()
	return r
}

func (r *inspectReport) addTensor(name string, typ gguf.GGMLType, dims []uint64, size uint64, off int64) {
	params := uint64(1)
	for _, d := range dims {
		params *= d
	}
	r.Tensors = append(r.Tensors, inspectTensor{Name: name, Type: typ.String(), Shape: append([]uint64{}, dims...),
		Params: params, Bytes: size, Offset: off})
}

func (r *inspectReport) total() {
	if r.Tensors == nil {
		r.Tensors = []inspectTensor{}
	}
	by := map[string]*inspectType{}
	t := &r.Totals
	t.ByType = []inspectType{}
	for _, x := range r.Tensors {
		t.Tensors++
		t.Params += x.Params
		t.Bytes += x.Bytes
		b := by[x.Type]
		if b == nil {
			b = &inspectType{Type: x.Type}
			by[x.Type] = b
		}
		b.Tensors++
		b.Params += x.Params
		b.Bytes += x.Bytes
	}
	for _, b := range by {
		t.ByType = append(t.ByType, *b)
	}
	sort.Slice(t.ByType, func(i, j int) bool {
		return t.ByType[i].Bytes > t.ByType[j].Bytes ||
			t.ByType[i].Bytes == t.ByType[j].Bytes && t.ByType[i].Type < t.ByType[j].Type
	})
}

// jsonScalar returns v's Go value, with non-finite floats (which JSON cannot
// hold) as strings.
func jsonScalar(v gguf.Value) any {
	if f, ok := v.Any().(float32); ok && (math.IsNaN(float64(f)) || math.IsInf(float64(f), 0)) {
		return v.String()
	}
	if f, ok := v.Any().(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return v.String()
	}
	if a, ok := v.Array(); ok {
		return a.Summary(inspectItems)
	}
	return v.Any()
}

func describeValue(key string, v gguf.Value) inspectKV {
	kv := inspectKV{Key: key, Type: v.Type().String(), text: v.String()}
	a, ok := v.Array()
	if !ok {
		kv.Value = jsonScalar(v)
		return kv
	}
	kv.Type = "array[" + a.Elem().String() + "]"
	n := a.Len()
	kv.Length = &n
	kv.Items = []any{}
	for i := range min(n, inspectItems) {
		kv.Items = append(kv.Items, jsonScalar(a.Index(i)))
	}
	kv.text = a.Summary(inspectItems)
	return kv
}

func (r *inspectReport) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "file:\t%s\n", r.File)
	switch r.Format {
	case "gguf":
		fmt.Fprintf(tw, "format:\tGGUF v%d (alignment %d, tensor data at offset %d)\n", r.Version, r.Alignment, r.DataOffset)
	default:
		fmt.Fprintf(tw, "format:\tllama2.c checkpoint (float32 weights)\n")
	}
	fmt.Fprintf(tw, "size:\t%s (%d bytes)\n", humanBytes(uint64(r.Size)), r.Size)
	fmt.Fprintf(tw, "\nmetadata (%d keys):\n", len(r.Metadata))
	for _, kv := range r.Metadata {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", kv.Key, kv.Type, truncate(kv.text, 160))
	}
	fmt.Fprintf(tw, "\ntensors (%d):\n", len(r.Tensors))
	if len(r.Tensors) > 0 {
		fmt.Fprintf(tw, "  NAME\tTYPE\tSHAPE\tPARAMS\tBYTES\n")
	}
	for _, t := range r.Tensors {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\n", t.Name, t.Type, shapeString(t.Shape), t.Params, t.Bytes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	t := r.Totals
	fmt.Fprintf(tw, "\ntotals:\t%d tensors\t%s params\t%s\n", t.Tensors, humanCount(t.Params), humanBytes(t.Bytes))
	for _, b := range t.ByType {
		fmt.Fprintf(tw, "  %s\t%d tensors\t%s params\t%s\n", b.Type, b.Tensors, humanCount(b.Params), humanBytes(b.Bytes))
	}
	return tw.Flush()
}

func shapeString(dims []uint64) string {
	if len(dims) == 0 {
		return "[]"
	}
	s := make([]string, len(dims))
	for i, d := range dims {
		s[i] = strconv.FormatUint(d, 10)
	}
	return "[" + strings.Join(s, " × ") + "]"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	x, i := float64(n), -1
	for x >= unit && i < 5 {
		x /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", x, "KMGTPE"[i])
}

func humanCount(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return strconv.FormatUint(n, 10)
}
