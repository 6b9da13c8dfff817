// Package bench is mnemo's benchmark harness. Run measures every matmul
// implementation (package kernels) on every weight format and shape against
// this machine's own limits (package bench/roofline): each case reports its
// time, the GB/s of weight bytes it streams, its GFLOP/s (or GOP/s for the
// int8 paths) and the fraction of the matching roof. WriteTable, WriteJSON
// and WritePlot render a Report.
//
// The roof of a case is the streaming read bandwidth for M = 1 (a GEMV is
// bound by its weight bytes) and, for M > 1, the compute peak of the
// instruction path the kernel runs (Matrix.Path): fp32 FMA (zmm for the
// avx512 tier, ymm for avx2), bf16 dot (VDPBF16PS), int8 dot (VPDPBUSD) or
// int8 without VNNI (VPMADDUBSW+VPMADDWD). Generic Go kernels have no
// measured compute roof; their M > 1 fraction is 0.
//
// Weights are cycled through enough packed copies to exceed four times the
// last-level cache, so every call streams its weights from memory as a decode
// step of a real model does.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/cpuid/v2"

	"github.com/mnemo-ai/mnemo/bench/roofline"
	"github.com/mnemo-ai/mnemo/kernels"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

// SchemaVersion is the version of the Report JSON schema. It changes when a
// field is renamed or removed, or its meaning changes.
const SchemaVersion = 1

// Shape is a weight matrix shape: N output rows by K inputs.
type Shape struct {
	N int `json:"n"`
	K int `json:"k"`
}

func (s Shape) String() string { return fmt.Sprintf("%dx%d", s.N, s.K) }

// ErrBadOptions reports invalid Options or a bad option string.
var ErrBadOptions = errors.New("bench: bad options")

// ParseShape parses "NxK" (for example "4096x4096").
func ParseShape(s string) (Shape, error) {
	a, b, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	n, err1 := strconv.Atoi(a)
	k, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n <= 0 || k <= 0 {
		return Shape{}, fmt.Errorf("%w: shape %q is not NxK", ErrBadOptions, s)
	}
	return Shape{N: n, K: k}, nil
}

// DefaultShapes are the N×K shapes of Llama-family projections at 7B/8B
// (4096×4096, 11008×4096, 14336×4096) and 1B (2048×2048, 5632×2048) sizes.
func DefaultShapes() []Shape {
	return []Shape{{4096, 4096}, {11008, 4096}, {14336, 4096}, {2048, 2048}, {5632, 2048}}
}

// DefaultMs are the default batch sizes: decode (1), batched decode (8) and
// prefill chunks (64, 256).
func DefaultMs() []int { return []int{1, 8, 64, 256} }

// QuickShapes and QuickMs are the reduced set of quick mode.
func QuickShapes() []Shape { return []Shape{{2048, 2048}} }

// QuickMs are the batch sizes of quick mode.
func QuickMs() []int { return []int{1, 8} }

// Options configure Run. The zero value benchmarks every format and impl on
// DefaultShapes × DefaultMs with GOMAXPROCS threads.
type Options struct {
	// Threads is the thread count for kernels and the multi-thread roofs; 0
	// means GOMAXPROCS (and it is capped at GOMAXPROCS).
	Threads int
	// Formats restricts the weight formats (nil: every format with kernels).
	Formats []format.Type
	// Impls restricts the implementation tiers by name (nil: all this CPU
	// can run).
	Impls []string
	// Precisions lists the activation precisions (nil: kernels.Fast).
	Precisions []kernels.Precision
	// Shapes and Ms override the shape and batch-size lists (nil: the
	// defaults, or the quick ones in Quick mode).
	Shapes []Shape
	Ms     []int
	// Quick selects QuickShapes, QuickMs and short timings.
	Quick bool
	// RooflineOnly measures the roofline and no kernels.
	RooflineOnly bool
	// MinTime is the minimum duration of one timed run of a case (0: 100
	// ms, 10 ms in Quick mode).
	MinTime time.Duration
	// Runs is the number of timed runs per case; the median counts (0: 5,
	// 3 in Quick mode).
	Runs int
	// Limits, if set, are used instead of measuring the roofline.
	Limits *roofline.Limits
	// Roofline configures the roofline measurement (Threads is taken from
	// Options.Threads; zero timings get Quick-aware defaults).
	Roofline roofline.Options
	// Seed seeds the random weights and activations.
	Seed uint64
	// Progress, if set, is called before each step with the steps done,
	// the total and a label.
	Progress func(done, total int, label string)
}

