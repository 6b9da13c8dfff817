package nrt

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config is the runtime environment applied with os.Setenv before nrt_init
// (libnrt reads it at init, model-level variables at load). Zero fields
// leave the environment as it is.
type Config struct {
	// VisibleCores is NEURON_RT_VISIBLE_CORES: an index, list or range of
	// contiguous increasing cores ("0", "0-1", "3-5,6"). It wins over
	// NumCores. Core indices in the API are relative to it.
	VisibleCores string
	// NumCores is NEURON_RT_NUM_CORES (0 leaves it unset: all cores).
	NumCores int
	// LogLevel is NEURON_RT_LOG_LEVEL (ERROR, WARNING, INFO, DEBUG, TRACE).
	LogLevel string
	// ExecTimeout is NEURON_RT_EXEC_TIMEOUT, in whole seconds (rounded up).
	ExecTimeout time.Duration
	// LogicalNCConfig is NEURON_LOGICAL_NC_CONFIG (1 or 2); it must match
	// the NEFFs' compile-time -lnc.
	LogicalNCConfig int
	// Env holds further variables to set (for example
	// NEURON_RT_VALIDATE_HASH).
	Env map[string]string
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
}

// envVar is one variable Init set, with what it replaced.
type envVar struct {
	key, value, prev string
	hadPrev          bool
}

// vars lists the variables c sets, in a fixed order.
func (c Config) vars() ([]envVar, error) {
	var vs []envVar
	add := func(k, v string) { vs = append(vs, envVar{key: k, value: v}) }
	if c.VisibleCores != "" {
		add("NEURON_RT_VISIBLE_CORES", c.VisibleCores)
	}
	if c.NumCores < 0 {
		return nil, fmt.Errorf("nrt: config: negative NumCores %d", c.NumCores)
	}
	if c.NumCores > 0 {
		add("NEURON_RT_NUM_CORES", strconv.Itoa(c.NumCores))
	}
	if c.LogLevel != "" {
		add("NEURON_RT_LOG_LEVEL", c.LogLevel)
	}
	if c.ExecTimeout < 0 {
		return nil, fmt.Errorf("nrt: config: negative ExecTimeout %v", c.ExecTimeout)
	}
	if c.ExecTimeout > 0 {
		add("NEURON_RT_EXEC_TIMEOUT", strconv.FormatInt(int64((c.ExecTimeout+time.Second-1)/time.Second), 10))
	}
	switch c.LogicalNCConfig {
	case 0:
	case 1, 2:
		add("NEURON_LOGICAL_NC_CONFIG", strconv.Itoa(c.LogicalNCConfig))
	default:
		return nil, fmt.Errorf("nrt: config: LogicalNCConfig %d is not 1 or 2", c.LogicalNCConfig)
	}
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("nrt: config: empty environment variable name")
		}
		add(k, c.Env[k])
	}
	return vs, nil
}

// process enforces one live Runtime per process.
var process struct {
	mu sync.Mutex
	rt *Runtime
}

// Runtime is the initialised Neuron runtime (nrt_init to nrt_close). There
// is at most one per process. Its methods are safe for concurrent use:
// Load, Unload, Alloc, Free and tensor-set changes serialise on the runtime
// lock; Execute, Read and Write run concurrently.
type Runtime struct {
	lib    *Lib
	fn     *funcs
	logger *slog.Logger
	env    []envVar
	fwStr  *byte // "" in C memory for nrt_init, freed after nrt_close

	mu      sync.RWMutex
	closed  bool
	models  map[*Model]struct{}
	tensors map[*Tensor]struct{}
	sets    map[*TensorSet]struct{}

	fatal atomic.Pointer[StatusError]
}

