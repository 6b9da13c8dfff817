// Package cli implements mnemo's subcommands. Each command lives in its own
// file and registers itself with register; Main dispatches on the longest
// matching command path ("bench kernels" before "bench").
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Env is what a command may touch of the outside world. Tests build their
// own with buffers.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads an environment variable; nil means os.Getenv.
	Getenv func(string) string
}

// Command is one subcommand.
type Command struct {
	// Name is the command path, words separated by single spaces
	// ("inspect", "bench kernels").
	Name string
	// Args is the synopsis after the name ("MODEL [flags]").
	Args string
	// Summary is one line for the command list.
	Summary string
	// Run executes the command. args are the words after the name. A
	// command returns a UsageError for bad invocations (exit status 2) and
	// any other error for failures (exit status 1).
	Run func(ctx context.Context, env Env, args []string) error
}

var commands = map[string]*Command{}

// register adds c to the command table; it panics on a duplicate name.
func register(c *Command) {
	if _, dup := commands[c.Name]; dup {
		panic("cli: command registered twice: " + c.Name)
	}
	commands[c.Name] = c
}

// UsageError reports a bad command line.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// usagef returns a UsageError.
func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// newFlagSet returns a FlagSet for the registered command name that reports
// errors instead of exiting and prints its usage to env.Stderr.
func newFlagSet(env Env, name string) *flag.FlagSet {
	c := commands[name]
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "usage: mnemo %s %s\n\n%s\n", c.Name, c.Args, c.Summary)
		if hasFlags(fs) {
			fmt.Fprintln(env.Stderr, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args with fs, accepting flags after positional
// arguments too ("mnemo inspect model.gguf --json"). It returns the
// positional arguments. "--" ends flag parsing.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &UsageError{Msg: err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// Main runs the command named by args and returns the process exit status.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = osGetenv
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printCommands(env.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, rest := lookup(args)
	if c == nil {
		fmt.Fprintf(env.Stderr, "mnemo: unknown command %q\n\n", strings.Join(args[:min(len(args), 2)], " "))
		printCommands(env.Stderr)
		return 2
	}
	err := c.Run(ctx, env, rest)
	var ue *UsageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "mnemo %s: %v\nusage: mnemo %s %s\n", c.Name, err, c.Name, c.Args)
		return 2
	default:
		fmt.Fprintf(env.Stderr, "mnemo %s: %v\n", c.Name, err)
		return 1
	}
}

// lookup finds the command with the longest name that prefixes args.
func lookup(args []string) (*Command, []string) {
	for n := min(len(args), 3); n > 0; n-- {
		if c, ok := commands[strings.Join(args[:n], " ")]; ok {
			return c, args[n:]
		}
	}
	return nil, nil
}

func printCommands(w io.Writer) {
	fmt.Fprintln(w, "mnemo: a stateful LLM inference runtime\n\nusage: mnemo COMMAND [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, commands[n].Summary)
	}
	fmt.Fprintln(w, "\nRun 'mnemo COMMAND -h' for a command's flags.")
}
