package chat

import (
	"embed"
	"fmt"
	"slices"
	"strings"
)

// The built-in templates are the families' published templates, verbatim
// (testdata/templates holds the same files; the tests keep them in step).
//
//go:embed builtin
var builtinFS embed.FS

// Built-in template names.
const (
	Llama2  = "llama2"  // Llama 2 chat: [INST] <<SYS>> ... [/INST]
	Llama3  = "llama3"  // Llama 3 Instruct: <|start_header_id|> ... <|eot_id|>
	ChatML  = "chatml"  // ChatML (Qwen, OpenHermes, ...): <|im_start|> ... <|im_end|>
	Mistral = "mistral" // Mistral/Mixtral Instruct: [INST] ... [/INST]
	Phi3    = "phi3"    // Phi-3: <|user|> ... <|end|>
	Gemma   = "gemma"   // Gemma: <start_of_turn> ... <end_of_turn>
)

// Builtins returns the names of the built-in templates, sorted.
func Builtins() []string {
	entries, err := builtinFS.ReadDir("builtin")
	if err != nil {
		panic("chat: embedded templates missing: " + err.Error())
	}
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".jinja"))
	}
	slices.Sort(names)
	return names
}

// Builtin returns the source of the built-in template name.
func Builtin(name string) (string, error) {
	b, err := builtinFS.ReadFile("builtin/" + name + ".jinja")
	if err != nil {
		return "", fmt.Errorf("chat: no built-in template %q (have %s)", name, strings.Join(Builtins(), ", "))
	}
	return string(b), nil
}

// Detect guesses the family of a chat template from the markers it emits
// and returns the name of the matching built-in template, or "" when it
// recognizes none.
func Detect(tmpl string) string {
	has := func(s ...string) bool {
		for _, x := range s {
			if !strings.Contains(tmpl, x) {
				return false
			}
		}
		return true
	}
	switch {
	case has("<|start_header_id|>", "<|eot_id|>"):
		return Llama3
	case has("<|im_start|>"):
		return ChatML
	case has("<|user|>", "<|end|>"), has("<|assistant|>", "<|end|>"):
		return Phi3
	case has("<start_of_turn>"):
		return Gemma
	case has("[INST]", "<<SYS>>"):
		return Llama2
	case has("[INST]"):
		return Mistral
	}
	return ""
}
