package cli

import (
	"context"
	"fmt"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/kernels/format"
)

func init() {
	register(&Command{
		Name:    "quantize",
		Args:    "IN.gguf OUT.gguf --type fp8|mxfp8|mxfp8_e5m2|mxfp4|nvfp4|q8_0|q4_0|bf16|f16|f32",
		Summary: "rewrite a GGUF model with its weight matrices in another format",
		Run:     runQuantize,
	})
}

func runQuantize(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "quantize")
	typ := fs.String("type", "", "target weight format")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("want IN.gguf and OUT.gguf")
	}
	t, err := format.ParseType(*typ)
	if err != nil {
		return usagef("--type: %v", err)
	}
	if pos[0] == pos[1] {
		return usagef("IN and OUT must differ")
	}
	st, err := engine.QuantizeFile(pos[0], pos[1], t, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s: %d matrices in %s, %d tensors copied, %.1f MB → %.1f MB\n",
		pos[1], st.Converted, t, st.Copied, float64(st.InBytes)/1e6, float64(st.OutBytes)/1e6)
	if _, mnemo := engine.FileType(t); mnemo {
		fmt.Fprintf(env.Stdout, "note: %s has no GGUF type id; the file uses mnemo's own ids and other GGUF tools will refuse it\n", t)
	}
	return nil
}
