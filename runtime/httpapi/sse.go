package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// sse writes server-sent events. The status and headers go out with the
// first event, so an error before it is still a plain JSON error.
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func newSSE(w http.ResponseWriter) *sse {
	return &sse{w: w, rc: http.NewResponseController(w)}
}

// send writes v as one "data:" event and flushes it.
func (s *sse) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	return s.raw(b)
}

func (s *sse) raw(b []byte) error {
	if !s.started {
		s.started = true
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		s.w.WriteHeader(http.StatusOK)
	}
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		return fmt.Errorf("write event: %w: %v", errClientGone, err)
	}
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w: %v", errClientGone, err)
	}
	return nil
}

// done ends the stream with "data: [DONE]".
func (s *sse) done() error { return s.raw([]byte("[DONE]")) }

// fail ends a started stream with an error event (no [DONE]).
func (s *sse) fail(err error) {
	_, body, _ := ErrorFor(err)
	_ = s.send(body)
}

// chatEmitter builds chat.completion.chunk events.
type chatEmitter struct{ model, session string }

func (e chatEmitter) chunk(o *outcome, d Delta, finish *string) ChatCompletionChunk {
	return ChatCompletionChunk{ID: o.id, Object: "chat.completion.chunk", Created: o.created, Model: e.model,
		Session: e.session, Choices: []ChunkChoice{{Delta: d, FinishReason: finish}}}
}

func (e chatEmitter) first(o *outcome) any {
	empty := ""
	return e.chunk(o, Delta{Role: "assistant", Content: &empty}, nil)
}

func (e chatEmitter) text(o *outcome, s string) any { return e.chunk(o, Delta{Content: &s}, nil) }

func (e chatEmitter) final(o *outcome) any {
	fr := FinishReason(o.finish)
	return e.chunk(o, Delta{}, &fr)
}

func (e chatEmitter) usage(o *outcome) any {
	u := ToUsage(o.prompt, o.cached, o.gen)
	c := e.chunk(o, Delta{}, nil)
	c.Choices, c.Usage = []ChunkChoice{}, &u
	return c
}

// completionEmitter builds text_completion chunk events.
type completionEmitter struct{ model, session string }

func (e completionEmitter) chunk(o *outcome, text string, finish *string) Completion {
	return Completion{ID: o.id, Object: "text_completion", Created: o.created, Model: e.model, Session: e.session,
		Choices: []CompletionChoice{{Text: text, FinishReason: finish}}}
}

func (e completionEmitter) first(o *outcome) any { return e.chunk(o, "", nil) }

func (e completionEmitter) text(o *outcome, s string) any { return e.chunk(o, s, nil) }

func (e completionEmitter) final(o *outcome) any {
	fr := FinishReason(o.finish)
	return e.chunk(o, "", &fr)
}

func (e completionEmitter) usage(o *outcome) any {
	u := ToUsage(o.prompt, o.cached, o.gen)
	c := e.chunk(o, "", nil)
	c.Choices, c.Usage = []CompletionChoice{}, &u
	return c
}
