package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	_ "github.com/mnemo-ai/mnemo/engine/arch/all"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
	"github.com/mnemo-ai/mnemo/kvcache"
	"github.com/mnemo-ai/mnemo/runtime"
	"github.com/mnemo-ai/mnemo/runtime/httpapi"
)

// gated wraps a Model; with perm set, every forward step takes one value
// from perm first (close it to let all steps through).
type gated struct {
	engine.Model
	perm chan struct{}
}

func (g *gated) Forward(ctx context.Context, seqs []*engine.Seq) ([]engine.Logits, error) {
	if g.perm != nil {
		select {
		case <-g.perm:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Model.Forward(ctx, seqs)
}

// env is a handler on a runtime on synth.Tiny("llama").
type env struct {
	rt      *runtime.Runtime
	h       http.Handler
	perm    chan struct{}
	release func() // closes perm once
}

// newEnv builds the handler; gate makes forward steps wait for permits.
func newEnv(t *testing.T, gate bool, opt httpapi.Options) *env {
	t.Helper()
	return newEnvCache(t, gate, false, opt)
}

// newEnvCache is newEnv, with a prefix cache attached when cache is set.
func newEnvCache(t *testing.T, gate, cache bool, opt httpapi.Options) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, synth.WriteFile(path, synth.Tiny("llama")))
	src, err := model.Open(path)
	require.NoError(t, err)
	be, err := cpu.New(backend.Options{})
	require.NoError(t, err)
	m, err := engine.New(src, be, engine.Options{Weights: "f32", BlockTokens: 4, KVTokens: 4096, MaxSeqs: 16,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	gs, ok := src.(*model.GGUFSource)
	require.True(t, ok)
	tok, err := tokenizer.FromGGUF(gs.File())
	require.NoError(t, err)
	e := &env{}
	g := &gated{Model: m}
	if gate {
		g.perm = make(chan struct{}, 1024)
	}
	var once sync.Once
	e.perm = g.perm
	e.release = func() {
		once.Do(func() {
			if e.perm != nil {
				close(e.perm)
			}
		})
	}
	ro := runtime.Options{Tokenizer: tok, Store: runtime.NewMemoryStore()}
	if cache {
		kv := m.KV()
		bio, err := kvcache.NewBufferIO(kv.K, kv.V)
		require.NoError(t, err)
		fp := kvcache.NewFingerprint([]byte("tiny"), []byte("tiny llama"), kv.DType.String(), kv.BlockTokens)
		ro.Cache, err = kvcache.NewCache(kv.Pool, kvcache.Config{Fingerprint: fp, IO: bio})
		require.NoError(t, err)
		ro.Secret = []byte("test secret")
	}
	e.rt, err = runtime.New(g, ro)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, e.rt.Close())
		assert.NoError(t, m.Close())
		assert.NoError(t, be.Close())
		assert.NoError(t, src.Close())
	})
	t.Cleanup(e.release) // runs first: a gated step must not block Close
	if opt.ModelName == "" {
		opt.ModelName = "tiny"
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	e.h = httpapi.New(e.rt, opt)
	return e
}

// do sends one request through a ResponseRecorder.
func (e *env) do(t *testing.T, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// checkError asserts an OpenAI error response.
func checkError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) httpapi.ErrorBody {
	t.Helper()
	assert.Equal(t, status, rec.Code, rec.Body.String())
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var body httpapi.ErrorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	assert.NotEmpty(t, body.Error.Message)
	assert.NotEmpty(t, body.Error.Type)
	if code != "" && assert.NotNil(t, body.Error.Code, rec.Body.String()) {
		assert.Equal(t, code, *body.Error.Code)
	}
	// The raw JSON has exactly OpenAI's four fields.
	var raw map[string]map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
	assert.Len(t, raw["error"], 4)
	return body
}

const hello = `{"model":"tiny","messages":[{"role":"user","content":"hello there"}],"temperature":0,"max_tokens":6`

