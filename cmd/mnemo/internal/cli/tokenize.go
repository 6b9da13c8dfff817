package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/tokenizer"
)

func init() {
	register(&Command{
		Name:    "tokenize",
		Args:    "MODEL TEXT [flags]",
		Summary: "print the token ids of TEXT (\"-\" reads stdin) under a GGUF model's tokenizer",
		Run:     runTokenize,
	})
	register(&Command{
		Name:    "detokenize",
		Args:    "MODEL ID... [flags]",
		Summary: "print the text of token ids under a GGUF model's tokenizer",
		Run:     runDetokenize,
	})
}

// ggufTokenizer reads the tokenizer of the GGUF file at path.
func ggufTokenizer(path string) (*tokenizer.Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer of %s: %w", path, err)
	}
	return tok, nil
}

func runTokenize(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "tokenize")
	noBOS := fs.Bool("no-bos", false, "do not add the BOS/EOS tokens the vocabulary asks for")
	special := fs.Bool("special", false, "match control tokens such as <|im_start|> in TEXT")
	pieces := fs.Bool("pieces", false, "print id:piece pairs (pieces quoted) instead of bare ids")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("want MODEL and TEXT, got %d arguments", len(pos))
	}
	text := pos[1]
	if text == "-" {
		if env.Stdin == nil {
			return usagef("TEXT is - but there is no standard input")
		}
		b, err := io.ReadAll(env.Stdin)
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		text = string(b)
	}
	tok, err := ggufTokenizer(pos[0])
	if err != nil {
		return err
	}
	ids := tok.Encode(text, tokenizer.EncodeOptions{NoSpecial: *noBOS, ParseSpecial: *special})
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(int(id)))
		if *pieces {
			b.WriteByte(':')
			b.WriteString(strconv.Quote(tok.Piece(id)))
		}
	}
	b.WriteByte('\n')
	_, err = io.WriteString(env.Stdout, b.String())
	return err
}

func runDetokenize(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "detokenize")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usagef("want MODEL and at least one token id")
	}
	ids := make([]int32, 0, len(pos)-1)
	for _, s := range pos[1:] {
		for _, f := range strings.Fields(s) { // accept "1 2 3" as one argument too
			id, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				return usagef("token id %q is not an integer", f)
			}
			ids = append(ids, int32(id))
		}
	}
	tok, err := ggufTokenizer(pos[0])
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id < 0 || int(id) >= tok.NumTokens() {
			return fmt.Errorf("token id %d out of range [0,%d)", id, tok.NumTokens())
		}
	}
	_, err = io.WriteString(env.Stdout, tok.Decode(ids)+"\n")
	return err
}
