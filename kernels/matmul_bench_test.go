package kernels

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mnemo-ai/mnemo/bench/roofline"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

// benchRoofline measures, once per process, the streaming read bandwidth
// and the compute roofs the matmul benchmarks are compared with, so that
// the benchmark reports fractions of limits measured in the same process
// (the machine is shared; absolute numbers move between runs).
var benchRoofline = sync.OnceValues(func() (roofline.Limits, error) {
	return roofline.Measure(context.Background(), roofline.Options{
		Probes:  []string{roofline.ReadDRAM, roofline.BF16ZMM, roofline.FMAZMM, roofline.FMAYMM, roofline.VNNIZMM, roofline.Int8YMM},
		Runs:    3,
		MinTime: 100 * time.Millisecond,
	})
})

// roof returns the compute roof of path on impl with p.
func roof(p roofline.Peaks, path Path, impl *Impl) float64 {
	switch path {
	case PathBF16Dot:
		return p.BF16Gflops
	case PathF32FMA:
		if impl.Tier == AVX512 {
			return p.FMAZMMGflops
		}
		return p.FMAYMMGflops
	case PathInt8Dot:
		return p.VNNIGops
	case PathInt8Madd:
		return p.Int8YMMGops
	}
	return 0
}

// mmStream reads b (a multiple of 256 bytes) as fast as the machine
// allows; readstream_amd64_test.go swaps in AVX-512 loads.
var mmStream = func(b []byte) uint64 {
	var a [8]uint64
	for i := 0; i+64 <= len(b); i += 64 {
		for j := range a {
			a[j] ^= binary.LittleEndian.Uint64(b[i+8*j:])
		}
	}
	return a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7]
}

var mmReadSink uint64

// mmRoof returns a compute probe for path on impl (a loop of independent
// multiply-adds, see roofBF16AVX512) and its flops per iteration, or nil;
// matmul_bench_amd64_test.go provides it.
var mmRoof = func(impl *Impl, path Path) (probe func(iters int), flop float64) { return nil, 0 }

// mmReadPass streams data with pool's threads, split as MatMul splits rows.
func mmReadPass(pool *Pool, data []byte) {
	blocks := len(data) / 256
	var mu sync.Mutex
	pool.For(blocks, 16, func(lo, hi int) {
		v := mmStream(data[lo*256 : hi*256])
		mu.Lock()
		mmReadSink ^= v
		mu.Unlock()
	})
}

// benchWeights packs enough copies (at least 3, and 192 MiB) of an n×k
// matrix of format t that a batch-1 pass over them cannot be served from
// the 32 MiB L3, and returns them for round-robin use.
var benchWeights = map[string][]*Matrix{}

func benchMatrices(b *testing.B, t format.Type, n, k int, prec Precision) []*Matrix {
	key := fmt.Sprintf("%s/%d/%d", t, n, k)
	if ws, ok := benchWeights[key]; ok {
		for _, w := range ws {
			w.Precision = prec
		}
		return ws
	}
	rng := rand.New(rand.NewPCG(uint64(n), uint64(k)))
	src := randMatrix(rng, n, k)
	opt := format.Options{TensorScale: format.NVFP4TensorScale(src)}
	rb := t.RowBytes(k)
	rows := make([]byte, n*rb)
	for i := range n {
		format.QuantizeRow(t, rows[i*rb:(i+1)*rb], src[i*k:(i+1)*k], opt)
	}
	w, err := Pack(t, n, k, rows, opt.TensorScale)
	if err != nil {
		b.Fatal(err)
	}
	ws := []*Matrix{w}
	for len(ws) < 3 || len(ws)*w.Bytes() < 192<<20 {
		c, err := Pack(t, n, k, rows, opt.TensorScale)
		if err != nil {
			b.Fatal(err)
		}
		ws = append(ws, c)
	}
	for _, w := range ws {
		w.Precision = prec
	}
	benchWeights[key] = ws
	return ws
}

