//go:build !unix

package cli

// lockStore does nothing where flock is not available.
func lockStore(string) (func(), error) { return func() {}, nil }