func TestUnaryEndpoints(t *testing.T) {
	e := newEnv(t, false, httpapi.Options{})

	rec := e.do(t, "GET", "/v1/models", "")
	require.Equal(t, http.StatusOK, rec.Code)
	var ml httpapi.ModelList
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ml))
	assert.Equal(t, "list", ml.Object)
	require.Len(t, ml.Data, 1)
	assert.Equal(t, "tiny", ml.Data[0].ID)

	rec = e.do(t, "GET", "/v1/models/tiny", "")
	assert.Equal(t, http.StatusOK, rec.Code)

	rec = e.do(t, "POST", "/v1/chat/completions", hello+`}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var cc httpapi.ChatCompletion
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &cc))
	assert.Equal(t, "chat.completion", cc.Object)
	assert.True(t, strings.HasPrefix(cc.ID, "chatcmpl-"), cc.ID)
	assert.Equal(t, "tiny", cc.Model)
	require.Len(t, cc.Choices, 1)
	assert.Equal(t, "assistant", cc.Choices[0].Message.Role)
	assert.Contains(t, []string{"stop", "length"}, cc.Choices[0].FinishReason)
	assert.Positive(t, cc.Usage.PromptTokens)
	assert.Positive(t, cc.Usage.CompletionTokens)
	assert.LessOrEqual(t, cc.Usage.CompletionTokens, 6)
	assert.Equal(t, cc.Usage.PromptTokens+cc.Usage.CompletionTokens, cc.Usage.TotalTokens)
	require.NotNil(t, cc.Usage.PromptTokensDetails)
	assert.Empty(t, cc.Session)
	assert.Empty(t, e.rt.Sessions(), "the stateless request's session is gone")

	// Same request, same greedy reply.
	rec = e.do(t, "POST", "/v1/chat/completions", hello+`}`)
	var cc2 httpapi.ChatCompletion
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &cc2))
	assert.Equal(t, cc.Choices[0].Message.Content, cc2.Choices[0].Message.Content)

	// A logit bias that bans nothing the model picks, and a length stop.
	rec = e.do(t, "POST", "/v1/completions", `{"prompt":"the cat","max_tokens":3,"temperature":0,"logit_bias":{"2":-100,"259":-100,"260":-100}}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var cp httpapi.Completion
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &cp))
	assert.Equal(t, "text_completion", cp.Object)
	require.Len(t, cp.Choices, 1)
	require.NotNil(t, cp.Choices[0].FinishReason)
	assert.Equal(t, "length", *cp.Choices[0].FinishReason, "EOS banned: only the cap ends it")
	require.NotNil(t, cp.Usage)
	assert.Equal(t, 3, cp.Usage.CompletionTokens)
	assert.NotEmpty(t, cp.Choices[0].Text)
}

