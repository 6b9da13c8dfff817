package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/runtime"
)

// SessionHeader names the session of a request, like the "session" field.
const SessionHeader = "X-Session-ID"

// DefaultMaxBodyBytes is Options.MaxBodyBytes's default.
const DefaultMaxBodyBytes = 4 << 20

// Options configure the handler.
type Options struct {
	// ModelName is the model's id in /v1/models and responses (default
	// "mnemo").
	ModelName string
	// Logger receives one record per request and the details of internal
	// errors (default slog.Default()).
	Logger *slog.Logger
	// MaxBodyBytes caps a request body (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// Sampling holds the defaults of the fields a request leaves out; nil
	// means OpenAI's (temperature 1, nothing else). Its MaxTokens is the
	// default token cap; a request's seed defaults to a random one.
	Sampling *sample.Options
	// Registry receives the handler's metrics, served on /metrics (nil:
	// a new registry of the handler's own).
	Registry *prometheus.Registry
	// MaxSessions caps the client sessions kept live (loaded, holding KV
	// blocks); past it, after a request the least recently used idle
	// session is closed, which saves it to the runtime's Store (if any)
	// and frees its blocks, and its next request restores it. 0 means no
	// cap.
	MaxSessions int
	// Now returns the time for "created" fields (default time.Now).
	Now func() time.Time
}

// handler serves the API.
type handler struct {
	rt  *runtime.Runtime
	opt Options
	log *slog.Logger
	mux *http.ServeMux
	m   *metrics

	// mu guards the client sessions' use: requests running on each and
	// the time each was last used, for MaxSessions.
	mu     sync.Mutex
	active map[string]bool
	used   map[string]time.Time
	temps  map[string]bool // temporary sessions of stateless requests
}

// New returns the API handler for rt. rt must have a tokenizer for the
// chat and completion endpoints. Closing rt makes them fail with 503.
func New(rt *runtime.Runtime, opt Options) http.Handler {
	if opt.ModelName == "" {
		opt.ModelName = "mnemo"
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opt.Sampling == nil {
		opt.Sampling = &sample.Options{Temperature: 1}
	}
	if opt.Registry == nil {
		opt.Registry = prometheus.NewRegistry()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	h := &handler{rt: rt, opt: opt, log: opt.Logger, mux: http.NewServeMux(), active: map[string]bool{},
		used: map[string]time.Time{}, temps: map[string]bool{}}
	h.m = newMetrics(opt.Registry, rt)
	h.route("GET /v1/models", h.models)
	h.route("GET /v1/models/{id}", h.model)
	h.route("POST /v1/chat/completions", h.chat)
	h.route("POST /v1/completions", h.completions)
	h.route("GET /v1/sessions", h.listSessions)
	h.route("GET /v1/sessions/{id}", h.getSession)
	h.route("DELETE /v1/sessions/{id}", h.deleteSession)
	h.route("GET /metrics", func(w http.ResponseWriter, r *http.Request) error {
		h.m.handler.ServeHTTP(w, r)
		return nil
	})
	h.route("/", h.notFound)
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// statusWriter records the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Flush).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// reqInfo collects what a request's log record reports besides the
// basics; handlers fill it through the request context.
type reqInfo struct {
	session             string
	prompt, cached, gen int
}

type reqInfoKey struct{}

func infoOf(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// route registers an endpoint whose errors become OpenAI error JSON, with
// the body limit, metrics and a log record.
func (h *handler) route(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
	endpoint := pattern
	if pattern == "/" {
		endpoint = "other"
	}
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		ri := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri))
		r.Body = http.MaxBytesReader(sw, r.Body, h.opt.MaxBodyBytes)
		err := h.serve(fn, sw, r)
		if err != nil {
			h.writeError(sw, r, err)
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		if errors.Is(r.Context().Err(), context.Canceled) && err != nil {
			status = 499 // client closed request
		}
		h.m.requests.WithLabelValues(endpoint, fmt.Sprint(status)).Inc()
		attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.Duration("duration", time.Since(start))}
		if ri.session != "" {
			attrs = append(attrs, slog.String("session_id", ri.session))
		}
		if ri.prompt > 0 {
			attrs = append(attrs, slog.Int("prompt_tokens", ri.prompt), slog.Int("cached_tokens", ri.cached),
				slog.Int("generated_tokens", ri.gen))
		}
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
	})
}

