package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/neuron" // the neuron backend
	"github.com/mnemo-ai/mnemo/kernels"
)

func init() {
	register(&Command{
		Name:    "backends",
		Args:    "[flags]",
		Summary: "list the compute backends, what each supports, and why an unavailable one is unavailable",
		Run:     runBackends,
	})
}

// describer is implemented by backends that can say what they run on
// (the neuron backend: library, version, cores, NEFF manifest).
type describer interface{ Describe() []string }

// cpuInfo is implemented by the cpu backend.
type cpuInfo interface {
	Impl() *kernels.Impl
	Threads() int
}

func runBackends(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "backends")
	dir := fs.String("neff-dir", env.Getenv(neuron.EnvNEFFDir), "NEFF directory of the neuron backend (default $"+neuron.EnvNEFFDir+")")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	for _, name := range backend.Names() {
		b, err := backend.Open(name, backend.Options{Dir: *dir})
		if err != nil {
			reason := strings.TrimPrefix(err.Error(), "open backend "+name+": ")
			fmt.Fprintf(env.Stdout, "%s: unavailable: %s\n", name, reason)
			continue
		}
		fmt.Fprintf(env.Stdout, "%s: available\n", name)
		var lines []string
		switch d := b.(type) {
		case describer:
			lines = d.Describe()
		case cpuInfo:
			lines = []string{fmt.Sprintf("kernels %s, %d threads, every op, weights %v", d.Impl().Name, d.Threads(), kernels.Formats())}
		}
		for _, l := range lines {
			fmt.Fprintf(env.Stdout, "  %s\n", l)
		}
		if err := b.Close(); err != nil {
			return fmt.Errorf("close %s: %w", name, err)
		}
	}
	return nil
}

// openBackend opens the backend called name; "auto" is the neuron backend
// when it opens (library, cores and NEFF directory all present), else cpu.
func openBackend(name string, opt backend.Options) (backend.Backend, error) {
	if name != "auto" {
		return backend.Open(name, opt)
	}
	if b, err := backend.Open("neuron", opt); err == nil {
		return b, nil
	}
	return backend.Open("cpu", opt)
}
