package gguf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ValueType is the type of a metadata value (gguf_metadata_value_type).
type ValueType uint32

// The metadata value types, numbered as in the GGUF spec.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	TypeUint8: "uint8", TypeInt8: "int8", TypeUint16: "uint16", TypeInt16: "int16",
	TypeUint32: "uint32", TypeInt32: "int32", TypeFloat32: "float32", TypeBool: "bool",
	TypeString: "string", TypeArray: "array", TypeUint64: "uint64", TypeInt64: "int64",
	TypeFloat64: "float64",
}

// fixedSize is the encoded size of the fixed-size value types (0 for string
// and array).
var fixedSize = [...]int{
	TypeUint8: 1, TypeInt8: 1, TypeUint16: 2, TypeInt16: 2, TypeUint32: 4, TypeInt32: 4,
	TypeFloat32: 4, TypeBool: 1, TypeUint64: 8, TypeInt64: 8, TypeFloat64: 8,
}

// Valid reports whether t is one of the GGUF value types.
func (t ValueType) Valid() bool { return int(t) < len(valueTypeNames) }

// String returns the type's name as the spec spells it in lower case
// ("uint32", "string", "array").
func (t ValueType) String() string {
	if !t.Valid() {
		return fmt.Sprintf("ValueType(%d)", uint32(t))
	}
	return valueTypeNames[t]
}

// minEncodedSize is the fewest bytes one value of t takes in a file.
func (t ValueType) minEncodedSize() int64 {
	switch t {
	case TypeString:
		return 8 // uint64 length
	case TypeArray:
		return 12 // uint32 type + uint64 length
	default:
		return int64(fixedSize[t])
	}
}

// Value is one metadata value. The zero Value is invalid (the writer rejects
// it); build values with the constructors (Uint32, String, ArrayOf, ...).
type Value struct {
	typ ValueType
	v   any // uint8..float64, bool, string or Array, matching typ
}

// Uint8 returns a uint8 Value.
func Uint8(x uint8) Value { return Value{TypeUint8, x} }

// Int8 returns an int8 Value.
func Int8(x int8) Value { return Value{TypeInt8, x} }

// Uint16 returns a uint16 Value.
func Uint16(x uint16) Value { return Value{TypeUint16, x} }

// Int16 returns an int16 Value.
func Int16(x int16) Value { return Value{TypeInt16, x} }

// Uint32 returns a uint32 Value.
func Uint32(x uint32) Value { return Value{TypeUint32, x} }

// Int32 returns an int32 Value.
func Int32(x int32) Value { return Value{TypeInt32, x} }

// Float32 returns a float32 Value.
func Float32(x float32) Value { return Value{TypeFloat32, x} }

// Bool returns a bool Value.
func Bool(x bool) Value { return Value{TypeBool, x} }

// String returns a string Value.
func String(x string) Value { return Value{TypeString, x} }

// Uint64 returns a uint64 Value.
func Uint64(x uint64) Value { return Value{TypeUint64, x} }

// Int64 returns an int64 Value.
func Int64(x int64) Value { return Value{TypeInt64, x} }

// Float64 returns a float64 Value.
func Float64(x float64) Value { return Value{TypeFloat64, x} }

// ArrayOf returns an array Value holding xs (not copied). Arrays of arrays
// nest: ArrayOf([]Array{NewArray([]int32{1}), NewArray([]string{"a"})}).
func ArrayOf[T ArrayElem](xs []T) Value { return Value{TypeArray, NewArray(xs)} }

// ArrayValue returns an array Value holding a.
func ArrayValue(a Array) Value { return Value{TypeArray, a} }

// Type returns the value's type.
func (v Value) Type() ValueType { return v.typ }

// Valid reports whether v was built by a constructor or read from a file.
func (v Value) Valid() bool { return v.v != nil }

// Any returns the value as its Go type: uint8, int8, uint16, int16, uint32,
// int32, float32, bool, string, uint64, int64, float64 or Array.
func (v Value) Any() any { return v.v }