func TestErrors(t *testing.T) {
	e := newEnv(t, false, httpapi.Options{MaxBodyBytes: 1024})
	chat := `{"messages":[{"role":"user","content":"hi"}],"max_tokens":2`
	for _, tt := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
		param                    string
	}{
		{name: "bad json", method: "POST", path: "/v1/chat/completions", body: `{"messages":`, status: 400, code: "invalid_json"},
		{name: "empty body", method: "POST", path: "/v1/chat/completions", body: ``, status: 400, code: "invalid_json"},
		{name: "trailing garbage", method: "POST", path: "/v1/chat/completions", body: chat + `} x`, status: 400, code: "invalid_json"},
		{name: "wrong type", method: "POST", path: "/v1/chat/completions", body: chat + `,"temperature":"hot"}`,
			status: 400, code: "invalid_type", param: "temperature"},
		{name: "wrong stop type", method: "POST", path: "/v1/chat/completions", body: chat + `,"stop":7}`, status: 400},
		{name: "out of range", method: "POST", path: "/v1/chat/completions", body: chat + `,"top_p":3}`, status: 400,
			param: "top_p"},
		{name: "n", method: "POST", path: "/v1/chat/completions", body: chat + `,"n":3}`, status: 400, param: "n"},
		{name: "no messages", method: "POST", path: "/v1/chat/completions", body: `{"messages":[]}`, status: 400,
			param: "messages"},
		{name: "bad role", method: "POST", path: "/v1/chat/completions", body: `{"messages":[{"role":"x","content":"a"}]}`,
			status: 400, param: "messages[0].role"},
		{name: "hostile session", method: "POST", path: "/v1/chat/completions", body: chat + `,"session":"../../etc/passwd"}`,
			status: 400, code: "invalid_session_id", param: "session"},
		{name: "hostile session header", method: "POST", path: "/v1/chat/completions", body: chat + `}`,
			hdr: []string{"X-Session-ID", "a/b"}, status: 400, code: "invalid_session_id"},
		{name: "session mismatch", method: "POST", path: "/v1/chat/completions", body: chat + `,"session":"a"}`,
			hdr: []string{"X-Session-ID", "b"}, status: 400, param: "session"},
		{name: "unknown model", method: "POST", path: "/v1/chat/completions", body: chat + `,"model":"gpt-9"}`,
			status: 404, code: "model_not_found", param: "model"},
		{name: "unknown model get", method: "GET", path: "/v1/models/gpt-9", status: 404, code: "model_not_found"},
		{name: "too large", method: "POST", path: "/v1/chat/completions",
			body: chat + `,"user":"` + strings.Repeat("x", 2000) + `"}`, status: 413, code: "request_too_large"},
		{name: "context full", method: "POST", path: "/v1/completions",
			body: `{"prompt":"` + strings.Repeat("zq ", 300) + `"}`, status: 400, code: "context_length_exceeded"},
		{name: "multi prompt", method: "POST", path: "/v1/completions", body: `{"prompt":["a","b"]}`, status: 400,
			param: "prompt"},
		{name: "echo", method: "POST", path: "/v1/completions", body: `{"prompt":"a","echo":true}`, status: 400, param: "echo"},
		{name: "image", method: "POST", path: "/v1/chat/completions",
			body: `{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, status: 400},
		{name: "unknown session", method: "GET", path: "/v1/sessions/nope", status: 404, code: "session_not_found"},
		{name: "delete unknown session", method: "DELETE", path: "/v1/sessions/nope", status: 404, code: "session_not_found"},
		{name: "bad session id", method: "GET", path: "/v1/sessions/-x", status: 400, code: "invalid_session_id"},
		{name: "wrong method", method: "GET", path: "/v1/chat/completions", status: 405, code: "method_not_allowed"},
		{name: "unknown path", method: "GET", path: "/v2/whatever", status: 404, code: "unknown_url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := checkError(t, e.do(t, tt.method, tt.path, tt.body, tt.hdr...), tt.status, tt.code)
			if tt.param != "" && assert.NotNil(t, body.Error.Param) {
				assert.Equal(t, tt.param, *body.Error.Param)
			}
		})
	}
	assert.Empty(t, e.rt.Sessions(), "failed requests leave no session behind")
}

func TestClosedRuntimeIs503(t *testing.T) {
	e := newEnv(t, false, httpapi.Options{})
	require.NoError(t, e.rt.Close())
	checkError(t, e.do(t, "POST", "/v1/chat/completions", hello+`}`), http.StatusServiceUnavailable, "unavailable")
	checkError(t, e.do(t, "POST", "/v1/completions", `{"prompt":"a"}`), http.StatusServiceUnavailable, "unavailable")
}

// chatResult decodes a chat completion.
func chatResult(t *testing.T, rec *httptest.ResponseRecorder) httpapi.ChatCompletion {
	t.Helper()
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var cc httpapi.ChatCompletion
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &cc))
	return cc
}

func TestSessionReuse(t *testing.T) {
	e := newEnv(t, false, httpapi.Options{})
	first := chatResult(t, e.do(t, "POST", "/v1/chat/completions", hello+`,"session":"conv-1"}`))
	assert.Equal(t, "conv-1", first.Session)
	assert.Zero(t, first.Usage.PromptTokensDetails.CachedTokens, "a new session has nothing cached")

	// The second turn sends only the new message (by header this time).
	second := chatResult(t, e.do(t, "POST", "/v1/chat/completions",
		`{"messages":[{"role":"user","content":"and again"}],"temperature":0,"max_tokens":4}`, "X-Session-ID", "conv-1"))
	cached := second.Usage.PromptTokensDetails.CachedTokens
	assert.Positive(t, cached)
	assert.GreaterOrEqual(t, cached, first.Usage.PromptTokens, "the whole first prompt was reused")
	assert.Greater(t, second.Usage.PromptTokens, first.Usage.PromptTokens+first.Usage.CompletionTokens,
		"the history is part of the prompt")

	rec := e.do(t, "GET", "/v1/sessions/conv-1", "")
	require.Equal(t, http.StatusOK, rec.Code)
	var so httpapi.SessionObject
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &so))
	assert.Equal(t, "conv-1", so.ID)
	assert.Equal(t, "session", so.Object)
	assert.Equal(t, 4, so.Messages, "two user turns and two replies")
	assert.GreaterOrEqual(t, so.Tokens, second.Usage.TotalTokens)
	assert.True(t, so.Live)

	// Completions append raw text to a session too.
	rec = e.do(t, "POST", "/v1/completions", `{"prompt":"the cat","max_tokens":2,"session":"text-1"}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rec = e.do(t, "POST", "/v1/completions", `{"prompt":" sat","max_tokens":2,"session":"text-1"}`)
	var cp httpapi.Completion
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &cp))
	assert.Positive(t, cp.Usage.PromptTokensDetails.CachedTokens)

	rec = e.do(t, "GET", "/v1/sessions", "")
	require.Equal(t, http.StatusOK, rec.Code)
	var sl httpapi.SessionList
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &sl))
	assert.Equal(t, "list", sl.Object)
	var ids []string
	for _, so := range sl.Data {
		ids = append(ids, so.ID)
	}
	assert.Equal(t, []string{"conv-1", "text-1"}, ids)

	rec = e.do(t, "DELETE", "/v1/sessions/conv-1", "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var del httpapi.DeletedObject
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &del))
	assert.Equal(t, httpapi.DeletedObject{ID: "conv-1", Object: "session.deleted", Deleted: true}, del)
	checkError(t, e.do(t, "GET", "/v1/sessions/conv-1", ""), http.StatusNotFound, "session_not_found")
}

