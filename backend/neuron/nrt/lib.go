package nrt

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"unsafe"
)

// Search path for libnrt when Open gets no explicit path.
const (
	// EnvLibPath names an environment variable holding the library path to
	// try first.
	EnvLibPath = "MNEMO_LIBNRT"
	// DefaultLibPath is where aws-neuronx-runtime-lib installs libnrt.
	DefaultLibPath = "/opt/aws/neuron/lib/libnrt.so.1"
	// LibName is the soname, resolved by the dynamic loader's own search
	// (LD_LIBRARY_PATH, ld.so.cache).
	LibName = "libnrt.so.1"
)

// Errors that do not come from a libnrt status.
var (
	// ErrNotFound: no candidate library could be loaded (see *NotFoundError).
	ErrNotFound = errors.New("nrt: libnrt not found")
	// ErrUnsupportedPlatform: libnrt exists only on Linux.
	ErrUnsupportedPlatform = errors.New("nrt: unsupported platform")
	// ErrUnsupported: the loaded libnrt lacks an optional function.
	ErrUnsupported = errors.New("nrt: not supported by this libnrt")
	// ErrAlreadyInitialized: a Runtime is already live in this process.
	ErrAlreadyInitialized = errors.New("nrt: runtime already initialized in this process")
	// ErrLibClosed: the Lib was closed.
	ErrLibClosed = errors.New("nrt: library closed")
	// ErrInUse: the tensor is referenced by a live tensor set.
	ErrInUse = errors.New("nrt: tensor in use by a tensor set")
	// ErrOutOfRange: an offset or length outside a tensor.
	ErrOutOfRange = errors.New("nrt: range outside tensor")
	// ErrTooLarge: a tensor of 4 GiB or more on libnrt older than 2.30.50,
	// where such sizes overflow.
	ErrTooLarge = errors.New("nrt: tensor too large for this libnrt")
	// ErrFreed: the tensor, set or model was already freed, destroyed or
	// unloaded.
	ErrFreed = errors.New("nrt: handle already released")
	// ErrEnvChanged: a NEURON_* variable applied at Init was changed later.
	ErrEnvChanged = errors.New("nrt: runtime environment changed after init")
)

// SymbolError reports a required function missing from a library.
type SymbolError struct {
	Path   string
	Symbol string
}

// Error implements error.
func (e *SymbolError) Error() string {
	return fmt.Sprintf("nrt: %s: missing symbol %s", e.Path, e.Symbol)
}

// NotFoundError lists every path Open tried and why each failed.
type NotFoundError struct {
	Paths []string
	Errs  []error
}

// Error implements error.
func (e *NotFoundError) Error() string {
	var b strings.Builder
	b.WriteString("nrt: libnrt not found; tried ")
	for i, p := range e.Paths {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%v)", p, e.Errs[i])
	}
	return b.String()
}

// Is matches ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// SearchPaths returns the candidates Open tries when given no path:
// $MNEMO_LIBNRT when set, DefaultLibPath, then LibName.
func SearchPaths() []string {
	var paths []string
	if p := os.Getenv(EnvLibPath); p != "" {
		paths = append(paths, p)
	}
	return append(paths, DefaultLibPath, LibName)
}

// Lib is a loaded libnrt. It is safe for concurrent use.
type Lib struct {
	lib     library
	fn      *funcs
	version Version // zero when nrt_get_version is absent

	mu     sync.Mutex
	rt     *Runtime // the live runtime created by this Lib, if any
	closed bool
}

// Open loads libnrt from libPath, or, when libPath is empty, from the first
// of SearchPaths that loads. Every required symbol is resolved now: a
// missing one gives a *SymbolError naming it. When nothing loads the error
// is a *NotFoundError listing each path tried.
func Open(libPath string) (*Lib, error) {
	paths := []string{libPath}
	if libPath == "" {
		paths = SearchPaths()
	}
	return openFirst(paths)
}

// openFirst opens the first of paths that loads.
func openFirst(paths []string) (*Lib, error) {
	nf := &NotFoundError{}
	for _, p := range paths {
		l, err := openPath(p)
		if errors.Is(err, ErrUnsupportedPlatform) {
			return nil, err
		}
		var se *SymbolError
		if errors.As(err, &se) {
			return nil, err
		}
		if err != nil {
			nf.Paths = append(nf.Paths, p)
			nf.Errs = append(nf.Errs, err)
			continue
		}
		lib, err := newLib(l)
		if err != nil {
			return nil, errors.Join(err, l.close())
		}
		return lib, nil
	}
	return nil, nf
}

// newLib wraps a bound library and reads its version.
func newLib(l library) (*Lib, error) {
	lib := &Lib{lib: l, fn: l.table()}
	if lib.fn.getVersion != nil {
		var cv cVersion
		if err := statusErr("nrt_get_version", lib.fn.getVersion(&cv, sizeofCVersion)); err != nil {
			return nil, fmt.Errorf("nrt: open %s: %w", l.path(), err)
		}
		lib.version = Version{
			Major: cv.Major, Minor: cv.Minor, Patch: cv.Patch, Maint: cv.Maint,
			Detail: cBytes(cv.Detail[:]), Git: cBytes(cv.Git[:]),
		}
	}
	return lib, nil
}

// cBytes returns b up to its first NUL.
func cBytes(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// Path returns the path the library was loaded from.
func (l *Lib) Path() string { return l.lib.path() }

// Version returns the libnrt version read at Open (nrt_get_version), and
// ErrUnsupported when the library does not export it.
func (l *Lib) Version() (Version, error) {
	if l.fn.getVersion == nil {
		return Version{}, fmt.Errorf("nrt_get_version: %w", ErrUnsupported)
	}
	return l.version, nil
}

// Has reports whether the library exports the named optional C function
// (for example "nrt_tensor_allocate_slice").
func (l *Lib) Has(cName string) bool {
	for _, s := range l.fn.symbols() {
		for _, n := range s.names {
			if n == cName {
				return !isNilFunc(s.fptr)
			}
		}
	}
	return false
}

// StatusString describes s with nrt_get_status_as_str when the library
// exports it and knows s, and with the header name otherwise.
func (l *Lib) StatusString(s Status) string {
	if l.fn.statusStr != nil {
		if p := l.fn.statusStr(int32(s)); p != nil {
			return goString(p)
		}
	}
	return s.String()
}

// Close closes the live Runtime, if any, then unloads the library. Further
// calls return nil.
func (l *Lib) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	rt := l.rt
	l.mu.Unlock()
	var err error
	if rt != nil {
		err = rt.Close()
	}
	return errors.Join(err, l.lib.close())
}

// isNilFunc reports whether fptr (a pointer to a func field) is unset.
func isNilFunc(fptr any) bool { return reflect.ValueOf(fptr).Elem().IsNil() }

// sizeofCVersion is sizeof(nrt_version_t).
const sizeofCVersion = unsafe.Sizeof(cVersion{})
