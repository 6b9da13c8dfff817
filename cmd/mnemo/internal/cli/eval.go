package cli

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/mnemo-ai/mnemo/engine"
	"github.com/mnemo-ai/mnemo/kvcache"
)

func init() {
	register(&Command{
		Name:    "eval",
		Args:    "MODEL --tokens ID,ID,... --logits-out FILE [flags]",
		Summary: "run token ids through a model and write the logits of every position (float32, little-endian, positions × vocab)",
		Run:     runEval,
	})
}

func parseIDs(s string) ([]int32, error) {
	var ids []int32
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		v, err := strconv.ParseInt(f, 10, 32)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("token id %q is not a non-negative integer", f)
		}
		ids = append(ids, int32(v))
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("no token ids")
	}
	return ids, nil
}

func runEval(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "eval")
	var mf modelFlags
	mf.register(fs)
	tokens := fs.String("tokens", "", "comma-separated token ids")
	out := fs.String("logits-out", "", "file to write the logits to")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one MODEL")
	}
	if *out == "" {
		return usagef("--logits-out is required")
	}
	ids, err := parseIDs(*tokens)
	if err != nil {
		return usagef("--tokens: %v", err)
	}
	if mf.kv == "" {
		mf.kv = "f32" // the reference tool keeps keys and values exact
	}
	l, err := mf.open(env, pos[0], nil)
	if err != nil {
		return err
	}
	defer l.Close()
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	seq := &engine.Seq{Table: &kvcache.Table{}, AllLogits: true}
	defer seq.Table.Release(l.model.KV().Pool)
	var b [4]byte
	for at := 0; at < len(ids); at += mf.batch {
		seq.Tokens = ids[at:min(len(ids), at+mf.batch)]
		lg, err := l.model.Forward(ctx, []*engine.Seq{seq})
		if err != nil {
			f.Close()
			return fmt.Errorf("tokens %d..%d: %w", at, at+len(seq.Tokens)-1, err)
		}
		for _, v := range lg[0].Data {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			w.Write(b[:])
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", *out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	fmt.Fprintf(env.Stderr, "wrote %d × %d logits to %s\n", len(ids), l.model.Config().VocabSize, *out)
	return nil
}
