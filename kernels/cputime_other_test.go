//go:build !unix

package kernels

import "time"

// cpuTime returns 0: CPU time is only read on unix.
func cpuTime() time.Duration { return 0 }
