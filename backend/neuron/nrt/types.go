package nrt

import (
	"fmt"
	"unsafe"
)

// C handles. They are opaque pointers owned by libnrt; Go never dereferences
// them, so they are plain named uintptrs.
type (
	// modelHandle is an nrt_model_t *.
	modelHandle uintptr
	// tensorHandle is an nrt_tensor_t *.
	tensorHandle uintptr
	// setHandle is an nrt_tensor_set_t *.
	setHandle uintptr
)

// Placement is nrt_tensor_placement_t.
type Placement int32

// The placements. Only PlacementDevice is supported by current libnrt:
// VIRTUAL was removed in 2.32.31 and HOST is deprecated.
const (
	PlacementDevice  Placement = 0
	PlacementHost    Placement = 1
	PlacementVirtual Placement = 2
)

// Usage tells model inputs from outputs (nrt_tensor_usage_t).
type Usage int32

// The usages.
const (
	UsageInput  Usage = 0
	UsageOutput Usage = 1
)

// String returns "input" or "output".
func (u Usage) String() string {
	switch u {
	case UsageInput:
		return "input"
	case UsageOutput:
		return "output"
	}
	return fmt.Sprintf("Usage(%d)", int32(u))
}

// DType is a tensor element type. Its values are mnemo's own: libnrt's
// nrt_dtype_t numbering changed between SDK releases (see dtypeTable), so
// the raw code is kept in TensorInfo.RawDType.
type DType uint8

// The element types libnrt reports.
const (
	DTypeUnknown DType = iota
	DTypeF32
	DTypeF16
	DTypeBF16
	DTypeI8
	DTypeU8
	DTypeI16
	DTypeU16
	DTypeI32
	DTypeU32
	DTypeI64
	DTypeU64
	// DTypeF32R is NRT_DTYPE_FP32R (fp32 "replicated"), 4 bytes.
	DTypeF32R
	// DTypeF8E3 is NRT_DTYPE_FP8_E3.
	DTypeF8E3
	// DTypeF8E4 is NRT_DTYPE_FP8_E4 (an E4M3 variant; the header does not
	// say whether it is OCP "FN").
	DTypeF8E4
	// DTypeF8E5 is NRT_DTYPE_FP8_E5 (E5M2).
	DTypeF8E5
	numDTypes
)

var dtypeInfo = [numDTypes]struct {
	name string
	size int
}{
	DTypeUnknown: {"unknown", 0}, DTypeF32: {"f32", 4}, DTypeF16: {"f16", 2}, DTypeBF16: {"bf16", 2},
	DTypeI8: {"i8", 1}, DTypeU8: {"u8", 1}, DTypeI16: {"i16", 2}, DTypeU16: {"u16", 2},
	DTypeI32: {"i32", 4}, DTypeU32: {"u32", 4}, DTypeI64: {"i64", 8}, DTypeU64: {"u64", 8},
	DTypeF32R: {"f32r", 4}, DTypeF8E3: {"f8e3", 1}, DTypeF8E4: {"f8e4", 1}, DTypeF8E5: {"f8e5", 1},
}

