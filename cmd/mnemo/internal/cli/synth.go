package cli

import (
	"context"
	"fmt"

	"github.com/mnemo-ai/mnemo/engine/gguf"
	"github.com/mnemo-ai/mnemo/engine/synth"
)

func init() {
	register(&Command{
		Name:    "synth",
		Args:    "-o FILE [--size small|tinyllama|tiny] [--arch llama|qwen2|qwen3|phi3] [--type f32|f16|bf16|q8_0|q4_0] [--seed N]",
		Summary: "write a synthetic Llama-shaped GGUF model with random weights (for demos, tests and benchmarks)",
		Run:     runSynth,
	})
}

func runSynth(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "synth")
	out := fs.String("o", "", "output file")
	size := fs.String("size", "small", "shape: tiny (unit-test size), small (~25M parameters) or tinyllama (1.1B)")
	arch := fs.String("arch", "llama", "architecture: llama, qwen2, qwen3 or phi3")
	typ := fs.String("type", "", "matrix type: f32, f16, bf16, q8_0 or q4_0 (default: f32 for tiny, f16 otherwise)")
	seed := fs.Uint64("seed", 1, "random seed")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *out == "" {
		return usagef("want -o FILE and no other arguments")
	}
	var s synth.Spec
	switch *size {
	case "tiny":
		s = synth.Tiny(*arch)
	case "small":
		s = synth.Small()
	case "tinyllama":
		s = synth.TinyLlamaShape()
	default:
		return usagef("--size %q: want tiny, small or tinyllama", *size)
	}
	s.Arch, s.Seed = *arch, *seed
	if *typ != "" {
		t, err := gguf.ParseGGMLType(*typ)
		if err != nil {
			return usagef("--type: %v", err)
		}
		s.Weights = t
	}
	if err := s.Validate(); err != nil {
		return usagef("%v", err)
	}
	if err := synth.WriteFile(*out, s); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "wrote %s: synthetic %s, %d parameters, %s weights (random: its text is meaningless)\n",
		*out, s.Arch, s.Params(), s.Weights)
	return nil
}