// Init applies cfg to the environment and initialises the runtime
// (nrt_init with NRT_FRAMEWORK_TYPE_NO_FW). Only one Runtime may be live in
// the process (ErrAlreadyInitialized); after Close a new one may be
// initialised. On failure the environment is restored.
func (l *Lib) Init(cfg Config) (*Runtime, error) {
	vars, err := cfg.vars()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrLibClosed
	}
	process.mu.Lock()
	defer process.mu.Unlock()
	if process.rt != nil {
		return nil, ErrAlreadyInitialized
	}
	for i := range vars {
		v := &vars[i]
		v.prev, v.hadPrev = os.LookupEnv(v.key)
		if err := os.Setenv(v.key, v.value); err != nil {
			restoreEnv(vars[:i])
			return nil, fmt.Errorf("nrt: set %s: %w", v.key, err)
		}
	}
	fw, err := l.fn.cString("")
	if err != nil {
		restoreEnv(vars)
		return nil, err
	}
	const noFramework = 1 // NRT_FRAMEWORK_TYPE_NO_FW
	if err := statusErr("nrt_init", l.fn.init(noFramework, fw, fw)); err != nil {
		l.fn.freeCString(fw)
		restoreEnv(vars)
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	rt := &Runtime{
		lib: l, fn: l.fn, logger: logger, env: vars, fwStr: fw,
		models:  map[*Model]struct{}{},
		tensors: map[*Tensor]struct{}{},
		sets:    map[*TensorSet]struct{}{},
	}
	process.rt = rt
	l.rt = rt
	return rt, nil
}

func restoreEnv(vars []envVar) {
	for i := len(vars) - 1; i >= 0; i-- {
		v := vars[i]
		if v.hadPrev {
			_ = os.Setenv(v.key, v.prev)
		} else {
			_ = os.Unsetenv(v.key)
		}
	}
}

// Env returns the variables Init set, as key=value strings.
func (r *Runtime) Env() []string {
	out := make([]string, len(r.env))
	for i, v := range r.env {
		out[i] = v.key + "=" + v.value
	}
	return out
}

// checkEnv fails when a variable Init set has changed since: libnrt reads
// model-level settings at load, and the runtime's configuration is fixed.
func (r *Runtime) checkEnv() error {
	for _, v := range r.env {
		if got := os.Getenv(v.key); got != v.value {
			return fmt.Errorf("%w: %s=%q, was %q at init", ErrEnvChanged, v.key, got, v.value)
		}
	}
	return nil
}

// Lib returns the library the runtime runs on.
func (r *Runtime) Lib() *Lib { return r.lib }

// Close releases everything still live, in order: tensor sets, tensors,
// models, then nrt_close; it restores the environment Init changed. Every
// handle is inert afterwards. A second Close returns nil.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	var errs []error
	for s := range r.sets {
		s.destroyLocked()
	}
	for t := range r.tensors {
		t.freeLocked()
	}
	for m := range r.models {
		errs = append(errs, m.unloadLocked())
	}
	r.fn.close()
	r.fn.freeCString(r.fwStr)
	r.fwStr = nil
	restoreEnv(r.env)
	r.mu.Unlock()

	process.mu.Lock()
	if process.rt == r {
		process.rt = nil
	}
	process.mu.Unlock()
	r.lib.mu.Lock()
	if r.lib.rt == r {
		r.lib.rt = nil
	}
	r.lib.mu.Unlock()
	return errors.Join(errs...)
}

// rlock takes the shared runtime lock for a call into C that may run
// concurrently with others; it fails with ErrClosed after Close.
func (r *Runtime) rlock() error {
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// lock takes the exclusive runtime lock; it fails with ErrClosed after
// Close.
func (r *Runtime) lock() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// check converts a status and records the first fatal device error.
func (r *Runtime) check(op string, code int32) error {
	err := statusErr(op, code)
	if err != nil && IsFatalDevice(err) {
		r.fatal.CompareAndSwap(nil, err.(*StatusError))
	}
	return err
}

// Err returns the first fatal device error any call saw (IsFatalDevice),
// or nil while the runtime is healthy. After one, stop scheduling work and
// Close.
func (r *Runtime) Err() error {
	if e := r.fatal.Load(); e != nil {
		return e
	}
	return nil
}

// VisibleCores returns the number of NeuronCores visible to this process
// (nrt_get_visible_vnc_count).
func (r *Runtime) VisibleCores() (int, error) {
	return r.count("nrt_get_visible_vnc_count", r.fn.getVisibleVNC)
}

// TotalCores returns the number of NeuronCores on the instance
// (nrt_get_total_vnc_count).
func (r *Runtime) TotalCores() (int, error) {
	return r.count("nrt_get_total_vnc_count", r.fn.getTotalVNC)
}

func (r *Runtime) count(op string, f func(*uint32) int32) (int, error) {
	if f == nil {
		return 0, fmt.Errorf("%s: %w", op, ErrUnsupported)
	}
	if err := r.rlock(); err != nil {
		return 0, err
	}
	defer r.mu.RUnlock()
	var n uint32
	if err := r.check(op, f(&n)); err != nil {
		return 0, err
	}
	return int(n), nil
}
