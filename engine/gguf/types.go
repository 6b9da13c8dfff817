package gguf

import (
	"fmt"
	"strings"
)

// GGMLType is a tensor element type, numbered as ggml's enum ggml_type (the
// ids GGUF files store).
type GGMLType uint32

// The ggml tensor types. Ids 4, 5 and 31–33, 36–38 were removed from ggml and
// are not valid in GGUF files.
const (
	F32     GGMLType = 0
	F16     GGMLType = 1
	Q4_0    GGMLType = 2
	Q4_1    GGMLType = 3
	Q5_0    GGMLType = 6
	Q5_1    GGMLType = 7
	Q8_0    GGMLType = 8
	Q8_1    GGMLType = 9
	Q2_K    GGMLType = 10
	Q3_K    GGMLType = 11
	Q4_K    GGMLType = 12
	Q5_K    GGMLType = 13
	Q6_K    GGMLType = 14
	Q8_K    GGMLType = 15
	IQ2_XXS GGMLType = 16
	IQ2_XS  GGMLType = 17
	IQ3_XXS GGMLType = 18
	IQ1_S   GGMLType = 19
	IQ4_NL  GGMLType = 20
	IQ3_S   GGMLType = 21
	IQ2_S   GGMLType = 22
	IQ4_XS  GGMLType = 23
	I8      GGMLType = 24
	I16     GGMLType = 25
	I32     GGMLType = 26
	I64     GGMLType = 27
	F64     GGMLType = 28
	IQ1_M   GGMLType = 29
	BF16    GGMLType = 30
	TQ1_0   GGMLType = 34
	TQ2_0   GGMLType = 35
	MXFP4   GGMLType = 39
	NVFP4   GGMLType = 40
	Q1_0    GGMLType = 41
)

type typeTraits struct {
	name  string
	block uint64 // elements per block
	size  uint64 // bytes per block
}

// typeTable holds ggml's type traits (ggml.c type_traits: blck_size,
// type_size), indexed by id; a zero block marks an unused id.
var typeTable = [...]typeTraits{
	F32:     {"f32", 1, 4},
	F16:     {"f16", 1, 2},
	Q4_0:    {"q4_0", 32, 18},
	Q4_1:    {"q4_1", 32, 20},
	Q5_0:    {"q5_0", 32, 22},
	Q5_1:    {"q5_1", 32, 24},
	Q8_0:    {"q8_0", 32, 34},
	Q8_1:    {"q8_1", 32, 36},
	Q2_K:    {"q2_K", 256, 84},
	Q3_K:    {"q3_K", 256, 110},
	Q4_K:    {"q4_K", 256, 144},
	Q5_K:    {"q5_K", 256, 176},
	Q6_K:    {"q6_K", 256, 210},
	Q8_K:    {"q8_K", 256, 292},
	IQ2_XXS: {"iq2_xxs", 256, 66},
	IQ2_XS:  {"iq2_xs", 256, 74},
	IQ3_XXS: {"iq3_xxs", 256, 98},
	IQ1_S:   {"iq1_s", 256, 50},
	IQ4_NL:  {"iq4_nl", 32, 18},
	IQ3_S:   {"iq3_s", 256, 110},
	IQ2_S:   {"iq2_s", 256, 82},
	IQ4_XS:  {"iq4_xs", 256, 136},
	I8:      {"i8", 1, 1},
	I16:     {"i16", 1, 2},
	I32:     {"i32", 1, 4},
	I64:     {"i64", 1, 8},
	F64:     {"f64", 1, 8},
	IQ1_M:   {"iq1_m", 256, 56},
	BF16:    {"bf16", 1, 2},
	TQ1_0:   {"tq1_0", 256, 54},
	TQ2_0:   {"tq2_0", 256, 66},
	MXFP4:   {"mxfp4", 32, 17},
	NVFP4:   {"nvfp4", 64, 36},
	Q1_0:    {"q1_0", 128, 18},
}

