//go:build !linux

package cli

// dropPageCache is a no-op outside Linux; it reports that it did nothing.
func dropPageCache(string) bool { return false }
