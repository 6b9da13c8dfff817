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
	"sync"
	"time"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/kernels/format"
	"github.com/mnemo-ai/mnemo/kvcache"
	"github.com/mnemo-ai/mnemo/runtime"
)

func init() {
	register(&Command{
		Name: "bench sessions",
		Args: "[MODEL] [--turns 32] [--turn-tokens 64] [--gen 16] [--reps 3] [--shared-sessions 16] [--shared-prefix 1024] [flags]",
		Summary: "multi-turn conversation: time to first token of a live session, one restored from disk after a " +
			"restart and one recomputing the whole history; prefix sharing and snapshot writes " +
			"(MODEL defaults to a synthetic model)",
		Run: runBenchSessions,
	})
}

// sessionTurn is one turn's measurements.
type sessionTurn struct {
	Turn        int
	History     int // tokens a stateless server must prefill for this turn
	LivePrefill int // tokens the live session prefilled
	Live        time.Duration
	Restored    time.Duration
	Recompute   time.Duration
	DecodeTokS  float64 // live session's decode speed after the first token
}

// benchSetup is what the measurements share: the model, its store and
// runtime, and how to start a second process on the same state.
type benchSetup struct {
	env    Env
	mf     *modelFlags
	path   string
	l      *loaded
	dir    string // the model's directory in the state directory
	fp     kvcache.Fingerprint
	secret []byte
	store  *runtime.DiskStore
	rt     *runtime.Runtime
	ctxLen int
	cold   bool
	extra  func(*engineOptions)
	// snapPause spaces the snapshot writes of the shared measurement;
	// snapRate caps their rate (bytes/s, 0: none); snapShare is the
	// store's background share (0: the default).
	snapPause time.Duration
	snapRate  int64
	snapShare float64
}

const benchLive = "bench-live"

