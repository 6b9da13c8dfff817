package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mnemo-ai/mnemo/bench/modelbench"
	"github.com/mnemo-ai/mnemo/engine"
)

func init() {
	register(&Command{
		Name:    "bench model",
		Args:    "MODEL [-p 512] [-n 128] [--batch-seqs 8] [--json FILE] [flags]",
		Summary: "measure prefill (pp) and decode (tg) tokens/s and the decode roofline ratio of a model",
		Run:     runBenchModel,
	})
}

func runBenchModel(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "bench model")
	var mf modelFlags
	mf.register(fs)
	p := fs.Int("p", 512, "prompt tokens for the prefill test")
	n := fs.Int("n", 128, "generated tokens for the decode test")
	seqs := fs.Int("batch-seqs", 8, "sequences in the batched decode test (1 skips it)")
	depth := fs.Int("depth", 0, "context the decode tests start from, prefilled first (llama-bench's -d)")
	reps := fs.Int("reps", 3, "repetitions; the best counts")
	jsonOut := fs.String("json", "", "also write the result as JSON to FILE")
	roof := fs.Bool("roofline", true, "measure the read bandwidth and compute roof to relate the speeds to")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured runs to FILE (go tool pprof)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one MODEL")
	}
	if *p < 1 || *n < 1 || *seqs < 1 || *reps < 1 || *depth < 0 {
		return usagef("-p, -n, --batch-seqs and --reps must be positive, --depth not negative")
	}
	l, err := mf.open(env, pos[0], func(o *engineOptions) {
		o.ContextLength = max(o.ContextLength, *p, *depth+*n+1)
		// The cache must hold the prompt, then the depth's whole blocks
		// and every batched sequence's rest of the depth and n+1 tokens,
		// each in whole blocks.
		bt := o.BlockTokens
		if bt == 0 {
			bt = engine.DefaultBlockTokens
		}
		blocks := func(tokens int) int { return (tokens + bt - 1) / bt * bt }
		o.KVTokens = max(blocks(*p), *depth/bt*bt+*seqs*blocks(*depth%bt+*n+1))
		o.MaxSeqs = max(o.MaxSeqs, *seqs)
	})
	if err != nil {
		return err
	}
	defer l.Close()
	threads := mf.threads
	if tb, ok := l.be.(interface{ Threads() int }); ok {
		threads = tb.Threads()
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	res, err := modelbench.Run(ctx, l.model, filepath.Base(pos[0]), modelbench.Options{
		Prompt: *p, Gen: *n, Depth: *depth, BatchSeqs: *seqs, Threads: threads, Reps: *reps, Chunk: mf.batch,
		SkipRoofline: !*roof,
	})
	if err != nil {
		return err
	}
	modelbench.Fprint(env.Stdout, res)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", *jsonOut, err)
		}
	}
	return nil
}
