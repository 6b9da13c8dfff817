package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/generate"
	"github.com/mnemo-ai/mnemo/engine/llama2c"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
	"github.com/mnemo-ai/mnemo/kvcache"
	"github.com/mnemo-ai/mnemo/runtime"
)

func init() {
	register(&Command{
		Name: "run",
		Args: "MODEL [--prompt TEXT] [-n N] [--temp T] [--seed S] [--chat] [--session NAME [--state-dir DIR]] [flags]",
		Summary: "generate text from a prompt, streamed to stdout; without --prompt on a terminal, " +
			"an interactive chat that keeps its KV cache between turns",
		Run: runRun,
	})
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// sampleFlags are the sampling flags shared by run and the server.
type sampleFlags struct {
	opts sample.Options
	stop stringList
}

func (f *sampleFlags) register(fsFlags *flag.FlagSet, temp, topP, minP, rep *float64) {
	fsFlags.Float64Var(temp, "temp", 0.8, "sampling temperature (0: greedy)")
	fsFlags.IntVar(&f.opts.TopK, "top-k", 40, "keep the k most likely tokens (0: off)")
	fsFlags.Float64Var(topP, "top-p", 0.95, "nucleus sampling mass (1: off)")
	fsFlags.Float64Var(minP, "min-p", 0.05, "drop tokens below this fraction of the best one's probability (0: off)")
	fsFlags.Float64Var(rep, "repeat-penalty", 1.1, "penalty for repeated tokens (1: off)")
	fsFlags.Uint64Var(&f.opts.Seed, "seed", 0, "random seed (same seed, same text)")
	fsFlags.Var(&f.stop, "stop", "stop sequence (repeatable)")
}

func runRun(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "run")
	var mf modelFlags
	mf.register(fs)
	var sf sampleFlags
	var temp, topP, minP, rep float64
	sf.register(fs, &temp, &topP, &minP, &rep)
	prompt := fs.String("prompt", "", "prompt text (default: read stdin, or chat interactively on a terminal)")
	n := fs.Int("n", 256, "most tokens to generate per reply")
	chatMode := fs.Bool("chat", false, "wrap the prompt as a user message with the model's chat template")
	system := fs.String("system", "", "system message for chat")
	tokPath := fs.String("tokenizer", "", "llama2.c tokenizer.bin (llama2.c checkpoints carry no vocabulary)")
	stats := fs.Bool("stats", true, "print timings to stderr")
	session := fs.String("session", "", "resume (or start) the named conversation, kept in --state-dir across runs")
	stateDir := stateDirFlag(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one MODEL")
	}
	if *n < 1 {
		return usagef("-n must be positive")
	}
	if *session != "" {
		if err := runtime.ValidateID(*session); err != nil {
			return usagef("--session: %v", err)
		}
	}
	sf.opts.Temperature, sf.opts.TopP, sf.opts.MinP, sf.opts.RepeatPenalty = float32(temp), float32(topP), float32(minP), float32(rep)
	sf.opts.MaxTokens, sf.opts.Stop, sf.opts.PenaltyLastN = *n, sf.stop, 64
	if err := sf.opts.Validate(); err != nil {
		return usagef("%v", err)
	}
	l, err := mf.open(env, pos[0], nil)
	if err != nil {
		return err
	}
	defer l.Close()
	tok, tmpl, err := loadTokenizer(l.src, *tokPath)
	if err != nil {
		return err
	}
	smp, err := sample.New(sf.opts, l.model.Config().VocabSize)
	if err != nil {
		return usagef("%v", err)
	}
	c := &conversation{
		env: env, m: l.model, tok: tok, tmpl: tmpl, smp: smp, opts: sf.opts, chunk: mf.batch, stats: *stats,
		seq: &engine.Seq{Table: &kvcache.Table{}}, ctxLen: l.model.Config().ContextLength,
	}
	c.ctxLen = min(c.ctxLen, 4096)
	if mf.context > 0 {
		c.ctxLen = mf.context
	}
	if *session != "" {
		return runWithSession(ctx, &sessionRun{env: env, l: l, mf: &mf, path: pos[0], tokPath: *tokPath, tok: tok,
			tmpl: tmpl, opts: sf.opts, stateDir: *stateDir, name: *session, system: *system, stats: *stats,
			ctxLen: c.ctxLen}, *prompt, *chatMode)
	}
	defer c.seq.Table.Release(l.model.KV().Pool)
	if *system != "" {
		c.msgs = append(c.msgs, chat.Message{Role: "system", Content: *system})
	}
	if *prompt == "" && isTerminal(env.Stdin) {
		return c.interactive(ctx)
	}
	text := *prompt
	if text == "" {
		b, err := io.ReadAll(env.Stdin)
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		text = string(b)
	}
	if *chatMode {
		err = c.chatTurn(ctx, text)
	} else {
		err = c.complete(ctx, text)
	}
	fmt.Fprintln(env.Stdout)
	return err
}

