// Command mnemo is the stateful LLM inference runtime's command-line tool:
// run and serve models, inspect model files, and benchmark kernels and models.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mnemo-ai/mnemo/cmd/mnemo/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
