package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
	"github.com/mnemo-ai/mnemo/runtime"
)

// sessionHostBytes is the host tier of a session run's prefix cache.
const sessionHostBytes = 64 << 20

// sessionRun is `mnemo run --session`: the conversation runs through the
// runtime with a DiskStore, so it resumes across processes.
type sessionRun struct {
	env      Env
	l        *loaded
	mf       *modelFlags
	path     string
	tokPath  string
	tok      *tokenizer.Tokenizer
	tmpl     string
	opts     sample.Options
	stateDir string
	name     string
	system   string
	stats    bool
	ctxLen   int

	rt     *runtime.Runtime
	s      *runtime.Session
	unlock func()
}

// ephemeralID is the session a run without --session uses; nothing is
// stored.
const ephemeralID = "run"

// open builds the store and runtime and opens the named session; without
// a name, a runtime with no store and a session that ends with the run.
func (r *sessionRun) open(ctx context.Context) error {
	if r.name == "" {
		var err error
		r.unlock = func() {}
		r.rt, err = runtime.New(r.l.model, runtime.Options{MaxBatchTokens: r.mf.batch, ContextLength: r.ctxLen,
			Tokenizer: r.tok, Template: r.tmpl})
		if err != nil {
			return err
		}
		if r.s, err = r.rt.Open(ctx, ephemeralID, runtime.SessionOptions{Sampling: r.opts}); err != nil {
			r.rt.Close()
			return err
		}
		return nil
	}
	state, err := resolveStateDir(r.env, r.stateDir)
	if err != nil {
		return err
	}
	fp, mi, err := sessionFingerprint(r.path, r.l.src, r.mf, r.tokPath)
	if err != nil {
		return err
	}
	secret, err := loadSecret(state)
	if err != nil {
		return err
	}
	dir := filepath.Join(state, fpDir(fp))
	kv := r.l.model.KV()
	mi.BlockBytes = kv.BytesPerToken() * kv.BlockTokens
	if err := writeModelInfo(dir, mi); err != nil {
		return err
	}
	if r.unlock, err = lockStore(dir); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			r.unlock()
		}
	}()
	store, err := runtime.OpenDiskStore(dir, runtime.DiskOptions{Fingerprint: fp, KV: kv, Secret: secret,
		HostBytes: sessionHostBytes})
	if err != nil {
		return err
	}
	if _, err := store.Peek(r.name); errors.Is(err, runtime.ErrNotFound) {
		if err := checkOtherModels(state, fp, r.name); err != nil {
			return err
		}
	}
	r.rt, err = runtime.New(r.l.model, runtime.Options{MaxBatchTokens: r.mf.batch, ContextLength: r.ctxLen,
		Tokenizer: r.tok, Template: r.tmpl, Store: store, Fingerprint: store.FingerprintID(),
		Cache: store.Cache(), Secret: secret})
	if err != nil {
		return err
	}
	r.s, err = r.rt.Open(ctx, r.name, runtime.SessionOptions{Sampling: r.opts})
	if err != nil {
		r.rt.Close()
		return err
	}
	ok = true
	if n := r.s.Len(); n > 0 && r.stats {
		fmt.Fprintf(r.env.Stderr, "[session %s: resumed, %d tokens of history, %d cached]\n", r.name, n, r.s.Cached())
	}
	return nil
}

// close saves the session and stops the runtime.
func (r *sessionRun) close() error {
	err := r.s.Close()
	if errors.Is(err, runtime.ErrSessionClosed) {
		err = nil
	}
	err = errors.Join(err, r.rt.Close())
	r.unlock()
	return err
}

// turn feeds one message (a chat turn, or raw text to continue) and
// streams the reply.
func (r *sessionRun) turn(ctx context.Context, text string, chatMode bool) error {
	before := r.rt.Stats().PrefillTokens
	start := time.Now()
	var err error
	if chatMode {
		var msgs []chat.Message
		if r.s.Len() == 0 && r.system != "" {
			msgs = append(msgs, chat.Message{Role: "system", Content: r.system})
		}
		err = r.s.AppendMessages(ctx, append(msgs, chat.Message{Role: "user", Content: text})...)
	} else {
		fmt.Fprint(r.env.Stdout, text)
		err = r.s.AppendText(ctx, text)
	}
	if err != nil {
		return err
	}
	appended := time.Since(start)
	total := r.s.Len()
	var res runtime.Result
	for ev, gerr := range r.s.Generate(ctx, runtime.GenerateOptions{Sampling: &r.opts}) {
		if ev.Done {
			if ev.Result != nil {
				res = *ev.Result
			}
			err = gerr
			break
		}
		if _, werr := io.WriteString(r.env.Stdout, ev.Text); werr != nil {
			return werr
		}
	}
	if r.stats && (err == nil || errors.Is(err, context.Canceled)) {
		prefilled := int(r.rt.Stats().PrefillTokens - before)
		pre := appended + res.TTFT
		gen := float64(max(res.GenTokens-1, 0)) / max((res.Duration-res.TTFT).Seconds(), 1e-9)
		label := ""
		if r.name != "" {
			label = "session " + r.name + ": "
		}
		fmt.Fprintf(r.env.Stderr, "\n[%s%d tokens cached, prefill %d tokens in %.0f ms (%.1f tok/s), "+
			"generated %d tokens (%.1f tok/s), %d in cache, stop: %s]\n",
			label, max(total-prefilled, 0), prefilled, pre.Seconds()*1000, float64(prefilled)/max(pre.Seconds(), 1e-9),
			res.GenTokens, gen, r.s.Cached(), res.Finish)
	}
	return err
}

func (r *sessionRun) interactive(ctx context.Context) error {
	in := bufio.NewScanner(r.env.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	label := ""
	if r.name != "" {
		label = " (session " + r.name + ")"
	}
	fmt.Fprintf(r.env.Stderr, "chat%s: type a message and press enter; an empty line or Ctrl-D quits\n", label)
	for {
		fmt.Fprint(r.env.Stderr, "> ")
		if !in.Scan() {
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		if line == "" {
			return nil
		}
		if err := r.turn(ctx, line, true); err != nil {
			return err
		}
		fmt.Fprintln(r.env.Stdout)
	}
}

// runWithSession runs one turn of the session — the named one with
// --session, else one that ends with the run — from prompt (else stdin,
// or an interactive chat on a terminal).
func runWithSession(ctx context.Context, r *sessionRun, prompt string, chatMode bool) (err error) {
	if err := r.open(ctx); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.close()) }()
	if prompt == "" && isTerminal(r.env.Stdin) {
		return r.interactive(ctx)
	}
	if prompt == "" {
		b, err := io.ReadAll(r.env.Stdin)
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		prompt = string(b)
	}
	err = r.turn(ctx, prompt, chatMode)
	fmt.Fprintln(r.env.Stdout)
	return err
}