func TestStatelessPrefixHitsAreCached(t *testing.T) {
	system := strings.Repeat("You are a careful assistant who answers briefly. ", 4)
	req := func(user string) string {
		return `{"model":"tiny","messages":[{"role":"system","content":"` + system + `"},{"role":"user","content":"` +
			user + `"}],"temperature":0,"max_tokens":2}`
	}
	for _, tc := range []struct {
		name  string
		cache bool
	}{{name: "prefix cache", cache: true}, {name: "no cache", cache: false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvCache(t, false, tc.cache, httpapi.Options{})
			first := chatResult(t, e.do(t, "POST", "/v1/chat/completions", req("hi")))
			assert.Zero(t, first.Usage.PromptTokensDetails.CachedTokens, "nothing is cached before the first request")
			assert.Empty(t, first.Session, "the request is stateless")
			second := chatResult(t, e.do(t, "POST", "/v1/chat/completions", req("what now?")))
			cached := second.Usage.PromptTokensDetails.CachedTokens
			if !tc.cache {
				assert.Zero(t, cached, "without a prefix cache nothing is reused")
				return
			}
			assert.Positive(t, cached, "the system prompt's blocks were reused")
			assert.Less(t, cached, second.Usage.PromptTokens, "the new user turn is computed")
			assert.Zero(t, cached%4, "whole blocks of 4 tokens are shared")
		})
	}
}