// String returns the short name ("f32", "bf16", "f8e4", ...).
func (d DType) String() string {
	if d < numDTypes {
		return dtypeInfo[d].name
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size returns the element size in bytes, 0 for DTypeUnknown.
func (d DType) Size() int {
	if d < numDTypes {
		return dtypeInfo[d].size
	}
	return 0
}

// dtypeTable maps raw nrt_dtype_t codes to DType.
type dtypeTable map[int32]DType

// legacyDTypes is the sequential numbering of SDK <= 2.27 headers
// (nrt_experimental.h before 86a92868).
var legacyDTypes = dtypeTable{
	0: DTypeUnknown, 1: DTypeF32, 2: DTypeF16, 3: DTypeBF16, 4: DTypeI8, 5: DTypeU8, 6: DTypeI16,
	7: DTypeU16, 8: DTypeI32, 9: DTypeU32, 10: DTypeI64, 11: DTypeU64,
}

// sdk228DTypes is the hardware-coded numbering of the SDK 2.28 nrt.h.
var sdk228DTypes = dtypeTable{
	0x0: DTypeUnknown, 0x1: DTypeU64, 0x2: DTypeI8, 0x3: DTypeU8, 0x4: DTypeI16, 0x5: DTypeU16,
	0x6: DTypeBF16, 0x7: DTypeF16, 0x8: DTypeI32, 0x9: DTypeU32, 0xA: DTypeF32, 0xB: DTypeF32R,
	0xC: DTypeI64, 0xD: DTypeF8E3, 0xE: DTypeF8E4, 0xF: DTypeF8E5,
}

// Version is nrt_version_t.
type Version struct {
	Major, Minor, Patch, Maint uint64
	Detail                     string // rt_detail
	Git                        string // git_hash
}

// String returns "major.minor.patch".
func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v >= major.minor.patch.
func (v Version) AtLeast(major, minor, patch uint64) bool {
	if v.Major != major {
		return v.Major > major
	}
	if v.Minor != minor {
		return v.Minor > minor
	}
	return v.Patch >= patch
}

// dtypeTables returns the primary and fallback dtype tables for v: libnrt
// 2.30 (SDK 2.28) and later use the SDK 2.28 codes. An unknown version (no
// nrt_get_version) is treated as new.
func (v Version) dtypeTables() (primary, fallback dtypeTable) {
	if v.Major == 0 || v.AtLeast(2, 30, 0) {
		return sdk228DTypes, legacyDTypes
	}
	return legacyDTypes, sdk228DTypes
}

// cVersion mirrors nrt_version_t (224 bytes).
type cVersion struct {
	Major, Minor, Patch, Maint uint64
	Detail                     [128]byte
	Git                        [64]byte
}

// TensorInfo describes one model input or output (nrt_tensor_info_t).
type TensorInfo struct {
	Name  string
	Usage Usage
	Size  int // bytes
	DType DType
	// RawDType is the nrt_dtype_t code libnrt reported.
	RawDType int32
	Shape    []uint32
	// DTypeChecked reports that Size == prod(Shape) * DType.Size(), which
	// confirms the dtype table used to decode RawDType.
	DTypeChecked bool
}

// Elems returns the number of elements, prod(Shape).
func (ti TensorInfo) Elems() int {
	n := 1
	for _, d := range ti.Shape {
		n *= int(d)
	}
	return n
}

// Layout of nrt_tensor_info_t and nrt_tensor_info_array_t (LP64), checked by
// the tests against the C compiler's offsetof.
const (
	infoSize      = 296
	infoNameOff   = 0
	infoNameMax   = 256
	infoUsageOff  = 256
	infoSizeOff   = 264
	infoDTypeOff  = 272
	infoShapeOff  = 280
	infoNDimOff   = 288
	infoArrayHead = 8 // offsetof(nrt_tensor_info_array_t, tensor_array)

	maxInfoCount = 65536
	maxNDim      = 64
)

// readTensorInfo copies an nrt_tensor_info_array_t out of C memory. It keeps
// no pointer into arr.
func readTensorInfo(arr unsafe.Pointer, v Version) ([]TensorInfo, bool, error) {
	if arr == nil {
		return nil, false, fmt.Errorf("nrt: tensor info: nil array")
	}
	count := *(*uint64)(arr)
	if count > maxInfoCount {
		return nil, false, fmt.Errorf("nrt: tensor info: %d tensors exceeds %d", count, maxInfoCount)
	}
	raw := make([]TensorInfo, count)
	for i := range raw {
		base := unsafe.Add(arr, infoArrayHead+i*infoSize)
		nameBytes := unsafe.Slice((*byte)(unsafe.Add(base, infoNameOff)), infoNameMax)
		n := 0
		for n < infoNameMax && nameBytes[n] != 0 {
			n++
		}
		if n == infoNameMax {
			return nil, false, fmt.Errorf("nrt: tensor info %d: name not NUL-terminated", i)
		}
		ti := TensorInfo{
			Name:     string(nameBytes[:n]),
			Usage:    Usage(*(*int32)(unsafe.Add(base, infoUsageOff))),
			RawDType: *(*int32)(unsafe.Add(base, infoDTypeOff)),
		}
		if ti.Usage != UsageInput && ti.Usage != UsageOutput {
			return nil, false, fmt.Errorf("nrt: tensor info %q: bad usage %d", ti.Name, int32(ti.Usage))
		}
		size := *(*uint64)(unsafe.Add(base, infoSizeOff))
		if size > 1<<62 {
			return nil, false, fmt.Errorf("nrt: tensor info %q: bad size %d", ti.Name, size)
		}
		ti.Size = int(size)
		ndim := *(*uint32)(unsafe.Add(base, infoNDimOff))
		shape := *(*unsafe.Pointer)(unsafe.Add(base, infoShapeOff))
		if ndim > maxNDim {
			return nil, false, fmt.Errorf("nrt: tensor info %q: ndim %d exceeds %d", ti.Name, ndim, maxNDim)
		}
		if ndim > 0 {
			if shape == nil {
				return nil, false, fmt.Errorf("nrt: tensor info %q: nil shape with ndim %d", ti.Name, ndim)
			}
			ti.Shape = append([]uint32(nil), unsafe.Slice((*uint32)(shape), ndim)...)
		} else {
			ti.Shape = []uint32{}
		}
		raw[i] = ti
	}
	fellBack := applyDTypes(raw, v)
	return raw, fellBack, nil
}

// applyDTypes decodes RawDType with the version's primary table, and falls
// back to the other table when that one makes every size agree with its
// shape and the primary does not. It reports whether it fell back.
func applyDTypes(infos []TensorInfo, v Version) bool {
	primary, fallback := v.dtypeTables()
	if decode(infos, primary) || !consistentWith(infos, fallback) {
		return false
	}
	decode(infos, fallback)
	return true
}

// decode sets DType and DTypeChecked from t; it reports whether every
// tensor with a known dtype checked out.
func decode(infos []TensorInfo, t dtypeTable) bool {
	all := true
	for i := range infos {
		ti := &infos[i]
		ti.DType = t[ti.RawDType]
		ti.DTypeChecked = ti.DType != DTypeUnknown && ti.Size == ti.Elems()*ti.DType.Size()
		if ti.RawDType != 0 && !ti.DTypeChecked {
			all = false
		}
	}
	return all
}

func consistentWith(infos []TensorInfo, t dtypeTable) bool {
	for _, ti := range infos {
		if ti.RawDType == 0 {
			continue
		}
		d := t[ti.RawDType]
		if d == DTypeUnknown || ti.Size != ti.Elems()*d.Size() {
			return false
		}
	}
	return true
}
