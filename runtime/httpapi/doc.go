// Package httpapi serves a runtime.Runtime over the OpenAI HTTP API, as an
// http.Handler that `mnemo serve` wires and that other Go servers can mount.
//
// # Endpoints
//
//	GET    /v1/models                the model (Options.ModelName)
//	GET    /v1/models/{id}
//	POST   /v1/chat/completions      chat; "stream": true for server-sent events
//	POST   /v1/completions           raw text continuation; streams too
//	GET    /v1/sessions              the sessions, live and stored
//	GET    /v1/sessions/{id}         a session's metadata (live or stored)
//	DELETE /v1/sessions/{id}         erase a session (memory and store)
//	GET    /metrics                  Prometheus text format
//
// Requests accept OpenAI's sampling fields (max_tokens or
// max_completion_tokens, temperature, top_p, seed, stop as a string or an
// array, presence_penalty, frequency_penalty, logit_bias with -100 banning
// a token, n only 1) plus llama.cpp's top_k, min_p and repeat_penalty.
// Unknown fields are ignored; a known field of the wrong type or out of
// range fails with 400. A "model" other than Options.ModelName is 404; an
// empty one means the served model.
//
// # Sessions (mnemo's stateful extension)
//
// A chat or completion request names a session with the "session" body
// field or the X-Session-ID header (both set must agree). Then:
//
//   - the session is opened (created if new, restored from the runtime's
//     Store if saved), and the request's messages are APPENDED to its
//     conversation (for /v1/completions, the prompt is appended to its
//     text): the client sends only the new turn, the KV cache of the
//     history is reused, and usage.prompt_tokens_details.cached_tokens
//     counts the reused tokens. The reply is recorded in the session as an
//     assistant message. Sampling options given at a session's creation
//     are its defaults; its random number generator carries over turns.
//   - If the request fails before generating (bad template, context full,
//     client gone), the session is put back as it was (a session the
//     request created is deleted). A generation cut short by a disconnect
//     keeps the part already generated.
//   - A second request on a session while one runs gets 409 session_busy;
//     requests on different sessions run concurrently, batched.
//
// Without a session the request is stateless, as in OpenAI: its messages
// are the whole conversation, run in a temporary session that is deleted
// afterwards. The runtime's prefix cache (Options.Cache) still lets equal
// prefixes (a shared system prompt) reuse their KV blocks, and usage
// counts those hits as cached_tokens.
//
// # Errors
//
// Every error is OpenAI's JSON ({"error":{"message","type","param","code"}}):
// 400 invalid request, 404 unknown model, session or route, 405 wrong
// method, 409 session busy, 413 body over Options.MaxBodyBytes, 503 the
// runtime is closed, 500 anything else (whose details go to the log only).
// A streamed response that fails after its first event ends with an error
// event instead of "data: [DONE]". A client that disconnects cancels its
// generation at the next step.
package httpapi