func TestFailedTurnLeavesSessionAsItWas(t *testing.T) {
	e := newEnv(t, false, httpapi.Options{})
	chatResult(t, e.do(t, "POST", "/v1/chat/completions", hello+`,"session":"s"}`))
	s := e.rt.Session("s")
	require.NotNil(t, s)
	tokens, msgs := s.Tokens(), s.Messages()
	checkError(t, e.do(t, "POST", "/v1/chat/completions",
		`{"session":"s","messages":[{"role":"user","content":"`+strings.Repeat("zq ", 300)+`"}]}`),
		http.StatusBadRequest, "context_length_exceeded")
	assert.Equal(t, msgs, s.Messages())
	assert.Less(t, s.Len(), len(tokens)+16, "the failed turn's tokens are gone")

	// A request that fails on a new session leaves no session.
	checkError(t, e.do(t, "POST", "/v1/completions", `{"session":"new","prompt":"`+strings.Repeat("zq ", 300)+`"}`),
		http.StatusBadRequest, "context_length_exceeded")
	assert.Nil(t, e.rt.Session("new"))
}

// event is one parsed server-sent event: the JSON, or done for [DONE].
type event struct {
	raw  string
	done bool
}

// readSSE reads every event of a stream.
func readSSE(t *testing.T, r io.Reader) []event {
	t.Helper()
	var out []event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		require.True(t, strings.HasPrefix(line, "data: "), "line %q", line)
		data := strings.TrimPrefix(line, "data: ")
		out = append(out, event{raw: data, done: data == "[DONE]"})
	}
	require.NoError(t, sc.Err())
	return out
}

func post(t *testing.T, ctx context.Context, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

func TestStreamChat(t *testing.T) {
	e := newEnv(t, false, httpapi.Options{})
	srv := httptest.NewServer(e.h)
	defer srv.Close()

	want := chatResult(t, e.do(t, "POST", "/v1/chat/completions", hello+`}`))

	resp := post(t, t.Context(), srv.URL+"/v1/chat/completions",
		hello+`,"stream":true,"stream_options":{"include_usage":true}}`)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	evs := readSSE(t, resp.Body)
	require.GreaterOrEqual(t, len(evs), 4, "role chunk, finish chunk, usage chunk, [DONE]")
	assert.True(t, evs[len(evs)-1].done, "ends with [DONE]")

	var chunks []httpapi.ChatCompletionChunk
	for _, ev := range evs[:len(evs)-1] {
		require.False(t, ev.done, "[DONE] only last")
		var c httpapi.ChatCompletionChunk
		require.NoError(t, json.Unmarshal([]byte(ev.raw), &c), ev.raw)
		assert.Equal(t, "chat.completion.chunk", c.Object)
		assert.Equal(t, "tiny", c.Model)
		chunks = append(chunks, c)
	}
	id := chunks[0].ID
	var text strings.Builder
	for i, c := range chunks {
		assert.Equal(t, id, c.ID, "one id for the whole stream")
		last := i == len(chunks)-1
		if last {
			assert.Empty(t, c.Choices, "the usage chunk has no choices")
			require.NotNil(t, c.Usage)
			assert.Equal(t, want.Usage, *c.Usage, "same usage as the unary reply")
			continue
		}
		assert.Nil(t, c.Usage)
		require.Len(t, c.Choices, 1)
		d := c.Choices[0]
		switch {
		case i == 0:
			assert.Equal(t, "assistant", d.Delta.Role)
		case i == len(chunks)-2:
			require.NotNil(t, d.FinishReason, "the last choice chunk has the finish reason")
			assert.Equal(t, want.Choices[0].FinishReason, *d.FinishReason)
		default:
			assert.Nil(t, d.FinishReason)
			require.NotNil(t, d.Delta.Content)
		}
		if d.Delta.Content != nil {
			text.WriteString(*d.Delta.Content)
		}
	}
	assert.Equal(t, want.Choices[0].Message.Content, text.String(), "streamed text = unary text")

	// Without include_usage there is no usage chunk.
	resp2 := post(t, t.Context(), srv.URL+"/v1/chat/completions", hello+`,"stream":true}`)
	defer resp2.Body.Close()
	for _, ev := range readSSE(t, resp2.Body) {
		assert.NotContains(t, ev.raw, `"usage"`)
	}
}

func TestStreamCompletion(t *testing.T) {
	e := newEnv(t, false, httpapi.Options{})
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	body := `{"prompt":"the cat","max_tokens":5,"temperature":0,"logit_bias":{"2":-100,"259":-100,"260":-100}`
	var want httpapi.Completion
	require.NoError(t, json.Unmarshal(e.do(t, "POST", "/v1/completions", body+`}`).Body.Bytes(), &want))

	resp := post(t, t.Context(), srv.URL+"/v1/completions", body+`,"stream":true,"stream_options":{"include_usage":true}}`)
	defer resp.Body.Close()
	evs := readSSE(t, resp.Body)
	require.True(t, evs[len(evs)-1].done)
	var text strings.Builder
	var finish string
	var usage *httpapi.Usage
	for _, ev := range evs[:len(evs)-1] {
		var c httpapi.Completion
		require.NoError(t, json.Unmarshal([]byte(ev.raw), &c))
		assert.Equal(t, "text_completion", c.Object)
		if c.Usage != nil {
			usage = c.Usage
			continue
		}
		require.Len(t, c.Choices, 1)
		text.WriteString(c.Choices[0].Text)
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	assert.Equal(t, want.Choices[0].Text, text.String())
	assert.Equal(t, "length", finish)
	require.NotNil(t, usage)
	assert.Equal(t, 5, usage.CompletionTokens)
}

// cancelWatch wraps a handler, closing cancelled when a request's context
// ends before the handler returns.
func cancelWatch(h http.Handler, cancelled chan struct{}) http.Handler {
	var once sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stop := context.AfterFunc(r.Context(), func() { once.Do(func() { close(cancelled) }) })
		defer stop()
		h.ServeHTTP(w, r)
		// A handler that returns before its request is cancelled ends the
		// wait too, so a test fails instead of hanging.
		once.Do(func() { close(cancelled) })
	})
}

