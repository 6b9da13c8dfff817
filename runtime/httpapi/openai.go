package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/runtime"
)

// This file holds the OpenAI wire types and the pure conversions between
// them and the runtime's types; it knows nothing of HTTP.

// StringList is a JSON string or array of strings ("stop", "prompt").
type StringList []string

// UnmarshalJSON accepts null, a string or an array of strings.
func (l *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*l = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = StringList{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return fmt.Errorf("want a string or an array of strings")
	}
	*l = ss
	return nil
}

// Content is a message's content: a string, or an array of content parts
// of which only "text" parts are supported.
type Content struct {
	Text string
	// Parts is set when the content was an array.
	Parts []ContentPart
}

// ContentPart is one element of an array content.
type ContentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// UnmarshalJSON accepts null, a string or an array of content parts.
func (c *Content) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*c = Content{}
		return nil
	case len(b) > 0 && b[0] == '"':
		*c = Content{}
		return json.Unmarshal(b, &c.Text)
	}
	var parts []ContentPart
	if err := json.Unmarshal(b, &parts); err != nil {
		return fmt.Errorf("want a string or an array of content parts")
	}
	*c = Content{Parts: parts}
	return nil
}

// MarshalJSON writes the content as a string.
func (c Content) MarshalJSON() ([]byte, error) {
	s, _ := c.String()
	return json.Marshal(s)
}

// String returns the content's text; an error names a part type that is
// not text.
func (c Content) String() (string, error) {
	if c.Parts == nil {
		return c.Text, nil
	}
	var sb strings.Builder
	for _, p := range c.Parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part type %q is not supported (only \"text\")", p.Type)
		}
		sb.WriteString(p.Text)
	}
	return sb.String(), nil
}

// Message is one chat message.
type Message struct {
	Role       string     `json:"role"`
	Content    Content    `json:"content"`
	Name       string     `json:"name,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
}

// ToolCall is a function call an assistant message made.
type ToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
		// Arguments is a JSON object encoded as a string.
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// StreamOptions are the options of a streamed response.
type StreamOptions struct {
	// IncludeUsage adds a last chunk with the usage and no choices.
	IncludeUsage bool `json:"include_usage"`
}

// SamplingParams are the generation settings shared by chat completions
// and completions. Nil means the server's default. TopK, MinP and
// RepeatPenalty are extensions (llama.cpp's names).
type SamplingParams struct {
	MaxTokens           *int               `json:"max_tokens"`
	MaxCompletionTokens *int               `json:"max_completion_tokens"`
	Temperature         *float64           `json:"temperature"`
	TopP                *float64           `json:"top_p"`
	TopK                *int               `json:"top_k"`
	MinP                *float64           `json:"min_p"`
	RepeatPenalty       *float64           `json:"repeat_penalty"`
	Seed                *int64             `json:"seed"`
	Stop                StringList         `json:"stop"`
	PresencePenalty     *float64           `json:"presence_penalty"`
	FrequencyPenalty    *float64           `json:"frequency_penalty"`
	LogitBias           map[string]float64 `json:"logit_bias"`
	N                   *int               `json:"n"`
}

// ChatCompletionRequest is the body of POST /v1/chat/completions.
// Session (or the X-Session-ID header) is mnemo's extension: see the
// package documentation.
type ChatCompletionRequest struct {
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
	SamplingParams
	Stream        bool           `json:"stream"`
	StreamOptions *StreamOptions `json:"stream_options"`
	Session       string         `json:"session"`
	User          string         `json:"user"`
}

// CompletionRequest is the body of POST /v1/completions.
type CompletionRequest struct {
	Model  string     `json:"model"`
	Prompt StringList `json:"prompt"`
	SamplingParams
	Echo          bool           `json:"echo"`
	Stream        bool           `json:"stream"`
	StreamOptions *StreamOptions `json:"stream_options"`
	Session       string         `json:"session"`
	User          string         `json:"user"`
}

// Usage counts a request's tokens. PromptTokens includes the cached ones.
type Usage struct {
	PromptTokens        int                  `json:"prompt_tokens"`
	CompletionTokens    int                  `json:"completion_tokens"`
	TotalTokens         int                  `json:"total_tokens"`
	PromptTokensDetails *PromptTokensDetails `json:"prompt_tokens_details,omitempty"`
}

// PromptTokensDetails splits the prompt tokens.
type PromptTokensDetails struct {
	// CachedTokens were reused from the KV cache, not computed.
	CachedTokens int `json:"cached_tokens"`
}

// ResponseMessage is the assistant message of a chat completion.
type ResponseMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatChoice is one choice of a chat completion.
type ChatChoice struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	FinishReason string          `json:"finish_reason"`
}

// ChatCompletion is the response of a non-streamed chat completion.
type ChatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   Usage        `json:"usage"`
	// Session is the session the request was bound to (extension).
	Session string `json:"session,omitempty"`
}

// Delta is the increment of a streamed chat choice.
type Delta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// ChunkChoice is one choice of a chat completion chunk.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

// ChatCompletionChunk is one server-sent event of a streamed chat
// completion.
type ChatCompletionChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
	Session string        `json:"session,omitempty"`
}

// CompletionChoice is one choice of a completion (or of a chunk of one).
type CompletionChoice struct {
	Index        int     `json:"index"`
	Text         string  `json:"text"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

// Completion is the response (or, streamed, each chunk) of a completion.
type Completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   *Usage             `json:"usage,omitempty"`
	Session string             `json:"session,omitempty"`
}

