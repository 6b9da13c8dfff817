//go:build linux

package nrttest

import (
	"fmt"
	"strings"

	"github.com/ebitengine/purego"
)

// Fake drives the fake library's control functions (fake_nrt_*). It keeps
// the library loaded for the life of the process, so its state survives the
// code under test opening and closing it.
type Fake struct {
	handle     uintptr
	reset      func()
	inject     func(fn string, status, nth int32) int32
	stats      func(out *[statCount]int64)
	trace      func(buf *byte, n uintptr) uintptr
	layout     func(out *[layoutCount]uintptr)
	setVersion func(major, minor, patch uint64, mode int32)
}

const (
	statCount   = 12
	layoutCount = 11
)

// OpenFake loads the fake at path and binds its controls.
func OpenFake(path string) (*Fake, error) {
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("nrttest: open fake: %w", err)
	}
	f := &Fake{handle: h}
	for _, s := range []struct {
		name string
		fptr any
	}{
		{"fake_nrt_reset", &f.reset},
		{"fake_nrt_inject", &f.inject},
		{"fake_nrt_stats", &f.stats},
		{"fake_nrt_trace", &f.trace},
		{"fake_nrt_layout", &f.layout},
		{"fake_nrt_set_version", &f.setVersion},
	} {
		sym, err := purego.Dlsym(h, s.name)
		if err != nil {
			_ = purego.Dlclose(h)
			return nil, fmt.Errorf("nrttest: fake: missing %s: %w", s.name, err)
		}
		purego.RegisterFunc(s.fptr, sym)
	}
	return f, nil
}

// Reset returns the fake to its freshly loaded state (uninitialised, no
// objects, no injections, default version, zero counters).
func (f *Fake) Reset() { f.reset() }

// Inject makes the nth call (1-based, from now) of the C function fn return
// status; nth 0 fails every call until Reset.
func (f *Fake) Inject(fn string, status int32, nth int) error {
	if f.inject(fn, status, int32(nth)) != 0 {
		return fmt.Errorf("nrttest: inject %s: table full", fn)
	}
	return nil
}

// Stats are the fake's counters.
type Stats struct {
	LiveModels, LiveTensors, LiveSets, LiveInfos int64
	// Misuse counts stale or unknown handles, double frees, and frees of
	// tensors still in a live set.
	Misuse int64
	// Leaks counts objects still live at nrt_close.
	Leaks                int64
	BytesVNC0, BytesVNC1 int64
	// State is 0 uninitialised, 1 initialised, 2 closed.
	State   int64
	Visible int64 // visible cores fixed at nrt_init
	Inits   int64 // successful nrt_init calls
	Execs   int64 // executions that passed validation
}

// Stats reads the counters.
func (f *Fake) Stats() Stats {
	var a [statCount]int64
	f.stats(&a)
	return Stats{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]}
}

// Trace returns the names of the libnrt functions called since Reset, in
// order.
func (f *Fake) Trace() []string {
	n := f.trace(nil, 0)
	buf := make([]byte, n+1)
	f.trace(&buf[0], uintptr(len(buf)))
	s := strings.TrimRight(string(buf[:n]), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Layout is the C compiler's view of the structs crossing the FFI.
type Layout struct {
	InfoSize, InfoName, InfoUsage, InfoSizeField, InfoDType, InfoShape, InfoNDim uintptr
	ArrayFirst                                                                   uintptr
	VersionSize, VersionDetail, VersionGit                                       uintptr
}

// Layout reads sizeof/offsetof values from the fake.
func (f *Fake) Layout() Layout {
	var a [layoutCount]uintptr
	f.layout(&a)
	return Layout{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]}
}

// DType numbering modes for SetVersion.
const (
	DTypesByVersion = 0 // sequential codes below 2.30, SDK 2.28 codes after
	DTypesLegacy    = 1 // always sequential
	DTypesSDK228    = 2 // always SDK 2.28
)

// SetVersion sets the emulated libnrt version and dtype numbering.
func (f *Fake) SetVersion(major, minor, patch uint64, dtypeMode int) {
	f.setVersion(major, minor, patch, int32(dtypeMode))
}
