// Command cmd writes the generated float-format kernels of package kernels
// (see package asmgen) into the directory given by -out.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mnemo-ai/mnemo/kernels/internal/asmgen"
)

func main() {
	out := flag.String("out", ".", "directory to write the generated files into")
	flag.Parse()
	s, g, err := asmgen.Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "asmgen:", err)
		os.Exit(1)
	}
	for i, b := range [][]byte{s, g} {
		if err := os.WriteFile(filepath.Join(*out, asmgen.Files[i]), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "asmgen:", err)
			os.Exit(1)
		}
	}
}
