// Package modelbench measures a loaded model the way llama.cpp's
// llama-bench does — prefill tokens/s for a p-token prompt (pp) and decode
// tokens/s for n generated tokens (tg) — plus batched decode, and relates
// decode speed to the machine's read bandwidth measured in the same run:
// a decode step streams every weight matrix once, so tokens/s × bytes per
// token ÷ bandwidth is the fraction of the memory roofline reached.
package modelbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mnemo-ai/mnemo/bench"
	"github.com/mnemo-ai/mnemo/bench/roofline"
	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/kernels"
	"github.com/mnemo-ai/mnemo/kernels/format"
	"github.com/mnemo-ai/mnemo/kvcache"
)

// Options configure a run.
type Options struct {
	Prompt int // prompt tokens for pp (default 512)
	Gen    int // generated tokens for tg (default 128)
	// Depth is the context tg and the batched tg decode after (llama-bench's
	// -d): the batch's sequences share it, as sessions with one system
	// prompt do (its full blocks are shared, so each reads the same keys
	// and values).
	Depth     int
	BatchSeqs int // sequences decoding together (default 8; 1 skips)
	Threads   int // threads the roofline probes use (match the backend's)
	Reps      int // repetitions; the best counts (default 3)
	Seed      uint64
	// Chunk is the prefill chunk (the model's step limit).
	Chunk int
	// SkipRoofline skips the bandwidth probe (tests).
	SkipRoofline bool
}

// Result is one model's measurements. Fields are named as in the JSON
// output.
type Result struct {
	Model           string  `json:"model"`
	Threads         int     `json:"threads"`
	MatrixBytes     int64   `json:"matrix_bytes"`
	Format          string  `json:"format"`
	PromptTokens    int     `json:"pp_tokens"`
	PrefillTokS     float64 `json:"pp_tok_s"`
	PrefillGFLOPs   float64 `json:"pp_gflop_s"`
	ComputeRoof     float64 `json:"compute_roof_gflop_s"`
	ComputeRoofName string  `json:"compute_roof"`
	PrefillOfRoof   float64 `json:"pp_of_compute_roof"`
	GenTokens       int     `json:"tg_tokens"`
	Depth           int     `json:"depth"`
	DecodeTokS      float64 `json:"tg_tok_s"`
	// ReadGBs is the read bandwidth the decode ratio is taken against:
	// the probe run right before the fastest tg repetition (each has its
	// own, so that a machine whose bandwidth moves during the run compares
	// each repetition with its own conditions). ReadGBsLow and ReadGBsHigh
	// span every probe of the run (those and one after the batched
	// decode); far apart, they say the bandwidth moved.
	ReadGBs     float64 `json:"read_gb_s"`
	ReadGBsLow  float64 `json:"read_gb_s_low"`
	ReadGBsHigh float64 `json:"read_gb_s_high"`
	// KVReadBytes is what attention reads of the cache per tg token at a
	// depth (at the mean context of the run); the roofline counts it
	// with the matrices' bytes. 0 without a depth.
	KVReadBytes  int64   `json:"kv_read_bytes"`
	DecodeOfRoof float64 `json:"tg_of_read_roofline"`
	BatchSeqs    int     `json:"batch_seqs"`
	BatchTokS    float64 `json:"batch_tok_s"`
	BatchSpeedup float64 `json:"batch_speedup"`
	// RSSBytes is the process's resident memory when Run starts (after
	// loading), next to what the model needs: WeightBytes in the backend
	// and KVBytes for the whole cache.
	RSSBytes    int64 `json:"rss_bytes"`
	WeightBytes int64 `json:"weight_bytes"`
	KVBytes     int64 `json:"kv_bytes"`
}

// matrixByter is implemented by models that report the weight bytes a
// decode step streams.
type matrixByter interface {
	MatrixBytes() map[format.Type]int64
}