// Int returns the value of any integer type as an int64; ok is false for
// other types and for a uint64 above math.MaxInt64.
func (v Value) Int() (x int64, ok bool) {
	switch x := v.v.(type) {
	case uint8:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// Uint returns the value of any integer type as a uint64; ok is false for
// other types and for negative values.
func (v Value) Uint() (x uint64, ok bool) {
	if u, isU := v.v.(uint64); isU {
		return u, true
	}
	i, ok := v.Int()
	if !ok || i < 0 {
		return 0, false
	}
	return uint64(i), true
}

// Float returns a float32, float64 or integer value as a float64; ok is
// false for other types.
func (v Value) Float() (x float64, ok bool) {
	switch x := v.v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	if i, ok := v.Int(); ok {
		return float64(i), true
	}
	if u, ok := v.v.(uint64); ok {
		return float64(u), true
	}
	return 0, false
}

// Bool returns a bool value; ok is false for other types.
func (v Value) Bool() (x bool, ok bool) {
	x, ok = v.v.(bool)
	return x, ok
}

// Str returns a string value; ok is false for other types.
func (v Value) Str() (x string, ok bool) {
	x, ok = v.v.(string)
	return x, ok
}

// Array returns an array value; ok is false for other types.
func (v Value) Array() (a Array, ok bool) {
	a, ok = v.v.(Array)
	return a, ok
}

// String formats the value for people: numbers in Go syntax, strings
// quoted, arrays as their element type and length followed by up to the
// first 8 elements.
func (v Value) String() string {
	switch x := v.v.(type) {
	case nil:
		return "<invalid>"
	case string:
		return strconv.Quote(x)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case Array:
		return x.Summary(8)
	default:
		return fmt.Sprint(x)
	}
}

// ArrayElem is the set of Go element types an Array can hold.
type ArrayElem interface {
	uint8 | int8 | uint16 | int16 | uint32 | int32 | float32 | bool | string |
		uint64 | int64 | float64 | Array
}

// Array is a metadata array: a typed slice. Arrays of arrays hold Arrays,
// each with its own element type.
type Array struct {
	elem ValueType
	v    any // []T for the element type
}

// NewArray returns an Array holding xs (not copied).
func NewArray[T ArrayElem](xs []T) Array {
	var t ValueType
	switch any(xs).(type) {
	case []uint8:
		t = TypeUint8
	case []int8:
		t = TypeInt8
	case []uint16:
		t = TypeUint16
	case []int16:
		t = TypeInt16
	case []uint32:
		t = TypeUint32
	case []int32:
		t = TypeInt32
	case []float32:
		t = TypeFloat32
	case []bool:
		t = TypeBool
	case []string:
		t = TypeString
	case []uint64:
		t = TypeUint64
	case []int64:
		t = TypeInt64
	case []float64:
		t = TypeFloat64
	case []Array:
		t = TypeArray
	}
	if xs == nil {
		xs = []T{}
	}
	return Array{elem: t, v: xs}
}

// Elem returns the element type.
func (a Array) Elem() ValueType { return a.elem }

// Len returns the number of elements.
func (a Array) Len() int {
	switch x := a.v.(type) {
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []float32:
		return len(x)
	case []bool:
		return len(x)
	case []string:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float64:
		return len(x)
	case []Array:
		return len(x)
	}
	return 0
}

// Index returns element i as a Value. It panics if i is out of range.
func (a Array) Index(i int) Value {
	switch x := a.v.(type) {
	case []uint8:
		return Uint8(x[i])
	case []int8:
		return Int8(x[i])
	case []uint16:
		return Uint16(x[i])
	case []int16:
		return Int16(x[i])
	case []uint32:
		return Uint32(x[i])
	case []int32:
		return Int32(x[i])
	case []float32:
		return Float32(x[i])
	case []bool:
		return Bool(x[i])
	case []string:
		return String(x[i])
	case []uint64:
		return Uint64(x[i])
	case []int64:
		return Int64(x[i])
	case []float64:
		return Float64(x[i])
	case []Array:
		return ArrayValue(x[i])
	}
	panic("gguf: Index on an empty Array")
}

// Any returns the underlying slice ([]uint8 ... []float64, []bool, []string
// or []Array). It is shared, not copied: do not modify it.
func (a Array) Any() any { return a.v }

// Summary formats the array as "[elem × len] first, items, ..." showing at
// most n elements.
func (a Array) Summary(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s × %d]", a.elem, a.Len())
	for i := range min(n, a.Len()) {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(a.Index(i).String())
	}
	if a.Len() > n {
		b.WriteString(", ...")
	}
	return b.String()
}

// KV is one metadata key-value pair.
type KV struct {
	Key   string
	Value Value
}
