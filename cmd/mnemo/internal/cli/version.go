package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

func init() {
	register(&Command{
		Name:    "version",
		Summary: "print mnemo's version and the Go runtime it was built with",
		Run:     runVersion,
	})
}

func runVersion(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "version")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	_, err = fmt.Fprintf(env.Stdout, "mnemo %s %s %s/%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
