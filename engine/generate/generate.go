// Package generate runs the decode loop of one sequence directly on an
// engine.Model: prefill its new tokens in chunks, then sample, stream text
// and stop on an end token, a stop sequence or the token budget. It is for
// programs that drive one sequence themselves; package runtime schedules
// many sessions together.
package generate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
)

// Why says why a generation stopped.
type Why string

// The reasons a generation stops.
const (
	StopEnd    Why = "stop"   // an end-of-generation token
	StopString Why = "stop"   // a stop sequence (reported as "stop", as OpenAI does)
	StopLength Why = "length" // the token budget or the context was used up
)

// Stats describe one generation.
type Stats struct {
	PromptTokens int
	GenTokens    int
	Prefill      time.Duration // until the first token was sampled
	Decode       time.Duration // after it
	Why          Why
}

// Request is one generation on a sequence.
type Request struct {
	// Seq is the sequence; its table may already hold earlier tokens
	// (a resumed conversation), and only what it lacks is prefilled.
	Seq *engine.Seq
	// Prompt is the new tokens to prefill before generating.
	Prompt []int32
	// History is every token of the sequence so far (for penalties), of
	// which the first Seq.Table.Len are in the cache: the last sampled
	// token of a previous generation is in History but not yet in the
	// cache, and is prefilled before Prompt. Run appends the prompt and
	// the generated tokens.
	History *[]int32
	// Sampler draws tokens; Options carries MaxTokens and Stop.
	Sampler *sample.Sampler
	Options sample.Options
	// Chunk is the prefill chunk size (the model's step limit).
	Chunk int
	// Context is the sequence's token limit; generation stops at it.
	Context int
	// Emit receives text as it is produced; an error stops generation.
	Emit func(text string) error
}

// Run generates. It returns the stats and the first error from the model,
// Emit or ctx; the sequence keeps every token it processed.
func Run(ctx context.Context, m engine.Model, tok *tokenizer.Tokenizer, r Request) (Stats, error) {
	if r.Seq.Table.Len > len(*r.History) {
		return Stats{}, errors.New("generate: the cache holds more tokens than the history")
	}
	feed := append(append([]int32(nil), (*r.History)[r.Seq.Table.Len:]...), r.Prompt...)
	st := Stats{PromptTokens: len(feed)}
	if len(feed) == 0 {
		return st, errors.New("generate: empty prompt")
	}
	if r.Chunk <= 0 {
		r.Chunk = 512
	}
	start := time.Now()
	var logits []float32
	for at := 0; at < len(feed); at += r.Chunk {
		r.Seq.Tokens = feed[at:min(len(feed), at+r.Chunk)]
		r.Seq.AllLogits = false
		out, err := m.Forward(ctx, []*engine.Seq{r.Seq})
		if err != nil {
			return st, fmt.Errorf("prefill: %w", err)
		}
		logits = out[0].Row(0)
	}
	*r.History = append(*r.History, r.Prompt...)
	dec := tok.NewDecoder()
	stop := sample.NewStopper(r.Options.Stop)
	emit := func(s string) error {
		if s == "" {
			return nil
		}
		return r.Emit(s)
	}
	decodeStart := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		id := r.Sampler.Sample(logits, *r.History)
		if st.GenTokens == 0 {
			st.Prefill = time.Since(start)
			decodeStart = time.Now()
		}
		if id == tok.EOS() || (tok.EOT() >= 0 && id == tok.EOT()) {
			st.Why = StopEnd
			break
		}
		st.GenTokens++
		*r.History = append(*r.History, id)
		text, stopped := stop.Push(dec.Add(id))
		if err := emit(text); err != nil {
			return st, err
		}
		if stopped {
			st.Why = StopString
			break
		}
		if (r.Options.MaxTokens > 0 && st.GenTokens >= r.Options.MaxTokens) || r.Seq.Table.Len+1 >= r.Context {
			// The last token is sampled but not fed: the next turn feeds it.
			st.Why = StopLength
			break
		}
		r.Seq.Tokens = []int32{id}
		out, err := m.Forward(ctx, []*engine.Seq{r.Seq})
		if err != nil {
			return st, fmt.Errorf("decode: %w", err)
		}
		logits = out[0].Row(0)
	}
	st.Decode = time.Since(decodeStart)
	if st.Why != StopString {
		text, _ := stop.Push(dec.Flush())
		if err := emit(text + stop.Flush()); err != nil {
			return st, err
		}
	}
	return st, nil
}
