// Package roofline measures this machine's own limits in-process: streaming
// read bandwidth from DRAM (and, for reference, from cache) and the compute
// peak of each SIMD instruction path the kernels use (fp32 FMA, bf16 dot,
// int8 dot with and without VNNI), on one thread and on N threads.
//
// Each probe is a Go assembly loop with enough independent accumulators to
// saturate the execution ports, run only where cpuid reports the feature.
// Under the noasm build tag, or off amd64, only the pure-Go read runs.
//
// A value of zero in Peaks means the probe did not run on this machine.
package roofline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Probe names, as used in Peaks.Value and in JSON output.
const (
	ReadDRAM  = "read"       // streaming read of a large array, GB/s
	ReadCache = "read_cache" // read of a small per-thread array, GB/s
	ReadGo    = "read_go"    // streaming read in pure Go (8 accumulators), GB/s
	FMAZMM    = "fma_zmm"    // VFMADD231PS zmm, GFLOP/s
	FMAYMM    = "fma_ymm"    // VFMADD231PS ymm, GFLOP/s
	BF16ZMM   = "bf16_zmm"   // VDPBF16PS zmm, GFLOP/s
	VNNIZMM   = "vnni_zmm"   // VPDPBUSD zmm, GOP/s
	VNNIYMM   = "vnni_ymm"   // VPDPBUSD ymm (AVX-VNNI, VEX), GOP/s
	Int8ZMM   = "int8_zmm"   // VPMADDUBSW+VPMADDWD+VPADDD zmm, GOP/s
	Int8YMM   = "int8_ymm"   // VPMADDUBSW+VPMADDWD+VPADDD ymm, GOP/s
)

// Probes lists every probe name in report order.
func Probes() []string {
	return []string{ReadDRAM, ReadCache, ReadGo, FMAZMM, FMAYMM, BF16ZMM, VNNIZMM, VNNIYMM, Int8ZMM, Int8YMM}
}

// Unit returns the unit a probe's value is in: "GB/s", "GFLOP/s" or "GOP/s".
// Integer dot products count a multiply and an add per byte pair.
func Unit(probe string) string {
	switch probe {
	case ReadDRAM, ReadCache, ReadGo:
		return "GB/s"
	case VNNIZMM, VNNIYMM, Int8ZMM, Int8YMM:
		return "GOP/s"
	default:
		return "GFLOP/s"
	}
}

// Peaks holds the limits measured with one number of threads. Every field
// is zero when its probe did not run (feature missing, noasm build).
type Peaks struct {
	Threads int `json:"threads"`
	// ReadGBs is the streaming read bandwidth over an array larger than the
	// last-level cache, with ReadImpl ("avx512", "avx2" or "go").
	ReadGBs  float64 `json:"read_gbs"`
	ReadImpl string  `json:"read_impl"`
	// CacheReadGBs reads a small array per thread, resident in L2.
	CacheReadGBs float64 `json:"cache_read_gbs"`
	// GoReadGBs is the pure-Go streaming read (8 accumulators).
	GoReadGBs float64 `json:"go_read_gbs"`
	// FMAZMMGflops and FMAYMMGflops are fp32 VFMADD231PS peaks.
	FMAZMMGflops float64 `json:"fma_zmm_gflops"`
	FMAYMMGflops float64 `json:"fma_ymm_gflops"`
	// BF16Gflops is the VDPBF16PS zmm peak (4 FLOP per 32-bit lane).
	BF16Gflops float64 `json:"bf16_gflops"`
	// VNNIGops is the VPDPBUSD zmm peak (2 OP per byte pair), VNNIYMMGops
	// the AVX-VNNI ymm one.
	VNNIGops    float64 `json:"vnni_gops"`
	VNNIYMMGops float64 `json:"vnni_ymm_gops"`
	// Int8ZMMGops and Int8YMMGops are the int8 dot peaks without VNNI
	// (VPMADDUBSW+VPMADDWD+VPADDD), 2 OP per byte pair.
	Int8ZMMGops float64 `json:"int8_zmm_gops"`
	Int8YMMGops float64 `json:"int8_ymm_gops"`
}

// FMAGflops returns the better of the zmm and ymm fp32 FMA peaks.
func (p Peaks) FMAGflops() float64 { return max(p.FMAZMMGflops, p.FMAYMMGflops) }

// Int8Gops returns the better int8 dot peak without VNNI.
func (p Peaks) Int8Gops() float64 { return max(p.Int8ZMMGops, p.Int8YMMGops) }

// Value returns the value of the named probe (see Probes) and whether the
// name is known.
func (p Peaks) Value(probe string) (float64, bool) {
	f := p.field(probe)
	if f == nil {
		return 0, false
	}
	return *f, true
}