// serve runs fn, turning a panic into an internal error.
func (h *handler) serve(fn func(http.ResponseWriter, *http.Request) error, w http.ResponseWriter, r *http.Request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(w, r)
}

// writeError sends err as OpenAI error JSON, unless the response has
// started (a stream sends its own error event).
func (h *handler) writeError(w *statusWriter, r *http.Request, err error) {
	status, body, internal := ErrorFor(err)
	if internal {
		h.log.LogAttrs(r.Context(), slog.LevelError, "internal error", slog.String("path", r.URL.Path),
			slog.String("error", err.Error()))
	}
	if w.status != 0 {
		return
	}
	writeJSON(w, status, body)
}

var knownPaths = map[string]string{
	"/v1/models": "GET", "/v1/chat/completions": "POST", "/v1/completions": "POST", "/metrics": "GET",
}

func (h *handler) notFound(w http.ResponseWriter, r *http.Request) error {
	allow, ok := knownPaths[r.URL.Path]
	if !ok && strings.HasPrefix(r.URL.Path, "/v1/sessions/") {
		allow, ok = "GET, DELETE", true
	}
	if r.URL.Path == "/v1/sessions" {
		allow, ok = "GET", true
	}
	if ok {
		w.Header().Set("Allow", allow)
		return &Error{Status: http.StatusMethodNotAllowed, Type: typeInvalid, Code: "method_not_allowed",
			Message: fmt.Sprintf("%s %s is not allowed (allowed: %s)", r.Method, r.URL.Path, allow)}
	}
	return &Error{Status: http.StatusNotFound, Type: typeNotFound, Code: "unknown_url",
		Message: fmt.Sprintf("unknown endpoint %s %s", r.Method, r.URL.Path)}
}

func (h *handler) modelObject() Model {
	return Model{ID: h.opt.ModelName, Object: "model", Created: 0, OwnedBy: "mnemo"}
}

func (h *handler) models(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, ModelList{Object: "list", Data: []Model{h.modelObject()}})
	return nil
}

func (h *handler) model(w http.ResponseWriter, r *http.Request) error {
	if err := h.checkModel(r.PathValue("id")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.modelObject())
	return nil
}

func (h *handler) checkModel(name string) error {
	if name != "" && name != h.opt.ModelName {
		return &Error{Status: http.StatusNotFound, Type: typeInvalid, Param: "model", Code: "model_not_found",
			Message: fmt.Sprintf("the model %q does not exist (this server serves %q)", name, h.opt.ModelName)}
	}
	return nil
}

// decode reads the JSON body into v.
func (h *handler) decode(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return fmt.Errorf("read body: %w", context.Canceled)
	}
	if err := json.Unmarshal(b, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		if errors.As(err, &se) || errors.As(err, &te) {
			return err
		}
		return &Error{Status: http.StatusBadRequest, Type: typeInvalid, Code: "invalid_type",
			Message: "invalid request body: " + err.Error()}
	}
	return nil
}

// sessionID returns the request's session id ("" for none).
func sessionID(r *http.Request, body string) (string, error) {
	hdr := r.Header.Get(SessionHeader)
	if hdr != "" && body != "" && hdr != body {
		return "", invalidParam("session", "the session field and the %s header differ", SessionHeader)
	}
	id := body
	if id == "" {
		id = hdr
	}
	if id == "" {
		return "", nil
	}
	if err := runtime.ValidateID(id); err != nil {
		return "", err
	}
	return id, nil
}

// newID returns a random id with prefix.
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// seed gives so a random seed when neither the request nor the defaults
// set one.
func (h *handler) seed(so *sample.Options, req *int64) {
	if req == nil && h.opt.Sampling.Seed == 0 {
		so.Seed = mrand.Uint64()
	}
}

