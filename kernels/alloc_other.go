//go:build !linux

package kernels

// adviseHuge does nothing where transparent huge pages are not known.
func adviseHuge([]byte) {}
