package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/mnemo-ai/mnemo/backend"
	_ "github.com/mnemo-ai/mnemo/backend/cpu" // the cpu backend
	"github.com/mnemo-ai/mnemo/engine"
	_ "github.com/mnemo-ai/mnemo/engine/arch/all" // every architecture
	"github.com/mnemo-ai/mnemo/engine/model"
)

// modelFlags are the flags of every command that runs a model.
type modelFlags struct {
	backend string
	kernels string
	threads int
	weights string
	kv      string
	context int
	batch   int
	verbose bool
	// storedKV, if set, returns the KV type of the stored sessions the
	// command resumes ("" for none); open asks it when --kv is not given.
	storedKV func(src model.Source) string
}

// defaultKV is the KV cache type when --kv is not given and no stored
// session has one: bf16 halves the cache's memory, snapshot and attention
// traffic against f32 for a rounding of keys and values to 8 significant
// bits (llama.cpp's default, f16, keeps 11).
const defaultKV = "bf16"

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.backend, "backend", "cpu", "compute backend: auto (neuron if it opens, else cpu) or one of "+fmt.Sprint(backend.Names()))
	fs.StringVar(&f.kernels, "kernels", "", "CPU kernel tier: generic, avx2 or avx512 (default: best available, or $MNEMO_KERNELS)")
	fs.IntVar(&f.threads, "threads", 0, "CPU threads (0: all)")
	fs.StringVar(&f.weights, "weights", "auto", "weight format: auto (keep the file's where a kernel exists), f32, bf16, f16, fp8, mxfp8, mxfp4, nvfp4, q8_0, q4_0")
	fs.StringVar(&f.kv, "kv", "", "KV cache element type: f32, bf16 or fp8 (E4M3, no scale) (default "+defaultKV+", or the type of the stored sessions resumed)")
	fs.IntVar(&f.context, "ctx", 0, "context length per sequence (0: the model's, at most 4096)")
	fs.IntVar(&f.batch, "batch", 512, "most tokens in one forward step")
	fs.BoolVar(&f.verbose, "v", false, "log loading details")
}

// loaded is an open model with its backend and source.
type loaded struct {
	src   model.Source
	be    backend.Backend
	model engine.Model
	bytes int64 // weight bytes in the backend
}

func (l *loaded) Close() error {
	var errs []error
	if l.model != nil {
		errs = append(errs, l.model.Close())
	}
	if l.be != nil {
		errs = append(errs, l.be.Close())
	}
	if l.src != nil {
		errs = append(errs, l.src.Close())
	}
	return errors.Join(errs...)
}

// kvDType is the backend type of a --kv value.
func kvDType(kv string) (backend.DType, error) {
	switch kv {
	case "f32":
		return backend.F32, nil
	case "bf16":
		return backend.BF16, nil
	case "fp8":
		return backend.F8E4M3, nil
	}
	return 0, usagef("--kv %q: want f32, bf16 or fp8", kv)
}

// checkKV refuses a --kv value given that kvDType does not know ("" is
// left to open).
func (f *modelFlags) checkKV() error {
	if f.kv == "" {
		return nil
	}
	_, err := kvDType(f.kv)
	return err
}

type weightByter interface{ WeightBytes() int64 }

// open loads path with the flags' settings. Progress goes to stderr.
// engineOptions is engine.Options, named for the extra hook of open.
type engineOptions = engine.Options

func (f *modelFlags) open(env Env, path string, extra func(*engineOptions)) (*loaded, error) {
	if err := f.checkKV(); err != nil {
		return nil, err
	}
	if f.threads < 0 || f.batch <= 0 || f.context < 0 {
		return nil, usagef("--threads, --ctx and --batch must not be negative")
	}
	l := &loaded{}
	var err error
	if l.src, err = model.Open(path); err != nil {
		return nil, err
	}
	if f.kv == "" && f.storedKV != nil {
		f.kv = f.storedKV(l.src)
	}
	if f.kv == "" {
		f.kv = defaultKV
	}
	kv, err := kvDType(f.kv)
	if err != nil { // a stored session's type this build does not know
		l.Close()
		return nil, err
	}
	if l.be, err = openBackend(f.backend, backend.Options{Threads: f.threads, Kernels: f.kernels}); err != nil {
		l.Close()
		return nil, err
	}
	logOut := io.Discard
	if f.verbose {
		logOut = env.Stderr
	}
	opt := engine.Options{
		Weights: f.weights, KV: kv, ContextLength: f.context, MaxBatchTokens: f.batch,
		Logger: slog.New(slog.NewTextHandler(logOut, nil)),
	}
	bar := newProgress(env.Stderr)
	opt.Progress = func(done, total int64) { bar.update(int(done>>20), int(total>>20), "loading (MiB)") }
	if extra != nil {
		extra(&opt)
	}
	defer bar.finish()
	if l.model, err = engine.New(l.src, l.be, opt); err != nil {
		l.Close()
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	// Loading made transient copies of the weights (file encoding,
	// requantized rows): hand that memory back before serving.
	debug.FreeOSMemory()
	if wb, ok := l.model.(weightByter); ok {
		l.bytes = wb.WeightBytes()
	}
	return l, nil
}
