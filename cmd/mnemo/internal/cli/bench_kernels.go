package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mnemo-ai/mnemo/bench"
	"github.com/mnemo-ai/mnemo/bench/roofline"
	"github.com/mnemo-ai/mnemo/kernels"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

func init() {
	register(&Command{
		Name:    "bench kernels",
		Args:    "[--quick] [--roofline-only] [--json FILE] [--plot FILE.png] [--threads N] [--formats f1,f2] [--impls i1,i2] [--m 1,8] [--shapes NxK,...]",
		Summary: "benchmark every matmul kernel × weight format × shape against this machine's roofline",
		Run:     runBenchKernels,
	})
}

type benchKernelsFlags struct {
	jsonFile, plotFile                 string
	threads, runs, readMiB             int
	quick, rooflineOnly                bool
	formats, impls, ms, shapes, precis string
	minTime                            time.Duration
}

func runBenchKernels(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "bench kernels")
	var f benchKernelsFlags
	fs.StringVar(&f.jsonFile, "json", "", "write machine-readable results to `FILE`")
	fs.StringVar(&f.plotFile, "plot", "", "write a roofline plot (PNG) to `FILE`")
	fs.IntVar(&f.threads, "threads", 0, "threads for kernels and multi-thread roofs (0: GOMAXPROCS)")
	fs.BoolVar(&f.quick, "quick", false, "a few small cases with short timings")
	fs.BoolVar(&f.rooflineOnly, "roofline-only", false, "measure and print the machine's roofs only")
	fs.StringVar(&f.formats, "formats", "", "comma-separated weight formats (default: all with kernels)")
	fs.StringVar(&f.impls, "impls", "", "comma-separated implementation tiers: generic, avx2, avx512 (default: all this CPU runs)")
	fs.StringVar(&f.precis, "precision", "fast", "comma-separated activation precisions: fast, exact")
	fs.StringVar(&f.ms, "m", "", "comma-separated batch sizes M (default 1,8,64,256; quick 1,8)")
	fs.StringVar(&f.shapes, "shapes", "", "comma-separated NxK weight shapes (default: 7B/8B and 1B projections; quick 2048x2048)")
	fs.DurationVar(&f.minTime, "min-time", 0, "minimum duration of one timed run (default 100ms; quick 10ms)")
	fs.IntVar(&f.runs, "runs", 0, "timed runs per case, the median counts (default 5; quick 3)")
	fs.IntVar(&f.readMiB, "read-mib", 256, "size of the streaming-read array of the roofline in MiB (keep it above the last-level cache)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	opts, err := f.options()
	if err != nil {
		return err
	}
	if _, err := kernels.Select(); err != nil {
		return err
	}

	bar := newProgress(env.Stderr)
	opts.Progress = bar.update
	rep, err := bench.Run(ctx, opts)
	bar.finish()
	if errors.Is(err, bench.ErrBadOptions) {
		return usagef("%v", err)
	}
	if err != nil {
		return err
	}
	if err := bench.WriteTable(env.Stdout, rep); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if f.jsonFile != "" {
		if err := writeFile(f.jsonFile, func(w io.Writer) error { return bench.WriteJSON(w, rep) }); err != nil {
			return err
		}
	}
	if f.plotFile != "" {
		if err := writeFile(f.plotFile, func(w io.Writer) error { return bench.WritePlot(w, rep) }); err != nil {
			return err
		}
	}
	return nil
}

// options turns the flags into bench.Options, reporting bad values as
// usage errors.
func (f *benchKernelsFlags) options() (bench.Options, error) {
	o := bench.Options{Threads: f.threads, Quick: f.quick, RooflineOnly: f.rooflineOnly, MinTime: f.minTime, Runs: f.runs}
	if f.threads < 0 {
		return o, usagef("--threads must be >= 0, got %d", f.threads)
	}
	if f.runs < 0 {
		return o, usagef("--runs must be >= 0, got %d", f.runs)
	}
	if f.minTime < 0 {
		return o, usagef("--min-time must be >= 0, got %v", f.minTime)
	}
	if f.readMiB <= 0 {
		return o, usagef("--read-mib must be > 0, got %d", f.readMiB)
	}
	// The timing flags apply to the roofline probes too.
	o.Roofline = roofline.Options{ReadBytes: f.readMiB << 20, MinTime: f.minTime, Runs: f.runs}
	for _, s := range splitList(f.formats) {
		t, err := format.ParseType(s)
		if err != nil {
			return o, usagef("--formats: %v", err)
		}
		o.Formats = append(o.Formats, t)
	}
	o.Impls = splitList(f.impls)
	for _, s := range splitList(f.precis) {
		switch s {
		case "fast":
			o.Precisions = append(o.Precisions, kernels.Fast)
		case "exact":
			o.Precisions = append(o.Precisions, kernels.Exact)
		default:
			return o, usagef("--precision: unknown precision %q (want fast or exact)", s)
		}
	}
	for _, s := range splitList(f.ms) {
		m, err := strconv.Atoi(s)
		if err != nil || m <= 0 {
			return o, usagef("--m: bad batch size %q", s)
		}
		o.Ms = append(o.Ms, m)
	}
	for _, s := range splitList(f.shapes) {
		sh, err := bench.ParseShape(s)
		if err != nil {
			return o, usagef("--shapes: %v", err)
		}
		o.Shapes = append(o.Shapes, sh)
	}
	return o, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// writeFile creates name and writes it with write, reporting the first of
// the write and close errors.
func writeFile(name string, write func(io.Writer) error) (err error) {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