// call is one generation request, chat or completion, after decoding.
type call struct {
	start    time.Time
	session  string // the client's session id, "" when stateless
	sampling sample.Options
	maxTok   int
	stream   bool
	usage    bool // stream_options.include_usage
	// feed appends the prompt to the session.
	feed func(ctx context.Context, s *runtime.Session) error
}

// newCall validates what chat and completion requests share (sampling,
// seed, session id) and returns the call without its feed.
func (h *handler) newCall(r *http.Request, start time.Time, sp SamplingParams, session string, stream bool, so *StreamOptions) (*call, error) {
	sampling, maxTok, err := ToSampling(sp, *h.opt.Sampling)
	if err != nil {
		return nil, err
	}
	h.seed(&sampling, sp.Seed)
	sid, err := sessionID(r, session)
	if err != nil {
		return nil, err
	}
	return &call{start: start, session: sid, sampling: sampling, maxTok: maxTok, stream: stream,
		usage: so != nil && so.IncludeUsage}, nil
}

// outcome is what a generation produced.
type outcome struct {
	text                string
	prompt, cached, gen int
	finish              runtime.Finish
	id                  string
	created             int64
	streamed            bool
}

// emitter writes a streamed response's chunks.
type emitter interface {
	// first is sent before the first text; text per piece; final with the
	// finish reason, then usage if asked.
	first(o *outcome) any
	text(o *outcome, s string) any
	final(o *outcome) any
	usage(o *outcome) any
}

// run opens the session (or a temporary one), feeds the prompt and
// generates, streaming through em if c.stream. A cancelled request's error
// is its context's cause (ErrShuttingDown when the server drains).
func (h *handler) run(w http.ResponseWriter, r *http.Request, c *call, em emitter, o *outcome) (err error) {
	ctx := r.Context()
	defer func() {
		if cause := context.Cause(ctx); err != nil && cause != nil && errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
	}()
	id := c.session
	infoOf(ctx).session = id
	if id != "" {
		if err := h.acquire(id); err != nil {
			return err
		}
		defer h.release(ctx, id)
	}
	if id == "" {
		id = newID("tmp-")
		h.mu.Lock()
		h.temps[id] = true
		h.mu.Unlock()
		defer func() {
			h.mu.Lock()
			delete(h.temps, id)
			h.mu.Unlock()
			if err := h.rt.Discard(context.WithoutCancel(ctx), id); err != nil && !errors.Is(err, runtime.ErrClosed) {
				h.log.LogAttrs(ctx, slog.LevelWarn, "delete temporary session", slog.String("session_id", id),
					slog.String("error", err.Error()))
			}
		}()
	}
	s, err := h.rt.Open(ctx, id, runtime.SessionOptions{Sampling: c.sampling})
	if err != nil {
		return err
	}
	tokens0, msgs0 := s.Tokens(), s.Messages()
	if err := c.feed(ctx, s); err != nil {
		if c.session != "" && !errors.Is(err, runtime.ErrBusy) {
			h.restore(ctx, s, tokens0, msgs0)
		}
		return err
	}
	tokens1 := s.Tokens()
	// StartCached is what the feed found in the cache: the history it
	// kept, or a prefix cache hit for a fresh session.
	o.prompt, o.cached = len(tokens1), min(s.StartCached(), len(tokens1))

	var sw *sse
	if c.stream {
		sw = newSSE(w)
	}
	var text strings.Builder
	first := true
	h.m.inflight.Inc()
	defer h.m.inflight.Dec()
	opt := runtime.GenerateOptions{Sampling: &c.sampling, MaxTokens: c.maxTok}
	for ev, err := range s.Generate(ctx, opt) {
		if ev.Done {
			if err != nil {
				if sw != nil && sw.started {
					ferr := err
					if cause := context.Cause(ctx); cause != nil {
						ferr = cause
					}
					sw.fail(ferr)
				}
				return err
			}
			if ev.Result != nil {
				o.gen, o.finish = ev.Result.GenTokens, ev.Result.Finish
			}
			break
		}
		if first && ev.Token >= 0 {
			first = false
			h.m.ttft.Observe(time.Since(c.start).Seconds())
		}
		text.WriteString(ev.Text)
		if sw != nil {
			if !sw.started {
				if err := sw.send(em.first(o)); err != nil {
					return err
				}
			}
			if ev.Text != "" {
				if err := sw.send(em.text(o, ev.Text)); err != nil {
					return err
				}
			}
		}
	}
	o.text = text.String()
	ri := infoOf(ctx)
	ri.prompt, ri.cached, ri.gen = o.prompt, o.cached, o.gen
	h.m.prompt.Add(float64(o.prompt))
	h.m.cached.Add(float64(o.cached))
	h.m.generated.Add(float64(o.gen))
	if sw == nil {
		return nil
	}
	o.streamed = true
	if !sw.started {
		if err := sw.send(em.first(o)); err != nil {
			return err
		}
	}
	if err := sw.send(em.final(o)); err != nil {
		return err
	}
	if c.usage {
		if err := sw.send(em.usage(o)); err != nil {
			return err
		}
	}
	return sw.done()
}

