package nrt

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"testing"
)

// fakes holds the fake libnrt builds shared by the tests (see
// buildFakes); err says why they are unavailable.
var fakes struct {
	err                            error
	dir                            string
	main, noStatus, noExec, legacy string
	ctl, legacyCtl                 fakeControl
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mnemo-fakenrt-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakes.err = buildFakes(dir)
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func bytesF32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func i32Bytes(v ...int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}