func (p *Peaks) field(probe string) *float64 {
	switch probe {
	case ReadDRAM:
		return &p.ReadGBs
	case ReadCache:
		return &p.CacheReadGBs
	case ReadGo:
		return &p.GoReadGBs
	case FMAZMM:
		return &p.FMAZMMGflops
	case FMAYMM:
		return &p.FMAYMMGflops
	case BF16ZMM:
		return &p.BF16Gflops
	case VNNIZMM:
		return &p.VNNIGops
	case VNNIYMM:
		return &p.VNNIYMMGops
	case Int8ZMM:
		return &p.Int8ZMMGops
	case Int8YMM:
		return &p.Int8YMMGops
	}
	return nil
}

// Limits are the machine's limits on one thread and on Multi.Threads
// threads.
type Limits struct {
	Single Peaks `json:"single"`
	Multi  Peaks `json:"multi"`
}

// At returns the Peaks measured with the given number of threads: Single
// for 1, Multi otherwise.
func (l Limits) At(threads int) Peaks {
	if threads <= 1 {
		return l.Single
	}
	return l.Multi
}

// Options configure Measure. The zero value measures with GOMAXPROCS
// threads, a 256 MiB array, 5 runs of at least 100 ms per probe.
type Options struct {
	// Threads is the thread count of the multi-thread measurement; 0 means
	// GOMAXPROCS. It is capped at GOMAXPROCS.
	Threads int
	// ReadBytes is the size of the streaming-read array (0: 256 MiB). Keep
	// it well above the last-level cache.
	ReadBytes int
	// CacheBytes is the per-thread array of the cache read (0: 256 KiB).
	CacheBytes int
	// MinTime is the minimum duration of one timed run (0: 100 ms).
	MinTime time.Duration
	// Runs is how many timed runs each probe makes; the best counts (0: 5).
	Runs int
	// Probes restricts the measurement to these probe names (nil: all).
	Probes []string
	// Progress, if set, is called after each probe with the number done
	// and the total.
	Progress func(done, total int)
}

// ErrBadOptions reports invalid Options.
var ErrBadOptions = errors.New("roofline: bad options")

func (o Options) withDefaults() (Options, error) {
	if o.Threads < 0 || o.ReadBytes < 0 || o.CacheBytes < 0 || o.MinTime < 0 || o.Runs < 0 {
		return o, fmt.Errorf("%w: negative value", ErrBadOptions)
	}
	for _, p := range o.Probes {
		if !slices.Contains(Probes(), p) {
			return o, fmt.Errorf("%w: unknown probe %q", ErrBadOptions, p)
		}
	}
	procs := runtime.GOMAXPROCS(0)
	if o.Threads == 0 || o.Threads > procs {
		o.Threads = procs
	}
	if o.ReadBytes == 0 {
		o.ReadBytes = 256 << 20
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 256 << 10
	}
	if o.MinTime == 0 {
		o.MinTime = 100 * time.Millisecond
	}
	if o.Runs == 0 {
		o.Runs = 5
	}
	return o, nil
}

func (o Options) wants(probe string) bool {
	return o.Probes == nil || slices.Contains(o.Probes, probe)
}

// Measure runs every available probe on 1 thread and on opts.Threads
// threads and returns the best of opts.Runs runs of each. It stops early,
// returning ctx's error, when ctx is done.
func Measure(ctx context.Context, opts Options) (Limits, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Limits{}, err
	}
	lim := Limits{Single: Peaks{Threads: 1}, Multi: Peaks{Threads: o.Threads}}
	counts := []int{1}
	if o.Threads > 1 {
		counts = append(counts, o.Threads)
	}
	peaks := func(t int) *Peaks {
		if t == 1 {
			return &lim.Single
		}
		return &lim.Multi
	}

	reads := readImpls()
	cps := computeProbes()
	total, done := 0, 0
	for _, p := range []string{ReadDRAM, ReadCache, ReadGo} {
		if o.wants(p) {
			total += len(counts)
		}
	}
	for _, cp := range cps {
		if o.wants(cp.id) {
			total += len(counts)
		}
	}
	step := func() {
		done++
		if o.Progress != nil {
			o.Progress(done, total)
		}
	}

	if o.wants(ReadDRAM) || o.wants(ReadGo) {
		big := make([]uint64, o.ReadBytes/8)
		fillParallel(big, o.Threads)
		for _, t := range counts {
			if o.wants(ReadDRAM) {
				v, err := measureRead(ctx, o, reads[0].sum, big, t)
				if err != nil {
					return Limits{}, err
				}
				peaks(t).ReadGBs, peaks(t).ReadImpl = v, reads[0].name
				step()
			}
			if o.wants(ReadGo) {
				v, err := measureRead(ctx, o, sumGo, big, t)
				if err != nil {
					return Limits{}, err
				}
				peaks(t).GoReadGBs = v
				step()
			}
		}
	}
	if o.wants(ReadCache) {
		for _, t := range counts {
			v, err := measureCacheRead(ctx, o, reads[0].sum, t)
			if err != nil {
				return Limits{}, err
			}
			peaks(t).CacheReadGBs = v
			step()
		}
	}
	for _, cp := range cps {
		if !o.wants(cp.id) {
			continue
		}
		for _, t := range counts {
			v, err := measureCompute(ctx, o, cp, t)
			if err != nil {
				return Limits{}, err
			}
			*peaks(t).field(cp.id) = v
			step()
		}
	}
	if o.Threads == 1 {
		lim.Multi = lim.Single
	}
	return lim, nil
}