// acquire marks a request running on client session id; a second one
// fails with ErrBusy. (The runtime's own busy check covers one operation;
// this covers the request's append and generation together, so that no
// other turn slips in between them.)
func (h *handler) acquire(id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.active[id] {
		return fmt.Errorf("session %q: %w", id, runtime.ErrBusy)
	}
	h.active[id] = true
	if h.opt.MaxSessions > 0 {
		h.used[id] = time.Now()
	}
	return nil
}

// release ends a request on client session id and closes the least
// recently used idle sessions past Options.MaxSessions.
func (h *handler) release(ctx context.Context, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.active, id)
	if h.opt.MaxSessions <= 0 {
		return
	}
	h.used[id] = time.Now()
	for len(h.used) > h.opt.MaxSessions {
		victim := ""
		for sid, t := range h.used {
			if !h.active[sid] && (victim == "" || t.Before(h.used[victim])) {
				victim = sid
			}
		}
		if victim == "" {
			return // every session is running a request
		}
		delete(h.used, victim)
		s := h.rt.Session(victim)
		if s == nil {
			continue
		}
		if err := s.Close(); err != nil && !errors.Is(err, runtime.ErrSessionClosed) {
			h.log.LogAttrs(ctx, slog.LevelWarn, "close idle session", slog.String("session_id", victim),
				slog.String("error", err.Error()))
		}
	}
}

// forget drops a deleted session from the use records.
func (h *handler) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.active[id] {
		delete(h.used, id)
	}
}

// restore puts a session back as it was before a failed feed: a session
// the request created is deleted, else its messages (chat) or its tokens
// (text) are restored.
func (h *handler) restore(ctx context.Context, s *runtime.Session, tokens0 []int32, msgs0 []chat.Message) {
	ctx = context.WithoutCancel(ctx)
	var err error
	switch {
	case len(tokens0) == 0 && len(msgs0) == 0:
		err = h.rt.Delete(ctx, s.ID())
	case len(msgs0) > 0:
		err = s.SetMessages(ctx, msgs0)
	default:
		err = s.Rewind(ctx, len(tokens0))
	}
	if err != nil && !errors.Is(err, runtime.ErrClosed) {
		h.log.LogAttrs(ctx, slog.LevelWarn, "restore session after a failed request", slog.String("session_id", s.ID()),
			slog.String("error", err.Error()))
	}
}

func (h *handler) chat(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	var req ChatCompletionRequest
	if err := h.decode(r, &req); err != nil {
		return err
	}
	if err := h.checkModel(req.Model); err != nil {
		return err
	}
	msgs, err := ToMessages(req.Messages)
	if err != nil {
		return err
	}
	c, err := h.newCall(r, start, req.SamplingParams, req.Session, req.Stream, req.StreamOptions)
	if err != nil {
		return err
	}
	sid := c.session
	c.feed = func(ctx context.Context, s *runtime.Session) error {
		if sid == "" {
			return s.SetMessages(ctx, msgs)
		}
		return s.AppendMessages(ctx, msgs...)
	}
	o := &outcome{id: newID("chatcmpl-"), created: h.opt.Now().Unix()}
	em := chatEmitter{model: h.opt.ModelName, session: sid}
	if err := h.run(w, r, c, em, o); err != nil || o.streamed {
		return err
	}
	writeJSON(w, http.StatusOK, ChatCompletion{ID: o.id, Object: "chat.completion", Created: o.created,
		Model: h.opt.ModelName, Session: sid,
		Choices: []ChatChoice{{Message: ResponseMessage{Role: "assistant", Content: o.text},
			FinishReason: FinishReason(o.finish)}},
		Usage: ToUsage(o.prompt, o.cached, o.gen)})
	return nil
}

