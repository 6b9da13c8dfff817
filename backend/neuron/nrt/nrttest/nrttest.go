// Package nrttest builds the fake libnrt that lives in
// backend/neuron/testdata/fakenrt and the NEFF stand-ins it loads, for the
// tests of package nrt and of the Neuron backend.
//
// The fake is C, compiled at test time with the system compiler ($CC, else
// cc) into a shared library whose soname is libnrt.so.1. A NEFF stand-in is
// the real 1024-byte NEFF header (magic "FAKENEFF" in neff_build_version)
// followed by a text manifest instead of the tar:
//
//	tensor in|out NAME DTYPE d0,d1,...   (DTYPE f32 f16 bf16 i8 u8 i16 u16
//	                                      i32 u32 i64 u64 f32r f8e3 f8e4 f8e5;
//	                                      "-" as the shape of a scalar)
//	op copy A -> OUT | op add A B -> OUT | op scale A K -> OUT
//	op matmul A B -> OUT                 (OUT[M,N] f32 = A[M,K] @ B[K,N];
//	                                      f8e4 is OCP E4M3FN, decoded exactly)
//	op argmax A -> OUT                   (i32, per row of the last dim)
//	op kv_append X POS -> CACHE          (row POS[0] of output CACHE = X)
//	op nan -> OUT | op sleep_ms N | op fail STATUS
//	op mnemo KIND key=value ...          (one mnemo backend op on tensors
//	                                      named as backend.Signature names
//	                                      them; see fakenrt/mnemo_ops.c and
//	                                      package neuron/neurontest)
package nrttest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNoCompiler: no C compiler to build the fake with.
var ErrNoCompiler = errors.New("nrttest: no C compiler ($CC or cc) found")

// SourceDir returns backend/neuron/testdata/fakenrt, found by walking up
// from the working directory to the directory holding go.mod.
func SourceDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("nrttest: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			src := filepath.Join(dir, "backend", "neuron", "testdata", "fakenrt")
			if _, err := os.Stat(filepath.Join(src, "fakenrt.c")); err != nil {
				return "", fmt.Errorf("nrttest: fake sources: %w", err)
			}
			return src, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("nrttest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Build compiles the fake into dir/name with extra preprocessor defines
// (for example "FAKE_NO_STATUS_STR") and returns the library path. It
// returns ErrNoCompiler when there is no C compiler.
func Build(dir, name string, defines ...string) (string, error) {
	src, err := SourceDir()
	if err != nil {
		return "", err
	}
	cc := strings.Fields(os.Getenv("CC"))
	if len(cc) == 0 {
		cc = []string{"cc"}
	}
	if _, err := exec.LookPath(cc[0]); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoCompiler, err)
	}
	out := filepath.Join(dir, name)
	args := append([]string{}, cc[1:]...)
	args = append(args, "-shared", "-fPIC", "-O1", "-ffp-contract=off", "-Wall",
		"-Wl,-Bsymbolic", "-Wl,-soname,libnrt.so.1", "-o", out)
	for _, d := range defines {
		args = append(args, "-D"+d)
	}
	args = append(args, filepath.Join(src, "fakenrt.c"), "-lpthread", "-lm")
	cmd := exec.Command(cc[0], args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("nrttest: %s %s: %w\n%s", cc[0], strings.Join(args, " "), err, b)
	}
	return out, nil
}

// Tensor declares one model input or output of a NEFF stand-in.
type Tensor struct {
	Out   bool // output, else input
	Name  string
	DType string // manifest dtype name ("f32", "i32", "f8e4", ...)
	Shape []uint32
}

// NEFF describes a NEFF stand-in.
type NEFF struct {
	Name         string
	LNC          uint32 // lnc_size; 0 means 2, the fake's default
	VersionMajor uint64 // neff_version_major; 0 means 2 (the fake rejects > 2)
	Magic        string // neff_build_version; "" means "FAKENEFF"
	Tensors      []Tensor
	Ops          []string // manifest op lines without the leading "op "
}

// Header field offsets of the 1024-byte NEFF header.
const (
	HeaderSize       = 1024
	offHeaderSize    = 8
	offDataSize      = 16
	offVersionMajor  = 24
	offVersionMinor  = 32
	offBuildVersion  = 40
	offName          = 220
	offRequestedTPBs = 476
	offLNC           = 552
)

// Manifest returns the text payload.
func (n NEFF) Manifest() string {
	var b strings.Builder
	for _, t := range n.Tensors {
		dir := "in"
		if t.Out {
			dir = "out"
		}
		dims := "-"
		if len(t.Shape) > 0 {
			s := make([]string, len(t.Shape))
			for i, d := range t.Shape {
				s[i] = strconv.FormatUint(uint64(d), 10)
			}
			dims = strings.Join(s, ",")
		}
		fmt.Fprintf(&b, "tensor %s %s %s %s\n", dir, t.Name, t.DType, dims)
	}
	for _, op := range n.Ops {
		fmt.Fprintf(&b, "op %s\n", op)
	}
	return b.String()
}

// Bytes returns the NEFF: header then manifest.
func (n NEFF) Bytes() []byte {
	payload := n.Manifest()
	b := make([]byte, HeaderSize+len(payload))
	le := binary.LittleEndian
	le.PutUint64(b[0:], 1) // pkg_version
	le.PutUint64(b[offHeaderSize:], HeaderSize)
	le.PutUint64(b[offDataSize:], uint64(len(payload)))
	major := n.VersionMajor
	if major == 0 {
		major = 2
	}
	le.PutUint64(b[offVersionMajor:], major)
	le.PutUint64(b[offVersionMinor:], 0)
	magic := n.Magic
	if magic == "" {
		magic = "FAKENEFF"
	}
	copy(b[offBuildVersion:offBuildVersion+128], magic)
	copy(b[offName:offName+255], n.Name)
	le.PutUint32(b[offRequestedTPBs:], 1)
	lnc := n.LNC
	if lnc == 0 {
		lnc = 2
	}
	le.PutUint32(b[offLNC:], lnc)
	copy(b[HeaderSize:], payload)
	return b
}