// Machine describes the computer a Report was measured on.
type Machine struct {
	Brand      string   `json:"brand"`
	Vendor     string   `json:"vendor"`
	Family     int      `json:"family"`
	Model      int      `json:"model"`
	Features   []string `json:"features"`
	Cores      int      `json:"physical_cores"`
	Threads    int      `json:"logical_cores"`
	GOMAXPROCS int      `json:"gomaxprocs"`
	L2Bytes    int      `json:"l2_bytes"`
	L3Bytes    int      `json:"l3_bytes"`
	GOOS       string   `json:"goos"`
	GOARCH     string   `json:"goarch"`
	GoVersion  string   `json:"go_version"`
}

// ThisMachine returns the Machine Run is running on, from cpuid.
func ThisMachine() Machine {
	c := cpuid.CPU
	return Machine{
		Brand: strings.TrimSpace(c.BrandName), Vendor: c.VendorString,
		Family: c.Family, Model: c.Model, Features: c.FeatureSet(),
		Cores: c.PhysicalCores, Threads: c.LogicalCores, GOMAXPROCS: runtime.GOMAXPROCS(0),
		L2Bytes: c.Cache.L2, L3Bytes: c.Cache.L3,
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(),
	}
}

// Result is one benchmark case.
type Result struct {
	// Impl is the requested implementation tier; Tier the one that ran
	// (lower when the format has no kernel at Impl's tier).
	Impl      string `json:"impl"`
	Tier      string `json:"tier"`
	Format    string `json:"format"`
	Precision string `json:"precision"`
	// Path is the arithmetic the kernel runs (kernels.Path).
	Path string `json:"path"`
	N    int    `json:"n"`
	K    int    `json:"k"`
	M    int    `json:"m"`
	// WeightBytes is the packed weight size streamed per call.
	WeightBytes int `json:"weight_bytes"`
	// Seconds is the median time of one call.
	Seconds float64 `json:"seconds"`
	// GBs is WeightBytes per second, in GB/s.
	GBs float64 `json:"gbs"`
	// Gops is 2·M·N·K per second, in G (FLOP or OP, see Unit) per second.
	Gops float64 `json:"gops"`
	// Unit is "GFLOP/s" for float paths, "GOP/s" for integer ones.
	Unit string `json:"unit"`
	// Intensity is 2·M·N·K / WeightBytes (FLOP per weight byte).
	Intensity float64 `json:"intensity"`
	// Roof is the roofline probe this case is compared with (empty: none),
	// RoofValue its value (GB/s for "read", else Unit) and Fraction the
	// case's GBs or Gops over it.
	Roof      string  `json:"roof"`
	RoofValue float64 `json:"roof_value"`
	Fraction  float64 `json:"fraction"`
	// Runs timed runs of Iters calls each went into the median.
	Runs  int `json:"runs"`
	Iters int `json:"iters"`
}

// Report is the outcome of Run.
type Report struct {
	Version int             `json:"version"`
	Time    time.Time       `json:"time"`
	Machine Machine         `json:"machine"`
	Threads int             `json:"threads"`
	Quick   bool            `json:"quick"`
	Limits  roofline.Limits `json:"limits"`
	Results []Result        `json:"results"`
}

type resolved struct {
	Options
	impls   []*kernels.Impl
	formats []format.Type
}

func (o Options) resolve() (resolved, error) {
	r := resolved{Options: o}
	procs := runtime.GOMAXPROCS(0)
	if o.Threads < 0 || o.MinTime < 0 || o.Runs < 0 {
		return r, fmt.Errorf("%w: negative value", ErrBadOptions)
	}
	if r.Threads == 0 || r.Threads > procs {
		r.Threads = procs
	}
	if r.Shapes == nil {
		r.Shapes = DefaultShapes()
		if o.Quick {
			r.Shapes = QuickShapes()
		}
	}
	if r.Ms == nil {
		r.Ms = DefaultMs()
		if o.Quick {
			r.Ms = QuickMs()
		}
	}
	for _, s := range r.Shapes {
		if s.N <= 0 || s.K <= 0 {
			return r, fmt.Errorf("%w: shape %v", ErrBadOptions, s)
		}
	}
	for _, m := range r.Ms {
		if m <= 0 {
			return r, fmt.Errorf("%w: batch size %d", ErrBadOptions, m)
		}
	}
	if r.Precisions == nil {
		r.Precisions = []kernels.Precision{kernels.Fast}
	}
	if r.MinTime == 0 {
		r.MinTime = 100 * time.Millisecond
		if o.Quick {
			r.MinTime = 10 * time.Millisecond
		}
	}
	if r.Runs == 0 {
		r.Runs = 5
		if o.Quick {
			r.Runs = 3
		}
	}
	avail := kernels.Formats()
	if o.Formats == nil {
		r.formats = avail
	} else {
		for _, f := range o.Formats {
			if !slices.Contains(avail, f) {
				return r, fmt.Errorf("%w: format %s has no kernels (have %s)", ErrBadOptions, f, names(avail))
			}
		}
		r.formats = o.Formats
	}
	all := kernels.Impls()
	if o.Impls == nil {
		r.impls = all
	} else {
		for _, name := range o.Impls {
			impl, err := kernels.Lookup(name)
			if err != nil {
				return r, fmt.Errorf("%w: %w", ErrBadOptions, err)
			}
			r.impls = append(r.impls, impl)
		}
	}
	return r, nil
}

