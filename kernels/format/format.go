// Package format defines the numeric formats mnemo stores weights and
// activations in: scalar FP8 (E4M3, E5M2), FP4 (E2M1), BF16 and F16, and the
// block formats built on them (OCP MX, NVFP4, GGUF's Q8_0 and Q4_0, and a
// per-row-scaled FP8).
//
// Every block format is described by a Type. A row of K elements of a Type is
// stored as RowBytes(K) bytes, blocks in order along K, in the layout the
// Type's doc comment gives. Quantized rows are what model files hold and what
// the matmul kernels in package kernels repack into their interleaved layout.
//
// # Bad data
//
// QuantizeRow never panics on the values in src:
//   - F32, F16, BF16 convert each value on its own (F16/BF16 round to
//     nearest even, overflow to ±Inf, keep NaN).
//   - F8E4M3Row takes its scale from the largest finite |x|; NaN encodes
//     as the E4M3 NaN code and ±Inf saturates to ±448·scale.
//   - In every block format (MX, NVFP4, Q8_0, Q4_0) a block holding any NaN
//     or ±Inf is stored with a NaN scale and zero elements, so all its
//     elements dequantize to NaN: MX scale 0xFF (as in the OCP reference
//     code, where an infinite block maximum overflows the E8M0 range),
//     NVFP4 scale 0x7F, Q8_0/Q4_0 d = 0x7E00. Other blocks are unaffected.
//
// DequantizeRow never panics on the bytes in src: an E8M0 scale 0xFF, an
// NVFP4 scale that is NaN or has its sign bit set (negative or -0, which
// QuantizeRow never writes) makes every element of its block NaN. The float
// scales (F8E4M3Row's float32, Q8_0/Q4_0's F16 d) are applied by plain
// multiplication, so a NaN one gives NaN and an infinite one ±Inf (NaN for
// zero elements).
//
// Both panic, with constant messages, only on programmer errors: an invalid
// Type, a row length that is not a multiple of the block size, or a dst/src
// length that does not match it.
package format

import "fmt"

// Type is a weight storage format.
type Type uint8

// The weight formats. The byte layout of one block is given for each.
const (
	// F32 is IEEE binary32, little-endian; block of 1.
	F32 Type = iota
	// F16 is IEEE binary16, little-endian; block of 1.
	F16
	// BF16 is bfloat16 (the top half of a binary32), little-endian; block of 1.
	BF16
	// F8E4M3Row is FP8 E4M3 with one float32 scale per row: a row is
	// K code bytes followed by the scale (little-endian float32).
	// value = decode(code) * scale.
	F8E4M3Row
	// MXF8E4M3 is OCP MXFP8 with E4M3 elements: 32 elements per block,
	// one E8M0 scale byte followed by 32 code bytes (33 bytes).
	MXF8E4M3
	// MXF8E5M2 is OCP MXFP8 with E5M2 elements, laid out like MXF8E4M3.
	MXF8E5M2
	// MXFP4 is OCP MXFP4: 32 E2M1 elements per block, one E8M0 scale byte
	// followed by 16 bytes of nibbles (17 bytes). Element j of the block is
	// the low nibble of byte j for j < 16 and the high nibble of byte j-16
	// otherwise (GGUF's MXFP4 order).
	MXFP4
	// NVFP4 is NVIDIA's FP4: 16 E2M1 elements per block, one E4M3 scale byte
	// followed by 8 bytes of nibbles (9 bytes), low nibble of byte j is
	// element j, high nibble is element j+8. A tensor also carries one
	// float32 global scale, stored by the caller (not in the row).
	NVFP4
	// Q8_0 is GGUF's Q8_0: 32 elements per block, a float16 scale d followed
	// by 32 int8 values (34 bytes). value = d * q.
	Q8_0
	// Q4_0 is GGUF's Q4_0: 32 elements per block, a float16 scale d followed
	// by 16 bytes of nibbles (18 bytes). Element j is the low nibble of byte
	// j for j < 16 and the high nibble of byte j-16 otherwise; value =
	// d * (nibble - 8).
	Q4_0

	numTypes
)

type typeInfo struct {
	name       string
	blockElems int // elements per block
	blockBytes int // bytes per block
}

var types = [numTypes]typeInfo{
	F32:       {"f32", 1, 4},
	F16:       {"f16", 1, 2},
	BF16:      {"bf16", 1, 2},
	F8E4M3Row: {"fp8", 1, 1},
	MXF8E4M3:  {"mxfp8", 32, 33},
	MXF8E5M2:  {"mxfp8_e5m2", 32, 33},
	MXFP4:     {"mxfp4", 32, 17},
	NVFP4:     {"nvfp4", 16, 9},
	Q8_0:      {"q8_0", 32, 34},
	Q4_0:      {"q4_0", 32, 18},
}

// Types returns every Type in declaration order.
func Types() []Type {
	ts := make([]Type, numTypes)
	for i := range ts {
		ts[i] = Type(i)
	}
	return ts
}

// Valid reports whether t is a known Type.
func (t Type) Valid() bool { return t < numTypes }

// String returns the Type's short name, as used on the command line
// (--weights fp8, mxfp4, ...).
func (t Type) String() string {
	if !t.Valid() {
		return fmt.Sprintf("format.Type(%d)", uint8(t))
	}
	return types[t].name
}

// ParseType returns the Type named s (as printed by String).
func ParseType(s string) (Type, error) {
	for i, ti := range types {
		if ti.name == s {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("format: unknown type %q", s)
}

// BlockElems returns the number of elements that share one block.
func (t Type) BlockElems() int { return types[t].blockElems }

// BlockBytes returns the encoded size of one block.
func (t Type) BlockBytes() int { return types[t].blockBytes }

// RowOK reports whether a row of k elements can be stored in t
// (k must be a multiple of the block size).
func (t Type) RowOK(k int) bool {
	return t.Valid() && k >= 0 && k%types[t].blockElems == 0
}

// RowBytes returns the encoded size of a row of k elements. It panics if
// !t.RowOK(k).
func (t Type) RowBytes(k int) int {
	if !t.RowOK(k) {
		panic("format: row length is not a multiple of the block size")
	}
	n := k / types[t].blockElems * types[t].blockBytes
	if t == F8E4M3Row {
		n += 4
	}
	return n
}

// MarshalText encodes t as its name (String), so Types read well in JSON.
func (t Type) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("format: invalid type %d", uint8(t))
	}
	return []byte(t.String()), nil
}

// UnmarshalText decodes a Type from its name (ParseType).
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}