func runBenchSessions(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "bench sessions")
	var mf modelFlags
	mf.register(fs)
	turns := fs.Int("turns", 32, "conversation turns")
	turnTokens := fs.Int("turn-tokens", 64, "tokens of each user message")
	gen := fs.Int("gen", 16, "tokens generated per turn")
	size := fs.String("synth", "small", "synthetic model written when MODEL is omitted: small, tiny or tinyllama (1.1B, f16; combine with --weights fp8 or mxfp4)")
	seed := fs.Uint64("seed", 1, "seed of the random user messages")
	reps := fs.Int("reps", 3, "repetitions of each measurement; the best counts")
	sharedN := fs.Int("shared-sessions", 16, "sessions sharing a system prompt (0: skip the prefix and snapshot measurements)")
	sharedPrefix := fs.Int("shared-prefix", 1024, "tokens of the shared system prompt")
	decoders := fs.Int("decoders", 4, "sessions decoding while snapshots are written")
	decodeTokens := fs.Int("decode-tokens", 128, "tokens each of them generates per measurement")
	snapPause := fs.Duration("snap-pause", 0, "pause between two snapshot writes while the decoders run (0: back to back)")
	snapRate := fs.Float64("snap-rate", 0, "cap on the snapshot block write rate, MB/s (0: none)")
	snapShare := fs.Float64("snap-share", 0, fmt.Sprintf("share of wall time snapshot writes take while the model runs (0: the default %g, 1: unpaced)", kvcache.DefaultBackgroundShare))
	cold := fs.Bool("cold", true, "drop the state files from the page cache before each restore (Linux)")
	stateDir := fs.String("state-dir", "", "state directory for the snapshots (default: a temporary one, removed after)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the prefix and snapshot measurements to FILE (go tool pprof)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("want at most one MODEL")
	}
	if *turns < 1 || *turnTokens < 1 || *gen < 1 || *reps < 1 || *sharedN < 0 || *sharedPrefix < 1 ||
		*decoders < 1 || *decodeTokens < 1 {
		return usagef("--turns, --turn-tokens, --gen, --reps, --shared-prefix, --decoders and --decode-tokens must be positive")
	}
	*decoders = min(*decoders, *sharedN)
	// The longest history, and the longest shared-prefix session.
	hist := *turns * (*turnTokens + *gen)
	need := max(hist, *sharedPrefix+*turnTokens+*gen+*decodeTokens) + 8
	tmp, err := os.MkdirTemp("", "mnemo-bench-sessions-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
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
		case "tinyllama":
			spec = synth.TinyLlamaShape()
		default:
			return usagef("--synth %q: want small, tiny or tinyllama", *size)
		}
		spec.Context = max(spec.Context, need)
		path = filepath.Join(tmp, "synth-"+*size+".gguf")
		if err := synth.WriteFile(path, spec); err != nil {
			return err
		}
		// Quantise once into the file rather than on every load: the
		// restore measurement restarts the runtime each turn.
		if mf.weights != "auto" {
			t, err := format.ParseType(mf.weights)
			if err != nil {
				return usagef("--weights: %v", err)
			}
			if ft, _ := engine.FileType(t); ft != 0 && t != format.F16 {
				q := filepath.Join(tmp, "synth-"+*size+"-"+mf.weights+".gguf")
				if _, err := engine.QuantizeFile(path, q, t, nil); err != nil {
					return err
				}
				if err := os.Remove(path); err != nil {
					return err
				}
				path = q
			}
		}
	}
	state := *stateDir
	if state == "" {
		state = filepath.Join(tmp, "state")
	}
	// Room for the live session and a recomputed copy, the shared-prefix
	// sessions (the prompt once, each its own tail) and their decodes.
	kvTokens := 2*(hist+8) + *sharedPrefix + *sharedN*(*turnTokens+*gen+*decodeTokens+2*sessionBlockTokens) + 256
	extra := func(o *engineOptions) {
		o.ContextLength = max(o.ContextLength, need)
		o.KVTokens = kvTokens
		o.BlockTokens = sessionBlockTokens
	}
	if *snapShare < 0 || *snapShare > 1 {
		return usagef("--snap-share must be in [0, 1]")
	}
	if *snapRate < 0 {
		return usagef("--snap-rate must not be negative")
	}
	b := &benchSetup{env: env, mf: &mf, path: path, ctxLen: need, cold: *cold, extra: extra, snapPause: *snapPause,
		snapRate: int64(*snapRate * 1e6), snapShare: *snapShare}
	if err := b.start(state); err != nil {
		return err
	}
	defer b.close()
	name := filepath.Base(path)
	if len(pos) == 0 {
		name += " (synthetic)"
	}
	kv := b.l.model.KV()
	fmt.Fprintf(env.Stdout, "model %s: %d turns of %d tokens, %d generated per turn, prefill chunk %d, KV %s, %d B/token\n",
		name, *turns, *turnTokens, *gen, mf.batch, mf.kv, kv.BytesPerToken())
	vocab := b.l.model.Config().VocabSize
	rng := rand.New(rand.NewPCG(*seed, 0x5e5510))
	random := func(n int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(3 + rng.IntN(vocab-3)) // skip <unk>, <s>, </s>
		}
		return out
	}
	res, err := b.conversation(ctx, random, *turns, *turnTokens, *gen, *reps, env.Stdout)
	if err != nil {
		return err
	}
	printSessionSummary(env.Stdout, res)
	if *sharedN == 0 {
		return nil
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if err := b.shared(ctx, random, *sharedN, *sharedPrefix, *turnTokens, *decoders, *decodeTokens, *reps, env.Stdout); err != nil {
		return fmt.Errorf("shared prefix: %w", err)
	}
	return nil
}

// start loads the model and opens its store and runtime.
func (b *benchSetup) start(state string) error {
	l, err := b.mf.open(b.env, b.path, b.extra)
	if err != nil {
		return err
	}
	b.l = l
	fp, mi, err := sessionFingerprint(b.path, l.src, b.mf, "")
	if err != nil {
		return err
	}
	if b.secret, err = loadSecret(state); err != nil {
		return err
	}
	b.fp = fp
	b.dir = filepath.Join(state, fpDir(fp))
	kv := l.model.KV()
	mi.BlockBytes = kv.BytesPerToken() * kv.BlockTokens
	if err := writeModelInfo(b.dir, mi); err != nil {
		return err
	}
	// No host or disk tier: evicted prefix blocks are forgotten, so that
	// nothing but the measured work moves bytes.
	if b.store, err = runtime.OpenDiskStore(b.dir, runtime.DiskOptions{Fingerprint: fp, KV: kv, Secret: b.secret,
		WriteBytesPerSec: b.snapRate, BackgroundShare: b.snapShare}); err != nil {
		return err
	}
	b.rt, err = runtime.New(l.model, runtime.Options{MaxBatchTokens: b.mf.batch, ContextLength: b.ctxLen,
		Store: b.store, Fingerprint: b.store.FingerprintID(), Cache: b.store.Cache(), Secret: b.secret})
	return err
}

