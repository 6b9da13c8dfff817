package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/mnemo-ai/mnemo/bench/quanterr"
)

func init() {
	register(&Command{
		Name:    "bench quant",
		Args:    "[--rows N] [--cols N] [--seed N] [--json FILE]",
		Summary: "measure each weight format's quantization error on seeded random matrices",
		Run:     runBenchQuant,
	})
}

func runBenchQuant(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "bench quant")
	rows := fs.Int("rows", 256, "rows of each random matrix")
	cols := fs.Int("cols", 4096, "columns of each random matrix (a multiple of 32)")
	seed := fs.Uint64("seed", 1, "random seed (the matrices are a function of it)")
	jsonPath := fs.String("json", "", "also write the results as JSON to `FILE`")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *rows <= 0 {
		return usagef("--rows must be positive")
	}
	if *cols <= 0 || *cols%32 != 0 {
		return usagef("--cols must be a positive multiple of 32")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	res := quanterr.Run(quanterr.Options{Rows: *rows, Cols: *cols, Seed: *seed})
	if _, err := fmt.Fprintf(env.Stdout, "quantization error: %d×%d matrices, seed %d; rel-rmse = rmse/rms(w), max-err = max|err|/max|w|\n",
		*rows, *cols, *seed); err != nil {
		return err
	}
	if err := quanterr.Fprint(env.Stdout, res); err != nil {
		return err
	}
	if *jsonPath == "" {
		return nil
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
