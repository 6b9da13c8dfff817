package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startServe runs `mnemo serve` in a goroutine and returns its base URL,
// a func that stops it and returns the exit status, and the log so far.
func startServe(t *testing.T, args ...string) (string, func() int, func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	var mu sync.Mutex
	var logBuf bytes.Buffer
	addrc := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			logBuf.WriteString(line + "\n")
			mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addrc <- rec.Addr
			}
		}
	}()
	codec := make(chan int, 1)
	go func() {
		code := Main(ctx, append([]string{"serve"}, args...), Env{Stdin: strings.NewReader(""), Stdout: io.Discard,
			Stderr: pw, Getenv: func(string) string { return "" }})
		pw.Close()
		codec <- code
	}()
	logs := func() string {
		mu.Lock()
		defer mu.Unlock()
		return logBuf.String()
	}
	stop := func() int {
		cancel()
		code := <-codec
		<-scanned
		return code
	}
	select {
	case addr := <-addrc:
		return "http://" + addr, stop, logs
	case code := <-codec:
		<-scanned
		cancel()
		t.Fatalf("serve exited with %d before listening:\n%s", code, logs())
	}
	return "", nil, nil
}

func TestServe(t *testing.T) {
	m := tinyModel(t)
	state := t.TempDir()
	url, stop, logs := startServe(t, m, "--addr", "127.0.0.1:0", "--state-dir", state, "--name", "tiny")

	resp, err := http.Get(url + "/v1/models")
	require.NoError(t, err)
	var ml struct {
		Data []struct{ ID string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ml))
	resp.Body.Close()
	require.Len(t, ml.Data, 1)
	assert.Equal(t, "tiny", ml.Data[0].ID)

	// A session turn, saved to the state directory when the server stops.
	body := `{"session":"srv-1","messages":[{"role":"user","content":"hello"}],"max_tokens":3,"temperature":0}`
	resp, err = http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))

	assert.Equal(t, 0, stop(), logs())
	assert.Contains(t, logs(), `"msg":"stopped"`)
	assert.Contains(t, logs(), `"path":"/v1/chat/completions"`)
	assert.Contains(t, logs(), `"session_id":"srv-1"`)

	// The session survived the restart, with its history.
	url, stop, logs = startServe(t, m, "--addr", "127.0.0.1:0", "--state-dir", state)
	resp, err = http.Get(url + "/v1/sessions")
	require.NoError(t, err)
	var sl struct {
		Data []struct {
			ID   string
			Live bool
		}
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&sl))
	resp.Body.Close()
	require.Len(t, sl.Data, 1)
	assert.Equal(t, "srv-1", sl.Data[0].ID)
	assert.False(t, sl.Data[0].Live, "stored, not loaded yet")
	resp, err = http.Get(url + "/v1/sessions/srv-1")
	require.NoError(t, err)
	var so struct {
		Tokens   int
		Messages int
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&so))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Positive(t, so.Tokens)
	assert.Equal(t, 2, so.Messages)
	assert.Equal(t, 0, stop(), logs())
}

func TestServeBadInput(t *testing.T) {
	m := tinyModel(t)
	for _, tt := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no model", []string{"serve"}, 2, "want exactly one MODEL"},
		{"bad -n", []string{"serve", m, "-n", "0"}, 2, "-n"},
		{"bad snapshot share", []string{"serve", m, "--snapshot-share", "2"}, 2, "--snapshot-share"},
		{"bad addr", []string{"serve", m, "--addr", "256.0.0.1:99999", "--state-dir", t.TempDir()}, 1, "listen"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runMain(t, "", tt.args...)
			assert.Equal(t, tt.code, code, stderr)
			assert.Contains(t, stderr, tt.msg)
		})
	}
}
