package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/runtime"
)

func init() {
	register(&Command{
		Name: "bench sessions",
		Args: "[MODEL] [--turns 8] [--turn-tokens 128] [--gen 16] [--reps 3] [flags]",
		Summary: "multi-turn conversation: time to first token of a live session vs recomputing the whole history " +
			"(MODEL defaults to a synthetic model)",
		Run: runBenchSessions,
	})
}

// errNotWired is what restoredTTFT returns until the kvcache snapshot
// store is wired into the runtime.
var errNotWired = errors.New("persistence not wired yet")

// restoredTTFT measures (b): the time to first token of turn's next
// message after the session was saved to disk and the process restarted.
//
// TODO(kvcache snapshots): with the snapshot store as runtime.Store, save
// the live session (Session.Close), close the runtime, open a new runtime
// on the same model and store, and time Open + Append(next) + the first
// generated token; then continue the conversation on the restored session.
var restoredTTFT = func(ctx context.Context, rt *runtime.Runtime, s *runtime.Session, next []int32) (time.Duration, error) {
	return 0, errNotWired
}

// sessionTurn is one turn's measurements.
type sessionTurn struct {
	Turn        int
	History     int // tokens a stateless server must prefill for this turn
	LivePrefill int // tokens the live session prefilled
	Live        time.Duration
	Restored    time.Duration
	RestoredErr error
	Recompute   time.Duration
	DecodeTokS  float64 // live session's decode speed after the first token
}

func runBenchSessions(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "bench sessions")
	var mf modelFlags
	mf.register(fs)
	turns := fs.Int("turns", 8, "conversation turns")
	turnTokens := fs.Int("turn-tokens", 128, "tokens of each user message")
	gen := fs.Int("gen", 16, "tokens generated per turn")
	size := fs.String("synth", "small", "synthetic model written when MODEL is omitted: small or tiny")
	seed := fs.Uint64("seed", 1, "seed of the random user messages")
	reps := fs.Int("reps", 3, "repetitions of each measurement; the best counts")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("want at most one MODEL")
	}
	if *turns < 1 || *turnTokens < 1 || *gen < 1 || *reps < 1 {
		return usagef("--turns, --turn-tokens, --gen and --reps must be positive")
	}
	path := ""
	if len(pos) == 1 {
		path = pos[0]
	} else {
		var spec synth.Spec
		switch *size {
		case "small":
			spec = synth.Small()
		case "tiny":
			spec = synth.Tiny("llama")
		default:
			return usagef("--synth %q: want small or tiny", *size)
		}
		dir, err := os.MkdirTemp("", "mnemo-bench-sessions-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "synth-"+*size+".gguf")
		if err := synth.WriteFile(path, spec); err != nil {
			return err
		}
	}
	// The longest history, and room for it twice (the live session and
	// the recomputed one) in the cache.
	hist := *turns * (*turnTokens + *gen)
	l, err := mf.open(env, path, func(o *engineOptions) {
		o.ContextLength = max(o.ContextLength, hist+8)
		o.KVTokens = 2*(hist+8) + 64
	})
	if err != nil {
		return err
	}
	defer l.Close()
	rt, err := runtime.New(l.model, runtime.Options{MaxBatchTokens: mf.batch, ContextLength: hist + 8})
	if err != nil {
		return err
	}
	defer rt.Close()
	name := filepath.Base(path)
	if len(pos) == 0 {
		name += " (synthetic)"
	}
	fmt.Fprintf(env.Stdout, "model %s: %d turns of %d tokens, %d generated per turn, prefill chunk %d\n",
		name, *turns, *turnTokens, *gen, mf.batch)
	res, err := benchSessions(ctx, rt, l.model.Config().VocabSize, *turns, *turnTokens, *gen, *reps, *seed, env.Stdout)
	if err != nil {
		return err
	}
	printSessionSummary(env.Stdout, res)
	return nil
}