// Run measures m. name labels the result.
func Run(ctx context.Context, m engine.Model, name string, opt Options) (Result, error) {
	if opt.Prompt == 0 {
		opt.Prompt = 512
	}
	if opt.Gen == 0 {
		opt.Gen = 128
	}
	if opt.BatchSeqs == 0 {
		opt.BatchSeqs = 8
	}
	if opt.Reps == 0 {
		opt.Reps = 3
	}
	if opt.Chunk == 0 {
		opt.Chunk = 512
	}
	if opt.Prompt < 1 || opt.Gen < 1 || opt.BatchSeqs < 1 || opt.Reps < 1 || opt.Depth < 0 {
		return Result{}, errors.New("modelbench: prompt, gen, batch and reps must be positive, depth not negative")
	}
	cfg := m.Config()
	rss := residentBytes()
	res := Result{RSSBytes: rss, Model: name, Threads: opt.Threads, PromptTokens: opt.Prompt, GenTokens: opt.Gen, Depth: opt.Depth,
		BatchSeqs: opt.BatchSeqs}
	mb, ok := m.(matrixByter)
	if !ok {
		return res, errors.New("modelbench: the model does not report its weight bytes")
	}
	if wb, ok := m.(interface{ WeightBytes() int64 }); ok {
		res.WeightBytes = wb.WeightBytes()
	}
	kv := m.KV()
	res.KVBytes = int64(kv.Blocks) * int64(kv.BlockTokens) * int64(kv.BytesPerToken())
	var top int64
	for f, b := range mb.MatrixBytes() {
		res.MatrixBytes += b
		if b > top {
			top, res.Format = b, f.String()
		}
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 1))
	tokens := func(n int) []int32 {
		t := make([]int32, n)
		for i := range t {
			t[i] = int32(rng.IntN(cfg.VocabSize))
		}
		return t
	}
	pool := m.KV().Pool

	// pp: the prompt in chunks, from an empty cache.
	best := time.Duration(1 << 62)
	for range opt.Reps {
		seq := &engine.Seq{Table: &kvcache.Table{}}
		prompt := tokens(opt.Prompt)
		start := time.Now()
		for at := 0; at < len(prompt); at += opt.Chunk {
			seq.Tokens = prompt[at:min(len(prompt), at+opt.Chunk)]
			if _, err := m.Forward(ctx, []*engine.Seq{seq}); err != nil {
				seq.Table.Release(pool)
				return res, fmt.Errorf("prefill: %w", err)
			}
		}
		best = min(best, time.Since(start))
		seq.Table.Release(pool)
	}
	res.PrefillTokS = float64(opt.Prompt) / best.Seconds()
	res.PrefillGFLOPs = 2 * float64(matrixMACs(cfg)) * res.PrefillTokS / 1e9

	// readGBs runs the probes (the read bandwidth and more) and notes
	// the read bandwidth in the run's range.
	readGBs := func(probes ...string) (roofline.Peaks, error) {
		lim, err := roofline.Measure(ctx, roofline.Options{Threads: opt.Threads, Probes: probes})
		if err != nil {
			return roofline.Peaks{}, err
		}
		p := lim.Multi
		if opt.Threads != 0 {
			p = lim.At(max(opt.Threads, 1))
		}
		if res.ReadGBsLow == 0 || p.ReadGBs < res.ReadGBsLow {
			res.ReadGBsLow = p.ReadGBs
		}
		res.ReadGBsHigh = max(res.ReadGBsHigh, p.ReadGBs)
		return p, nil
	}

	// The depth's whole blocks, prefilled once; each tg sequence forks
	// them and prefills the rest itself (a shared partial block would
	// take the writes of every fork).
	base := &kvcache.Table{}
	defer base.Release(pool)
	bt := kv.BlockTokens
	if full := opt.Depth / bt * bt; full > 0 {
		prompt := tokens(full)
		seq := &engine.Seq{Table: base}
		for at := 0; at < full; at += opt.Chunk {
			seq.Tokens = prompt[at:min(full, at+opt.Chunk)]
			if _, err := m.Forward(ctx, []*engine.Seq{seq}); err != nil {
				return res, fmt.Errorf("prefill to depth %d: %w", opt.Depth, err)
			}
		}
	}

	// tg: one token at a time after the depth and a one-token prompt.
	decode := func(n int, seqs int) (time.Duration, error) {
		batch := make([]*engine.Seq, seqs)
		for i := range batch {
			batch[i] = &engine.Seq{Table: base.Fork(pool), Tokens: tokens(opt.Depth%bt + 1)}
		}
		defer func() {
			for _, s := range batch {
				s.Table.Release(pool)
			}
		}()
		if _, err := m.Forward(ctx, batch); err != nil {
			return 0, err
		}
		start := time.Now()
		for range n {
			for _, s := range batch {
				s.Tokens = tokens(1)
			}
			if _, err := m.Forward(ctx, batch); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	best = time.Duration(1 << 62)
	for range opt.Reps {
		var gbs float64
		if !opt.SkipRoofline {
			p, err := readGBs(roofline.ReadDRAM)
			if err != nil {
				return res, err
			}
			gbs = p.ReadGBs
		}
		d, err := decode(opt.Gen, 1)
		if err != nil {
			return res, fmt.Errorf("decode: %w", err)
		}
		if d < best {
			best, res.ReadGBs = d, gbs
		}
	}
	res.DecodeTokS = float64(opt.Gen) / best.Seconds()
	if opt.Depth > 0 {
		// Token i of the run attends to depth+2+i positions.
		res.KVReadBytes = int64(2*opt.Depth+opt.Gen+3) * int64(kv.BytesPerToken()) / 2
	}
	if opt.BatchSeqs > 1 {
		best = time.Duration(1 << 62)
		for range opt.Reps {
			d, err := decode(opt.Gen, opt.BatchSeqs)
			if err != nil {
				return res, fmt.Errorf("batched decode: %w", err)
			}
			best = min(best, d)
		}
		res.BatchTokS = float64(opt.Gen*opt.BatchSeqs) / best.Seconds()
		res.BatchSpeedup = res.BatchTokS / res.DecodeTokS
	}
	if !opt.SkipRoofline {
		f, _ := format.ParseType(res.Format)
		// The roof of the path the CPU kernels run for this format at
		// the active tier (AVX-512 VNNI, or VPMADDUBSW on AVX2, ...).
		res.ComputeRoofName = bench.ComputeRoof(kernels.Active(), f)
		p, err := readGBs(roofline.ReadDRAM, res.ComputeRoofName)
		if err != nil {
			return res, err
		}
		res.ComputeRoof, _ = p.Value(res.ComputeRoofName)
		if res.ReadGBs > 0 {
			res.DecodeOfRoof = res.DecodeTokS * float64(res.MatrixBytes+res.KVReadBytes) / (res.ReadGBs * 1e9)
		}
		if res.ComputeRoof > 0 {
			res.PrefillOfRoof = res.PrefillGFLOPs / res.ComputeRoof
		}
	}
	return res, nil
}

// matrixMACs counts the multiply-adds per token of the weight matrices
// (attention scores and values, which grow with the context, are left out).
func matrixMACs(cfg model.Config) int64 {
	d, q, kv, f := int64(cfg.EmbeddingDim), int64(cfg.Heads*cfg.HeadDim), int64(cfg.KVHeads*cfg.HeadDim), int64(cfg.FFNDim)
	return int64(cfg.Layers)*(d*q+2*d*kv+q*d+3*d*f) + int64(cfg.VocabSize)*d
}

// Fprint writes a human-readable summary.
func Fprint(w io.Writer, r Result) {
	fmt.Fprintf(w, "model %s: %s weights, %.1f MB of matrices streamed per decode step\n", r.Model, r.Format, float64(r.MatrixBytes)/1e6)
	fmt.Fprintf(w, "  pp%-5d %8.1f tok/s  %7.1f GFLOP/s", r.PromptTokens, r.PrefillTokS, r.PrefillGFLOPs)
	if r.ComputeRoof > 0 {
		fmt.Fprintf(w, "  = %.0f%% of the %s roof (%.0f)", 100*r.PrefillOfRoof, r.ComputeRoofName, r.ComputeRoof)
	}
	fmt.Fprintln(w)
	depth := ""
	if r.Depth > 0 {
		depth = fmt.Sprintf(" @ d%d", r.Depth)
	}
	fmt.Fprintf(w, "  %-7s %8.1f tok/s", fmt.Sprintf("tg%d", r.GenTokens)+depth, r.DecodeTokS)
	if r.ReadGBs > 0 {
		fmt.Fprintf(w, "  = %.0f%% of the read roofline (%.1f GB/s measured just before", 100*r.DecodeOfRoof, r.ReadGBs)
		if r.KVReadBytes > 0 {
			fmt.Fprintf(w, "; %.1f MB of KV cache read per token counted", float64(r.KVReadBytes)/1e6)
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprintln(w)
	if lo, hi := r.ReadGBsLow, r.ReadGBsHigh; lo > 0 && hi > 1.15*lo {
		fmt.Fprintf(w, "           read bandwidth ranged from %.1f to %.1f GB/s during the run: this machine is noisy, the ratio takes the fastest repetition against the probe run just before it\n",
			lo, hi)
	}
	if r.BatchSeqs > 1 {
		fmt.Fprintf(w, "  %-7s %8.1f tok/s  (%.2f× one sequence)\n", fmt.Sprintf("tg×%d", r.BatchSeqs)+depth, r.BatchTokS, r.BatchSpeedup)
	}
	if r.RSSBytes > 0 {
		need := r.WeightBytes + r.KVBytes
		fmt.Fprintf(w, "  memory   %.1f MB resident after load = %.2f× weights %.1f MB + KV cache %.1f MB\n",
			float64(r.RSSBytes)/1e6, float64(r.RSSBytes)/float64(need), float64(r.WeightBytes)/1e6, float64(r.KVBytes)/1e6)
	}
}

// residentBytes returns the process's resident set size (Linux; 0
// elsewhere or on error).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
