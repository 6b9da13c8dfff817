package httpapi

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/runtime"
)

func TestDecodeChatRequest(t *testing.T) {
	for _, tt := range []struct {
		name    string
		body    string
		stop    []string
		content []string
		wantErr bool
	}{
		{name: "string stop", body: `{"messages":[{"role":"user","content":"hi"}],"stop":"x"}`,
			stop: []string{"x"}, content: []string{"hi"}},
		{name: "array stop", body: `{"messages":[{"role":"user","content":"hi"}],"stop":["a","b"]}`,
			stop: []string{"a", "b"}, content: []string{"hi"}},
		{name: "null stop", body: `{"messages":[{"role":"user","content":"hi"}],"stop":null}`, content: []string{"hi"}},
		{name: "content parts",
			body:    `{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}`,
			content: []string{"ab"}},
		{name: "null content", body: `{"messages":[{"role":"assistant","content":null}]}`, content: []string{""}},
		{name: "unknown fields ignored", body: `{"messages":[],"frobnicate":{"x":1}}`, content: []string{}},
		{name: "stop wrong type", body: `{"stop":3}`, wantErr: true},
		{name: "content wrong type", body: `{"messages":[{"role":"user","content":5}]}`, wantErr: true},
		{name: "temperature wrong type", body: `{"temperature":"hot"}`, wantErr: true},
		{name: "max_tokens fraction", body: `{"max_tokens":1.5}`, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var req ChatCompletionRequest
			err := json.Unmarshal([]byte(tt.body), &req)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, StringList(tt.stop), req.Stop)
			got := []string{}
			for _, m := range req.Messages {
				s, err := m.Content.String()
				require.NoError(t, err)
				got = append(got, s)
			}
			assert.Equal(t, tt.content, got)
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestToSampling(t *testing.T) {
	def := sample.Options{Temperature: 0.8, TopK: 40, MaxTokens: 16, Stop: []string{"END"}}
	inf := float32(math.Inf(-1))
	for _, tt := range []struct {
		name   string
		p      SamplingParams
		want   sample.Options
		maxTok int
		param  string // the parameter an error names; "" for success
	}{
		{name: "defaults", want: def, maxTok: 16},
		{name: "overrides",
			p: SamplingParams{MaxTokens: ptr(5), Temperature: ptr(0.0), TopP: ptr(0.5), TopK: ptr(3), MinP: ptr(0.1),
				Seed: ptr(int64(-1)), Stop: StringList{"a"}, PresencePenalty: ptr(0.5), FrequencyPenalty: ptr(-0.5),
				LogitBias: map[string]float64{"7": 2, "9": -100}},
			want: sample.Options{Temperature: 0, TopP: 0.5, TopK: 3, MinP: 0.1, Seed: math.MaxUint64, MaxTokens: 5,
				Stop: []string{"a"}, PresencePenalty: 0.5, FrequencyPenalty: -0.5,
				LogitBias: map[int32]float32{7: 2, 9: inf}},
			maxTok: 5},
		{name: "max_completion_tokens wins", p: SamplingParams{MaxTokens: ptr(5), MaxCompletionTokens: ptr(9)},
			want: func() sample.Options { o := def; o.MaxTokens = 9; return o }(), maxTok: 9},
		{name: "n=1 ok", p: SamplingParams{N: ptr(1)}, want: def, maxTok: 16},
		{name: "n=2", p: SamplingParams{N: ptr(2)}, param: "n"},
		{name: "max_tokens 0", p: SamplingParams{MaxTokens: ptr(0)}, param: "max_tokens"},
		{name: "temperature high", p: SamplingParams{Temperature: ptr(2.5)}, param: "temperature"},
		{name: "temperature NaN", p: SamplingParams{Temperature: ptr(math.NaN())}, param: "temperature"},
		{name: "top_p high", p: SamplingParams{TopP: ptr(1.5)}, param: "top_p"},
		{name: "top_k negative", p: SamplingParams{TopK: ptr(-1)}, param: "top_k"},
		{name: "min_p negative", p: SamplingParams{MinP: ptr(-0.1)}, param: "min_p"},
		{name: "presence low", p: SamplingParams{PresencePenalty: ptr(-3.0)}, param: "presence_penalty"},
		{name: "frequency high", p: SamplingParams{FrequencyPenalty: ptr(3.0)}, param: "frequency_penalty"},
		{name: "empty stop", p: SamplingParams{Stop: StringList{""}}, param: "stop"},
		{name: "too many stops", p: SamplingParams{Stop: StringList{"a", "b", "c", "d", "e"}}, param: "stop"},
		{name: "bias key", p: SamplingParams{LogitBias: map[string]float64{"x": 1}}, param: "logit_bias"},
		{name: "bias negative key", p: SamplingParams{LogitBias: map[string]float64{"-1": 1}}, param: "logit_bias"},
		{name: "bias value", p: SamplingParams{LogitBias: map[string]float64{"1": 101}}, param: "logit_bias"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, maxTok, err := ToSampling(tt.p, def)
			if tt.param != "" {
				var e *Error
				require.ErrorAs(t, err, &e)
				assert.Equal(t, http.StatusBadRequest, e.Status)
				assert.Equal(t, tt.param, e.Param)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.maxTok, maxTok)
		})
	}
}

func TestToMessages(t *testing.T) {
	tc := ToolCall{ID: "c1", Type: "function"}
	tc.Function.Name, tc.Function.Arguments = "f", `{"x":1}`
	bad := tc
	bad.Function.Arguments = `[1`
	for _, tt := range []struct {
		name  string
		in    []Message
		want  []chat.Message
		param string
	}{
		{name: "roles", in: []Message{{Role: "developer", Content: Content{Text: "s"}}, {Role: "user", Content: Content{Text: "u"}},
			{Role: "assistant", ToolCalls: []ToolCall{tc}}, {Role: "tool", ToolCallID: "c1", Content: Content{Text: "r"}}},
			want: []chat.Message{{Role: "system", Content: "s"}, {Role: "user", Content: "u"},
				{Role: "assistant", ToolCalls: []chat.ToolCall{{ID: "c1", Name: "f", Arguments: map[string]any{"x": 1.0}}}},
				{Role: "tool", ToolCallID: "c1", Content: "r"}}},
		{name: "empty", param: "messages"},
		{name: "bad role", in: []Message{{Role: "robot"}}, param: "messages[0].role"},
		{name: "image part", in: []Message{{Role: "user", Content: Content{Parts: []ContentPart{{Type: "image_url"}}}}},
			param: "messages[0].content"},
		{name: "bad arguments", in: []Message{{Role: "assistant", ToolCalls: []ToolCall{bad}}},
			param: "messages[0].tool_calls[0].function.arguments"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ToMessages(tt.in)
			if tt.param != "" {
				var e *Error
				require.ErrorAs(t, err, &e)
				assert.Equal(t, tt.param, e.Param)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestUsageAndFinish(t *testing.T) {
	u := ToUsage(10, 7, 3)
	assert.Equal(t, Usage{PromptTokens: 10, CompletionTokens: 3, TotalTokens: 13,
		PromptTokensDetails: &PromptTokensDetails{CachedTokens: 7}}, u)
	assert.Equal(t, 10, ToUsage(10, 12, 0).PromptTokensDetails.CachedTokens, "cached never exceeds the prompt")
	assert.Equal(t, "length", FinishReason(runtime.FinishLength))
	assert.Equal(t, "stop", FinishReason(runtime.FinishStop))
}

func TestErrorFor(t *testing.T) {
	for _, tt := range []struct {
		name     string
		err      error
		status   int
		typ      string
		code     string
		internal bool
	}{
		{"busy", runtime.ErrBusy, 409, typeConflict, "session_busy", false},
		{"closed", runtime.ErrClosed, 503, typeUnavailable, "unavailable", false},
		{"not found", runtime.ErrNotFound, 404, typeNotFound, "session_not_found", false},
		{"invalid id", runtime.ErrInvalidID, 400, typeInvalid, "invalid_session_id", false},
		{"too large", &http.MaxBytesError{Limit: 10}, 413, typeInvalid, "request_too_large", false},
		{"sampling", sample.ErrInvalidOption, 400, typeInvalid, "", false},
		{"internal", errors.New("disk /secret/path on fire"), 500, typeServer, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body, internal := ErrorFor(tt.err)
			assert.Equal(t, tt.status, status)
			assert.Equal(t, tt.typ, body.Error.Type)
			assert.Equal(t, tt.internal, internal)
			if tt.code == "" {
				assert.Nil(t, body.Error.Code)
			} else if assert.NotNil(t, body.Error.Code) {
				assert.Equal(t, tt.code, *body.Error.Code)
			}
			assert.NotContains(t, body.Error.Message, "/secret", "internal details never reach the client")
		})
	}
}

func FuzzChatCompletionDecode(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["x"],"temperature":0.5,"logit_bias":{"3":-100}}`,
		`{"messages":[{"role":"assistant","content":[{"type":"text","text":"a"}],"tool_calls":[{"id":"1","function":{"name":"f","arguments":"{}"}}]}]}`,
		`{"stop":"s","max_tokens":3,"n":1,"seed":-5}`,
		`[]`, `null`, `{"messages":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req ChatCompletionRequest
		if json.Unmarshal(b, &req) != nil {
			return
		}
		msgs, err := ToMessages(req.Messages)
		if err == nil {
			assert.Len(t, msgs, len(req.Messages))
		}
		o, _, err := ToSampling(req.SamplingParams, sample.Options{Temperature: 1})
		if err == nil {
			assert.NoError(t, o.Validate(), "accepted options are valid")
		}
	})
}