func TestClientDisconnectCancelsGeneration(t *testing.T) {
	e := newEnv(t, true, httpapi.Options{})
	cancelled := make(chan struct{})
	srv := httptest.NewServer(cancelWatch(e.h, cancelled))
	defer srv.Close()

	// Three steps: the prefill and two decode steps; then the model waits.
	for range 3 {
		e.perm <- struct{}{}
	}
	ctx, cancel := context.WithCancel(t.Context())
	resp := post(t, ctx, srv.URL+"/v1/chat/completions",
		`{"session":"d","messages":[{"role":"user","content":"hi"}],"max_tokens":200,"stream":true,"seed":1,"logit_bias":{"2":-100,"259":-100,"260":-100}}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Contains(t, line, `"role":"assistant"`)

	// While the generation runs, the session is busy.
	checkError(t, e.do(t, "POST", "/v1/chat/completions", `{"session":"d","messages":[{"role":"user","content":"x"}]}`),
		http.StatusConflict, "session_busy")

	cancel()
	resp.Body.Close()
	<-cancelled
	e.release()

	// The session is usable again, and the generation stopped early.
	var rec *httptest.ResponseRecorder
	for range 1000 {
		rec = e.do(t, "POST", "/v1/chat/completions",
			`{"session":"d","messages":[{"role":"user","content":"x"}],"max_tokens":1}`)
		if rec.Code != http.StatusConflict {
			break
		}
		time.Sleep(time.Millisecond)
	}
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	s := e.rt.Session("d")
	require.NotNil(t, s)
	cc := chatResult(t, rec)
	assert.Less(t, cc.Usage.PromptTokens, 100, "the cancelled reply is far shorter than its 200 tokens")
}

func TestConcurrentSessions(t *testing.T) {
	e := newEnv(t, false, httpapi.Options{})
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	n := 6
	if testing.Short() {
		n = 3
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			for turn := range 2 {
				body := fmt.Sprintf(`{"session":"c%d","messages":[{"role":"user","content":"turn %d of %d"}],"max_tokens":4,"stream":%v}`,
					i, turn, i, i%2 == 0)
				resp := post(t, context.Background(), srv.URL+"/v1/chat/completions", body)
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("session c%d turn %d: %d %s %v", i, turn, resp.StatusCode, b, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	for i := range n {
		s := e.rt.Session(fmt.Sprintf("c%d", i))
		if assert.NotNil(t, s) {
			assert.Len(t, s.Messages(), 4)
		}
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, false, httpapi.Options{})
	chatResult(t, e.do(t, "POST", "/v1/chat/completions", hello+`,"session":"m1"}`))
	chatResult(t, e.do(t, "POST", "/v1/chat/completions", hello+`,"session":"m1"}`))
	checkError(t, e.do(t, "POST", "/v1/chat/completions", `{`), 400, "invalid_json")

	rec := e.do(t, "GET", "/metrics", "")
	require.Equal(t, http.StatusOK, rec.Code)
	text := rec.Body.String()
	metric := func(name string) float64 {
		for line := range strings.SplitSeq(text, "\n") {
			if strings.HasPrefix(line, name+" ") {
				var v float64
				_, err := fmt.Sscan(strings.TrimPrefix(line, name+" "), &v)
				require.NoError(t, err, line)
				return v
			}
		}
		t.Fatalf("no metric %s in\n%s", name, text)
		return 0
	}
	assert.Equal(t, 2.0, metric(`mnemo_http_requests_total{code="200",endpoint="POST /v1/chat/completions"}`))
	assert.Equal(t, 1.0, metric(`mnemo_http_requests_total{code="400",endpoint="POST /v1/chat/completions"}`))
	assert.Positive(t, metric("mnemo_prompt_tokens_total"))
	assert.Positive(t, metric("mnemo_cached_tokens_total"))
	assert.Positive(t, metric("mnemo_generated_tokens_total"))
	assert.Equal(t, 2.0, metric("mnemo_time_to_first_token_seconds_count"))
	assert.Equal(t, 1.0, metric("mnemo_active_sessions"))
	assert.Positive(t, metric("mnemo_runtime_steps_total"))
}

func TestMaxSessionsClosesIdleSessions(t *testing.T) {
	e := newEnv(t, false, httpapi.Options{MaxSessions: 2})
	for _, id := range []string{"a", "b", "c"} {
		chatResult(t, e.do(t, "POST", "/v1/chat/completions", hello+`,"session":"`+id+`"}`))
	}
	assert.ElementsMatch(t, []string{"b", "c"}, e.rt.Sessions(), "the least recently used one was closed")

	// "a" was saved (the MemoryStore keeps its history) and comes back.
	rec := e.do(t, "POST", "/v1/chat/completions",
		`{"session":"a","messages":[{"role":"user","content":"more"}],"max_tokens":2}`)
	chatResult(t, rec)
	s := e.rt.Session("a")
	require.NotNil(t, s)
	assert.Len(t, s.Messages(), 4)
	assert.ElementsMatch(t, []string{"a", "c"}, e.rt.Sessions())
}

// TestDrainEndsStreams cancels the server's base context with
// ErrShuttingDown (as `mnemo serve` does when it starts draining): a stream
// in flight ends with a 503 error event and no [DONE].
func TestDrainEndsStreams(t *testing.T) {
	e := newEnv(t, true, httpapi.Options{})
	base, drain := context.WithCancelCause(context.Background())
	defer drain(nil)
	cancelled := make(chan struct{})
	srv := httptest.NewUnstartedServer(cancelWatch(e.h, cancelled))
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	srv.Start()
	defer srv.Close()

	for range 3 {
		e.perm <- struct{}{}
	}
	resp := post(t, t.Context(), srv.URL+"/v1/chat/completions",
		`{"messages":[{"role":"user","content":"hi"}],"max_tokens":200,"stream":true,"seed":1,"logit_bias":{"2":-100,"259":-100,"260":-100}}`)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	drain(httpapi.ErrShuttingDown)
	<-cancelled
	e.release()

	evs := readSSE(t, resp.Body)
	require.NotEmpty(t, evs)
	last := evs[len(evs)-1]
	require.False(t, last.done, "a cut stream has no [DONE]")
	var body httpapi.ErrorBody
	require.NoError(t, json.Unmarshal([]byte(last.raw), &body), last.raw)
	require.NotNil(t, body.Error.Code)
	assert.Equal(t, "unavailable", *body.Error.Code)
	assert.Less(t, len(evs), 100, "the stream ended early")
}