func names[T fmt.Stringer](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, ", ")
}

// Run measures the roofline (unless opts.Limits is set) and then every case,
// and returns the Report. It returns ctx's error if ctx ends first.
func Run(ctx context.Context, opts Options) (*Report, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	rep := &Report{Version: SchemaVersion, Time: time.Now().UTC(), Machine: ThisMachine(), Threads: o.Threads, Quick: o.Quick}

	cases := len(o.Shapes) * len(o.formats) * len(o.Precisions) * len(o.impls) * len(o.Ms)
	if o.RooflineOnly {
		cases = 0
	}
	// Progress counts roofline probes, then cases. The probe count is
	// known once the roofline reports; until then it counts as one step.
	total, done := cases+1, 0
	progress := func(label string) {
		if o.Progress != nil {
			o.Progress(done, total, label)
		}
		done++
	}
	if o.Limits != nil {
		rep.Limits = *o.Limits
		total--
	} else {
		progress("roofline")
		ro := o.Roofline
		ro.Threads = o.Threads
		if o.Quick {
			ro.MinTime = cmp.Or(ro.MinTime, 20*time.Millisecond)
			ro.Runs = cmp.Or(ro.Runs, 3)
		}
		ro.Progress = func(d, t int) {
			done, total = d, t+cases
			if o.Progress != nil {
				o.Progress(done, total, "roofline")
			}
		}
		lim, err := roofline.Measure(ctx, ro)
		if err != nil {
			return nil, fmt.Errorf("roofline: %w", err)
		}
		rep.Limits = lim
		if done == 0 { // no probe ran
			done = 1
		}
	}

	if o.RooflineOnly {
		if o.Progress != nil {
			o.Progress(total, total, "done")
		}
		return rep, nil
	}
	pool := kernels.NewPool(o.Threads)
	defer pool.Close()
	rng := rand.New(rand.NewPCG(o.Seed, 0x6d6e656d6f))
	for _, sh := range o.Shapes {
		src := randomF32(rng, sh.N*sh.K)
		maxM := slices.Max(o.Ms)
		x := randomF32(rng, maxM*sh.K)
		y := make([]float32, maxM*sh.N)
		for _, f := range o.formats {
			if !f.RowOK(sh.K) {
				// Skip the whole block of cases that cannot exist.
				done += len(o.Precisions) * len(o.impls) * len(o.Ms)
				continue
			}
			mats, err := packCopies(f, sh, src, maxCopies)
			if err != nil {
				return nil, err
			}
			for _, prec := range o.Precisions {
				for _, w := range mats {
					w.Precision = prec
				}
				for _, impl := range o.impls {
					for _, m := range o.Ms {
						if err := ctx.Err(); err != nil {
							return nil, err
						}
						progress(fmt.Sprintf("%s %s %s m=%d", impl.Name, f, sh, m))
						r := measureCase(o, pool, impl, mats, y, x, m)
						r.Precision = prec.String()
						assignRoof(&r, rep.Limits.At(o.Threads))
						rep.Results = append(rep.Results, r)
					}
				}
			}
		}
	}
	if o.Progress != nil {
		o.Progress(total, total, "done")
	}
	return rep, nil
}