// Model describes a model in GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ModelList is the response of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// SessionObject describes a session (GET /v1/sessions/{id}).
type SessionObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Updated int64  `json:"updated"`
	// Tokens is the history's length, CachedTokens how many of them the KV
	// cache holds; Messages counts the chat messages.
	Tokens       int  `json:"tokens"`
	CachedTokens int  `json:"cached_tokens"`
	Messages     int  `json:"messages"`
	Live         bool `json:"live"`
	// Bytes is the stored KV bytes (stored sessions only).
	Bytes int64 `json:"bytes,omitempty"`
}

// SessionList is the response of GET /v1/sessions.
type SessionList struct {
	Object string          `json:"object"`
	Data   []SessionObject `json:"data"`
}

// DeletedObject is the response of DELETE /v1/sessions/{id}.
type DeletedObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

// ErrorBody is the OpenAI error JSON.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the error object of ErrorBody.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// Limits of the sampling parameters (OpenAI's ranges; top_k and min_p are
// mnemo's).
const (
	maxTemperature = 2
	maxPenalty     = 2
	maxBias        = 100
)

// ToSampling applies p over the defaults def and returns the sampling
// options and the token cap (0: none). Errors are *Error with status 400
// naming the parameter.
func ToSampling(p SamplingParams, def sample.Options) (sample.Options, int, error) {
	o := def
	o.Stop = append([]string(nil), def.Stop...)
	o.LogitBias = nil
	if p.N != nil && *p.N != 1 {
		return o, 0, invalidParam("n", "only n=1 is supported")
	}
	maxTok := def.MaxTokens
	for _, m := range []struct {
		name string
		v    *int
	}{{"max_tokens", p.MaxTokens}, {"max_completion_tokens", p.MaxCompletionTokens}} {
		if m.v == nil {
			continue
		}
		if *m.v < 1 {
			return o, 0, invalidParam(m.name, "%s must be at least 1", m.name)
		}
		maxTok = *m.v
	}
	o.MaxTokens = maxTok
	floats := []struct {
		name   string
		v      *float64
		lo, hi float64
		dst    *float32
	}{
		{"temperature", p.Temperature, 0, maxTemperature, &o.Temperature},
		{"top_p", p.TopP, 0, 1, &o.TopP},
		{"min_p", p.MinP, 0, 1, &o.MinP},
		{"repeat_penalty", p.RepeatPenalty, 0, 10, &o.RepeatPenalty},
		{"presence_penalty", p.PresencePenalty, -maxPenalty, maxPenalty, &o.PresencePenalty},
		{"frequency_penalty", p.FrequencyPenalty, -maxPenalty, maxPenalty, &o.FrequencyPenalty},
	}
	for _, f := range floats {
		if f.v == nil {
			continue
		}
		if math.IsNaN(*f.v) || *f.v < f.lo || *f.v > f.hi {
			return o, 0, invalidParam(f.name, "%s must be in [%g, %g]", f.name, f.lo, f.hi)
		}
		*f.dst = float32(*f.v)
	}
	if p.TopK != nil {
		if *p.TopK < 0 {
			return o, 0, invalidParam("top_k", "top_k must not be negative")
		}
		o.TopK = *p.TopK
	}
	if p.Seed != nil {
		o.Seed = uint64(*p.Seed)
	}
	if p.Stop != nil {
		if len(p.Stop) > 4 {
			return o, 0, invalidParam("stop", "at most 4 stop sequences")
		}
		for _, s := range p.Stop {
			if s == "" {
				return o, 0, invalidParam("stop", "stop sequences must not be empty")
			}
		}
		o.Stop = append([]string(nil), p.Stop...)
	}
	if len(p.LogitBias) > 0 {
		o.LogitBias = make(map[int32]float32, len(p.LogitBias))
		for k, v := range p.LogitBias {
			id, err := strconv.ParseInt(k, 10, 32)
			if err != nil || id < 0 {
				return o, 0, invalidParam("logit_bias", "logit_bias key %q is not a token id", k)
			}
			if math.IsNaN(v) || v < -maxBias || v > maxBias {
				return o, 0, invalidParam("logit_bias", "logit_bias values must be in [-100, 100]")
			}
			b := float32(v)
			if v == -maxBias { // OpenAI: -100 bans the token
				b = float32(math.Inf(-1))
			}
			o.LogitBias[int32(id)] = b
		}
	}
	if err := o.Validate(); err != nil {
		return o, 0, &Error{Status: 400, Type: typeInvalid, Message: err.Error()}
	}
	return o, maxTok, nil
}