func (h *handler) completions(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	var req CompletionRequest
	if err := h.decode(r, &req); err != nil {
		return err
	}
	if err := h.checkModel(req.Model); err != nil {
		return err
	}
	if len(req.Prompt) > 1 {
		return invalidParam("prompt", "only one prompt per request is supported")
	}
	if req.Echo {
		return invalidParam("echo", "echo is not supported")
	}
	prompt := ""
	if len(req.Prompt) == 1 {
		prompt = req.Prompt[0]
	}
	c, err := h.newCall(r, start, req.SamplingParams, req.Session, req.Stream, req.StreamOptions)
	if err != nil {
		return err
	}
	sid := c.session
	c.feed = func(ctx context.Context, s *runtime.Session) error { return s.AppendText(ctx, prompt) }
	o := &outcome{id: newID("cmpl-"), created: h.opt.Now().Unix()}
	em := completionEmitter{model: h.opt.ModelName, session: sid}
	if err := h.run(w, r, c, em, o); err != nil || o.streamed {
		return err
	}
	fr := FinishReason(o.finish)
	u := ToUsage(o.prompt, o.cached, o.gen)
	writeJSON(w, http.StatusOK, Completion{ID: o.id, Object: "text_completion", Created: o.created,
		Model: h.opt.ModelName, Session: sid, Choices: []CompletionChoice{{Text: o.text, FinishReason: &fr}}, Usage: &u})
	return nil
}

// statter is a Store that describes stored sessions (runtime.DiskStore).
type statter interface {
	Stat(id string) (runtime.SessionInfo, error)
}

// findSession describes session id, live or stored.
func (h *handler) findSession(id string) (SessionObject, error) {
	if err := runtime.ValidateID(id); err != nil {
		return SessionObject{}, err
	}
	if s := h.rt.Session(id); s != nil {
		return ToSessionObject(s), nil
	}
	if st, ok := h.rt.Options().Store.(statter); ok {
		si, err := st.Stat(id)
		if err != nil {
			return SessionObject{}, err
		}
		si.ID = id
		return FromSessionInfo(si), nil
	}
	return SessionObject{}, fmt.Errorf("session %q: %w", id, runtime.ErrNotFound)
}

// lister is a Store that lists its sessions (runtime.DiskStore).
type lister interface {
	List() ([]string, error)
}

func (h *handler) listSessions(w http.ResponseWriter, r *http.Request) error {
	ids := h.rt.Sessions()
	if l, ok := h.rt.Options().Store.(lister); ok {
		stored, err := l.List()
		if err != nil {
			return fmt.Errorf("list sessions: %w", err)
		}
		ids = append(ids, stored...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	h.mu.Lock()
	ids = slices.DeleteFunc(ids, func(id string) bool { return h.temps[id] })
	h.mu.Unlock()
	list := SessionList{Object: "list", Data: []SessionObject{}}
	for _, id := range ids {
		so, err := h.findSession(id)
		if errors.Is(err, runtime.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		list.Data = append(list.Data, so)
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (h *handler) getSession(w http.ResponseWriter, r *http.Request) error {
	so, err := h.findSession(r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, so)
	return nil
}

func (h *handler) deleteSession(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := h.findSession(id); err != nil {
		return err
	}
	if err := h.rt.Delete(r.Context(), id); err != nil {
		return err
	}
	h.forget(id)
	writeJSON(w, http.StatusOK, DeletedObject{ID: id, Object: "session.deleted", Deleted: true})
	return nil
}
