package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/mnemo-ai/mnemo/engine/chat"
	"github.com/mnemo-ai/mnemo/engine/llama2c"
	"github.com/mnemo-ai/mnemo/engine/model"
	"github.com/mnemo-ai/mnemo/engine/sample"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
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
	if *session != "" {
		mf.storedKV = func(src model.Source) string {
			state, err := resolveStateDir(env, *stateDir)
			if err != nil {
				return "" // reported when the session is opened
			}
			return storedKV(state, pos[0], src, &mf, *tokPath, *session)
		}
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
	if _, err := sample.New(sf.opts, l.model.Config().VocabSize); err != nil {
		return usagef("%v", err)
	}
	ctxLen := min(l.model.Config().ContextLength, 4096)
	if mf.context > 0 {
		ctxLen = mf.context
	}
	return runWithSession(ctx, &sessionRun{env: env, l: l, mf: &mf, path: pos[0], tokPath: *tokPath, tok: tok,
		tmpl: tmpl, opts: sf.opts, stateDir: *stateDir, name: *session, system: *system, stats: *stats,
		ctxLen: ctxLen}, *prompt, *chatMode)
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