func (b *benchSetup) close() {
	if b.rt != nil {
		for _, id := range b.rt.Sessions() {
			b.rt.Delete(context.Background(), id)
		}
		b.rt.Close()
	}
	if b.l != nil {
		b.l.Close()
	}
}

// readOnly is a Store that never writes: the restarted process of the
// measurement (b) must not replace the live session's snapshot.
type readOnly struct{ *runtime.DiskStore }

func (readOnly) Save(context.Context, *runtime.State) error { return nil }

// restoredTTFT measures (b): the live session is saved, then a second
// "process" (the model loaded again, a new store, cache and runtime on
// the same state directory) opens it, appends next and generates one
// token. Loading the model is not timed; opening the session (reading the
// snapshot and its blocks) is.
func (b *benchSetup) restoredTTFT(ctx context.Context, live *runtime.Session, next []int32, reps int) (time.Duration, error) {
	if err := live.Save(ctx); err != nil {
		return 0, err
	}
	var best time.Duration
	for rep := range reps {
		d, err := b.restartOnce(ctx, next, live.Cached())
		if err != nil {
			return 0, err
		}
		if rep == 0 || d < best {
			best = d
		}
	}
	return best, nil
}

func (b *benchSetup) restartOnce(ctx context.Context, next []int32, cached int) (time.Duration, error) {
	l, err := b.mf.open(b.env, b.path, b.extra)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	store, err := runtime.OpenDiskStore(b.dir, runtime.DiskOptions{Fingerprint: b.fp, KV: l.model.KV(), Secret: b.secret})
	if err != nil {
		return 0, err
	}
	rt, err := runtime.New(l.model, runtime.Options{MaxBatchTokens: b.mf.batch, ContextLength: b.ctxLen,
		Store: readOnly{store}, Fingerprint: store.FingerprintID(), Cache: store.Cache(), Secret: b.secret})
	if err != nil {
		return 0, err
	}
	defer rt.Close()
	if b.cold {
		dropPageCache(b.dir)
	}
	start := time.Now()
	s, err := rt.Open(ctx, benchLive, runtime.SessionOptions{})
	if err != nil {
		return 0, err
	}
	if s.Cached() != cached {
		return 0, fmt.Errorf("the restored session holds %d tokens of KV, want %d", s.Cached(), cached)
	}
	if err := s.Append(ctx, next); err != nil {
		return 0, err
	}
	if _, _, _, err := runtime.Collect(s.Generate(ctx, runtime.GenerateOptions{MaxTokens: 1})); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// conversation runs the multi-turn conversation, printing a row per turn.
func (b *benchSetup) conversation(ctx context.Context, random func(int) []int32, turns, turnTokens, gen, reps int, w io.Writer) ([]sessionTurn, error) {
	rt := b.rt
	// Warm up: compile the step shapes a turn uses.
	if _, err := recomputeTTFT(ctx, rt, "bench-warmup", random(turnTokens)); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	live, err := rt.Open(ctx, benchLive, runtime.SessionOptions{})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "%4s %8s %8s  %10s  %12s  %13s  %8s  %8s  %9s\n",
		"turn", "history", "prefill", "(a) live", "(b) restored", "(c) recompute", "(c)/(a)", "(c)/(b)", "tg tok/s")
	var out []sessionTurn
	for turn := 1; turn <= turns; turn++ {
		msg := random(turnTokens)
		r := sessionTurn{Turn: turn}
		hist := live.Tokens()
		full := append(slices.Clone(hist), msg...)
		r.History = len(full)
		// (c) a fresh sequence fed the whole history (its own tenant per
		// repetition: nothing is shared with the live session or the
		// other repetitions).
		for rep := range reps {
			d, err := recomputeTTFT(ctx, rt, fmt.Sprint("bench-recompute-", turn, "-", rep), full)
			if err != nil {
				return nil, fmt.Errorf("turn %d: recompute: %w", turn, err)
			}
			if rep == 0 || d < r.Recompute {
				r.Recompute = d
			}
		}
		// (b) restored from disk after a restart.
		if r.Restored, err = b.restoredTTFT(ctx, live, msg, reps); err != nil {
			return nil, fmt.Errorf("turn %d: restored: %w", turn, err)
		}
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
		fmt.Fprintf(w, "%4d %8d %8d  %10s  %12s  %13s  %7.1f×  %7.1f×  %9.1f\n",
			turn, r.History, r.LivePrefill, ms(r.Live), ms(r.Restored), ms(r.Recompute),
			ratio(r.Recompute, r.Live), ratio(r.Recompute, r.Restored), r.DecodeTokS)
		out = append(out, r)
	}
	return out, nil
}