// mnemo's own tensor types, for weight formats ggml has no id for. They sit
// far above ggml's ids so they cannot collide with a future ggml type, and
// files using them carry the key KeyMnemoTypes: other GGUF readers reject
// them as unknown types rather than misreading them.
const (
	// MnemoE4M3 is FP8 E4M3 codes, one byte per element; the per-row
	// float32 scales are a companion tensor "<name>.scale" of N elements.
	MnemoE4M3 GGMLType = 1024
	// MnemoMXFP8E4M3 and MnemoMXFP8E5M2 are OCP MXFP8 blocks: an E8M0
	// scale byte and 32 FP8 codes.
	MnemoMXFP8E4M3 GGMLType = 1025
	MnemoMXFP8E5M2 GGMLType = 1026
	// MnemoNVFP4 is NVFP4 blocks as package format lays them out (an E4M3
	// scale byte and 8 bytes of E2M1 nibbles per 16 elements); the
	// per-tensor float32 scale is a companion tensor "<name>.scale" of one
	// element.
	MnemoNVFP4 GGMLType = 1027
)

// KeyMnemoTypes marks a file that uses mnemo's own tensor types.
const KeyMnemoTypes = "mnemo.tensor_types"

var mnemoTypes = map[GGMLType]typeTraits{
	MnemoE4M3:      {"mnemo_e4m3", 1, 1},
	MnemoMXFP8E4M3: {"mnemo_mxfp8_e4m3", 32, 33},
	MnemoMXFP8E5M2: {"mnemo_mxfp8_e5m2", 32, 33},
	MnemoNVFP4:     {"mnemo_nvfp4", 16, 9},
}

func traits(t GGMLType) (typeTraits, bool) {
	if int(t) < len(typeTable) && typeTable[t].block != 0 {
		return typeTable[t], true
	}
	tt, ok := mnemoTypes[t]
	return tt, ok
}

// Valid reports whether t is a ggml (or mnemo) type this package knows the
// layout of.
func (t GGMLType) Valid() bool {
	_, ok := traits(t)
	return ok
}

// String returns ggml's name for the type ("f32", "q8_0", "q4_K", ...), or
// "GGMLType(N)" for an unknown id.
func (t GGMLType) String() string {
	tt, ok := traits(t)
	if !ok {
		return fmt.Sprintf("GGMLType(%d)", uint32(t))
	}
	return tt.name
}

// BlockSize returns the number of elements in one block of t (1 for the
// plain types), or 0 if t is not Valid.
func (t GGMLType) BlockSize() uint64 {
	tt, _ := traits(t)
	return tt.block
}

// TypeSize returns the size in bytes of one block of t, or 0 if t is not
// Valid.
func (t GGMLType) TypeSize() uint64 {
	tt, _ := traits(t)
	return tt.size
}

// Quantized reports whether t stores elements in blocks larger than one.
func (t GGMLType) Quantized() bool { return t.BlockSize() > 1 }

// RowSize returns the bytes taken by n elements of t. n must be a multiple of
// the block size; ok is false otherwise (or if t is not Valid).
func (t GGMLType) RowSize(n uint64) (size uint64, ok bool) {
	if !t.Valid() || n%t.BlockSize() != 0 {
		return 0, false
	}
	blocks := n / t.BlockSize()
	if blocks != 0 && t.TypeSize() > ^uint64(0)/blocks {
		return 0, false
	}
	return blocks * t.TypeSize(), true
}

// ParseGGMLType returns the type named s (as printed by String, case
// insensitive: "Q4_K" and "q4_k" both work).
func ParseGGMLType(s string) (GGMLType, error) {
	for i, tt := range typeTable {
		if tt.block != 0 && strings.EqualFold(tt.name, s) {
			return GGMLType(i), nil
		}
	}
	for t, tt := range mnemoTypes {
		if strings.EqualFold(tt.name, s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("gguf: unknown ggml type %q", s)
}
