// Package neuron is the AWS Trainium backend: buffers are Neuron device
// tensors and programs are NEFFs run by the Neuron runtime (libnrt, through
// package nrt).
//
// Programs are compiled ahead of time, one NEFF per (op, dtype, shape
// bucket), into a NEFF directory (backend.Options.Dir, else
// $MNEMO_NEFF_DIR) whose manifest.json maps each backend.Spec to a NEFF file
// and to the names of its input and output tensors (see Manifest). A Spec
// the manifest does not list is unsupported, and Bucket rounds step sizes
// up to the manifest's buckets so the engine asks for the programs that
// exist.
//
// Buffers are allocated once on the device and written from the host in
// the backend's host encoding (weight matrices in their format's row
// layout, see backend.Weights): the NEFFs take the same bytes. Run binds
// the caller's buffers to the NEFF's named tensors and executes it; a
// buffer updated in place (OpRoPE's x, OpKVWrite's caches) is bound to
// both the input "X.must_alias_input" and the output "X", so KV caches
// stay on the device across steps.
//
// A fatal device error (nrt.IsFatalDevice) marks the backend unhealthy:
// every later call fails at once with ErrUnhealthy. Close reports buffers
// and programs still open.
//
// The package is tested against the fake libnrt in testdata/fakenrt, whose
// NEFF stand-ins compute every backend op on the host (see neurontest).
package neuron

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/neuron/nrt"
)

func init() {
	backend.Register("neuron", func(opt backend.Options) (backend.Backend, error) { return Open(opt) })
}

// EnvNEFFDir names the environment variable holding the default NEFF
// directory.
const EnvNEFFDir = "MNEMO_NEFF_DIR"

// MinVersion is the oldest libnrt the backend accepts (the NEFF v2
// runtime; nothing older has been considered).
var MinVersion = nrt.Version{Major: 2}

// Errors of the backend.
var (
	// ErrUnhealthy: an earlier call hit a fatal device error; the backend
	// must be closed (and the process restarted or the device reset).
	ErrUnhealthy = errors.New("neuron: backend unhealthy after a fatal device error")
	// ErrNoNEFFDir: neither Options.Dir nor $MNEMO_NEFF_DIR is set.
	ErrNoNEFFDir = errors.New("neuron: no NEFF directory (set --neff-dir or $" + EnvNEFFDir + ")")
	// ErrNoCores: libnrt initialised but reports no visible NeuronCore.
	ErrNoCores = errors.New("neuron: no NeuronCores visible")
	// ErrVersion: the libnrt found is older than MinVersion.
	ErrVersion = errors.New("neuron: libnrt too old")
)

// Backend is the Neuron backend. It is safe for concurrent use.
type Backend struct {
	lib   *nrt.Lib
	rt    *nrt.Runtime
	dir   string
	man   *Manifest
	index map[backend.Spec]*Entry
	cores int

	closed atomic.Bool
	leaks  backend.Leaks // open buffers and programs
}

var (
	_ backend.Backend  = (*Backend)(nil)
	_ backend.Bucketer = (*Backend)(nil)
)

// Open reads the NEFF directory's manifest, loads libnrt (nrt.Open's
// search: $MNEMO_LIBNRT, /opt/aws/neuron/lib/libnrt.so.1, libnrt.so.1) and
// initialises the runtime. Only one backend can be open per process.
func Open(opt backend.Options) (*Backend, error) {
	dir := opt.Dir
	if dir == "" {
		dir = os.Getenv(EnvNEFFDir)
	}
	lib, err := nrt.Open("")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Backend, error) { return nil, errors.Join(err, lib.Close()) }
	if v, verr := lib.Version(); verr == nil && !v.AtLeast(MinVersion.Major, MinVersion.Minor, MinVersion.Patch) {
		return fail(fmt.Errorf("%w: %s is %s, need %s", ErrVersion, lib.Path(), v, MinVersion))
	}
	if dir == "" {
		return fail(ErrNoNEFFDir)
	}
	man, err := ReadManifest(dir)
	if err != nil {
		return fail(err)
	}
	index, _ := man.index()
	rt, err := lib.Init(nrt.Config{})
	if err != nil {
		return fail(fmt.Errorf("neuron: init: %w", err))
	}
	cores, err := rt.VisibleCores()
	if err == nil && cores == 0 {
		err = ErrNoCores
	}
	if err != nil {
		return fail(errors.Join(err, rt.Close()))
	}
	return &Backend{lib: lib, rt: rt, dir: dir, man: man, index: index, cores: cores}, nil
}

// Name returns "neuron".
func (b *Backend) Name() string { return "neuron" }

// Manifest returns the NEFF directory's manifest (do not modify it).
func (b *Backend) Manifest() *Manifest { return b.man }

// Describe says what the backend runs on: the library, its version, the
// visible cores, the NEFF directory and the programs it holds.
func (b *Backend) Describe() []string {
	v := "unknown version"
	if ver, err := b.lib.Version(); err == nil {
		v = "libnrt " + ver.String()
	}
	target := b.man.Target
	if target == "" {
		target = "unspecified target"
	}
	lines := []string{
		fmt.Sprintf("%s (%s), %d NeuronCores visible", b.lib.Path(), v, b.cores),
		fmt.Sprintf("NEFF directory %s (%s): %d programs, buckets %v", b.dir, target, len(b.man.Programs), b.man.Buckets),
	}
	return append(lines, b.man.Summary()...)
}

// Bucket rounds n up to the manifest's buckets.
func (b *Backend) Bucket(n int) int { return b.man.Bucket(n) }

// Err returns nil while the backend is healthy, else an error wrapping
// ErrUnhealthy and the fatal device error.
func (b *Backend) Err() error {
	if err := b.rt.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnhealthy, err)
	}
	return nil
}

// usable returns ErrClosed after Close and the unhealthy error after a
// fatal device error.
func (b *Backend) usable() error {
	if b.closed.Load() {
		return backend.ErrClosed
	}
	return b.Err()
}

// Close closes the runtime and the library. Buffers and programs still
// open are released with it and reported as an error.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	return errors.Join(b.leaks.Drain("neuron"), b.rt.Close(), b.lib.Close())
}

// Supports reports whether the manifest has a program for spec.
func (b *Backend) Supports(spec backend.Spec) error {
	if _, _, err := backend.Signature(spec); err != nil {
		return err
	}
	if spec.Parts != ([backend.MaxParts]int{}) || spec.GLU {
		return fmt.Errorf("neuron: %w: %s: manifests hold no split or GLU matmuls", backend.ErrUnsupported, spec)
	}
	e, ok := b.index[spec]
	if !ok {
		return fmt.Errorf("neuron: %w: no NEFF for %s in %s", backend.ErrUnsupported, spec, b.dir)
	}
	if e.WeightLayout != "" {
		return fmt.Errorf("neuron: %w: %s: %s takes weights in layout %q, which this backend does not repack into",
			backend.ErrUnsupported, spec, e.NEFF, e.WeightLayout)
	}
	return nil
}