// BenchmarkMatMul runs every impl × registered format × precision × shape
// × M × thread count, reporting GB/s of packed weight bytes, GFLOP/s (GOP/s
// for the int8 paths), and both as percentages of the streaming read and
// of the compute roof of the path the impl runs (read% and roof%), measured
// in the same process: read% alternates batch-1 runs with a streaming read
// of as many bytes on the same threads (read% = read time / kernel time;
// read%cpu the same in CPU time, which other processes disturb less),
// roof%cpu alternates runs with a compute probe of the impl's path on the
// same threads (CPU time; GEMMs only), roof% uses the compute roofs
// bench/roofline measures once at start (skipped under -short); GFLOP/cpu-s divides by the CPU time the process
// used instead of wall time, which on a shared machine is the better
// estimate of compute-bound throughput. Batch-1 and batched-decode runs (m up to
// 8) rotate over copies of the weights so that they stream from DRAM.
//
//	go test -run='^$' -bench='MatMul/impl=avx512/fmt=fp8/prec=fast/m=1/' -benchtime=2s ./kernels
func BenchmarkMatMul(b *testing.B) {
	var lim *roofline.Limits
	if !testing.Short() {
		l, err := benchRoofline()
		if err != nil {
			b.Fatal(err)
		}
		lim = &l
		b.Logf("roofline 1 thread: %+v", l.Single)
		b.Logf("roofline %d threads: %+v", l.Multi.Threads, l.Multi)
	}
	shapes := [][2]int{{4096, 4096}, {2048, 2048}}
	threads := []int{1}
	if p := runtime.GOMAXPROCS(0); p > 1 {
		threads = append(threads, p)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, t := range Formats() {
		for _, sh := range shapes {
			n, k := sh[0], sh[1]
			if !t.RowOK(k) {
				continue
			}
			for _, impl := range Impls() {
				for _, prec := range []Precision{Fast, Exact} {
					for _, m := range []int{1, 8, 64, 256} {
						for _, th := range threads {
							name := fmt.Sprintf("impl=%s/fmt=%s/prec=%s/m=%d/n=%d/k=%d/t=%d", impl, t, prec, m, n, k, th)
							b.Run(name, func(b *testing.B) {
								ops := 2 * float64(m) * float64(n) * float64(k)
								if impl.Tier == Generic && ops > 1<<30 {
									b.Skip("generic Go: too slow at this size")
								}
								ws := benchMatrices(b, t, n, k, prec)
								if m > 8 {
									ws = ws[:1]
								}
								pool := NewPool(th)
								defer pool.Close()
								x := make([]float32, m*k)
								for i := range x {
									x[i] = float32(rng.NormFloat64())
								}
								y := make([]float32, m*n)
								i := 0
								c0 := cpuTime()
								for b.Loop() {
									impl.MatMul(pool, y, ws[i%len(ws)], x, m)
									i++
								}
								cpu := (cpuTime() - c0).Seconds()
								sec := b.Elapsed().Seconds()
								gbs := float64(ws[0].Bytes()) * float64(b.N) / sec / 1e9
								gflops := ops * float64(b.N) / sec / 1e9
								b.ReportMetric(gbs, "GB/s")
								b.ReportMetric(gflops, "GFLOP/s")
								if m == 1 {
									// Alternate kernel and streaming-read passes over the
									// same bytes, so both see the same machine load.
									rounds := min(2000, max(4, int(0.3/(sec/float64(b.N)))))
									var tk, tr, ck, cr time.Duration
									for r := range rounds {
										// Different copies, so neither pass finds the
										// other's bytes in cache.
										c0, t0 := cpuTime(), time.Now()
										mmReadPass(pool, ws[(2*r)%len(ws)].data)
										c1, t1 := cpuTime(), time.Now()
										impl.MatMul(pool, y, ws[(2*r+1)%len(ws)], x, m)
										tr, tk = tr+t1.Sub(t0), tk+time.Since(t1)
										cr, ck = cr+c1-c0, ck+cpuTime()-c1
									}
									b.ReportMetric(100*tr.Seconds()/tk.Seconds(), "read%")
									if ck > 0 {
										b.ReportMetric(100*cr.Seconds()/ck.Seconds(), "read%cpu")
									}
								}
								if cpu > 0 {
									// Per CPU-second: what the kernel does while it runs,
									// less sensitive to other processes sharing the cores.
									b.ReportMetric(ops*float64(b.N)/cpu/1e9, "GFLOP/cpu-s")
								}
								if probe, flop := mmRoof(impl, ws[0].Path(impl)); m > 1 && probe != nil {
									// Alternate kernel and compute-probe passes of
									// similar length on the same threads, in CPU time.
									per := sec / float64(b.N)
									iters := max(1, int(per/(flop/100e9)))
									rounds := min(200, max(2, int(0.2/per)))
									var ck, cr time.Duration
									for range rounds {
										c0 := cpuTime()
										impl.MatMul(pool, y, ws[0], x, m)
										c1 := cpuTime()
										pool.For(th, 1, func(lo, hi int) {
											for range hi - lo {
												probe(iters)
											}
										})
										ck, cr = ck+c1-c0, cr+cpuTime()-c1
									}
									if ck > 0 && cr > 0 {
										kern := ops * float64(rounds) / ck.Seconds()
										peak := flop * float64(iters*th*rounds) / cr.Seconds()
										b.ReportMetric(100*kern/peak, "roof%cpu")
									}
								}
								if lim != nil {
									if r := roof(lim.At(th), ws[0].Path(impl), impl); r > 0 {
										b.ReportMetric(100*gflops/r, "roof%")
									}
								}
							})
						}
					}
				}
			}
			delete(benchWeights, fmt.Sprintf("%s/%d/%d", t, n, k)) // free the copies
		}
	}
}

// BenchmarkMatMulDecodeStep runs the batch-1 matmuls of a decode step of
// a TinyLlama-shaped model (22 layers of fused QKV 2560×2048, output
// 2048×2048, fused gate and up 11264×2048, down 2048×5632) in the
// model's order, alternating with streaming-read passes over the same
// matrices split the same way, and reports both rates and read% (read
// time / kernel time): what the kernels leave on the table against a
// plain read in the call structure of a real step, with its short calls
// and a pool dispatch per call, which BenchmarkMatMul's one large shape
// does not show.
//
//	go test -run='^$' -bench='MatMulDecodeStep/fmt=mxfp4' -benchtime=20x ./kernels
func BenchmarkMatMulDecodeStep(b *testing.B) {
	shapes := [][2]int{{2560, 2048}, {2048, 2048}, {11264, 2048}, {2048, 5632}}
	impl := Best()
	for _, ft := range []format.Type{format.MXFP4, format.NVFP4, format.Q8_0} {
		b.Run(fmt.Sprintf("impl=%s/fmt=%s", impl.Name, ft), func(b *testing.B) {
			// Each layer takes the next copy of each shape: more bytes in
			// all than any cache holds, though a few copies recur.
			var copies [][]*Matrix
			for _, sh := range shapes {
				copies = append(copies, benchMatrices(b, ft, sh[0], sh[1], Fast))
				defer delete(benchWeights, fmt.Sprintf("%s/%d/%d", ft, sh[0], sh[1]))
			}
			var ws []*Matrix
			total := 0
			for l := range 22 {
				for _, c := range copies {
					ws = append(ws, c[l%len(c)])
					total += c[0].Bytes()
				}
			}
			rng := rand.New(rand.NewPCG(1, 2))
			pool := NewPool(0)
			defer pool.Close()
			x := make([]float32, 5632)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			y := make([]float32, 11264)
			var tk, tr time.Duration
			for b.Loop() {
				t0 := time.Now()
				for _, w := range ws {
					mmReadPass(pool, w.data)
				}
				t1 := time.Now()
				for _, w := range ws {
					impl.MatMul(pool, y[:w.N], w, x[:w.K], 1)
				}
				tr, tk = tr+t1.Sub(t0), tk+time.Since(t1)
			}
			b.ReportMetric(float64(total)*float64(b.N)/tk.Seconds()/1e9, "GB/s")
			b.ReportMetric(float64(total)*float64(b.N)/tr.Seconds()/1e9, "readGB/s")
			b.ReportMetric(100*tr.Seconds()/tk.Seconds(), "read%")
			b.ReportMetric(0, "ns/op")
		})
	}
}
