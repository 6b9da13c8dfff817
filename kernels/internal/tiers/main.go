// Command tiers prints the kernel implementation tiers this machine can run,
// space-separated, for the Makefile's per-tier test runs.
package main

import (
	"fmt"
	"strings"

	"github.com/mnemo-ai/mnemo/kernels"
)

func main() {
	var names []string
	for _, impl := range kernels.Impls() {
		names = append(names, impl.Name)
	}
	fmt.Println(strings.Join(names, " "))
}