// ToMessages converts the request's messages to chat messages. The role
// "developer" is OpenAI's new name for "system".
func ToMessages(ms []Message) ([]chat.Message, error) {
	if len(ms) == 0 {
		return nil, invalidParam("messages", "messages must not be empty")
	}
	out := make([]chat.Message, 0, len(ms))
	for i, m := range ms {
		role := m.Role
		switch role {
		case "developer":
			role = "system"
		case "system", "user", "assistant", "tool":
		default:
			return nil, invalidParam(fmt.Sprintf("messages[%d].role", i), "unknown role %q", m.Role)
		}
		text, err := m.Content.String()
		if err != nil {
			return nil, invalidParam(fmt.Sprintf("messages[%d].content", i), "%v", err)
		}
		cm := chat.Message{Role: role, Content: text, Name: m.Name, ToolCallID: m.ToolCallID}
		for j, tc := range m.ToolCalls {
			call := chat.ToolCall{ID: tc.ID, Name: tc.Function.Name}
			if tc.Function.Arguments != "" {
				if err := json.Unmarshal([]byte(tc.Function.Arguments), &call.Arguments); err != nil {
					return nil, invalidParam(fmt.Sprintf("messages[%d].tool_calls[%d].function.arguments", i, j),
						"arguments must be a JSON object")
				}
			}
			cm.ToolCalls = append(cm.ToolCalls, call)
		}
		out = append(out, cm)
	}
	return out, nil
}

// FinishReason maps a runtime finish to OpenAI's finish_reason.
func FinishReason(f runtime.Finish) string {
	if f == runtime.FinishLength {
		return "length"
	}
	return "stop"
}

// ToUsage builds the usage of a request whose prompt held prompt tokens,
// cached of them reused from the cache, and that generated gen tokens.
func ToUsage(prompt, cached, gen int) Usage {
	return Usage{PromptTokens: prompt, CompletionTokens: gen, TotalTokens: prompt + gen,
		PromptTokensDetails: &PromptTokensDetails{CachedTokens: min(cached, prompt)}}
}

// ToSessionObject describes a live session.
func ToSessionObject(s *runtime.Session) SessionObject {
	m := s.Meta()
	return SessionObject{ID: s.ID(), Object: "session", Created: m.Created.Unix(), Updated: m.Updated.Unix(),
		Tokens: s.Len(), CachedTokens: s.Cached(), Messages: len(s.Messages()), Live: true}
}

// FromSessionInfo describes a stored session.
func FromSessionInfo(si runtime.SessionInfo) SessionObject {
	return SessionObject{ID: si.ID, Object: "session", Created: si.Meta.Created.Unix(), Updated: si.Meta.Updated.Unix(),
		Tokens: si.Tokens, CachedTokens: si.Cached, Messages: si.Messages, Bytes: si.Bytes}
}
