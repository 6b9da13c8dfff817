//go:build !race

package kernels

// raceReadSlice tells the race detector that assembly reads s (a no-op without
// -race).
func raceReadSlice[T any](s []T) {}

// raceWriteSlice tells the race detector that assembly writes s (a no-op
// without -race).
func raceWriteSlice[T any](s []T) {}
