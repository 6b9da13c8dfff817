// Package all registers every architecture mnemo implements; import it for
// its side effects.
package all

import (
	_ "github.com/mnemo-ai/mnemo/engine/arch/llama" // llama, qwen2, qwen3
)
