//go:build !linux

package nrt

import "errors"

// fakeControl is unused off Linux.
type fakeControl = struct{}

func buildFakes(string) error { return errors.New("the fake libnrt needs Linux") }