// benchSessions runs the conversation, printing a row per turn.
func benchSessions(ctx context.Context, rt *runtime.Runtime, vocab, turns, turnTokens, gen, reps int, seed uint64, w io.Writer) ([]sessionTurn, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5e5510))
	random := func(n int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(3 + rng.IntN(vocab-3)) // skip <unk>, <s>, </s>
		}
		return out
	}
	// Warm up: compile the step shapes a turn uses.
	if _, err := recomputeTTFT(ctx, rt, "bench-warmup", random(turnTokens)); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	live, err := rt.Open(ctx, "bench-live", runtime.SessionOptions{})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "%4s %8s %8s  %10s  %-33s  %12s  %9s  %9s\n",
		"turn", "history", "prefill", "(a) live", "(b) restored", "(c) recompute", "(c)/(a)", "tg tok/s")
	var out []sessionTurn
	for turn := 1; turn <= turns; turn++ {
		msg := random(turnTokens)
		r := sessionTurn{Turn: turn}
		hist := live.Tokens()
		full := append(slices.Clone(hist), msg...)
		r.History = len(full)
		// (c) a fresh sequence fed the whole history.
		for rep := range reps {
			d, err := recomputeTTFT(ctx, rt, fmt.Sprint("bench-recompute-", turn, "-", rep), full)
			if err != nil {
				return nil, fmt.Errorf("turn %d: recompute: %w", turn, err)
			}
			if rep == 0 || d < r.Recompute {
				r.Recompute = d
			}
		}
		// (b) restored from disk (not wired yet).
		r.Restored, r.RestoredErr = restoredTTFT(ctx, rt, live, msg)
		// (a) the live session: only the new message (and the last reply
		// token, sampled but not yet fed) is prefilled. Each repetition
		// rewinds to the cached history; the last one keeps its reply.
		cached := live.Cached()
		part := append(slices.Clone(hist[cached:]), msg...)
		r.LivePrefill = len(part)
		for rep := range reps {
			if err := live.Rewind(ctx, cached); err != nil {
				return nil, err
			}
			n := 1
			if rep == reps-1 {
				n = gen
			}
			d, tg, err := liveTTFT(ctx, live, part, n)
			if err != nil {
				return nil, fmt.Errorf("turn %d: live: %w", turn, err)
			}
			if rep == 0 || d < r.Live {
				r.Live = d
			}
			r.DecodeTokS = tg
		}
		restored := "n/a (" + errNotWired.Error() + ")"
		if r.RestoredErr == nil {
			restored = ms(r.Restored)
		} else if !errors.Is(r.RestoredErr, errNotWired) {
			restored = "error: " + r.RestoredErr.Error()
		}
		fmt.Fprintf(w, "%4d %8d %8d  %10s  %-33s  %12s  %8.1f×  %9.1f\n",
			turn, r.History, r.LivePrefill, ms(r.Live), restored, ms(r.Recompute),
			r.Recompute.Seconds()/max(r.Live.Seconds(), 1e-9), r.DecodeTokS)
		out = append(out, r)
	}
	return out, nil
}

// recomputeTTFT times a fresh session's prefill of tokens and its first
// generated token, then deletes the session.
func recomputeTTFT(ctx context.Context, rt *runtime.Runtime, id string, tokens []int32) (time.Duration, error) {
	s, err := rt.Open(ctx, id, runtime.SessionOptions{})
	if err != nil {
		return 0, err
	}
	defer rt.Delete(ctx, id)
	start := time.Now()
	if err := s.Append(ctx, tokens); err != nil {
		return 0, err
	}
	if _, _, _, err := runtime.Collect(s.Generate(ctx, runtime.GenerateOptions{MaxTokens: 1})); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// liveTTFT appends part to s and generates n tokens; it returns the time
// to the first and the decode speed after it.
func liveTTFT(ctx context.Context, s *runtime.Session, part []int32, n int) (time.Duration, float64, error) {
	start := time.Now()
	if err := s.Append(ctx, part); err != nil {
		return 0, 0, err
	}
	var first time.Time
	k := 0
	for ev, err := range s.Generate(ctx, runtime.GenerateOptions{MaxTokens: n}) {
		if err != nil {
			return 0, 0, err
		}
		if ev.Done {
			break
		}
		if k++; k == 1 {
			first = time.Now()
		}
	}
	if k == 0 {
		return 0, 0, errors.New("no token generated")
	}
	tg := 0.0
	if k > 1 {
		tg = float64(k-1) / time.Since(first).Seconds()
	}
	return first.Sub(start), tg, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", d.Seconds()*1000) }

// printSessionSummary prints the totals and, in Go benchmark format, the
// last turn (the longest history).
func printSessionSummary(w io.Writer, res []sessionTurn) {
	var live, re time.Duration
	for _, r := range res {
		live += r.Live
		re += r.Recompute
	}
	last := res[len(res)-1]
	fmt.Fprintf(w, "total TTFT: live %s, recompute %s (%.1f×); last turn %.1f× with %d tokens of history\n",
		ms(live), ms(re), re.Seconds()/max(live.Seconds(), 1e-9),
		last.Recompute.Seconds()/max(last.Live.Seconds(), 1e-9), last.History)
	for _, mode := range []string{"live", "recompute"} {
		d := last.Live
		if mode == "recompute" {
			d = last.Recompute
		}
		fmt.Fprintf(w, "BenchmarkSessions/turn=%d/history=%d/mode=%s 1 %d ns/ttft\n", last.Turn, last.History, mode, d.Nanoseconds())
	}
}