func ratio(a, b time.Duration) float64 { return a.Seconds() / max(b.Seconds(), 1e-9) }

// recomputeTTFT times a fresh session's prefill of tokens and its first
// generated token, then deletes the session. The session has a tenant of
// its own (its id), so it shares no cached prefix.
func recomputeTTFT(ctx context.Context, rt *runtime.Runtime, id string, tokens []int32) (time.Duration, error) {
	s, err := rt.Open(ctx, id, runtime.SessionOptions{Tenant: id})
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
	var live, restored, re time.Duration
	for _, r := range res {
		live += r.Live
		restored += r.Restored
		re += r.Recompute
	}
	last := res[len(res)-1]
	fmt.Fprintf(w, "total TTFT: live %s, restored %s, recompute %s (recompute/live %.1f×, recompute/restored %.1f×)\n",
		ms(live), ms(restored), ms(re), ratio(re, live), ratio(re, restored))
	fmt.Fprintf(w, "last turn, %d tokens of history: recompute/live %.1f×, recompute/restored %.1f×\n",
		last.History, ratio(last.Recompute, last.Live), ratio(last.Recompute, last.Restored))
	for _, m := range []struct {
		mode string
		d    time.Duration
	}{{"live", last.Live}, {"restored", last.Restored}, {"recompute", last.Recompute}} {
		fmt.Fprintf(w, "BenchmarkSessions/turn=%d/history=%d/mode=%s 1 %d ns/ttft\n", last.Turn, last.History, m.mode, m.d.Nanoseconds())
	}
}

