// Package chat renders chat messages into a model's prompt with the
// model's chat template (tokenizer.chat_template, a Jinja template) the way
// Hugging Face's apply_chat_template does: trim_blocks and lstrip_blocks
// on, raise_exception and strftime_now available, tojson as Python's
// json.dumps. Built-in templates cover the common families for models that
// ship none.
//
// Templates run in github.com/nikolalohinski/gonja/v2, a Go port of Jinja.
// A template can read no file: include, import and extends fail.
package chat

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// Message is one chat turn.
type Message struct {
	// Role is "system", "user", "assistant" or "tool".
	Role string
	// Content is the turn's text.
	Content string
	// Name optionally names the speaker or the tool.
	Name string
	// ToolCalls are the calls an assistant turn made.
	ToolCalls []ToolCall
	// ToolCallID links a tool turn to the call it answers.
	ToolCallID string
}

// ToolCall is a function call made by the assistant.
type ToolCall struct {
	ID        string
	Name      string
	Arguments map[string]any
}

// Options are the variables a template sees besides the messages.
type Options struct {
	// AddGenerationPrompt appends the header of the assistant's reply.
	AddGenerationPrompt bool
	// BOSToken and EOSToken are the texts of the model's BOS/EOS tokens.
	BOSToken, EOSToken string
	// Tools are function definitions (JSON-schema objects) offered to the
	// model; nil leaves the tools variable undefined.
	Tools []map[string]any
	// Vars are extra template variables (e.g. "enable_thinking"); they
	// cannot override the ones above.
	Vars map[string]any
	// Now is the time strftime_now reports; zero means time.Now.
	Now time.Time
}

// ErrTemplate reports a template that cannot be parsed or rendered.
var ErrTemplate = errors.New("chat: template error")

// RaiseError is the error a template raises with raise_exception.
type RaiseError struct{ Msg string }

func (e *RaiseError) Error() string { return "chat: template raised: " + e.Msg }

// Template is a parsed chat template, safe for concurrent use.
type Template struct {
	t *exec.Template
}

const templateName = "chat_template"

// onlyLoader serves the template source and nothing else.
type onlyLoader struct{ src string }

var errNoFiles = errors.New("chat templates cannot load other templates")

func (l onlyLoader) Read(path string) (io.Reader, error) {
	if path != templateName {
		return nil, errNoFiles
	}
	return strings.NewReader(l.src), nil
}

func (l onlyLoader) Resolve(path string) (string, error) {
	if path != templateName {
		return "", errNoFiles
	}
	return path, nil
}

func (l onlyLoader) Inherit(string) (loaders.Loader, error) { return l, nil }

// Parse parses a Jinja chat template.
func Parse(src string) (t *Template, err error) {
	defer recoverErr(&err)
	cfg := config.New()
	cfg.TrimBlocks = true
	cfg.LeftStripBlocks = true
	et, err := exec.NewTemplate(templateName, cfg, onlyLoader{src}, environment())
	if err != nil {
		return nil, fmt.Errorf("%w: parse: %v", ErrTemplate, err)
	}
	return &Template{t: et}, nil
}

// recoverErr turns a panic inside the Jinja engine (a bug there, triggered
// by a template) into an error: templates come from model files.
func recoverErr(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: engine panic: %v", ErrTemplate, r)
	}
}

// Render renders msgs with the Jinja template tmpl.
func Render(tmpl string, msgs []Message, opts Options) (string, error) {
	t, err := Parse(tmpl)
	if err != nil {
		return "", err
	}
	return t.Render(msgs, opts)
}

// Render renders msgs. An error raised by the template (raise_exception)
// is a *RaiseError.
func (t *Template) Render(msgs []Message, opts Options) (out string, err error) {
	defer recoverErr(&err)
	vars := map[string]any{}
	maps.Copy(vars, opts.Vars)
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = messageMap(m)
	}
	vars["messages"] = list
	vars["add_generation_prompt"] = opts.AddGenerationPrompt
	vars["bos_token"] = opts.BOSToken
	vars["eos_token"] = opts.EOSToken
	if opts.Tools != nil {
		tools := make([]any, len(opts.Tools))
		for i, tl := range opts.Tools {
			tools[i] = tl
		}
		vars["tools"] = tools
	}
	now := opts.Now
	raised := new(RaiseError)
	vars["raise_exception"] = func(_ *exec.Evaluator, params *exec.VarArgs) (string, error) {
		var parts []string
		for _, a := range params.Args {
			parts = append(parts, a.String())
		}
		raised.Msg = strings.Join(parts, " ")
		return "", raised
	}
	vars["strftime_now"] = func(_ *exec.Evaluator, params *exec.VarArgs) (string, error) {
		if len(params.Args) != 1 || !params.Args[0].IsString() {
			return "", errors.New("strftime_now takes one format string")
		}
		tm := now
		if tm.IsZero() {
			tm = time.Now()
		}
		return strftime(params.Args[0].String(), tm), nil
	}
	out, err = t.t.ExecuteToString(exec.NewContext(vars))
	if err != nil {
		if raised.Msg != "" || errors.As(err, new(*RaiseError)) {
			return "", raised
		}
		return "", fmt.Errorf("%w: render: %v", ErrTemplate, err)
	}
	return out, nil
}

func messageMap(m Message) map[string]any {
	mm := map[string]any{"role": m.Role, "content": m.Content}
	if m.Name != "" {
		mm["name"] = m.Name
	}
	if m.ToolCallID != "" {
		mm["tool_call_id"] = m.ToolCallID
	}
	if len(m.ToolCalls) > 0 {
		calls := make([]any, len(m.ToolCalls))
		for i, c := range m.ToolCalls {
			args := c.Arguments
			if args == nil {
				args = map[string]any{}
			}
			call := map[string]any{
				"type":     "function",
				"function": map[string]any{"name": c.Name, "arguments": args},
			}
			if c.ID != "" {
				call["id"] = c.ID
			}
			calls[i] = call
		}
		mm["tool_calls"] = calls
	}
	return mm
}

// environment is gonja's default environment with Hugging Face's tojson.
func environment() *exec.Environment {
	filters := exec.NewFilterSet(map[string]exec.FilterFunction{})
	filters.Update(builtins.Filters)
	if err := filters.Replace("tojson", filterToJSON); err != nil {
		panic("chat: gonja has no tojson filter to replace")
	}
	ctx := exec.EmptyContext().Update(builtins.GlobalFunctions).Update(builtins.GlobalVariables)
	return &exec.Environment{
		Context:           ctx,
		Filters:           filters,
		Tests:             builtins.Tests,
		ControlStructures: builtins.ControlStructures,
		Methods:           builtins.Methods,
	}
}