// loadTokenizer builds the tokenizer from the model's GGUF metadata, or
// from a llama2.c tokenizer.bin, and returns the chat template (the file's,
// else ChatML).
func loadTokenizer(src model.Source, path string) (*tokenizer.Tokenizer, string, error) {
	if path != "" {
		t, err := llama2c.OpenTokenizer(path, src.Config().VocabSize)
		if err != nil {
			return nil, "", err
		}
		v := &tokenizer.Vocab{Model: tokenizer.ModelSPM, BOS: 1, EOS: 2, UNK: 0, PAD: -1, EOT: -1, AddBOS: true, AddSpacePrefix: true,
			Scores: t.Scores}
		for i, s := range t.Tokens {
			typ := int32(tokenizer.TypeNormal)
			switch {
			case i < 3:
				typ = int32(tokenizer.TypeControl)
			case len(s) == 6 && strings.HasPrefix(s, "<0x") && strings.HasSuffix(s, ">"):
				typ = int32(tokenizer.TypeByte)
			}
			v.Tokens = append(v.Tokens, strings.ReplaceAll(s, " ", "▁"))
			v.Types = append(v.Types, typ)
		}
		tok, err := tokenizer.New(v)
		if err != nil {
			return nil, "", fmt.Errorf("tokenizer %s: %w", path, err)
		}
		return tok, mustBuiltin("chatml"), nil
	}
	gs, ok := src.(*model.GGUFSource)
	if !ok {
		return nil, "", errors.New("this model file has no vocabulary: pass --tokenizer tokenizer.bin")
	}
	tok, err := tokenizer.FromGGUF(gs.File())
	if err != nil {
		return nil, "", err
	}
	tmpl, err := gs.File().String("tokenizer.chat_template")
	if err != nil {
		tmpl = mustBuiltin("chatml")
	}
	return tok, tmpl, nil
}

func mustBuiltin(name string) string {
	t, err := chat.Builtin(name)
	if err != nil {
		panic(err)
	}
	return t
}

// conversation is one sequence whose KV cache lives for the whole run:
// every turn prefills only what the cache does not already hold.
type conversation struct {
	env     Env
	m       engine.Model
	tok     *tokenizer.Tokenizer
	tmpl    string
	smp     *sample.Sampler
	opts    sample.Options
	chunk   int
	stats   bool
	seq     *engine.Seq
	ctxLen  int
	history []int32
	msgs    []chat.Message
}

// complete continues the raw text.
func (c *conversation) complete(ctx context.Context, text string) error {
	ids := c.tok.Encode(text, tokenizer.EncodeOptions{NoSpecial: len(c.history) > 0})
	fmt.Fprint(c.env.Stdout, text)
	_, err := c.generate(ctx, ids)
	return err
}

// chatTurn adds a user message and generates the reply. The whole
// conversation is rendered again; the cache keeps the longest prefix that
// still matches and only the rest is prefilled.
func (c *conversation) chatTurn(ctx context.Context, text string) error {
	c.msgs = append(c.msgs, chat.Message{Role: "user", Content: text})
	rendered, err := chat.Render(c.tmpl, c.msgs, chat.Options{AddGenerationPrompt: true,
		BOSToken: c.tok.Token(c.tok.BOS()), EOSToken: c.tok.Token(c.tok.EOS())})
	if err != nil {
		return err
	}
	ids := c.tok.Encode(rendered, tokenizer.EncodeOptions{ParseSpecial: true})
	common := 0
	for common < len(ids) && common < len(c.history) && ids[common] == c.history[common] {
		common++
	}
	if common == len(ids) { // never re-use everything: the last token must be fed
		common--
	}
	if common < c.seq.Table.Len {
		c.seq.Table.Truncate(c.m.KV().Pool, common, c.m.KV().BlockTokens)
	}
	c.history = c.history[:common]
	var reply strings.Builder
	emit := c.env.Stdout
	c.env.Stdout = io.MultiWriter(emit, &reply)
	_, err = c.generate(ctx, ids[common:])
	c.env.Stdout = emit
	c.msgs = append(c.msgs, chat.Message{Role: "assistant", Content: reply.String()})
	return err
}

func (c *conversation) generate(ctx context.Context, prompt []int32) (generate.Stats, error) {
	st, err := generate.Run(ctx, c.m, c.tok, generate.Request{
		Seq: c.seq, Prompt: prompt, History: &c.history, Sampler: c.smp, Options: c.opts,
		Chunk: c.chunk, Context: c.ctxLen,
		Emit: func(s string) error { _, err := io.WriteString(c.env.Stdout, s); return err },
	})
	if c.stats && (err == nil || errors.Is(err, context.Canceled)) {
		pre := float64(st.PromptTokens) / max(st.Prefill.Seconds(), 1e-9)
		gen := float64(max(st.GenTokens-1, 0)) / max(st.Decode.Seconds(), 1e-9)
		fmt.Fprintf(c.env.Stderr, "\n[prefill %d tokens in %.0f ms (%.1f tok/s), generated %d tokens (%.1f tok/s), %d in cache, stop: %s]\n",
			st.PromptTokens, st.Prefill.Seconds()*1000, pre, st.GenTokens, gen, c.seq.Table.Len, st.Why)
	}
	return st, err
}

func (c *conversation) interactive(ctx context.Context) error {
	in := bufio.NewScanner(c.env.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	fmt.Fprintln(c.env.Stderr, "chat: type a message and press enter; an empty line or Ctrl-D quits")
	for {
		fmt.Fprint(c.env.Stderr, "> ")
		if !in.Scan() {
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		if line == "" {
			return nil
		}
		if err := c.chatTurn(ctx, line); err != nil {
			return err
		}
		fmt.Fprintln(c.env.Stdout)
	}
}