// shared measures prefix sharing (n sessions with a common system prompt:
// KV in use against n separate sessions) and snapshot writes (throughput,
// and the decode speed of other sessions meanwhile).
func (b *benchSetup) shared(ctx context.Context, random func(int) []int32, n, prefix, turnTokens, decoders, decodeTokens, reps int, w io.Writer) error {
	rt, c := b.rt, b.store.Cache()
	kv := b.l.model.KV()
	bb := int64(kv.BytesPerToken() * kv.BlockTokens)
	system := append([]int32{1}, random(prefix-1)...)
	inUse := func() int64 { return int64(c.Stats().InUse) * bb }
	base := inUse()
	fed := rt.Stats().PrefillTokens
	var sessions []*runtime.Session
	var one int64
	for i := range n {
		s, err := rt.Open(ctx, fmt.Sprint("bench-shared-", i), runtime.SessionOptions{})
		if err != nil {
			return err
		}
		sessions = append(sessions, s)
		if err := s.Append(ctx, append(slices.Clone(system), random(turnTokens)...)); err != nil {
			return err
		}
		if i == 0 {
			one = inUse() - base
		}
	}
	used := inUse() - base
	prefilled := rt.Stats().PrefillTokens - fed
	alone := int64(n) * one
	fmt.Fprintf(w, "shared prefix: %d sessions of a %d-token system prompt + %d tokens: KV in use %.1f MiB vs %.1f MiB for %d separate sessions "+
		"(%.2f× one session, %.1f%% of separate); prefilled %d tokens vs %d\n",
		n, prefix, turnTokens, mib(used), mib(alone), n, float64(used)/float64(max(one, 1)),
		100*float64(used)/float64(max(alone, 1)), prefilled, n*(prefix+turnTokens))
	fmt.Fprintf(w, "BenchmarkSessions/shared/sessions=%d/prefix=%d 1 %d kv_bytes %d separate_kv_bytes\n", n, prefix, used, alone)

	// Snapshot writes of the live conversation (its blocks are its own:
	// each save writes them all, the delete after it removes them) while
	// decoders sessions generate.
	live := rt.Session(benchLive)
	if live == nil {
		return errors.New("the live session is gone")
	}
	dec := sessions[:decoders]
	decode := func() (float64, error) {
		var wg sync.WaitGroup
		errs := make([]error, len(dec))
		start := time.Now()
		for i, s := range dec {
			wg.Go(func() {
				_, _, _, errs[i] = runtime.Collect(s.Generate(ctx, runtime.GenerateOptions{MaxTokens: decodeTokens}))
			})
		}
		wg.Wait()
		el := time.Since(start)
		for _, s := range dec {
			if err := s.Rewind(ctx, s.Len()-decodeTokens); err != nil {
				errs = append(errs, err)
			}
		}
		return float64(len(dec)*decodeTokens) / el.Seconds(), errors.Join(errs...)
	}
	// One snapshot write: the live session saved (all its blocks, as
	// none is stored) and deleted again.
	info := int64((live.Cached() + kv.BlockTokens - 1) / kv.BlockTokens * int(bb))
	saveOnce := func() (time.Duration, error) {
		start := time.Now()
		if err := live.Save(ctx); err != nil {
			return 0, err
		}
		d := time.Since(start)
		// The delete is there to make the next save write every block
		// again; it goes on the writes' budget.
		start = time.Now()
		err := b.store.Delete(ctx, benchLive)
		b.store.Pacer().Pace(time.Since(start))
		return d, err
	}
	// Its blocks may be stored already (by the restore measurement): drop
	// them so that every save below writes them all.
	if err := b.store.Delete(ctx, benchLive); err != nil {
		return err
	}
	// Full speed: nothing else runs, so the writes are not paced.
	var idleTime time.Duration
	for range reps {
		d, err := saveOnce()
		if err != nil {
			return err
		}
		idleTime += d
	}
	idleMBs := float64(int64(reps)*info) / 1e6 / max(idleTime.Seconds(), 1e-9)
	var snapBytes int64
	var snapTime, writing time.Duration
	writer := func(stop <-chan struct{}) error {
		begin := time.Now()
		defer func() { writing += time.Since(begin) }()
		for {
			d, err := saveOnce()
			if err != nil {
				return err
			}
			snapTime += d
			snapBytes += info
			select {
			case <-stop:
				return nil
			case <-time.After(b.snapPause):
			}
		}
	}
	if _, err := decode(); err != nil { // warm-up
		return err
	}
	var quiet, busy float64
	for range reps {
		q, err := decode()
		if err != nil {
			return err
		}
		quiet = max(quiet, q)
		stop := make(chan struct{})
		werr := make(chan error, 1)
		go func() { werr <- writer(stop) }()
		bz, err := decode()
		close(stop)
		if err := errors.Join(err, <-werr); err != nil {
			return err
		}
		busy = max(busy, bz)
	}
	share := b.store.Pacer().Share()
	pacing := fmt.Sprintf("paced to %g%% of the time", 100*share)
	if share >= 1 {
		pacing = "unpaced"
	}
	if b.snapRate > 0 {
		pacing += fmt.Sprintf(", capped at %.1f MB/s", float64(b.snapRate)/1e6)
	}
	mbs := float64(snapBytes) / 1e6 / max(writing.Seconds(), 1e-9)
	fmt.Fprintf(w, "snapshots: %.1f MB/s written at full speed (%d × %.1f MB, fsynced, nothing else running)\n",
		idleMBs, reps, float64(info)/1e6)
	fmt.Fprintf(w, "snapshots while %d sessions decode (%s): %.1f MB/s (%d MB in %s); decode %.1f tok/s alone, "+
		"%.1f tok/s while writing (%+.1f%%)\n",
		decoders, pacing, mbs, snapBytes/1e6, ms(writing), quiet, busy, 100*(busy/quiet-1))
	fmt.Fprintf(w, "BenchmarkSessions/snapshot 1 %.1f MB/s_idle %.1f MB/s_decoding %.1f tok/s_quiet %.1f tok/s_writing\n",
		idleMBs, mbs, quiet, busy)
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
