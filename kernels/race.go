//go:build race

package kernels

import (
	"runtime"
	"unsafe"
)

// raceReadSlice tells the race detector that assembly reads s, which it cannot
// see by itself.
func raceReadSlice[T any](s []T) {
	if len(s) > 0 {
		runtime.RaceReadRange(unsafe.Pointer(&s[0]), len(s)*int(unsafe.Sizeof(s[0])))
	}
}

// raceWriteSlice tells the race detector that assembly writes s.
func raceWriteSlice[T any](s []T) {
	if len(s) > 0 {
		runtime.RaceWriteRange(unsafe.Pointer(&s[0]), len(s)*int(unsafe.Sizeof(s[0])))
	}
}
