// Command evexgen prints Go assembler lines for AVX512_BF16 instructions that
// Go's assembler does not know, in the form package evex's CheckAsm verifies:
//
//	$ go run ./internal/evex/evexgen 'VDPBF16PS Z2, Z1, Z0'
//		// EVEX: VDPBF16PS Z2, Z1, Z0
//		BYTE $0x62; BYTE $0xf2; BYTE $0x76; BYTE $0x48; BYTE $0x52; BYTE $0xc2
//
// Operands use Go order (sources first, destination last); see package evex.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mnemo-ai/mnemo/internal/evex"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "usage: evexgen 'INSTRUCTION' ...\nknown: %s\n", strings.Join(evex.Ops(), ", "))
		return 2
	}
	for _, a := range args {
		l, err := evex.Lines(a)
		if err != nil {
			fmt.Fprintf(stderr, "evexgen: %v\n", err)
			return 1
		}
		fmt.Fprint(stdout, l)
	}
	return 0
}