// readImpl is one streaming-sum kernel.
type readImpl struct {
	name string
	sum  func([]uint64) uint64
}

// computeProbe is one compute-peak loop. newRun returns a function that
// runs n iterations on its own accumulators (one per thread).
type computeProbe struct {
	id         string
	opsPerIter float64
	newRun     func() func(n int)
}

// sumGo returns the wrapping sum of x with 8 independent accumulators.
func sumGo(x []uint64) uint64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	for len(x) >= 8 {
		s0 += x[0]
		s1 += x[1]
		s2 += x[2]
		s3 += x[3]
		s4 += x[4]
		s5 += x[5]
		s6 += x[6]
		s7 += x[7]
		x = x[8:]
	}
	for _, v := range x {
		s0 += v
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

// fillParallel writes every word of x (so its pages are mapped) using up
// to threads goroutines, each touching its own part first.
func fillParallel(x []uint64, threads int) {
	var wg sync.WaitGroup
	for i, part := range split(len(x), threads, 512) {
		wg.Go(func() {
			for j := part[0]; j < part[1]; j++ {
				x[j] = uint64(j)*0x9e3779b97f4a7c15 + uint64(i)
			}
		})
	}
	wg.Wait()
}

// split cuts n items into parts contiguous ranges whose boundaries are
// multiples of align (the last range takes the rest).
func split(n, parts, align int) [][2]int {
	r := make([][2]int, parts)
	per := n / parts / align * align
	for i := range r {
		r[i] = [2]int{i * per, (i + 1) * per}
	}
	r[parts-1][1] = n
	return r
}

// sink keeps the sums alive so the compiler cannot drop the reads.
var sink struct {
	sync.Mutex
	v uint64
}

// runThreads runs f(thread) on t goroutines, each locked to an OS thread,
// started together, and returns the wall time from start to the last
// finish.
func runThreads(t int, f func(thread int)) time.Duration {
	var ready, finished sync.WaitGroup
	start := make(chan struct{})
	ready.Add(t)
	finished.Add(t)
	for i := range t {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			defer finished.Done()
			ready.Done()
			<-start
			f(i)
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	finished.Wait()
	return time.Since(t0)
}

// best runs measure (which returns work units and the time they took)
// runs times after scaling reps to reach minTime, and returns the best
// rate in units per nanosecond (= G units per second).
func best(ctx context.Context, o Options, run func(reps int) (units float64, d time.Duration)) (float64, error) {
	reps := 1
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		_, d := run(reps)
		if d >= o.MinTime/4 || reps >= 1<<40 {
			if d < o.MinTime {
				reps = int(float64(reps)*float64(o.MinTime)/float64(max(d, 1)) + 1)
			}
			break
		}
		reps *= 8
	}
	var rate float64
	for range o.Runs {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		u, d := run(reps)
		rate = max(rate, u/float64(max(d, 1)))
	}
	return rate, nil
}

func measureRead(ctx context.Context, o Options, sum func([]uint64) uint64, x []uint64, t int) (float64, error) {
	parts := split(len(x), t, 512)
	return best(ctx, o, func(reps int) (float64, time.Duration) {
		sums := make([]uint64, t)
		d := runThreads(t, func(i int) {
			p := x[parts[i][0]:parts[i][1]]
			for range reps {
				sums[i] += sum(p)
			}
		})
		keep(sums)
		return float64(len(x)*8) * float64(reps), d
	})
}

func measureCacheRead(ctx context.Context, o Options, sum func([]uint64) uint64, t int) (float64, error) {
	bufs := make([][]uint64, t)
	for i := range bufs {
		bufs[i] = make([]uint64, o.CacheBytes/8)
		for j := range bufs[i] {
			bufs[i][j] = uint64(j)
		}
	}
	return best(ctx, o, func(reps int) (float64, time.Duration) {
		sums := make([]uint64, t)
		// Each run is ≥ 16 passes so the buffer is warm.
		reps *= 16
		d := runThreads(t, func(i int) {
			for range reps {
				sums[i] += sum(bufs[i])
			}
		})
		keep(sums)
		return float64(o.CacheBytes/8*8*t) * float64(reps), d
	})
}

func measureCompute(ctx context.Context, o Options, cp computeProbe, t int) (float64, error) {
	runs := make([]func(int), t)
	for i := range runs {
		runs[i] = cp.newRun()
	}
	return best(ctx, o, func(reps int) (float64, time.Duration) {
		n := reps * 1024
		d := runThreads(t, func(i int) { runs[i](n) })
		return cp.opsPerIter * float64(n) * float64(t), d
	})
}

func keep(sums []uint64) {
	sink.Lock()
	for _, s := range sums {
		sink.v += s
	}
	sink.Unlock()
}
