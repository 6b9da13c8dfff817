//go:build !linux

package nrt

// openPath fails: libnrt exists only on Linux.
func openPath(path string) (library, error) {
	return nil, ErrUnsupportedPlatform
}
