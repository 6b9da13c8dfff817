package httpapi_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/mnemo-ai/mnemo/backend"
	"github.com/mnemo-ai/mnemo/backend/cpu"
	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/synth"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
	"github.com/mnemo-ai/mnemo/runtime"
	"github.com/mnemo-ai/mnemo/runtime/httpapi"
)

// Example mounts the API in a Go server's own mux, under /llm/.
func Example() {
	dir, _ := os.MkdirTemp("", "mnemo-httpapi-example")
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

	mux := http.NewServeMux()
	api := httpapi.New(rt, httpapi.Options{ModelName: "tiny", Logger: slog.New(slog.DiscardHandler)})
	mux.Handle("/llm/", http.StripPrefix("/llm", api))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/llm/v1/chat/completions", "application/json", strings.NewReader(
		`{"model":"tiny","session":"demo","messages":[{"role":"user","content":"hi"}],"max_tokens":4,"temperature":0}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, strings.Contains(string(b), `"session":"demo"`))
	// Output: 200 OK true
}