func randomF32(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// llcBytes is the last-level cache size (32 MiB when cpuid cannot tell).
func llcBytes() int {
	c := cpuid.CPU.Cache
	if c.L3 > 0 {
		return c.L3
	}
	if c.L2 > 0 {
		return c.L2
	}
	return 32 << 20
}

// maxCopies bounds the packed copies of a small matrix.
const maxCopies = 64

// packCopies quantizes src once and packs enough copies of it (at most
// limit) to exceed four times the last-level cache, so that cycling through
// them streams from memory.
func packCopies(f format.Type, sh Shape, src []float32, limit int) ([]*kernels.Matrix, error) {
	var opt format.Options
	if f == format.NVFP4 {
		opt.TensorScale = format.NVFP4TensorScale(src)
	}
	rb := f.RowBytes(sh.K)
	rows := make([]byte, sh.N*rb)
	for i := range sh.N {
		format.QuantizeRow(f, rows[i*rb:(i+1)*rb], src[i*sh.K:(i+1)*sh.K], opt)
	}
	w, err := kernels.Pack(f, sh.N, sh.K, rows, opt.TensorScale)
	if err != nil {
		return nil, fmt.Errorf("pack %s %v: %w", f, sh, err)
	}
	n := min(limit, max(1, (4*llcBytes()+w.Bytes()-1)/w.Bytes()))
	mats := []*kernels.Matrix{w}
	for range n - 1 {
		c, err := kernels.Pack(f, sh.N, sh.K, rows, opt.TensorScale)
		if err != nil {
			return nil, fmt.Errorf("pack %s %v: %w", f, sh, err)
		}
		mats = append(mats, c)
	}
	return mats, nil
}

// measureCase times impl on the matrices (cycled) with m activation rows:
// a warm-up call, then iterations calibrated so that a run lasts at least
// MinTime, then Runs runs; the median per-call time counts.
func measureCase(o resolved, pool *kernels.Pool, impl *kernels.Impl, mats []*kernels.Matrix, y, x []float32, m int) Result {
	w0 := mats[0]
	next := 0 // the copies are used in turn, across runs
	timeIters := func(n int) time.Duration {
		t0 := time.Now()
		for range n {
			impl.MatMul(pool, y, mats[next], x, m)
			next = (next + 1) % len(mats)
		}
		return time.Since(t0)
	}
	timeIters(1) // warm-up: scratch buffers, pool workers
	iters := 1
	for {
		d := timeIters(iters)
		if d >= o.MinTime || iters >= 1<<30 {
			break
		}
		if d < o.MinTime/8 {
			iters *= 8
			continue
		}
		iters = int(float64(iters)*float64(o.MinTime)/float64(max(d, 1))) + 1
	}
	per := make([]float64, o.Runs)
	for i := range per {
		per[i] = timeIters(iters).Seconds() / float64(iters)
	}
	sort.Float64s(per)
	med := per[len(per)/2]
	if len(per)%2 == 0 {
		med = (per[len(per)/2-1] + per[len(per)/2]) / 2
	}
	path := w0.Path(impl)
	ops := 2 * float64(m) * float64(w0.N) * float64(w0.K)
	r := Result{
		Impl: impl.Name, Tier: tierName(impl.TierFor(w0.Type)), Format: w0.Type.String(), Path: path.String(),
		N: w0.N, K: w0.K, M: m, WeightBytes: w0.Bytes(), Seconds: med,
		GBs: float64(w0.Bytes()) / med / 1e9, Gops: ops / med / 1e9, Unit: "GFLOP/s",
		Intensity: ops / float64(w0.Bytes()), Runs: o.Runs, Iters: iters,
	}
	if path == kernels.PathInt8Dot || path == kernels.PathInt8Madd {
		r.Unit = "GOP/s"
	}
	return r
}

func tierName(t kernels.Tier) string {
	switch t {
	case kernels.Generic:
		return "generic"
	case kernels.AVX2:
		return "avx2"
	case kernels.AVX512:
		return "avx512"
	}
	return fmt.Sprintf("tier%d", t)
}

// roofProbe returns the roofline probe that bounds a case: the streaming
// read for M = 1, else the compute peak of its path at its tier ("" when
// there is none, as for generic Go).
func roofProbe(path string, tier string, m int) string {
	if m == 1 {
		return roofline.ReadDRAM
	}
	return computeRoof(path, tier)
}

// ComputeRoof names the roofline probe of the compute peak of the fast
// matmul path impl runs for weights of type t ("" when there is none).
func ComputeRoof(impl *kernels.Impl, t format.Type) string {
	return computeRoof(impl.PathFor(t, kernels.Fast).String(), tierName(impl.TierFor(t)))
}

func computeRoof(path, tier string) string {
	switch path {
	case kernels.PathF32FMA.String():
		if tier == "avx512" {
			return roofline.FMAZMM
		}
		return roofline.FMAYMM
	case kernels.PathBF16Dot.String():
		return roofline.BF16ZMM
	case kernels.PathInt8Dot.String():
		if tier == "avx2" { // AVX-VNNI
			return roofline.VNNIYMM
		}
		return roofline.VNNIZMM
	case kernels.PathInt8Madd.String():
		if tier == "avx512" {
			return roofline.Int8ZMM
		}
		return roofline.Int8YMM
	}
	return ""
}

func assignRoof(r *Result, p roofline.Peaks) {
	r.Roof = roofProbe(r.Path, r.Tier, r.M)
	if r.Roof == "" {
		return
	}
	r.RoofValue, _ = p.Value(r.Roof)
	if r.RoofValue <= 0 {
		return
	}
	if r.Roof == roofline.ReadDRAM {
		r.Fraction = r.GBs / r.RoofValue
	} else {
		r.Fraction = r.Gops / r.RoofValue
	}
}
