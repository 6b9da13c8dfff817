package runtime_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	_ "github.com/mnemo-ai/mnemo/engine/arch/all"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
	"github.com/mnemo-ai/mnemo/runtime"
)

// Example embeds the runtime in a Go program: a session keeps its KV cache
// between turns, so each turn prefills only its own tokens (AppendText
// prefills; Generate starts from the cache).
func Example() {
	dir, _ := os.MkdirTemp("", "mnemo-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tiny.gguf") // any GGUF model works here
	if err := synth.WriteFile(path, synth.Tiny("llama")); err != nil {
		panic(err)
	}
	src, _ := model.Open(path)
	defer src.Close()
	be, _ := cpu.New(backend.Options{})
	defer be.Close()
	m, err := engine.New(src, be, engine.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	tok, _ := tokenizer.FromGGUF(src.(*model.GGUFSource).File())
	rt, err := runtime.New(m, runtime.Options{Tokenizer: tok})
	if err != nil {
		panic(err)
	}
	defer rt.Close()

	ctx := context.Background()
	s, _ := rt.Open(ctx, "conversation-1", runtime.SessionOptions{})
	for _, turn := range []string{"the cat", " and the dog"} {
		if err := s.AppendText(ctx, turn); err != nil {
			panic(err)
		}
		var res *runtime.Result
		for ev, err := range s.Generate(ctx, runtime.GenerateOptions{MaxTokens: 4}) {
			if err != nil {
				panic(err)
			}
			if ev.Done {
				res = ev.Result
			}
		}
		fmt.Printf("generated %d tokens from a cache of %d; the session holds %d tokens\n", res.GenTokens, res.CachedTokens, s.Len())
	}
	// Output:
	// generated 4 tokens from a cache of 6; the session holds 10 tokens
	// generated 4 tokens from a cache of 17; the session holds 21 tokens
}
