//go:build linux

package nrt

import (
	"fmt"
	"sync"

	"github.com/ebitengine/purego"
)

// dlLibrary is libnrt opened with dlopen.
type dlLibrary struct {
	handle uintptr
	name   string
	fn     funcs
}

func (d *dlLibrary) table() *funcs { return &d.fn }
func (d *dlLibrary) path() string  { return d.name }
func (d *dlLibrary) close() error {
	if d.handle == 0 {
		return nil
	}
	h := d.handle
	d.handle = 0
	if err := purego.Dlclose(h); err != nil {
		return fmt.Errorf("nrt: dlclose %s: %w", d.name, err)
	}
	return nil
}

// libc holds malloc and free, resolved once per process (never closed).
var libc = sync.OnceValues(func() (*funcs, error) {
	var errs []error
	for _, name := range []string{"libc.so.6", "libc.so"} {
		h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var f funcs
		for _, s := range []struct {
			name string
			fptr any
		}{{"malloc", &f.malloc}, {"free", &f.free}} {
			sym, err := purego.Dlsym(h, s.name)
			if err != nil {
				return nil, fmt.Errorf("nrt: %s: missing symbol %s: %w", name, s.name, err)
			}
			purego.RegisterFunc(s.fptr, sym)
		}
		return &f, nil
	}
	return nil, fmt.Errorf("nrt: cannot load libc: %v", errs)
})

// openPath dlopens one candidate and binds the table. A dlopen failure is
// returned as is (the caller tries the next path); a symbol failure closes
// the library and returns a *SymbolError.
func openPath(path string) (library, error) {
	c, err := libc()
	if err != nil {
		return nil, err
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, err
	}
	d := &dlLibrary{handle: h, name: path}
	d.fn.malloc, d.fn.free = c.malloc, c.free
	// Resolve every symbol before registering any, so a missing required
	// one is an error naming it, never a panic from RegisterLibFunc.
	type bound struct {
		fptr any
		sym  uintptr
	}
	var binds []bound
	for _, s := range d.fn.symbols() {
		var sym uintptr
		for _, name := range s.names {
			if p, err := purego.Dlsym(h, name); err == nil && p != 0 {
				sym = p
				break
			}
		}
		if sym == 0 {
			if s.required {
				_ = purego.Dlclose(h)
				return nil, &SymbolError{Path: path, Symbol: s.names[0]}
			}
			continue
		}
		binds = append(binds, bound{s.fptr, sym})
	}
	for _, b := range binds {
		purego.RegisterFunc(b.fptr, b.sym)
	}
	return d, nil
}
