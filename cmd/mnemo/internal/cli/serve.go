package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/kvcache"
	"github.com/mnemo-ai/mnemo/runtime"
	"github.com/mnemo-ai/mnemo/runtime/httpapi"
)

func init() {
	register(&Command{
		Name: "serve",
		Args: "MODEL [--addr 127.0.0.1:8080] [--state-dir DIR] [--name NAME] [flags]",
		Summary: "serve the OpenAI-compatible HTTP API (chat and text completions, SSE streaming, " +
			"stateful sessions kept in --state-dir, Prometheus /metrics)",
		Run: runServe,
	})
}

// serveReadHeaderTimeout bounds how long a client may take to send its
// request headers. There is no write timeout: streams last as long as
// their generation.
const serveReadHeaderTimeout = 10 * time.Second

func runServe(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "serve")
	var mf modelFlags
	mf.register(fs)
	var sf sampleFlags
	var temp, topP, minP, rep float64
	sf.register(fs, &temp, &topP, &minP, &rep)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (host:port; port 0 picks a free one)")
	name := fs.String("name", "", "model id in the API (default: the model file's name)")
	n := fs.Int("n", 1024, "most tokens per reply when a request sets no max_tokens")
	tokPath := fs.String("tokenizer", "", "llama2.c tokenizer.bin (llama2.c checkpoints carry no vocabulary)")
	maxBody := fs.Int64("max-body", httpapi.DefaultMaxBodyBytes, "largest request body in bytes")
	maxSessions := fs.Int("max-sessions", 64, "client sessions kept loaded; the least recently used idle one is saved and unloaded past it (0: no limit)")
	drain := fs.Duration("shutdown-timeout", 10*time.Second, "how long shutdown waits for requests to end")
	snapRate := fs.Float64("snapshot-rate", 0, "cap session snapshot writes at this many MB/s (0: no cap)")
	snapShare := fs.Float64("snapshot-share", 0, fmt.Sprintf("share of wall time session snapshot writes take while the model runs (0: the default %g, 1: unpaced); idle, they go at full speed", kvcache.DefaultBackgroundShare))
	stateDir := stateDirFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one MODEL")
	}
	if *n < 1 || *maxBody < 1 || *drain < 0 || *maxSessions < 0 || *snapRate < 0 || *snapShare < 0 || *snapShare > 1 {
		return usagef("-n and --max-body must be positive, --max-sessions, --shutdown-timeout and --snapshot-rate not negative, --snapshot-share in [0, 1]")
	}
	sf.opts.Temperature, sf.opts.TopP, sf.opts.MinP, sf.opts.RepeatPenalty = float32(temp), float32(topP), float32(minP), float32(rep)
	sf.opts.MaxTokens, sf.opts.Stop, sf.opts.PenaltyLastN = *n, sf.stop, 64
	if err := sf.opts.Validate(); err != nil {
		return usagef("%v", err)
	}
	path := pos[0]
	if *name == "" {
		*name = filepath.Base(path)
	}
	state, err := resolveStateDir(env, *stateDir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(env.Stderr, nil))

	mf.storedKV = func(src model.Source) string { return storedKV(state, path, src, &mf, *tokPath, "") }
	l, err := mf.open(env, path, nil)
	if err != nil {
		return err
	}
	defer l.Close() // last: the model, then the backend
	tok, tmpl, err := loadTokenizer(l.src, *tokPath)
	if err != nil {
		return err
	}

	// The session store, as `mnemo run --session` opens it, so the two
	// share sessions (one process at a time).
	fp, mi, err := sessionFingerprint(path, l.src, &mf, *tokPath)
	if err != nil {
		return err
	}
	secret, err := loadSecret(state)
	if err != nil {
		return err
	}
	dir := filepath.Join(state, fpDir(fp))
	kv := l.model.KV()
	mi.BlockBytes = kv.BytesPerToken() * kv.BlockTokens
	if err := writeModelInfo(dir, mi); err != nil {
		return err
	}
	unlock, err := lockStore(dir)
	if err != nil {
		return err
	}
	defer unlock()
	store, err := runtime.OpenDiskStore(dir, runtime.DiskOptions{Fingerprint: fp, KV: kv, Secret: secret,
		HostBytes: sessionHostBytes, WriteBytesPerSec: int64(*snapRate * 1e6),
		BackgroundShare: *snapShare})
	if err != nil {
		return err
	}
	rt, err := runtime.New(l.model, runtime.Options{MaxBatchTokens: mf.batch, ContextLength: mf.context,
		Tokenizer: tok, Template: tmpl, Store: store, Fingerprint: store.FingerprintID(),
		Cache: store.Cache(), Secret: secret, Logger: logger})
	if err != nil {
		return err
	}
	rtClosed := false
	defer func() {
		if !rtClosed {
			rt.Close()
		}
	}()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Requests run under base, cancelled when draining starts so that
	// streams end (with a 503 error event) instead of holding Shutdown
	// until its timeout.
	base, cancelBase := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelBase(nil)
	srv := &http.Server{
		Handler: httpapi.New(rt, httpapi.Options{ModelName: *name, Logger: logger, MaxBodyBytes: *maxBody,
			Sampling: &sf.opts, MaxSessions: *maxSessions}),
		ReadHeaderTimeout: serveReadHeaderTimeout,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("listening", "addr", ln.Addr().String(), "model", *name, "state_dir", dir,
		"url", "http://"+ln.Addr().String()+"/v1")
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	logger.Info("shutting down")
	cancelBase(httpapi.ErrShuttingDown)
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("shutdown: %w", err))
	}
	if serveErr == nil {
		serveErr = <-served
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	rtClosed = true
	if err := rt.Close(); err != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("save sessions: %w", err))
	}
	logger.Info("stopped")
	return serveErr
}
