package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/runtime"
)

// OpenAI error types.
const (
	typeInvalid     = "invalid_request_error"
	typeNotFound    = "not_found_error"
	typeConflict    = "conflict_error"
	typeServer      = "server_error"
	typeUnavailable = "service_unavailable_error"
)

// ErrShuttingDown is the cause a server gives the request contexts it
// cancels when it starts draining (context.WithCancelCause on
// http.Server.BaseContext): the requests cut short answer 503.
var ErrShuttingDown = errors.New("httpapi: server shutting down")

// errClientGone wraps a failed write to a client that went away.
var errClientGone = fmt.Errorf("client gone: %w", context.Canceled)

// Error is an error with its HTTP status and OpenAI error fields; its
// Message is shown to the client.
type Error struct {
	Status  int
	Type    string
	Param   string
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func invalidParam(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: typeInvalid, Param: param, Message: fmt.Sprintf(format, args...)}
}

// ErrorFor maps err to the status and OpenAI error the client sees. Known
// errors keep their message (they describe the request); any other error
// becomes a 500 whose message hides the details (log them). internal
// reports that case.
func ErrorFor(err error) (status int, body ErrorBody, internal bool) {
	e := toError(err)
	body.Error = ErrorDetail{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		body.Error.Param = &e.Param
	}
	if e.Code != "" {
		body.Error.Code = &e.Code
	}
	return e.Status, body, e.Status == http.StatusInternalServerError
}

func toError(err error) *Error {
	var e *Error
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &mbe):
		return &Error{Status: http.StatusRequestEntityTooLarge, Type: typeInvalid, Code: "request_too_large",
			Message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
	case errors.As(err, &se):
		return &Error{Status: http.StatusBadRequest, Type: typeInvalid, Code: "invalid_json",
			Message: fmt.Sprintf("invalid JSON at offset %d: %v", se.Offset, se)}
	case errors.As(err, &te):
		field := strings.TrimPrefix(te.Field, "SamplingParams.")
		return &Error{Status: http.StatusBadRequest, Type: typeInvalid, Param: field, Code: "invalid_type",
			Message: fmt.Sprintf("%s: want %s, got JSON %s", field, te.Type, te.Value)}
	case errors.Is(err, runtime.ErrInvalidID):
		return &Error{Status: http.StatusBadRequest, Type: typeInvalid, Param: "session", Code: "invalid_session_id",
			Message: "invalid session id: 1 to 128 ASCII letters, digits, '_', '-', '.', ':' starting with a letter or digit"}
	case errors.Is(err, engine.ErrContextFull):
		return &Error{Status: http.StatusBadRequest, Type: typeInvalid, Code: "context_length_exceeded",
			Message: "the conversation exceeds the model's context length"}
	case errors.Is(err, sample.ErrInvalidOption):
		return &Error{Status: http.StatusBadRequest, Type: typeInvalid, Message: err.Error()}
	case errors.Is(err, chat.ErrTemplate):
		return &Error{Status: http.StatusBadRequest, Type: typeInvalid, Param: "messages", Code: "chat_template",
			Message: "the chat template rejected the messages"}
	case errors.Is(err, runtime.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Type: typeNotFound, Code: "session_not_found", Message: "session not found"}
	case errors.Is(err, runtime.ErrBusy):
		return &Error{Status: http.StatusConflict, Type: typeConflict, Code: "session_busy",
			Message: "the session is running another request"}
	case errors.Is(err, runtime.ErrSessionClosed):
		return &Error{Status: http.StatusConflict, Type: typeConflict, Code: "session_closed",
			Message: "the session was closed or deleted during the request"}
	case errors.Is(err, runtime.ErrFingerprint):
		return &Error{Status: http.StatusConflict, Type: typeConflict, Code: "session_model_mismatch",
			Message: "the session was saved with another model"}
	case errors.Is(err, runtime.ErrClosed), errors.Is(err, ErrShuttingDown):
		return &Error{Status: http.StatusServiceUnavailable, Type: typeUnavailable, Code: "unavailable",
			Message: "the server is shutting down"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client went away (or the server is draining): nobody reads
		// this, but it is not a server fault.
		return &Error{Status: 499, Type: typeInvalid, Code: "canceled", Message: "request canceled"}
	}
	return &Error{Status: http.StatusInternalServerError, Type: typeServer, Message: "internal server error"}
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
